"""Training jobs through the trainer's and the worker's Lambda handlers against moto, in process.

The trainer answers 202 with a job and queues a message; the worker is fed that message in the real SQS event
shape (`sqs_event`) and runs the job; leases, dead letters and queue failures end jobs as failed, never stuck.
"""

import copy
import json
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.stub import Stubber
from conftest import reset_cached_wiring
from sklearn.datasets import load_diabetes

from lrnstak.errors import ServiceUnavailable
from lrnstak.jobs.service import get_job_service, iso_now
from lrnstak.registry.service import RegistryService
from lrnstak.storage.clients import AwsClients
from lrnstak.storage.jobs_table import TRAINING, JobsTable
from lrnstak.storage.queue import JobQueue, queue_name_of
from lrnstak.trainer import service as trainer_service
from lrnstak.trainer.service import TrainingAbandoned

from support.events import http_v2_event, rest_v1_event
from support.functions import LambdaResponse, invoke
from support.jobs import jobs_queue, receive, run_worker

HEX = "0123456789abcdef"


def diabetes_rows() -> list[dict[str, Any]]:
    bunch = load_diabetes()
    names = [str(name) for name in bunch.feature_names]
    return [
        {**dict(zip(names, map(float, x), strict=True)), "target": float(y)}
        for x, y in zip(bunch.data, bunch.target, strict=True)
    ]


ROWS = diabetes_rows()


def body(algorithm: str = "linear_regression", run_async: bool | None = True, **extra: Any) -> dict[str, Any]:
    request: dict[str, Any] = {"training_data": ROWS, "parameters": {"target_label": "target", "algorithm": algorithm}}
    if run_async is not None:
        request["async"] = run_async
    request["parameters"].update(extra)
    return request


def train(
    name: str, request: dict[str, Any], headers: dict[str, str] | None = None, path: str = "/train/{}"
) -> LambdaResponse:
    return invoke("TrainerFunction", rest_v1_event("POST", path.format(name), body=request, headers=headers))


def get_job(job_id: str) -> LambdaResponse:
    return invoke("TrainerFunction", rest_v1_event("GET", f"/train/jobs/{job_id}"))


def list_jobs(query: dict[str, str] | None = None) -> LambdaResponse:
    return invoke("TrainerFunction", rest_v1_event("GET", "/train/jobs", query=query))


def versions(name: str) -> list[str]:
    response = invoke("RegistryFunction", rest_v1_event("GET", f"/models/{name}"))
    if response.status == 404:
        return []
    assert response.status == 200, response.raw_body
    return [entry["version"] for entry in response.json()["versions"]]


def dead_letter_queue(aws: AwsClients) -> str:
    redrive = aws.sqs.get_queue_attributes(QueueUrl=jobs_queue(), AttributeNames=["RedrivePolicy"])
    arn = json.loads(redrive["Attributes"]["RedrivePolicy"])["deadLetterTargetArn"]
    return aws.sqs.get_queue_url(QueueName=queue_name_of(arn))["QueueUrl"]


def receive_job_message(aws: AwsClients, job_id: str) -> dict[str, Any]:
    messages = receive(aws, jobs_queue())
    assert [json.loads(m["Body"])["job_id"] for m in messages] == [job_id]
    return messages[0]


def job(job_id: str) -> dict[str, Any]:
    response = get_job(job_id)
    assert response.status == 200, response.raw_body
    return dict(response.json())


def only_job(model: str) -> dict[str, Any]:
    listed = list_jobs({"model": model})
    assert listed.status == 200, listed.raw_body
    assert len(listed.json()) == 1
    return dict(listed.json()[0])


def accepted_job_id(response: LambdaResponse) -> str:
    assert response.status == 202, response.raw_body
    answer = response.json()
    job_id = answer["job_id"]
    assert len(job_id) == 32
    assert set(job_id) <= set(HEX)
    assert answer == {"job_id": job_id, "status": "queued", "links": {"self": f"/prod/train/jobs/{job_id}"}}
    assert response.headers["location"] == f"/prod/train/jobs/{job_id}"
    return str(job_id)


