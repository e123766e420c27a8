"""Fault injection at every step of every write, through the Lambda handlers against moto, in process.

Each write path is run once cleanly with its AWS calls traced; then, for every step from its first write on,
the same request is made again on fresh names with that one call failing (tests/support/faults.py: refused
with a 5xx or a throttling code on every attempt, its response lost once, or lost on every attempt). After
each run the stores are checked, straight from the table and the bucket and through the API:

- the client got a success, or a 503 with `Retry-After` and the one error shape; never a 500, a traceback,
  or a success for something that did not happen;
- registry: every version's artifact and training data exist and match the metadata's SHA-256; the summary
  lists exactly the version items; a failed overwrite or delete leaves the previous version served whole;
- orphan bytes (objects no version or cache item points at) never show as a version or a value. They are
  allowed only where cleanup is best-effort: the DeleteObjects that removes replaced or deleted bytes, and a
  commit whose outcome the writer could not learn (it keeps its bytes rather than risk deleting those of a
  version that did commit). Nothing collects them later yet (jobs/ and datasets/ expire by the bucket's
  lifecycle rules; artifacts/ and cache/ do not): the writer logs their keys;
- jobs: no job stays `queued` without a message, none stays `running` past its lease; a job succeeded if and
  only if its version is registered;
- cache: a read sees the old value or the new one, whole.

Throttling is retried by botocore (settings `aws_max_attempts`, `aws_retry_mode`): fewer throttles than the
attempts allowed go unnoticed, more answer 503 within the backoff's bound.
"""

import base64
import copy
import gzip
import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import botocore.retries.standard
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from conftest import reset_cached_wiring

from lrnstak.jobs import service as jobs_module
from lrnstak.jobs.service import get_job_service
from lrnstak.local.template import Template
from lrnstak.local.workers import sqs_event
from lrnstak.storage.clients import AwsClients, get_clients

from support.events import rest_v1_event
from support.faults import (
    KILLED,
    KILLED_AFTER,
    MODES,
    REFUSED,
    THROTTLED,
    TOTALS,
    Faults,
    Injection,
    Step,
    StoredState,
    WorkerKilled,
    cache_state,
    dead_letter_queue,
    drain,
    jobs_of,
    registry_state,
    settle,
)
from support.functions import FakeLambdaContext, LambdaResponse, function_module, invoke
from support.jobs import jobs_queue, queue_arn, run_worker
from support.models import joblib_bytes, linear_regression

PARAMETERS = {"target_label": "y", "feature_labels": ["a", "b", "c"]}
TRAINING_ROWS = [{"a": i, "b": (i * 7) % 5, "y": 2.0 * i - (i * 7) % 5} for i in range(30)]
LARGE = "x" * 400_000  # over the cache's 350,000 bytes kept in the item: goes to S3
CLEANUP = frozenset({"s3.DeleteObjects"})

Response = LambdaResponse | dict[str, Any] | None


