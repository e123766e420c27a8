"""Training data a client can send that a fit accepts but scoring used to choke on: a 400 or a null metric."""

import pytest

from lrnstak.errors import InvalidInput
from lrnstak.ml.training import HOLD_OUT, TrainingSpec, train


def test_knn_asked_for_more_neighbours_than_training_rows_is_refused_with_the_reason() -> None:
    rows = [{"x": float(index), "label": "a" if index % 2 else "b"} for index in range(5)]
    spec = TrainingSpec(rows=rows, target="label", algorithms=["knn"], hyper={"knn": {"n_neighbors": 9}}, test_size=0.4)
    with pytest.raises(InvalidInput) as refused:
        train(spec)
    assert "knn" in refused.value.message
    assert "n_neighbors" in refused.value.message


def test_a_class_seen_only_in_the_hold_out_scores_with_a_null_log_loss() -> None:
    # Rows 0-7 alternate a/b; row 8 alone is c. With shuffle off the hold-out holds c, which training never saw.
    rows = [{"x": float(index), "label": "ab"[index % 2]} for index in range(8)] + [{"x": 99.0, "label": "c"}]
    spec = TrainingSpec(
        rows=rows, target="label", task="classification", algorithms=["logistic_regression"], test_size=2, shuffle=False
    )
    trained = train(spec)
    hold_out = next(entry for entry in trained.training_results["scores"] if entry["iteration"] == HOLD_OUT)
    assert hold_out["log_loss"] is None
    assert hold_out["accuracy"] is not None
    assert "roc_auc" not in hold_out
