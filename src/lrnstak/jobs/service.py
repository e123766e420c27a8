"""Jobs: work too long for a request, queued on SQS and run by the jobs worker function.

Two kinds share this machinery: training jobs (the trainer) and batch predictions (predict). A job is a
record in the jobs table, its request document in S3 and one queue message. The worker claims the job
(queued -> running, for one worker only) with a lease as long as its own timeout; a job still `running`
past its lease died with its worker, and whoever next reads it marks it failed. A job still `queued` after
the queue's retention period can no longer get a message: whoever next reads it marks it failed too. A
message that fails twice lands in the dead-letter queue, whose consumer fails its job with the reason.

A training job's success is committed in the same DynamoDB transaction as the version it registers (the
trainer asks `success_write` for the job's update and gives it to the registry): the job is succeeded if and
only if its version is live, whatever fails or dies in between. A worker killed before that transaction
leaves the job `running` until its lease says otherwise (failed, no version; its bytes are orphans); killed
after it, the job is already succeeded. If the job is no longer running when the transaction comes (its
lease ran out and a reader failed it), the transaction is refused and no version is registered.
"""

import time
import uuid
import zlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from lrnstak.errors import InvalidInput, LrnstakError
from lrnstak.observability import logger
from lrnstak.settings import get_settings
from lrnstak.storage.artifacts import ArtifactStore
from lrnstak.storage.clients import get_clients
from lrnstak.storage.jobs_table import QUEUED, RUNNING, JobOutcome, JobRecord, JobsTable
from lrnstak.storage.queue import JobQueue

JOB_ID_LENGTH = 32
# JobsQueue's MessageRetentionPeriod in template.yaml: a message older than this is gone, so a job queued
# for longer (its message was never sent and marking it failed failed too) will never run.
QUEUE_RETENTION_SECONDS = 4 * 86_400

Progress = Callable[[float], None]
# Runs one claimed job of a kind: its record, its request document, a progress reporter -> its outcome.
JobRunner = Callable[[JobRecord, Any, Progress], JobOutcome]


def iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def looks_like_job_id(job_id: str) -> bool:
    return len(job_id) == JOB_ID_LENGTH and all(c in "0123456789abcdef" for c in job_id)