def set_lease(aws: AwsClients, job_id: str, lease: float) -> None:
    aws.dynamodb.update_item(
        TableName=os.environ["JOBS_TABLE"],
        Key={"job_id": {"S": job_id}},
        UpdateExpression="SET lease_expires_at = :lease",
        ExpressionAttributeValues={":lease": {"N": str(lease)}},
    )


def claim(aws: AwsClients, job_id: str, lease: float) -> None:
    """What a worker does when it takes the job: queued -> running until `lease`."""
    assert JobsTable(aws.dynamodb, os.environ["JOBS_TABLE"]).claim(job_id, iso_now(), lease)


@pytest.fixture
def training_attempts(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """The synchronous attempts the service starts, so a test can wait for abandoned ones."""
    attempts: list[Any] = []
    original_init = trainer_service._Attempt.__init__

    def recording_init(self: Any) -> None:
        original_init(self)
        attempts.append(self)

    monkeypatch.setattr(trainer_service._Attempt, "__init__", recording_init)
    yield attempts
    for attempt in attempts:
        attempt.exception(timeout=60)  # never leave an attempt writing into the next test's moto


# 1. a job end to end -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "request_body", "headers"),
    [
        ("/train/{}", body(), None),
        ("/train/model/{}", body(), None),
        ("/train/{}", body(run_async=None), {"Prefer": "respond-async"}),
        ("/train/model/{}", body(run_async=False), {"Prefer": "respond-async, wait=10"}),
    ],
    ids=["async-field", "async-field-long-route", "prefer-header", "prefer-header-long-route"],
)
def test_an_async_request_is_a_job_the_worker_runs_to_a_registered_version(
    aws: AwsClients, path: str, request_body: dict[str, Any], headers: dict[str, str] | None
) -> None:
    job_id = accepted_job_id(train("async-model", request_body, headers, path))
    queued = job(job_id)
    assert queued["status"] == "queued"
    assert queued["model"] == "async-model"
    assert queued["progress"] == 0
    assert queued["created_at"].endswith("Z")
    assert queued["started_at"] is None
    assert queued["finished_at"] is None
    assert queued["error"] is None
    assert versions("async-model") == []  # nothing is trained before the worker runs

    message = receive_job_message(aws, job_id)
    assert message["Attributes"]["ApproximateReceiveCount"] == "1"
    assert run_worker(aws, message) == {"batchItemFailures": []}

    done = job(job_id)
    assert done["status"] == "succeeded", done
    assert done["progress"] == 1.0
    assert done["version"] == "v1"
    assert done["error"] is None
    assert done["started_at"] is not None
    assert done["finished_at"] is not None
    assert done["created_at"] <= done["started_at"] <= done["finished_at"]
    assert done["training_results"]["algorithm"] == "linear_regression"
    assert done["training_results"]["metadata"]["rows"] == len(ROWS)
    assert versions("async-model") == ["v1"]
    info = invoke("RegistryFunction", rest_v1_event("GET", "/models/async-model/v1/info")).json()
    explained = {key: done["training_results"].pop(key) for key in ("explanation", "holdout")}
    assert info["training_scores"] == done["training_results"]
    assert {key: info[key] for key in explained} == explained


def test_jobs_are_listed_newest_first_per_model_and_overall(aws: AwsClients) -> None:
    first = accepted_job_id(train("listed", body()))
    time.sleep(0.01)  # created_at has millisecond precision
    second = accepted_job_id(train("listed", body(), {"Prefer": "respond-async"}))
    time.sleep(0.01)
    other = accepted_job_id(train("other-model", body()))
    run_worker(aws, receive(aws, jobs_queue())[0])  # whichever: status must not change the order

    listed = list_jobs({"model": "listed"})
    assert listed.status == 200, listed.raw_body
    assert [j["job_id"] for j in listed.json()] == [second, first]
    assert {j["model"] for j in listed.json()} == {"listed"}
    assert [j["job_id"] for j in list_jobs({"model": "listed", "limit": "1"}).json()] == [second]
    assert [j["job_id"] for j in list_jobs().json()] == [other, second, first]
    assert list_jobs({"model": "nobody"}).json() == []


