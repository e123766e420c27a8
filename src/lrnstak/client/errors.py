"""The one exception the client raises: what the API said no with, or why it could not be asked."""

from typing import Any


class LrnstakError(Exception):
    """An answer other than 2xx, a job that failed, or an API that could not be reached.

    `status_code` is the HTTP status (None when no answer came: connection refused, a timeout, a failed job);
    `code`, `message` and `details` come from the API's one error body
    `{"error": {"code", "message", "details"}, "request_id"}`, which `body` holds whole (the raw text when the
    answer was not that shape). Not the server's `lrnstak.errors.LrnstakError`: this one only reports.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str = "client_error",
        details: Any = None,
        request_id: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code
        self.details = details
        self.request_id = request_id
        self.body = body

    def __str__(self) -> str:
        status = f"{self.status_code} " if self.status_code is not None else ""
        return f"{status}{self.code}: {self.message}"
