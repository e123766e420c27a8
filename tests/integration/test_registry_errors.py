"""The registry function given bad input or a failing AWS: a 4xx/503 with the one error shape, never a 500,
nothing written by a rejected upload, and a failed save that leaves the previous version whole."""

import base64
import builtins
import json
import os
import pickle
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from conftest import reset_cached_wiring
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from lrnstak.errors import ServiceUnavailable
from lrnstak.registry.service import RegistryService, get_registry_service
from lrnstak.storage.clients import AwsClients

from support.events import http_v2_event, rest_v1_event
from support.functions import LambdaResponse, invoke
from support.models import joblib_bytes, linear_regression, model_b64

FUNCTION = "RegistryFunction"
PARAMETERS = {"target_label": "y", "feature_labels": ["a", "b", "c"]}


# helpers ---------------------------------------------------------------------------------------------------


def call(
    method: str,
    path: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    shape: str = "v1",
) -> LambdaResponse:
    """Invokes the handler with a fresh API Gateway request id; every error must carry it and the one shape."""
    event = (
        rest_v1_event(method, path, body, headers, query)
        if shape == "v1"
        else http_v2_event(method, path, body, headers, query)
    )
    request_id = f"req-{uuid.uuid4()}"
    event["requestContext"]["requestId"] = request_id
    response = invoke(FUNCTION, event)
    if response.status != 500:  # 500s are checked on their own: test_unexpected_error_is_500_with_the_shape...
        assert response.headers.get("x-request-id") == request_id, response.headers
    if response.status >= 400:
        payload = response.json()
        assert set(payload) == {"error", "request_id"}, payload
        assert set(payload["error"]) == {"code", "message", "details"}, payload
        assert payload["request_id"] == request_id
        assert isinstance(payload["error"]["message"], str)
        assert payload["error"]["message"]
        assert "Traceback" not in response.raw_body.decode()
    return response


