"""Trainer use cases: train and register a model now, or as a job run by the worker.

A request trains synchronously within a budget (API Gateway cuts requests at ~29 s); past it, the same
request becomes a job and the client gets 202 with the job's link. Jobs are queued on SQS and run by the
worker function. A job whose worker died (crashed, killed, timed out) is failed by whoever next sees it
past its lease: the worker's timeout bounds how long a job can be `running`.
"""

import hashlib
import re
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, cast

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
from aws_lambda_powertools.utilities.typing import LambdaContext

from lrnstak.datasets import dataset_key, parse_dataset
from lrnstak.errors import Conflict, InvalidInput, LrnstakError, NotFound, ServiceUnavailable
from lrnstak.jobs.service import JobService, get_job_service
from lrnstak.ml.safe_loading import dump_model
from lrnstak.ml.training import ENGINE, TrainingSpec, train
from lrnstak.naming import check_model_name, check_version_to_write
from lrnstak.observability import logger, metrics
from lrnstak.registry.service import CommitWith, NewVersion, RegistryService, get_registry_service
from lrnstak.schemas.trainer import TrainModelRequest
from lrnstak.settings import get_settings
from lrnstak.storage.artifacts import ArtifactStore
from lrnstak.storage.clients import get_clients
from lrnstak.storage.idempotency import idempotency_store
from lrnstak.storage.jobs_table import TRAINING, JobOutcome, JobRecord
from lrnstak.storage.records import VersionRecord
from lrnstak.storage.registry_table import TransactItem

IDEMPOTENCY_SECONDS = 3600
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")


class TrainingAbandoned(Exception):
    """The request stopped waiting and handed the work to a job; this attempt must not register."""


@dataclass(frozen=True)
class TrainingOutcome:
    model: str
    version: str
    algorithm: str
    training_results: dict[str, Any]


