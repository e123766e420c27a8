"""Loads a function's app.py the way the local stack does and invokes its Lambda handler."""

import base64
import json
import uuid
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from lrnstak.local.gateway import load_function_module
from lrnstak.local.template import Template

_MODULES: dict[str, ModuleType] = {}


def function_module(logical_id: str) -> ModuleType:
    if logical_id not in _MODULES:
        _MODULES[logical_id] = load_function_module(Template.load(), logical_id)
    return _MODULES[logical_id]


@dataclass
class FakeLambdaContext:
    function_name: str = "lrnstak-test"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:lrnstak-test"
    aws_request_id: str = "52fdfc07-2182-154f-163f-5f0f9a621d72"
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/lrnstak-test"
    log_stream_name: str = "2026/11/26/[$LATEST]test"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


@dataclass
class LambdaResponse:
    status: int
    headers: dict[str, str]
    raw_body: bytes

    def json(self) -> Any:
        return json.loads(self.raw_body)


def invoke(logical_id: str, event: dict[str, Any]) -> LambdaResponse:
    result = function_module(logical_id).handler(event, FakeLambdaContext())
    body = result.get("body") or ""
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
    headers = {k.lower(): v for k, v in (result.get("headers") or {}).items()}
    for key, values in (result.get("multiValueHeaders") or {}).items():
        headers[key.lower()] = ", ".join(values)
    return LambdaResponse(result["statusCode"], headers, raw)


def invoke_traced(
    logical_id: str,
    method: str,
    path: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    shape: str = "v1",
    stage: str | None = None,
) -> tuple[LambdaResponse, str]:
    """Invokes with a fresh API Gateway request id (REST v1 or HTTP v2 event) and checks that it comes back
    in x-request-id; the answer and that id."""
    from support.events import http_v2_event, rest_v1_event

    if shape == "v1":
        event = rest_v1_event(method, path, body, headers, query, stage=stage or "prod")
    else:
        event = http_v2_event(method, path, body, headers, query, stage=stage or "$default")
    request_id = f"req-{uuid.uuid4()}"
    event["requestContext"]["requestId"] = request_id
    response = invoke(logical_id, event)
    assert response.headers.get("x-request-id") == request_id, response.headers
    return response, request_id
