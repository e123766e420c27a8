"""The jobs queue and the jobs worker's handler, driven in process against moto as Lambda's SQS event
source would: receive a message, hand it to the worker in the real SQS event shape."""

import os
from typing import Any

from lrnstak.local.workers import sqs_event
from lrnstak.storage.clients import AwsClients

from support.functions import FakeLambdaContext, function_module


def queue_arn(aws: AwsClients, url: str) -> str:
    return aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def jobs_queue() -> str:
    return os.environ["JOBS_QUEUE_URL"]


def receive(aws: AwsClients, url: str, visibility: int | None = None) -> list[dict[str, Any]]:
    extra = {} if visibility is None else {"VisibilityTimeout": visibility}
    response = aws.sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"], WaitTimeSeconds=0, **extra
    )
    return [dict(message) for message in response.get("Messages", [])]


def run_worker(aws: AwsClients, message: dict[str, Any], url: str | None = None) -> dict[str, Any]:
    event = sqs_event(message, queue_arn(aws, url or jobs_queue()), "us-east-1")
    result = function_module("JobsWorkerFunction").handler(event, FakeLambdaContext())
    return dict(result)


def run_queued_jobs(aws: AwsClients) -> int:
    """Runs every message waiting in the jobs queue; how many there were."""
    messages = receive(aws, jobs_queue())
    for message in messages:
        assert run_worker(aws, message) == {"batchItemFailures": []}
    return len(messages)