def assert_error(response: LambdaResponse, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status == status, (response.status, response.raw_body)
    error: dict[str, Any] = response.json()["error"]
    if code is not None:
        assert error["code"] == code, error
    return error


def mismatch(label: str, response: LambdaResponse, status: int, code: str | None, text: str = "") -> list[str]:
    """What is wrong with an error response, as a line for a collected list (empty when it is right)."""
    if response.status != status:
        return [f"{label}: {response.status} instead of {status}: {response.raw_body[:240]!r}"]
    error = response.json()["error"]
    if code is not None and error["code"] != code:
        return [f"{label}: code {error['code']!r} instead of {code!r}"]
    if text and text not in error["message"]:
        return [f"{label}: message {error['message']!r} does not mention {text!r}"]
    return []


def upload_body(model_bytes: bytes | None = None, **extra: Any) -> dict[str, Any]:
    data = model_bytes if model_bytes is not None else joblib_bytes(linear_regression())
    model = base64.b64encode(data).decode()
    return {"model": model, "parameters": PARAMETERS, **extra}


def table_items(aws: AwsClients) -> list[dict[str, Any]]:
    return aws.dynamodb.scan(TableName=os.environ["REGISTRY_TABLE"], ConsistentRead=True)["Items"]


def bucket_keys(aws: AwsClients) -> list[str]:
    listed = aws.s3.list_objects_v2(Bucket=os.environ["MODELS_BUCKET"])
    return sorted(obj["Key"] for obj in listed.get("Contents", []))


def assert_nothing_written(aws: AwsClients) -> None:
    assert table_items(aws) == []
    assert bucket_keys(aws) == []


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# malicious and broken model bytes --------------------------------------------------------------------------


class Reduces:
    """Pickles as a call of `target(*arguments)`, as an attacker's file would."""

    def __init__(self, target: Any, *arguments: Any) -> None:
        self.target = target
        self.arguments = arguments

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.target, self.arguments


def malicious_payloads(sentinel: Path) -> dict[str, tuple[bytes, str]]:
    """name -> (file bytes, the refused global's name as it must appear in the details)."""
    touch = f"touch {sentinel}"
    return {
        "os.system": (pickle.dumps(Reduces(os.system, touch)), "system"),
        "os.system-joblib": (joblib_bytes(Reduces(os.system, touch)), "system"),
        "os.system-protocol-0": (pickle.dumps(Reduces(os.system, touch), protocol=0), "system"),
        "subprocess.Popen": (pickle.dumps(Reduces(subprocess.Popen, ["touch", str(sentinel)])), "Popen"),
        "builtins.eval": (pickle.dumps(Reduces(builtins.eval, f"__import__('os').system({touch!r})")), "eval"),
        "builtins.exec": (pickle.dumps(Reduces(builtins.exec, f"import os; os.system({touch!r})")), "exec"),
        "os.system-in-list": (pickle.dumps([1, Reduces(os.system, touch)]), "system"),
        "pipeline-function-transformer": (
            joblib_bytes(Pipeline([("f", FunctionTransformer(func=os.system)), ("m", LinearRegression())])),
            "system",
        ),
    }


MALICIOUS = [
    "os.system",
    "os.system-joblib",
    "os.system-protocol-0",
    "subprocess.Popen",
    "builtins.eval",
    "builtins.exec",
    "os.system-in-list",
    "pipeline-function-transformer",
]


@pytest.mark.parametrize("payload", MALICIOUS)
def test_pickle_calling_a_dangerous_global_is_refused_unrun(aws: AwsClients, tmp_path: Path, payload: str) -> None:
    sentinel = tmp_path / "pwned"
    data, refused = malicious_payloads(sentinel)[payload]
    error = assert_error(call("POST", "/models/evil", upload_body(data, version="v1")), 422, "unsafe_model")
    assert refused in json.dumps(error["details"]), error
    assert not sentinel.exists()
    assert_nothing_written(aws)


def test_the_payloads_really_are_dangerous(tmp_path: Path) -> None:
    # Guards the test above: an ordinary unpickler runs the payload (here the harmless touch).
    sentinel = tmp_path / "proof"
    data, _ = malicious_payloads(sentinel)["os.system"]
    pickle.loads(data)
    assert sentinel.exists()


JUNK_MODELS = {
    "text": b"this is not a pickle at all",
    "binary-noise": bytes(range(256)) * 4,
    "truncated-joblib": joblib_bytes(linear_regression())[:60],
    "pickle-header-only": b"\x80\x05",
}


def test_bytes_that_are_no_model_are_422_invalid_model(aws: AwsClients) -> None:
    problems = []
    for label, data in JUNK_MODELS.items():
        response = call("POST", "/models/junk", upload_body(data, version="v1"))
        problems += mismatch(label, response, 422, "invalid_model")
    assert problems == []
    assert_nothing_written(aws)


def test_pickle_of_plain_data_is_422_naming_predict(aws: AwsClients) -> None:
    problems = []
    for obj in ({"coef": [1.0, 2.0], "intercept": 0.5}, [1, 2, 3], "a string", None):
        response = call("POST", "/models/plain", upload_body(pickle.dumps(obj)))
        problems += mismatch(repr(obj), response, 422, "invalid_model", "predict")
    assert problems == []
    assert_nothing_written(aws)


def test_a_fitted_estimator_pickled_without_joblib_is_accepted(aws: AwsClients) -> None:
    # Control for the tests above: the loader refuses what is dangerous, not pickles in general.
    response = call("POST", "/models/plain-pickle", upload_body(pickle.dumps(linear_regression()), version="v1"))
    assert response.status == 200, response.raw_body
    assert len(bucket_keys(aws)) == 1


# malformed bodies ------------------------------------------------------------------------------------------


def test_invalid_base64_is_400(aws: AwsClients) -> None:
    problems = []
    for model in ("not base64!!", "QUJ", "é" * 8, "QUJD\x00"):
        response = call("POST", "/models/b64", {"model": model, "parameters": PARAMETERS})
        problems += mismatch(repr(model), response, 400, "invalid_input", "base64")
    assert problems == []
    assert_nothing_written(aws)


def test_empty_body_is_400(aws: AwsClients) -> None:
    problems = []
    for label, body in (("no body", None), ("empty string", b"")):
        problems += mismatch(label, call("POST", "/models/empty", body), 400, "invalid_input")
    assert problems == []
    assert_nothing_written(aws)


def test_body_that_is_not_json_is_400_invalid_json(aws: AwsClients) -> None:
    problems = []
    for body in (b"{not json", b"model=abc&version=v1", b'{"model": "abc",}'):
        problems += mismatch(repr(body), call("POST", "/models/nj", body), 400, "invalid_json", "JSON")
    assert problems == []
    assert_nothing_written(aws)


def test_body_that_is_not_utf8_is_400(aws: AwsClients) -> None:
    assert_error(call("POST", "/models/nj", b"\xff\xfe\x00garbage"), 400)
    assert_nothing_written(aws)


def test_json_that_is_not_an_object_is_a_client_error(aws: AwsClients) -> None:
    problems = []
    for body in ([{"model": "QUJD"}], "just a string", 42, b"null", b"true"):
        response = call("POST", "/models/arr", body)
        if not 400 <= response.status < 500:
            problems.append(f"{body!r}: {response.status} {response.raw_body[:200]!r}")
    assert problems == []
    assert_nothing_written(aws)


WRONG_TYPES = [
    ("model", {"model": 5, "parameters": PARAMETERS}),
    ("model", {"parameters": PARAMETERS}),
    ("model", {"model": "", "parameters": PARAMETERS}),
    ("model", {"model": None}),
    ("model", {"model": ["QUJD"]}),
    ("parameters", {"model": model_b64(), "parameters": "y,a,b"}),
    ("parameters", {"model": model_b64(), "parameters": ["y"]}),
    ("parameters.feature_labels", {"model": model_b64(), "parameters": {"target_label": "y", "feature_labels": "a,b"}}),
    ("parameters.feature_labels", {"model": model_b64(), "parameters": {"feature_labels": [1, {"x": 2}]}}),
    ("parameters.target_label", {"model": model_b64(), "parameters": {"target_label": ["y"]}}),
    ("parameters.metadata", {"model": model_b64(), "parameters": {"metadata": "fold=3"}}),
    ("version", {"model": model_b64(), "version": 3}),
    ("training_data", {"model": model_b64(), "training_data": "rows"}),
    ("data", {"model": model_b64(), "data": {"a": 1}}),
    ("training_results", {"model": model_b64(), "training_results": [0.1]}),
]


def test_wrong_json_types_are_422_naming_the_field(aws: AwsClients) -> None:
    problems = []
    for field, body in WRONG_TYPES:
        response = call("POST", "/models/types", body)
        label = f"{field} in {json.dumps(body)[:80]}"
        if mismatch(label, response, 422, "validation_error", field):
            problems += mismatch(label, response, 422, "validation_error", field)
            continue
        fields = [detail["field"] for detail in response.json()["error"]["details"]]
        if not any(named == field or named.startswith(field + ".") for named in fields):
            problems.append(f"{label}: details name {fields}")
    assert problems == []
    assert_nothing_written(aws)


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({"training_results": {"mse": float("nan")}}, id="nan-metric"),
        pytest.param({"parameters": {**PARAMETERS, "metadata": {"w": float("inf")}}}, id="inf-metadata"),
        pytest.param({"training_data": [{"a": float("nan")}]}, id="nan-training-data"),
        pytest.param({"data": [[1.0, float("-inf")]]}, id="inf-data"),
    ],
)
def test_nan_or_infinity_is_a_client_error_and_writes_nothing(aws: AwsClients, extra: dict[str, Any]) -> None:
    # Python's json (and so the old clients) writes NaN/Infinity tokens; JSON storage cannot hold them.
    response = call("POST", "/models/nan", upload_body(version="v1", **extra))
    assert 400 <= response.status < 500, (response.status, response.raw_body)
    assert_nothing_written(aws)


