"""Predict use cases: rows in, one answer per row out, from a registered model kept loaded while warm.

The answer is the old stack's: a list with each input row and a `prediction` key added. Models come
through `ModelCache` (see there for how long a changed version can still be served); their bytes are
fetched from S3 and unpickled by the safe loader after the SHA-256 check. CSV bodies and answers are
converted here, with the same cell typing as CSV datasets for training.
"""

import csv
import io
import json
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from lrnstak.datasets import csv_cell
from lrnstak.errors import InvalidInput
from lrnstak.ml.predicting import (
    Estimates,
    ModelInput,
    ServedModel,
    as_predictions,
    check_options,
    estimate,
    join_inputs,
    model_input,
    prepare_model,
    split_estimates,
)
from lrnstak.ml.safe_loading import load_model
from lrnstak.naming import check_model_name, check_version_to_read
from lrnstak.observability import metrics
from lrnstak.predict.coalescing import Coalescer, Outcome
from lrnstak.predict.model_cache import ModelCache
from lrnstak.settings import get_settings
from lrnstak.storage.artifacts import ArtifactStore
from lrnstak.storage.clients import get_clients
from lrnstak.storage.records import VersionRecord
from lrnstak.storage.registry_table import RegistryTable

PREDICTION = "prediction"
PROBABILITIES = "probabilities"
PROBABILITY_PREFIX = "probability_"


@dataclass(frozen=True)
class Prediction:
    model: str
    version: str
    entries: list[dict[str, Any]]
    # The keys of each entry's `probabilities`, when they were asked for.
    probability_keys: tuple[str, ...] | None


class RegistryModels:
    """What the model cache reads: versions from the registry table, model bytes from the bucket."""

    def __init__(self, table: RegistryTable, artifacts: ArtifactStore) -> None:
        self._table = table
        self._artifacts = artifacts

    def latest_version(self, model: str) -> str | None:
        summary = self._table.get_summary(model)
        return summary.latest if summary is not None else None

    def read_version(self, model: str, version: str) -> VersionRecord | None:
        return self._table.get_version(model, version)

    def load(self, record: VersionRecord) -> ServedModel:
        data = self._artifacts.get_bytes(record.artifact_key)
        loaded = load_model(data, expected_sha256=record.sha256)
        return prepare_model(loaded.estimator, record.feature_schema, record.parameters)


class PredictService:
    def __init__(self, models: ModelCache[ServedModel]) -> None:
        self._models = models
        self._calls: Coalescer[tuple[ServedModel, bool, ModelInput], Estimates] = Coalescer()

    def predict(
        self, model: str, version: str, rows: Sequence[Any], *, include_input: bool, probabilities: bool
    ) -> Prediction:
        """One entry per row. With `include_input`, the rows themselves become the entries, each with its
        `prediction` added: they are the request's own, parsed from its body, and copying 1000 rows would add
        a third to the time the answer takes to encode."""
        started = time.perf_counter()
        check_model_name(model)
        check_version_to_read(version)
        checked = check_rows(rows)
        lookup = self._models.get(model, version)
        metrics.add_metric(name="ModelCacheHit" if lookup.hit else "ModelCacheMiss", unit=MetricUnit.Count, value=1)
        served = lookup.value
        check_options(served, probabilities)
        features = model_input(served.inputs, checked)  # this request's own errors, before it joins any other
        entries: list[dict[str, Any]] = []
        if checked:  # estimators refuse zero rows
            call = (served, probabilities, features)
            if served.row_by_row:
                # Requests for the same loaded model and options that arrive together: predicted in one call.
                estimates = self._calls.run((id(served), probabilities), call, _estimate_each)
            else:
                estimates = estimate(served, features, probabilities)
            answers = as_predictions(served, estimates)
            if include_input:
                entries = checked
                for row, value in zip(entries, answers.values, strict=True):
                    row[PREDICTION] = value
            else:
                entries = [{PREDICTION: value} for value in answers.values]
            if answers.probabilities is not None:
                for entry, classes in zip(entries, answers.probabilities, strict=True):
                    entry[PROBABILITIES] = classes
        metrics.add_metric(name="PredictionServed", unit=MetricUnit.Count, value=len(entries))
        metrics.add_metric(
            name="PredictionDuration", unit=MetricUnit.Milliseconds, value=(time.perf_counter() - started) * 1000
        )
        return Prediction(model, lookup.record.version, entries, served.probability_keys if probabilities else None)


