"""Shapes of the registry API, as the old stack's clients send and read them."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lrnstak.storage.records import ModelSummary, VersionRecord


class ModelParameters(BaseModel):
    """Free-form, but the fields the trainer and predict rely on must have the right types."""

    model_config = ConfigDict(extra="allow")

    target_label: str | None = None
    feature_labels: list[str] | None = None
    metadata: dict[str, Any] | None = None


class UploadModelRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", protected_namespaces=())

    model: str = Field(min_length=1, description="The joblib (or pickle) file, base64-encoded.")
    version: str | None = Field(default=None, description="Omitted: the next free v<N>.")
    data: list[Any] | None = None
    training_data: list[Any] | None = None
    training_results: dict[str, Any] | None = None
    parameters: ModelParameters = Field(default_factory=ModelParameters)

    @field_validator("version")
    @classmethod
    def blank_means_none(cls, value: str | None) -> str | None:
        return value or None


class UploadModelResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    message: str = "Model uploaded successfully"
    model: str
    version: str
    sha256: str
    warnings: list[str] = Field(default_factory=list)


class ModelListEntry(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model: str
    versions: list[str]
    latest: str | None
    updated_at: str

    @classmethod
    def from_summary(cls, summary: ModelSummary) -> "ModelListEntry":
        ordered = sorted(summary.versions, key=lambda version: (summary.versions[version], version))
        return cls(model=summary.model, versions=ordered, latest=summary.latest, updated_at=summary.updated_at)


class VersionEntry(BaseModel):
    version: str
    created_at: str
    updated_at: str
    size: int
    algorithm: str
    metrics: dict[str, float]

    @classmethod
    def from_record(cls, record: VersionRecord) -> "VersionEntry":
        return cls(
            version=record.version,
            created_at=record.created_at,
            updated_at=record.updated_at,
            size=record.size,
            algorithm=record.algorithm,
            metrics=record.metrics,
        )


class ModelVersionsResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model: str
    versions: list[VersionEntry]


class ModelArtifactResponse(BaseModel):
    """`model` inline (base64) when it fits a Lambda response, else `model_url` and `model_size`."""

    model_config = ConfigDict(protected_namespaces=())

    model: str | None = None
    model_url: str | None = None
    model_size: int | None = None
    parameters: dict[str, Any]


class ModelInfoResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

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
    explanation: dict[str, Any] | None = Field(
        default=None,
        description="Trained models whose estimator has them: feature importances or coefficients by feature "
        '(`{"kind": "importances"|"coefficients", "features", "values", "classes"?}`), the 50 largest.',
    )
    holdout: dict[str, Any] | None = Field(
        default=None,
        description="Trained models: predicted against actual on the hold-out rows; regression "
        '`{"kind": "regression", "pairs": [{"actual", "predicted"}]}` (at most 500), classification '
        '`{"kind": "classification", "labels", "matrix"}` (matrix[actual][predicted] counts).',
    )

    @classmethod
    def from_record(cls, record: VersionRecord) -> "ModelInfoResponse":
        scores, explained = split_explanations(record.training_results)
        return cls(
            model=record.model,
            version=record.version,
            algorithm=record.algorithm,
            parameters=record.parameters,
            training_scores=scores,
            metrics=record.metrics,
            created_at=record.created_at,
            updated_at=record.updated_at,
            size=record.size,
            sha256=record.sha256,
            sklearn_version=record.sklearn_version,
            metadata=record.parameters.get("metadata") or {},
            feature_schema=record.feature_schema,
            **explained,
        )


# What the trainer adds to a version's results (lrnstak.ml.explaining), by the kinds it writes.
EXPLANATION_KINDS = {"explanation": ("importances", "coefficients"), "holdout": ("regression", "classification")}


def split_explanations(results: dict[str, Any] | None) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The results without the trainer's explanation and hold-out comparison, and those two apart. An uploaded
    version's results are the client's own: keys of the same names but another shape stay where they are."""
    if results is None:
        return None, {}
    explained = {
        key: value
        for key, kinds in EXPLANATION_KINDS.items()
        if isinstance(value := results.get(key), dict) and value.get("kind") in kinds
    }
    return {key: value for key, value in results.items() if key not in explained}, explained


class TrainingDataResponse(BaseModel):
    parameters: dict[str, Any]
    training_data: list[Any]


class BestModelResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model: str
    version: str
    best_score: float
    details: dict[str, Any]
    parameters: dict[str, Any]
