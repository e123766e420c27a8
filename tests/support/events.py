"""Real API Gateway event shapes (from `sam local generate-event`, see `make events`), filled per request."""

import base64
import copy
import functools
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from lrnstak.local.template import Template

EVENTS_DIR = Path(__file__).resolve().parents[1] / "events"
_SAMPLES: dict[str, dict[str, Any]] = {}


def _sample(name: str) -> dict[str, Any]:
    if name not in _SAMPLES:
        _SAMPLES[name] = json.loads((EVENTS_DIR / name).read_text())
    return copy.deepcopy(_SAMPLES[name])


def _encode_body(body: Any) -> str | None:
    if body is None:
        return None
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return base64.b64encode(raw).decode()


@functools.cache
def _template_routes() -> list[Any]:
    return list(Template.load().routes())


def template_resource(path: str, method: str) -> tuple[str, dict[str, str]]:
    """The template route API Gateway would match (literal segments first), and its path parameters."""
    best: tuple[tuple[int, ...], str, dict[str, str]] | None = None
    for route in _template_routes():
        if route.method != method:
            continue
        names = re.findall(r"{([^}]+)}", route.path)
        pattern = "^" + re.sub(r"{[^}]+}", "([^/]+)", route.path) + "$"
        match = re.match(pattern, path)
        if match:
            rank = tuple(1 if s.startswith("{") else 0 for s in route.path.split("/") if s)
            if best is None or rank < best[0]:
                best = (rank, route.path, dict(zip(names, match.groups(), strict=True)))
    return (best[1], best[2]) if best else ("/{proxy+}", {"proxy": path.lstrip("/")})


def rest_v1_event(
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    stage: str = "prod",
) -> dict[str, Any]:
    """A REST API (payload 1.0) event; as sam generates it, the body is base64 with no Content-Type."""
    event = _sample("apigateway_rest_v1.json")
    resource, parameters = template_resource(path, method)
    event.update(
        httpMethod=method,
        path=path,
        resource=resource,
        pathParameters=parameters or None,
        queryStringParameters=query or None,
        multiValueQueryStringParameters={k: [v] for k, v in (query or {}).items()} or None,
        body=_encode_body(body),
        isBase64Encoded=body is not None,
    )
    event["headers"].update(headers or {})
    event["multiValueHeaders"].update({k: [v] for k, v in (headers or {}).items()})
    context = event["requestContext"]
    context.update(stage=stage, path=f"/{stage}{path}", resourcePath=resource, httpMethod=method)
    return event


def http_v2_event(
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    stage: str = "$default",
) -> dict[str, Any]:
    """An HTTP API (payload 2.0) event; a named stage puts `/<stage>` in front of the path."""
    event = _sample("apigateway_http_v2.json")
    resource, parameters = template_resource(path, method)
    full_path = path if stage == "$default" else f"/{stage}{path}"
    event.update(
        routeKey=f"{method} {resource}",
        rawPath=full_path,
        rawQueryString=urlencode(query or {}),
        queryStringParameters=query or None,
        pathParameters=parameters or None,
        body=_encode_body(body),
        isBase64Encoded=body is not None,
    )
    event.pop("cookies", None)
    event["headers"].update(headers or {})
    context = event["requestContext"]
    context.update(stage=stage, routeKey=f"{method} {resource}")
    context["http"].update(method=method, path=full_path)
    return event