def _estimate_each(calls: Sequence[tuple[ServedModel, bool, ModelInput]]) -> list[Outcome[Estimates]]:
    """One estimator call for the inputs of several requests (one model, same options); if the estimator
    refuses the lot, each input alone, so that only the request whose rows it refuses gets the error."""
    served, probabilities, _ = calls[0]
    if len(calls) > 1:
        inputs = [features for _, _, features in calls]
        try:
            together = estimate(served, join_inputs(inputs), probabilities)
        except InvalidInput:
            pass
        else:
            return list(split_estimates(together, [len(features) for features in inputs]))
    outcomes: list[Outcome[Estimates]] = []
    for _, _, features in calls:
        try:
            outcomes.append(estimate(served, features, probabilities))
        except InvalidInput as error:
            outcomes.append(error)
    return outcomes


def check_rows(rows: Sequence[Any]) -> list[dict[str, Any]]:
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise InvalidInput(
                f"`data` row {index} is a {type(row).__name__}, not an object: send each row as a JSON object, "
                'or name the columns in `columns` and send rows as arrays ({"columns": [...], "data": [[...]]}).',
                {"field": "data", "row": index},
            )
    return list(rows)


def rows_from_columns(columns: Sequence[str], data: Sequence[Any]) -> list[dict[str, Any]]:
    """Columnar input (`{"columns": [...], "data": [[...], ...]}`) as rows."""
    repeated = sorted(column for column, count in Counter(columns).items() if count > 1)
    if repeated:
        raise InvalidInput(f"`columns` names {', '.join(map(repr, repeated))} more than once.", {"field": "columns"})
    rows = []
    for index, values in enumerate(data):
        if not isinstance(values, list) or len(values) != len(columns):
            raise InvalidInput(
                f"`data` row {index} must be an array of {len(columns)} values, one per entry of `columns`.",
                {"field": "data", "row": index},
            )
        rows.append(dict(zip(columns, values, strict=True)))
    return rows


# CSV ----------------------------------------------------------------------------------------------------


def rows_from_csv(body: bytes) -> tuple[list[str], list[dict[str, Any]]]:
    """A CSV body with a header row: its columns, and its rows typed as CSV datasets are (empty cell: null)."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidInput(f"The CSV body is not UTF-8 text: {error}", {"field": "body"}) from None
    try:
        lines = [line for line in csv.reader(io.StringIO(text, newline="")) if line]
    except csv.Error as error:
        raise InvalidInput(f"The CSV body cannot be read: {error}", {"field": "body"}) from None
    if not lines:
        return [], []
    header = [name.strip() for name in lines[0]]
    rows = []
    for number, cells in enumerate(lines[1:]):
        if len(cells) != len(header):
            raise InvalidInput(
                f"CSV row {number} (line {number + 2}) has {len(cells)} cells; the header has {len(header)}.",
                {"row": number},
            )
        rows.append({name: csv_cell(cell) for name, cell in zip(header, cells, strict=True)})
    return header, rows


def column_order(rows: Iterable[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(name for row in rows for name in row))


def csv_answer(prediction: Prediction, input_columns: Sequence[str], include_input: bool) -> str:
    """The answer as CSV: the input columns, `prediction`, and a `probability_<class>` column per class."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    layout = CsvLayout(input_columns, include_input, prediction.probability_keys)
    writer.writerow(layout.header)
    writer.writerows(layout.records(prediction.entries))
    return buffer.getvalue()


class CsvLayout:
    """The columns of a CSV answer, and each entry as one CSV record of them."""

    def __init__(
        self, input_columns: Sequence[str], include_input: bool, probability_keys: Sequence[str] | None
    ) -> None:
        self._keys = tuple(probability_keys or ())
        added = [PREDICTION, *(PROBABILITY_PREFIX + key for key in self._keys)]
        self._kept = [column for column in input_columns if column not in added] if include_input else []
        self.header = [*self._kept, *added]

    def records(self, entries: Iterable[dict[str, Any]]) -> Iterator[list[str]]:
        for entry in entries:
            classes = entry.get(PROBABILITIES, {})
            cells = [entry.get(column) for column in self._kept]
            cells.append(entry[PREDICTION])
            cells.extend(classes.get(key) for key in self._keys)
            yield [_csv_text(cell) for cell in cells]


def _csv_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


@lru_cache(maxsize=1)
def get_model_cache() -> ModelCache[ServedModel]:
    """The models this container keeps loaded, shared by single and batch predictions."""
    settings = get_settings()
    clients = get_clients()
    source = RegistryModels(
        RegistryTable(clients.dynamodb, settings.registry_table),
        ArtifactStore(clients.s3, settings.models_bucket),
    )
    return ModelCache(
        source, max_bytes=settings.model_cache_bytes, revalidate_seconds=settings.model_cache_revalidate_seconds
    )


@lru_cache(maxsize=1)
def get_predict_service() -> PredictService:
    """The service wired to this container's settings and AWS clients, built on first use."""
    return PredictService(get_model_cache())
