"""Turns botocore failures into domain errors, so nothing above storage knows about AWS exceptions."""

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, EndpointConnectionError

from lrnstak.errors import LrnstakError, ServiceUnavailable

# Codes that mean "try again later" once botocore's own retries are spent.
RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "SlowDown",
        "ServiceUnavailable",
        "InternalServerError",
        "InternalError",
        "TransactionInProgressException",
        "LimitExceededException",
        "RequestThrottled",
        "KmsThrottled",
    }
)
# A table or bucket that is not there means a deployment that is not ready, not a client mistake.
MISSING_RESOURCE_CODES = frozenset(
    {"ResourceNotFoundException", "NoSuchBucket", "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}
)


class StorageConflict(LrnstakError):
    """A conditional write lost a race; the caller re-reads and tries again."""

    status_code = 409
    code = "conflict"


class PreconditionFailed(LrnstakError):
    """A write that had to be committed together with another (in one transaction) found its condition no
    longer true, so neither was written; retrying cannot help."""

    status_code = 409
    code = "conflict"


class ArtifactMissing(LrnstakError):
    """An object the metadata points at is not in the bucket (yet, or any more)."""

    status_code = 404
    code = "not_found"


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def outcome_unknown(error: BaseException) -> bool:
    """Whether a failed write may nevertheless have been applied: its last answer was a server error or never
    came (a read timeout, a dropped connection). A throttle, a refused condition or a request that could not
    even connect was not applied. (botocore may have retried: an earlier attempt can still have been applied,
    so writers that must know read their write back.)"""
    cause = error if isinstance(error, ClientError | BotoCoreError) else error.__cause__
    if isinstance(cause, ClientError):
        return int(cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)) >= 500
    if isinstance(cause, BotoCoreError):
        return not isinstance(cause, EndpointConnectionError | ConnectTimeoutError)
    return False


@contextmanager
def translate_aws_errors(action: str) -> Iterator[None]:
    try:
        yield
    except ClientError as error:
        code = error_code(error)
        if code in RETRYABLE_CODES:
            raise ServiceUnavailable(
                f"AWS is busy ({code}) while trying to {action}; retry shortly.", retry_after_seconds=2
            ) from error
        if code in MISSING_RESOURCE_CODES:
            raise ServiceUnavailable(
                f"Storage is not available ({code}) while trying to {action}.", retry_after_seconds=5
            ) from error
        raise
    except BotoCoreError as error:
        raise ServiceUnavailable(
            f"AWS could not be reached while trying to {action}: {type(error).__name__}.",
            retry_after_seconds=2,
        ) from error
