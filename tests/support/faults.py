"""Fault injection into the real boto3 clients, through botocore's event system; moto answers everything else.

A step is one logical AWS call of a piece of work: `dynamodb.TransactWriteItems#1` is the first
TransactWriteItems it makes. `Faults.trace` records the steps; `Faults.inject` makes one of them fail in one
of these ways (each HTTP attempt the fault answers counts as one fault injected):

  refused   every HTTP attempt of the call gets a service error (a 5xx or a throttling code) and never reaches
            moto; botocore retries it up to max_attempts, then the caller sees the error.
  lost      the first attempt reaches moto and is executed, its response is lost (a read timeout); botocore's
            retry then gets moto's real answer to the repeated request (a conditional write now conflicts).
  lost_all  every attempt is executed and every response lost: the caller sees a connection error although
            the write happened.
  throttled the first `times` HTTP attempts of the call are throttled, later ones go through.
  killed    the process dies as the call is about to be sent (WorkerKilled, a BaseException: no handler of
            the code under test runs, as after SIGKILL, out of memory or a Lambda timeout).
  killed_after  the call is executed, then the process dies before it sees the answer.

The hooks are `before-call.<service>.<Operation>` (counts logical calls, per thread) and
`before-send.<service>.<Operation>` (answers or drops HTTP attempts); a handler registered on an operation's
own event runs before moto's catch-all `before-send` stub, so it decides first.
"""

import hashlib
import json
import os
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.exceptions import ReadTimeoutError
from moto.core.botocore_stubber import MockRawResponse
from moto.core.models import botocore_stubber

from lrnstak.storage.clients import AwsClients

REFUSED, LOST, LOST_ALL, THROTTLED = "refused", "lost", "lost_all", "throttled"
KILLED, KILLED_AFTER = "killed", "killed_after"
MODES = (REFUSED, LOST, LOST_ALL)
# Errors a refused call gets, per service: (code, HTTP status). Throttling first, then server errors.
SERVICE_ERRORS = {
    "s3": [("SlowDown", 503), ("InternalError", 500), ("ServiceUnavailable", 503)],
    "dynamodb": [
        ("ProvisionedThroughputExceededException", 400),
        ("ThrottlingException", 400),
        ("InternalServerError", 500),
        ("RequestLimitExceeded", 400),
    ],
    "sqs": [("RequestThrottled", 400), ("InternalError", 500), ("ServiceUnavailable", 503)],
}
THROTTLING = {"s3": ("SlowDown", 503), "dynamodb": ("ThrottlingException", 400), "sqs": ("RequestThrottled", 400)}
WRITE_OPERATIONS = frozenset(
    {
        "s3.PutObject",
        "s3.DeleteObject",
        "s3.DeleteObjects",
        "dynamodb.PutItem",
        "dynamodb.UpdateItem",
        "dynamodb.DeleteItem",
        "dynamodb.TransactWriteItems",
        "dynamodb.BatchWriteItem",
        "sqs.SendMessage",
    }
)


class WorkerKilled(BaseException):
    """The process died here: no `except Exception` of the code under test sees it, as no code runs after a
    SIGKILL. (`finally` blocks and `except BaseException` still run in process; they should not rely on it.)"""


# Over the whole session: faults injected (HTTP attempts answered with a fault), cases run, 503s seen,
# state violations found, orphan objects seen where they are allowed.
TOTALS: Counter[str] = Counter()


@dataclass(frozen=True, order=True)
class Step:
    operation: str  # "<service>.<Operation>", as botocore names them
    occurrence: int  # 1: the first such call of the work

    @property
    def service(self) -> str:
        return self.operation.split(".", 1)[0]

    @property
    def is_write(self) -> bool:
        return self.operation in WRITE_OPERATIONS

    def __str__(self) -> str:
        return f"{self.operation}#{self.occurrence}"


def steps_of(operations: list[str]) -> list[Step]:
    """Numbers each operation's occurrences: ["s3.PutObject", "s3.PutObject"] -> PutObject#1, PutObject#2."""
    seen: Counter[str] = Counter()
    steps = []
    for operation in operations:
        seen[operation] += 1
        steps.append(Step(operation, seen[operation]))
    return steps