class JobService:
    def __init__(
        self,
        jobs: JobsTable,
        queue: JobQueue,
        store: ArtifactStore,
        *,
        worker_timeout_seconds: int,
        retention_days: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._jobs = jobs
        self._queue = queue
        self._store = store
        self._worker_timeout = worker_timeout_seconds
        self._retention_seconds = retention_days * 86_400
        self._clock = clock

    def submit(self, kind: str, model: str, version: str | None, request: Any) -> JobRecord:
        """Records a queued job with its request document and queues it; a job that cannot be recorded or
        queued ends failed with the reason (and the error goes to the caller), never stays queued forever."""
        job_id = uuid.uuid4().hex
        request_key = f"jobs/{job_id}/request.json.gz"
        self._store.put_json(request_key, request)
        job = JobRecord(
            job_id=job_id,
            kind=kind,
            model=model,
            version=version,
            status=QUEUED,
            created_at=iso_now(),
            request_key=request_key,
            expires_at=int(self._clock()) + self._retention_seconds,
        )
        try:
            # A create whose answers were all lost may have recorded the job: it is failed below in that case.
            self._jobs.create(job)
            self._queue.send(job_id)
        except Exception as error:
            if isinstance(error, LrnstakError):
                code, reason = error.code, error.message
            else:
                code, reason = "internal_error", type(error).__name__
            self._jobs.fail(job_id, iso_now(), code, f"The job could not be queued: {reason}")
            raise
        return job

    def get(self, kind: str, job_id: str) -> JobRecord | None:
        """The job of this kind, with its lease enforced; None for an unknown id or a job of another kind."""
        job = self._jobs.get(job_id) if looks_like_job_id(job_id) else None
        if job is None or job.kind != kind:
            return None
        return self._with_lease_enforced(job)

    def list_recent(self, kind: str, model: str | None, limit: int) -> list[JobRecord]:
        return [self._with_lease_enforced(job) for job in self._jobs.list_recent(kind, model, limit)]

    def output_url(self, key: str, expires_in_seconds: int) -> str:
        return self._store.presigned_get_url(key, expires_in_seconds)

    # worker --------------------------------------------------------------------------------------------

    def run(self, job_id: str, runners: Mapping[str, JobRunner]) -> None:
        """Runs a queued job once. Redelivered messages of running or finished jobs change nothing."""
        job = self._jobs.get(job_id)
        if job is None:
            logger.warning("message for an unknown job", extra={"job_id": job_id})
            return
        runner = runners.get(job.kind)
        if runner is None:
            self._jobs.fail(job_id, iso_now(), "internal_error", f"No worker runs jobs of kind {job.kind!r}.")
            return
        if not self._jobs.claim(job_id, iso_now(), self._clock() + self._worker_timeout, uuid.uuid4().hex):
            self._with_lease_enforced(job)  # fails it if its worker is gone; otherwise another worker has it
            return
        try:
            outcome = runner(job, self._request_document(job), self._progress_reporter(job_id))
        except LrnstakError as error:
            self._jobs.fail(job_id, iso_now(), error.code, error.message)
            return
        except Exception as error:  # the job must end failed, never stay running
            logger.exception("job failed", extra={"job_id": job_id, "kind": job.kind})
            self._jobs.fail(job_id, iso_now(), "internal_error", f"The job stopped: {type(error).__name__}.")
            return
        if outcome.recorded:
            return
        try:
            self._jobs.succeed(job_id, iso_now(), outcome)
        except Exception as error:
            # The work is done but could not be recorded: fail the job now rather than leave it running
            # until its lease runs out (a no-op if the success was recorded after all, its answer lost); the
            # message comes back and the claim, already taken, stops it.
            self._jobs.fail(job_id, iso_now(), "internal_error", f"The job's result could not be saved: {error}")
            raise

    def success_write(self, job_id: str, outcome: JobOutcome) -> dict[str, Any]:
        """The running job's success as a write for the transaction that commits its result (see above)."""
        return self._jobs.succeed_write(job_id, iso_now(), outcome)

    def _request_document(self, job: JobRecord) -> Any:
        try:
            return self._store.get_json(job.request_key)
        except (OSError, EOFError, ValueError, zlib.error) as error:  # not gzip, cut short, or not JSON
            # No retry can read it: the job fails now with the reason, rather than after the dead-letter queue.
            raise InvalidInput(
                f"The job's request document ({job.request_key}) cannot be read: {type(error).__name__}. "
                "Submit the job again."
            ) from error

    def fail_undeliverable(self, job_id: str, receive_count: int) -> None:
        """A message that reached the dead-letter queue: its job can no longer run."""
        # SQS keeps counting receives in the dead-letter queue: this delivery is one of them.
        attempts = max(receive_count - 1, 1)
        self._jobs.fail(
            job_id,
            iso_now(),
            "dead_letter",
            f"The job's message could not be processed after {attempts} attempts and was moved to the "
            "dead-letter queue.",
        )

    def abandon(self, job_id: str, reason: str) -> None:
        """The process running the job stopped without finishing it."""
        self._jobs.fail(job_id, iso_now(), "worker_lost", reason)

    def unfinished(self) -> list[JobRecord]:
        return self._jobs.unfinished()

    def requeue(self, job_id: str) -> None:
        self._queue.send(job_id)

    def _with_lease_enforced(self, job: JobRecord) -> JobRecord:
        if job.status == RUNNING and job.lease_expires_at is not None and job.lease_expires_at < self._clock():
            # The worker would have finished or failed the job by now: it died with it.
            self._jobs.fail(job.job_id, iso_now(), "worker_lost", self._lost_worker_message(job))
            return self._jobs.get(job.job_id) or job
        if job.status == QUEUED and _epoch(job.created_at) + QUEUE_RETENTION_SECONDS < self._clock():
            message = "The job was never delivered to a worker: its message was not queued, or expired unread."
            self._jobs.fail(job.job_id, iso_now(), "not_delivered", message)
            return self._jobs.get(job.job_id) or job
        return job

    def _progress_reporter(self, job_id: str) -> Progress:
        def report(fraction: float) -> None:
            try:
                self._jobs.set_progress(job_id, round(0.05 + 0.9 * fraction, 3))
            except LrnstakError as error:  # progress is a hint: a throttled update must not fail the job
                logger.warning("job progress not recorded", extra={"job_id": job_id, "reason": error.message})

        return report

    def _lost_worker_message(self, job: JobRecord) -> str:
        return (
            f"The worker stopped (crashed, was killed or timed out after {self._worker_timeout} s) "
            f"before finishing attempt {job.attempts}."
        )


@lru_cache(maxsize=1)
def get_job_service() -> JobService:
    settings = get_settings()
    clients = get_clients()
    return JobService(
        JobsTable(clients.dynamodb, settings.jobs_table),
        JobQueue(clients.sqs, settings.jobs_queue_url),
        ArtifactStore(clients.s3, settings.models_bucket),
        worker_timeout_seconds=settings.worker_timeout_seconds,
        retention_days=settings.job_retention_days,
    )
