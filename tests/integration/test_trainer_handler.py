"""Training through the trainer's Lambda handler against moto: the numbers are scikit-learn's own."""

import base64
import math
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris, load_wine
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, mean_squared_error, r2_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from lrnstak.ml.safe_loading import load_model
from lrnstak.storage.clients import AwsClients

from support.events import rest_v1_event
from support.functions import LambdaResponse, invoke

DATASETS = {"iris": load_iris, "wine": load_wine, "breast_cancer": load_breast_cancer, "diabetes": load_diabetes}


def rows_of(dataset: str) -> tuple[list[dict[str, Any]], list[str], np.ndarray, np.ndarray]:
    bunch = DATASETS[dataset]()
    names = [str(name) for name in bunch.feature_names]
    rows = [
        {**dict(zip(names, map(float, x), strict=True)), "target": y.item()}
        for x, y in zip(bunch.data, bunch.target, strict=True)
    ]
    return rows, names, bunch.data, bunch.target


def train(name: str, body: dict[str, Any], path: str = "/train/{}") -> LambdaResponse:
    return invoke("TrainerFunction", rest_v1_event("POST", path.format(name), body=body))


def download(name: str, version: str) -> Any:
    response = invoke("RegistryFunction", rest_v1_event("GET", f"/models/{name}/{version}"))
    assert response.status == 200, response.raw_body
    return load_model(base64.b64decode(response.json()["model"])).estimator


def hold_out(results: dict[str, Any], algorithm: str) -> dict[str, Any]:
    return next(s for s in results["scores"] if s["iteration"] == 1 and s["algorithm"] == algorithm)


CLASSIFIERS = {
    "logistic_regression": lambda: Pipeline(
        [
            ("impute", SimpleImputer(strategy="median")),
            ("scale", StandardScaler()),
            ("model", LogisticRegression(random_state=142)),
        ]
    ),
    "random_forest": lambda: Pipeline(
        [
            ("impute", SimpleImputer(strategy="median")),
            ("model", RandomForestClassifier(n_estimators=20, random_state=142)),
        ]
    ),
}


@pytest.mark.parametrize("dataset", ["iris", "wine", "breast_cancer"])
@pytest.mark.parametrize("algorithm", sorted(CLASSIFIERS))
def test_classification_metrics_and_predictions_equal_scikit_learn(
    aws: AwsClients, dataset: str, algorithm: str
) -> None:
    rows, names, X, y = rows_of(dataset)
    hyper = {"random_forest": {"n_estimators": 20}}.get(algorithm, {})
    body = {
        "training_data": rows,
        "parameters": {"target_label": "target", "algorithm": algorithm, "hyper": {algorithm: hyper} if hyper else {}},
    }
    response = train(f"{dataset}-{algorithm}", body)
    assert response.status == 200, response.raw_body
    answer = response.json()
    assert answer["algorithm"] == algorithm
    assert answer["message"] == f"Model {dataset}-{algorithm}_v1 trained and saved."

    reference = CLASSIFIERS[algorithm]()
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=142)
    reference.fit(X_train, y_train)
    expected = reference.predict(X_test)
    scores = hold_out(answer["training_results"], algorithm)
    assert math.isclose(scores["accuracy"], accuracy_score(y_test, expected), abs_tol=1e-9)
    assert math.isclose(scores["f1"], f1_score(y_test, expected, average="macro", zero_division=0), abs_tol=1e-9)
    assert answer["training_results"]["metadata"]["task"] == "classification"
    assert answer["training_results"]["metadata"]["task_inferred"] is True

    saved = download(f"{dataset}-{algorithm}", "v1")
    test_rows = [dict(zip(names, map(float, x), strict=True)) for x in X_test]
    assert np.array_equal(saved.predict(test_rows), expected)
    assert np.allclose(saved.predict_proba(test_rows), reference.predict_proba(X_test), rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("algorithm", "reference"),
    [
        (
            "linear_regression",
            lambda: Pipeline(
                [
                    ("impute", SimpleImputer(strategy="median")),
                    ("scale", StandardScaler()),
                    ("model", LinearRegression()),
                ]
            ),
        ),
        (
            "ridge",
            lambda: Pipeline(
                [
                    ("impute", SimpleImputer(strategy="median")),
                    ("scale", StandardScaler()),
                    ("model", Ridge(random_state=142)),
                ]
            ),
        ),
    ],
)
def test_regression_metrics_and_predictions_equal_scikit_learn(aws: AwsClients, algorithm: str, reference: Any) -> None:
    rows, names, X, y = rows_of("diabetes")
    response = train(
        "diabetes", {"data": rows, "parameters": {"target_label": "target", "algorithm": algorithm}}, "/train/model/{}"
    )
    assert response.status == 200, response.raw_body
    results = response.json()["training_results"]
    pipeline = reference()
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=142)
    expected = pipeline.fit(X_train, y_train).predict(X_test)
    scores = hold_out(results, algorithm)
    assert math.isclose(scores["mse"], mean_squared_error(y_test, expected), rel_tol=1e-9)
    assert math.isclose(scores["mae"], mean_absolute_error(y_test, expected), rel_tol=1e-9)
    assert math.isclose(scores["r2"], r2_score(y_test, expected), rel_tol=1e-9)
    assert math.isclose(scores["rmse"], math.sqrt(mean_squared_error(y_test, expected)), rel_tol=1e-9)
    assert results["metadata"]["task"] == "regression"
    saved = download("diabetes", "latest")
    assert np.allclose(
        saved.predict([dict(zip(names, map(float, x), strict=True)) for x in X_test]), expected, rtol=0, atol=1e-9
    )


