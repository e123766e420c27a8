"""Batch predictions: every row of an uploaded dataset through one model version, as a job.

For inputs far beyond one request. The request is checked and the version pinned when the job is
submitted (so an unknown model, version or dataset is a 4xx at once, and a later `latest` does not change
what the job predicts with); the jobs worker then predicts chunk by chunk, writes CSV or JSON lines to a
file and uploads it whole under the job's prefix. A finished job offers the file through a presigned GET.
"""

import csv
import json
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import IO, Any

from aws_lambda_powertools.metrics import MetricUnit

from lrnstak.datasets import dataset_key, parse_dataset
from lrnstak.errors import InvalidInput, NotFound
from lrnstak.jobs.service import JobService, get_job_service
from lrnstak.ml.predicting import ServedModel
from lrnstak.ml.predicting import predict as predict_rows
from lrnstak.naming import check_model_name, check_version_to_read
from lrnstak.observability import metrics
from lrnstak.predict.model_cache import ModelCache
from lrnstak.predict.service import PREDICTION, PROBABILITIES, CsvLayout, check_rows, column_order, get_model_cache
from lrnstak.settings import get_settings
from lrnstak.storage.artifacts import ArtifactStore
from lrnstak.storage.clients import get_clients
from lrnstak.storage.jobs_table import PREDICTION as PREDICTION_JOB
from lrnstak.storage.jobs_table import SUCCEEDED, JobOutcome, JobRecord

OUTPUT_FORMATS = ("csv", "jsonl")
CONTENT_TYPES = {"csv": "text/csv", "jsonl": "application/x-ndjson"}
# Rows predicted at once: big enough for numpy to pay off, small enough to bound the worker's memory.
CHUNK_ROWS = 5_000


@dataclass(frozen=True)
class BatchRequest:
    dataset: str
    output_format: str
    include_input: bool
    probabilities: bool


@dataclass(frozen=True)
class BatchOutput:
    """A succeeded job's output file: its format, rows and size, a presigned GET and when it expires (ISO 8601)."""

    format: str
    rows: int
    bytes: int
    url: str
    url_expires_at: str


@dataclass(frozen=True)
class BatchJob:
    job: JobRecord
    output: BatchOutput | None = None


def default_output_format(dataset: str) -> str:
    return "csv" if dataset.endswith(".csv") else "jsonl"