@pytest.mark.parametrize("query", [{"limit": "0"}, {"limit": "101"}, {"limit": "ten"}, {"model": "bad name!"}])
def test_listing_jobs_refuses_bad_queries(aws: AwsClients, query: dict[str, str]) -> None:
    response = list_jobs(query)
    assert 400 <= response.status < 500, response.raw_body
    assert set(response.json()["error"]) == {"code", "message", "details"}


# 2. unknown jobs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "job_id", ["0" * 32, "f" * 32, "abc", "A" * 32, "g" * 32, "0" * 33, "..%2F..%2Fetc", "0" * 31 + "%20"]
)
def test_an_unknown_or_malformed_job_id_is_404_with_the_error_shape(aws: AwsClients, job_id: str) -> None:
    accepted_job_id(train("exists", body()))  # a table with a job in it
    response = get_job(job_id)
    assert response.status == 404, response.raw_body
    answer = response.json()
    assert answer["error"]["code"] == "not_found"
    assert answer["error"]["message"]
    assert "request_id" in answer


# 3. the synchronous budget -----------------------------------------------------------------------------


@pytest.fixture
def tiny_budget(monkeypatch: pytest.MonkeyPatch, aws: AwsClients) -> None:
    monkeypatch.setenv("SYNC_TRAINING_BUDGET_SECONDS", "0.001")
    reset_cached_wiring()


def test_a_request_that_outlasts_the_budget_becomes_one_job_and_one_version(
    aws: AwsClients, tiny_budget: None, training_attempts: list[Any]
) -> None:
    response = train(
        "over-budget", body("random_forest", run_async=None, hyper={"random_forest": {"n_estimators": 60}})
    )
    job_id = accepted_job_id(response)
    assert job(job_id)["status"] == "queued"
    assert len(training_attempts) == 1

    assert run_worker(aws, receive_job_message(aws, job_id)) == {"batchItemFailures": []}
    assert job(job_id)["status"] == "succeeded"
    assert job(job_id)["version"] == "v1"

    assert isinstance(training_attempts[0].exception(timeout=60), TrainingAbandoned)
    assert versions("over-budget") == ["v1"]
    assert receive(aws, jobs_queue()) == []  # one job, one message


def test_an_abandoned_attempt_that_finishes_first_still_registers_nothing(
    aws: AwsClients, tiny_budget: None, training_attempts: list[Any]
) -> None:
    # A forest takes ~100x the 1 ms budget: a linear fit could end before the request even starts waiting.
    slow = body("random_forest", run_async=None, hyper={"random_forest": {"n_estimators": 60}})
    job_id = accepted_job_id(train("abandoned-first", slow))
    assert isinstance(training_attempts[0].exception(timeout=60), TrainingAbandoned)
    assert versions("abandoned-first") == []
    run_worker(aws, receive_job_message(aws, job_id))
    assert versions("abandoned-first") == ["v1"]


def test_a_request_within_the_budget_answers_200_and_queues_nothing(aws: AwsClients) -> None:
    response = train("in-budget", body(run_async=None))
    assert response.status == 200, response.raw_body
    assert response.json()["version"] == "v1"
    assert list_jobs({"model": "in-budget"}).json() == []
    assert receive(aws, jobs_queue()) == []


def test_an_attempt_already_saving_when_the_budget_runs_out_is_not_registered_twice(
    aws: AwsClients, monkeypatch: pytest.MonkeyPatch, training_attempts: list[Any]
) -> None:
    """Training ends inside the budget, saving the version outlasts it: one registration, not two."""
    monkeypatch.setenv("SYNC_TRAINING_BUDGET_SECONDS", "1")
    reset_cached_wiring()
    original = RegistryService.save_version
    saving = threading.Event()

    def slow_save(self: RegistryService, *args: Any, **kwargs: Any) -> Any:
        if threading.current_thread().name.startswith("training"):
            saving.set()
            time.sleep(2)  # S3 and DynamoDB being slow with a large model
        return original(self, *args, **kwargs)

    monkeypatch.setattr(RegistryService, "save_version", slow_save)
    response = train("saving-late", body(run_async=None))
    assert saving.is_set()
    if response.status == 202:
        job_id = accepted_job_id(response)
        run_worker(aws, receive_job_message(aws, job_id))
        training_attempts[0].exception(timeout=60)
        assert versions("saving-late") == [job(job_id)["version"]]
    else:
        assert response.status == 200, response.raw_body
        assert versions("saving-late") == ["v1"]
        assert receive(aws, jobs_queue()) == []