def test_default_candidates_are_the_old_stacks_four_and_the_best_is_kept(aws: AwsClients) -> None:
    rows, *_ = rows_of("diabetes")
    response = train("candidates", {"training_data": rows, "parameters": {"target_label": "target"}})
    assert response.status == 200, response.raw_body
    results = response.json()["training_results"]
    assert set(results["results"]) == {"linear_regression", "random_forest", "decision_tree", "gradient_boosting"}
    best = min(results["results"], key=lambda name: results["results"][name])
    assert response.json()["algorithm"] == best == results["algorithm"]
    info = invoke("RegistryFunction", rest_v1_event("GET", "/models/candidates/v1/info")).json()
    assert info["algorithm"] == best
    # The explanation and the hold-out comparison come out of the scores, as fields of their own.
    explained = {key: results.pop(key) for key in ("explanation", "holdout")}
    assert info["training_scores"] == results
    assert {key: info[key] for key in explained} == explained
    assert info["metrics"]["mse"] == results["results"][best]


def stock_rows(count: int, seed: int) -> list[dict[str, Any]]:
    """The old stack's workload: OHLCV rows with a recent-closes array and a timestamp."""
    rng = np.random.default_rng(seed)
    price = 100.0
    rows = []
    for day in range(count):
        opening = price + rng.normal(scale=0.5)
        close = opening + rng.normal(scale=1.0)
        rows.append(
            {
                "date": f"2026-{1 + day // 28 % 12:02d}-{1 + day % 28:02d}T15:30:00Z",
                "open": round(opening, 3),
                "high": round(max(opening, close) + abs(rng.normal()), 3),
                "low": round(min(opening, close) - abs(rng.normal()), 3),
                "volume": int(rng.integers(1_000, 50_000)),
                "recent": [round(price + rng.normal(), 3) for _ in range(5)],
                "sector": ["tech", "energy", "retail"][day % 3],
                "AAPL_close": round(close, 3),
            }
        )
        price = close
    return rows


def test_the_old_stacks_request_shape_trains_and_saves(aws: AwsClients) -> None:
    body = {
        "training_data": stock_rows(120, 1),
        "testing_data": stock_rows(30, 2),
        "parameters": {
            "target_label": "AAPL_close",
            "feature_labels": ["open", "high", "low", "volume", "date", "recent", "sector"],
            "rules": {
                "extract": {"date": {"type": "datetime", "elements": ["month", "day_of_week"]}},
                "flatten": {"recent": ["avg", "max"]},
            },
            "metadata": {"symbol": "AAPL", "window": 5},
            "engine": "default",
        },
    }
    response = invoke(
        "TrainerFunction",
        rest_v1_event("POST", "/train/AAPL", body=body, headers={"Content-Type": "Application/json"}),
    )
    assert response.status == 200, response.raw_body
    results = response.json()["training_results"]
    assert {entry["iteration"] for entry in results["scores"]} == {1, 2}
    assert results["metadata"]["symbol"] == "AAPL"
    assert results["metadata"]["engine"] == "default"
    assert {"date_month", "date_day_of_week", "avg_recent", "max_recent", "sector"} <= set(
        results["metadata"]["features"]
    )
    saved = download("AAPL", "v1")
    raw = [{k: v for k, v in row.items() if k != "AAPL_close"} for row in stock_rows(5, 3)]
    assert len(saved.predict(raw)) == 5
    best = invoke(
        "RegistryFunction", rest_v1_event("GET", "/models/AAPL/best", query={"symbol": "AAPL", "window": "5"})
    )
    assert best.status == 200
    assert best.json()["version"] == "v1"


