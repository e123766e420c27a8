"""What the client returns: small typed records of the API's answers (shapes of lrnstak.schemas)."""

from dataclasses import dataclass, field
from typing import Any, Literal, NotRequired, TypedDict

JobKind = Literal["training", "prediction"]
FINISHED = frozenset({"succeeded", "failed"})


class PredictionEntry(TypedDict):
    """One answer per input row: the row's own columns (unless include_input=False), then these."""

    prediction: Any
    probabilities: NotRequired[dict[str, float | None]]


@dataclass(frozen=True)
class ModelSummary:
    model: str
    versions: list[str]
    latest: str | None
    updated_at: str

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> "ModelSummary":
        return cls(body["model"], list(body["versions"]), body.get("latest"), body["updated_at"])


@dataclass(frozen=True)
class VersionInfo:
    version: str
    created_at: str
    updated_at: str
    size: int
    algorithm: str
    metrics: dict[str, float]

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> "VersionInfo":
        return cls(
            body["version"], body["created_at"], body["updated_at"], body["size"], body["algorithm"], body["metrics"]
        )


@dataclass(frozen=True)
class ModelInfo:
    model: str
    version: str
    algorithm: str
    parameters: dict[str, Any]
    training_scores: dict[str, Any] | None
    metrics: dict[str, float]
    created_at: str
    updated_at: str
    size: int
    sha256: str
    sklearn_version: str
    metadata: dict[str, Any]
    feature_schema: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> "ModelInfo":
        return cls(
            model=body["model"],
            version=body["version"],
            algorithm=body["algorithm"],
            parameters=body["parameters"],
            training_scores=body.get("training_scores"),
            metrics=body["metrics"],
            created_at=body["created_at"],
            updated_at=body["updated_at"],
            size=body["size"],
            sha256=body["sha256"],
            sklearn_version=body["sklearn_version"],
            metadata=body.get("metadata") or {},
            feature_schema=body.get("feature_schema"),
        )


@dataclass(frozen=True)
class BestModel:
    model: str
    version: str
    best_score: float
    details: dict[str, Any]
    parameters: dict[str, Any]

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> "BestModel":
        return cls(body["model"], body["version"], body["best_score"], body["details"], body["parameters"])


@dataclass(frozen=True)
class TrainingData:
    parameters: dict[str, Any]
    rows: list[Any]


@dataclass(frozen=True)
class UploadResult:
    model: str
    version: str
    sha256: str
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TrainResult:
    """A trained and registered version. `job_id` is set when the training ran as a job."""

    model: str
    version: str
    algorithm: str
    training_results: dict[str, Any]
    message: str
    job_id: str | None = None


@dataclass(frozen=True)
class JobError:
    code: str
    message: str


@dataclass(frozen=True)
class BatchOutput:
    """A batch prediction's file: `url` is a presigned GET, valid until `url_expires_at`."""

    format: Literal["csv", "jsonl"]
    rows: int
    bytes: int
    url: str
    url_expires_at: str


@dataclass(frozen=True)
class Job:
    job_id: str
    kind: JobKind
    status: str
    model: str | None = None
    version: str | None = None
    progress: float = 0.0
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    error: JobError | None = None
    training_results: dict[str, Any] | None = None
    output: BatchOutput | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @classmethod
    def from_json(cls, body: dict[str, Any], kind: JobKind) -> "Job":
        error = body.get("error")
        output = body.get("output")
        return cls(
            job_id=body["job_id"],
            kind=kind,
            status=body["status"],
            model=body.get("model"),
            version=body.get("version"),
            progress=float(body.get("progress") or 0.0),
            created_at=body.get("created_at"),
            started_at=body.get("started_at"),
            finished_at=body.get("finished_at"),
            error=JobError(error["code"], error["message"]) if error else None,
            training_results=body.get("training_results"),
            output=BatchOutput(**output) if output else None,
        )


@dataclass(frozen=True)
class Dataset:
    """An uploaded dataset: pass `dataset_id` where rows would go (training, batch predictions)."""

    dataset_id: str
    upload_url: str
    expires_at: str