# 4. bad input found by the worker ----------------------------------------------------------------------


def test_bad_input_fails_the_job_with_the_reason_and_consumes_the_message(aws: AwsClients) -> None:
    request = {"training_data": ROWS, "parameters": {"target_label": "no_such_column"}, "async": True}
    job_id = accepted_job_id(train("bad-async", request))
    message = receive_job_message(aws, job_id)
    assert run_worker(aws, message) == {"batchItemFailures": []}

    failed = job(job_id)
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "invalid_input"
    assert "'no_such_column'" in failed["error"]["message"]
    assert failed["finished_at"] is not None
    assert failed["training_results"] is None
    assert versions("bad-async") == []

    assert run_worker(aws, message) == {"batchItemFailures": []}  # a redelivery changes nothing
    assert job(job_id) == failed


@pytest.mark.parametrize("run_async", [True, None], ids=["job", "sync"])
@pytest.mark.parametrize("algorithm", ["linear_regression", "random_forest"])
def test_a_missing_target_column_is_named_whatever_the_algorithm(
    aws: AwsClients, run_async: bool | None, algorithm: str
) -> None:
    request = body(algorithm, run_async=run_async)
    request["parameters"]["target_label"] = "no_such_column"
    response = train("missing-target", request)
    if run_async:
        run_worker(aws, receive_job_message(aws, accepted_job_id(response)))
        error = only_job("missing-target")["error"]
    else:
        assert response.status == 400, response.raw_body
        error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert "'no_such_column'" in error["message"], error


def test_a_message_for_an_unknown_job_is_consumed(aws: AwsClients) -> None:
    aws.sqs.send_message(QueueUrl=jobs_queue(), MessageBody=json.dumps({"job_id": "0" * 32}))
    assert run_worker(aws, receive(aws, jobs_queue())[0]) == {"batchItemFailures": []}


# 5. leases ---------------------------------------------------------------------------------------------


def test_a_running_job_past_its_lease_reads_as_failed_worker_lost(aws: AwsClients) -> None:
    job_id = accepted_job_id(train("lost", body()))
    claim(aws, job_id, time.time() + 900)
    assert job(job_id)["status"] == "running"
    set_lease(aws, job_id, time.time() - 1)

    failed = job(job_id)
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "worker_lost"
    message = failed["error"]["message"]
    assert "worker stopped" in message
    assert "timed out after 900 s" in message  # WORKER_TIMEOUT_SECONDS from the template
    assert "attempt 1" in message
    assert failed["finished_at"] is not None
    assert job(job_id) == failed  # it stays failed
    assert [j["status"] for j in list_jobs({"model": "lost"}).json()] == ["failed"]


def test_listing_enforces_leases_too(aws: AwsClients) -> None:
    job_id = accepted_job_id(train("lost-listed", body()))
    claim(aws, job_id, time.time() - 1)
    listed = list_jobs({"model": "lost-listed"}).json()
    assert [(j["job_id"], j["status"], j["error"]["code"]) for j in listed] == [(job_id, "failed", "worker_lost")]


