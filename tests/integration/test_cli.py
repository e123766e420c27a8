"""The real `lrnstak` command (.venv/bin/lrnstak, the installed entry point) against the local stack."""

import csv
import json
import os
import pty
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sklearn.datasets import load_iris

from support.stack import RunningStack, free_port, serving

LRNSTAK = Path(sys.executable).with_name("lrnstak")
API_KEY = secrets.token_urlsafe(16)
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
ANSWER_LIMIT = 4000


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    # Predict answers over ANSWER_LIMIT bytes are refused (413), as Lambda refuses those over 6 MB: the command
    # must then go through a batch job by itself.
    data = tmp_path_factory.mktemp("cli-stack")
    with serving(data, LRNSTAK_API_KEY=API_KEY, MAX_RESPONSE_BYTES=str(ANSWER_LIMIT)) as running:
        yield running


@pytest.fixture(scope="module")
def iris_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    bunch = load_iris()
    path = tmp_path_factory.mktemp("cli-data") / "iris.csv"
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow([*FEATURES, "species"])
        for x, y in zip(bunch.data, bunch.target, strict=True):
            writer.writerow([*map(float, x), bunch.target_names[y]])
    return path


def lrnstak(stack: RunningStack, *args: str, key: str | None = API_KEY) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "LRNSTAK_API_URL": stack.url, "LRNSTAK_API_KEY": key or ""}
    return subprocess.run([str(LRNSTAK), *args], capture_output=True, text=True, env=environment, timeout=120)


