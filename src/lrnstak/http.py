"""The HTTP shell shared by the four functions: app factory, one error shape, request ids, Lambda wrapping.

Every error leaves as `{"error": {"code", "message", "details"}, "request_id"}`; this module is the only
place that turns exceptions into status codes.
"""

import asyncio
import json
import math
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast
from urllib.parse import unquote

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lrnstak import __version__, json_codec
from lrnstak.errors import LrnstakError, ServiceUnavailable
from lrnstak.observability import logger, publish_metrics, tracer
from lrnstak.settings import get_settings

# What a browser may send and read across origins (when CORS_ALLOWED_ORIGINS allows its origin).
CORS_REQUEST_HEADERS = ("Content-Type", "Accept", "X-Api-Key", "Authorization", "Idempotency-Key", "Prefer")
CORS_EXPOSED_HEADERS = ("Location", "X-Request-Id", "X-Model-Version", "X-Next-Token", "Retry-After")
# The path prefix (stage, base path) the client's URL had in front of the route; set by strip_path_prefix.
PUBLIC_PREFIX_KEY = "lrnstak.public_prefix"
LambdaEvent = dict[str, Any]
LambdaHandler = Callable[[LambdaEvent, LambdaContext], dict[str, Any]]

REQUEST_ID_HEADER = "x-request-id"
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def error_body(code: str, message: str, details: Any, request_id: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}, "request_id": request_id}