@dataclass
class Injection:
    step: Step
    mode: str
    code: str
    status: int
    times: int | None
    faults: int = 0  # HTTP attempts answered with the fault
    calls: int = 0  # logical calls of the step's operation seen
    attempts: list[int] = field(default_factory=list)  # HTTP attempts of the hit call

    @property
    def ambiguous(self) -> bool:
        """Whether the caller cannot tell from the error if the call took effect (it may have, or did)."""
        return self.mode in (LOST, LOST_ALL) or self.status >= 500


def error_response(request: AWSPreparedRequest, service: str, code: str, status: int) -> AWSResponse:
    """An AWS error answer in the service's own protocol, as botocore parses it."""
    if service == "s3":
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f"<Error><Code>{code}</Code><Message>injected fault</Message><RequestId>fault</RequestId></Error>"
        )
        headers = {"Content-Type": "application/xml"}
    else:
        prefix = "com.amazonaws.dynamodb.v20120810" if service == "dynamodb" else "com.amazonaws.sqs"
        body = json.dumps({"__type": f"{prefix}#{code}", "message": "injected fault"})
        headers = {"Content-Type": "application/x-amz-json-1.0"}
        if service == "sqs":
            headers["x-amzn-query-error"] = f"{code};Sender"
    return AWSResponse(request.url, status, headers, MockRawResponse(body))  # type: ignore[arg-type]


class Faults:
    """Traces and injects on one container's clients (the ones `get_clients()` gives every service).

    botocore runs every `before-send` handler of a request, moto's included, whatever an earlier one
    answered: a refused request would still be executed. So moto's stub is taken off these clients and called
    from here, unless an injection answers first. `restore` puts it back.
    """

    def __init__(self, clients: AwsClients) -> None:
        self._clients = {"s3": clients.s3, "dynamodb": clients.dynamodb, "sqs": clients.sqs}
        self._lock = threading.Lock()
        self._hooks: dict[str, _Hook] = {}
        for client in self._clients.values():
            client.meta.events.unregister("before-send", botocore_stubber)
            client.meta.events.register("before-send", self._send)

    def restore(self) -> None:
        for client in self._clients.values():
            client.meta.events.unregister("before-send", self._send)
            client.meta.events.register("before-send", botocore_stubber)

    def _send(self, event_name: str, request: AWSPreparedRequest, **kwargs: Any) -> AWSResponse | None:
        _, service, operation = event_name.split(".", 2)
        hook = self._hooks.get(f"{service}.{operation}")
        answer = hook.before_send(event_name, request) if hook is not None else None
        return answer if answer is not None else botocore_stubber(event_name, request, **kwargs)

    @contextmanager
    def trace(self) -> Iterator[list[Step]]:
        """The logical AWS calls made inside the block, in order (all threads)."""
        operations: list[str] = []

        def record(event_name: str, **_: Any) -> None:
            _, service, operation = event_name.split(".", 2)
            with self._lock:
                operations.append(f"{service}.{operation}")

        traced: list[Step] = []
        unique_id = f"trace-{uuid.uuid4().hex}"
        for client in self._clients.values():
            client.meta.events.register("before-call", record, unique_id=unique_id)
        try:
            yield traced
        finally:
            for client in self._clients.values():
                client.meta.events.unregister("before-call", unique_id=unique_id)
            traced.extend(steps_of(operations))

    @contextmanager
    def inject(
        self, step: Step, mode: str, code: str | None = None, status: int | None = None, times: int | None = None
    ) -> Iterator[Injection]:
        """Makes the step's call fail as `mode` says (occurrence 0: every call of the operation). `times`: how
        many HTTP attempts a throttled call loses. The error defaults to one of the service's, per step."""
        if code is None or status is None:
            choices = SERVICE_ERRORS[step.service]
            # A different error for each step, so every code is exercised without multiplying the cases.
            code, status = choices[int(hashlib.sha256(str(step).encode()).hexdigest(), 16) % len(choices)]
            if mode == THROTTLED:
                code, status = THROTTLING[step.service]
        hook = _Hook(Injection(step, mode, code, status, times), self._lock)
        assert step.operation not in self._hooks, f"{step.operation} already has a fault"
        client = self._clients[step.service]
        event = f"before-call.{step.operation}"
        unique_id = f"fault-{uuid.uuid4().hex}"
        client.meta.events.register_first(event, hook.before_call, unique_id=unique_id)
        self._hooks[step.operation] = hook
        try:
            yield hook.injection
        finally:
            del self._hooks[step.operation]
            client.meta.events.unregister(event, unique_id=unique_id)


