"""The domain error hierarchy. Each error knows its HTTP status and code; http.py maps them in one place."""

from typing import Any


class LrnstakError(Exception):
    """Base of every error lrnstak raises on purpose. `message` tells the client what to fix."""

    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidInput(LrnstakError):
    status_code = 400
    code = "invalid_input"


class NotFound(LrnstakError):
    status_code = 404
    code = "not_found"


class Conflict(LrnstakError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(LrnstakError):
    status_code = 413
    code = "too_large"


class InvalidModel(LrnstakError):
    """Model bytes that do not decode to a usable estimator."""

    status_code = 422
    code = "invalid_model"


class UnsafeModel(InvalidModel):
    """A pickle that asks for globals outside the allowlist; `details` lists them."""

    code = "unsafe_model"


class ArtifactIntegrityError(LrnstakError):
    """Stored bytes whose SHA-256 differs from the one recorded when they were saved."""

    status_code = 500
    code = "artifact_integrity_error"


class ServiceUnavailable(LrnstakError):
    """AWS throttled or failed after retries; the client should retry later."""

    status_code = 503
    code = "service_unavailable"

    def __init__(self, message: str, details: Any = None, retry_after_seconds: int = 1) -> None:
        super().__init__(message, details)
        self.retry_after_seconds = retry_after_seconds