def assert_nothing_saved(aws: AwsClients) -> None:
    import os

    assert aws.dynamodb.scan(TableName=os.environ["REGISTRY_TABLE"])["Items"] == []
    assert aws.s3.list_objects_v2(Bucket=os.environ["MODELS_BUCKET"]).get("KeyCount", 0) == 0


IRIS = [
    {"a": float(x[0]), "b": float(x[1]), "label": ["setosa", "versicolor", "virginica"][y]}
    for x, y in zip(*load_iris(return_X_y=True), strict=True)
]


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"training_data": IRIS, "parameters": {}}, 422, "target_label"),
        ({"training_data": IRIS, "parameters": {"target_label": "nope"}}, 400, "'nope'"),
        (
            {"training_data": IRIS, "parameters": {"target_label": "label", "feature_labels": ["a", "zz", "yy"]}},
            400,
            "'zz', 'yy'",
        ),
        ({"training_data": [], "parameters": {"target_label": "label"}}, 400, "non-empty list"),
        ({"parameters": {"target_label": "label"}}, 400, "training_data"),
        (
            {"training_data": [{"a": 1.0, "y": 2.0}], "parameters": {"target_label": "y", "task": "regression"}},
            400,
            "split",
        ),
        ({"training_data": [*IRIS[:10], 5], "parameters": {"target_label": "label"}}, 400, "row 10"),
        (
            {"training_data": IRIS, "parameters": {"target_label": "label", "algorithm": "deep_magic"}},
            400,
            "Valid algorithms",
        ),
        (
            {
                "training_data": IRIS,
                "parameters": {
                    "target_label": "label",
                    "algorithm": "random_forest",
                    "hyper": {"random_forest": {"n_estimators": -3}},
                },
            },
            400,
            "n_estimators",
        ),
        (
            {
                "training_data": IRIS,
                "parameters": {
                    "target_label": "label",
                    "algorithm": "random_forest",
                    "hyper": {"random_forest": {"bogus": 1}},
                },
            },
            400,
            "bogus",
        ),
        ({"training_data": IRIS, "parameters": {"target_label": "label", "task": "regression"}}, 400, "numeric target"),
        (
            {"training_data": [{**r, "label": "one"} for r in IRIS], "parameters": {"target_label": "label"}},
            400,
            "two classes",
        ),
        (
            {
                "training_data": [
                    {**r, "a": "x" if i == 3 else r["a"]} if i else {**r, "a": True} for i, r in enumerate(IRIS)
                ],
                "parameters": {"target_label": "label"},
            },
            400,
            "'a'",
        ),
        ({"training_data": IRIS, "parameters": {"target_label": "label", "engine": "tensorflow"}}, 400, "tensorflow"),
        (
            {"training_data": IRIS, "parameters": {"target_label": "label", "rules": {"pivot": {"a": "b"}}}},
            400,
            "pivot",
        ),
        ({"training_data": IRIS, "version": "latest", "parameters": {"target_label": "label"}}, 400, "reserved"),
    ],
    ids=[
        "missing-target_label",
        "target-not-in-rows",
        "features-not-in-rows",
        "empty-rows",
        "no-rows",
        "too-few-rows-for-split",
        "row-not-object",
        "unknown-algorithm",
        "bad-hyper-value",
        "bad-hyper-name",
        "text-target-for-regression",
        "one-class",
        "mixed-types",
        "tensorflow",
        "pivot-rule",
        "reserved-version",
    ],
)
def test_bad_training_input_is_a_4xx_naming_the_problem_and_saves_nothing(
    aws: AwsClients, body: dict[str, Any], status: int, needle: str
) -> None:
    response = train("bad", body)
    assert response.status == status, response.raw_body
    error = response.json()["error"]
    assert needle in error["message"] or needle in str(error["details"]), error
    assert_nothing_saved(aws)
