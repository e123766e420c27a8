"""`Client`: every route of the lrnstak API as a typed method, with the large-data and job handling built in.

Imports only httpx and lrnstak's plain-Python modules: scikit-learn is needed by `download` and `upload`
(imported then), pandas only by whoever passes a DataFrame.
"""

import base64
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, overload
from urllib.parse import quote

import httpx

from lrnstak.client.data import (
    as_rows,
    csv_rows,
    entries_as,
    is_path,
    jsonl_entries,
    read_csv_file,
)
from lrnstak.client.errors import LrnstakError
from lrnstak.client.models import (
    BestModel,
    Dataset,
    Job,
    JobKind,
    ModelInfo,
    ModelSummary,
    PredictionEntry,
    TrainingData,
    TrainResult,
    UploadResult,
    VersionInfo,
)
from lrnstak.client.transport import Transport, encode_json

URL_VARIABLE = "LRNSTAK_API_URL"
KEY_VARIABLE = "LRNSTAK_API_KEY"
DEFAULT_URL = "http://127.0.0.1:5000"
# API Gateway and Lambda take 6 MB of request; a JSON body past this goes through POST /datasets instead.
INLINE_LIMIT_BYTES = 5 * 1024 * 1024
JOB_LINKS: dict[JobKind, str] = {"training": "/train/jobs", "prediction": "/predict/jobs"}
ProgressCallback = Callable[[Job], None]
_MISSING: Any = object()


def segment(value: str) -> str:
    """A name, version or key as exactly one path segment, whatever characters it holds."""
    return quote(value, safe="")


