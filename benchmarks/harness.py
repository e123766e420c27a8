"""What the predict benchmarks share: a fake AWS account, API Gateway events, the local stack, figures.

Importing this module points boto3 and Powertools at a fake account, as tests/conftest.py does, so it must
be imported before anything from lrnstak (the Logger and Metrics read their settings when first imported).
Nothing here imports from tests/: the pieces the benchmarks need are copied and kept small.
"""

import base64
import json
import math
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Never reach a real account from a benchmark, whatever the shell has configured.
for _name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL"):
    os.environ.pop(_name, None)
FAKE_AWS_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    # Outside Lambda there is no X-Ray daemon to send to; Powertools would skip tracing anyway.
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_SERVICE_NAME": "predict",
    "POWERTOOLS_METRICS_NAMESPACE": "lrnstak-bench",
}
os.environ.update(FAKE_AWS_ENVIRONMENT)

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"
EVENTS_DIR = ROOT / "benchmarks" / "events"
RESOURCE_PREFIX = "lrnstak-bench"
IRIS_NAMES = ["setosa", "versicolor", "virginica"]
IRIS_COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
READY = re.compile(r"lrnstak is ready on (http://\S+) ")


# --- rows ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    name: str
    target: str
    training: list[dict[str, Any]]

    def features(self, count: int) -> list[dict[str, Any]]:
        """`count` rows without the target, the training rows cycled."""
        rows = [{k: v for k, v in row.items() if k != self.target} for row in self.training]
        return [rows[index % len(rows)] for index in range(count)]


def iris() -> Dataset:
    from sklearn.datasets import load_iris

    data, target = load_iris(return_X_y=True)
    rows = [
        {**dict(zip(IRIS_COLUMNS, map(float, x), strict=True)), "species": IRIS_NAMES[label]}
        for x, label in zip(data, target, strict=True)
    ]
    return Dataset("iris", "species", rows)


def diabetes() -> Dataset:
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes()
    names = [str(name) for name in bunch.feature_names]
    rows = [
        {**dict(zip(names, map(float, x), strict=True)), "y": float(t)}
        for x, t in zip(bunch.data, bunch.target, strict=True)
    ]
    return Dataset("diabetes", "y", rows)


def train_body(dataset: Dataset, algorithm: str) -> dict[str, Any]:
    return {"training_data": dataset.training, "parameters": {"target_label": dataset.target, "algorithm": algorithm}}


# --- API Gateway events and the Lambda handler ----------------------------------------------------------


def rest_v1_event(method: str, path: str, body: Any = None) -> dict[str, Any]:
    """A REST API (payload 1.0) event as `sam local generate-event apigateway aws-proxy` writes it (a copy of
    tests/events/apigateway_rest_v1.json), filled like tests/support/events.py: the body is base64."""
    from lrnstak.local.template import Template

    event: dict[str, Any] = json.loads((EVENTS_DIR / "apigateway_rest_v1.json").read_text())
    resource, parameters = _template_resource(Template.load().routes(), path, method)
    encoded = None if body is None else base64.b64encode(json.dumps(body).encode()).decode()
    event.update(
        httpMethod=method,
        path=path,
        resource=resource,
        pathParameters=parameters or None,
        queryStringParameters=None,
        multiValueQueryStringParameters=None,
        body=encoded,
        isBase64Encoded=body is not None,
    )
    event["requestContext"].update(path=f"/prod{path}", resourcePath=resource, httpMethod=method)
    return event


def _template_resource(routes: Sequence[Any], path: str, method: str) -> tuple[str, dict[str, str]]:
    """The template route API Gateway would match (literal segments first), and its path parameters."""
    best: tuple[tuple[int, ...], str, dict[str, str]] | None = None
    for route in routes:
        if route.method != method:
            continue
        names = re.findall(r"{([^}]+)}", route.path)
        match = re.match("^" + re.sub(r"{[^}]+}", "([^/]+)", route.path) + "$", path)
        if match:
            rank = tuple(1 if s.startswith("{") else 0 for s in route.path.split("/") if s)
            if best is None or rank < best[0]:
                best = (rank, route.path, dict(zip(names, match.groups(), strict=True)))
    if best is None:
        raise LookupError(f"template.yaml has no route for {method} {path}")
    return best[1], best[2]


class FakeLambdaContext:
    function_name = "lrnstak-bench-predict"
    function_version = "$LATEST"
    memory_limit_in_mb = 1536
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:lrnstak-bench-predict"
    aws_request_id = "52fdfc07-2182-154f-163f-5f0f9a621d72"
    log_group_name = "/aws/lambda/lrnstak-bench-predict"
    log_stream_name = "2026/11/26/[$LATEST]bench"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


def response_json(result: dict[str, Any]) -> Any:
    """The JSON body of a handler's result; raises on anything but a 200."""
    body = result.get("body") or ""
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
    if result["statusCode"] != 200:
        raise RuntimeError(f"status {result['statusCode']}: {raw[:500]!r}")
    return json.loads(raw)


def function_environment(template: Any, references: dict[str, str], function: str) -> dict[str, str]:
    """The environment template.yaml gives `function`; Powertools' own names stay the benchmark's."""
    environment = template.function_environment(function, references)
    return {name: value for name, value in environment.items() if not name.startswith("POWERTOOLS_")}


@contextmanager
def stdout_silenced() -> Iterator[None]:
    """Sends file descriptor 1 to /dev/null: Powertools writes a metrics line per invocation, as on Lambda."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "w") as sink:
        os.dup2(sink.fileno(), 1)
        try:
            yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)


# --- the local stack --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class RunningStack:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def start_stack(state_dir: Path, timeout: float = 90) -> RunningStack:
    """`python -m lrnstak.local` (what `make run` runs) on a free port, starting empty; its output goes to a
    file, so a long run never blocks on a full pipe."""
    log = state_dir / "stack.log"
    environment = {
        **os.environ,
        "PORT": str(free_port()),
        "LRNSTAK_DATA_DIR": str(state_dir / "data"),
        "LRNSTAK_RESET": "1",
        "PYTHONUNBUFFERED": "1",
    }
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "lrnstak.local"], cwd=ROOT, env=environment, stdout=output, stderr=output
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        match = READY.search(log.read_text(errors="replace"))
        if match:
            return RunningStack(process, match.group(1), log)
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("the local stack did not become ready:\n" + log.read_text(errors="replace")[-4000:])


# --- figures ------------------------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest rank: the smallest value with at least `fraction` of the values at or below it."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    ordered = sorted(value * 1000 for value in seconds)
    return {
        "n": len(ordered),
        "p50": percentile(ordered, 0.50),
        "p90": percentile(ordered, 0.90),
        "p99": percentile(ordered, 0.99),
        "max": ordered[-1],
        "min": ordered[0],
    }


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max(len(header), *(len(row[i]) for row in cells)) for i, header in enumerate(headers)]

    def aligned(row: Sequence[str]) -> str:
        # The first column (a name) to the left, the figures to the right.
        return "  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row))

    print(aligned(headers))
    print("-" * len(aligned(headers)))
    for row in cells:
        print(aligned(row))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}" if value < 100 else f"{value:.0f}"
    return "" if value is None else str(value)


def machine() -> dict[str, Any]:
    from importlib.metadata import version

    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": list(os.getloadavg()),
        "scikit-learn": version("scikit-learn"),
        "numpy": version("numpy"),
        "fastapi": version("fastapi"),
    }


def write_results(name: str, document: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path
