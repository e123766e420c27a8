"""The client's retries, backoff and error type, against httpx.MockTransport (the one fake: a real server
cannot be made to answer 429 and 503 on cue). The waits are recorded, not slept."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import numpy as np
import pytest

from lrnstak.client import Client, LrnstakError
from lrnstak.client.transport import Transport, encode_json, parse_retry_after

ERROR_BODY = {"error": {"code": "service_unavailable", "message": "busy", "details": None}, "request_id": "r-1"}


class Script:
    """Answers requests in order from a list of responses (or exceptions to raise), recording each request."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers: Iterator[httpx.Response | Exception] = iter(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = next(self.answers)
        if isinstance(answer, Exception):
            raise answer
        return answer


def transport(script: Script, sleeps: list[float], jitter: float = 1.0, attempts: int = 5) -> Transport:
    http = httpx.Client(base_url="http://lrnstak.test", transport=httpx.MockTransport(script))
    return Transport(http, attempts=attempts, sleep=sleeps.append, jitter=lambda: jitter)


def busy(status: int = 503, retry_after: str | None = None) -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return httpx.Response(status, json=ERROR_BODY, headers=headers)


def ok(body: object = None) -> httpx.Response:
    return httpx.Response(200, json=body if body is not None else {"message": "OK"})


def test_503_is_retried_after_the_seconds_retry_after_asks_for() -> None:
    sleeps: list[float] = []
    script = Script(busy(503, "2"), busy(503, "1"), ok({"done": True}))
    answer = transport(script, sleeps, jitter=0.0).request("GET", "/models", idempotent=True)
    assert answer.json() == {"done": True}
    assert sleeps == [2.0, 1.0]
    assert len(script.requests) == 3


def test_retry_after_gets_jitter_on_top_and_a_cap() -> None:
    sleeps: list[float] = []
    script = Script(busy(429, "3"), busy(429, "3600"), ok())
    transport(script, sleeps, jitter=0.5).request("GET", "/models", idempotent=True)
    assert sleeps == [3.0 + 0.25, 60.0 + 0.25]


def test_retry_after_as_an_http_date() -> None:
    when = datetime.now(UTC) + timedelta(seconds=30)
    waited = parse_retry_after(format_datetime(when, usegmt=True))
    assert waited is not None
    assert 25 <= waited <= 30
    assert parse_retry_after(format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True)) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_429_without_retry_after_backs_off_exponentially_then_gives_up_with_the_error() -> None:
    sleeps: list[float] = []
    script = Script(*[busy(429) for _ in range(5)])
    with pytest.raises(LrnstakError) as raised:
        transport(script, sleeps, jitter=1.0).request("GET", "/models", idempotent=True)
    assert sleeps == [0.5, 1.0, 2.0, 4.0]  # bounded: 5 attempts, 4 waits
    assert len(script.requests) == 5
    assert raised.value.status_code == 429
    assert raised.value.body == ERROR_BODY


def test_backoff_is_capped_and_jittered() -> None:
    sleeps: list[float] = []
    script = Script(*[busy(503) for _ in range(7)])
    with pytest.raises(LrnstakError):
        transport(script, sleeps, jitter=1.0, attempts=7).request("GET", "/x", idempotent=True)
    assert sleeps == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    half: list[float] = []
    with pytest.raises(LrnstakError):
        transport(Script(busy(), busy()), half, jitter=0.5, attempts=2).request("GET", "/x", idempotent=True)
    assert half == [0.25]  # full jitter: a random fraction of the exponential step


def test_status_503_retries_writes_too() -> None:
    # 503 says nothing was written (or all of it was, when the same version is written again).
    sleeps: list[float] = []
    script = Script(busy(503, "0"), ok())
    transport(script, sleeps, jitter=0.0).request("PUT", "/cache/push/k", idempotent=False, json_body={"value": 1})
    assert len(script.requests) == 2


@pytest.mark.parametrize("status", [400, 404, 409, 413, 422, 500, 502])
def test_other_errors_are_not_retried(status: int) -> None:
    sleeps: list[float] = []
    body = {"error": {"code": "some_code", "message": "what to fix", "details": {"field": "x"}}, "request_id": "abc"}
    script = Script(httpx.Response(status, json=body))
    with pytest.raises(LrnstakError) as raised:
        transport(script, sleeps).request("GET", "/x", idempotent=True)
    assert sleeps == []
    error = raised.value
    assert (error.status_code, error.code, error.message, error.details) == (
        status,
        "some_code",
        "what to fix",
        {"field": "x"},
    )
    assert (error.request_id, error.body) == ("abc", body)
    assert str(error) == f"{status} some_code: what to fix"


def test_an_answer_not_in_the_error_shape_is_still_one_error() -> None:
    script = Script(httpx.Response(502, text="<html>Bad Gateway</html>\n<p>nginx</p>"))
    with pytest.raises(LrnstakError) as raised:
        transport(script, []).request("GET", "/x", idempotent=True)
    assert (raised.value.status_code, raised.value.code) == (502, "http_502")
    assert raised.value.message == "<html>Bad Gateway</html>"
    gateway = Script(httpx.Response(403, json={"message": "Forbidden"}))  # API Gateway's own body
    with pytest.raises(LrnstakError) as forbidden:
        transport(gateway, []).request("GET", "/x", idempotent=True)
    assert (forbidden.value.status_code, forbidden.value.message) == (403, "Forbidden")