def test_lease_enforcement_follows_the_services_clock(aws: AwsClients, monkeypatch: pytest.MonkeyPatch) -> None:
    """A JobService with an injected clock: a lease is live until the clock passes it, not before."""
    job_id = accepted_job_id(train("clocked", body()))
    now = [1_000_000.0]
    clocked = copy.copy(get_job_service())  # the same table, queue and store; its own clock and timeout
    monkeypatch.setattr(clocked, "_clock", lambda: now[0])
    monkeypatch.setattr(clocked, "_worker_timeout", 60)
    claim(aws, job_id, now[0] + 60)
    now[0] += 59.9
    assert (running := clocked.get(TRAINING, job_id)) is not None
    assert running.status == "running"
    now[0] += 0.2
    lost = clocked.get(TRAINING, job_id)
    assert lost is not None
    assert lost.status == "failed"
    assert lost.error is not None
    assert lost.error["code"] == "worker_lost"
    assert "60 s" in lost.error["message"]


def test_a_live_lease_is_left_running_by_reads_and_by_a_duplicate_delivery(aws: AwsClients) -> None:
    job_id = accepted_job_id(train("busy", body()))
    message = receive_job_message(aws, job_id)
    claim(aws, job_id, time.time() + 900)
    before = job(job_id)
    assert before["status"] == "running"

    assert run_worker(aws, message) == {"batchItemFailures": []}  # another worker has it: consumed, no change
    after = job(job_id)
    assert after == before
    assert versions("busy") == []
    item = aws.dynamodb.get_item(TableName=os.environ["JOBS_TABLE"], Key={"job_id": {"S": job_id}})["Item"]
    assert item["attempts"]["N"] == "1"


def test_a_redelivery_after_the_lease_fails_the_job_instead_of_running_it_again(aws: AwsClients) -> None:
    job_id = accepted_job_id(train("redelivered", body()))
    message = receive_job_message(aws, job_id)
    claim(aws, job_id, time.time() - 1)
    assert run_worker(aws, message) == {"batchItemFailures": []}
    failed = job(job_id)
    assert (failed["status"], failed["error"]["code"]) == ("failed", "worker_lost")
    assert versions("redelivered") == []


# 6. dead letters ---------------------------------------------------------------------------------------


def test_a_message_that_reaches_the_dead_letter_queue_fails_its_job(aws: AwsClients) -> None:
    job_id = accepted_job_id(train("dead", body()))
    dead_letters = dead_letter_queue(aws)
    redrive = aws.sqs.get_queue_attributes(QueueUrl=jobs_queue(), AttributeNames=["RedrivePolicy"])
    max_receives = json.loads(redrive["Attributes"]["RedrivePolicy"])["maxReceiveCount"]
    # The worker got it max_receives times and never deleted it; SQS moves it on the next receive.
    for _ in range(max_receives):
        assert len(receive(aws, jobs_queue(), visibility=0)) == 1
    assert receive(aws, jobs_queue(), visibility=0) == []
    moved = receive(aws, dead_letters)
    assert [json.loads(m["Body"])["job_id"] for m in moved] == [job_id]

    assert run_worker(aws, moved[0], dead_letters) == {"batchItemFailures": []}
    failed = job(job_id)
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "dead_letter"
    assert "dead-letter queue" in failed["error"]["message"]
    assert versions("dead") == []
    # The count SQS carries into the dead-letter queue includes this delivery from it (here 3): the worker
    # itself had the message max_receives (2) times.
    assert f"after {max_receives} attempts" in failed["error"]["message"], (
        failed["error"]["message"],
        moved[0]["Attributes"]["ApproximateReceiveCount"],
    )


def test_a_dead_letter_record_fails_a_running_job(aws: AwsClients) -> None:
    job_id = accepted_job_id(train("dead-running", body()))
    message = receive_job_message(aws, job_id)
    claim(aws, job_id, time.time() + 900)
    message["Attributes"]["ApproximateReceiveCount"] = "3"
    assert run_worker(aws, message, dead_letter_queue(aws)) == {"batchItemFailures": []}
    failed = job(job_id)
    assert (failed["status"], failed["error"]["code"]) == ("failed", "dead_letter")
    assert "dead-letter queue" in failed["error"]["message"]