class _Attempt:
    """A synchronous training attempt that the request may give up on, but only before it starts saving:
    abandoning and starting to save are one decision, so a model is never registered by both the attempt
    and the job that replaced it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = "training"
        self._future: Future[TrainingOutcome] = Future()

    def run(self, work: Callable[..., TrainingOutcome], *args: Any) -> None:
        try:
            self._future.set_result(work(*args))
        except BaseException as error:
            self._future.set_exception(error)

    def result(self, timeout: float | None) -> TrainingOutcome:
        return self._future.result(timeout=timeout)

    def exception(self, timeout: float | None) -> BaseException | None:
        """How the attempt ended (None: it registered a version); waits for it like Future.exception."""
        return self._future.exception(timeout=timeout)

    def begin_saving(self) -> bool:
        with self._lock:
            if self._state == "abandoned":
                return False
            self._state = "saving"
            return True

    def abandon(self) -> bool:
        with self._lock:
            if self._state == "saving":
                return False
            self._state = "abandoned"
            return True


def training_spec(request: TrainModelRequest, rows: list[Any]) -> TrainingSpec:
    parameters = request.parameters
    return TrainingSpec(
        rows=rows,
        target=parameters.target_label,
        features=parameters.feature_labels,
        task=parameters.task,
        algorithms=parameters.algorithm,
        hyper=parameters.hyper,
        test_size=parameters.split.test_size,
        random_state=parameters.split.random_state,
        shuffle=parameters.split.shuffle,
        cv=parameters.cv,
        rules=parameters.rules,
        testing_rows=request.testing_data,
        validation_rows=request.validation_data,
        metadata=parameters.metadata,
    )


@dataclass(frozen=True)
class DatasetUpload:
    dataset_id: str
    upload_url: str
    expires_at: str


def check_request(model: str, request: TrainModelRequest) -> None:
    """What can be refused before any work is queued (a named dataset is checked by the service)."""
    check_model_name(model)
    if request.version is not None:
        check_version_to_write(request.version)
    if request.parameters.engine != ENGINE:
        raise InvalidInput(
            f"engine {request.parameters.engine!r} is not supported: "
            "lrnstak trains scikit-learn models (engine 'default').",
            {"field": "parameters.engine"},
        )
    inline = request.training_data is not None or request.data is not None
    if inline and request.dataset is not None:
        raise InvalidInput("Send rows inline (`training_data`) or name a `dataset`, not both.", {"field": "dataset"})
    if not inline and request.dataset is None:
        raise InvalidInput(
            "No rows to train on: send `training_data` (or `data`) as a list of JSON objects, "
            "or upload them through POST /datasets and send `dataset`.",
            {"field": "training_data"},
        )


class TrainerService:
    def __init__(
        self,
        registry: RegistryService,
        jobs: JobService,
        store: ArtifactStore,
        *,
        budget_seconds: float,
        presigned_url_seconds: int,
        idempotency: BasePersistenceLayer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._registry = registry
        self._jobs = jobs
        self._store = store
        self._budget = budget_seconds
        self._url_seconds = presigned_url_seconds
        self._clock = clock
        self._answer_once: Callable[..., dict[str, Any]] | None = None
        self._attempt_threads: set[threading.Thread] = set()
        self._attempt_threads_lock = threading.Lock()
        self._idempotency_config: IdempotencyConfig | None = None
        if idempotency is not None:
            config = self._idempotency_config = IdempotencyConfig(
                event_key_jmespath="[model, key]",
                payload_validation_jmespath="request_sha256",
                expires_after_seconds=IDEMPOTENCY_SECONDS,
            )
            self._answer_once = idempotent_function(
                data_keyword_argument="call", persistence_store=idempotency, config=config
            )(self._recorded_answer)

    # requests ------------------------------------------------------------------------------------------

    def train_model(
        self,
        model: str,
        request: TrainModelRequest,
        respond_async: bool,
        idempotency_key: str | None = None,
        lambda_context: Any = None,
    ) -> TrainingOutcome | JobRecord:
        """Trains now and answers the outcome, or answers a queued job when asked to or out of time.

        With an Idempotency-Key, a retry within an hour gets the first answer and trains nothing again.
        """
        self._check(model, request)
        if idempotency_key is None or self._answer_once is None:
            return self._answer(model, request, respond_async)
        if not IDEMPOTENCY_KEY.fullmatch(idempotency_key):
            raise InvalidInput("Idempotency-Key must be 1 to 255 printable ASCII characters without spaces.")
        digest = hashlib.sha256(request.model_dump_json(by_alias=True).encode()).hexdigest()
        call = {"model": model, "key": idempotency_key, "request_sha256": f"{digest}:{respond_async}"}
        if self._idempotency_config is not None:
            # The "in progress" mark lasts as long as this invocation can, so a crash frees the key.
            context = lambda_context or _Deadline(self._budget + 5)
            self._idempotency_config.register_lambda_context(cast(LambdaContext, context))
        answered: list[TrainingOutcome | JobRecord] = []
        try:
            recorded = self._answer_once(call=call, request=request, respond_async=respond_async, answered=answered)
        except IdempotencyPersistenceLayerError as error:
            if answered:
                # Trained and registered (or queued); only keeping the answer for retries failed. The client gets
                # it now; a retry with this key meets the record still in progress (409) until it expires.
                logger.warning("idempotency record not completed", extra={"reason": str(error)})
                return answered[0]
            raise ServiceUnavailable(f"Idempotency records are unavailable: {error}") from error
        except IdempotencyValidationError:
            raise InvalidInput(
                "This Idempotency-Key was used in the last hour for a different request: use a new key."
            ) from None
        except IdempotencyAlreadyInProgressError:
            raise Conflict("A request with this Idempotency-Key is still being processed; retry shortly.") from None
        return _from_record(recorded)

    def _recorded_answer(
        self,
        call: dict[str, Any],
        request: TrainModelRequest,
        respond_async: bool,
        answered: list[TrainingOutcome | JobRecord],
    ) -> dict[str, Any]:
        answer = self._answer(str(call["model"]), request, respond_async)
        answered.append(answer)
        return _to_record(answer)

    def _answer(self, model: str, request: TrainModelRequest, respond_async: bool) -> TrainingOutcome | JobRecord:
        if respond_async or request.run_async:
            return self.submit_job(model, request)
        attempt = _Attempt()
        thread = threading.Thread(
            target=self._run_attempt,
            args=(attempt, model, request),
            name="training-attempt",
            daemon=True,
        )
        with self._attempt_threads_lock:
            self._attempt_threads.add(thread)
        thread.start()
        try:
            return attempt.result(timeout=self._budget)
        except FutureTimeout:
            if not attempt.abandon():
                return attempt.result(timeout=None)  # already saving: its answer is moments away
            logger.info("training outlasted its budget; continuing as a job", extra={"model": model})
            return self.submit_job(model, request)

    def _run_attempt(self, attempt: _Attempt, model: str, request: TrainModelRequest) -> None:
        try:
            attempt.run(self._train_and_register, model, request, None, attempt)
        finally:
            with self._attempt_threads_lock:
                self._attempt_threads.discard(threading.current_thread())

    def wait_for_attempts(self, timeout: float) -> bool:
        """Waits for synchronous attempts still fitting (those abandoned to a job fit on until they reach
        the point of saving, then stop). True when none is left; a fit cannot be interrupted."""
        deadline = time.monotonic() + timeout
        with self._attempt_threads_lock:
            running = list(self._attempt_threads)
        for thread in running:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in running)

    def submit_job(self, model: str, request: TrainModelRequest) -> JobRecord:
        self._check(model, request)
        document = request.model_dump(mode="json", by_alias=True, exclude_none=True)
        return self._jobs.submit(TRAINING, model, request.version, document)

    def create_dataset(self, dataset_format: str) -> DatasetUpload:
        """An id and a presigned S3 PUT for data too large for a request body."""
        dataset_id = f"{uuid.uuid4().hex}.{dataset_format}"
        url = self._store.presigned_put_url(dataset_key(dataset_id), self._url_seconds)
        expires_at = datetime.fromtimestamp(self._clock() + self._url_seconds, UTC)
        return DatasetUpload(dataset_id, url, expires_at.isoformat(timespec="seconds").replace("+00:00", "Z"))

    def get_job(self, job_id: str) -> JobRecord:
        job = self._jobs.get(TRAINING, job_id)
        if job is None:
            raise NotFound(f"Training job {job_id!r} does not exist.")
        return job

    def list_jobs(self, model: str | None, limit: int) -> list[JobRecord]:
        if model is not None:
            check_model_name(model)
        return self._jobs.list_recent(TRAINING, model, limit)

    # worker --------------------------------------------------------------------------------------------

    def run_job(self, job: JobRecord, request_document: Any, progress: Callable[[float], None]) -> JobOutcome:
        """Trains a claimed training job and registers its version (the jobs worker calls this).

        The job's success is written in the registry's transaction (JobService.success_write): the version is
        live if and only if the job succeeded, whatever fails or dies in between. A job no longer running by
        then (its lease ran out) refuses the transaction, and nothing is registered.
        """
        request = TrainModelRequest.model_validate(request_document)

        def job_succeeded(record: VersionRecord) -> list[TransactItem]:
            outcome = JobOutcome(
                version=record.version, algorithm=record.algorithm, training_results=record.training_results
            )
            return [self._jobs.success_write(job.job_id, outcome)]

        outcome = self._train_and_register(job.model, request, progress, None, job_succeeded)
        return JobOutcome(
            version=outcome.version,
            algorithm=outcome.algorithm,
            training_results=outcome.training_results,
            recorded=True,
        )

    # shared --------------------------------------------------------------------------------------------

    def _check(self, model: str, request: TrainModelRequest) -> None:
        check_request(model, request)
        if request.dataset is not None and not self._store.exists(dataset_key(request.dataset)):
            raise InvalidInput(
                f"Dataset {request.dataset!r} has not been uploaded: PUT the data to the upload_url that "
                "POST /datasets gave, then train.",
                {"field": "dataset"},
            )

    def _rows(self, request: TrainModelRequest) -> list[Any]:
        if request.dataset is not None:
            return parse_dataset(request.dataset, self._store.get_bytes(dataset_key(request.dataset)))
        rows = request.training_data if request.training_data is not None else request.data
        assert rows is not None  # check_request
        return rows

    def _train_and_register(
        self,
        model: str,
        request: TrainModelRequest,
        progress: Callable[[float], None] | None,
        attempt: "_Attempt | None",
        commit_with: CommitWith | None = None,
    ) -> TrainingOutcome:
        rows = self._rows(request)
        try:
            trained = train(training_spec(request, rows), progress)
        except LrnstakError:
            metrics.add_metric(name="TrainingFailed", unit=MetricUnit.Count, value=1)
            raise
        if attempt is not None and not attempt.begin_saving():
            raise TrainingAbandoned(model)
        parameters = {
            **request.parameters.model_dump(mode="json", exclude_none=True),
            "task": trained.task,
            "algorithm": trained.algorithm,
        }
        saved = self._registry.save_version(
            model,
            NewVersion(
                model_bytes=dump_model(trained.pipeline),
                version=request.version,
                parameters=parameters,
                training_rows=rows,
                training_results=trained.training_results,
                algorithm=trained.algorithm,
                feature_schema=trained.feature_schema,
            ),
            commit_with,
        )
        metrics.add_metric(name="ModelTrained", unit=MetricUnit.Count, value=1)
        seconds = float(trained.training_results["metadata"]["seconds"])
        metrics.add_metric(name="TrainingDuration", unit=MetricUnit.Seconds, value=seconds)
        return TrainingOutcome(saved.model, saved.version, trained.algorithm, trained.training_results)


class _Deadline:
    """What Powertools reads of a Lambda context, for requests served outside Lambda."""

    def __init__(self, seconds: float) -> None:
        self._end = time.monotonic() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._end - time.monotonic()) * 1000))


def _to_record(answer: TrainingOutcome | JobRecord) -> dict[str, Any]:
    kind = "trained" if isinstance(answer, TrainingOutcome) else "job"
    return {"kind": kind, "answer": asdict(answer)}


def _from_record(record: dict[str, Any]) -> TrainingOutcome | JobRecord:
    if record["kind"] == "trained":
        return TrainingOutcome(**record["answer"])
    return JobRecord(**record["answer"])


@lru_cache(maxsize=1)
def get_trainer_service() -> TrainerService:
    settings = get_settings()
    clients = get_clients()
    return TrainerService(
        get_registry_service(),
        get_job_service(),
        ArtifactStore(clients.s3, settings.models_bucket),
        budget_seconds=settings.sync_training_budget_seconds,
        presigned_url_seconds=settings.presigned_url_seconds,
        idempotency=idempotency_store(clients.dynamodb, settings.idempotency_table),
    )
