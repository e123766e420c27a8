"""An ASGI stand-in for API Gateway: the template's routes, each to its function's app, on one port; with
LRNSTAK_API_KEY set, every request but a CORS preflight and the routes whose template event opens them (the
registry page, GET /) needs it in x-api-key, as the deployed API does. After each write it calls
`after_write`: the queue workers' doorbell, as a write may have queued a job."""

import hmac
import importlib.util
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from lrnstak.http import path_keeping_encoded_slashes
from lrnstak.local.template import Route, Template
from lrnstak.observability import metrics

MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Reads that change state (the old stack's pop is a GET); the snapshot must treat them as writes.
WRITING_READS = frozenset({("GET", "/cache/pop/{key}")})
# POSTs that only read (a prediction): they must not wait for, or hold back, a snapshot.
READING_WRITES = frozenset({("POST", "/predict/model/{name}")})


@dataclass(frozen=True)
class CompiledRoute:
    route: Route
    pattern: re.Pattern[str]
    # API Gateway prefers a literal segment to a {parameter} at the same place: sort on this.
    specificity: tuple[int, ...]


def compile_route(route: Route) -> CompiledRoute:
    segments = [segment for segment in route.path.split("/") if segment]
    regex = ""
    for segment in segments:
        if segment.endswith("+}"):
            regex += "/.+"
        elif segment.startswith("{"):
            regex += "/[^/]+"
        else:
            regex += "/" + re.escape(segment)
    specificity = tuple(1 if segment.startswith("{") else 0 for segment in segments)
    return CompiledRoute(route, re.compile(f"^{regex or '/'}$"), specificity)


def load_function_module(template: Template, function: str) -> ModuleType:
    """Imports functions/<name>/app.py under a unique module name (each function's module is `app`)."""
    path = template.function_dir(function) / "app.py"
    spec = importlib.util.spec_from_file_location(f"lrnstak_function_{function}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class LocalGateway:
    """Routes like API Gateway; `guard` wraps writes so the state snapshot never sees half of one."""

    def __init__(
        self,
        routes: list[Route],
        apps: dict[str, ASGIApp],
        guard: Callable[[Callable[[], Awaitable[None]]], Awaitable[None]] | None = None,
        on_startup: Callable[[], Awaitable[None]] | None = None,
        on_shutdown: Callable[[], Awaitable[None]] | None = None,
        api_key: str = "",
        after_write: Callable[[], None] | None = None,
    ) -> None:
        self._routes = sorted((compile_route(r) for r in routes), key=lambda c: c.specificity)
        self._api_key = api_key.encode()
        self._apps = apps
        self._guard = guard
        self._on_startup = on_startup
        self._on_shutdown = on_shutdown
        self._after_write = after_write

    @classmethod
    def from_template(cls, template: Template, **kwargs: Any) -> "LocalGateway":
        apps = {name: load_function_module(template, name).app for name in template.http_functions()}
        return cls(template.routes(), apps, **kwargs)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method, path = scope["method"], path_keeping_encoded_slashes(scope)
        matches = [c for c in self._routes if c.pattern.match(path)]
        if method == "OPTIONS" and matches and _header(scope, b"access-control-request-method") is not None:
            # A CORS preflight, answered without a key as API Gateway's mock does (the app's CORS
            # middleware answers it when CORS_ALLOWED_ORIGINS allows the origin).
            await self._apps[matches[0].route.function](scope, receive, send)
            return
        chosen = next((c for c in matches if c.route.method in (method, "ANY")), None)
        key_required = chosen is None or chosen.route.api_key_required
        if self._api_key and key_required and not self._has_key(scope):
            await _send_error(send, 403, "forbidden", "Send a valid API key in the x-api-key header.")
            return
        if chosen is None:
            status, code = (405, "method_not_allowed") if matches else (404, "not_found")
            await _send_error(send, status, code, f"No route {method} {path}.")
            return
        app = self._apps[chosen.route.function]
        route = (method, chosen.route.path)
        writes = (method in MUTATING_METHODS and route not in READING_WRITES) or route in WRITING_READS
        try:
            if self._guard is not None and writes:
                await self._guard(lambda: app(scope, receive, send))
            else:
                await app(scope, receive, send)
        finally:
            # In Lambda, publish_metrics flushes each invocation's metrics to CloudWatch; there is no
            # CloudWatch here, so they are dropped per request instead of piling up in this process.
            metrics.clear_metrics()
            if writes and self._after_write is not None:
                self._after_write()  # a write may have queued a job

    def _has_key(self, scope: Scope) -> bool:
        return hmac.compare_digest(_header(scope, b"x-api-key") or b"", self._api_key)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self._on_startup is not None:
                    await self._on_startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._on_shutdown is not None:
                    await self._on_shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _header(scope: Scope, name: bytes) -> bytes | None:
    return next((value for key, value in scope["headers"] if key.lower() == name), None)


async def _send_error(send: Send, status: int, code: str, message: str) -> None:
    """The gateway's own refusals, in the one error shape (as the deployed API's gateway responses are)."""
    request_id = uuid.uuid4().hex
    body = json.dumps({"error": {"code": code, "message": message, "details": None}, "request_id": request_id}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id.encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