@pytest.fixture(scope="module", autouse=True)
def report_totals(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    line = ", ".join(f"{name}: {count}" for name, count in sorted(TOTALS.items()))
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    terminal = request.config.pluginmanager.get_plugin("terminalreporter")
    if capture is not None and terminal is not None:
        with capture.global_and_fixture_disabled():
            terminal.write_line(f"\ntest_faults totals: {line}")


@pytest.fixture
def faults(aws: AwsClients) -> Iterator[Faults]:
    injector = Faults(aws)
    yield injector
    injector.restore()


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore still retries every fault, without sleeping up to a second first (the throttling tests below
    keep the real backoff)."""
    monkeypatch.setattr(botocore.retries.standard.ExponentialBackoff, "delay_amount", lambda self, context: 0.001)


# calls -----------------------------------------------------------------------------------------------------


def call(
    function: str, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> LambdaResponse:
    return invoke(function, rest_v1_event(method, path, body=body, headers=headers))


def model_body(seed: int, version: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": base64.b64encode(joblib_bytes(linear_regression(seed))).decode(),
        "parameters": PARAMETERS,
        "training_data": [{"a": seed, "b": 0, "c": 1, "y": 2}],
    }
    if version is not None:
        body["version"] = version
    return body


def model_sha(seed: int) -> str:
    return hashlib.sha256(joblib_bytes(linear_regression(seed))).hexdigest()


def upload(model: str, seed: int, version: str | None = None) -> None:
    response = call("RegistryFunction", "POST", f"/models/{model}", model_body(seed, version))
    assert response.status == 200, response.raw_body


def train_body(run_async: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "training_data": TRAINING_ROWS,
        "parameters": {"target_label": "y", "algorithm": "linear_regression"},
    }
    if run_async:
        body["async"] = True
    return body


def served(model: str) -> dict[str, tuple[str, str, Any]]:
    """What the API serves of a model: per version, the SHA-256 of the downloaded bytes, the one its info
    reports, and its training rows."""
    listed = call("RegistryFunction", "GET", f"/models/{model}")
    if listed.status == 404:
        return {}
    assert listed.status == 200, listed.raw_body
    answer = {}
    for entry in listed.json()["versions"]:
        version = entry["version"]
        download = call("RegistryFunction", "GET", f"/models/{model}/{version}")
        info = call("RegistryFunction", "GET", f"/models/{model}/{version}/info")
        rows = call("RegistryFunction", "GET", f"/models/{model}/{version}/training_data")
        if (download.status, info.status, rows.status) != (200, 200, 200):
            answer[version] = ("unreadable", str((download.status, info.status, rows.status)), download.raw_body)
            continue
        data = base64.b64decode(download.json()["model"])
        answer[version] = (hashlib.sha256(data).hexdigest(), info.json()["sha256"], rows.json()["training_data"])
    return answer


def cached(key: str) -> Any:
    """The key's value as GET answers it, or None when it is missing."""
    response = call("CacheFunction", "GET", f"/cache/{key}")
    if response.status == 404:
        return None
    if response.status != 200:
        return ("unreadable", response.status, response.raw_body[:300])
    return response.json()


def job_answer(kind: str, job_id: str) -> dict[str, Any]:
    path = f"/train/jobs/{job_id}" if kind == "training" else f"/predict/jobs/{job_id}"
    response = call("TrainerFunction" if kind == "training" else "PredictFunction", "GET", path)
    assert response.status == 200, response.raw_body
    return dict(response.json())


# the answer ------------------------------------------------------------------------------------------------


def answer_problems(response: Response, ok: set[int]) -> list[str]:
    """A success, or a 503 that tells the client to come back: anything else is a problem."""
    if not isinstance(response, LambdaResponse):
        return []
    if response.status in ok:
        return []
    text = response.raw_body.decode(errors="replace")
    if response.status != 503:
        return [f"answered {response.status}: {text[:300]}"]
    TOTALS["503s seen"] += 1
    problems = []
    if not response.headers.get("retry-after", "").isdigit():
        problems.append(f"a 503 without a Retry-After: {response.headers}")
    body = response.json()
    if set(body) != {"error", "request_id"} or set(body["error"]) != {"code", "message", "details"}:
        problems.append(f"a 503 without the error shape: {text[:300]}")
    if "Traceback" in text:
        problems.append("a traceback in the answer")
    return problems


def succeeded(response: Response, ok: set[int]) -> bool:
    return isinstance(response, LambdaResponse) and response.status in ok


# write paths -----------------------------------------------------------------------------------------------


@dataclass
class Case:
    """One run of a write path, on names of its own."""

    aws: AwsClients
    name: str
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WritePath:
    name: str
    act: Callable[[Case], Response]
    check: Callable[[Case, Response], list[str]]  # problems with the state, given the answer
    ok: frozenset[int] = frozenset({200})
    arrange: Callable[[Case], None] = lambda case: None
    stored: Callable[[Case], StoredState] = lambda case: registry_state(case.aws, case.name)
    # Where a fault the writer cannot see through may leave its own bytes behind (see the module docstring).
    commit: str = "dynamodb.TransactWriteItems"
    # Answers that are neither a success nor a 503 but still right (checked by `check`).
    busy: frozenset[int] = frozenset()
    # An overwrite whose answer was lost no longer knows what it replaced: its object may stay behind.
    replaced_unknown: bool = False

    def __str__(self) -> str:
        return self.name


def expect(label: str, actual: Any, *allowed: Any) -> list[str]:
    if any(actual == option for option in allowed):
        return []
    return [f"{label}: {str(actual)[:400]} is none of {str(allowed)[:400]}"]


# registry


def upload_new(case: Case) -> Response:
    return call("RegistryFunction", "POST", f"/models/{case.name}", model_body(1))


def check_upload_new(case: Case, response: Response) -> list[str]:
    new = {"v1": (model_sha(1), model_sha(1), model_body(1)["training_data"])}
    if succeeded(response, {200}):
        return expect("served after a successful upload", served(case.name), new)
    return expect("served after a failed upload", served(case.name), {})


def arrange_v1(case: Case) -> None:
    upload(case.name, 1)
    case.notes["before"] = served(case.name)


def overwrite(case: Case) -> Response:
    return call("RegistryFunction", "POST", f"/models/{case.name}", model_body(2, "v1"))


def check_overwrite(case: Case, response: Response) -> list[str]:
    new = {"v1": (model_sha(2), model_sha(2), model_body(2)["training_data"])}
    if succeeded(response, {200}):
        return expect("served after a successful overwrite", served(case.name), new)
    return expect("the previous version after a failed overwrite", served(case.name), case.notes["before"])


def arrange_v1_v2(case: Case) -> None:
    upload(case.name, 1)
    upload(case.name, 2)
    case.notes["before"] = served(case.name)


def delete_version(case: Case) -> Response:
    return call("RegistryFunction", "DELETE", f"/models/{case.name}/v1")


def check_delete_version(case: Case, response: Response) -> list[str]:
    if succeeded(response, {204}):
        after = {k: v for k, v in case.notes["before"].items() if k != "v1"}
        return expect("served after a delete", served(case.name), after)
    return expect("served after a failed delete", served(case.name), case.notes["before"])


def delete_model(case: Case) -> Response:
    return call("RegistryFunction", "DELETE", f"/models/{case.name}")


def check_delete_model(case: Case, response: Response) -> list[str]:
    if succeeded(response, {204}):
        return expect("served after deleting the model", served(case.name), {})
    return expect("served after a failed model delete", served(case.name), case.notes["before"])


# trainer


def train_sync(case: Case) -> Response:
    return call("TrainerFunction", "POST", f"/train/{case.name}", train_body())


def check_train_sync(case: Case, response: Response) -> list[str]:
    now = served(case.name)
    if succeeded(response, {200}):
        assert isinstance(response, LambdaResponse)
        return expect("versions after training", sorted(now), [response.json()["version"]])
    return expect("versions after failed training", now, {})


def train_idempotent(case: Case) -> Response:
    headers = {"Idempotency-Key": case.name}
    return call("TrainerFunction", "POST", f"/train/{case.name}", train_body(), headers)


def check_train_idempotent(case: Case, response: Response) -> list[str]:
    """As train_sync, and a retry with the key trains nothing again. Powertools' record of the key is
    written before the work ("in progress") and after it (the answer): when the first write's answer was lost,
    or the last write failed, the key stays in progress until the invocation's time is up, and a request with
    it answers 409 `conflict` ("retry shortly") meanwhile."""
    problems = check_train_sync(case, response)
    retry = train_idempotent(case)  # the client's retry, without faults
    now = sorted(served(case.name))
    if retry.status == 409:
        problems += expect("the retry's error", retry.json()["error"]["code"], "conflict")
        return problems + expect("versions", len(now), 0, 1)
    if succeeded(response, {200}):
        assert isinstance(response, LambdaResponse)
        problems += expect("the retry's answer", (retry.status, retry.json()), (200, response.json()))
        return problems + expect("versions after the retry", now, [response.json()["version"]])
    problems += answer_problems(retry, {200})
    if retry.status == 200:
        problems += expect("versions after a retry that trained", now, [retry.json()["version"]])
    return problems


# jobs


def deliver(case: Case) -> Callable[[dict[str, Any], str], Any]:
    def to_worker(message: dict[str, Any], url: str) -> Any:
        return run_worker(case.aws, message, url)

    return to_worker


def expire_leases(case: Case) -> None:
    """Time passes: every lease runs out (the jobs' worker would have finished or died by then)."""
    for item in jobs_of(case.aws, case.name):
        if item["status"]["S"] == "running":
            case.aws.dynamodb.update_item(
                TableName=os.environ["JOBS_TABLE"],
                Key={"job_id": item["job_id"]},
                UpdateExpression="SET lease_expires_at = :past",
                ExpressionAttributeValues={":past": {"N": str(time.time() - 1)}},
            )


def settled_jobs(case: Case, kind: str) -> list[dict[str, Any]]:
    """Every message delivered until none is left, leases run out; the jobs as the API then reads them."""
    drain(case.aws, jobs_queue(), deliver(case))
    expire_leases(case)
    return [job_answer(kind, item["job_id"]["S"]) for item in jobs_of(case.aws, case.name)]


def job_problems(case: Case, jobs: list[dict[str, Any]]) -> list[str]:
    """Each job ended; a training job succeeded exactly when its version is registered."""
    problems = []
    versions = served(case.name)
    for job in jobs:
        if job["status"] not in ("succeeded", "failed"):
            problems.append(f"job {job['job_id']} is left {job['status']}")
        if job["status"] == "failed" and not (job["error"] or {}).get("message"):
            problems.append(f"job {job['job_id']} failed without a reason")
        if case.notes["kind"] == "training" and job["status"] == "succeeded" and job["version"] not in versions:
            problems.append(f"job {job['job_id']} succeeded but its version is not registered: {job}")
    if case.notes["kind"] == "training":
        wanted = {job["version"] for job in jobs if job["status"] == "succeeded"}
        problems += expect("versions vs succeeded jobs", set(versions), wanted)
    return problems


def submit_training(case: Case) -> Response:
    case.notes["kind"] = "training"
    return call("TrainerFunction", "POST", f"/train/{case.name}", train_body(run_async=True))


def check_submit(case: Case, response: Response) -> list[str]:
    kind = case.notes["kind"]
    items = jobs_of(case.aws, case.name)
    problems = []
    if succeeded(response, {202}):
        assert isinstance(response, LambdaResponse)
        problems += expect("jobs recorded", [item["job_id"]["S"] for item in items], [response.json()["job_id"]])
    else:
        problems += [
            f"a refused submit left job {i['job_id']['S']} queued" for i in items if i["status"]["S"] == "queued"
        ]
    jobs = settled_jobs(case, kind)
    problems += job_problems(case, jobs)
    if succeeded(response, {202}):
        problems += expect("an accepted job's end", [job["status"] for job in jobs], ["succeeded"])
    else:
        problems += expect("a refused job's end", [job["status"] for job in jobs], [], ["failed"])
    return problems


def arrange_training_job(case: Case) -> None:
    response = submit_training(case)
    assert isinstance(response, LambdaResponse)
    assert response.status == 202, response.raw_body
    arrange_job_message(case, response.json()["job_id"])


def arrange_job_message(case: Case, job_id: str) -> None:
    url = jobs_queue()
    messages = case.aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"])
    message = dict(messages["Messages"][0])
    assert json.loads(message["Body"])["job_id"] == job_id
    case.notes.update(job_id=job_id, message=message, arn=queue_arn(case.aws, url))


def run_job(case: Case) -> Response:
    """One delivery of the job's message to the worker: its batch response, or None when the invocation
    failed (Powertools raises when every record of the batch failed) or the process died."""
    event = sqs_event(case.notes["message"], case.notes["arn"], "us-east-1")
    try:
        result = dict(function_module("JobsWorkerFunction").handler(event, FakeLambdaContext()))
    except (WorkerKilled, BatchProcessingError):
        result = None
    case.notes["result"] = result
    return result


def check_run(case: Case, response: Response) -> list[str]:
    settle(case.aws, jobs_queue(), case.notes["result"], case.notes["message"])
    jobs = settled_jobs(case, case.notes["kind"])
    problems = job_problems(case, jobs)
    problems += expect("jobs", [job["job_id"] for job in jobs], [case.notes["job_id"]])
    return problems


def arrange_batch(case: Case) -> None:
    upload(case.name, 1)
    dataset = f"{uuid.uuid4().hex}.csv"
    rows = "a,b,c\n" + "".join(f"{i},{i + 1},{i + 2}\n" for i in range(20))
    case.aws.s3.put_object(Bucket=os.environ["MODELS_BUCKET"], Key=f"datasets/{dataset}", Body=rows.encode())
    case.notes.update(dataset=dataset, kind="prediction")


def submit_batch(case: Case) -> Response:
    body = {"dataset": case.notes["dataset"], "version": "v1"}
    return call("PredictFunction", "POST", f"/predict/model/{case.name}/batch", body)


def arrange_batch_job(case: Case) -> None:
    arrange_batch(case)
    response = submit_batch(case)
    assert isinstance(response, LambdaResponse)
    assert response.status == 202, response.raw_body
    arrange_job_message(case, response.json()["job_id"])


def check_batch_run(case: Case, response: Response) -> list[str]:
    problems = check_run(case, response)
    job = job_answer("prediction", case.notes["job_id"])
    if job["status"] == "succeeded":
        output = job.get("output") or {}
        problems += expect("the output's rows", output.get("rows"), 20)
    return problems


# cache


def cache_stored(case: Case) -> StoredState:
    return cache_state(case.aws, case.name)


def arrange_value(value: Any) -> Callable[[Case], None]:
    def arrange(case: Case) -> None:
        assert call("CacheFunction", "PUT", f"/cache/{case.name}", {"value": value}).status == 200
        case.notes["before"] = cached(case.name)

    return arrange


def arrange_list(*values: Any) -> Callable[[Case], None]:
    def arrange(case: Case) -> None:
        for value in values:
            assert call("CacheFunction", "PUT", f"/cache/push/{case.name}", {"value": value}).status == 200
        case.notes["before"] = cached(case.name)

    return arrange


def put_value(value: Any) -> Callable[[Case], Response]:
    def act(case: Case) -> Response:
        case.notes["after"] = value
        return call("CacheFunction", "PUT", f"/cache/{case.name}", {"value": value})

    return act


def check_put(case: Case, response: Response) -> list[str]:
    now = cached(case.name)
    if succeeded(response, {200}):
        return expect("the value after a put", now, case.notes["after"])
    return expect("the value after a failed put", now, case.notes["before"], case.notes["after"])


def delete_key(case: Case) -> Response:
    return call("CacheFunction", "DELETE", f"/cache/{case.name}")


def check_delete_key(case: Case, response: Response) -> list[str]:
    now = cached(case.name)
    if succeeded(response, {200}):
        return expect("the key after a delete", now, None)
    return expect("the key after a failed delete", now, case.notes["before"], None)


def push(value: Any) -> Callable[[Case], Response]:
    def act(case: Case) -> Response:
        case.notes["after"] = [value, *case.notes["before"]]
        return call("CacheFunction", "PUT", f"/cache/push/{case.name}", {"value": value})

    return act


def pop(case: Case) -> Response:
    return call("CacheFunction", "GET", f"/cache/pop/{case.name}")


def check_pop(case: Case, response: Response) -> list[str]:
    before = case.notes["before"]
    now = cached(case.name) or []
    if succeeded(response, {200}):
        assert isinstance(response, LambdaResponse)
        popped = response.json()
        problems = expect("the element popped", popped, before[0])
        return problems + expect("the list after a pop", now, before[1:])
    return expect("the list after a failed pop (nothing lost)", now, before)


def set_ttl(case: Case) -> Response:
    return call("CacheFunction", "PUT", f"/cache/ttl/{case.name}", {"ttl": 3600})


def check_ttl(case: Case, response: Response) -> list[str]:
    answer = call("CacheFunction", "GET", f"/cache/{case.name}")
    problems = expect("the value after a ttl change", cached(case.name), case.notes["before"])
    if succeeded(response, {200}):
        problems += expect("an expiry was set", "x-expires-at" in answer.headers, True)
    return problems


CACHE: dict[str, Any] = {"stored": cache_stored, "commit": "dynamodb.PutItem"}
CACHE_PUT: dict[str, Any] = {**CACHE, "replaced_unknown": True}
WRITE_PATHS = [
    WritePath("upload", upload_new, check_upload_new),
    WritePath("overwrite", overwrite, check_overwrite, arrange=arrange_v1),
    WritePath("delete-version", delete_version, check_delete_version, frozenset({204}), arrange_v1_v2),
    WritePath("delete-model", delete_model, check_delete_model, frozenset({204}), arrange_v1_v2),
    WritePath("train-sync", train_sync, check_train_sync),
    WritePath("train-sync-idempotency-key", train_idempotent, check_train_idempotent, busy=frozenset({409})),
    WritePath("train-job-submit", submit_training, check_submit, frozenset({202})),
    WritePath("train-job-run", run_job, check_run, arrange=arrange_training_job),
    WritePath("batch-submit", submit_batch, check_submit, frozenset({202}), arrange_batch),
    WritePath("batch-run", run_job, check_batch_run, arrange=arrange_batch_job),
    WritePath("cache-put", put_value({"v": "new"}), check_put, arrange=arrange_value({"v": "old"}), **CACHE_PUT),
    WritePath("cache-put-large", put_value("N" + LARGE), check_put, arrange=arrange_value("O" + LARGE), **CACHE_PUT),
    WritePath("cache-put-over-list", put_value(7), check_put, arrange=arrange_list(1, 2), **CACHE_PUT),
    WritePath("cache-delete", delete_key, check_delete_key, arrange=arrange_value("O" + LARGE), **CACHE),
    WritePath("cache-delete-list", delete_key, check_delete_key, arrange=arrange_list(1, "L" + LARGE), **CACHE),
    WritePath("cache-push", push("b"), check_put, arrange=arrange_list("a"), **CACHE),
    WritePath("cache-push-large", push("B" + LARGE), check_put, arrange=arrange_list("A" + LARGE), **CACHE),
    WritePath("cache-pop", pop, check_pop, arrange=arrange_list("a", "b", "c"), **CACHE),
    WritePath("cache-pop-large", pop, check_pop, arrange=arrange_list("A" + LARGE, "B" + LARGE), **CACHE),
    WritePath("cache-ttl", set_ttl, check_ttl, arrange=arrange_value({"v": 1}), **CACHE),
]
JOB_RUNS = [path for path in WRITE_PATHS if path.name.endswith("-run")]


# the runs --------------------------------------------------------------------------------------------------


def fault_steps(steps: list[Step]) -> list[Step]:
    """Every step from the first write on (a fault before it only fails the request before any change)."""
    first = next((index for index, step in enumerate(steps) if step.is_write), len(steps))
    return steps[first:]


def traced_steps(aws: AwsClients, faults: Faults, path: WritePath) -> list[Step]:
    case = Case(aws, f"{path.name}-clean")
    path.arrange(case)
    with faults.trace() as steps:
        response = path.act(case)
    problems = answer_problems(response, set(path.ok)) + path.check(case, response) + path.stored(case).problems
    assert succeeded(response, set(path.ok)) or not isinstance(response, LambdaResponse), response
    assert not problems, problems
    return fault_steps(steps)


def run_with_fault(aws: AwsClients, faults: Faults, path: WritePath, step: Step, mode: str) -> list[str]:
    case = Case(aws, f"{path.name}-{step.operation.split('.')[1].lower()}-{step.occurrence}-{mode}".replace("_", "-"))
    path.arrange(case)
    with faults.inject(step, mode) as injection:
        response = path.act(case)
    TOTALS["fault cases run"] += 1
    problems = [] if injection.faults else [f"the fault was never hit (calls seen: {injection.calls})"]
    problems += answer_problems(response, set(path.ok | path.busy))
    if mode == REFUSED and step.operation in CLEANUP and not succeeded(response, set(path.ok)):
        problems.append("a failed cleanup after a committed write failed the request")
    problems += path.check(case, response)
    stored = path.stored(case)
    problems += stored.problems
    if stored.orphans:
        TOTALS["orphan objects left (allowed)"] += len(stored.orphans)
        if not orphans_allowed(step, injection, response, path):
            problems.append(f"orphan objects {stored.orphans}")
    TOTALS["state violations"] += len(problems)
    return [f"{step} {mode}: {problem}" for problem in problems]


def orphans_allowed(step: Step, injection: Injection, response: Response, path: WritePath) -> bool:
    if step.operation in CLEANUP or injection.mode in (KILLED, KILLED_AFTER):
        return True  # best-effort cleanup; a process that dies between storing bytes and committing them
    if step.operation != path.commit or not injection.ambiguous:
        return False
    return path.replaced_unknown or not succeeded(response, set(path.ok))


@pytest.mark.parametrize("path", WRITE_PATHS, ids=str)
def test_every_step_of_every_write_fails_cleanly(
    aws: AwsClients, faults: Faults, quick_retries: None, path: WritePath
) -> None:
    """Each step from the first write on, refused, its answer lost once, its answers all lost."""
    steps = traced_steps(aws, faults, path)
    assert steps, f"{path} made no write"
    problems = [
        problem for mode in MODES for step in steps for problem in run_with_fault(aws, faults, path, step, mode)
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", JOB_RUNS, ids=str)
def test_a_worker_killed_at_any_step_leaves_the_job_ended_and_its_result_whole(
    aws: AwsClients, faults: Faults, quick_retries: None, path: WritePath
) -> None:
    """The process dies (nothing of it runs on) as a step is sent, or just after it was applied: the message
    comes back after its visibility timeout, long after the job's lease; the job ends failed or, when the
    registration had committed, succeeded with it."""
    steps = traced_steps(aws, faults, path)
    problems = [
        problem
        for mode in (KILLED, KILLED_AFTER)
        for step in steps
        for problem in run_with_fault(aws, faults, path, step, mode)
    ]
    assert not problems, "\n".join(problems)


# throttling ------------------------------------------------------------------------------------------------


def attempts_allowed(aws: AwsClients) -> int:
    """HTTP attempts botocore makes per call: settings.aws_max_attempts, the first try included (it reaches
    botocore as retries.total_max_attempts)."""
    return int(aws.dynamodb.meta.config.retries["total_max_attempts"])


def backoff_bound(attempts: int) -> float:
    """The longest botocore's backoff can sleep over `attempts` attempts: standard and adaptive modes wait at
    most min(2 ** i, 20) seconds before retry i (from 0), whatever the random jitter."""
    return float(sum(min(2**retry, 20) for retry in range(attempts - 1)))


# (AWS_RETRY_MODE, AWS_MAX_ATTEMPTS, the throttled call, the request): the backoff sleeps for real here.
THROTTLED_WRITES = [
    ("standard", "3", "s3.PutObject", "upload"),
    ("standard", "2", "dynamodb.TransactWriteItems", "upload"),
    ("adaptive", "2", "dynamodb.TransactWriteItems", "upload"),
    ("standard", "2", "sqs.SendMessage", "submit"),
]


@pytest.mark.parametrize(("retry_mode", "max_attempts", "operation", "request_kind"), THROTTLED_WRITES)
def test_throttling_is_retried_with_backoff_and_answered_503_once_the_attempts_are_spent(
    aws: AwsClients,
    monkeypatch: pytest.MonkeyPatch,
    retry_mode: str,
    max_attempts: str,
    operation: str,
    request_kind: str,
) -> None:
    monkeypatch.setenv("AWS_RETRY_MODE", retry_mode)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", max_attempts)
    reset_cached_wiring()
    clients = get_clients()  # built with the settings' aws_max_attempts and aws_retry_mode
    assert clients.dynamodb.meta.config.retries["mode"] == retry_mode
    attempts = attempts_allowed(clients)
    assert attempts == int(max_attempts)
    faults = Faults(clients)

    def send(name: str) -> LambdaResponse:
        if request_kind == "upload":
            return call("RegistryFunction", "POST", f"/models/{name}", model_body(1))
        return call("TrainerFunction", "POST", f"/train/{name}", train_body(run_async=True))

    try:
        with faults.inject(Step(operation, 1), THROTTLED, times=attempts - 1) as injection:
            response = send("throttled-then-through")
        assert response.status in (200, 202), response.raw_body
        assert (injection.faults, injection.attempts) == (attempts - 1, list(range(1, attempts + 1)))

        started = time.monotonic()
        with faults.inject(Step(operation, 1), THROTTLED, times=attempts) as injection:
            response = send("throttled-out")
        elapsed = time.monotonic() - started
    finally:
        faults.restore()
    TOTALS["throttling cases run"] += 2
    assert injection.attempts == list(range(1, attempts + 1)), "bounded: no attempt past the setting"
    assert answer_problems(response, set()) == []  # a 503 with Retry-After and the error shape
    assert response.status == 503
    assert response.json()["error"]["code"] == "service_unavailable"
    # Bounded, not fast: adaptive mode's client-side rate limiter also waits after throttling, and the
    # machine may be loaded (CI saw 4.2 s against a 1 s backoff bound); an unbounded retry would hang.
    assert elapsed < backoff_bound(attempts) + 15.0, elapsed
    reset_cached_wiring()  # fresh clients: adaptive mode's rate limiter would slow the checks down
    assert served("throttled-out") == {}
    if request_kind == "submit":
        assert [item["status"]["S"] for item in jobs_of(aws, "throttled-out")] == ["failed"]


# poisoned messages and dead letters ------------------------------------------------------------------------


def submitted_job(aws: AwsClients, model: str) -> str:
    response = call("TrainerFunction", "POST", f"/train/{model}", train_body(run_async=True))
    assert response.status == 202, response.raw_body
    return str(response.json()["job_id"])


def receive_all(aws: AwsClients, url: str) -> list[dict[str, Any]]:
    response = aws.sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"], WaitTimeSeconds=0
    )
    return [dict(message) for message in response.get("Messages", [])]


def test_a_message_the_worker_keeps_failing_on_lands_in_the_dead_letter_queue_and_fails_its_job(
    aws: AwsClients, faults: Faults, quick_retries: None
) -> None:
    """The worker cannot even read the job (its table refuses every read): each delivery fails, SQS moves the
    message to the dead-letter queue after maxReceiveCount of them, and that queue's consumer fails the job
    with the reason, which GET /train/jobs/{id} shows."""
    job_id = submitted_job(aws, "poisoned")
    dead_letters, max_receives = dead_letter_queue(aws, jobs_queue())
    with faults.inject(Step("dynamodb.GetItem", 0), REFUSED):
        for delivery in range(1, max_receives + 1):
            [message] = receive_all(aws, jobs_queue())
            assert message["Attributes"]["ApproximateReceiveCount"] == str(delivery)
            result = run_worker_or_none(aws, message, jobs_queue())
            assert result is None or result["batchItemFailures"], result
            settle(aws, jobs_queue(), result, message)
        assert receive_all(aws, jobs_queue()) == []  # SQS moved it on this receive
    assert job_answer("training", job_id)["status"] == "queued"  # nothing could record anything meanwhile

    [moved] = receive_all(aws, dead_letters)
    assert json.loads(moved["Body"]) == {"job_id": job_id}
    assert run_worker(aws, moved, dead_letters) == {"batchItemFailures": []}
    failed = job_answer("training", job_id)
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "dead_letter"
    assert f"after {max_receives} attempts" in failed["error"]["message"]
    assert "dead-letter queue" in failed["error"]["message"]
    assert served("poisoned") == {}


def run_worker_or_none(aws: AwsClients, message: dict[str, Any], url: str) -> dict[str, Any] | None:
    try:
        return run_worker(aws, message, url)
    except BatchProcessingError:  # every record failed: Lambda retries the batch
        return None


@pytest.mark.parametrize("corruption", [b"not gzip at all", b"\x1f\x8b\x08\x00cut short", "gzip of not json"])
def test_a_job_whose_request_document_is_corrupt_fails_at_once_with_the_reason(
    aws: AwsClients, corruption: bytes | str
) -> None:
    """No retry can read a corrupt document: the worker fails the job on the first delivery and consumes the
    message (it never needs the dead-letter queue)."""
    job_id = submitted_job(aws, "corrupt-request")
    body = gzip.compress(b"{not json") if isinstance(corruption, str) else corruption
    key = f"jobs/{job_id}/request.json.gz"
    aws.s3.put_object(Bucket=os.environ["MODELS_BUCKET"], Key=key, Body=body)
    [message] = receive_all(aws, jobs_queue())
    assert run_worker(aws, message) == {"batchItemFailures": []}
    failed = job_answer("training", job_id)
    assert (failed["status"], failed["error"]["code"]) == ("failed", "invalid_input")
    assert key in failed["error"]["message"]
    assert "cannot be read" in failed["error"]["message"]
    assert served("corrupt-request") == {}
    dead_letters, _ = dead_letter_queue(aws, jobs_queue())
    assert receive_all(aws, dead_letters) == []


@pytest.mark.parametrize("body", ["not json", "[1, 2]", '{"job_id": 7}', "{}"])
def test_a_message_that_names_no_job_is_consumed_and_changes_nothing(aws: AwsClients, body: str) -> None:
    job_id = submitted_job(aws, "bystander")
    [job_message] = receive_all(aws, jobs_queue())
    aws.sqs.send_message(QueueUrl=jobs_queue(), MessageBody=body)
    [poison] = receive_all(aws, jobs_queue())
    assert run_worker(aws, poison) == {"batchItemFailures": []}  # retrying cannot give it a job: consumed
    assert job_answer("training", job_id)["status"] == "queued"
    assert run_worker(aws, job_message) == {"batchItemFailures": []}
    assert job_answer("training", job_id)["status"] == "succeeded"


# a training job's success and its version, together ---------------------------------------------------------


def test_a_training_job_succeeds_in_the_transaction_that_registers_its_version(aws: AwsClients, faults: Faults) -> None:
    """The job's success is one of the registry transaction's writes: no write to the job follows it."""
    job_id = submitted_job(aws, "atomic")
    [message] = receive_all(aws, jobs_queue())
    transactions: list[list[str]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        transactions.append([next(iter(write.values()))["TableName"] for write in params["TransactItems"]])

    event = "before-parameter-build.dynamodb.TransactWriteItems"
    aws.dynamodb.meta.events.register(event, record, unique_id="atomic")
    try:
        with faults.trace() as steps:
            assert run_worker(aws, message) == {"batchItemFailures": []}
    finally:
        aws.dynamodb.meta.events.unregister(event, unique_id="atomic")
    registry, jobs = os.environ["REGISTRY_TABLE"], os.environ["JOBS_TABLE"]
    assert transactions == [[registry, registry, jobs]]
    assert str(steps[-1]) == "dynamodb.TransactWriteItems#1", [str(step) for step in steps]
    done = job_answer("training", job_id)
    assert (done["status"], done["version"]) == ("succeeded", "v1")
    assert served("atomic")["v1"][0] == served("atomic")["v1"][1]


@pytest.mark.parametrize("mode", [*MODES, KILLED, KILLED_AFTER])
def test_the_step_that_marks_a_training_job_succeeded_is_all_or_nothing_with_its_version(
    aws: AwsClients, faults: Faults, quick_retries: None, mode: str
) -> None:
    """The known bug: the worker registered the version, then failed (or died) marking the job succeeded,
    and the job read failed/worker_lost while its version was live. The job's success is now a write of the
    registration's transaction: a fault there leaves both or neither."""
    path = next(path for path in JOB_RUNS if path.name == "train-job-run")
    problems = run_with_fault(aws, faults, path, Step("dynamodb.TransactWriteItems", 1), mode)
    assert not problems, "\n".join(problems)


def test_a_job_failed_by_its_lease_while_the_worker_trained_registers_nothing(
    aws: AwsClients, faults: Faults, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker outlived its lease: a reader failed the job (worker_lost) while it trained. The registry's
    transaction then finds the job no longer running and is refused whole: no version, no bytes left."""
    job_id = submitted_job(aws, "outlived")
    [message] = receive_all(aws, jobs_queue())
    original = get_job_service().success_write

    def lease_runs_out_first(job: str, outcome: Any) -> dict[str, Any]:
        expire_leases(Case(aws, "outlived"))
        assert job_answer("training", job)["status"] == "failed"  # a reader enforces the lease
        return original(job, outcome)

    monkeypatch.setattr(get_job_service(), "success_write", lease_runs_out_first)
    assert run_worker(aws, message) == {"batchItemFailures": []}
    failed = job_answer("training", job_id)
    assert (failed["status"], failed["error"]["code"]) == ("failed", "worker_lost")
    assert served("outlived") == {}
    state = registry_state(aws, "outlived")
    assert (state.problems, state.orphans) == ([], [])


def test_a_job_queued_whose_message_and_failure_were_both_lost_fails_after_the_queue_retention(
    aws: AwsClients, faults: Faults, quick_retries: None
) -> None:
    """Two faults in a row: the message is not sent, and marking the job failed fails too. The job cannot
    stay queued forever: once no message could still be in the queue (its retention), reads fail it."""
    with (
        faults.inject(Step("sqs.SendMessage", 1), REFUSED),
        faults.inject(Step("dynamodb.UpdateItem", 1), REFUSED),
    ):
        response = call("TrainerFunction", "POST", "/train/unsent", train_body(run_async=True))
    assert answer_problems(response, set()) == []
    assert response.status == 503
    [item] = jobs_of(aws, "unsent")
    assert item["status"]["S"] == "queued"
    jobs = copy.copy(get_job_service())
    retention = next(
        int(queue["Properties"]["MessageRetentionPeriod"])
        for name, queue in Template.load().resources_of_type("AWS::SQS::Queue").items()
        if "RedrivePolicy" in queue["Properties"]
    )
    assert retention == jobs_module.QUEUE_RETENTION_SECONDS
    jobs._clock = lambda: time.time() + retention + 1  # type: ignore[method-assign]
    late = jobs.get("training", item["job_id"]["S"])
    assert late is not None
    assert late.status == "failed"
    assert late.error is not None
    assert late.error["code"] == "not_delivered"
