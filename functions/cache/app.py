"""The cache function: JSON values and lists per key, with exact expiry (the old stack's Redis routes)."""

from lrnstak.cold_start import ImportsPause

# The cyclic GC is held off while the modules below load; what they made is then frozen out of its way.
imports = ImportsPause()

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Response
from mangum import Mangum

from lrnstak.cache.service import CachedValue, CacheService, get_cache_service
from lrnstak.errors import InvalidInput
from lrnstak.http import create_app, service_dependency, wrap_handler
from lrnstak.schemas.cache import (
    DeleteValueResponse,
    MessageResponse,
    PushValueRequest,
    SetTtlRequest,
    SetValueRequest,
)
from lrnstak.schemas.errors import BODY_ERRORS, error_responses

Cache = Annotated[CacheService, service_dependency(get_cache_service)]
EXPIRES_AT_HEADER = "X-Expires-At"
JSON_MEDIA_TYPE = "application/json"

router = APIRouter(tags=["cache"])


def value_response(found: CachedValue) -> Response:
    """The stored JSON itself as the body, byte for byte; when it expires in a header."""
    headers = {"Cache-Control": "no-store"}
    if found.expires_at is not None:
        headers[EXPIRES_AT_HEADER] = datetime.fromtimestamp(found.expires_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return Response(content=found.json_text, media_type=JSON_MEDIA_TYPE, headers=headers)


def parse_position(pos: str | None) -> int:
    if pos is None:
        return 0
    if not pos.isascii() or not pos.isdigit():
        raise InvalidInput(
            f"`pos` must be an integer from 0 (the front of the list), not {pos[:40]!r}.", details={"field": "pos"}
        )
    return int(pos)


@router.put(
    "/cache/ttl/{key}",
    response_model=MessageResponse,
    operation_id="set_ttl",
    responses=error_responses(*BODY_ERRORS, 404, 503),
)
def set_ttl(key: str, body: SetTtlRequest, cache: Cache) -> MessageResponse:
    cache.set_ttl(key, body.ttl)
    return MessageResponse()


@router.put(
    "/cache/push/{key}",
    response_model=MessageResponse,
    operation_id="push_value",
    responses=error_responses(*BODY_ERRORS, 409, 503),
)
def push_value(key: str, body: PushValueRequest, cache: Cache) -> MessageResponse:
    cache.push_value(key, body.value, body.ttl)
    return MessageResponse()


@router.get("/cache/peek/{key}", operation_id="peek_value", responses=error_responses(400, 404, 409, 503))
def peek_value(key: str, cache: Cache, pos: str | None = None) -> Response:
    return value_response(cache.peek_value(key, parse_position(pos)))


@router.get("/cache/pop/{key}", operation_id="pop_value", responses=error_responses(400, 404, 409, 503))
def pop_value(key: str, cache: Cache) -> Response:
    return value_response(cache.pop_value(key))


@router.put(
    "/cache/{key}",
    response_model=MessageResponse,
    operation_id="put_value",
    responses=error_responses(*BODY_ERRORS, 503),
)
@router.post(
    "/cache/{key}",
    response_model=MessageResponse,
    operation_id="post_value",
    responses=error_responses(*BODY_ERRORS, 503),
)
def put_value(key: str, body: SetValueRequest, cache: Cache) -> MessageResponse:
    cache.put_value(key, body.value, body.ttl or 0)
    return MessageResponse()


@router.get("/cache/{key}", operation_id="get_value", responses=error_responses(400, 404, 413, 503))
def get_value(key: str, cache: Cache) -> Response:
    return value_response(cache.get_value(key))


@router.delete(
    "/cache/{key}",
    response_model=DeleteValueResponse,
    operation_id="delete_value",
    responses=error_responses(400, 503),
)
def delete_value(key: str, cache: Cache) -> DeleteValueResponse:
    return DeleteValueResponse(value=1 if cache.delete_value(key) else None)


app = create_app("cache", [router])
handler = wrap_handler(Mangum(app, lifespan="off"))
imports.end()
