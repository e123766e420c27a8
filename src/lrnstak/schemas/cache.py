"""Shapes of the cache API, as the old stack's clients send and read them.

The body rules answer 400 `invalid_input` (not FastAPI's 422), as the old stack did: the validators raise the
domain error, which pydantic lets through unchanged to the one error handler.
"""

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from lrnstak.cache.service import check_ttl
from lrnstak.errors import InvalidInput

SEND_VALUE = 'Send a JSON object {"value": <any JSON>, "ttl": <seconds, optional>}.'
SEND_TTL = 'Send a JSON object {"ttl": <seconds>}.'


def _require_object(data: Any, hint: str) -> Any:
    if not isinstance(data, dict):
        raise InvalidInput(f"The body must be a JSON object. {hint}", details={"field": "body"})
    return data


def _require_field(model: BaseModel, field: str, hint: str) -> None:
    # model_fields_set tells an absent field from one sent as null ({"value": null} is a value).
    if field not in model.model_fields_set:
        raise InvalidInput(f"The body has no `{field}`. {hint}", details={"field": field})


def _ttl_or_none(value: Any) -> int | None:
    # null is taken as absent: old clients send {"ttl": null} for "no expiry".
    return None if value is None else check_ttl(value)


class SetValueRequest(BaseModel):
    """`value` may be any JSON, null and other falsy values included; it only has to be present."""

    model_config = ConfigDict(extra="ignore")

    value: Any = None
    ttl: int | None = None

    @model_validator(mode="before")
    @classmethod
    def body_is_an_object(cls, data: Any) -> Any:
        return _require_object(data, SEND_VALUE)

    @model_validator(mode="after")
    def value_is_present(self) -> "SetValueRequest":
        _require_field(self, "value", SEND_VALUE)
        return self

    @field_validator("ttl", mode="before")
    @classmethod
    def ttl_is_seconds(cls, value: Any) -> int | None:
        return _ttl_or_none(value)


class PushValueRequest(SetValueRequest):
    """Absent `ttl` keeps the list's expiry; a given one replaces it (0: none)."""


class SetTtlRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    ttl: int

    @model_validator(mode="before")
    @classmethod
    def ttl_is_present(cls, data: Any) -> Any:
        if _require_object(data, SEND_TTL).get("ttl") is None:
            raise InvalidInput(f"The body has no `ttl`. {SEND_TTL}", details={"field": "ttl"})
        return data

    @field_validator("ttl", mode="before")
    @classmethod
    def ttl_is_seconds(cls, value: Any) -> int:
        return check_ttl(value)


class MessageResponse(BaseModel):
    message: str = "OK"


class DeleteValueResponse(BaseModel):
    """`value` is 1 when the key existed, null when it did not (the old stack's Redis DEL count)."""

    message: str = "OK"
    value: int | None
