"""What a trained model shows about itself: the weight of each feature and how it did on its hold-out.

Both are computed once, at training, and kept in the version's training results for the registry page:

- `explanation`: feature importances (tree ensembles: `feature_importances_`) or coefficients (linear
  models: `coef_`, one list per class for a multi-class model) under the names of the columns the
  estimator sees (a one-hot column is `color_red`), the 50 largest by absolute value. None for an
  estimator that has neither (k-nearest neighbours, an RBF support vector machine, a neural network...).
- `holdout`: predicted against actual on the hold-out rows: pairs for regression (a deterministic sample
  of at most 500), a confusion matrix for classification.

Both are bounded so they fit, with the rest of the results, in the registry's DynamoDB item (400 KB).
"""

import json
import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn import metrics as sk_metrics
from sklearn.pipeline import Pipeline

from lrnstak.ml.catalog import REGRESSION

IMPORTANCES, COEFFICIENTS = "importances", "coefficients"
MAX_FEATURES = 50
MAX_CLASSES = 50
MAX_PAIRS = 500
MAX_NAME_CHARS = 80
SIGNIFICANT_DIGITS = 6
# Each part's share of the results document (300 KB at most, storage.documents; the item holds 400 KB). The
# caps above keep them well below it (about 33 KB for 50 coefficients of 50 classes); class labels are the
# client's and unbounded, so a part that still comes out larger is left out rather than fail the training.
MAX_BYTES = 64_000
# The ColumnTransformer's blocks (lrnstak.ml.training.build_pipeline) prefix their columns' names.
BLOCK_PREFIXES = ("numeric__", "categorical__")


def explain(model: Any) -> dict[str, Any] | None:
    """Importances or coefficients of a fitted pipeline's (or bare estimator's) last step, by feature name."""
    estimator = model.steps[-1][1] if isinstance(model, Pipeline) else model
    kind, weights = _weights(estimator)
    if weights is None:
        return None
    names = feature_names(model, weights.shape[-1])
    classes = [_plain(label) for label in getattr(estimator, "classes_", [])]
    explanation: dict[str, Any] = {"kind": kind, "total_features": len(names)}
    if weights.ndim == 1:
        keep = _largest(np.abs(weights))
        explanation |= {"features": [names[i] for i in keep], "values": [_number(weights[i]) for i in keep]}
        return explanation
    if weights.shape[0] == 1:
        # Binary classifiers keep one row of coefficients: the weights towards the second class.
        keep = _largest(np.abs(weights[0]))
        explanation |= {"features": [names[i] for i in keep], "values": [_number(weights[0, i]) for i in keep]}
        if len(classes) == 2:
            explanation["positive_class"] = classes[1]
        return explanation
    if weights.shape[0] != len(classes) or hasattr(estimator, "support_vectors_"):
        return None  # a linear SVC's rows, on 3+ classes, are one-vs-one pairs of classes, not classes
    rows = weights[:MAX_CLASSES]
    keep = _largest(np.abs(rows).max(axis=0))
    explanation |= {
        "features": [names[i] for i in keep],
        "classes": classes[:MAX_CLASSES],
        "values": [[_number(row[i]) for i in keep] for row in rows],
    }
    return explanation