def test_oversized_training_results_are_413_and_write_nothing(aws: AwsClients) -> None:
    results = {"scores": [{"iteration": i, "algorithm": "LinearRegression", "mse": 0.1} for i in range(8000)]}
    response = call("POST", "/models/huge", upload_body(version="v1", training_results=results))
    assert_error(response, 413, "too_large")
    assert_nothing_written(aws)


# names and versions ----------------------------------------------------------------------------------------

BAD_MODEL_NAMES = [
    ".hidden",
    "..",
    "-dash",
    "_under",
    "has%20space",
    "has space",
    "a" * 129,
    "b" * 300,
    "caf%C3%A9",
    "café",
    "semi;colon",
    "a%25b",
]
NAME_ROUTES = [
    ("GET", "/models/{}"),
    ("GET", "/models/{}/v1"),
    ("GET", "/models/{}/v1/info"),
    ("GET", "/models/{}/latest/training_data"),
    ("GET", "/models/{}/best"),
    ("DELETE", "/models/{}/v1"),
    ("DELETE", "/models/{}"),
]


def test_bad_model_name_is_400_naming_the_model_name_on_every_route(aws: AwsClients) -> None:
    problems = []
    for name in BAD_MODEL_NAMES:
        label = name[:20]
        problems += mismatch(f"POST {label}", call("POST", f"/models/{name}", upload_body()), 400, None, "model name")
        for method, template in NAME_ROUTES:
            response = call(method, template.format(name))
            problems += mismatch(f"{method} {template.format(label)}", response, 400, None, "model name")
    assert problems == []
    assert_nothing_written(aws)


