"""Predictions from a loaded model: rows checked against what the model was fitted on, answers as JSON values.

A pipeline lrnstak trained takes the rows themselves (its rules and row-to-matrix step come with it); its
version's feature schema says which raw columns it reads and the kind each had at training. A model
uploaded through POST /models is an arbitrary estimator: it gets a float matrix whose columns are the
version's `parameters.feature_labels`, or the estimator's own `feature_names_in_`.

Everything that depends only on the model is worked out once, in `prepare_model`, when the model is loaded.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from lrnstak.errors import InvalidInput
from lrnstak.ml.frame import (
    CATEGORICAL,
    NUMERIC,
    RowsToMatrix,
    as_number,
    float_matrix,
    is_missing,
    not_a_number,
    shown,
)
from lrnstak.ml.model_structure import instance_states
from lrnstak.ml.rules import FeatureRules

Row = dict[str, Any]
# How many row numbers an error names per column; the count says how many there were in all.
ROWS_NAMED = 10


@dataclass(frozen=True)
class RowInputs:
    """A pipeline lrnstak trained: it reads these raw columns from each row."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    # Columns the saved feature rules consume (dates, arrays...): passed to the pipeline as they came.
    rule_inputs: tuple[str, ...]

    @property
    def required(self) -> tuple[str, ...]:
        return (*self.numeric, *self.categorical, *self.rule_inputs)


@dataclass(frozen=True)
class MatrixInputs:
    """An uploaded estimator: a float matrix with these columns, in this order (None: nobody said which)."""

    columns: tuple[str, ...] | None
    # The number of columns the estimator was fitted on, when it knows.
    n_features: int | None

    @property
    def required(self) -> tuple[str, ...]:
        return self.columns or ()


@dataclass(frozen=True)
class ServedModel:
    estimator: Any
    inputs: RowInputs | MatrixInputs
    # Keys of the `probabilities` object, one per column of predict_proba; None without predict_proba.
    probability_keys: tuple[str, ...] | None
    # True when each row's answer is the same, bit for bit, whatever rows it is predicted with (see
    # predicts_row_by_row): only then may several requests' rows be predicted in one call.
    row_by_row: bool = False


@dataclass(frozen=True)
class Predictions:
    values: list[Any]
    probabilities: list[dict[str, Any]] | None


def prepare_model(estimator: Any, feature_schema: dict[str, Any] | None, parameters: dict[str, Any]) -> ServedModel:
    """What predicting needs to know about a model, worked out once when it is loaded."""
    inputs: RowInputs | MatrixInputs
    if feature_schema is not None:
        kinds = {feature["name"]: feature["kind"] for feature in feature_schema.get("features", [])}
        inputs = RowInputs(
            numeric=tuple(name for name, kind in kinds.items() if kind == NUMERIC),
            categorical=tuple(name for name, kind in kinds.items() if kind == CATEGORICAL),
            rule_inputs=tuple(feature_schema.get("rule_inputs", [])),
        )
    else:
        inputs = _trained_pipeline_inputs(estimator) or MatrixInputs(
            _matrix_columns(estimator, parameters), _n_features(estimator)
        )
        if isinstance(inputs, MatrixInputs):
            forget_feature_names(estimator)
    return ServedModel(estimator, inputs, _probability_keys(estimator), predicts_row_by_row(estimator))


def forget_feature_names(estimator: Any) -> None:
    """The loaded copy of an uploaded model forgets the column names it was fitted with, when nothing it does
    at prediction reads them.

    An estimator fitted on a DataFrame keeps its columns' names (`feature_names_in_`) and warns on every call
    with an array ("X does not have valid feature names"); lrnstak gives uploaded models arrays, built in the
    order of those names (or of feature_labels) on purpose. The names only serve to check a DataFrame's
    columns and to name a step's output when it outputs DataFrames (set_output): with no such step, scikit-learn
    checks the feature count alone, as for a model fitted on an array, and the predictions are the same.
    A step that outputs DataFrames gives the next one names to check: such a model keeps its names and warns.
    Silencing the warning instead would take a process-wide filter, which every forest prediction pays for
    (scikit-learn re-applies each filter around each tree); one set when a model loads could moreover be lost
    to a forest predicting on another thread (warnings.catch_warnings is not thread-safe)."""
    states = list(instance_states(estimator))
    if any(_outputs_frames(state) for state in states):
        return
    for state in states:
        state.pop("feature_names_in_", None)


