"""Feeds the job queues to the worker function on the embedded stack, as Lambda's SQS event source
mapping does in AWS: one message per invocation, the same SQS event shape, the same handler.

Each invocation runs in its own interpreter (`run_function`), so it can be timed out or killed like a
Lambda; a worker that dies leaves its job failed with the reason.
"""

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from lrnstak.jobs.service import get_job_service
from lrnstak.local.run_function import RESULT_MARKER
from lrnstak.storage.clients import SQSClient
from lrnstak.storage.jobs_table import QUEUED

# Lambda's event source mapping retries a failed record once its visibility timeout passes; locally, soon.
RETRY_AFTER_SECONDS = 2
# Short polls with the wait here, not in the embedded AWS: it answers one request at a time, and a long poll
# would hold it for the whole wait. Each poll costs the stack's process a few milliseconds of CPU, taken from
# the requests it serves (two queues polled five times a second kept 6% of a core busy on an idle stack): a
# queue is polled often only while jobs come and go, and slowly once it has been quiet; a request that may
# have queued a job rings the workers (`ring`), which then poll at once.
POLL_INTERVAL_SECONDS = 0.2
IDLE_POLL_SECONDS = 2.0
QUIET_AFTER_SECONDS = 10.0


def sqs_event(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    attributes = message.get("Attributes", {})
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": {
                    "ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
                    "SentTimestamp": attributes.get("SentTimestamp", "0"),
                    "SenderId": attributes.get("SenderId", "local"),
                    "ApproximateFirstReceiveTimestamp": attributes.get("ApproximateFirstReceiveTimestamp", "0"),
                },
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(message["Body"].encode(), usedforsecurity=False).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
        ]
    }


class QueueWorker(threading.Thread):
    """Polls one queue and invokes the function for each message, one at a time."""

    def __init__(
        self,
        sqs: SQSClient,
        queue_url: str,
        function: str,
        timeout_seconds: int,
        on_worker_lost: Callable[[str, str], None],
        on_done: Callable[[], None],
    ) -> None:
        super().__init__(name=f"queue-worker-{queue_url.rsplit('/', 1)[-1]}", daemon=True)
        self._sqs = sqs
        self._url = queue_url
        self._function = function
        self._timeout = timeout_seconds
        self._on_worker_lost = on_worker_lost
        self._on_done = on_done
        self._stopping = threading.Event()
        self._doorbell = threading.Event()
        self._current: subprocess.Popen[str] | None = None
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]
        self._arn = attributes["QueueArn"]
        self._region = self._arn.split(":")[3]

    def run(self) -> None:
        last_message = time.monotonic()
        while not self._stopping.is_set():
            self._doorbell.clear()  # a ring from now on is for messages this poll may not see
            try:
                response = self._sqs.receive_message(
                    QueueUrl=self._url,
                    MaxNumberOfMessages=1,
                    WaitTimeSeconds=0,
                    VisibilityTimeout=self._timeout + 30,
                    MessageSystemAttributeNames=["All"],
                )
            except Exception as error:  # the embedded AWS is stopping, or hiccuped: try again
                if not self._stopping.wait(1):
                    print(f"lrnstak: queue worker could not poll: {error}", file=sys.stderr, flush=True)
                continue
            messages = response.get("Messages", [])
            for message in messages:
                self._invoke(dict(message))
            if messages:
                last_message = time.monotonic()
            else:
                quiet = time.monotonic() - last_message > QUIET_AFTER_SECONDS
                self._doorbell.wait(IDLE_POLL_SECONDS if quiet else POLL_INTERVAL_SECONDS)

    def ring(self) -> None:
        """Something may have been sent to the queue: poll now rather than at the next interval."""
        self._doorbell.set()

    def stop(self) -> None:
        self._stopping.set()
        self._doorbell.set()
        process = self._current
        if process is not None and process.poll() is None:
            process.kill()
        self.join(timeout=10)

    def _invoke(self, message: dict[str, Any]) -> None:
        job_id = _job_id_of(message["Body"])
        event = json.dumps(sqs_event(message, self._arn, self._region))
        self._current = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "lrnstak.local.run_function", self._function],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
        )
        try:
            output, _ = self._current.communicate(event, timeout=self._timeout)
        except subprocess.TimeoutExpired:
            self._current.kill()
            self._current.communicate()
            self._lost(job_id, f"The worker timed out after {self._timeout} s.", message)
            return
        finally:
            self._on_done()
        code = self._current.returncode
        if code != 0:
            reason = "the local stack stopped" if self._stopping.is_set() else f"it exited with status {code}"
            self._lost(job_id, f"The worker process stopped before finishing ({reason}).", message)
            return
        self._settle(message, output)

    def _settle(self, message: dict[str, Any], output: str) -> None:
        results = [line for line in output.splitlines() if line.startswith(RESULT_MARKER)]
        failures = json.loads(results[-1][len(RESULT_MARKER) :]).get("batchItemFailures", []) if results else [{}]
        if failures:
            self._sqs.change_message_visibility(
                QueueUrl=self._url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=RETRY_AFTER_SECONDS
            )
        else:
            self._sqs.delete_message(QueueUrl=self._url, ReceiptHandle=message["ReceiptHandle"])

    def _lost(self, job_id: str, reason: str, message: dict[str, Any]) -> None:
        # In AWS the message would come back and the next worker would find the job's lease expired; here
        # the runner saw the process die, so it says so at once.
        if job_id:
            self._on_worker_lost(job_id, reason)
        self._sqs.delete_message(QueueUrl=self._url, ReceiptHandle=message["ReceiptHandle"])


def _job_id_of(body: str) -> str:
    """The job a message names, or "" for a body that names none (the worker consumes those)."""
    try:
        document = json.loads(body)
    except ValueError:
        return ""
    job_id = document.get("job_id") if isinstance(document, dict) else None
    return job_id if isinstance(job_id, str) else ""


def recover_unfinished_jobs() -> None:
    """Queue messages do not survive a restart of the embedded stack; the jobs table does. Queued jobs are
    queued again; jobs that were running when the stack stopped lost their worker."""
    jobs = get_job_service()
    for job in jobs.unfinished():
        if job.status == QUEUED:
            jobs.requeue(job.job_id)
        else:
            jobs.abandon(job.job_id, "The local stack stopped while the job was running.")