@pytest.mark.parametrize("encoded", ["a%2Fb", "a%2fb"])
def test_encoded_slash_in_a_model_name_is_400(aws: AwsClients, encoded: str) -> None:
    # The contract: a `/` inside a name (sent percent-encoded) is an invalid model name, on every route.
    problems = []
    problems += mismatch(f"POST /models/{encoded}", call("POST", f"/models/{encoded}", upload_body()), 400, None,
                         "model name")  # fmt: skip
    for method, template in NAME_ROUTES:
        response = call(method, template.format(encoded))
        problems += mismatch(f"{method} {template.format(encoded)}", response, 400, None, "model name")
    assert problems == []
    assert_nothing_written(aws)


def test_encoded_slash_does_not_reach_another_models_version(aws: AwsClients) -> None:
    # `a%2Fb` names one (invalid) model; it must never be read as model `a`, version `b`.
    assert call("POST", "/models/a", upload_body(version="b")).status == 200
    before = (table_items(aws), bucket_keys(aws))
    read = call("GET", "/models/a%2Fb")
    deleted = call("DELETE", "/models/a%2Fb")
    assert (read.status, deleted.status) == (400, 400), (read.raw_body, deleted.raw_body)
    assert (table_items(aws), bucket_keys(aws)) == before


BAD_VERSIONS = ["a/b", ".hidden", "..", "has space", "v" * 129, "v1\n", "ver%sion", "-x", "_x", "café"]


def test_bad_version_on_upload_is_400_naming_the_version(aws: AwsClients) -> None:
    problems = []
    for version in BAD_VERSIONS:
        response = call("POST", "/models/good-name", upload_body(version=version))
        problems += mismatch(repr(version[:20]), response, 400, "invalid_input", "version")
        if response.status == 400 and "model name" in response.json()["error"]["message"]:
            problems.append(f"{version!r}: blames the model name")
    assert problems == []
    assert_nothing_written(aws)


