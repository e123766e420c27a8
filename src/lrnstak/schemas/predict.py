"""Shapes of the predict API: the old stack's `{"version", "data"}` body and its list-of-rows answer."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lrnstak.schemas.jobs import JobError, JobStatus


class PredictModelRequest(BaseModel):
    """Rows as objects (`data`), or as arrays under `columns`. Unset options fall back to the query string."""

    model_config = ConfigDict(extra="ignore")

    version: str | None = Field(default=None, description='A version name or "latest" (the default).')
    data: list[Any] = Field(description="Rows: JSON objects, or arrays when `columns` names their values.")
    columns: list[str] | None = None
    include_input: bool | None = Field(default=None, description="false: answer only the predictions.")
    probabilities: bool | None = Field(default=None, description="true: add each class's probability.")


class PredictionEntry(BaseModel):
    """One answer per input row: the row itself (unless include_input is false) with `prediction` added."""

    model_config = ConfigDict(extra="allow")

    prediction: Any
    probabilities: dict[str, float | None] | None = None


class PredictBatchRequest(BaseModel):
    """Every row of a dataset uploaded through POST /datasets, predicted by a job."""

    model_config = ConfigDict(extra="forbid")

    version: str | None = Field(default=None, description='A version name or "latest" (the default).')
    dataset: str = Field(description="The dataset_id that POST /datasets gave, after the upload.")
    format: Literal["csv", "jsonl"] | None = Field(
        default=None, description="The output's format: CSV for a CSV dataset, JSON lines otherwise, by default."
    )
    include_input: bool = Field(default=True, description="false: the output holds only the predictions.")
    probabilities: bool = Field(default=False, description="true: add each class's probability.")


class PredictionOutput(BaseModel):
    format: Literal["csv", "jsonl"]
    rows: int
    bytes: int
    url: str = Field(description="A presigned GET of the output file.")
    url_expires_at: str = Field(description="When the url stops working; GET the job again for a fresh one.")


class PredictionJobResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    job_id: str
    model: str
    version: str | None
    status: JobStatus
    progress: float
    created_at: str
    started_at: str | None
    finished_at: str | None
    error: JobError | None = None
    output: PredictionOutput | None = None
