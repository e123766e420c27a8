"""How a fitted pipeline is scored, and how candidates are ranked (the old stack's order)."""

import math
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn import metrics as sk_metrics

from lrnstak.ml.catalog import REGRESSION

PRIMARY_METRIC = {REGRESSION: "mse", "classification": "accuracy"}


def _finite(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def regression_scores(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> dict[str, float | None]:
    mse = sk_metrics.mean_squared_error(y_true, y_pred)
    return {
        "mse": _finite(mse),
        "mae": _finite(sk_metrics.mean_absolute_error(y_true, y_pred)),
        "r2": _finite(sk_metrics.r2_score(y_true, y_pred)) if len(np.asarray(y_true)) > 1 else None,
        "rmse": _finite(math.sqrt(mse)),
    }


def classification_scores(
    pipeline: Any, rows: Any, y_true: npt.NDArray[Any], y_pred: npt.NDArray[Any]
) -> dict[str, float | None]:
    """`y_pred`: the pipeline's predictions of `rows`, made once by the caller (they are kept for the page)."""
    scores: dict[str, float | None] = {
        "accuracy": _finite(sk_metrics.accuracy_score(y_true, y_pred)),
        "precision": _finite(sk_metrics.precision_score(y_true, y_pred, average="macro", zero_division=0)),
        "recall": _finite(sk_metrics.recall_score(y_true, y_pred, average="macro", zero_division=0)),
        "f1": _finite(sk_metrics.f1_score(y_true, y_pred, average="macro", zero_division=0)),
    }
    classes = list(pipeline.classes_)
    seen = set(y_true.tolist())
    probabilities = pipeline.predict_proba(rows) if hasattr(pipeline, "predict_proba") else None
    if len(classes) == 2 and seen == set(classes):
        ranking = probabilities[:, 1] if probabilities is not None else pipeline.decision_function(rows)
        scores["roc_auc"] = _finite(sk_metrics.roc_auc_score(y_true == classes[1], ranking))
    if probabilities is not None:
        # A class the model never saw in training has probability 0: its log loss is infinite, reported as null.
        scores["log_loss"] = (
            _finite(sk_metrics.log_loss(y_true, probabilities, labels=classes)) if seen <= set(classes) else None
        )
    return scores


def ranking_key(task: str, scores: dict[str, float | None]) -> tuple[float, float]:
    """Smaller is better. Regression: lowest mse, then mae; classification: highest accuracy, then f1."""

    def value(name: str, worst: float) -> float:
        number = scores.get(name)
        return worst if number is None else number

    if task == REGRESSION:
        return value("mse", math.inf), value("mae", math.inf)
    return -value("accuracy", -math.inf), -value("f1", -math.inf)
