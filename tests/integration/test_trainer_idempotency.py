"""Idempotency-Key: a retried training request within an hour gets the first answer and trains nothing twice."""

import os
import time
from typing import Any

from lrnstak.storage.clients import AwsClients

from support.events import rest_v1_event
from support.functions import LambdaResponse, invoke

ROWS = [{"x": float(i), "z": float(i % 3), "y": 3.0 * i + 1} for i in range(40)]
BODY = {"training_data": ROWS, "parameters": {"target_label": "y", "algorithm": "linear_regression"}}


def train(body: dict[str, Any], key: str | None, model: str = "once") -> LambdaResponse:
    headers = {"Idempotency-Key": key} if key else None
    return invoke("TrainerFunction", rest_v1_event("POST", f"/train/{model}", body=body, headers=headers))


def versions(model: str) -> list[str]:
    response = invoke("RegistryFunction", rest_v1_event("GET", f"/models/{model}"))
    return [entry["version"] for entry in response.json()["versions"]] if response.status == 200 else []


def test_a_retry_with_the_same_key_gets_the_first_answer_and_trains_nothing(aws: AwsClients) -> None:
    first = train(BODY, "key-1")
    assert first.status == 200, first.raw_body
    started = time.perf_counter()
    again = train(BODY, "key-1")
    assert again.status == 200
    assert again.json() == first.json()
    assert versions("once") == ["v1"]
    records = aws.dynamodb.scan(TableName=os.environ["IDEMPOTENCY_TABLE"])["Items"]
    assert len(records) == 1
    assert records[0]["status"]["S"] == "COMPLETED"
    assert int(records[0]["expiration"]["N"]) - time.time() > 3500
    assert time.perf_counter() - started < 5


def test_different_keys_or_no_key_train_again(aws: AwsClients) -> None:
    assert train(BODY, "key-a").status == 200
    assert train(BODY, "key-b").status == 200
    assert train(BODY, None).status == 200
    assert sorted(versions("once")) == ["v1", "v2", "v3"]


def test_the_key_is_scoped_to_the_model(aws: AwsClients) -> None:
    assert train(BODY, "shared", "first").status == 200
    assert train(BODY, "shared", "second").status == 200
    assert versions("first") == ["v1"]
    assert versions("second") == ["v1"]


def test_the_same_key_with_a_different_request_is_refused(aws: AwsClients) -> None:
    assert train(BODY, "key-2").status == 200
    changed = {**BODY, "parameters": {**BODY["parameters"], "algorithm": "ridge"}}
    refused = train(changed, "key-2")
    assert refused.status == 400
    assert "different request" in refused.json()["error"]["message"]
    assert versions("once") == ["v1"]


def test_an_async_retry_gets_the_same_job_and_queues_one_message(aws: AwsClients) -> None:
    body = {**BODY, "async": True}
    first = train(body, "job-key")
    again = train(body, "job-key")
    assert first.status == again.status == 202
    assert first.json()["job_id"] == again.json()["job_id"]
    messages = aws.sqs.receive_message(QueueUrl=os.environ["JOBS_QUEUE_URL"], MaxNumberOfMessages=10)
    assert len(messages.get("Messages", [])) == 1


def test_a_failed_request_is_not_remembered(aws: AwsClients) -> None:
    bad = {**BODY, "parameters": {"target_label": "missing"}}
    assert train(bad, "key-3").status == 400
    assert train(bad, "key-3").status == 400
    assert aws.dynamodb.scan(TableName=os.environ["IDEMPOTENCY_TABLE"])["Items"] == []


def test_a_malformed_key_is_400(aws: AwsClients) -> None:
    response = train(BODY, "has space")
    assert response.status == 400
    assert "Idempotency-Key" in response.json()["error"]["message"]
