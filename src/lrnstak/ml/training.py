"""Training: rows in, a fitted and scored pipeline out, chosen among candidate algorithms.

The pipeline starts from the client's rows (feature rules, then the row-to-matrix step, then imputation,
scaling and one-hot encoding), so the saved model predicts from raw rows by itself. The hold-out split is
scikit-learn's `train_test_split` on row positions, so a pipeline fitted directly on the same split gives
the same numbers.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, clone
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from lrnstak.errors import InvalidInput
from lrnstak.ml.catalog import CATALOG, CLASSIFICATION, REGRESSION, TASKS, build_estimator, resolve_candidates
from lrnstak.ml.explaining import bounded, explain, holdout_comparison
from lrnstak.ml.frame import CATEGORICAL, NUMERIC, AsFloat, RowsToMatrix, as_number, infer_kind, is_missing
from lrnstak.ml.metrics import PRIMARY_METRIC, classification_scores, ranking_key, regression_scores
from lrnstak.ml.rules import FeatureRules

ENGINE = "default"
# Integer targets with at most this many distinct values are taken as classes.
MAX_INFERRED_CLASSES = 10
HOLD_OUT, TESTING, VALIDATION = 1, 2, 3
Rows = list[dict[str, Any]]


@dataclass(frozen=True)
class TrainingSpec:
    """What the client asked for, in the old stack's terms, checked for shape by the caller."""

    rows: Rows
    target: str
    features: list[str] | None = None
    task: str | None = None
    algorithms: Any = None
    hyper: dict[str, dict[str, Any]] = field(default_factory=dict)
    test_size: float = 0.2
    random_state: int = 142
    shuffle: bool = True
    cv: int | None = None
    rules: dict[str, Any] | None = None
    testing_rows: Rows | None = None
    validation_rows: Rows | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainedModel:
    pipeline: Pipeline
    algorithm: str
    task: str
    training_results: dict[str, Any]
    feature_schema: dict[str, Any]


@dataclass(frozen=True)
class _Columns:
    numeric: list[str]
    categorical: list[str]
    raw_inputs: list[str]
    rule_inputs: list[str]


def check_rows(rows: Any, what: str) -> Rows:
    if not isinstance(rows, list) or not rows:
        raise InvalidInput(f"`{what}` must be a non-empty list of rows (JSON objects).", {"field": what})
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise InvalidInput(
                f"`{what}` row {index} is a {type(row).__name__}, not an object: each row must be a JSON object.",
                {"field": what, "row": index},
            )
    return rows


