"""Loads a function's app.py the way the local stack does and invokes its Lambda handler."""

import base64
import json
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