def _outputs_frames(state: dict[str, Any]) -> bool:
    output = state.get("_sklearn_output_config")
    return isinstance(output, dict) and output.get("transform", "default") != "default"


def _trained_pipeline_inputs(estimator: Any) -> RowInputs | None:
    """The rows a pipeline lrnstak trained reads, when it comes back as an upload (the file GET
    /models/{name}/{version} gave, sent to POST /models/{name}): its RowsToMatrix step names the columns and
    their kinds, its FeatureRules step the columns the rules read. Such a pipeline takes rows, not a matrix."""
    if not _is(estimator, "Pipeline") or not estimator.steps:
        return None
    steps = [step for _, step in estimator.steps]
    rules = steps.pop(0) if isinstance(steps[0], FeatureRules) else None
    if not steps or not isinstance(steps[0], RowsToMatrix):
        return None
    rows_step = steps[0]
    derived = set(getattr(rules, "derived_columns_", ()))
    return RowInputs(
        numeric=tuple(column for column in rows_step.numeric_columns if column not in derived),
        categorical=tuple(column for column in rows_step.categorical_columns if column not in derived),
        rule_inputs=tuple(getattr(rules, "consumed_columns_", ())),
    )


# Models whose answer for a row does not depend on the other rows of the call, to the last bit: each row walks
# its own trees, and the trees' outputs are summed in a fixed order. Steps before them work cell by cell
# (lrnstak's row steps, imputers, scalers, encoders). A matrix product (linear models, kernels, distances) can
# round a row differently with the batch's size and the row's place in it: those are never predicted together
# with other requests' rows. Names, not classes: the model's own modules are imported by then, sklearn.ensemble
# need not be imported for anyone else.
_ROW_BY_ROW_MODELS = frozenset(
    f"{kind}{task}"
    for kind in ("DecisionTree", "ExtraTree", "RandomForest", "ExtraTrees", "GradientBoosting", "HistGradientBoosting")
    for task in ("Classifier", "Regressor")
)
_CELL_BY_CELL_STEPS = frozenset(
    {
        "RowsToMatrix",
        "AsFloat",
        "FeatureRules",
        "SimpleImputer",
        "StandardScaler",
        "MinMaxScaler",
        "MaxAbsScaler",
        "OneHotEncoder",
        "OrdinalEncoder",
    }
)
_PASSED_STEPS = ("passthrough", "drop", None)


def _known(estimator: Any, names: frozenset[str]) -> bool:
    kind = type(estimator)
    return kind.__module__.split(".", 1)[0] in ("sklearn", "lrnstak") and kind.__name__ in names


def _is(estimator: Any, name: str) -> bool:
    kind = type(estimator)
    return kind.__module__.startswith("sklearn.") and kind.__name__ == name


def predicts_row_by_row(estimator: Any) -> bool:
    if _is(estimator, "Pipeline"):
        *steps, last = [step for _, step in estimator.steps]
        return all(map(_works_cell_by_cell, steps)) and predicts_row_by_row(last)
    return _known(estimator, _ROW_BY_ROW_MODELS)


def _works_cell_by_cell(step: Any) -> bool:
    if isinstance(step, str) or step is None:
        return step in _PASSED_STEPS
    if _is(step, "Pipeline"):
        return all(_works_cell_by_cell(inner) for _, inner in step.steps)
    if _is(step, "ColumnTransformer"):
        return all(_works_cell_by_cell(inner) for _, inner, _ in getattr(step, "transformers_", [("", "?", [])]))
    return _known(step, _CELL_BY_CELL_STEPS)


def _matrix_columns(estimator: Any, parameters: dict[str, Any]) -> tuple[str, ...] | None:
    labels = parameters.get("feature_labels")
    if isinstance(labels, list) and labels and all(isinstance(label, str) for label in labels):
        return tuple(labels)
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None:
        return tuple(str(name) for name in np.asarray(names).tolist())
    return None


def _n_features(estimator: Any) -> int | None:
    count = getattr(estimator, "n_features_in_", None)
    return int(count) if isinstance(count, int | np.integer) else None


