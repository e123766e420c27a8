"""HTTP for the client: one httpx.Client, bounded retries with backoff, and every failure as LrnstakError.

Retried: 429 (API Gateway's throttling, before any function ran) and 503 (the API's "AWS is busy", after
which a write either happened whole or not at all), honouring Retry-After; and, for requests that are safe
to repeat only, errors where no answer came (refused, reset, timed out).
"""

import email.utils
import json
import math
import random
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from lrnstak.client.errors import LrnstakError

RETRY_STATUSES = frozenset({429, 503})


class Transport:
    def __init__(
        self,
        http: httpx.Client,
        *,
        attempts: int = 5,
        backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 8.0,
        max_retry_after_seconds: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.http = http
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.max_retry_after_seconds = max_retry_after_seconds
        self.sleep = sleep
        self._jitter = jitter

    def request(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        json_body: Any = None,
        content: bytes | str | None = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """The 2xx answer; anything else raises LrnstakError once the retries are spent."""
        send_headers = dict(headers or {})
        if json_body is not None:
            content = encode_json(json_body)
            send_headers.setdefault("Content-Type", "application/json")
        for attempt in range(1, self.attempts + 1):
            last = attempt == self.attempts
            try:
                response = self.http.request(method, path, content=content, params=params, headers=send_headers)
            except httpx.TransportError as error:
                if last or not idempotent:
                    raise transport_error(error, self.http.base_url.join(path)) from None
                self.sleep(self.backoff(attempt))
                continue
            if response.status_code in RETRY_STATUSES and not last:
                self.sleep(self.delay(response, attempt))
                continue
            if response.is_success:
                return response
            raise error_from(response)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, base * 2^(attempt-1)], capped."""
        return self._jitter() * min(self.max_backoff_seconds, self.backoff_seconds * 2.0 ** (attempt - 1))

    def delay(self, response: httpx.Response, attempt: int) -> float:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if retry_after is None:
            return self.backoff(attempt)
        # What the server asked for, and a little jitter so that throttled clients do not come back together.
        return min(retry_after, self.max_retry_after_seconds) + self._jitter() * self.backoff_seconds


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date (RFC 9110)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def error_from(response: httpx.Response) -> LrnstakError:
    """The API's one error shape as LrnstakError; any other body (a proxy's page, say) is kept as text."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return LrnstakError(
            error["message"],
            status_code=response.status_code,
            code=str(error.get("code") or "error"),
            details=error.get("details"),
            request_id=body.get("request_id") or response.headers.get("x-request-id"),
            body=body,
        )
    if isinstance(body, dict) and isinstance(body.get("message"), str):  # API Gateway's own {"message": ...}
        message = body["message"]
    else:
        message = (response.text.strip().splitlines() or [response.reason_phrase or "no body"])[0][:300]
    return LrnstakError(
        message,
        status_code=response.status_code,
        code=f"http_{response.status_code}",
        request_id=response.headers.get("x-request-id"),
        body=body,
    )


def transport_error(error: httpx.TransportError, url: httpx.URL) -> LrnstakError:
    if isinstance(error, httpx.TimeoutException):
        code, what = "timeout", "timed out"
    elif isinstance(error, httpx.ConnectError):
        code, what = "connection_error", "could not connect"
    else:
        code, what = "connection_error", "the connection failed"
    reason = str(error) or type(error).__name__
    return LrnstakError(f"{url.scheme}://{url.netloc.decode()}: {what} ({reason})", code=code)


def encode_json(value: Any) -> bytes:
    """Compact JSON; numpy scalars and arrays, dates and NaN (as null: a missing value) are taken too."""
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False, default=_plain)
    except ValueError:  # NaN or infinity somewhere: the API takes neither, null is how JSON says "missing"
        text = json.dumps(_without_nan(value), separators=(",", ":"), allow_nan=False, default=_plain)
    return text.encode()


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return _without_nan(value.tolist())
    if hasattr(value, "isoformat"):  # datetime, date, pandas Timestamp
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _without_nan(value: Any) -> Any:
    if isinstance(value, float):
        if math.isinf(value):
            raise LrnstakError(
                "Infinity cannot be sent: the API takes finite numbers, or null for a missing value.",
                code="invalid_input",
            )
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {key: _without_nan(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nan(item) for item in value]
    if hasattr(value, "tolist"):
        return _without_nan(value.tolist())
    return value