def request_id_of(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


def error_response(request: Request, status: int, code: str, message: str, details: Any = None) -> JSONResponse:
    headers = {"Retry-After": "1"} if status == 503 else None
    return JSONResponse(error_body(code, message, details, request_id_of(request)), status_code=status, headers=headers)


class FastJSONResponse(JSONResponse):
    """A JSON answer encoded through lrnstak.json_codec: several times faster than json.dumps on large answers
    (a prediction that echoes 1000 rows)."""

    def render(self, content: Any) -> bytes:
        return json_codec.encode(content)


class RequestIdMiddleware:
    """Gives each request an id: API Gateway's when there is one, else the caller's, else a new one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        await self.app(scope, receive, send_with_id)


class RequestsInFlight:
    """Counts the HTTP requests this process is serving, across its apps (the local stack serves four), and
    when two or more were last served at once."""

    count = 0
    last_together = -math.inf

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # One event loop serves a process's requests (Lambda, the local stack): no lock. Were two loops to
        # miscount, a request would only run in the slower of the two places, with the same answer.
        RequestsInFlight.count += 1
        if RequestsInFlight.count > 1:
            RequestsInFlight.last_together = time.monotonic()
        try:
            await self.app(scope, receive, send)
        finally:
            RequestsInFlight.count -= 1

    @classmethod
    def alone(cls) -> bool:
        """Only this request is in flight, and none has had company for a while."""
        return cls.count <= 1 and time.monotonic() - cls.last_together > TOGETHER_LATELY_SECONDS


# Clients that sent requests together lately are likely to again: their requests stay on worker threads.
TOGETHER_LATELY_SECONDS = 1.0


async def run_cpu_bound[Result](work: Callable[[], Result]) -> Result:
    """Runs `work`, which holds the CPU (a prediction), where it answers soonest.

    For a request alone (see RequestsInFlight.alone), on the event loop itself: a worker thread would cost two
    thread hand-offs and GIL switches, about 0.5 ms of a one-row prediction and 2 ms of a 1000-row one. Lambda
    always sends a process one request at a time. Otherwise on a worker thread, as FastAPI runs a plain route:
    the loop keeps serving, and predictions for the same model made together can share one estimator call
    (predict/coalescing.py). Requests that reached the server together are counted first: this one yields to
    the loop once, and those behind it start."""
    await asyncio.sleep(0)
    if RequestsInFlight.alone():
        return work()
    return await run_in_threadpool(work)


class JsonBodyMiddleware:
    """Bodies are JSON: one sent with no Content-Type is read as JSON, another media type is a 415.

    API Gateway test events and the old stack's clients (`requests.post(url, data=json.dumps(...))`) send
    JSON without the header; FastAPI would otherwise not parse it. Media types compare case-insensitively
    (old clients send `Application/json`). An app may accept more media types (predict takes `text/csv`);
    its routes then read such bodies themselves. The size limit applies to every body.
    """

    def __init__(self, app: ASGIApp, extra_media_types: Iterable[str] = ()) -> None:
        self.app = app
        self.extra_media_types = frozenset(media_type.lower() for media_type in extra_media_types)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        content_type = next((value for name, value in scope["headers"] if name == b"content-type"), None)
        is_json = content_type is None or _is_json_media_type(content_type.decode("latin-1"))
        if content_type is None:
            scope = {**scope, "headers": [*scope["headers"], (b"content-type", b"application/json")]}
        elif not is_json and media_type_of(content_type.decode("latin-1")) not in self.extra_media_types:
            accepted = " or ".join(["JSON (Content-Type: application/json)", *sorted(self.extra_media_types)])
            message = f"The body must be {accepted}, not {content_type.decode('latin-1')!r}."
            await error_response(Request(scope), 415, "unsupported_media_type", message)(scope, receive, send)
            return
        limit = get_settings().max_request_bytes
        declared = next((value for name, value in scope["headers"] if name == b"content-length"), b"0")
        if int(declared or b"0") > limit:
            await _too_large(scope, receive, send, int(declared), limit)
            return
        body = await _read_body(receive, limit)
        if body is None:
            await _too_large(scope, receive, send, None, limit)
            return
        if is_json and _has_non_finite_number(body):
            message = "The body contains NaN or Infinity, which are not JSON: send null for a missing value."
            await error_response(Request(scope), 400, "invalid_json", message)(scope, receive, send)
            return
        await self.app(scope, _replay(body), send)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None as soon as it passes the limit (a body sent without a Content-Length)."""
    chunks = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _too_large(scope: Scope, receive: Receive, send: Send, size: int | None, limit: int) -> None:
    told = f"{size} bytes" if size is not None else "larger than that"
    message = (
        f"The request body is {told}; the limit is {limit} bytes. Upload large data through POST /datasets "
        'and send {"dataset": "<dataset_id>"} instead of inline rows.'
    )
    await error_response(Request(scope), 413, "too_large", message, {"limit_bytes": limit})(scope, receive, send)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


class _NonFiniteNumber(ValueError):
    pass


def _reject_constant(name: str) -> None:
    raise _NonFiniteNumber(name)


def _has_non_finite_number(body: bytes) -> bool:
    """Python's json accepts NaN and Infinity; JSON does not. Only bodies that contain the words are parsed."""
    # A single byte is found by memchr, a word by a slower search: most bodies hold neither capital letter.
    if not ((b"N" in body and b"NaN" in body) or (b"I" in body and b"Infinity" in body)):
        return False
    try:
        json.loads(body, parse_constant=_reject_constant)
    except _NonFiniteNumber:
        return True
    except ValueError:
        return False  # not JSON at all: FastAPI reports that
    return False


def path_keeping_encoded_slashes(scope: Scope) -> str:
    """The request path, decoded, except that %2F stays %2F: a name with a slash stays one path segment.

    Servers decode `/models/a%2Fb` to `/models/a/b`, which would route as model `a`, version `b`.
    """
    raw_path = scope.get("raw_path")
    if not raw_path or b"%2f" not in raw_path.lower():
        return str(scope["path"])
    raw = raw_path.decode("latin-1").split("?", 1)[0]
    return "/".join(unquote(segment).replace("/", "%2F") for segment in raw.split("/"))


class EncodedSlashMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = path_keeping_encoded_slashes(scope)
            if path != scope["path"]:
                scope = {**scope, "path": path}
        await self.app(scope, receive, send)


def media_type_of(content_type: str) -> str:
    """`Text/CSV; charset=utf-8` -> `text/csv`."""
    return content_type.split(";", 1)[0].strip().lower()


def _is_json_media_type(content_type: str) -> bool:
    media_type = media_type_of(content_type)
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


def _incoming_request_id(scope: Scope) -> str:
    event = scope.get("aws.event")
    if isinstance(event, Mapping):
        gateway_id = event.get("requestContext", {}).get("requestId")
        if gateway_id:
            return str(gateway_id)
    for name, value in scope.get("headers", []):
        if name == REQUEST_ID_HEADER.encode() and 0 < len(value) <= 200:
            return str(value.decode("latin-1"))
    return uuid.uuid4().hex


def _describe_validation_errors(errors: Iterable[Mapping[str, Any]]) -> tuple[int, str, str, list[Any]]:
    """Malformed JSON or a missing body is a 400; a body of the wrong shape is a 422 naming each field."""
    details = []
    for error in errors:
        location = [str(part) for part in error.get("loc", ()) if part != "body"]
        details.append({"field": ".".join(location) or "body", "problem": error.get("msg", "")})
        if error.get("type") == "json_invalid":
            return 400, "invalid_json", "The request body is not valid JSON: send a JSON object.", details
        if error.get("type") == "missing" and not location:
            return 400, "invalid_input", "The request body is empty: send a JSON object.", details
    message = "; ".join(f"{d['field']}: {d['problem']}" for d in details) or "The request is invalid."
    return 422, "validation_error", message, details


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LrnstakError)
    async def handle_domain_error(request: Request, error: LrnstakError) -> JSONResponse:
        if isinstance(error, ServiceUnavailable):
            logger.warning("AWS unavailable", extra={"error_message": error.message})
            response = error_response(request, error.status_code, error.code, error.message, error.details)
            response.headers["Retry-After"] = str(error.retry_after_seconds)
            return response
        if error.status_code >= 500:
            logger.error("server error", extra={"error_code": error.code, "error_message": error.message})
        return error_response(request, error.status_code, error.code, error.message, error.details)

    @app.exception_handler(RequestValidationError)
    async def handle_validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        status, code, message, details = _describe_validation_errors(error.errors())
        return error_response(request, status, code, message, details)

    @app.exception_handler(StarletteHTTPException)
    async def handle_http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed"}
        message = str(error.detail)
        if error.status_code == 404 and message == "Not Found":
            message = f"No route {request.method} {request.url.path}."
        return error_response(request, error.status_code, codes.get(error.status_code, "http_error"), message)

    @app.exception_handler(Exception)
    async def handle_unexpected_error(request: Request, error: Exception) -> JSONResponse:
        logger.exception("unhandled error")
        response = error_response(request, 500, "internal_error", "An unexpected error occurred; it was logged.")
        # Starlette answers unhandled errors outside every middleware, so the id header is set here.
        response.headers[REQUEST_ID_HEADER] = request_id_of(request)
        return response