class BatchPredictionService:
    def __init__(
        self,
        models: ModelCache[ServedModel],
        jobs: JobService,
        store: ArtifactStore,
        *,
        presigned_url_seconds: int,
        chunk_rows: int = CHUNK_ROWS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self._models = models
        self._jobs = jobs
        self._store = store
        self._url_seconds = presigned_url_seconds
        self._chunk_rows = chunk_rows

    def submit(self, model: str, version: str, request: BatchRequest) -> JobRecord:
        check_model_name(model)
        check_version_to_read(version)
        if request.output_format not in OUTPUT_FORMATS:
            raise InvalidInput(
                f"format {request.output_format!r} is not offered: use one of {', '.join(OUTPUT_FORMATS)}.",
                {"field": "format"},
            )
        key = dataset_key(request.dataset)
        # The model is loaded here (a warm function has it already): what cannot work fails now, not later.
        lookup = self._models.get(model, version)
        if request.probabilities and lookup.value.probability_keys is None:
            raise InvalidInput(
                "This model gives no class probabilities (it has no predict_proba): leave out `probabilities`.",
                {"field": "probabilities"},
            )
        if not self._store.exists(key):
            raise InvalidInput(
                f"Dataset {request.dataset!r} has not been uploaded: PUT the data to the upload_url that "
                "POST /datasets gave, then submit the batch.",
                {"field": "dataset"},
            )
        document = {
            "dataset": request.dataset,
            "format": request.output_format,
            "include_input": request.include_input,
            "probabilities": request.probabilities,
        }
        return self._jobs.submit(PREDICTION_JOB, model, lookup.record.version, document)

    def get_job(self, job_id: str) -> BatchJob:
        job = self._jobs.get(PREDICTION_JOB, job_id)
        if job is None:
            raise NotFound(f"Prediction job {job_id!r} does not exist.")
        if job.status != SUCCEEDED or job.output is None:
            return BatchJob(job)
        expires_at = datetime.fromtimestamp(self._clock() + self._url_seconds, UTC)
        output = BatchOutput(
            format=str(job.output["format"]),
            rows=int(job.output["rows"]),
            bytes=int(job.output["bytes"]),
            url=self._jobs.output_url(str(job.output["key"]), self._url_seconds),
            url_expires_at=expires_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
        )
        return BatchJob(job, output)

    # worker --------------------------------------------------------------------------------------------

    def run_job(self, job: JobRecord, document: Any, progress: Callable[[float], None]) -> JobOutcome:
        """Predicts every row of the job's dataset with its pinned version and uploads the output."""
        request = BatchRequest(
            dataset=str(document["dataset"]),
            output_format=str(document["format"]),
            include_input=bool(document["include_input"]),
            probabilities=bool(document["probabilities"]),
        )
        assert job.version is not None  # pinned at submit
        rows = check_rows(parse_dataset(request.dataset, self._store.get_bytes(dataset_key(request.dataset))))
        served = self._models.get(job.model, job.version, fresh=True).value
        key = f"jobs/{job.job_id}/predictions.{request.output_format}"
        with tempfile.TemporaryFile() as output:
            self._write_predictions(served, rows, request, output, progress)
            size = output.tell()
            output.seek(0)
            self._store.put_file(key, output, size, CONTENT_TYPES[request.output_format])
        metrics.add_metric(name="PredictionServed", unit=MetricUnit.Count, value=len(rows))
        metrics.add_metric(name="BatchPredictionFinished", unit=MetricUnit.Count, value=1)
        return JobOutcome(
            version=job.version,
            output={"key": key, "format": request.output_format, "rows": len(rows), "bytes": size},
        )

    def _write_predictions(
        self,
        served: ServedModel,
        rows: list[dict[str, Any]],
        request: BatchRequest,
        output: IO[bytes],
        progress: Callable[[float], None],
    ) -> None:
        text = _TextSink(output)
        layout: CsvLayout | None = None
        writer = csv.writer(text, lineterminator="\n")
        if request.output_format == "csv":
            keys = served.probability_keys if request.probabilities else None
            layout = CsvLayout(column_order(rows), request.include_input, keys)
            writer.writerow(layout.header)
        for start in range(0, len(rows), self._chunk_rows):
            chunk = rows[start : start + self._chunk_rows]
            answers = predict_rows(served, chunk, request.probabilities, first_row=start)
            entries = [
                {**row, PREDICTION: value} if request.include_input else {PREDICTION: value}
                for row, value in zip(chunk, answers.values, strict=True)
            ]
            if answers.probabilities is not None:
                for entry, classes in zip(entries, answers.probabilities, strict=True):
                    entry[PROBABILITIES] = classes
            if layout is not None:
                writer.writerows(layout.records(entries))
            else:
                text.write("".join(_json_line(entry) for entry in entries))
            progress(min(1.0, (start + len(chunk)) / len(rows)))


class _TextSink:
    """Text written as UTF-8 to a binary file (what csv.writer and the JSON lines need)."""

    def __init__(self, output: IO[bytes]) -> None:
        self._output = output

    def write(self, text: str) -> int:
        return self._output.write(text.encode())


def _json_line(entry: dict[str, Any]) -> str:
    try:
        return json.dumps(entry, separators=(",", ":"), allow_nan=False) + "\n"
    except ValueError:  # a dataset row with NaN or Infinity (JSON datasets may hold them): null, as on the wire
        return json.dumps(_finite(entry), separators=(",", ":")) + "\n"


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


@lru_cache(maxsize=1)
def get_batch_prediction_service() -> BatchPredictionService:
    settings = get_settings()
    clients = get_clients()
    return BatchPredictionService(
        get_model_cache(),
        get_job_service(),
        ArtifactStore(clients.s3, settings.models_bucket),
        presigned_url_seconds=settings.presigned_url_seconds,
    )