def test_bad_version_on_reads_and_deletes_is_400(aws: AwsClients) -> None:
    assert call("POST", "/models/m", upload_body(version="v1")).status == 200
    before = (table_items(aws), bucket_keys(aws))
    problems = []
    for version in (".hidden", "has%20space", "v" * 129, "-x", "ver%25sion"):
        for method, template in [
            ("GET", "/models/m/{}"),
            ("GET", "/models/m/{}/info"),
            ("GET", "/models/m/{}/training_data"),
            ("DELETE", "/models/m/{}"),
        ]:
            response = call(method, template.format(version))
            label = f"{method} {template.format(version[:20])}"
            problems += mismatch(label, response, 400, "invalid_input", "version")
            if response.status == 400 and "model name" in response.json()["error"]["message"]:
                problems.append(f"{label}: blames the model name")
    assert problems == []
    assert (table_items(aws), bucket_keys(aws)) == before


@pytest.mark.parametrize("version", ["latest", "best"])
def test_reserved_version_on_upload_is_400(aws: AwsClients, version: str) -> None:
    error = assert_error(call("POST", "/models/reserved", upload_body(version=version)), 400, "invalid_input")
    assert "reserved" in error["message"]
    assert version in error["message"]
    assert_nothing_written(aws)
    # Also when the model already exists: nothing changes.
    assert call("POST", "/models/reserved", upload_body(version="v1")).status == 200
    before = (table_items(aws), bucket_keys(aws))
    assert_error(call("POST", "/models/reserved", upload_body(version=version)), 400, "invalid_input")
    assert (table_items(aws), bucket_keys(aws)) == before


# unknown models and versions -------------------------------------------------------------------------------

READ_AND_DELETE_ROUTES = [
    ("GET", "/models/{m}", None),
    ("GET", "/models/{m}/{v}", None),
    ("GET", "/models/{m}/{v}", {"format": "url"}),
    ("GET", "/models/{m}/latest", None),
    ("GET", "/models/{m}/{v}/info", None),
    ("GET", "/models/{m}/latest/info", None),
    ("GET", "/models/{m}/{v}/training_data", None),
    ("GET", "/models/{m}/latest/training_data", None),
    ("GET", "/models/{m}/best", None),
    ("DELETE", "/models/{m}/{v}", None),
    ("DELETE", "/models/{m}/latest", None),
    ("DELETE", "/models/{m}", None),
]


def test_unknown_model_is_404_on_every_read_and_delete(aws: AwsClients) -> None:
    assert call("POST", "/models/known", upload_body(version="v1", training_results={"mse": 1.0})).status == 200
    before = (table_items(aws), bucket_keys(aws))
    problems = []
    for method, template, query in READ_AND_DELETE_ROUTES:
        path = template.format(m="unknown", v="v1")
        problems += mismatch(f"{method} {path} {query or ''}", call(method, path, query=query), 404, "not_found",
                             "unknown")  # fmt: skip
    assert problems == []
    assert (table_items(aws), bucket_keys(aws)) == before


def test_unknown_version_is_404_and_deletes_nothing(aws: AwsClients) -> None:
    assert call("POST", "/models/known", upload_body(version="v1")).status == 200
    before = (table_items(aws), bucket_keys(aws))
    problems = []
    for method, template, query in READ_AND_DELETE_ROUTES:
        if "{v}" not in template:
            continue
        for version in ("v9", "V1"):
            path = template.format(m="known", v=version)
            problems += mismatch(f"{method} {path} {query or ''}", call(method, path, query=query), 404, "not_found",
                                 version)  # fmt: skip
    assert problems == []
    assert (table_items(aws), bucket_keys(aws)) == before


def test_unknown_route_and_method_keep_the_error_shape(aws: AwsClients) -> None:
    assert_error(call("GET", "/nothing/here"), 404, "not_found")
    assert_error(call("PUT", "/models/x"), 405, "method_not_allowed")
    assert_error(call("PATCH", "/models/x/v1"), 405, "method_not_allowed")


# AWS unavailable -------------------------------------------------------------------------------------------


