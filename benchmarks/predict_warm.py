"""Warm latency of POST /predict/model/{name}, one row and many, against the sklearn floor.

Two models are trained through POST /train/{name} (a classifier on iris, a regressor on diabetes), then the
same prediction request is timed over and over, after a few warm-up requests:
  handler  the predict function's Lambda handler called in this process with an API Gateway REST event
           (Powertools, Mangum, FastAPI, the service), AWS being moto in this process;
  http     the local stack (`python -m lrnstak.local`, as `make run`) over loopback HTTP, in a subprocess;
  sklearn  the floor: the saved pipeline's own predict on the same rows, the model loaded directly.
Each answer is also checked against the floor ("exact": the same predictions after the JSON round trip).
Figures are printed and written to benchmarks/results/predict_warm.json; nothing asserts them.
"""

import argparse
import base64
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import harness  # first: it points boto3 and Powertools at a fake account
import httpx
from harness import Dataset
from moto import mock_aws

from lrnstak.local.bootstrap import create_resources
from lrnstak.local.gateway import load_function_module
from lrnstak.local.template import Template
from lrnstak.ml.safe_loading import load_model
from lrnstak.storage.clients import build_clients

JSON_HEADERS = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Case:
    dataset: Dataset
    algorithm: str

    @property
    def label(self) -> str:
        return f"{self.dataset.name}/{self.algorithm}"


@dataclass(frozen=True)
class Series:
    """One kind of request, timed `iterations` times."""

    case: Case
    rows: list[dict[str, Any]]
    iterations: int


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--single", type=int, default=300, help="timed one-row requests per model (300)")
    parser.add_argument("--batch", type=int, default=50, help="timed many-row requests per model (50)")
    parser.add_argument("--batch-rows", type=int, default=1000, help="rows in a many-row request (1000)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed requests before each series (5)")
    parser.add_argument("--classifier", default="random_forest", help="algorithm trained on iris")
    parser.add_argument("--regressor", default="ridge", help="algorithm trained on diabetes")
    parser.add_argument("--no-http", action="store_true", help="skip the local stack")
    parser.add_argument("--no-handler", action="store_true", help="skip the in-process handler")
    return parser.parse_args()


def timed(call: Callable[[], Any], iterations: int, warmup: int) -> tuple[list[float], Any]:
    """Seconds per call after `warmup` untimed calls, and the last call's result."""
    result = None
    for _ in range(warmup):
        result = call()
    seconds = []
    for _ in range(iterations):
        started = time.perf_counter()
        result = call()
        seconds.append(time.perf_counter() - started)
    return seconds, result