def _probability_keys(estimator: Any) -> tuple[str, ...] | None:
    # Pipelines and meta-estimators only have predict_proba when their final estimator does.
    if not callable(getattr(estimator, "predict_proba", None)):
        return None
    classes = getattr(estimator, "classes_", None)
    if not isinstance(classes, np.ndarray) or classes.ndim != 1:
        return None  # multi-output classifiers keep a list of class arrays, one per output: not offered
    return tuple(_key(label) for label in to_json(classes.tolist()))


def _key(label: Any) -> str:
    # JSON object keys are text; a boolean class reads as it does in JSON.
    if isinstance(label, bool):
        return "true" if label else "false"
    return str(label)


def predict(model: ServedModel, rows: Sequence[Row], with_probabilities: bool, first_row: int = 0) -> Predictions:
    """Checks the rows against the model's inputs, predicts, and converts the answers to JSON values.

    `first_row` is the number of the first row in errors (a chunk of a larger dataset names its rows as the
    dataset numbers them)."""
    check_options(model, with_probabilities)
    features = model_input(model.inputs, rows, first_row)
    if not rows:
        return Predictions([], [] if with_probabilities else None)  # estimators refuse zero rows
    return as_predictions(model, estimate(model, features, with_probabilities))


def check_options(model: ServedModel, with_probabilities: bool) -> None:
    if with_probabilities and model.probability_keys is None:
        raise InvalidInput(
            "This model gives no class probabilities (it has no predict_proba): leave out `probabilities`.",
            {"field": "probabilities"},
        )


ModelInput = list[Row] | npt.NDArray[np.float64]


@dataclass(frozen=True)
class Estimates:
    """What the estimator returned for some rows, before conversion to JSON values."""

    values: npt.NDArray[Any]
    probabilities: npt.NDArray[Any] | None

    def __len__(self) -> int:
        return len(self.values)


def estimate(model: ServedModel, features: ModelInput, with_probabilities: bool) -> Estimates:
    """The estimator's predict (and predict_proba) on rows model_input prepared; at least one row."""
    try:
        values = model.estimator.predict(features)
        probabilities = model.estimator.predict_proba(features) if with_probabilities else None
    except InvalidInput:
        raise
    except (ValueError, TypeError) as error:
        # scikit-learn's own words: NaN where the estimator takes none, a value it cannot use...
        raise InvalidInput(f"The model could not predict from these rows: {error}") from error
    return Estimates(np.asarray(values), None if probabilities is None else np.asarray(probabilities))


def join_inputs(inputs: Sequence[ModelInput]) -> ModelInput:
    """The prepared rows of several requests for one model, as one input (to predict them in one call)."""
    if all(isinstance(features, np.ndarray) for features in inputs):
        return np.concatenate(inputs)  # type: ignore[arg-type]
    return [row for features in inputs for row in features]


def split_estimates(estimates: Estimates, sizes: Sequence[int]) -> list[Estimates]:
    """The estimates of join_inputs(...) given back to each input, `sizes` being their row counts."""
    parts = []
    start = 0
    for size in sizes:
        end = start + size
        probabilities = None if estimates.probabilities is None else estimates.probabilities[start:end]
        parts.append(Estimates(estimates.values[start:end], probabilities))
        start = end
    return parts


def as_predictions(model: ServedModel, estimates: Estimates) -> Predictions:
    return Predictions(
        values=_json_values(estimates.values),
        probabilities=_probability_objects(estimates.probabilities, model.probability_keys),
    )


def _json_values(values: npt.NDArray[Any]) -> list[Any]:
    # Integers, booleans and finite floats convert as they are; only other arrays need to_json's walk.
    if values.dtype.kind in "biu" or (values.dtype.kind == "f" and bool(np.isfinite(values).all())):
        return list(values.tolist())
    return list(to_json(values.tolist()))


def _probability_objects(probabilities: Any, keys: tuple[str, ...] | None) -> list[dict[str, Any]] | None:
    if probabilities is None or keys is None:
        return None
    return [dict(zip(keys, row, strict=True)) for row in _json_values(np.asarray(probabilities))]


