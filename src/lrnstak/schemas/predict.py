"""Shapes of the predict API: the old stack's `{"version", "data"}` body and its list-of-rows answer."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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
