"""The training queue (SQS): a message names a job for the worker."""

import json

from lrnstak.storage.clients import SQSClient
from lrnstak.storage.errors import translate_aws_errors


def queue_name_of(url_or_arn: str) -> str:
    """The queue's name from its URL (.../account/name) or ARN (arn:aws:sqs:region:account:name)."""
    return url_or_arn.rstrip("/").replace(":", "/").rsplit("/", 1)[-1]


class JobQueue:
    def __init__(self, sqs: SQSClient, url: str) -> None:
        self._sqs = sqs
        self.url = url

    def send(self, job_id: str) -> None:
        with translate_aws_errors("queue a job"):
            self._sqs.send_message(QueueUrl=self.url, MessageBody=json.dumps({"job_id": job_id}))