def model_input(inputs: RowInputs | MatrixInputs, rows: Sequence[Row], first_row: int = 0) -> ModelInput:
    """The rows as the model takes them: checked, with values coerced to the kind seen at training."""
    if isinstance(inputs, MatrixInputs) and inputs.columns is None:
        raise InvalidInput(
            "This model was uploaded without `parameters.feature_labels` and does not record the names of its "
            "features, so the columns of the rows cannot be put in order: upload it again with feature_labels.",
            {"field": "parameters.feature_labels"},
        )
    if isinstance(inputs, RowInputs):
        check_columns(rows, inputs.required, first_row)
        return [_model_row(index, row, inputs) for index, row in enumerate(rows, first_row)]
    try:
        fast = _number_matrix(rows, inputs.required)
    except KeyError:  # a row lacks a column: check_columns names them all
        fast = None
    if fast is None:
        check_columns(rows, inputs.required, first_row)
    _check_feature_count(inputs)
    return fast if fast is not None else _matrix(rows, inputs, first_row)


def check_columns(rows: Sequence[Row], required: Sequence[str], first_row: int = 0) -> None:
    """Every row must have every column the model reads; one error names each missing column."""
    needed = frozenset(required)
    missing: dict[str, list[int]] = {}
    for index, row in enumerate(rows, first_row):
        if not needed <= row.keys():
            for column in required:
                if column not in row:
                    missing.setdefault(column, []).append(index)
    if not missing:
        return
    missing = {column: missing[column] for column in required if column in missing}
    described = [
        f"{column!r} (rows {', '.join(map(str, indices[:ROWS_NAMED]))}{', ...' if len(indices) > ROWS_NAMED else ''})"
        for column, indices in missing.items()
    ]
    raise InvalidInput(
        f"Columns the model needs are missing: {'; '.join(described)}. Send every feature column in every row "
        "(null for an unknown value).",
        {
            "missing_columns": [
                {"column": column, "rows": indices[:ROWS_NAMED], "count": len(indices)}
                for column, indices in missing.items()
            ]
        },
    )


def _model_row(index: int, row: Row, inputs: RowInputs) -> Row:
    shaped = {column: row[column] for column in inputs.rule_inputs}
    for column in inputs.numeric:
        shaped[column] = _number(row[column], index, column)
    for column in inputs.categorical:
        shaped[column] = _category(row[column], index, column)
    return shaped


def _number(value: Any, index: int, column: str) -> float | None:
    if is_missing(value):
        return None
    number = as_number(value)
    if number is None:
        raise not_a_number(value, index, column)
    return number


def _category(value: Any, index: int, column: str) -> Any:
    # Scalars stay as sent: the pipeline's own row-to-matrix step turns them into text exactly as at training.
    if isinstance(value, list | dict):
        raise InvalidInput(
            f"Row {index}, column {column!r}: {shown(value)} is an array or object, and this column held text "
            "at training.",
            {"row": index, "column": column},
        )
    return value


def _check_feature_count(inputs: MatrixInputs) -> None:
    columns = inputs.columns or ()
    if inputs.n_features is not None and len(columns) != inputs.n_features:
        raise InvalidInput(
            f"The model was fitted on {inputs.n_features} features but its feature_labels name {len(columns)}: "
            "upload it again with matching feature_labels.",
            {"feature_labels": list(columns)},
        )


def _matrix(rows: Sequence[Row], inputs: MatrixInputs, first_row: int) -> npt.NDArray[np.float64]:
    """Cell by cell, each coerced as _number does: for rows with text, booleans or numbers out of range."""
    columns = inputs.columns or ()
    matrix = np.empty((len(rows), len(columns)), dtype=np.float64)
    for index, row in enumerate(rows):
        for position, column in enumerate(columns):
            number = _number(row[column], first_row + index, column)
            matrix[index, position] = math.nan if number is None else number
    return matrix


def _number_matrix(rows: Sequence[Row], columns: Sequence[str]) -> npt.NDArray[np.float64] | None:
    """The matrix in one numpy call when every cell converts as _number converts it, as they nearly always do
    (frame.float_matrix); None for anything else: the cell-by-cell path decides it, with its errors. KeyError
    when a row lacks one of the columns."""
    return float_matrix(rows, columns) if rows and columns else None


def to_json(value: Any) -> Any:
    """numpy scalars to Python ones, recursively through lists; NaN and infinities to None."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    if isinstance(value, np.ndarray):
        return to_json(value.tolist())
    return value