def column_names(rows: Sequence[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(name for row in rows for name in row))


def infer_task(values: Sequence[Any]) -> tuple[str, str]:
    """classification for text, booleans or a few integer classes; regression otherwise. Says why."""
    present = [value for value in values if not is_missing(value)]
    if any(isinstance(value, str | bool) for value in present) and not all(
        as_number(value) is not None and not isinstance(value, bool) for value in present
    ):
        return CLASSIFICATION, "the target holds text or booleans"
    numbers = [as_number(value) for value in present]
    distinct = {number for number in numbers if number is not None}
    if all(number.is_integer() for number in distinct) and len(distinct) <= MAX_INFERRED_CLASSES:
        return CLASSIFICATION, f"the target holds {len(distinct)} distinct integer values"
    return REGRESSION, "the target holds numbers"


def target_values(rows: Rows, target: str, task: str, what: str) -> npt.NDArray[Any]:
    values = [row.get(target) for row in rows]
    missing = [index for index, value in enumerate(values) if is_missing(value)]
    if missing:
        raise InvalidInput(
            f"The target {target!r} is missing in `{what}` rows {missing[:10]}: every row needs a target value.",
            {"field": what, "rows": missing[:10], "target": target},
        )
    if task == REGRESSION:
        numbers = [as_number(value) for value in values]
        bad = next((values[i] for i, number in enumerate(numbers) if number is None), None)
        if bad is not None:
            raise InvalidInput(
                f"Regression needs a numeric target, but {target!r} holds {bad!r}. "
                "Use task 'classification' for labels.",
                {"target": target},
            )
        return np.asarray(numbers, dtype=np.float64)
    return class_labels(values)


def class_labels(values: list[Any]) -> npt.NDArray[Any]:
    """Labels keep their JSON type where they share one: ints stay ints, text stays text."""
    if all(isinstance(value, bool) for value in values):
        return np.asarray(values, dtype=bool)
    numbers = [as_number(value) if not isinstance(value, str) else None for value in values]
    if all(number is not None and number.is_integer() for number in numbers):
        return np.asarray([int(number) for number in numbers if number is not None], dtype=np.int64)
    return np.asarray([str(value) for value in values], dtype=object)


def resolve_task(spec: TrainingSpec, rows: Rows) -> tuple[str, bool, str]:
    if spec.task is not None:
        if spec.task not in TASKS:
            raise InvalidInput(f"`task` must be one of {', '.join(TASKS)}, not {spec.task!r}.", {"field": "task"})
        return spec.task, False, "given"
    task, reason = infer_task([row.get(spec.target) for row in rows])
    return task, True, reason


def select_columns(spec: TrainingSpec, rows: Rows, rules: FeatureRules | None) -> _Columns:
    raw_columns = column_names(rows)
    if spec.target not in raw_columns:
        raise InvalidInput(f"The target {spec.target!r} is not a column of the rows.", {"target": spec.target})
    if spec.features is not None:
        absent = [name for name in spec.features if name not in raw_columns]
        if absent:
            raise InvalidInput(
                f"Feature columns not in the rows: {', '.join(map(repr, absent))}.", {"missing_features": absent}
            )
    wanted = spec.features if spec.features is not None else [c for c in raw_columns if c != spec.target]
    consumed = set(rules.consumed_columns_) if rules is not None else set()
    derived = list(rules.derived_columns_) if rules is not None else []
    model_columns = [c for c in wanted if c not in consumed and c != spec.target] + derived
    if not model_columns:
        raise InvalidInput("There are no feature columns besides the target.", {"target": spec.target})
    shaped = rules.transform(rows) if rules is not None else rows
    kinds = {column: infer_kind(column, (row.get(column) for row in shaped)) for column in model_columns}
    return _Columns(
        numeric=[c for c in model_columns if kinds[c] == NUMERIC],
        categorical=[c for c in model_columns if kinds[c] == CATEGORICAL],
        raw_inputs=[c for c in wanted if c not in consumed and c != spec.target],
        rule_inputs=sorted(consumed),
    )


def build_pipeline(columns: _Columns, estimator: BaseEstimator, scale: bool, rules: dict[str, Any] | None) -> Pipeline:
    numeric_steps: list[tuple[str, Any]] = [("as_float", AsFloat()), ("impute", SimpleImputer(strategy="median"))]
    if scale:
        numeric_steps.append(("scale", StandardScaler()))
    categorical_steps = [
        ("impute", SimpleImputer(strategy="most_frequent")),
        ("one_hot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
    ]
    n_numeric = len(columns.numeric)
    n_total = n_numeric + len(columns.categorical)
    blocks = []
    if columns.numeric:
        blocks.append(("numeric", Pipeline(numeric_steps), list(range(n_numeric))))
    if columns.categorical:
        blocks.append(("categorical", Pipeline(categorical_steps), list(range(n_numeric, n_total))))
    steps: list[tuple[str, Any]] = []
    if rules:
        steps.append(("rules", FeatureRules(rules)))
    steps += [
        ("rows", RowsToMatrix(columns.numeric, columns.categorical)),
        ("preprocess", ColumnTransformer(blocks)),
        ("model", estimator),
    ]
    return Pipeline(steps)


def score(
    pipeline: Pipeline, task: str, rows: Rows, y: npt.NDArray[Any], y_pred: npt.NDArray[Any]
) -> dict[str, float | None]:
    if task == REGRESSION:
        return regression_scores(y, y_pred)
    return classification_scores(pipeline, rows, y, y_pred)


def fit_candidate(name: str, pipeline: Pipeline, rows: Rows, y: npt.NDArray[Any]) -> Pipeline:
    try:
        return pipeline.fit(rows, y)
    except InvalidInput:
        raise
    except (ValueError, TypeError) as error:
        # scikit-learn's own message: bad hyperparameter values, too few rows or classes for the estimator...
        raise InvalidInput(f"Training {name} failed: {error}", {"algorithm": name}) from error


def score_candidate(
    name: str, pipeline: Pipeline, task: str, rows: Rows, y: npt.NDArray[Any]
) -> tuple[dict[str, float | None], npt.NDArray[Any]]:
    """The candidate's scores on these rows, and its predictions of them."""
    try:
        y_pred = np.asarray(pipeline.predict(rows))
        return score(pipeline, task, rows, y, y_pred), y_pred
    except InvalidInput:
        raise
    except (ValueError, TypeError) as error:
        # A fit that scikit-learn accepted can still refuse to predict: knn's n_neighbors above the rows it kept.
        raise InvalidInput(f"Scoring {name} on its hold-out failed: {error}", {"algorithm": name}) from error


def split(spec: TrainingSpec, y: npt.NDArray[Any]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    positions = np.arange(len(spec.rows))
    try:
        train, test = train_test_split(
            positions, test_size=spec.test_size, random_state=spec.random_state, shuffle=spec.shuffle
        )
    except ValueError as error:
        raise InvalidInput(
            f"The rows cannot be split for a hold-out with test_size={spec.test_size}: {error}",
            {"rows": len(spec.rows)},
        ) from error
    return np.asarray(train), np.asarray(test)


def check_hyper(hyper: dict[str, dict[str, Any]], candidates: list[str]) -> None:
    stray = [name for name in hyper if name not in candidates]
    if stray:
        raise InvalidInput(
            f"`hyper` names algorithms that are not being trained: {', '.join(stray)} "
            f"(training: {', '.join(candidates)}).",
            {"hyper": stray},
        )
    for name, values in hyper.items():
        if not isinstance(values, dict):
            raise InvalidInput(f"`hyper.{name}` must be an object of parameter: value.", {"hyper": name})


def cross_validation(spec: TrainingSpec, pipeline: Pipeline, task: str, y: npt.NDArray[Any]) -> dict[str, Any]:
    assert spec.cv is not None
    folds = (
        StratifiedKFold(spec.cv, shuffle=True, random_state=spec.random_state)
        if task == CLASSIFICATION
        else KFold(spec.cv, shuffle=True, random_state=spec.random_state)
    )
    metric = PRIMARY_METRIC[task]
    scoring = "neg_mean_squared_error" if task == REGRESSION else "accuracy"
    try:
        values = cross_val_score(clone(pipeline), spec.rows, y, cv=folds, scoring=scoring, error_score="raise")
    except ValueError as error:
        raise InvalidInput(f"{spec.cv}-fold cross-validation is not possible here: {error}", {"cv": spec.cv}) from error
    scores = [float(-v) if task == REGRESSION else float(v) for v in values]
    return {
        "k": spec.cv,
        "metric": metric,
        "scores": scores,
        "mean": float(np.mean(scores)),
        "std": float(np.std(scores)),
    }


def train(spec: TrainingSpec, on_progress: Callable[[float], None] | None = None) -> TrainedModel:
    """Fits every candidate on the hold-out split and keeps the best; on_progress gets 0..1 per candidate."""
    started = time.perf_counter()
    rows = check_rows(spec.rows, "training_data")
    if not any(spec.target in row for row in rows):
        raise InvalidInput(f"The target {spec.target!r} is not a column of the rows.", {"target": spec.target})
    task, inferred, reason = resolve_task(spec, rows)
    candidates = resolve_candidates(spec.algorithms, task)
    check_hyper(spec.hyper, candidates)
    rules = FeatureRules(spec.rules).fit(rows) if spec.rules else None
    columns = select_columns(spec, rows, rules)
    y = target_values(rows, spec.target, task, "training_data")
    if task == CLASSIFICATION and len(set(y.tolist())) < 2:
        raise InvalidInput(
            f"Classification needs at least two classes; {spec.target!r} has only {y[0]!r}.", {"target": spec.target}
        )
    train_at, test_at = split(spec, y)
    train_rows, test_rows = [rows[i] for i in train_at], [rows[i] for i in test_at]
    extra_sets = _extra_sets(spec, task)

    scores: list[dict[str, Any]] = []
    fitted: dict[str, Pipeline] = {}
    hold_out_predictions: dict[str, npt.NDArray[Any]] = {}
    for name in candidates:
        estimator = build_estimator(name, task, spec.hyper.get(name, {}), spec.random_state)
        pipeline = build_pipeline(columns, estimator, CATALOG[name].needs_scaling, spec.rules)
        fitted[name] = fit_candidate(name, pipeline, train_rows, y[train_at])
        hold_out_scores, hold_out_predictions[name] = score_candidate(name, fitted[name], task, test_rows, y[test_at])
        scores.append({"iteration": HOLD_OUT, "algorithm": name, **hold_out_scores})
        for iteration, (extra_rows, extra_y) in extra_sets.items():
            extra_scores, _ = score_candidate(name, fitted[name], task, extra_rows, extra_y)
            scores.append({"iteration": iteration, "algorithm": name, **extra_scores})
        if on_progress is not None:
            on_progress((candidates.index(name) + 1) / len(candidates))

    hold_out = {entry["algorithm"]: entry for entry in scores if entry["iteration"] == HOLD_OUT}
    best = min(candidates, key=lambda name: ranking_key(task, hold_out[name]))
    primary = PRIMARY_METRIC[task]
    results: dict[str, Any] = {
        "metadata": {
            **spec.metadata,
            "trained_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "engine": ENGINE,
            "task": task,
            "task_inferred": inferred,
            "task_reason": reason,
            "rows": len(rows),
            "training_rows": len(train_rows),
            "holdout_rows": len(test_rows),
            "features": columns.numeric + columns.categorical,
            "seconds": round(time.perf_counter() - started, 3),
        },
        "scores": scores,
        "results": {name: hold_out[name][primary] for name in candidates},
        "algorithm": best,
    }
    if spec.cv:
        results["cv"] = {name: cross_validation(spec, fitted[name], task, y) for name in candidates}
    results |= _explanations(fitted[best], task, y[test_at], hold_out_predictions[best])
    return TrainedModel(fitted[best], best, task, results, _feature_schema(spec, task, columns, fitted[best]))


def _explanations(pipeline: Pipeline, task: str, y_test: npt.NDArray[Any], y_pred: npt.NDArray[Any]) -> dict[str, Any]:
    """The kept model's feature weights and its predictions against the hold-out (for the registry page)."""
    classes = pipeline.classes_ if task == CLASSIFICATION else ()
    explained = {
        "explanation": bounded(explain(pipeline)),
        "holdout": bounded(holdout_comparison(task, y_test, y_pred, classes)),
    }
    return {key: value for key, value in explained.items() if value is not None}


def _extra_sets(spec: TrainingSpec, task: str) -> dict[int, tuple[Rows, npt.NDArray[Any]]]:
    sets: dict[int, tuple[Rows, npt.NDArray[Any]]] = {}
    for iteration, what, rows in (
        (TESTING, "testing_data", spec.testing_rows),
        (VALIDATION, "validation_data", spec.validation_rows),
    ):
        if rows is not None:
            checked = check_rows(rows, what)
            sets[iteration] = (checked, target_values(checked, spec.target, task, what))
    return sets


def _feature_schema(spec: TrainingSpec, task: str, columns: _Columns, pipeline: Pipeline) -> dict[str, Any]:
    """What predict checks rows against: the raw columns the pipeline reads, with the kind seen at training."""
    kinds = {name: NUMERIC for name in columns.numeric} | {name: CATEGORICAL for name in columns.categorical}
    schema: dict[str, Any] = {
        "target": spec.target,
        "task": task,
        "features": [{"name": name, "kind": kinds[name]} for name in columns.raw_inputs],
        "rule_inputs": columns.rule_inputs,
    }
    if task == CLASSIFICATION:
        schema["classes"] = [label.item() if hasattr(label, "item") else label for label in pipeline.classes_]
    return schema
