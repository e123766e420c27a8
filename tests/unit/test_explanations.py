"""What the trainer keeps about a model for the registry page: feature weights by name and its hold-out
comparison, computed from real fits (lrnstak.ml.explaining, through lrnstak.ml.training.train)."""

from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_iris
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import SVC

from lrnstak.ml.explaining import MAX_CLASSES, MAX_FEATURES, MAX_PAIRS, bounded, explain, holdout_comparison
from lrnstak.ml.training import TrainingSpec, train
from lrnstak.schemas.registry import split_explanations

COLORS = ("red", "green", "blue")


def iris_rows() -> list[dict[str, Any]]:
    """Iris with a categorical column, so one-hot names show up."""
    data = load_iris()
    names = [name.replace(" (cm)", "").replace(" ", "_") for name in data.feature_names]
    return [
        {**dict(zip(names, map(float, x), strict=True)), "color": COLORS[i % 3], "species": str(data.target_names[t])}
        for i, (x, t) in enumerate(zip(data.data, data.target, strict=True))
    ]


def diabetes_rows() -> list[dict[str, Any]]:
    data = load_diabetes()
    return [
        {**dict(zip(data.feature_names, map(float, x), strict=True)), "progression": float(y)}
        for x, y in zip(data.data, data.target, strict=True)
    ]


IRIS_FEATURES = {"sepal_length", "sepal_width", "petal_length", "petal_width", "color_red", "color_green", "color_blue"}


def test_a_forest_keeps_its_importances_by_feature_name_largest_first() -> None:
    trained = train(TrainingSpec(rows=diabetes_rows(), target="progression", algorithms="random_forest"))
    explanation = trained.training_results["explanation"]
    forest = trained.pipeline.named_steps["model"]

    assert explanation["kind"] == "importances"
    assert set(explanation["features"]) == set(load_diabetes().feature_names)
    assert explanation["total_features"] == 10
    by_name = dict(zip(explanation["features"], explanation["values"], strict=True))
    for name, importance in zip(load_diabetes().feature_names, forest.feature_importances_, strict=True):
        assert by_name[name] == pytest.approx(importance, rel=1e-5)
    assert explanation["values"] == sorted(explanation["values"], reverse=True)
    assert sum(explanation["values"]) == pytest.approx(1.0, rel=1e-4)


def test_a_linear_model_keeps_its_signed_coefficients_and_its_regression_holdout() -> None:
    rows = diabetes_rows()
    trained = train(TrainingSpec(rows=rows, target="progression", algorithms="linear_regression"))
    explanation = trained.training_results["explanation"]
    coefficients = trained.pipeline.named_steps["model"].coef_

    assert explanation["kind"] == "coefficients"
    assert "classes" not in explanation
    by_name = dict(zip(explanation["features"], explanation["values"], strict=True))
    for name, weight in zip(load_diabetes().feature_names, coefficients, strict=True):
        assert by_name[name] == pytest.approx(weight, rel=1e-5)
    assert any(value < 0 for value in explanation["values"])
    magnitudes = [abs(value) for value in explanation["values"]]
    assert magnitudes == sorted(magnitudes, reverse=True)

    holdout = trained.training_results["holdout"]
    metadata = trained.training_results["metadata"]
    assert holdout["kind"] == "regression"
    assert holdout["rows"] == metadata["holdout_rows"] == len(holdout["pairs"])
    assert holdout["sampled"] is False
    actual = sorted(pair["actual"] for pair in holdout["pairs"])
    targets = [row["progression"] for row in rows]
    assert all(value in targets for value in actual)
    # The pairs are the hold-out predictions: their mse is the recorded one.
    errors = [(pair["actual"] - pair["predicted"]) ** 2 for pair in holdout["pairs"]]
    assert float(np.mean(errors)) == pytest.approx(trained.training_results["results"]["linear_regression"], rel=1e-4)


def test_a_multiclass_logistic_regression_keeps_one_list_per_class_and_a_confusion_matrix() -> None:
    trained = train(TrainingSpec(rows=iris_rows(), target="species", algorithms="logistic_regression"))
    explanation = trained.training_results["explanation"]
    model = trained.pipeline.named_steps["model"]

    assert explanation["kind"] == "coefficients"
    assert explanation["classes"] == ["setosa", "versicolor", "virginica"]
    assert set(explanation["features"]) == IRIS_FEATURES  # one-hot columns by category, block prefixes gone
    assert len(explanation["values"]) == 3
    assert all(len(per_class) == len(explanation["features"]) for per_class in explanation["values"])
    names = list(trained.pipeline.named_steps["preprocess"].get_feature_names_out(_inputs(trained)))
    for row, per_class in zip(model.coef_, explanation["values"], strict=True):
        for feature, value in zip(explanation["features"], per_class, strict=True):
            position = next(i for i, name in enumerate(names) if name.split("__", 1)[1] == feature)
            assert value == pytest.approx(row[position], rel=1e-5)

    holdout = trained.training_results["holdout"]
    assert holdout["kind"] == "classification"
    assert holdout["labels"] == ["setosa", "versicolor", "virginica"]
    matrix = np.asarray(holdout["matrix"])
    assert matrix.shape == (3, 3)
    assert matrix.sum() == holdout["rows"] == trained.training_results["metadata"]["holdout_rows"]
    accuracy = np.trace(matrix) / matrix.sum()
    hold_out = next(entry for entry in trained.training_results["scores"] if entry["iteration"] == 1)
    assert accuracy == pytest.approx(hold_out["accuracy"])