@pytest.fixture
def unreachable_aws(aws: AwsClients, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    reset_cached_wiring()
    yield
    reset_cached_wiring()


def test_unreachable_aws_is_503_with_retry_after(unreachable_aws: None) -> None:
    problems = []
    for method, path in [
        ("GET", "/models"),
        ("GET", "/models/m"),
        ("GET", "/models/m/v1"),
        ("GET", "/models/m/latest/info"),
        ("GET", "/models/m/v1/training_data"),
        ("GET", "/models/m/best"),
        ("POST", "/models/m"),
        ("DELETE", "/models/m/v1"),
        ("DELETE", "/models/m"),
    ]:
        response = call(method, path, upload_body() if method == "POST" else None)
        problems += mismatch(f"{method} {path}", response, 503, "service_unavailable", "reached")
        if response.status == 503 and not int(response.headers.get("retry-after", "0")) >= 1:
            problems.append(f"{method} {path}: no Retry-After")
    assert problems == []


def test_health_answers_even_when_aws_is_unreachable(unreachable_aws: None) -> None:
    assert call("GET", "/health").status == 200


@pytest.fixture
def service(aws: AwsClients) -> RegistryService:
    return get_registry_service()


@pytest.mark.parametrize("code", ["ThrottlingException", "ProvisionedThroughputExceededException"])
def test_throttled_dynamodb_query_is_503(service: RegistryService, code: str) -> None:
    with Stubber(service._table._dynamodb) as stubber:
        stubber.add_client_error("query", service_error_code=code, http_status_code=400)
        response = call("GET", "/models")
        stubber.assert_no_pending_responses()
    error = assert_error(response, 503, "service_unavailable")
    assert code in error["message"]
    assert int(response.headers["retry-after"]) >= 1


@pytest.mark.parametrize("code", ["ThrottlingException", "ProvisionedThroughputExceededException"])
def test_throttled_dynamodb_read_is_503(service: RegistryService, code: str) -> None:
    assert call("POST", "/models/m", upload_body(version="v1")).status == 200
    with Stubber(service._table._dynamodb) as stubber:
        stubber.add_client_error("get_item", service_error_code=code, http_status_code=400)
        response = call("GET", "/models/m/v1/info")
        stubber.assert_no_pending_responses()
    assert_error(response, 503, "service_unavailable")
    assert "retry-after" in response.headers
    # The stubbed failure was transient: the same request works again.
    assert call("GET", "/models/m/v1/info").status == 200


def test_throttled_s3_upload_is_503_and_writes_nothing(service: RegistryService, aws: AwsClients) -> None:
    with Stubber(service._artifacts._s3) as stubber:
        stubber.add_client_error("put_object", service_error_code="SlowDown", http_status_code=503)
        response = call("POST", "/models/m", upload_body(version="v1"))
        stubber.assert_no_pending_responses()
    assert_error(response, 503, "service_unavailable")
    assert "retry-after" in response.headers
    assert_nothing_written(aws)


def test_throttled_s3_download_is_503(service: RegistryService) -> None:
    assert call("POST", "/models/m", upload_body(version="v1")).status == 200
    with Stubber(service._artifacts._s3) as stubber:
        stubber.add_client_error("get_object", service_error_code="SlowDown", http_status_code=503)
        response = call("GET", "/models/m/v1")
        stubber.assert_no_pending_responses()
    assert_error(response, 503, "service_unavailable")


def transaction_error(code: str, reasons: list[str] | None = None) -> ClientError:
    response: dict[str, Any] = {"Error": {"Code": code, "Message": "stubbed"}, "ResponseMetadata": {}}
    if reasons is not None:
        response["CancellationReasons"] = [{"Code": reason} for reason in reasons]
    return ClientError(response, "TransactWriteItems")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(transaction_error("ProvisionedThroughputExceededException"), id="throughput"),
        pytest.param(transaction_error("ThrottlingException"), id="throttling"),
        pytest.param(transaction_error("TransactionCanceledException", ["ThrottlingError", "None"]), id="cancelled"),
    ],
)
def test_throttled_transaction_on_new_upload_is_503_and_writes_nothing(
    service: RegistryService, aws: AwsClients, monkeypatch: pytest.MonkeyPatch, failure: ClientError
) -> None:
    def fail(**_: Any) -> None:
        raise failure

    with monkeypatch.context() as patch:
        patch.setattr(service._table._dynamodb, "transact_write_items", fail)
        response = call("POST", "/models/m", upload_body(training_data=[{"a": 1}]))
    assert_error(response, 503, "service_unavailable")
    assert "retry-after" in response.headers
    assert_nothing_written(aws)


