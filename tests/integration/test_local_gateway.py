"""The local gateway's write guard: requests that change state wait for (and hold back) the state snapshot,
then ring the queue workers' doorbell; those that only read, a prediction included, do neither."""

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import httpx
import pytest
from conftest import reset_cached_wiring

from lrnstak.local.gateway import LocalGateway
from lrnstak.local.template import Template
from lrnstak.storage.clients import AwsClients


def run_to_completion[T](coroutine: Coroutine[Any, Any, T]) -> T:
    """On a loop of its own. Not asyncio.run: it leaves the main thread without a current event loop,
    and Mangum (the Lambda handlers later tests call) asks for one."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


@pytest.mark.parametrize(
    ("method", "path", "guarded"),
    [
        ("POST", "/predict/model/iris", False),
        ("POST", "/predict/model/iris/batch", True),
        ("GET", "/cache/pop/queue", True),
        ("GET", "/models", False),
        ("PUT", "/cache/key", True),
        ("DELETE", "/models/iris", True),
    ],
)
def test_only_requests_that_change_state_are_guarded(aws: AwsClients, method: str, path: str, guarded: bool) -> None:
    seen: list[str] = []
    rung: list[str] = []

    async def guard(write: Callable[[], Awaitable[None]]) -> None:
        seen.append(path)
        await write()

    async def call() -> int:
        gateway = LocalGateway.from_template(Template.load(), guard=guard, after_write=lambda: rung.append(path))
        transport = httpx.ASGITransport(app=gateway)
        async with httpx.AsyncClient(transport=transport, base_url="http://local") as client:
            response = await client.request(method, path, json={"data": []} if method != "GET" else None)
        return response.status_code

    status = run_to_completion(call())
    assert status < 500
    assert seen == ([path] if guarded else [])
    assert rung == seen


def gateway_call(method: str, path: str, headers: dict[str, str], api_key: str = "") -> httpx.Response:
    async def call() -> httpx.Response:
        gateway = LocalGateway.from_template(Template.load(), api_key=api_key)
        transport = httpx.ASGITransport(app=gateway)
        async with httpx.AsyncClient(transport=transport, base_url="http://local") as client:
            return await client.request(method, path, headers=headers)

    return run_to_completion(call())


def test_with_a_key_configured_only_requests_carrying_it_are_served(aws: AwsClients) -> None:
    refused = gateway_call("GET", "/models", {}, api_key="k-123")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    assert refused.json()["request_id"] == refused.headers["x-request-id"]
    assert gateway_call("GET", "/models", {"x-api-key": "k-124"}, api_key="k-123").status_code == 403
    assert gateway_call("GET", "/models", {"x-api-key": "k-123"}, api_key="k-123").status_code == 200
    assert gateway_call("GET", "/models", {}).status_code == 200  # no key configured: open


@pytest.mark.parametrize(("origin", "allowed"), [("https://app.example.com", True), ("https://evil.example", False)])
def test_cors_answers_preflights_without_a_key_and_echoes_only_allowed_origins(
    aws: AwsClients, monkeypatch: pytest.MonkeyPatch, origin: str, allowed: bool
) -> None:
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", "https://app.example.com,http://localhost:3000")
    reset_cached_wiring()
    preflight = {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-api-key",
    }
    answer = gateway_call("OPTIONS", "/predict/model/iris", preflight, api_key="k")
    assert answer.status_code == (200 if allowed else 400)
    assert (answer.headers.get("access-control-allow-origin") == origin) is allowed
    served = gateway_call("GET", "/models", {"Origin": origin, "x-api-key": "k"}, api_key="k")
    assert served.status_code == 200
    assert (served.headers.get("access-control-allow-origin") == origin) is allowed
    if allowed:
        assert "x-request-id" in served.headers["access-control-expose-headers"].lower()


def test_without_cors_origins_no_cors_headers_are_sent(aws: AwsClients) -> None:
    served = gateway_call("GET", "/models", {"Origin": "https://app.example.com"})
    assert "access-control-allow-origin" not in served.headers
