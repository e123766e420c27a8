"""The one error body every function answers with, and the OpenAPI `responses` entries that document it.

lrnstak.http builds the body; the routes declare, with `error_responses(...)`, each error status they can
give, so that the exported OpenAPI describes every answer a client can get (the fuzzer in tests/fuzz holds
the apps to it).
"""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ErrorInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(description="Stable and machine-readable: invalid_input, not_found, validation_error...")
    message: str = Field(description="What went wrong and what to change.")
    details: Any = Field(description="The fields, rows or limits concerned; null when there is nothing to add.")


class ErrorResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")

    error: ErrorInfo
    request_id: str = Field(description="Also in the X-Request-Id header; quote it when reporting a problem.")


ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "Bad input: a body that is not JSON or is empty, an invalid name, key or value. The message says what to fix.",
    404: "The model, version, job or key does not exist.",
    409: "The request conflicts with the current state (the message says which).",
    413: "The request body, or the answer, is larger than a Lambda takes.",
    415: "The body's Content-Type is not one this operation reads.",
    422: "The body or a query parameter has the wrong shape (details name each field), or the model file "
    "cannot be used.",
    503: "AWS is busy or unavailable: retry after the Retry-After header's seconds.",
}

_RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer", "minimum": 0}}
}

# What every operation that reads a JSON body can answer before the route runs: a body that is not JSON or
# is missing (400), too large (413), of another media type (415), or of the wrong shape (422).
BODY_ERRORS: tuple[int, ...] = (400, 413, 415, 422)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each status documented with the one error body.

    422 is always among them: FastAPI documents it for every route with parameters, with its own
    `{"detail": [...]}` body, which lrnstak never sends (its validation errors use the one error body too).
    """
    responses: dict[int | str, dict[str, Any]] = {}
    for status in sorted({*statuses, 422}):
        entry: dict[str, Any] = {"model": ErrorResponse, "description": ERROR_DESCRIPTIONS[status]}
        if status == 503:
            entry["headers"] = _RETRY_AFTER
        responses[status] = entry
    return responses