def succeeded(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("lrnstak: error: ")
    return lines[0]


@pytest.fixture(scope="module")
def trained(stack: RunningStack, iris_csv: Path) -> subprocess.CompletedProcess[str]:
    return lrnstak(
        stack, "train", "iris", "--csv", str(iris_csv), "--target", "species", "--algorithm", "logistic_regression"
    )


def test_train_from_a_csv(trained: subprocess.CompletedProcess[str]) -> None:
    lines = succeeded(trained).splitlines()
    assert lines[0] == "Model iris_v1 trained and saved."
    assert lines[1].split()[:2] == ["ITERATION", "ALGORITHM"]
    assert set(lines[1].split()[2:]) == {"ACCURACY", "F1", "LOG_LOSS", "PRECISION", "RECALL"}
    assert lines[2].split()[:2] == ["1", "logistic_regression"]
    # stderr is not a terminal here: plain status lines, and no job (trained within the request)
    assert trained.stderr.splitlines() == ["lrnstak: training iris: training"]


def test_train_with_json_features_and_a_version(stack: RunningStack, iris_csv: Path) -> None:
    args = ["--json", "train", "iris", "--csv", str(iris_csv), "--target", "species", "--version", "v9"]
    answer = json.loads(
        succeeded(lrnstak(stack, *args, "--features", "petal_length", "petal_width", "--algorithm", "knn"))
    )
    assert (answer["model"], answer["version"], answer["algorithm"], answer["job_id"]) == ("iris", "v9", "knn", None)
    assert answer["training_results"]["metadata"]["features"] == ["petal_length", "petal_width"]


def test_train_async_prints_the_job(stack: RunningStack, iris_csv: Path) -> None:
    args = ["train", "iris-async", "--csv", str(iris_csv), "--target", "species", "--algorithm", "decision_tree"]
    printed = succeeded(lrnstak(stack, *args, "--async"))
    assert printed.startswith("job ")
    job_id = printed.split()[1]
    assert printed.strip() == f"job {job_id} queued: follow it at GET /train/jobs/{job_id}"
    with stack.client() as http:
        job = http.get(f"/train/jobs/{job_id}", headers={"x-api-key": API_KEY}).json()
    assert job["model"] == "iris-async"
    assert job["status"] in ("queued", "running", "succeeded")


def test_predict_to_a_file_and_to_stdout(stack: RunningStack, iris_csv: Path, trained: object, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    # 150 rows: the answer is over the stack's limit, so the command predicts them through a batch job
    predicted = lrnstak(stack, "predict", "iris", "--csv", str(iris_csv), "--version", "v1", "-o", str(out))
    assert succeeded(predicted) == ""
    assert out.stat().st_size > ANSWER_LIMIT
    assert "lrnstak: predicting iris: job " in predicted.stderr
    with out.open(newline="") as file:
        rows = list(csv.DictReader(file))
    with iris_csv.open(newline="") as file:
        inputs = list(csv.DictReader(file))
    assert len(rows) == 150
    assert list(rows[0]) == [*FEATURES, "species", "prediction"]
    assert sum(row["prediction"] == row["species"] for row in rows) > 135
    assert [row["sepal_length"] for row in rows] == [row["sepal_length"] for row in inputs]
    # 3 rows: answered in the request itself, as CSV on stdout
    flowers = tmp_path / "flowers.csv"
    flowers.write_text("".join(iris_csv.read_text().splitlines(keepends=True)[:4]))
    small = lrnstak(stack, "predict", "iris", "--csv", str(flowers))
    assert succeeded(small) == "".join(out.read_text().splitlines(keepends=True)[:4])
    assert small.stderr == ""
    entries = json.loads(succeeded(lrnstak(stack, "predict", "iris", "--csv", str(flowers), "--json")))
    assert entries == json_rows(rows[:3])


def json_rows(rows: list[dict[str, str]]) -> list[dict[str, object]]:
    return [{name: float(value) if name in FEATURES else value for name, value in row.items()} for row in rows]


def test_models_versions_and_info_tables(stack: RunningStack, trained: object) -> None:
    models = succeeded(lrnstak(stack, "models")).splitlines()
    assert models[0].split() == ["MODEL", "LATEST", "VERSIONS", "UPDATED"]
    iris = next(line for line in models if line.startswith("iris "))
    assert iris.split()[0] == "iris"
    assert models[0].index("UPDATED") == iris.index("20")  # columns aligned under their headers
    versions = succeeded(lrnstak(stack, "versions", "iris")).splitlines()
    assert versions[0].split() == ["VERSION", "ALGORITHM", "CREATED", "SIZE", "METRICS"]
    assert "v1" in [line.split()[0] for line in versions[1:]]
    info = dict(
        line.split(None, 1) for line in succeeded(lrnstak(stack, "info", "iris", "v1")).splitlines()[1:] if " " in line
    )
    assert info["version"].strip() == "v1"
    assert info["algorithm"].strip() == "logistic_regression"
    assert info["target"].strip() == "species"


def test_json_output_parses(stack: RunningStack, trained: object) -> None:
    models = json.loads(succeeded(lrnstak(stack, "models", "--json")))
    assert "iris" in [entry["model"] for entry in models]
    versions = json.loads(succeeded(lrnstak(stack, "--json", "versions", "iris")))
    assert "v1" in [entry["version"] for entry in versions]
    info = json.loads(succeeded(lrnstak(stack, "info", "iris", "v1", "--json")))
    assert (info["model"], info["version"], info["parameters"]["target_label"]) == ("iris", "v1", "species")


def test_cache_get_put_delete(stack: RunningStack) -> None:
    assert succeeded(lrnstak(stack, "cache", "put", "cli-key", '{"a": [1, 2]}', "--ttl", "60")) == "OK\n"
    assert json.loads(succeeded(lrnstak(stack, "--json", "cache", "get", "cli-key"))) == {"a": [1, 2]}
    assert succeeded(lrnstak(stack, "cache", "put", "cli-text", "hello world")) == "OK\n"
    assert succeeded(lrnstak(stack, "cache", "get", "cli-text")) == "hello world\n"  # text as it is
    assert json.loads(succeeded(lrnstak(stack, "cache", "delete", "cli-key", "--json"))) == {
        "key": "cli-key",
        "deleted": True,
    }
    missing = one_line_error(lrnstak(stack, "cache", "get", "cli-key"), 1)
    assert missing.startswith("lrnstak: error: 404 not_found: ")


def test_the_server_saying_no_is_exit_1_in_one_line(stack: RunningStack, iris_csv: Path) -> None:
    assert "404 not_found" in one_line_error(lrnstak(stack, "info", "no-such-model", "v1"), 1)
    assert "403 forbidden" in one_line_error(lrnstak(stack, "models", key="wrong-key"), 1)
    assert "403 forbidden" in one_line_error(lrnstak(stack, "models", "--api-key", "wrong-key"), 1)
    bad = lrnstak(stack, "train", "bad", "--csv", str(iris_csv), "--target", "no_such_column")
    assert bad.returncode == 1
    assert bad.stderr.splitlines()[-1].startswith("lrnstak: error: 400 invalid_input: ")
    assert "no_such_column" in bad.stderr
    assert "Traceback" not in bad.stderr
    refused = one_line_error(lrnstak(stack, "--url", f"http://127.0.0.1:{free_port()}", "models"), 1)
    assert "could not connect" in refused


def test_usage_errors_are_exit_2_in_one_line(stack: RunningStack, iris_csv: Path) -> None:
    assert "--target" in one_line_error(lrnstak(stack, "train", "iris", "--csv", str(iris_csv)), 2)
    assert "invalid choice: 'trian'" in one_line_error(lrnstak(stack, "trian"), 2)
    assert "needs a VALUE" in one_line_error(lrnstak(stack, "cache", "put", "k"), 2)
    assert "COMMAND" in one_line_error(lrnstak(stack), 2)
    assert "cannot read" in one_line_error(lrnstak(stack, "predict", "iris", "--csv", "/no/such.csv"), 1)


def test_a_terminal_gets_a_redrawn_progress_line(stack: RunningStack, iris_csv: Path) -> None:
    controller, terminal = pty.openpty()
    environment = {**os.environ, "LRNSTAK_API_URL": stack.url, "LRNSTAK_API_KEY": API_KEY}
    args = ["train", "iris-tty", "--csv", str(iris_csv), "--target", "species", "--algorithm", "decision_tree"]
    with subprocess.Popen([str(LRNSTAK), *args], stdout=subprocess.PIPE, stderr=terminal, env=environment) as process:
        os.close(terminal)
        drawn = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the command exited and closed its end
                break
            if not chunk:
                break
            drawn += chunk
        assert process.wait(timeout=60) == 0
    os.close(controller)
    text = drawn.decode()
    assert "\r" in text  # redrawn in place, not one line per update
    assert "training iris-tty: training" in text
    assert text.endswith("\r")  # the bar is cleared when the command is done


def test_serve_runs_the_whole_stack_until_sigterm_and_saves_its_state(tmp_path: Path) -> None:
    port = free_port()
    environment = {**os.environ, "LRNSTAK_DATA_DIR": str(tmp_path / "data"), "LRNSTAK_RESET": "1"}
    environment.pop("LRNSTAK_API_KEY", None)
    server = subprocess.Popen(
        [str(LRNSTAK), "serve", "--port", str(port)],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        ready = server.stdout.readline()
        while ready and "lrnstak is ready on" not in ready:
            ready = server.stdout.readline()
        assert f"http://127.0.0.1:{port}" in ready, ready
        url = f"http://127.0.0.1:{port}"
        put = subprocess.run(
            [str(LRNSTAK), "--url", url, "cache", "put", "served", '{"by": "serve"}'],
            capture_output=True,
            text=True,
            env=environment,
            timeout=120,
        )
        succeeded(put)
    finally:
        server.terminate()
        rest, _ = server.communicate(timeout=60)
    assert server.returncode == 0, rest
    assert "lrnstak stopped; state saved." in rest
    assert (tmp_path / "data").is_dir()