class Client:
    """A client of one lrnstak API.

    `url` defaults to $LRNSTAK_API_URL, then http://127.0.0.1:5000 (`lrnstak serve`); `api_key` to
    $LRNSTAK_API_KEY, sent as `x-api-key` when set. Every failure raises `LrnstakError`.
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        attempts: int = 5,
        inline_limit_bytes: int = INLINE_LIMIT_BYTES,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = (url or os.environ.get(URL_VARIABLE, "").strip() or DEFAULT_URL).rstrip("/")
        key = api_key if api_key is not None else os.environ.get(KEY_VARIABLE, "")
        headers = {"x-api-key": key} if key else {}
        self.inline_limit_bytes = inline_limit_bytes
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, transport=transport)
        # Presigned S3 URLs carry their own authorisation: the API key must not travel there.
        self._storage = httpx.Client(timeout=max(timeout, 300.0), transport=transport)
        self._transport = Transport(self._http, attempts=attempts, sleep=sleep)
        self._storage_transport = Transport(self._storage, attempts=attempts, sleep=sleep)
        self.cache = CacheApi(self._transport)
        self.jobs = JobsApi(self._transport)

    def close(self) -> None:
        self._http.close()
        self._storage.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(url={self.url!r})"

    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self._transport.request("GET", path, idempotent=True, params=params).json()

    def health(self) -> dict[str, Any]:
        answer: dict[str, Any] = self._get("/health")
        return answer

    # registry ------------------------------------------------------------------------------------------

    def models(self) -> list[ModelSummary]:
        """Every model, all pages."""
        found: list[ModelSummary] = []
        params: dict[str, Any] = {"limit": 1000}
        while True:
            response = self._transport.request("GET", "/models", idempotent=True, params=params)
            found += [ModelSummary.from_json(entry) for entry in response.json()]
            token = response.headers.get("X-Next-Token")
            if not token:
                return found
            params = {"limit": 1000, "next_token": token}

    def versions(self, name: str) -> list[VersionInfo]:
        body = self._get(f"/models/{segment(name)}")
        return [VersionInfo.from_json(entry) for entry in body["versions"]]

    def info(self, name: str, version: str = "latest") -> ModelInfo:
        return ModelInfo.from_json(self._get(f"/models/{segment(name)}/{segment(version)}/info"))

    def best(self, name: str, metric: str = "mse", order: Literal["min", "max"] = "min", **filters: Any) -> BestModel:
        """The version with the best `metric` (lowest for order="min"); `filters` match its metadata."""
        params = {**{key: str(value) for key, value in filters.items()}, "metric": metric, "order": order}
        return BestModel.from_json(self._get(f"/models/{segment(name)}/best", params))

    def training_data(self, name: str, version: str = "latest") -> TrainingData:
        body = self._get(f"/models/{segment(name)}/{segment(version)}/training_data")
        return TrainingData(parameters=body["parameters"], rows=body["training_data"])

    def download_bytes(self, name: str, version: str = "latest") -> bytes:
        """The model file as stored (joblib); inline, or from S3 when it is too large to answer inline."""
        body = self._get(f"/models/{segment(name)}/{segment(version)}")
        if body.get("model") is not None:
            return base64.b64decode(body["model"])
        return self._storage_transport.request("GET", body["model_url"], idempotent=True).content

    def download(self, name: str, version: str = "latest") -> Any:
        """The fitted estimator, unpickled through lrnstak's allowlisting loader (needs lrnstak[ml])."""
        from lrnstak.errors import LrnstakError as DomainError
        from lrnstak.ml.safe_loading import load_model

        data = self.download_bytes(name, version)
        try:
            return load_model(data).estimator
        except DomainError as error:
            raise LrnstakError(error.message, code=error.code, details=error.details) from None

    def upload(
        self,
        name: str,
        estimator: Any,
        version: str | None = None,
        *,
        target: str | None = None,
        features: Sequence[str] | None = None,
        parameters: Mapping[str, Any] | None = None,
        training_data: Any = None,
        training_results: Mapping[str, Any] | None = None,
    ) -> UploadResult:
        """Register a fitted estimator (or the bytes of a joblib/pickle file) as a version of `name`."""
        if isinstance(estimator, bytes | bytearray):
            data = bytes(estimator)
        else:
            from lrnstak.ml.safe_loading import dump_model

            data = dump_model(estimator)
        sent_parameters = dict(parameters or {})
        if target is not None:
            sent_parameters["target_label"] = target
        if features is not None:
            sent_parameters["feature_labels"] = list(features)
        body: dict[str, Any] = {"model": base64.b64encode(data).decode(), "parameters": sent_parameters}
        if version is not None:
            body["version"] = version
        if training_data is not None:
            body["training_data"] = as_rows(training_data)
        if training_results is not None:
            body["training_results"] = dict(training_results)
        # With a version named, a repeat writes the same version again; without, it would add another.
        answer = self._transport.request(
            "POST", f"/models/{segment(name)}", idempotent=version is not None, json_body=body
        ).json()
        return UploadResult(answer["model"], answer["version"], answer["sha256"], list(answer.get("warnings", [])))

    def delete(self, name: str, version: str | None = None) -> None:
        """Delete one version, or (no version) the model with all its versions."""
        path = f"/models/{segment(name)}" + (f"/{segment(version)}" if version is not None else "")
        self._transport.request("DELETE", path, idempotent=True)

    # datasets ------------------------------------------------------------------------------------------

    def upload_dataset(self, data: Any) -> Dataset:
        """Upload rows, a DataFrame, a CSV file's path or CSV bytes (any size) for training or batch predictions.

        CSV goes as it is (format csv); rows and DataFrames as JSON lines."""
        if isinstance(data, bytes):
            content, format = data, "csv"
        elif is_path(data):
            content, format = read_csv_file(data), "csv"
        else:
            content, format = b"\n".join(encode_json(row) for row in as_rows(data)), "jsonl"
        body = self._transport.request("POST", "/datasets", idempotent=True, json_body={"format": format}).json()
        dataset = Dataset(body["dataset_id"], body["upload_url"], body["expires_at"])
        self._storage_transport.request("PUT", dataset.upload_url, idempotent=True, content=content)
        return dataset

    # training ------------------------------------------------------------------------------------------

    @overload
    def train(
        self,
        name: str,
        data: Any,
        *,
        target: str,
        features: Sequence[str] | None = ...,
        algorithm: str | Sequence[str] | None = ...,
        version: str | None = ...,
        testing_data: Any = ...,
        validation_data: Any = ...,
        parameters: Mapping[str, Any] | None = ...,
        run_async: bool = ...,
        wait: Literal[True] = ...,
        timeout: float | None = ...,
        on_progress: ProgressCallback | None = ...,
    ) -> TrainResult: ...

    @overload
    def train(
        self,
        name: str,
        data: Any,
        *,
        target: str,
        features: Sequence[str] | None = ...,
        algorithm: str | Sequence[str] | None = ...,
        version: str | None = ...,
        testing_data: Any = ...,
        validation_data: Any = ...,
        parameters: Mapping[str, Any] | None = ...,
        run_async: bool = ...,
        wait: bool,
        timeout: float | None = ...,
        on_progress: ProgressCallback | None = ...,
    ) -> TrainResult | Job: ...

    def train(
        self,
        name: str,
        data: Any,
        *,
        target: str,
        features: Sequence[str] | None = None,
        algorithm: str | Sequence[str] | None = None,
        version: str | None = None,
        testing_data: Any = None,
        validation_data: Any = None,
        parameters: Mapping[str, Any] | None = None,
        run_async: bool = False,
        wait: bool = True,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> TrainResult | Job:
        """Train, evaluate and register a version of `name` from rows, a DataFrame, a CSV file's path or a Dataset.

        `parameters` adds the trainer's other options (hyper, split, cv, task, rules, metadata...). Training
        that continues as a job (run_async=True, or past the API's synchronous budget) is waited for when
        `wait`, else its Job is returned. Data too large for a request goes through /datasets.
        """
        sent_parameters: dict[str, Any] = {**(parameters or {}), "target_label": target}
        if features is not None:
            sent_parameters["feature_labels"] = list(features)
        if algorithm is not None:
            sent_parameters["algorithm"] = algorithm if isinstance(algorithm, str) else list(algorithm)
        body: dict[str, Any] = {"parameters": sent_parameters, "async": run_async}
        if version is not None:
            body["version"] = version
        for field, rows in (("testing_data", testing_data), ("validation_data", validation_data)):
            if rows is not None:
                body[field] = as_rows(rows)
        body.update(self._training_rows(data, body))
        # The key makes a retry after a lost answer (or a 503) return the first answer instead of training again.
        headers = {"Idempotency-Key": uuid.uuid4().hex}
        response = self._transport.request(
            "POST", f"/train/{segment(name)}", idempotent=True, json_body=body, headers=headers
        )
        answer = response.json()
        if response.status_code != 202:
            return TrainResult(
                model=answer["model"],
                version=answer["version"],
                algorithm=answer["algorithm"],
                training_results=answer["training_results"],
                message=answer["message"],
            )
        job = self.jobs.get(answer["job_id"], "training")
        if not wait:
            return job
        job = self.jobs.wait(job, timeout=timeout, on_progress=on_progress)
        return self._trained_by(job)

    def _training_rows(self, data: Any, body: dict[str, Any]) -> dict[str, Any]:
        """`training_data` inline, or `dataset` when the body would be too large for a request."""
        if isinstance(data, Dataset):
            return {"dataset": data.dataset_id}
        if is_path(data):
            content = read_csv_file(data)
            if len(content) + len(encode_json(body)) > self.inline_limit_bytes:
                return {"dataset": self.upload_dataset(data).dataset_id}
            rows = csv_rows(content.decode("utf-8-sig"))
        else:
            rows = as_rows(data)
        if len(encode_json(rows)) + len(encode_json(body)) > self.inline_limit_bytes:
            return {"dataset": self.upload_dataset(rows).dataset_id}
        return {"training_data": rows}

    def _trained_by(self, job: Job) -> TrainResult:
        # A succeeded training job has both.
        assert job.version is not None
        assert job.model is not None
        results = job.training_results or {}
        algorithm = results.get("algorithm") or self.info(job.model, job.version).algorithm
        return TrainResult(
            model=job.model,
            version=job.version,
            algorithm=str(algorithm),
            training_results=results,
            message=f"Model {job.model}_{job.version} trained and saved.",
            job_id=job.job_id,
        )

    # predictions ---------------------------------------------------------------------------------------

    def predict(
        self,
        name: str,
        rows: Any,
        version: str | None = None,
        *,
        include_input: bool = True,
        probabilities: bool = False,
        timeout: float | None = None,
    ) -> Any:
        """One entry per row, the row with `prediction` added (a DataFrame when given one).

        Rows beyond one request's size, or whose answer would be (413), are predicted by a batch job over an
        uploaded dataset.
        """
        sent = as_rows(rows)
        body: dict[str, Any] = {"data": sent, "include_input": include_input, "probabilities": probabilities}
        if version is not None:
            body["version"] = version
        content = encode_json(body)
        if len(content) <= self.inline_limit_bytes:
            headers = {"Content-Type": "application/json"}
            path = f"/predict/model/{segment(name)}"
            try:
                response = self._transport.request("POST", path, idempotent=True, content=content, headers=headers)
            except LrnstakError as error:
                if error.status_code != 413:
                    raise
            else:
                entries: list[PredictionEntry] = response.json()
                return entries_as(entries, rows)
        job = self.predict_batch(
            name,
            sent,
            version,
            output_format="jsonl",
            include_input=include_input,
            probabilities=probabilities,
            timeout=timeout,
        )
        return entries_as(self.batch_entries(job), rows)

    def predict_csv(
        self,
        name: str,
        csv: str | os.PathLike[str] | bytes,
        version: str | None = None,
        *,
        include_input: bool = True,
        probabilities: bool = False,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> bytes:
        """CSV in (a file's path, or the CSV itself as bytes), CSV out: the input columns and `prediction`.

        A file beyond one request's size, or whose answer would be (413), is predicted by a batch job."""
        content = csv if isinstance(csv, bytes) else read_csv_file(csv)
        if len(content) <= self.inline_limit_bytes:
            params: dict[str, Any] = {"include_input": str(include_input).lower()}
            if probabilities:
                params["probabilities"] = "true"
            if version is not None:
                params["version"] = version
            headers = {"Content-Type": "text/csv", "Accept": "text/csv"}
            path = f"/predict/model/{segment(name)}"
            try:
                return self._transport.request(
                    "POST", path, idempotent=True, content=content, params=params, headers=headers
                ).content
            except LrnstakError as error:
                if error.status_code != 413:
                    raise
        job = self.predict_batch(
            name,
            content,
            version,
            output_format="csv",
            include_input=include_input,
            probabilities=probabilities,
            timeout=timeout,
            on_progress=on_progress,
        )
        return self.batch_output(job)

    def predict_batch(
        self,
        name: str,
        data: Any,
        version: str | None = None,
        *,
        output_format: Literal["csv", "jsonl"] | None = None,
        include_input: bool = True,
        probabilities: bool = False,
        wait: bool = True,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> Job:
        """Predict every row of `data` (rows, a DataFrame, a CSV path or bytes, or an uploaded Dataset) as a job.

        Returns the job, finished when `wait`; read its output with `batch_output` or `batch_entries`.
        """
        dataset = data if isinstance(data, Dataset) else self.upload_dataset(data)
        body: dict[str, Any] = {
            "dataset": dataset.dataset_id,
            "include_input": include_input,
            "probabilities": probabilities,
        }
        if version is not None:
            body["version"] = version
        if output_format is not None:
            body["format"] = output_format
        answer = self._transport.request(
            "POST", f"/predict/model/{segment(name)}/batch", idempotent=False, json_body=body
        ).json()
        job = self.jobs.get(answer["job_id"], "prediction")
        return self.jobs.wait(job, timeout=timeout, on_progress=on_progress) if wait else job

    def batch_output(self, job: Job) -> bytes:
        """The output file of a succeeded batch prediction (CSV or JSON lines, as the job's format says)."""
        if job.output is None:
            job = self.jobs.get(job.job_id, "prediction")
        if job.output is None:
            raise LrnstakError(f"Prediction job {job.job_id} has no output: it is {job.status}.", code="no_output")
        return self._storage_transport.request("GET", job.output.url, idempotent=True).content

    def batch_entries(self, job: Job) -> list[PredictionEntry]:
        """A succeeded batch prediction's entries, as `predict` answers them."""
        data = self.batch_output(job)
        assert job.output is not None or data == b""
        if job.output is not None and job.output.format == "csv":
            entries: list[Any] = csv_rows(data.decode("utf-8-sig"))
        else:
            entries = jsonl_entries(data)
        return entries


class JobsApi:
    """Training jobs (/train/jobs) and batch prediction jobs (/predict/jobs)."""

    def __init__(self, transport: Transport, poll_seconds: float = 0.25, max_poll_seconds: float = 2.0) -> None:
        self._transport = transport
        self.poll_seconds = poll_seconds
        self.max_poll_seconds = max_poll_seconds

    def get(self, job_id: str, kind: JobKind = "training") -> Job:
        body = self._transport.request("GET", f"{JOB_LINKS[kind]}/{segment(job_id)}", idempotent=True).json()
        return Job.from_json(body, kind)

    def list(self, model: str | None = None, limit: int = 20) -> list[Job]:
        """Recent training jobs, of one model or of all."""
        params: dict[str, Any] = {"limit": limit}
        if model is not None:
            params["model"] = model
        body = self._transport.request("GET", JOB_LINKS["training"], idempotent=True, params=params).json()
        return [Job.from_json(entry, "training") for entry in body]

    def wait(
        self,
        job: Job | str,
        kind: JobKind = "training",
        *,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> Job:
        """Poll until the job has finished; a failed job (or `timeout` seconds passing) raises LrnstakError."""
        current = job if isinstance(job, Job) else self.get(job, kind)
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = self.poll_seconds
        while True:
            if on_progress is not None:
                on_progress(current)
            if current.status == "succeeded":
                return current
            if current.status == "failed":
                error = current.error
                raise LrnstakError(
                    f"{current.kind.capitalize()} job {current.job_id} failed: "
                    + (error.message if error else "no reason was recorded."),
                    code=error.code if error else "job_failed",
                    details={"job_id": current.job_id},
                    body=current,
                )
            if deadline is not None and time.monotonic() + pause > deadline:
                raise LrnstakError(
                    f"{current.kind.capitalize()} job {current.job_id} is still {current.status} after {timeout} s.",
                    code="timeout",
                    details={"job_id": current.job_id},
                    body=current,
                )
            self._transport.sleep(pause)
            pause = min(self.max_poll_seconds, pause * 1.5)
            current = self.get(current.job_id, current.kind)


class CacheApi:
    """The key/value store with TTL (the old stack's Redis routes). Values are any JSON."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def get(self, key: str, default: Any = _MISSING) -> Any:
        """The value; a missing (or expired) key raises LrnstakError 404, or returns `default` if given."""
        try:
            return self._transport.request("GET", f"/cache/{segment(key)}", idempotent=True).json()
        except LrnstakError as error:
            if error.status_code == 404 and default is not _MISSING:
                return default
            raise

    def put(self, key: str, value: Any, ttl: int | None = None) -> None:
        """Set the value; `ttl` seconds until it expires (None or 0: never)."""
        self._set("PUT", key, value, ttl)

    def post(self, key: str, value: Any, ttl: int | None = None) -> None:
        """The same as put (the old stack took both)."""
        self._set("POST", key, value, ttl)

    def _set(self, method: str, key: str, value: Any, ttl: int | None) -> None:
        body = {"value": value, "ttl": ttl} if ttl else {"value": value}
        self._transport.request(method, f"/cache/{segment(key)}", idempotent=True, json_body=body)

    def delete(self, key: str) -> bool:
        """True when the key existed."""
        answer = self._transport.request("DELETE", f"/cache/{segment(key)}", idempotent=True).json()
        return bool(answer.get("value") == 1)

    def push(self, key: str, value: Any, ttl: int | None = None) -> None:
        """Put the value at the front of the list at `key` (created if absent); a given `ttl` replaces its expiry."""
        body = {"value": value} if ttl is None else {"value": value, "ttl": ttl}
        # Not repeated after a lost answer: the element could be appended twice.
        self._transport.request("PUT", f"/cache/push/{segment(key)}", idempotent=False, json_body=body)

    def pop(self, key: str) -> Any:
        """Remove and return the front element (the one pushed last)."""
        return self._transport.request("GET", f"/cache/pop/{segment(key)}", idempotent=False).json()

    def peek(self, key: str, pos: int = 0) -> Any:
        """The list's element at `pos` (0: the front), left in place."""
        params = {"pos": pos}
        return self._transport.request("GET", f"/cache/peek/{segment(key)}", idempotent=True, params=params).json()

    def set_ttl(self, key: str, ttl: int) -> None:
        """Expire the key `ttl` seconds from now (0: never)."""
        self._transport.request("PUT", f"/cache/ttl/{segment(key)}", idempotent=True, json_body={"ttl": ttl})