def holdout_comparison(
    task: str, y_true: npt.NDArray[Any], y_pred: npt.NDArray[Any], classes: Sequence[Any] = ()
) -> dict[str, Any]:
    """Regression: {kind, rows, pairs: [{actual, predicted}]}; classification: {kind, rows, labels, matrix},
    where matrix[i][j] counts the rows of class labels[i] predicted as labels[j]."""
    rows = len(y_true)
    if task == REGRESSION:
        positions = _evenly_spaced(rows, MAX_PAIRS)
        pairs = [
            {"actual": _number(y_true[i]), "predicted": _number(y_pred[i])}
            for i in positions
            if math.isfinite(float(y_true[i])) and math.isfinite(float(y_pred[i]))
        ]
        return {"kind": REGRESSION, "rows": rows, "pairs": pairs, "sampled": len(positions) < rows}
    actual, predicted = y_true.tolist(), y_pred.tolist()
    # The model's classes, then any the hold-out has that the training split lacked.
    labels = [_plain(label) for label in classes]
    labels += sorted(set(actual) - set(labels), key=str)
    truncated = len(labels) > MAX_CLASSES
    if truncated:
        # The classes met most often on the hold-out (as actual, then as predicted), in the model's order.
        as_actual, as_predicted = Counter(actual), Counter(predicted)
        frequent = set(
            sorted(labels, key=lambda label: (as_actual[label], as_predicted[label]), reverse=True)[:MAX_CLASSES]
        )
        labels = [label for label in labels if label in frequent]
    matrix = sk_metrics.confusion_matrix(y_true, y_pred, labels=labels)
    return {
        "kind": "classification",
        "rows": rows,
        "labels": labels,
        "matrix": [[int(count) for count in row] for row in matrix],
        "truncated": truncated,
    }


def bounded(document: dict[str, Any] | None) -> dict[str, Any] | None:
    """The document, or None when it would take more than its share of the registry item."""
    if document is None:
        return None
    size = len(json.dumps(document, separators=(",", ":"), allow_nan=False))
    return document if size <= MAX_BYTES else None


def feature_names(model: Any, width: int) -> list[str]:
    """The names of the columns the last step sees; positional (`feature_0`...) when they cannot be told."""
    names = _named_columns(model)
    if names is None or len(names) != width:
        return [f"feature_{i}" for i in range(width)]
    short = [_without_block_prefix(name) for name in names]
    chosen = short if len(set(short)) == len(short) else names
    return [name if len(name) <= MAX_NAME_CHARS else name[: MAX_NAME_CHARS - 1] + "…" for name in chosen]


def _named_columns(model: Any) -> list[str] | None:
    if not isinstance(model, Pipeline):
        names = getattr(model, "feature_names_in_", None)
        return [str(name) for name in names] if names is not None else None
    steps = dict(model.steps)
    preprocess, rows = steps.get("preprocess"), steps.get("rows")
    if preprocess is None:
        return None
    inputs = None
    if rows is not None:
        inputs = [*getattr(rows, "numeric_columns", ()), *getattr(rows, "categorical_columns", ())]
    try:
        return [str(name) for name in preprocess.get_feature_names_out(inputs)]
    except (AttributeError, ValueError, TypeError):
        return None


def _without_block_prefix(name: str) -> str:
    for prefix in BLOCK_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def _weights(estimator: Any) -> tuple[str, npt.NDArray[np.float64] | None]:
    # hasattr, not a type check: a linear SVC has coef_, an RBF one raises AttributeError for it.
    for attribute, kind in (("feature_importances_", IMPORTANCES), ("coef_", COEFFICIENTS)):
        try:
            value = getattr(estimator, attribute)
        except (AttributeError, ValueError):
            continue
        if hasattr(value, "toarray"):  # sparse coefficients
            value = value.toarray()
        weights = np.asarray(value, dtype=np.float64)
        if weights.ndim in (1, 2) and weights.size and np.isfinite(weights).all():
            return kind, weights
    return "", None


def _largest(magnitudes: npt.NDArray[np.float64]) -> list[int]:
    """Positions of the MAX_FEATURES largest magnitudes, largest first (ties: the earlier column first)."""
    order = np.argsort(-magnitudes, kind="stable")
    return [int(i) for i in order[:MAX_FEATURES]]


def _evenly_spaced(rows: int, limit: int) -> list[int]:
    if rows <= limit:
        return list(range(rows))
    return sorted({int(i) for i in np.linspace(0, rows - 1, limit)})


def _number(value: Any) -> float:
    return float(f"{float(value):.{SIGNIFICANT_DIGITS}g}")


def _plain(label: Any) -> Any:
    """Labels as JSON carries them: numpy scalars become Python ones."""
    return label.item() if hasattr(label, "item") else label
