"""JSON documents kept inside DynamoDB items as text (any JSON, no float/Decimal conversions)."""

import json
from typing import Any

from lrnstak.errors import InvalidInput, PayloadTooLarge

# An item holds 400 KB in all; documents must leave room for the rest of it.
MAX_DOCUMENT_BYTES = 300_000


def to_json_attribute(value: Any, what: str) -> dict[str, str]:
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False, sort_keys=True)
    except ValueError as error:
        raise InvalidInput(f"{what} contains NaN or Infinity, which JSON cannot carry: {error}") from error
    if len(text.encode()) > MAX_DOCUMENT_BYTES:
        raise PayloadTooLarge(f"{what} is larger than {MAX_DOCUMENT_BYTES} bytes once serialised.")
    return {"S": text}


def from_json_attribute(item: dict[str, Any], name: str) -> Any:
    return json.loads(item[name]["S"]) if name in item else None