def health_router(function_name: str) -> APIRouter:
    router = APIRouter(tags=["health"])

    async def health() -> dict[str, str]:
        return {"status": "ok", "function": function_name, "version": __version__}

    router.add_api_route("/health", health, methods=["GET"], operation_id=f"{function_name}_health")
    router.add_api_route(
        f"/health/{function_name}", health, methods=["GET"], operation_id=f"{function_name}_health_named"
    )
    return router


class CorsMiddleware:
    """Starlette's CORS handling for the origins in settings (CORS_ALLOWED_ORIGINS), built on the first
    request: settings are read once, never at import. No origins: requests pass untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._handler: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._handler is None:
            origins = get_settings().cors_origins
            self._handler = (
                CORSMiddleware(
                    self._app,
                    allow_origins=origins,
                    allow_methods=["GET", "POST", "PUT", "DELETE"],
                    allow_headers=list(CORS_REQUEST_HEADERS),
                    expose_headers=list(CORS_EXPOSED_HEADERS),
                    max_age=600,
                )
                if origins
                else self._app
            )
        await self._handler(scope, receive, send)


def service_dependency[Service](get_service: Callable[[], Service]) -> Any:
    """`Depends` on a function's service, resolved on the event loop. FastAPI runs a plain function dependency on
    a worker thread: a thread round trip and a GIL hand-off on every request for what is a cached lookup after
    the first one. The first call builds the service (settings, boto3 clients), which makes no network call."""

    async def resolve_service() -> Service:
        return get_service()

    return Depends(resolve_service)


def create_app(function_name: str, routers: Iterable[APIRouter], extra_media_types: Iterable[str] = ()) -> FastAPI:
    """One function's app. `extra_media_types`: body media types its routes read besides JSON (else 415)."""
    app = FastAPI(title=f"lrnstak {function_name}", version=__version__, openapi_url=None)
    install_error_handlers(app)
    app.include_router(health_router(function_name))
    for router in routers:
        app.include_router(router)
    app.add_middleware(JsonBodyMiddleware, extra_media_types=tuple(extra_media_types))
    app.add_middleware(EncodedSlashMiddleware)
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(CorsMiddleware)
    app.add_middleware(RequestsInFlight)
    return app


