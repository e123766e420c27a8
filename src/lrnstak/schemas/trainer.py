"""Shapes of the trainer API: the old stack's request names, all accepted."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lrnstak.schemas.jobs import JobStateResponse


class SplitOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    test_size: float = Field(default=0.2, gt=0, description="A fraction in (0, 1), or a number of rows (>= 1).")
    random_state: int = 142
    shuffle: bool = True


class TrainParameters(BaseModel):
    """Free-form like the old stack's, with types checked for the names lrnstak reads."""

    model_config = ConfigDict(extra="allow")

    target_label: str = Field(min_length=1)
    feature_labels: list[str] | None = None
    task: Literal["regression", "classification"] | None = None
    algorithm: str | list[str] | None = None
    hyper: dict[str, dict[str, Any]] = Field(default_factory=dict)
    split: SplitOptions = Field(default_factory=SplitOptions)
    cv: int | None = Field(default=None, ge=2, le=20)
    metadata: dict[str, Any] = Field(default_factory=dict)
    engine: str = "default"
    rules: dict[str, Any] | None = None


class TrainModelRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    version: str | None = None
    training_data: list[Any] | None = None
    data: list[Any] | None = None
    testing_data: list[Any] | None = None
    validation_data: list[Any] | None = None
    dataset: str | None = None
    parameters: TrainParameters
    run_async: bool = Field(default=False, alias="async")


class TrainModelResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    message: str
    model: str
    version: str
    algorithm: str
    training_results: dict[str, Any]


class JobResponse(JobStateResponse):
    training_results: dict[str, Any] | None = None


class CreateDatasetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["csv", "json", "jsonl"]


class DatasetResponse(BaseModel):
    dataset_id: str
    upload_url: str
    expires_at: str