def first_call(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def predictions(answer: list[dict[str, Any]]) -> list[Any]:
    return [entry["prediction"] for entry in answer]


def record(path: str, series: Series, seconds: list[float], first: float | None, exact: bool | None) -> dict[str, Any]:
    return {
        "model": series.case.label,
        "rows": len(series.rows),
        "path": path,
        **harness.summary_ms(seconds),
        "first_ms": None if first is None else first * 1000,
        "exact": exact,
    }


# --- in process, through the Lambda handler, against moto ---------------------------------------------------


def run_handler(all_series: list[Series], warmup: int) -> list[dict[str, Any]]:
    template = Template.load()
    results = []
    with mock_aws():
        references = create_resources(template, build_clients(), harness.RESOURCE_PREFIX)
        for function in template.functions():
            os.environ.update(harness.function_environment(template, references, function))
        handlers = {name: load_function_module(template, name).handler for name in template.http_functions()}

        def invoke(function: str, method: str, path: str, body: Any = None) -> Any:
            event = harness.rest_v1_event(method, path, body)
            with harness.stdout_silenced():
                return harness.response_json(handlers[function](event, harness.FakeLambdaContext()))

        pipelines: dict[str, Any] = {}
        for series in all_series:
            case = series.case
            if case.label not in pipelines:
                trained = invoke("TrainerFunction", "POST", f"/train/{case.dataset.name}", case_body(case))
                saved = invoke("RegistryFunction", "GET", f"/models/{case.dataset.name}/{trained['version']}")
                pipelines[case.label] = load_model(base64.b64decode(saved["model"])).estimator
            pipeline = pipelines[case.label]
            results.append(floor(series, pipeline, warmup))
            event = harness.rest_v1_event("POST", f"/predict/model/{case.dataset.name}", {"data": series.rows})
            predict = handlers["PredictFunction"]

            def call(event: dict[str, Any] = event, predict: Any = predict) -> dict[str, Any]:
                result: dict[str, Any] = predict(event, harness.FakeLambdaContext())
                return result

            with harness.stdout_silenced():
                first = first_call(call)
                seconds, last = timed(call, series.iterations, warmup)
            exact = predictions(harness.response_json(last)) == pipeline.predict(series.rows).tolist()
            results.append(record("handler", series, seconds, first, exact))
    return results


def floor(series: Series, pipeline: Any, warmup: int) -> dict[str, Any]:
    seconds, _ = timed(lambda: pipeline.predict(series.rows), series.iterations, warmup)
    return record("sklearn", series, seconds, None, None)


def case_body(case: Case) -> dict[str, Any]:
    return harness.train_body(case.dataset, case.algorithm)


# --- over HTTP, against the local stack -----------------------------------------------------------------------


def run_http(all_series: list[Series], warmup: int, with_floor: bool) -> list[dict[str, Any]]:
    results = []
    with tempfile.TemporaryDirectory(prefix="lrnstak-bench-") as state:
        stack = harness.start_stack(Path(state))
        try:
            with httpx.Client(base_url=stack.url, timeout=120) as http:
                pipelines: dict[str, Any] = {}
                for series in all_series:
                    case = series.case
                    if case.label not in pipelines:
                        pipelines[case.label] = train_over_http(http, case)
                    if with_floor:
                        results.append(floor(series, pipelines[case.label], warmup))
                    body = json.dumps({"data": series.rows}).encode()
                    path = f"/predict/model/{case.dataset.name}"

                    def call(path: str = path, body: bytes = body) -> httpx.Response:
                        return http.post(path, content=body, headers=JSON_HEADERS)

                    first = first_call(call)
                    seconds, last = timed(call, series.iterations, warmup)
                    last.raise_for_status()
                    exact = predictions(last.json()) == pipelines[case.label].predict(series.rows).tolist()
                    results.append(record("http", series, seconds, first, exact))
        finally:
            code = stack.stop()
            if code != 0:
                print(f"the local stack exited with {code}; its output:\n{stack.log.read_text()[-3000:]}")
    return results


def train_over_http(http: httpx.Client, case: Case) -> Any:
    trained = http.post(f"/train/{case.dataset.name}", json=case_body(case))
    trained.raise_for_status()
    saved = http.get(f"/models/{case.dataset.name}/{trained.json()['version']}")
    saved.raise_for_status()
    return load_model(base64.b64decode(saved.json()["model"])).estimator


# --- report ------------------------------------------------------------------------------------------------------

PATH_ORDER = {"sklearn": 0, "handler": 1, "http": 2}


def report(results: list[dict[str, Any]]) -> None:
    floors = {(r["model"], r["rows"]): r["p50"] for r in results if r["path"] == "sklearn"}
    models = list(dict.fromkeys(r["model"] for r in results))
    rows = []
    for r in sorted(results, key=lambda r: (models.index(r["model"]), r["rows"], PATH_ORDER[r["path"]])):
        base = floors.get((r["model"], r["rows"]))
        over = None if r["path"] == "sklearn" or base is None else r["p50"] - base
        exact = {True: "yes", False: "NO", None: ""}[r["exact"]]
        figures = [r[key] for key in ("n", "p50", "p90", "p99", "max")]
        rows.append([r["model"], r["rows"], r["path"], *figures, over, r["first_ms"], exact])
    headers = ["model", "rows", "path", "n", "p50", "p90", "p99", "max", "+p50", "first", "exact"]
    print("\nwarm POST /predict/model/{name}, milliseconds (+p50: p50 over the sklearn floor's p50)")
    harness.print_table(headers, rows)


def main() -> None:
    args = parse_args()
    cases = [Case(harness.iris(), args.classifier), Case(harness.diabetes(), args.regressor)]
    all_series = [
        Series(case, case.dataset.features(count), iterations)
        for case in cases
        for count, iterations in ((1, args.single), (args.batch_rows, args.batch))
    ]
    started = time.monotonic()
    results = []
    if not args.no_handler:
        print("in process: the predict function's handler against moto ...", flush=True)
        results += run_handler(all_series, args.warmup)
    if not args.no_http:
        print("over HTTP: the local stack ...", flush=True)
        results += run_http(all_series, args.warmup, with_floor=args.no_handler)
    report(results)
    document = {"benchmark": "predict_warm", "machine": harness.machine(), "arguments": vars(args), "results": results}
    path = harness.write_results("predict_warm", document)
    print(f"\n{time.monotonic() - started:.0f}s; written to {path.relative_to(harness.ROOT)}")


if __name__ == "__main__":
    main()