def test_a_binary_classifier_names_the_class_its_coefficients_point_to() -> None:
    x = np.array([[0.0], [1.0], [2.0], [3.0], [4.0], [5.0]])
    y = np.array(["no", "no", "no", "yes", "yes", "yes"])
    explanation = explain(LogisticRegression().fit(x, y))
    assert explanation is not None
    assert explanation["positive_class"] == "yes"
    assert explanation["features"] == ["feature_0"]  # fitted on an array: positional names
    assert explanation["values"][0] > 0


def test_knn_and_an_rbf_svm_have_no_explanation_but_keep_their_holdout() -> None:
    trained = train(TrainingSpec(rows=iris_rows(), target="species", algorithms="knn"))
    assert "explanation" not in trained.training_results
    assert trained.training_results["holdout"]["kind"] == "classification"
    x, y = load_iris(return_X_y=True)
    assert explain(KNeighborsClassifier().fit(x, y)) is None
    assert explain(SVC(kernel="rbf").fit(x, y)) is None
    assert explain(SVC(kernel="linear").fit(x, y)) is None  # one-vs-one rows are pairs of classes
    assert explain(SVC(kernel="linear").fit(x[y < 2], y[y < 2])) is not None


def test_wide_and_long_inputs_are_capped_deterministically_and_fit_the_registry_item() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(3000, 120))
    y = x @ rng.normal(size=120)
    explanation = explain(LinearRegression().fit(x, y))
    assert explanation is not None
    assert len(explanation["features"]) == MAX_FEATURES
    assert explanation["total_features"] == 120

    predicted = y + rng.normal(size=y.shape)
    first = holdout_comparison("regression", y, predicted)
    assert len(first["pairs"]) == MAX_PAIRS
    assert first["sampled"] is True
    assert first["rows"] == 3000
    assert first == holdout_comparison("regression", y, predicted)

    labels = np.array([f"class-{i:03d}-{'x' * 60}" for i in range(200)])
    actual = labels[rng.integers(0, 200, size=5000)]
    classified = holdout_comparison("classification", actual, np.roll(actual, 1), labels)
    assert len(classified["labels"]) == MAX_CLASSES
    assert classified["truncated"] is True
    many = explain(LogisticRegression(max_iter=50).fit(rng.normal(size=(2000, 80)), actual[:2000]))
    assert many is not None
    assert len(many["classes"]) == MAX_CLASSES
    for document in (explanation, first, classified, many):
        assert bounded(document) is document
    # Class labels are the client's: a part they make too large is left out, and training goes on.
    huge = holdout_comparison("classification", np.array(["a" * 70_000, "b"]), np.array(["b", "b"]))
    assert bounded(huge) is None


def test_a_class_only_the_holdout_has_gets_its_row() -> None:
    compared = holdout_comparison("classification", np.array([0, 0, 1]), np.array([1, 1, 1]), classes=[1])
    assert compared["labels"] == [1, 0]
    assert compared["matrix"] == [[1, 0], [2, 0]]


def test_info_lifts_them_out_of_trained_results_but_leaves_an_uploads_own_keys() -> None:
    trained = train(TrainingSpec(rows=diabetes_rows(), target="progression", algorithms="ridge"))
    scores, explained = split_explanations(trained.training_results)
    assert set(explained) == {"explanation", "holdout"}
    assert scores is not None
    assert not {"explanation", "holdout"} & set(scores)
    uploaded = {"mse": 1.0, "explanation": "my notes", "holdout": {"kind": "mine"}}
    assert split_explanations(uploaded) == (uploaded, {})
    assert split_explanations(None) == (None, {})


def _inputs(trained: Any) -> list[str]:
    rows = trained.pipeline.named_steps["rows"]
    return [*rows.numeric_columns, *rows.categorical_columns]


@pytest.mark.parametrize("estimator", [RandomForestRegressor(n_estimators=5, random_state=0)])
def test_a_bare_estimator_uses_the_names_it_was_fitted_with(estimator: Any) -> None:
    x, y = load_diabetes(return_X_y=True)
    estimator.fit(x, y)
    estimator.feature_names_in_ = np.asarray(load_diabetes().feature_names, dtype=object)
    explanation = explain(estimator)
    assert explanation is not None
    assert set(explanation["features"]) == set(load_diabetes().feature_names)
