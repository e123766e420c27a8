"""Each function as `sam build` packaged it, run like Lambda would: only its folder, its layers and the
runtime's boto3 on sys.path (no site-packages of the dev venv), fed a real API Gateway event, against moto
over HTTP. A missing file or dependency in a layer fails here, as it would in `sam local` or in AWS."""

import base64
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lrnstak.local.bootstrap import create_resources
from lrnstak.local.server import EmbeddedAws
from lrnstak.local.template import Template
from lrnstak.local.workers import sqs_event
from lrnstak.storage.clients import build_clients

from support.events import rest_v1_event
from support.models import joblib_bytes, linear_regression

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / ".aws-sam" / "build"
LAMBDA_RUNTIME = ROOT / "build" / "lambda-runtime"

# Runs inside the isolated interpreter: `python -I -S` (no site, no user site, no PYTHON* variables).
RUNNER = """
import json, sys
paths = json.loads(sys.argv[1])
sys.path[:0] = paths
import app
event = json.load(sys.stdin)
class Context:
    function_name = "built"; memory_limit_in_mb = 1024; aws_request_id = "built-request"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:built"
    def get_remaining_time_in_millis(self): return 29000
response = app.handler(event, Context())
origins = {name: getattr(sys.modules.get(name), "__file__", None) for name in json.loads(sys.argv[2])}
print("RESULT " + json.dumps({"response": response, "origins": origins}))
"""


def built_template() -> Template:
    if not (BUILD / "template.yaml").is_file():
        pytest.fail("no .aws-sam/build: run `make build` (make test does it first)")
    if not LAMBDA_RUNTIME.is_dir():
        pytest.fail("no build/lambda-runtime: run `make test`, which installs the runtime's boto3 there")
    return Template.load(BUILD)


def layer_dirs(template: Template, function: str) -> list[Path]:
    own = template.functions()[function]["Properties"].get("Layers", [])
    shared = template.body.get("Globals", {}).get("Function", {}).get("Layers", [])
    logical_ids = [layer["Ref"] for layer in [*shared, *own]]
    return [BUILD / logical / "python" for logical in logical_ids]


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = EmbeddedAws("127.0.0.1")
    server.start()
    yield server.endpoint
    server.stop()


@pytest.fixture(scope="module")
def environment(moto_endpoint: str) -> dict[str, str]:
    template = Template.load()
    variables = {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "PATH": os.environ.get("PATH", ""),
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
        references = create_resources(template, build_clients(), "lrnstak-built")
    for function in template.functions():
        variables.update(template.function_environment(function, references))
    return variables


def run_built(function: str, event: dict[str, Any], environment: dict[str, str], probe: list[str]) -> dict[str, Any]:
    template = built_template()
    paths = [str(BUILD / function), *map(str, layer_dirs(template, function)), str(LAMBDA_RUNTIME)]
    env = {**environment, "POWERTOOLS_SERVICE_NAME": function}
    completed = subprocess.run(
        [sys.executable, "-I", "-S", "-c", RUNNER, json.dumps(paths), json.dumps(probe)],
        input=json.dumps(event),
        capture_output=True,
        text=True,
        env=env,
        cwd=BUILD / function,
        timeout=120,
        check=False,
    )
    result_lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert result_lines, completed.stdout[-3000:]
    return dict(json.loads(result_lines[-1][len("RESULT ") :]))


def body_of(response: dict[str, Any]) -> Any:
    raw = response["body"]
    return json.loads(base64.b64decode(raw) if response.get("isBase64Encoded") else raw)


def test_the_isolated_interpreter_cannot_see_the_dev_venv() -> None:
    completed = subprocess.run(
        [sys.executable, "-I", "-S", "-c", "import fastapi"], capture_output=True, text=True, check=False
    )
    assert completed.returncode != 0
    assert "No module named 'fastapi'" in completed.stderr


def test_built_registry_function_uploads_and_reads_a_model(environment: dict[str, str]) -> None:
    model = joblib_bytes(linear_regression())
    upload = rest_v1_event(
        "POST", "/models/built-model", body={"model": base64.b64encode(model).decode(), "version": "v1"}
    )
    result = run_built("RegistryFunction", upload, environment, ["fastapi", "sklearn", "lrnstak", "boto3"])
    assert result["response"]["statusCode"] == 200, result["response"]
    assert body_of(result["response"])["sha256"] == hashlib.sha256(model).hexdigest()
    for module, origin in result["origins"].items():
        expected = LAMBDA_RUNTIME if module == "boto3" else BUILD
        assert origin is not None, module
        assert Path(origin).is_relative_to(expected), (module, origin)

    info = run_built("RegistryFunction", rest_v1_event("GET", "/models/built-model/latest/info"), environment, [])
    assert info["response"]["statusCode"] == 200
    assert body_of(info["response"])["sha256"] == hashlib.sha256(model).hexdigest()


@pytest.mark.parametrize(
    ("function", "path"),
    [
        ("RegistryFunction", "/health/registry"),
        ("TrainerFunction", "/health/trainer"),
        ("PredictFunction", "/health/predict"),
        ("CacheFunction", "/health/cache"),
    ],
)
def test_every_built_function_answers_its_health_route(function: str, path: str, environment: dict[str, str]) -> None:
    result = run_built(function, rest_v1_event("GET", path), environment, ["fastapi"])
    assert result["response"]["statusCode"] == 200
    assert body_of(result["response"])["status"] == "ok"


def test_functions_without_the_sklearn_layer_do_not_ship_scikit_learn(environment: dict[str, str]) -> None:
    template = built_template()
    assert not any("Sklearn" in str(path) for path in layer_dirs(template, "CacheFunction"))
    result = run_built("CacheFunction", rest_v1_event("GET", "/health/cache"), environment, ["sklearn"])
    assert result["origins"]["sklearn"] is None


def test_built_worker_function_takes_an_sqs_event(environment: dict[str, str]) -> None:
    """A message for a job that does not exist is consumed (not retried) and reported as no failure."""
    queue_url = environment["JOBS_QUEUE_URL"]
    queue_arn = "arn:aws:sqs:us-east-1:123456789012:" + queue_url.rsplit("/", 1)[1]
    message = {"MessageId": "m-1", "ReceiptHandle": "r-1", "Body": json.dumps({"job_id": "0" * 32}), "Attributes": {}}
    event = sqs_event(message, queue_arn, "us-east-1")
    result = run_built("JobsWorkerFunction", event, environment, ["aws_lambda_powertools", "sklearn"])
    assert result["response"] == {"batchItemFailures": []}
    assert result["origins"]["sklearn"] is not None
