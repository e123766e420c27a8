"""Registry use cases. Dependencies come in through the constructor; nothing here knows HTTP.

Writes are all-or-nothing: bytes go to S3 under a key unique to the write, then one DynamoDB transaction
points the version (and the model's summary) at them. Readers therefore see a version's old bytes or its new
bytes, never a mix; a failed save leaves what was there before. Bytes a write replaced are deleted after
the transaction; bytes of a failed write are deleted before the error goes back to the client.

A write whose answer was lost (botocore's retry of it then conflicts with it, or every attempt timed out)
may have committed: the writer reads its own write back (the version's write_id) before deciding. Committed,
it answers success; not, it deletes its bytes and answers the error, except when the failure leaves the
outcome open (a server error, a timeout, and the read-back failing too), where it keeps its bytes rather than
risk those of a version that did commit, and answers 503. So objects under artifacts/ that no version points
at can remain: after such a failure, or when deleting replaced or deleted bytes fails (the request still
succeeds). They are never listed as versions, and are logged with their keys ("orphaned artifacts left in the
bucket"); nothing collects them yet.
"""

import json
import random
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from lrnstak.errors import LrnstakError, NotFound, ServiceUnavailable
from lrnstak.ml.describe import describe_algorithm
from lrnstak.ml.safe_loading import load_model, sha256_hex
from lrnstak.naming import (
    LATEST,
    check_model_name,
    check_version_to_read,
    check_version_to_write,
    next_free_version,
)
from lrnstak.observability import logger, metrics
from lrnstak.settings import get_settings
from lrnstak.storage.artifacts import ArtifactStore
from lrnstak.storage.clients import get_clients
from lrnstak.storage.errors import ArtifactMissing, StorageConflict, outcome_unknown
from lrnstak.storage.records import ModelSummary, VersionRecord
from lrnstak.storage.registry_table import MAX_VERSIONS_PER_TRANSACTION, RegistryTable, TransactItem

MODEL_CONTENT_TYPE = "application/octet-stream"
READ_ATTEMPTS = 3
# Writes committed with a version, or not at all: given the record about to be committed (e.g. a job's success).
CommitWith = Callable[[VersionRecord], list[TransactItem]]


class OutcomeUnknown(ServiceUnavailable):
    """A commit failed in a way that does not say whether it was applied, and reading it back failed too."""


def utc_now() -> str:
    # Microseconds and a fixed width keep string order equal to time order ("latest" compares strings).
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class NewVersion:
    """A model version as a client uploads it."""

    model_bytes: bytes
    version: str | None
    parameters: dict[str, Any]
    training_rows: list[Any] | None
    training_results: dict[str, Any] | None
    # Set by the trainer, which knows them; for uploads they are read off the estimator.
    algorithm: str | None = None
    feature_schema: dict[str, Any] | None = None


@dataclass(frozen=True)
class SavedVersion:
    model: str
    version: str
    sha256: str
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class ModelDownload:
    parameters: dict[str, Any]
    size: int
    data: bytes | None
    url: str | None


@dataclass(frozen=True)
class BestVersion:
    record: VersionRecord
    score: float
    details: dict[str, Any]


@dataclass(frozen=True)
class ModelPage:
    summaries: list[ModelSummary]
    next_model: str | None


def headline_metrics(training_results: Mapping[str, Any] | None, algorithm: str) -> dict[str, float]:
    """The numbers /best ranks on: the hold-out scores of the kept algorithm, as the trainer records them.

    The old stack's shape is {"scores": [{"iteration", "algorithm", <metric>: number}], ...}; a flat
    {<metric>: number} is taken as it is.
    """
    if not training_results:
        return {}
    scores = training_results.get("scores")
    if isinstance(scores, list):
        entries = [entry for entry in scores if isinstance(entry, Mapping)]
        chosen = [entry for entry in entries if entry.get("algorithm") == algorithm] or entries
        return _numbers(chosen[0]) if chosen else {}
    return _numbers(training_results)


def _named_algorithm(parameters: Mapping[str, Any]) -> str | None:
    name = parameters.get("algorithm")
    return name if isinstance(name, str) and name else None


def _numbers(values: Mapping[str, Any]) -> dict[str, float]:
    return {
        key: float(value)
        for key, value in values.items()
        if isinstance(value, int | float) and not isinstance(value, bool) and key != "iteration"
    }