class _Hook:
    """One injection: which call is hit (counted per thread), what its HTTP attempts get."""

    def __init__(self, injection: Injection, lock: threading.Lock) -> None:
        self.injection = injection
        self._lock = lock
        self._local = threading.local()

    def before_call(self, **_: Any) -> None:
        step = self.injection.step
        with self._lock:
            self.injection.calls += 1
            self._local.hit = step.occurrence in (0, self.injection.calls)
        self._local.attempts = 0

    def before_send(self, event_name: str, request: AWSPreparedRequest) -> AWSResponse | None:
        """The answer to an attempt of the hit call; None lets moto answer."""
        if not getattr(self._local, "hit", False):
            return None
        self._local.attempts += 1
        attempt = self._local.attempts
        injection = self.injection
        with self._lock:
            injection.attempts.append(attempt)
        if injection.mode == THROTTLED and attempt > (injection.times or 0):
            return None
        if injection.mode == LOST and attempt > 1:
            return None
        self._count()
        if injection.mode in (REFUSED, THROTTLED):
            return error_response(request, injection.step.service, injection.code, injection.status)
        if injection.mode == KILLED:
            raise WorkerKilled(str(injection.step))
        botocore_stubber(event_name, request)  # moto executes the request; its answer never arrives
        if injection.mode == KILLED_AFTER:
            raise WorkerKilled(str(injection.step))
        raise ReadTimeoutError(endpoint_url=request.url)

    def _count(self) -> None:
        with self._lock:
            self.injection.faults += 1
            TOTALS["faults injected"] += 1


# what the stores hold afterwards -------------------------------------------------------------------------


@dataclass
class StoredState:
    problems: list[str] = field(default_factory=list)  # broken promises: always a failure
    orphans: list[str] = field(default_factory=list)  # bytes nothing points at: allowed only where said


def _objects(aws: AwsClients, prefix: str) -> dict[str, bytes]:
    bucket = os.environ["MODELS_BUCKET"]
    keys = [
        entry["Key"]
        for page in aws.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for entry in page.get("Contents", [])
    ]
    return {key: aws.s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}


def registry_state(aws: AwsClients, model: str) -> StoredState:
    """The model's items and objects, read straight from the table and the bucket.

    Problems: a version whose artifact or training data is missing, or whose bytes' SHA-256 differs from its
    metadata; a summary that lists other versions than the version items. Orphans: objects under the model's
    prefix that no version points at (never reported as a version: GET /models/{name} lists version items).
    """
    response = aws.dynamodb.query(
        TableName=os.environ["REGISTRY_TABLE"],
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"MODEL#{model}"}},
        ConsistentRead=True,
    )
    items = {item["sk"]["S"]: item for item in response["Items"]}
    objects = _objects(aws, f"artifacts/{model}/")
    state = StoredState()
    referenced: set[str] = set()
    versions = {sk.removeprefix("VERSION#"): item for sk, item in items.items() if sk.startswith("VERSION#")}
    for version, item in versions.items():
        artifact = item["artifact_key"]["S"]
        referenced.add(artifact)
        if artifact not in objects:
            state.problems.append(f"version {version} points at a missing artifact {artifact}")
        elif hashlib.sha256(objects[artifact]).hexdigest() != item["sha256"]["S"]:
            state.problems.append(f"version {version}: the artifact's SHA-256 differs from its metadata")
        if "training_data_key" in item:
            rows_key = item["training_data_key"]["S"]
            referenced.add(rows_key)
            if rows_key not in objects:
                state.problems.append(f"version {version} points at missing training data {rows_key}")
    summary = items.get("SUMMARY")
    listed = set(summary["versions"]["M"]) if summary else set()
    if listed != set(versions):
        state.problems.append(f"the summary lists {sorted(listed)}, the version items are {sorted(versions)}")
    if summary is not None and not listed:
        state.problems.append("a summary without versions")
    state.orphans = sorted(set(objects) - referenced)
    return state


