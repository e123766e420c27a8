"""Cold start (group "cold"): the predict function in a fresh interpreter, and the local stack from launch.

The model is the issue's: RandomForestClassifier(n_estimators=100, random_state=0) fitted on scikit-learn's
breast_cancer data (a float matrix; its 30 column names go to the registry as `feature_labels`), uploaded
through POST /models/{name}, so the store holds exactly what a user's upload puts there.

  predict function  moto's server runs in this process (the local stack's EmbeddedAws) with template.yaml's
                    resources; the model is uploaded through the registry function's handler. Each
                    repetition spawns two fresh `python -I` children, back to back, as predict_cold.py does
                    (the function's folder and src/ first on sys.path, the function's environment from
                    template.yaml, tracing disabled as outside Lambda):
                      lrnstak: `import app` of functions/predict, then one `handler(event, context)` with an
                               API Gateway REST event for one row (registry reads, S3 get, SHA-256, safe unpickle,
                               prediction, JSON answer);
                      floor:   `import joblib, sklearn`, `joblib.load` of the same bytes from a file, `predict`
                               of the same row.
                    Both are timed inside the child, from before the first import to the answer, so the
                    interpreter's own start (the same for both) is left out. Target: <= 1.25x the floor.
  local stack       `python -m lrnstak.local` (what `make run` runs) launched on a copy of a saved state that
                    already holds the model (a first run uploaded it and saved its state), then polled with the
                    one-row prediction until it answers 200: launch -> first successful prediction, moto's start,
                    the template's resources, the state restore and the model's first load included.
                    Target: <= 2.5 s. The floor column, for scale: a fresh interpreter spawned to do the floor's
                    import + load + predict, interpreter start included.

Packages: the children's third-party packages are the layers `make build` made (.aws-sam/build/SharedLayer,
SklearnLayer) and the Lambda runtime's boto3 (build/lambda-runtime), in an isolated interpreter without the
venv's site-packages, as Lambda has them (`make bench` builds them first); src/ still comes first, so lrnstak is
the working tree's. `--packages venv` uses the dev venv instead, which holds more than Lambda does (awscrt,
pyOpenSSL, rich, pandas: botocore and scikit-learn import them when present), for the function and the floor.

Bytecode: every child and the stack run with .pyc files. The children's live in a temporary folder
(-X pycache_prefix), filled by an untimed run of each; the stack uses the venv's and src/'s __pycache__ (pip
and earlier runs wrote them). The deployed layers ship unchecked-hash .pyc (`make build`), which spare even
the source's stat: slightly cheaper than here, for both sides alike.

    make build build/lambda-runtime/.installed
    .venv/bin/python benchmarks/cold_start.py --repetitions 5

Writes benchmarks/results/cold.json (bench.py's row format) and prints the rows. Exits 0 whether or not the
targets hold.
"""

import argparse
import base64
import http.client
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import harness  # first: it points boto3 and Powertools at a fake account
import predict_cold
import scenario_rows

from lrnstak.local.bootstrap import create_resources
from lrnstak.local.gateway import load_function_module
from lrnstak.local.server import EmbeddedAws
from lrnstak.local.template import Template
from lrnstak.storage.clients import build_clients

MODEL = "breast-cancer"
COLD_LIMIT = 1.25
READY_LIMIT_S = 2.5


def breast_cancer_model() -> tuple[bytes, list[str], list[float]]:
    """The issue's model as joblib bytes, its feature names, and the first row of the data."""
    import joblib
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier

    bunch = load_breast_cancer()
    model = RandomForestClassifier(n_estimators=100, random_state=0).fit(bunch.data, bunch.target)
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return buffer.getvalue(), [str(name) for name in bunch.feature_names], [float(x) for x in bunch.data[0]]


def upload_body(model_bytes: bytes, names: list[str]) -> dict[str, Any]:
    return {"model": base64.b64encode(model_bytes).decode(), "parameters": {"feature_labels": names}}