def _matches(metadata: Mapping[str, Any], filters: Mapping[str, str]) -> bool:
    """Query strings are text: "3" matches 3 and "true" matches True."""
    for key, wanted in filters.items():
        if key not in metadata:
            return False
        value = metadata[key]
        if not (str(value) == wanted or json.dumps(value) == wanted):
            return False
    return True


class RegistryService:
    def __init__(
        self,
        table: RegistryTable,
        artifacts: ArtifactStore,
        *,
        inline_model_limit_bytes: int,
        presigned_url_seconds: int,
        write_attempts: int,
        clock: Callable[[], str] = utc_now,
    ) -> None:
        self._table = table
        self._artifacts = artifacts
        self._inline_limit = inline_model_limit_bytes
        self._url_seconds = presigned_url_seconds
        self._write_attempts = write_attempts
        self._clock = clock

    # reads ---------------------------------------------------------------------------------------------

    def list_models(self, limit: int, after_model: str | None) -> ModelPage:
        summaries, next_model = self._table.list_summaries(limit, after_model)
        return ModelPage(summaries, next_model)

    def list_versions(self, model: str) -> list[VersionRecord]:
        check_model_name(model)
        records = self._table.list_versions(model)
        if not records:
            raise NotFound(f"Model {model!r} does not exist.")
        return sorted(records, key=lambda r: (r.created_at, r.version), reverse=True)

    def get_version(self, model: str, version: str) -> VersionRecord:
        check_model_name(model)
        check_version_to_read(version)
        if version == LATEST:
            summary = self._table.get_summary(model)
            if summary is None or summary.latest is None:
                raise NotFound(f"Model {model!r} does not exist.")
            version = summary.latest
        record = self._table.get_version(model, version)
        if record is None:
            raise NotFound(f"Version {version!r} of model {model!r} does not exist.")
        return record

    def download_model(self, model: str, version: str, as_url: bool) -> ModelDownload:
        record, data = self._read_artifact(model, version, fetch=not as_url)
        base64_size = 4 * ((record.size + 2) // 3)
        if data is None or base64_size > self._inline_limit:
            url = self._artifacts.presigned_get_url(record.artifact_key, self._url_seconds)
            return ModelDownload(record.parameters, record.size, None, url)
        return ModelDownload(record.parameters, record.size, data, None)

    def get_training_data(self, model: str, version: str) -> tuple[VersionRecord, list[Any]]:
        for _ in range(READ_ATTEMPTS):
            record = self.get_version(model, version)
            if record.training_data_key is None:
                return record, []
            try:
                rows = self._artifacts.get_json(record.training_data_key)
                return record, rows if isinstance(rows, list) else []
            except ArtifactMissing:
                continue  # overwritten between the two reads: read the new version's rows
        raise ServiceUnavailable("The version kept changing while it was read; retry.")

    def find_best(self, model: str, metric: str, order: str, filters: Mapping[str, str]) -> BestVersion:
        candidates: list[BestVersion] = []
        for record in self.list_versions(model):
            if metric in record.metrics and _matches(record.parameters.get("metadata") or {}, filters):
                details = self._score_details(record, metric)
                candidates.append(BestVersion(record, record.metrics[metric], details))
        if not candidates:
            raise NotFound(
                f"No version of model {model!r} has the metric {metric!r}"
                + (f" and metadata matching {dict(filters)}." if filters else "."),
                details={"metric": metric, "filters": dict(filters)},
            )
        sign = 1.0 if order == "min" else -1.0
        return min(candidates, key=lambda c: (sign * c.score, c.record.created_at))

    @staticmethod
    def _score_details(record: VersionRecord, metric: str) -> dict[str, Any]:
        scores = (record.training_results or {}).get("scores")
        if isinstance(scores, list):
            for entry in scores:
                if isinstance(entry, dict) and entry.get(metric) == record.metrics[metric]:
                    return entry
        return {"algorithm": record.algorithm, **record.metrics}

    def _read_artifact(self, model: str, version: str, fetch: bool) -> tuple[VersionRecord, bytes | None]:
        for _ in range(READ_ATTEMPTS):
            record = self.get_version(model, version)
            if not fetch:
                return record, None
            try:
                data = self._artifacts.get_bytes(record.artifact_key)
            except ArtifactMissing:
                continue  # overwritten between the two reads: read the new version's bytes
            if sha256_hex(data) != record.sha256:
                continue  # replaced in place by a concurrent writer: re-read the metadata
            return record, data
        raise ServiceUnavailable("The version kept changing or its artifact is missing; retry.")

    # writes --------------------------------------------------------------------------------------------

    def save_version(self, model: str, upload: NewVersion, commit_with: CommitWith | None = None) -> SavedVersion:
        """Stores the bytes and commits the version. `commit_with`: writes that commit in the same transaction,
        or not at all (their refusal is PreconditionFailed)."""
        check_model_name(model)
        if upload.version is not None:
            check_version_to_write(upload.version)
        loaded = load_model(upload.model_bytes)
        digest = sha256_hex(upload.model_bytes)
        write_id = uuid.uuid4().hex
        prefix = f"artifacts/{model}/{write_id}"
        artifact_key = f"{prefix}/model.joblib"
        training_key = f"{prefix}/training_data.json.gz" if upload.training_rows is not None else None
        algorithm = upload.algorithm or _named_algorithm(upload.parameters) or describe_algorithm(loaded.estimator)
        # Listed before each PUT: a PUT whose answer was lost may have stored its bytes all the same.
        written: list[str] = []
        try:
            written.append(artifact_key)
            self._artifacts.put_bytes(artifact_key, upload.model_bytes, MODEL_CONTENT_TYPE, digest)
            if training_key is not None and upload.training_rows is not None:
                written.append(training_key)
                self._artifacts.put_json(training_key, upload.training_rows)
            draft = VersionRecord(
                model=model,
                version=upload.version or "",
                created_at="",
                updated_at="",
                write_id=write_id,
                artifact_key=artifact_key,
                training_data_key=training_key,
                size=len(upload.model_bytes),
                sha256=digest,
                sklearn_version=loaded.sklearn_version,
                algorithm=algorithm,
                metrics=headline_metrics(upload.training_results, algorithm),
                parameters=upload.parameters,
                training_results=upload.training_results,
                feature_schema=upload.feature_schema,
            )
            committed, replaced = self._commit_version(draft, commit_with)
        except OutcomeUnknown:
            logger.warning("orphaned artifacts left in the bucket", extra={"keys": written, "reason": "unknown"})
            raise
        except Exception:
            # Not BaseException: a process being torn down mid-commit must not delete what it may have committed.
            self._discard(written)
            raise
        if replaced is not None:
            self._discard(replaced.object_keys)
        metrics.add_metric(name="ModelUploaded", unit=MetricUnit.Count, value=1)
        return SavedVersion(model, committed.version, digest, loaded.warnings)

    def _commit_version(
        self, draft: VersionRecord, commit_with: CommitWith | None
    ) -> tuple[VersionRecord, VersionRecord | None]:
        """Points the version at the new bytes; returns what was committed and the record it replaced."""
        for attempt in range(self._write_attempts):
            summary = self._table.get_summary(draft.model) or ModelSummary(draft.model)
            version = draft.version or next_free_version(set(summary.versions))
            existing = self._table.get_version(draft.model, version) if draft.version else None
            now = self._clock()
            created_at = existing.created_at if existing else now
            record = replace(draft, version=version, created_at=created_at, updated_at=now)
            try:
                self._table.save_version(
                    record,
                    expected_write_id=existing.write_id if existing else None,
                    summary=summary.with_version(version, created_at, now),
                    expected_revision=summary.revision,
                    also=commit_with(record) if commit_with is not None else (),
                )
            except StorageConflict:
                if self._landed(record):  # a retry of our own write, whose answer was lost, conflicted with it
                    return record, existing
                _back_off(attempt)
                continue
            except LrnstakError as error:
                if self._landed_or_unknown(record, error):
                    return record, existing
                raise
            return record, existing
        raise ServiceUnavailable("Too many concurrent writes to this model; retry shortly.")

    def _landed(self, record: VersionRecord) -> bool:
        current = self._table.get_version(record.model, record.version)
        return current is not None and current.write_id == record.write_id

    def _landed_or_unknown(self, record: VersionRecord, error: LrnstakError) -> bool:
        """After a failed commit: True when it was applied all the same; False when it was not (the caller
        answers the error); OutcomeUnknown when neither the error nor a read-back tells."""
        try:
            if self._landed(record):
                return True
        except LrnstakError as read_error:
            if outcome_unknown(error):
                raise OutcomeUnknown(
                    "The save may or may not have been recorded; read the version to know, or upload it again.",
                    retry_after_seconds=2,
                ) from read_error
            return False
        if outcome_unknown(error):
            raise OutcomeUnknown(
                "The save could not be confirmed; read the version to know, or upload it again.",
                retry_after_seconds=2,
            ) from error
        return False

    def delete_version(self, model: str, version: str) -> None:
        check_model_name(model)
        check_version_to_read(version)
        attempted: VersionRecord | None = None
        for attempt in range(self._write_attempts):
            try:
                record = self.get_version(model, version)
            except NotFound:
                if attempted is None:
                    raise
                record = attempted  # gone since our attempt: ours landed with its answer lost, or another's did
                break
            summary = self._table.get_summary(model) or ModelSummary(model)
            try:
                self._table.delete_versions(
                    [record], summary.without_versions({record.version}, self._clock()), summary.revision
                )
            except StorageConflict:
                attempted = record
                _back_off(attempt)
                continue
            except LrnstakError:
                if self._table.get_version(model, record.version) is not None:
                    raise
            break
        else:
            raise ServiceUnavailable("Too many concurrent writes to this model; retry shortly.")
        self._discard(record.object_keys)
        metrics.add_metric(name="ModelDeleted", unit=MetricUnit.Count, value=1)

    def delete_model(self, model: str) -> int:
        """Deletes every version, a transaction per batch; returns how many versions went."""
        check_model_name(model)
        deleted = 0
        conflicts = 0
        while True:
            records = self._table.list_versions(model)[:MAX_VERSIONS_PER_TRANSACTION]
            if not records:
                if deleted == 0:
                    raise NotFound(f"Model {model!r} does not exist.")
                return deleted
            summary = self._table.get_summary(model) or ModelSummary(model)
            names = {record.version for record in records}
            remaining = summary.without_versions(names, self._clock())
            try:
                self._table.delete_versions(records, remaining, summary.revision)
            except LrnstakError as error:
                # A retry of our own transaction, whose answer was lost, conflicts with it or times out too.
                if not self._deletion_landed(model, names, summary.revision):
                    if not isinstance(error, StorageConflict):
                        raise
                    conflicts += 1
                    if conflicts >= self._write_attempts:
                        raise ServiceUnavailable("Too many concurrent writes to this model; retry shortly.") from None
                    _back_off(conflicts)
                    continue
            deleted += len(records)
            metrics.add_metric(name="ModelDeleted", unit=MetricUnit.Count, value=len(records))
            self._discard(key for record in records for key in record.object_keys)
            if not remaining.versions:
                return deleted  # the summary listed every version: none is left

    def _deletion_landed(self, model: str, names: set[str], revision: int) -> bool:
        """Whether versions are gone since the summary was at `revision` (removed by us or by another writer)."""
        summary = self._table.get_summary(model)
        return summary is None or (summary.revision > revision and not names & set(summary.versions))

    def _discard(self, keys: Iterable[str]) -> None:
        """Deletes bytes nothing points at any more. A failure leaves an orphan object, never a broken version."""
        keys = list(keys)
        if not keys:
            return
        try:
            self._artifacts.delete_keys(keys)
        except LrnstakError as error:
            logger.warning("orphaned artifacts left in the bucket", extra={"keys": keys, "reason": error.message})


def _back_off(attempt: int) -> None:
    # Full jitter: concurrent writers to one model spread out instead of colliding again.
    time.sleep(random.uniform(0, min(0.5, 0.01 * 2**attempt)))  # noqa: S311 - timing jitter, not security


@lru_cache(maxsize=1)
def get_registry_service() -> RegistryService:
    """The service wired to this container's settings and AWS clients, built on first use."""
    settings = get_settings()
    clients = get_clients()
    return RegistryService(
        RegistryTable(clients.dynamodb, settings.registry_table),
        ArtifactStore(clients.s3, settings.models_bucket),
        inline_model_limit_bytes=settings.inline_model_limit_bytes,
        presigned_url_seconds=settings.presigned_url_seconds,
        write_attempts=settings.registry_write_attempts,
    )