def test_a_finished_job_is_never_changed_by_a_dead_letter_or_a_redelivery(aws: AwsClients) -> None:
    job_id = accepted_job_id(train("finished", body()))
    message = receive_job_message(aws, job_id)
    assert run_worker(aws, message) == {"batchItemFailures": []}
    done = job(job_id)
    assert done["status"] == "succeeded"

    message["Attributes"]["ApproximateReceiveCount"] = "2"
    assert run_worker(aws, message) == {"batchItemFailures": []}
    assert job(job_id) == done
    assert run_worker(aws, message, dead_letter_queue(aws)) == {"batchItemFailures": []}
    assert job(job_id) == done
    assert versions("finished") == ["v1"]


def test_a_dead_letter_record_that_names_no_job_is_consumed_not_retried_forever(aws: AwsClients) -> None:
    dead_letters = dead_letter_queue(aws)
    aws.sqs.send_message(QueueUrl=dead_letters, MessageBody="not a job")
    message = receive(aws, dead_letters)[0]
    assert run_worker(aws, message, dead_letters) == {"batchItemFailures": []}


# 7. nothing half-written -------------------------------------------------------------------------------


def test_a_queue_that_refuses_the_job_answers_503_and_the_job_is_failed(
    aws: AwsClients, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: JobQueue, job_id: str) -> None:
        raise ServiceUnavailable("AWS is busy (Throttling) while trying to queue a job; retry shortly.")

    monkeypatch.setattr(JobQueue, "send", refuse)
    response = train("unqueued", body())
    assert response.status == 503, response.raw_body
    assert response.json()["error"]["code"] == "service_unavailable"
    assert "retry-after" in response.headers
    recorded = only_job("unqueued")
    assert recorded["status"] == "failed"
    assert recorded["error"]["code"] == "service_unavailable"
    assert "could not be queued" in recorded["error"]["message"]
    assert recorded["finished_at"] is not None


@pytest.mark.parametrize(
    ("code", "http_status", "expected_status"),
    [
        ("ServiceUnavailable", 503, 503),
        ("ThrottlingException", 400, 503),
        # SendMessage's own documented errors: SQS throttling, SSE-KMS throttling, and a missing permission.
        ("RequestThrottled", 400, 503),
        ("KmsThrottled", 400, 503),
        ("AccessDenied", 403, 500),
    ],
)
def test_any_queue_error_fails_the_job_rather_than_leaving_it_queued(
    aws: AwsClients, code: str, http_status: int, expected_status: int
) -> None:
    model = f"unqueued-{code.lower()}"
    sqs = get_job_service()._queue._sqs
    with Stubber(sqs) as stub:
        for _ in range(5):  # botocore retries the retryable ones
            stub.add_client_error("send_message", service_error_code=code, http_status_code=http_status)
        response = train(model, body())
    recorded = only_job(model)
    assert recorded["status"] == "failed", recorded  # a queued job without a message would stay queued forever
    assert "could not be queued" in recorded["error"]["message"]
    assert response.status == expected_status, response.raw_body
    assert set(response.json()["error"]) == {"code", "message", "details"}


def test_a_missing_training_queue_fails_the_job_rather_than_leaving_it_queued(
    aws: AwsClients, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = jobs_queue().rsplit("/", 1)[0] + "/no-such-queue"
    monkeypatch.setenv("JOBS_QUEUE_URL", missing)
    reset_cached_wiring()
    response = train("no-queue", body())
    recorded = only_job("no-queue")
    assert recorded["status"] == "failed", recorded
    # Like a missing table or bucket (lrnstak.storage.errors): a deployment that is not ready, retry later.
    assert response.status == 503, response.raw_body
    assert response.json()["error"]["code"] == "service_unavailable"


@pytest.mark.parametrize(("stage", "prefix"), [("$default", ""), ("dev", "/dev")])
def test_the_job_link_keeps_the_stage_the_client_called_through(aws: AwsClients, stage: str, prefix: str) -> None:
    response = invoke("TrainerFunction", http_v2_event("POST", "/train/linked", body=body(), stage=stage))
    assert response.status == 202, response.raw_body
    link = f"{prefix}/train/jobs/{response.json()['job_id']}"
    assert (response.headers["location"], response.json()["links"]["self"]) == (link, link)