class Setup:
    """moto's server with the template's resources and the uploaded model; the files the children read."""

    def __init__(self, folder: Path, model_bytes: bytes, names: list[str], row: list[float]) -> None:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self.aws = EmbeddedAws("127.0.0.1")
        self.aws.start()
        os.environ["AWS_ENDPOINT_URL"] = self.aws.endpoint
        template = Template.load()
        references = create_resources(template, build_clients(), harness.RESOURCE_PREFIX)
        for function in template.functions():
            os.environ.update(harness.function_environment(template, references, function))
        self.environment = {**os.environ, **template.function_environment("PredictFunction", references)}
        self.function_dir = template.function_dir("PredictFunction")
        registry = load_function_module(template, "RegistryFunction").handler
        with harness.stdout_silenced():
            event = harness.rest_v1_event("POST", f"/models/{MODEL}", upload_body(model_bytes, names))
            harness.response_json(registry(event, harness.FakeLambdaContext()))
        self.row = row
        self.model_path = folder / "model.joblib"
        self.model_path.write_bytes(model_bytes)
        self.event_path = folder / "event.json"
        body = {"data": [dict(zip(names, row, strict=True))]}
        self.event_path.write_text(json.dumps(harness.rest_v1_event("POST", f"/predict/model/{MODEL}", body)))

    def stop(self) -> None:
        self.aws.stop()


def function_cold_start(
    folder: Path, setup: Setup, repetitions: int, packages: str
) -> tuple[list[float], list[float], dict[str, Any]]:
    """Per repetition: (import app + first answer) and (import + load + predict), seconds, back to back."""
    interpreter = predict_cold.Interpreter(
        predict_cold.package_paths(packages, setup.function_dir),
        folder / "pyc",
        read_only=False,
        no_site=packages == "built",
    )
    # Untimed: they write the .pyc files the timed runs read.
    sample = predict_cold.service_run(interpreter, setup)  # type: ignore[arg-type]
    floor_sample = predict_cold.floor_run(interpreter, setup)  # type: ignore[arg-type]
    service, floor, details = [], [], []
    for repetition in range(repetitions):
        runs = [("service", predict_cold.service_run), ("floor", predict_cold.floor_run)]
        for kind, run in runs if repetition % 2 == 0 else runs[::-1]:
            result = run(interpreter, setup)  # type: ignore[arg-type]
            if kind == "service":
                service.append(result["import_and_first_ms"] / 1000)
                details.append(
                    {key: result[key] for key in ("import_ms", "gc_import_ms", "first_ms", "first_service_ms")}
                )
            else:
                floor.append(result["total_ms"] / 1000)
    answer = [entry["prediction"] for entry in sample["answer"]]
    return service, floor, {"service_steps_ms": details, "answer": answer, "floor_answer": floor_sample["prediction"]}


# --- the local stack --------------------------------------------------------------------------------------


def post_json(url: str, path: str, body: Any, timeout: float = 30) -> tuple[int, Any]:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = connection.getresponse()
        data = response.read()
        return response.status, json.loads(data) if data else None
    finally:
        connection.close()


def saved_state(folder: Path, model_bytes: bytes, names: list[str]) -> Path:
    """A stack's data folder holding the model: started empty, the model uploaded, stopped (which saves)."""
    folder.mkdir(parents=True)
    stack = harness.start_stack(folder)
    try:
        status, answer = post_json(stack.url, f"/models/{MODEL}", upload_body(model_bytes, names))
        if status != 200:
            raise RuntimeError(f"the upload answered {status}: {answer}")
    finally:
        code = stack.stop()
    if code != 0:
        raise RuntimeError(f"the stack exited {code}:\n{stack.log.read_text()[-3000:]}")
    return folder / "data"