def strip_path_prefix(event: LambdaEvent, base_path: str) -> LambdaEvent:
    """Removes what API Gateway leaves in front of the routes' own paths.

    HTTP API (v2) puts a named stage in the path (`/prod/models`); a custom domain's base path mapping
    (`/v1/models`) appears in both shapes. Routes are declared without either. What the client had in front
    of the route (`/prod` on an execute-api URL, `/v1` on a custom domain) is kept in the event under
    PUBLIC_PREFIX_KEY, for the links the API hands out (see `public_path`).
    """
    context = event.get("requestContext") or {}
    prefixes = ["/" + base_path.strip("/")] if base_path.strip("/") else []
    http = context.get("http")
    stage = context.get("stage")
    if event.get("version") == "2.0" and isinstance(http, dict):
        if stage and stage != "$default":
            prefixes.insert(0, f"/{stage}")
        sent = str(http.get("path", ""))
        path = _without_prefixes(sent, prefixes)
        stripped = {**event, "requestContext": {**context, "http": {**http, "path": _encoded(path)}}}
    elif "path" in event:
        # REST (v1): `path` has no stage; requestContext.path is the path as the client sent it.
        path = _without_prefixes(str(event["path"]), prefixes)
        sent = str(context.get("path") or event["path"])
        stripped = {**event, "path": _encoded(path)}
    else:
        return event
    if path == "/":
        stripped[PUBLIC_PREFIX_KEY] = sent.rstrip("/")
    else:
        stripped[PUBLIC_PREFIX_KEY] = sent[: len(sent) - len(path)] if sent.endswith(path) else ""
    return stripped


def public_path(request: Request, path: str) -> str:
    """A path of this API as the client reaches it (behind the stage or base path its request came through)."""
    event = request.scope.get("aws.event") or {}
    return str(event.get(PUBLIC_PREFIX_KEY, "")) + path


def _without_prefixes(path: str, prefixes: list[str]) -> str:
    for prefix in prefixes:
        if path == prefix or path.startswith(prefix + "/"):
            path = path[len(prefix) :] or "/"
    return path


def _encoded(path: str) -> str:
    # Mangum unquotes the path; an encoded slash must survive that as %2F (see path_keeping_encoded_slashes).
    return re.sub("%2[fF]", "%252F", path)


def wrap_handler(asgi_handler: Callable[[LambdaEvent, Any], dict[str, Any]]) -> LambdaHandler:
    """Powertools around the Mangum adapter: correlation id = API Gateway request id, metrics, tracing."""

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
    @tracer.capture_lambda_handler(capture_response=False)
    @publish_metrics
    def handler(event: LambdaEvent, context: LambdaContext) -> dict[str, Any]:
        return asgi_handler(strip_path_prefix(event, get_settings().api_base_path), context)

    return cast(LambdaHandler, handler)


def job_accepted(request: Request, job_id: str, status: str, path: str) -> JSONResponse:
    """202 for work that continues as a job: the job's link in the body and in Location."""
    link = public_path(request, path)
    body = {"job_id": job_id, "status": status, "links": {"self": link}}
    return JSONResponse(body, status_code=202, headers={"Location": link})
