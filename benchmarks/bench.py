"""`make bench`: lrnstak's predict path against MLflow's scoring server and scikit-learn's own floor (issue #8).

One model, the issue's: RandomForestClassifier(n_estimators=100, random_state=0) on scikit-learn's
breast_cancer data, fitted once in the MLflow venv (build/tools/mlflow, created here from
requirements/mlflow-bench.txt, reused while that file is unchanged) and saved twice: as a joblib file that
lrnstak's local stack gets through POST /models/{name}, and with mlflow.sklearn.save_model for
`mlflow models serve --env-manager local` (one uvicorn worker, its default). Both get the same rows over
loopback HTTP/1.1 with keep-alive, from the same load generator (loadgen.py, calibrated first against a
trivial server to show its own ceiling):
  lrnstak  POST /predict/model/{name} {"data": [{column: value, ...}]} -> the rows echoed with `prediction`
  MLflow   POST /invocations {"dataframe_split": {"columns": [...], "data": [[...]]}} -> {"predictions": [...]}
Floors, in-process on this machine: `model.predict` on a DataFrame of the same rows in the MLflow venv (the
issue's floor, the one the ratios use) and on a numpy array in the project venv (reported next to it).

Every repetition measures the floors and both servers back to back, scenario by scenario (the one-client
ones in --blocks rounds of floors then servers, pooled: a slow spell of this shared machine falls on all of
them alike); a ratio is taken within each repetition, then the median and the spread (min, max) over
repetitions are reported. Then the
cold-start, training and registry groups (cold_start.py, training.py, registry_list.py) run as
subprocesses and their rows join the table. Prints one table; writes benchmarks/results/bench.json and
bench.png (drawn by mlflow_plot.py in the MLflow venv: the project venv has no matplotlib). Exit status 0
whether or not the targets hold: nothing asserts these figures.
"""

import argparse
import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import harness  # first: it points boto3 and Powertools at a fake account
import loadgen

MLFLOW_VENV = harness.ROOT / "build" / "tools" / "mlflow"
MLFLOW_REQUIREMENTS = harness.ROOT / "requirements" / "mlflow-bench.txt"
MLFLOW_PYTHON = MLFLOW_VENV / "bin" / "python"
BENCHMARKS = harness.ROOT / "benchmarks"
MODEL_NAME = "breast_cancer"
JSON_HEADERS = {"Content-Type": "application/json"}
# C2's groups: script, the name of the JSON it writes under results/.
OTHER_GROUPS = (("cold_start.py", "cold"), ("training.py", "training"), ("registry_list.py", "registry"))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repetitions", type=int, default=3, help="repetitions of every scenario (3, at least 3)")
    parser.add_argument("--single", type=int, default=300, help="timed one-row requests per server, 1 client (300)")
    parser.add_argument("--concurrent-seconds", type=float, default=4.0, help="seconds of 8-client load (4)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (8)")
    parser.add_argument("--batch", type=int, default=40, help="timed 1000-row requests per server (40)")
    parser.add_argument("--batch-rows", type=int, default=1000, help="rows in a many-row request (1000)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed requests per connection first (10)")
    parser.add_argument(
        "--blocks",
        type=int,
        default=5,
        help="rounds in which the one-client timings of each repetition are taken, floors and servers in turn (5)",
    )
    parser.add_argument("--only-warm", action="store_true", help="skip the cold-start, training, registry groups")
    args = parser.parse_args()
    if args.repetitions < 3:
        parser.error("--repetitions must be at least 3: the spread of fewer says nothing")
    return args


# --- the MLflow venv and the model ------------------------------------------------------------------------


def ensure_mlflow_venv() -> None:
    """build/tools/mlflow with requirements/mlflow-bench.txt, unless it is there with that very file."""
    stamp = MLFLOW_VENV / ".installed"
    wanted = MLFLOW_REQUIREMENTS.read_text()
    if MLFLOW_PYTHON.exists() and stamp.exists() and stamp.read_text() == wanted:
        return
    python = subprocess.run(
        [str(harness.ROOT / "scripts" / "find-python312")], check=True, capture_output=True, text=True
    ).stdout.strip()
    print(
        f"creating {MLFLOW_VENV.relative_to(harness.ROOT)} (MLflow, pandas, matplotlib) with {python} ...", flush=True
    )
    shutil.rmtree(MLFLOW_VENV, ignore_errors=True)
    subprocess.run([python, "-m", "venv", str(MLFLOW_VENV)], check=True)
    subprocess.run([str(MLFLOW_PYTHON), "-m", "pip", "install", "--quiet", "-r", str(MLFLOW_REQUIREMENTS)], check=True)
    stamp.write_text(wanted)