def time_to_first_prediction(state: Path, folder: Path, body: dict[str, Any], timeout: float = 120) -> float:
    """Seconds from launching `python -m lrnstak.local` on a copy of `state` to its first 200 prediction."""
    data = folder / "data"
    shutil.copytree(state, data)
    port = harness.free_port()
    environment = {**os.environ, "PORT": str(port), "LRNSTAK_DATA_DIR": str(data), "PYTHONUNBUFFERED": "1"}
    environment.pop("LRNSTAK_RESET", None)
    payload = json.dumps(body)
    with (folder / "stack.log").open("wb") as log:
        launched = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "lrnstak.local"], cwd=harness.ROOT, env=environment, stdout=log, stderr=log
        )
    stack = harness.RunningStack(process, f"http://127.0.0.1:{port}", folder / "stack.log")
    try:
        while time.perf_counter() - launched < timeout and process.poll() is None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                connection.request("POST", f"/predict/model/{MODEL}", payload, {"Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
                if response.status == 200:
                    return time.perf_counter() - launched
                raise RuntimeError(f"the first prediction answered {response.status}")
            except ConnectionRefusedError:
                time.sleep(0.01)
            finally:
                connection.close()
        raise RuntimeError("the local stack never answered:\n" + stack.log.read_text(errors="replace")[-3000:])
    finally:
        stack.stop()


def floor_wall(folder: Path, setup: Setup) -> float:
    """A fresh interpreter spawned to import sklearn, load the model and predict a row: seconds, start included."""
    interpreter = predict_cold.Interpreter([], folder / "pyc", read_only=False, no_site=False)
    report, _, spawned_at = predict_cold.run_child(
        interpreter,
        predict_cold.FLOOR,
        [str(setup.model_path), json.dumps(setup.row)],
        setup,  # type: ignore[arg-type]
    )
    return float(report["started_at"] - spawned_at + report["import_s"] + report["load_s"] + report["predict_s"])


def stack_ready(
    folder: Path, setup: Setup, model_bytes: bytes, names: list[str], repetitions: int
) -> tuple[list[float], list[float]]:
    state = saved_state(folder / "saved", model_bytes, names)
    body = {"data": [dict(zip(names, setup.row, strict=True))]}
    time_to_first_prediction(state, folder / "untimed", body)  # __pycache__ of anything the first run compiles
    ready, floor = [], []
    for repetition in range(repetitions):
        ready.append(time_to_first_prediction(state, folder / f"ready-{repetition}", body))
        floor.append(floor_wall(folder, setup))
    return ready, floor


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    scenario_rows.repetitions_argument(parser, default=5)
    parser.add_argument("--skip-stack", action="store_true", help="only the predict function's cold start")
    parser.add_argument(
        "--packages",
        choices=["built", "venv"],
        default="built",
        help="the function's and the floor's third-party packages: the layers `make build` made, with the runtime's "
        "boto3, as Lambda has them (built, what `make bench` builds first); or the dev venv (venv), which holds "
        "more (awscrt, pyOpenSSL, rich, pandas: imported when present)",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    started = time.monotonic()
    rows: list[dict[str, Any]] = []
    extra: dict[str, Any] = {}
    print("fitting the model (breast_cancer, RandomForestClassifier(n_estimators=100, random_state=0)) ...", flush=True)
    model_bytes, names, row = breast_cancer_model()
    with tempfile.TemporaryDirectory(prefix="lrnstak-bench-c2-cold-") as name:
        folder = Path(name)
        setup = Setup(folder, model_bytes, names, row)
        try:
            print(
                f"predict function: {args.repetitions} x (fresh child: import app + first answer; floor) ...",
                flush=True,
            )
            service, floor, details = function_cold_start(folder, setup, args.repetitions, args.packages)
            rows.append(
                scenario_rows.against_floor(
                    "cold start: predict function (import handler, load, answer 1 row)", "s", service, floor, COLD_LIMIT
                )
            )
            extra["function"] = details
            if not args.skip_stack:
                print(f"local stack: {args.repetitions} x launch -> first successful prediction ...", flush=True)
                ready, ready_floor = stack_ready(folder, setup, model_bytes, names, args.repetitions)
                rows.append(
                    scenario_rows.within(
                        "cold start: local stack, launch to first prediction", "s", ready, READY_LIMIT_S, ready_floor
                    )
                )
        finally:
            setup.stop()
    print()
    scenario_rows.print_rows(rows)
    path = scenario_rows.write_group("cold", rows, args, extra)
    print(f"\n{time.monotonic() - started:.0f}s; written to {path.relative_to(harness.ROOT)}")


if __name__ == "__main__":
    main()