def test_unexpected_error_is_500_with_the_shape_and_no_traceback(
    service: RegistryService, aws: AwsClients, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*_: Any, **__: Any) -> None:
        raise RuntimeError("secret internals /srv/app.py line 12")

    with monkeypatch.context() as patch:
        patch.setattr(service._table, "save_version", explode)
        response = call("POST", "/models/m", upload_body(version="v1"))
    error = assert_error(response, 500, "internal_error")
    assert "secret internals" not in response.raw_body.decode()
    assert error["details"] is None
    assert_nothing_written(aws)


def test_unexpected_error_carries_the_request_id_header(
    service: RegistryService, aws: AwsClients, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The contract: every 4xx/5xx answers x-request-id, the 500 of an unexpected exception included.
    def explode(*_: Any, **__: Any) -> None:
        raise RuntimeError("boom")

    with monkeypatch.context() as patch:
        patch.setattr(service._table, "list_summaries", explode)
        event = rest_v1_event("GET", "/models")
        event["requestContext"]["requestId"] = "req-500-header"
        response = invoke(FUNCTION, event)
    assert response.status == 500
    assert response.json()["request_id"] == "req-500-header"
    assert response.headers.get("x-request-id") == "req-500-header", response.headers


# a failed save leaves the old version whole ----------------------------------------------------------------


@pytest.fixture
def saved_v1(service: RegistryService, aws: AwsClients) -> dict[str, Any]:
    original = joblib_bytes(linear_regression(1))
    rows = [{"a": 1, "y": 2}]
    response = call("POST", "/models/m", upload_body(original, version="v1", training_data=rows))
    assert response.status == 200, response.raw_body
    return {
        "bytes": original,
        "rows": rows,
        "sha256": response.json()["sha256"],
        "info": call("GET", "/models/m/v1/info").json(),
        "keys": bucket_keys(aws),
        "items": table_items(aws),
    }


def assert_v1_intact(aws: AwsClients, saved: dict[str, Any]) -> None:
    download = call("GET", "/models/m/v1")
    assert download.status == 200, download.raw_body
    assert base64.b64decode(download.json()["model"]) == saved["bytes"]
    assert call("GET", "/models/m/v1/info").json() == saved["info"]
    assert call("GET", "/models/m/v1/training_data").json()["training_data"] == saved["rows"]
    assert bucket_keys(aws) == saved["keys"]
    assert table_items(aws) == saved["items"]


def test_failed_overwrite_keeps_the_old_version(
    service: RegistryService, aws: AwsClients, monkeypatch: pytest.MonkeyPatch, saved_v1: dict[str, Any]
) -> None:
    def unavailable(*_: Any, **__: Any) -> None:
        raise ServiceUnavailable("DynamoDB is busy (test).")

    replacement = joblib_bytes(linear_regression(2))
    with monkeypatch.context() as patch:
        patch.setattr(service._table, "save_version", unavailable)
        response = call("POST", "/models/m", upload_body(replacement, version="v1", training_data=[{"new": 1}]))
    assert_error(response, 503, "service_unavailable")
    assert "retry-after" in response.headers
    assert_v1_intact(aws, saved_v1)


def test_throttled_transaction_on_overwrite_keeps_the_old_version(
    service: RegistryService, aws: AwsClients, monkeypatch: pytest.MonkeyPatch, saved_v1: dict[str, Any]
) -> None:
    def throttled(**_: Any) -> None:
        raise transaction_error("TransactionCanceledException", ["None", "ProvisionedThroughputExceeded"])

    with monkeypatch.context() as patch:
        patch.setattr(service._table._dynamodb, "transact_write_items", throttled)
        response = call("POST", "/models/m", upload_body(joblib_bytes(linear_regression(3)), version="v1"))
    assert_error(response, 503, "service_unavailable")
    assert_v1_intact(aws, saved_v1)


def test_overwrite_that_keeps_losing_races_is_503_and_keeps_the_old_version(
    aws: AwsClients, monkeypatch: pytest.MonkeyPatch, saved_v1: dict[str, Any]
) -> None:
    monkeypatch.setenv("REGISTRY_WRITE_ATTEMPTS", "2")
    reset_cached_wiring()
    service = get_registry_service()

    def conflict(**_: Any) -> None:
        raise transaction_error("TransactionCanceledException", ["ConditionalCheckFailed", "None"])

    with monkeypatch.context() as patch:
        patch.setattr(service._table._dynamodb, "transact_write_items", conflict)
        response = call("POST", "/models/m", upload_body(joblib_bytes(linear_regression(4)), version="v1"))
    assert_error(response, 503, "service_unavailable")
    assert_v1_intact(aws, saved_v1)


def test_failed_delete_keeps_the_version(
    service: RegistryService, aws: AwsClients, monkeypatch: pytest.MonkeyPatch, saved_v1: dict[str, Any]
) -> None:
    def throttled(**_: Any) -> None:
        raise transaction_error("ThrottlingException")

    with monkeypatch.context() as patch:
        patch.setattr(service._table._dynamodb, "transact_write_items", throttled)
        assert_error(call("DELETE", "/models/m/v1"), 503, "service_unavailable")
        assert_error(call("DELETE", "/models/m"), 503, "service_unavailable")
    assert_v1_intact(aws, saved_v1)


def test_rejected_overwrite_keeps_the_old_version(aws: AwsClients, tmp_path: Path, saved_v1: dict[str, Any]) -> None:
    sentinel = tmp_path / "pwned"
    data, _ = malicious_payloads(sentinel)["os.system"]
    assert_error(call("POST", "/models/m", upload_body(data, version="v1")), 422, "unsafe_model")
    assert_error(call("POST", "/models/m", {"model": "%%%", "version": "v1"}), 400)
    assert_error(call("POST", "/models/m", upload_body(pickle.dumps({"a": 1}), version="v1")), 422)
    assert not sentinel.exists()
    assert_v1_intact(aws, saved_v1)


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deeply_nested_json_is_a_client_error_on_every_function(aws: AwsClients, depth: int) -> None:
    body = b'{"data": ' + b"[" * depth + b"]" * depth + b"}"
    for function, path in (
        ("RegistryFunction", "/models/deep"),
        ("TrainerFunction", "/train/deep"),
        ("PredictFunction", "/predict/model/deep"),
        ("CacheFunction", "/cache/deep"),
    ):
        method = "PUT" if function == "CacheFunction" else "POST"
        response = invoke(function, rest_v1_event(method, path, body=body))
        assert 400 <= response.status < 500, (function, depth, response.status, response.raw_body[:300])
        assert set(response.json()) == {"error", "request_id"}
    assert_nothing_written(aws)


def test_huge_numbers_are_client_errors_not_crashes(aws: AwsClients) -> None:
    for body in (b'{"model": 1' + b"0" * 5000 + b"}", b'{"model": 1e999999}', b'{"model": -1e400}'):
        response = call("POST", "/models/huge", body)
        assert 400 <= response.status < 500, (body[:40], response.status, response.raw_body[:300])
    assert_nothing_written(aws)
