"""A model uploaded after fitting on a DataFrame is served arrays without a warning on each call, and without a
process-wide warning filter: its loaded copy forgets the names when nothing it does at prediction reads them
(ml/predicting.forget_feature_names)."""

import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier, VotingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from lrnstak.ml.predicting import MatrixInputs, model_input, predict, prepare_model

FEATURE_NAMES_WARNING = "X does not have valid feature names"


@pytest.fixture(scope="module")
def cancer() -> tuple[pd.DataFrame, pd.Series]:
    frame = load_breast_cancer(as_frame=True)
    columns = list(frame.data.columns[:6])
    return frame.data[columns], frame.target


@pytest.fixture
def every_warning() -> Iterator[list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught


def rows_of(features: pd.DataFrame) -> list[dict[str, Any]]:
    return [dict(zip(features.columns, values, strict=True)) for values in features.to_numpy().tolist()]


def named_estimators(model: object) -> list[str]:
    """The classes of the estimators in the model that keep feature names."""
    found = []
    pending = [model]
    while pending:
        current = pending.pop()
        if isinstance(current, list | tuple):
            pending.extend(current)
        elif isinstance(current, BaseEstimator):
            if "feature_names_in_" in vars(current):
                found.append(type(current).__name__)
            pending.extend(value for value in vars(current).values() if isinstance(value, list | tuple | BaseEstimator))
    return found


def models(features: pd.DataFrame, target: pd.Series) -> dict[str, Any]:
    scaled_columns = ColumnTransformer([("scaled", StandardScaler(), list(features.columns[:3]))], remainder="drop")
    return {
        "forest": RandomForestClassifier(n_estimators=10, random_state=0).fit(features, target),
        "pipeline": make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(features, target),
        "voting": VotingClassifier(
            [("logit", LogisticRegression(max_iter=500)), ("forest", RandomForestClassifier(n_estimators=5))],
            voting="soft",
        ).fit(features, target),
        "columns by position": Pipeline(
            [("columns", ColumnTransformer([("scaled", StandardScaler(), [0, 1, 2])])), ("logit", LogisticRegression())]
        ).fit(features, target),
        "columns by name": Pipeline([("columns", scaled_columns), ("logit", LogisticRegression())]).fit(
            features, target
        ),
    }


@pytest.mark.parametrize("kind", ["forest", "pipeline", "voting", "columns by position"])
def test_a_model_fitted_on_a_dataframe_predicts_arrays_as_before_without_a_warning(
    kind: str, cancer: tuple[pd.DataFrame, pd.Series], every_warning: list[warnings.WarningMessage]
) -> None:
    features, target = cancer
    fitted = models(features, target)[kind]
    expected = fitted.predict_proba(features.to_numpy())  # what lrnstak gave it before: the same array, warned
    assert named_estimators(fitted)  # what fitting on a DataFrame leaves
    served = prepare_model(fitted, None, {})

    assert isinstance(served.inputs, MatrixInputs)
    assert served.inputs.columns == tuple(features.columns)  # taken before the names are forgotten
    assert named_estimators(served.estimator) == []
    every_warning.clear()
    answers = predict(served, rows_of(features), with_probabilities=True)
    assert answers.probabilities is not None
    assert np.array_equal([list(row.values()) for row in answers.probabilities], expected)
    assert not [caught for caught in every_warning if FEATURE_NAMES_WARNING in str(caught.message)]
    assert filters_unchanged()


def filters_unchanged() -> bool:
    """No filter for the warning was added to the process."""
    return not [entry for entry in warnings.filters if entry[1] is not None and "feature names" in entry[1].pattern]


def test_columns_chosen_by_name_still_need_a_dataframe_as_before(cancer: tuple[pd.DataFrame, pd.Series]) -> None:
    # A ColumnTransformer that picks columns by name cannot take an array, names or not: the same refusal.
    features, target = cancer
    served = prepare_model(models(features, target)["columns by name"], None, {})
    matrix = model_input(served.inputs, rows_of(features.head(3)))
    with pytest.raises(ValueError, match="only supported for dataframes"):
        served.estimator.predict(matrix)


def test_a_model_whose_steps_output_dataframes_keeps_its_names_and_its_answers(
    cancer: tuple[pd.DataFrame, pd.Series], every_warning: list[warnings.WarningMessage]
) -> None:
    # The scaler's DataFrame output is checked by name by the next step: forgetting would break it.
    features, target = cancer
    fitted = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).set_output(transform="pandas")
    fitted.fit(features, target)
    expected = fitted.predict(features)
    served = prepare_model(fitted, None, {})

    assert named_estimators(served.estimator) == named_estimators(fitted) != []
    assert predict(served, rows_of(features), with_probabilities=False).values == expected.tolist()
    assert [caught for caught in every_warning if FEATURE_NAMES_WARNING in str(caught.message)]  # told, not hidden


def test_a_model_fitted_on_an_array_is_left_as_it_is(cancer: tuple[pd.DataFrame, pd.Series]) -> None:
    features, target = cancer
    fitted = LogisticRegression(max_iter=500).fit(features.to_numpy(), target)
    state = dict(vars(fitted))
    prepare_model(fitted, None, {"feature_labels": list(features.columns)})
    assert vars(fitted).keys() == state.keys()