def refused() -> httpx.ConnectError:
    return httpx.ConnectError("[Errno 111] Connection refused")


def test_connection_errors_are_retried_for_idempotent_requests() -> None:
    sleeps: list[float] = []
    script = Script(refused(), httpx.ReadTimeout("timed out"), ok({"fine": 1}))
    assert transport(script, sleeps).request("GET", "/x", idempotent=True).json() == {"fine": 1}
    assert sleeps == [0.5, 1.0]


def test_connection_errors_end_a_request_that_is_not_idempotent() -> None:
    sleeps: list[float] = []
    script = Script(httpx.ReadTimeout("timed out"), ok())
    with pytest.raises(LrnstakError) as raised:
        transport(script, sleeps).request("GET", "/cache/pop/k", idempotent=False)
    assert sleeps == []
    assert len(script.requests) == 1
    assert (raised.value.status_code, raised.value.code) == (None, "timeout")


def test_connection_errors_give_up_after_the_last_attempt() -> None:
    sleeps: list[float] = []
    with pytest.raises(LrnstakError) as raised:
        transport(Script(*[refused() for _ in range(5)]), sleeps).request("GET", "/x", idempotent=True)
    assert len(sleeps) == 4
    assert raised.value.code == "connection_error"
    assert raised.value.message.startswith("http://lrnstak.test: could not connect")


def mock_client(script: Script, sleeps: list[float], **options: object) -> Client:
    return Client(transport=httpx.MockTransport(script), sleep=sleeps.append, **options)  # type: ignore[arg-type]


def test_client_retries_train_with_the_same_idempotency_key() -> None:
    answer = {
        "message": "Model m_v1 trained and saved.",
        "model": "m",
        "version": "v1",
        "algorithm": "ridge",
        "training_results": {},
    }
    script = Script(refused(), busy(503, "0"), httpx.Response(200, json=answer))
    sleeps: list[float] = []
    with mock_client(script, sleeps, url="http://lrnstak.test") as client:
        result = client.train("m", [{"x": 1, "y": 2}], target="y")
    assert (result.version, result.algorithm, result.job_id) == ("v1", "ridge", None)
    keys = {request.headers["Idempotency-Key"] for request in script.requests}
    assert len(script.requests) == 3
    assert len(keys) == 1  # a retry can only get the first answer, never train a second version


def test_client_does_not_repeat_a_push_whose_answer_was_lost() -> None:
    script = Script(httpx.ReadError("connection reset"), ok())
    with mock_client(script, [], url="http://lrnstak.test") as client, pytest.raises(LrnstakError):
        client.cache.push("k", 1)
    assert len(script.requests) == 1


def test_client_defaults_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    script = Script(ok([]), ok([]), ok([]))
    monkeypatch.delenv("LRNSTAK_API_URL", raising=False)
    monkeypatch.delenv("LRNSTAK_API_KEY", raising=False)
    with mock_client(script, []) as client:
        client.models()
    assert str(script.requests[0].url).startswith("http://127.0.0.1:5000/models")
    assert "x-api-key" not in script.requests[0].headers
    monkeypatch.setenv("LRNSTAK_API_URL", "https://api.example.com/prod/")
    monkeypatch.setenv("LRNSTAK_API_KEY", "from-env")
    with mock_client(script, []) as client:
        client.models()
    assert str(script.requests[1].url).startswith("https://api.example.com/prod/models")
    assert script.requests[1].headers["x-api-key"] == "from-env"
    with mock_client(script, [], url="http://other:8000", api_key="given") as client:
        client.models()
    assert script.requests[2].headers["x-api-key"] == "given"


def test_client_path_segments_are_quoted() -> None:
    script = Script(ok({"value": 1}))
    with mock_client(script, [], url="http://lrnstak.test") as client:
        client.cache.delete("a b:c")
    assert script.requests[0].url.raw_path == b"/cache/a%20b%3Ac"


def test_json_encoding_takes_numpy_and_sends_nan_as_null() -> None:
    row = {"a": np.float64(1.5), "b": np.int64(2), "c": float("nan"), "d": np.array([1.0, np.nan]), "e": True}
    assert json.loads(encode_json([row])) == [{"a": 1.5, "b": 2, "c": None, "d": [1.0, None], "e": True}]
    with pytest.raises(LrnstakError) as infinite:
        encode_json({"x": float("inf")})
    assert infinite.value.code == "invalid_input"


def test_a_failed_job_raises_with_its_reason() -> None:
    job = {
        "job_id": "j1",
        "model": "m",
        "version": None,
        "progress": 0.0,
        "created_at": "t",
        "started_at": None,
        "finished_at": None,
    }
    failed = {**job, "status": "failed", "error": {"code": "worker_lost", "message": "the worker died"}}
    script = Script(ok({**job, "status": "queued"}), ok({**job, "status": "running"}), ok(failed))
    sleeps: list[float] = []
    seen: list[str] = []
    with mock_client(script, sleeps, url="http://lrnstak.test") as client, pytest.raises(LrnstakError) as raised:
        client.jobs.wait("j1", on_progress=lambda current: seen.append(current.status))
    assert seen == ["queued", "running", "failed"]
    assert sleeps == [0.25, 0.375]
    assert (raised.value.code, raised.value.status_code) == ("worker_lost", None)
    assert "the worker died" in raised.value.message
