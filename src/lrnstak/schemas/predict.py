"""Shapes of the predict API: the old stack's `{"version", "data"}` body and its list-of-rows answer."""

import math
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lrnstak.errors import InvalidInput
from lrnstak.schemas.jobs import JobStateResponse


class PredictModelRequest(BaseModel):
    """Rows as objects (`data`), or as arrays under `columns`. Unset options fall back to the query string."""

    model_config = ConfigDict(extra="ignore")

    version: str | None = Field(default=None, description='A version name or "latest" (the default).')
    data: list[Any] = Field(description="Rows: JSON objects, or arrays when `columns` names their values.")
    columns: list[str] | None = None
    include_input: bool | None = Field(default=None, description="false: answer only the predictions.")
    probabilities: bool | None = Field(default=None, description="true: add each class's probability.")

    @field_validator("data")
    @classmethod
    def numbers_are_finite(cls, data: list[Any]) -> list[Any]:
        # JSON's 1e400 parses as infinity, which no model takes and no JSON answer can echo back.
        for index, row in enumerate(data):
            if _holds_infinity(row):
                raise InvalidInput(
                    f"`data` row {index} holds a number beyond the range of a 64-bit float (such as 1e400), which "
                    "reads as infinity: send a finite number, or null for a missing value.",
                    {"field": "data", "row": index},
                )
        return data

    @classmethod
    def from_json(cls, body: bytes) -> "PredictModelRequest":
        """The body, parsed by orjson (about twice as fast as pydantic's JSON mode on 1000 rows); pydantic then
        checks the small fields, and `data` (any list is valid) is taken as it is: orjson refuses any number
        beyond a float's range (1e400 is an error to it, not infinity), so the rows it parsed need no
        numbers_are_finite. Whatever orjson refuses or pydantic finds wrong is parsed again in JSON mode, so
        errors read exactly as pydantic words them for JSON (1e400 gets numbers_are_finite's message there, and
        what only pydantic accepts, an integer beyond 64 bits, still parses)."""
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            document = None
        if isinstance(document, dict) and isinstance(document.get("data"), list):
            try:
                request = cls.model_validate({**document, "data": []})
            except ValidationError:
                pass
            else:
                request.data = document["data"]
                return request
        return cls.model_validate_json(body)


# A row of scalars (what nearly every row is) is checked in one set operation, in C.
_INFINITIES = frozenset({math.inf, -math.inf})


def _holds_infinity(value: Any) -> bool:
    """Walked with a list, not recursion: a body nested 1,000 deep is a row like any other (no RecursionError)."""
    pending = [value]
    while pending:
        current = pending.pop()
        if isinstance(current, float):
            if math.isinf(current):
                return True
        elif isinstance(current, dict | list):
            items = current.values() if isinstance(current, dict) else current
            try:
                if _INFINITIES.isdisjoint(items):
                    continue
            except TypeError:  # an array or object inside (unhashable): walk it
                pass
            pending.extend(items)
    return False


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


class PredictionJobResponse(JobStateResponse):
    output: PredictionOutput | None = None