def build_model(folder: Path) -> dict[str, Any]:
    subprocess.run([str(MLFLOW_PYTHON), str(BENCHMARKS / "mlflow_model.py"), str(folder)], check=True)
    document: dict[str, Any] = json.loads((folder / "rows.json").read_text())
    return document


def cycled(rows: Sequence[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    return [rows[index % len(rows)] for index in range(count)]


# --- the servers --------------------------------------------------------------------------------------------


def wait_until(check: Callable[[], bool], timeout: float, what: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if check():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not become ready in {timeout:.0f}s (exit status {process.poll()})")


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def post_json(url: str, document: Any) -> Any:
    request = urllib.request.Request(url, data=json.dumps(document).encode(), headers=JSON_HEADERS, method="POST")
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


@contextmanager
def lrnstak_stack(model_file: Path, columns: list[str]) -> Iterator[str]:
    """The local stack (`python -m lrnstak.local`, as `make run`), the model uploaded; yields its URL."""
    with tempfile.TemporaryDirectory(prefix="lrnstak-bench-") as state:
        stack = harness.start_stack(Path(state))
        try:
            upload = {
                "model": base64.b64encode(model_file.read_bytes()).decode(),
                "parameters": {"feature_labels": columns},
            }
            post_json(f"{stack.url}/models/{MODEL_NAME}", upload)
            yield stack.url
        finally:
            code = stack.stop()
            if code != 0:
                print(f"the local stack exited with {code}; its output:\n{stack.log.read_text()[-3000:]}")


@contextmanager
def mlflow_server(model_dir: Path, log: Path) -> Iterator[tuple[str, float]]:
    """`mlflow models serve` for the model folder; yields its URL and the seconds from launch to /ping."""
    port = harness.free_port()
    environment = {
        **os.environ,
        # mlflow starts `uvicorn` by name: the venv's, as if it were activated.
        "PATH": f"{MLFLOW_VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_TRACKING_URI": f"file:{model_dir.parent / 'mlruns'}",
        "PYTHONUNBUFFERED": "1",
    }
    command = [
        str(MLFLOW_VENV / "bin" / "mlflow"),
        *("models", "serve", "-m", str(model_dir), "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)),
    ]
    launched = time.perf_counter()
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=environment, stdout=output, stderr=output, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers(f"{url}/ping"), 120, "mlflow models serve", process)
        yield url, time.perf_counter() - launched
    except RuntimeError:
        print(log.read_text()[-3000:])
        raise
    finally:
        # mlflow's CLI runs uvicorn as a child: stop the session it leads, and only it.
        with suppress(ProcessLookupError):
            os.killpg(process.pid, 15)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()


class DataFrameFloor:
    """mlflow_floor.py in the MLflow venv: predict on a DataFrame, timed there on demand."""

    def __init__(self, folder: Path) -> None:
        self._process = subprocess.Popen(
            [str(MLFLOW_PYTHON), str(BENCHMARKS / "mlflow_floor.py"), str(folder)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._ask_line()

    def _ask_line(self) -> dict[str, Any]:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError("mlflow_floor.py stopped")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def seconds(self, rows: int, iterations: int) -> list[float]:
        assert self._process.stdin is not None
        self._process.stdin.write(f"{rows} {iterations}\n")
        self._process.stdin.flush()
        return list(self._ask_line()["seconds"])

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        self._process.wait(timeout=20)


class NumpyFloor:
    """predict on a numpy array of the same rows, in this process (the project venv has no pandas)."""

    def __init__(self, model_file: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
        import joblib
        import numpy as np

        self.model = joblib.load(model_file)
        self._matrix = np.asarray([[row[column] for column in columns] for row in rows], dtype=np.float64)

    def predict(self, count: int) -> list[Any]:
        with warnings.catch_warnings():
            # Fitted on a DataFrame, given an array: the columns are in the same order on purpose.
            warnings.simplefilter("ignore", UserWarning)
            return list(self.model.predict(self._matrix[:count]).tolist())

    def seconds(self, count: int, iterations: int, warmup: int = 5) -> list[float]:
        matrix = self._matrix[:count]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            for _ in range(warmup):
                self.model.predict(matrix)
            timings = []
            for _ in range(iterations):
                started = time.perf_counter()
                self.model.predict(matrix)
                timings.append(time.perf_counter() - started)
        return timings


# --- scenarios ------------------------------------------------------------------------------------------------


class Target:
    """One server's request for a row count: the URL, the bytes sent, and how to read the predictions."""

    def __init__(self, name: str, url: str, body: bytes, read: Callable[[bytes], list[Any]]) -> None:
        self.name = name
        self.url = url
        self.request = loadgen.build_request(url, body=body, headers=JSON_HEADERS)
        self.read = read

    def run(self, connections: int, **options: Any) -> loadgen.LoadResult:
        result = loadgen.run(self.url, self.request, connections, **options)
        if not result.all_ok:
            raise RuntimeError(f"{self.name}: {result.statuses}, {result.errors} failed connections")
        return result


def lrnstak_target(url: str, rows: list[dict[str, Any]]) -> Target:
    body = json.dumps({"data": rows}).encode()
    return Target(
        "lrnstak", f"{url}/predict/model/{MODEL_NAME}", body, lambda raw: [e["prediction"] for e in json.loads(raw)]
    )


def mlflow_target(url: str, columns: list[str], rows: list[dict[str, Any]]) -> Target:
    split = {"columns": columns, "data": [[row[column] for column in columns] for row in rows]}
    body = json.dumps({"dataframe_split": split}).encode()
    return Target("mlflow", f"{url}/invocations", body, lambda raw: list(json.loads(raw)["predictions"]))


def median_ms(seconds: Sequence[float]) -> float:
    return statistics.median(seconds) * 1000


def stat(runs: Sequence[float]) -> dict[str, Any]:
    return {"median": statistics.median(runs), "min": min(runs), "max": max(runs), "runs": list(runs)}


def ratio(of: str, numerators: Sequence[float], denominators: Sequence[float]) -> dict[str, Any]:
    values = [a / b for a, b in zip(numerators, denominators, strict=True)]
    return {"of": of, "median": statistics.median(values), "min": min(values), "max": max(values)}


def one_client_p50s(
    blocks: int,
    rows: int,
    count: int,
    warmup: int,
    floors: Any,
    targets: dict[str, dict[int, Target]],
    order: list[str],
) -> dict[str, float]:
    """One repetition of a one-client scenario: `count` timings of each floor and each server, taken in `blocks`
    rounds of floor, floor, server, server, so that a slower spell of this shared machine falls on all of them
    alike; the p50 of each one's pooled timings, in ms."""
    numpy_floor, frame_floor = floors
    pooled: dict[str, list[float]] = {"floor_numpy": [], "floor_frame": [], **{server: [] for server in order}}
    size = max(1, count // blocks)
    for block in range(blocks):
        pooled["floor_numpy"] += numpy_floor.seconds(rows, size)
        pooled["floor_frame"] += frame_floor.seconds(rows, size)
        for server in order:
            result = targets[server][rows].run(1, requests=size, warmup=warmup if block == 0 else 0)
            pooled[server] += result.latencies
    return {name: median_ms(seconds) for name, seconds in pooled.items()}


def measure_warm(
    args: argparse.Namespace, targets: dict[str, dict[int, Target]], floors: Any
) -> dict[str, list[float]]:
    """Every scenario once per repetition, floors and both servers interleaved; the figure of each run."""
    runs: dict[str, list[float]] = {}

    def keep(key: str, value: float) -> None:
        runs.setdefault(key, []).append(value)

    servers = ["lrnstak", "mlflow"]
    for repetition in range(args.repetitions):
        # Alternate who goes first, so neither always runs on the machine the other just warmed or loaded.
        order = servers if repetition % 2 == 0 else servers[::-1]
        print(f"repetition {repetition + 1}/{args.repetitions} ...", flush=True)
        single = one_client_p50s(args.blocks, 1, args.single, args.warmup, floors, targets, order)
        for name, p50 in single.items():
            keep(f"{name}_1", p50)
        for server in order:
            result = targets[server][1].run(args.clients, duration=args.concurrent_seconds, warmup=args.warmup)
            keep(f"{server}_concurrent_rps", result.per_second)
            keep(f"{server}_concurrent_p50", result.p50_ms)
        batch = one_client_p50s(
            args.blocks, args.batch_rows, args.batch, max(2, args.warmup // 5), floors, targets, order
        )
        for name, p50 in batch.items():
            keep(f"{name}_batch", p50)
    return runs


def warm_rows(args: argparse.Namespace, runs: dict[str, list[float]]) -> list[dict[str, Any]]:
    def row(
        scenario: str, unit: str, key: str, floor_key: str | None, of: str, target: str, holds: Callable[..., bool]
    ) -> dict[str, Any]:
        mine, theirs = runs[f"lrnstak_{key}"], runs[f"mlflow_{key}"]
        floor = runs[f"floor_frame_{floor_key}"] if floor_key else None
        reference = floor if of == "lrnstak/floor" and floor is not None else theirs
        entry: dict[str, Any] = {
            "scenario": scenario,
            "unit": unit,
            "lrnstak": stat(mine),
            "mlflow": stat(theirs),
            "floor": stat(floor) if floor else None,
            "ratio": ratio(of, mine, reference),
            "target": target,
        }
        entry["holds"] = holds(entry)
        # Besides the contract: the numpy floor (project venv) and lrnstak against MLflow, per repetition.
        if floor_key:
            entry["floor_numpy"] = stat(runs[f"floor_numpy_{floor_key}"])
        entry["vs_mlflow"] = ratio("lrnstak/mlflow", mine, theirs)
        return entry

    clients = args.clients
    return [
        row(
            "predict 1 row, 1 client: p50",
            "ms",
            "1",
            "1",
            "lrnstak/floor",
            "<= 1.3x floor",
            lambda e: e["ratio"]["median"] <= 1.3,
        ),
        row(
            f"predict 1 row, {clients} clients: throughput",
            "req/s",
            "concurrent_rps",
            None,
            "lrnstak/mlflow",
            ">= 4x MLflow",
            lambda e: e["ratio"]["median"] >= 4,
        ),
        row(
            f"predict 1 row, {clients} clients: p50",
            "ms",
            "concurrent_p50",
            None,
            "lrnstak/mlflow",
            "<= 50 ms",
            lambda e: e["lrnstak"]["median"] <= 50,
        ),
        row(
            f"predict {args.batch_rows} rows, 1 client: p50",
            "ms",
            "batch",
            "batch",
            "lrnstak/floor",
            "<= 2x floor",
            lambda e: e["ratio"]["median"] <= 2,
        ),
    ]


def check_same_predictions(targets: dict[str, dict[int, Target]], numpy_floor: NumpyFloor, count: int) -> None:
    """Both servers answer what the model itself predicts for the same rows, before anything is timed."""
    expected = numpy_floor.predict(count)
    for server in targets.values():
        result = server[count].run(1, requests=1)
        got = server[count].read(result.last_body)
        if got != expected:
            raise RuntimeError(f"{server[count].name} predicted something else than the model itself")


# --- C2's groups, the table, the chart -------------------------------------------------------------------------


def other_groups(repetitions: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    notes: dict[str, Any] = {}
    for script, group in OTHER_GROUPS:
        path = BENCHMARKS / script
        if not path.exists():
            print(f"skipped: benchmarks/{script} is not there (group {group!r})", flush=True)
            notes[group] = "skipped: script missing"
            continue
        print(f"running benchmarks/{script} --repetitions {repetitions} ...", flush=True)
        completed = subprocess.run([sys.executable, str(path), "--repetitions", str(repetitions)], cwd=harness.ROOT)
        result_file = harness.RESULTS_DIR / f"{group}.json"
        if completed.returncode != 0 or not result_file.exists():
            print(f"benchmarks/{script} failed (exit {completed.returncode}); its rows are missing", flush=True)
            notes[group] = f"failed: exit {completed.returncode}"
            continue
        document = json.loads(result_file.read_text())
        rows += [{**row, "group": group} for row in document["rows"]]
        notes[group] = {"machine": document.get("machine"), "args": document.get("args")}
    return rows, notes


def figure(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def spread(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return ""
    return f"{figure(entry['median'])} ({figure(entry['min'])}-{figure(entry['max'])})"


def print_report(rows: list[dict[str, Any]], ceiling: list[dict[str, float]]) -> None:
    print("\nload generator against a trivial asyncio server (its own ceiling on this machine):")
    for figures in ceiling:
        print(
            f"  {figures['connections']} connection(s): {figures['per_second']:.0f} req/s, "
            f"p50 {figures['p50_ms']:.2f} ms"
        )
    print("\nmedian (min-max) over repetitions; ratios are taken within each repetition; floor = scikit-learn alone")
    table = []
    for row in rows:
        versus = row.get("vs_mlflow")
        table.append(
            [
                row["scenario"],
                row["unit"],
                spread(row["lrnstak"]),
                spread(row.get("mlflow")),
                spread(row.get("floor")),
                f"{spread(row['ratio'])} {row['ratio']['of']}",
                spread(versus) if versus and row["ratio"]["of"] != "lrnstak/mlflow" else "",
                row["target"],
                "yes" if row["holds"] else "NO",
            ]
        )
    headers = ["scenario", "unit", "lrnstak", "MLflow", "floor", "ratio", "x MLflow", "target", "holds"]
    harness.print_table(headers, table)
    numpy_rows = [row for row in rows if "floor_numpy" in row]
    if numpy_rows:
        print("\nfloor (the issue's): predict on a DataFrame, MLflow venv; the same on a numpy array, project venv:")
        for row in numpy_rows:
            print(f"  {row['scenario']}: DataFrame {spread(row['floor'])} ms, numpy {spread(row['floor_numpy'])} ms")


def draw_chart(json_path: Path, png_path: Path) -> None:
    completed = subprocess.run(
        [str(MLFLOW_PYTHON), str(BENCHMARKS / "mlflow_plot.py"), str(json_path), str(png_path)], check=False
    )
    if completed.returncode != 0:
        print(f"the chart could not be drawn (exit {completed.returncode})")


def main() -> None:
    args = parse_args()
    started = time.monotonic()
    ensure_mlflow_venv()
    with tempfile.TemporaryDirectory(prefix="lrnstak-bench-model-") as scratch:
        folder = Path(scratch)
        print("fitting the model (RandomForestClassifier, breast_cancer) in the MLflow venv ...", flush=True)
        document = build_model(folder)
        columns, all_rows = document["columns"], document["rows"]
        counts = (1, args.batch_rows)
        print("calibrating the load generator ...", flush=True)
        one_row = json.dumps({"data": cycled(all_rows, 1)}).encode()
        ceiling = loadgen.calibrate(one_row, connections=(1, args.clients))
        numpy_floor = NumpyFloor(folder / "model.joblib", columns, cycled(all_rows, args.batch_rows))
        frame_floor = DataFrameFloor(folder)
        print("starting the local stack and `mlflow models serve` ...", flush=True)
        try:
            with (
                lrnstak_stack(folder / "model.joblib", columns) as lrnstak_url,
                mlflow_server(folder / "mlflow-model", folder / "mlflow.log") as (mlflow_url, mlflow_ready),
            ):
                targets = {
                    "lrnstak": {n: lrnstak_target(lrnstak_url, cycled(all_rows, n)) for n in counts},
                    "mlflow": {n: mlflow_target(mlflow_url, columns, cycled(all_rows, n)) for n in counts},
                }
                check_same_predictions(targets, numpy_floor, args.batch_rows)
                runs = measure_warm(args, targets, (numpy_floor, frame_floor))
        finally:
            frame_floor.close()
    rows = warm_rows(args, runs)
    notes: dict[str, Any] = {}
    if not args.only_warm:
        other, notes = other_groups(args.repetitions)
        rows += other
    print_report(rows, ceiling)
    result = {
        "rows": rows,
        "machine": harness.machine(),
        "args": vars(args),
        "loadgen_ceiling": ceiling,
        "mlflow": {"version": mlflow_version(), "launch_to_ping_seconds": mlflow_ready, "workers": 1},
        "groups": notes,
    }
    json_path = harness.write_results("bench", result)
    draw_chart(json_path, harness.RESULTS_DIR / "bench.png")
    print(f"\n{time.monotonic() - started:.0f}s; written to {json_path.relative_to(harness.ROOT)} and bench.png")


def mlflow_version() -> str:
    for line in MLFLOW_REQUIREMENTS.read_text().splitlines():
        if line.lower().startswith("mlflow=="):
            return line.split("==", 1)[1]
    return "?"


if __name__ == "__main__":
    main()