def cache_state(aws: AwsClients, key: str) -> StoredState:
    """The key's items and objects. Problems: a live item (the value, an element of the current list not
    claimed by a pop) pointing at a missing object. Orphans: objects no item points at. Items of a removed
    list, or claimed by a pop, are invisible to readers: they may point at objects already deleted."""
    response = aws.dynamodb.query(
        TableName=os.environ["CACHE_TABLE"],
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": key}},
        ConsistentRead=True,
    )
    items = response["Items"]
    objects = _objects(aws, f"cache/{hashlib.sha256(key.encode()).hexdigest()}/")
    list_id = next((item["list_id"]["S"] for item in items if item["sk"]["S"] == "LIST"), None)

    def live(item: dict[str, Any]) -> bool:
        if item["sk"]["S"] == "VALUE":
            return True
        return item["list_id"]["S"] == list_id and "claimed_by" not in item

    pointers = [(item["object_key"]["S"], live(item)) for item in items if "object_key" in item]
    state = StoredState()
    state.problems = [
        f"a cache item points at a missing object {o}" for o, alive in pointers if alive and o not in objects
    ]
    state.orphans = sorted(set(objects) - {o for o, _ in pointers})
    return state


def jobs_of(aws: AwsClients, model: str) -> list[dict[str, Any]]:
    """The raw job items of a model (a scan: test tables are small)."""
    pages = aws.dynamodb.get_paginator("scan").paginate(
        TableName=os.environ["JOBS_TABLE"],
        FilterExpression="#m = :m",
        ExpressionAttributeNames={"#m": "model"},
        ExpressionAttributeValues={":m": {"S": model}},
        ConsistentRead=True,
    )
    return [dict(item) for page in pages for item in page.get("Items", [])]


# Lambda's SQS event source mapping, emulated --------------------------------------------------------------


def dead_letter_queue(aws: AwsClients, queue_url: str) -> tuple[str, int]:
    """The queue's dead-letter queue and its maxReceiveCount."""
    attributes = aws.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["RedrivePolicy"])["Attributes"]
    policy = json.loads(attributes["RedrivePolicy"])
    name = policy["deadLetterTargetArn"].rsplit(":", 1)[-1]
    return aws.sqs.get_queue_url(QueueName=name)["QueueUrl"], int(policy["maxReceiveCount"])


def settle(aws: AwsClients, queue_url: str, result: Any, message: dict[str, Any]) -> None:
    """What the event source mapping does with a delivery's result: delete the message when the worker took
    it, make it visible again when the worker reported it failed or died (in AWS: when its visibility timeout
    runs out, long after the job's lease did)."""
    if isinstance(result, dict) and result.get("batchItemFailures") == []:
        aws.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    else:
        aws.sqs.change_message_visibility(
            QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )


def drain(aws: AwsClients, queue_url: str, deliver: Any, rounds: int = 8) -> int:
    """Delivers every message of the queue, then those of its dead-letter queue, until both are empty, as
    the event source mappings would; how many deliveries were made."""
    dead_letters, _ = dead_letter_queue(aws, queue_url)
    deliveries = 0
    for url in (queue_url, dead_letters):
        for _ in range(rounds):
            response = aws.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"], WaitTimeSeconds=0
            )
            messages = [dict(message) for message in response.get("Messages", [])]
            if not messages:
                break
            for message in messages:
                deliveries += 1
                try:
                    result = deliver(message, url)
                except (WorkerKilled, BatchProcessingError):
                    result = None  # the invocation failed: the message comes back
                settle(aws, url, result, message)
    return deliveries
