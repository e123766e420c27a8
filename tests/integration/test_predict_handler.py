"""Predictions through the predict function's Lambda handler against moto: the numbers are the saved model's own.

Every expected value comes from the model downloaded through GET /models/{name}/{version} and loaded with
the safe loader, called on the same rows; answers must equal it exactly, after a JSON round trip.
"""

import base64
import csv
import io
import json
import time
import warnings
from typing import Any

import numpy as np
import pytest
from conftest import reset_cached_wiring
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression

from lrnstak.ml.safe_loading import load_model
from lrnstak.storage.clients import AwsClients

from support.events import rest_v1_event
from support.functions import LambdaResponse, invoke
from support.models import model_b64

IRIS_NAMES = ["setosa", "versicolor", "virginica"]
IRIS_COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
STOCK_RULES = {
    "extract": {"date": {"type": "datetime", "elements": ["month", "day_of_week"]}},
    "flatten": {"recent": ["avg", "max"]},
}


def predict(
    name: str,
    body: Any,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
) -> LambdaResponse:
    return invoke("PredictFunction", rest_v1_event("POST", f"/predict/model/{name}", body, headers, query))


def train(name: str, body: dict[str, Any]) -> None:
    response = invoke("TrainerFunction", rest_v1_event("POST", f"/train/{name}", body=body))
    assert response.status == 200, response.raw_body


def upload(name: str, estimator: object, parameters: dict[str, Any] | None = None, version: str | None = None) -> None:
    body: dict[str, Any] = {"model": model_b64(estimator), "parameters": parameters or {}}
    if version is not None:
        body["version"] = version
    response = invoke("RegistryFunction", rest_v1_event("POST", f"/models/{name}", body=body))
    assert response.status == 200, response.raw_body


def download(name: str, version: str) -> Any:
    response = invoke("RegistryFunction", rest_v1_event("GET", f"/models/{name}/{version}"))
    assert response.status == 200, response.raw_body
    return load_model(base64.b64decode(response.json()["model"])).estimator


def ok(response: LambdaResponse) -> Any:
    assert response.status == 200, response.raw_body
    return response.json()


def error_of(response: LambdaResponse, status: int) -> dict[str, Any]:
    assert response.status == status, response.raw_body
    error: dict[str, Any] = response.json()["error"]
    return error


def answer_values(answer: list[dict[str, Any]]) -> list[Any]:
    return [entry["prediction"] for entry in answer]


def iris_rows() -> list[dict[str, Any]]:
    X, y = load_iris(return_X_y=True)
    return [
        {**dict(zip(IRIS_COLUMNS, map(float, x), strict=True)), "species": IRIS_NAMES[target]}
        for x, target in zip(X, y, strict=True)
    ]


def features_only(rows: list[dict[str, Any]], target: str) -> list[dict[str, Any]]:
    return [{key: value for key, value in row.items() if key != target} for row in rows]


@pytest.fixture
def iris(aws: AwsClients) -> list[dict[str, Any]]:
    """A classifier with text classes trained through POST /train; returns rows to predict (with an id)."""
    train(
        "iris",
        {"training_data": iris_rows(), "parameters": {"target_label": "species", "algorithm": "logistic_regression"}},
    )
    return [{"id": f"r{index}", **row} for index, row in enumerate(features_only(iris_rows(), "species"))]


def stock_rows(count: int, seed: int) -> list[dict[str, Any]]:
    """The old stack's workload: a timestamp, prices, a recent-closes array, a sector and the close."""
    rng = np.random.default_rng(seed)
    rows = []
    for day in range(count):
        opening = 100 + float(rng.normal(scale=3))
        rows.append(
            {
                "date": f"2026-{1 + day % 12:02d}-{1 + day % 28:02d}T15:30:00Z",
                "open": round(opening, 3),
                "volume": int(rng.integers(1_000, 50_000)),
                "recent": [round(opening + float(rng.normal()), 3) for _ in range(5)],
                "sector": ["tech", "energy", "retail"][day % 3],
                "close": round(opening + float(rng.normal()), 3),
            }
        )
    return rows


# --- predictions equal the saved model's ------------------------------------------------------------------


def test_a_trained_classifier_answers_the_old_stacks_call_with_the_saved_pipelines_predictions(
    iris: list[dict[str, Any]],
) -> None:
    answer = ok(predict("iris", {"version": "v1", "data": iris}))
    saved = download("iris", "v1")
    assert isinstance(answer, list)
    assert answer == [
        {**row, "prediction": label} for row, label in zip(iris, saved.predict(iris).tolist(), strict=True)
    ]
    assert {entry["prediction"] for entry in answer} == set(IRIS_NAMES)  # classes keep their training type


def test_probabilities_equal_predict_proba_keyed_by_class(iris: list[dict[str, Any]]) -> None:
    answer = ok(predict("iris", {"data": iris, "probabilities": True}))
    saved = download("iris", "latest")
    expected = saved.predict_proba(iris).tolist()
    assert [list(entry["probabilities"]) for entry in answer] == [IRIS_NAMES] * len(iris)
    assert [[entry["probabilities"][name] for name in IRIS_NAMES] for entry in answer] == expected
    assert [entry["prediction"] for entry in answer] == saved.predict(iris).tolist()


def test_include_input_false_answers_only_the_predictions(iris: list[dict[str, Any]]) -> None:
    answer = ok(predict("iris", {"data": iris[:7], "include_input": False}))
    assert answer == [{"prediction": label} for label in download("iris", "v1").predict(iris[:7]).tolist()]


def test_columnar_input_answers_as_the_same_rows_do(iris: list[dict[str, Any]]) -> None:
    columns = ["petal_width", "id", *IRIS_COLUMNS[:3]]
    data = [[row[column] for column in columns] for row in iris[40:60]]
    answer = ok(predict("iris", {"columns": columns, "data": data}))
    as_rows = ok(predict("iris", {"data": [dict(zip(columns, values, strict=True)) for values in data]}))
    assert answer == as_rows
    assert [entry["prediction"] for entry in answer] == download("iris", "v1").predict(iris[40:60]).tolist()
    ragged = error_of(predict("iris", {"columns": columns, "data": [data[0], data[1][:-1]]}), 400)
    assert "row 1" in ragged["message"]


def test_a_trained_regressor_answers_json_numbers_equal_to_the_saved_pipeline(aws: AwsClients) -> None:
    bunch = load_diabetes()
    names = [str(name) for name in bunch.feature_names]
    rows = [
        {**dict(zip(names, map(float, x), strict=True)), "y": float(t)}
        for x, t in zip(bunch.data, bunch.target, strict=True)
    ]
    train("diabetes", {"data": rows, "parameters": {"target_label": "y", "algorithm": "ridge"}})
    inputs = features_only(rows, "y")
    response = predict("diabetes", {"data": inputs})
    answer = ok(response)
    assert response.headers["x-model-version"] == "v1"
    expected = download("diabetes", "v1").predict(inputs).tolist()
    assert [entry["prediction"] for entry in answer] == expected
    assert all(type(entry["prediction"]) is float for entry in answer)
    refused = error_of(predict("diabetes", {"data": inputs[:2], "probabilities": True}), 400)
    assert "predict_proba" in refused["message"]
    assert error_of(predict("diabetes", {"data": [], "probabilities": True}), 400)["code"] == "invalid_input"


def test_a_model_with_feature_rules_predicts_from_raw_rows(aws: AwsClients) -> None:
    train(
        "stocks",
        {
            "training_data": stock_rows(80, 1),
            "parameters": {
                "target_label": "close",
                "feature_labels": ["open", "volume", "date", "recent", "sector"],
                "rules": STOCK_RULES,
            },
        },
    )
    rows = features_only(stock_rows(25, 2), "close")
    answer = ok(predict("stocks", {"data": rows}))
    assert answer == [
        {**row, "prediction": value}
        for row, value in zip(rows, download("stocks", "v1").predict(rows).tolist(), strict=True)
    ]
    missing = error_of(predict("stocks", {"data": [{k: v for k, v in rows[0].items() if k != "recent"}]}), 400)
    assert "'recent'" in missing["message"]


def test_an_uploaded_regressor_gets_its_columns_in_feature_labels_order(aws: AwsClients) -> None:
    rng = np.random.default_rng(7)
    X = rng.normal(size=(30, 3))
    model = LinearRegression().fit(X, X @ np.array([2.0, -1.0, 0.25]) + 3)
    upload("uploaded-lr", model, {"feature_labels": ["a", "b", "c"]})
    rows = [{"c": float(x[2]), "note": "kept", "a": float(x[0]), "b": float(x[1])} for x in X]
    answer = ok(predict("uploaded-lr", {"data": rows}))
    assert answer == [{**row, "prediction": value} for row, value in zip(rows, model.predict(X).tolist(), strict=True)]
    assert [entry["prediction"] for entry in answer] == download("uploaded-lr", "v1").predict(X).tolist()
    as_text = [{**row, "a": str(row["a"])} for row in rows[:3]]
    assert [entry["prediction"] for entry in ok(predict("uploaded-lr", {"data": as_text}))] == answer_values(answer[:3])
    bad = [rows[0], {**rows[1], "b": "n/a"}]
    assert error_of(predict("uploaded-lr", {"data": bad}), 400)["details"] == {"row": 1, "column": "b"}


def test_an_uploaded_classifier_keeps_integer_classes_and_its_probabilities(aws: AwsClients) -> None:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(50, 2))
    model = LogisticRegression().fit(X, (X[:, 0] + X[:, 1] > 0).astype(int))
    upload("uploaded-logit", model, {"feature_labels": ["x", "y"]})
    rows = [{"x": float(x[0]), "y": float(x[1])} for x in X]
    answer = ok(predict("uploaded-logit", {"data": rows, "probabilities": True, "include_input": False}))
    assert [entry["prediction"] for entry in answer] == model.predict(X).tolist()
    assert all(type(entry["prediction"]) is int for entry in answer)
    assert [[entry["probabilities"]["0"], entry["probabilities"]["1"]] for entry in answer] == model.predict_proba(
        X
    ).tolist()
    assert [entry["prediction"] for entry in answer] == download("uploaded-logit", "v1").predict(X).tolist()


def test_an_uploaded_model_uses_feature_names_in_or_needs_feature_labels(aws: AwsClients) -> None:
    X = np.array([[1.0, 2.0], [3.0, 5.0], [4.0, 1.0], [0.0, 0.5]])
    named = LinearRegression().fit(X, X[:, 0] - 2 * X[:, 1])
    expected = named.predict(np.array([[1.0, 2.0]])).tolist()[0]
    named.feature_names_in_ = np.asarray(["p", "q"], dtype=object)  # as fitting on a DataFrame leaves it
    upload("named", named)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        answer = ok(predict("named", {"data": [{"q": 2.0, "p": 1.0}]}))
    assert answer[0]["prediction"] == expected
    assert not [warning for warning in caught if "feature names" in str(warning.message)]

    upload("anonymous", LinearRegression().fit(X, X[:, 0]))
    refused = error_of(predict("anonymous", {"data": [{"a": 1.0, "b": 2.0}]}), 400)
    assert "feature_labels" in refused["message"]


def test_nan_predictions_reach_the_client_as_null(aws: AwsClients) -> None:
    model = LinearRegression().fit(np.array([[0.0], [1.0], [2.0]]), np.array([0.0, 1.0, 2.0]))
    model.intercept_ = float("nan")
    upload("nan-model", model, {"feature_labels": ["x"]})
    response = predict("nan-model", {"data": [{"x": 1.0}]})
    assert response.raw_body == b'[{"x":1.0,"prediction":null}]'
    as_csv = predict("nan-model", {"data": [{"x": 1.0}]}, headers={"Accept": "text/csv"})
    assert as_csv.raw_body.decode() == "x,prediction\n1.0,\n"


# --- CSV -----------------------------------------------------------------------------------------------------


def csv_body(rows: list[dict[str, Any]], columns: list[str]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    writer.writerows([[row[column] for column in columns] for row in rows])
    return buffer.getvalue().encode()


def test_csv_in_csv_out_with_probabilities(iris: list[dict[str, Any]]) -> None:
    columns = ["id", *IRIS_COLUMNS]
    response = predict(
        "iris",
        csv_body(iris, columns),
        headers={"Content-Type": "text/csv; charset=utf-8", "Accept": "text/csv"},
        query={"version": "v1", "probabilities": "true"},
    )
    assert response.status == 200, response.raw_body
    assert response.headers["content-type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(response.raw_body.decode())))
    probability_columns = [f"probability_{name}" for name in IRIS_NAMES]
    assert table[0] == [*columns, "prediction", *probability_columns]
    saved = download("iris", "v1")
    expected = [
        [row["id"], *(repr(row[c]) for c in IRIS_COLUMNS), label, *map(repr, probabilities)]
        for row, label, probabilities in zip(
            iris, saved.predict(iris).tolist(), saved.predict_proba(iris).tolist(), strict=True
        )
    ]
    assert table[1:] == expected


def test_csv_in_json_out(iris: list[dict[str, Any]]) -> None:
    response = predict("iris", csv_body(iris[:10], IRIS_COLUMNS), headers={"Content-Type": "text/csv"})
    answer = ok(response)
    assert answer == [
        {**{c: row[c] for c in IRIS_COLUMNS}, "prediction": label}
        for row, label in zip(iris[:10], download("iris", "v1").predict(iris[:10]).tolist(), strict=True)
    ]


def test_json_in_csv_out_without_input(iris: list[dict[str, Any]]) -> None:
    response = predict(
        "iris", {"data": iris[:3], "include_input": False}, headers={"Accept": "application/json;q=0.5, text/csv"}
    )
    assert response.status == 200, response.raw_body
    labels = download("iris", "v1").predict(iris[:3]).tolist()
    assert response.raw_body.decode() == "prediction\n" + "".join(f"{label}\n" for label in labels)


def test_a_csv_row_with_the_wrong_number_of_cells_is_a_400(iris: list[dict[str, Any]]) -> None:
    body = b"sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n4.9,3.0,1.4\n"
    error = error_of(predict("iris", body, headers={"Content-Type": "text/csv"}), 400)
    assert "row 1" in error["message"]


def test_an_answer_over_the_response_limit_is_a_413(
    iris: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAX_RESPONSE_BYTES", "2000")
    reset_cached_wiring()
    error = error_of(predict("iris", {"data": iris}), 413)
    assert "include_input" in error["message"]
    assert len(ok(predict("iris", {"data": iris[:20], "include_input": False}))) == 20
    assert error_of(predict("iris", {"data": iris}, headers={"Accept": "text/csv"}), 413)["code"] == "too_large"


# --- input checks ----------------------------------------------------------------------------------------------


def test_missing_feature_columns_are_named_with_their_rows(iris: list[dict[str, Any]]) -> None:
    rows = [dict(row) for row in iris[:15]]
    for row in rows[2:14]:
        del row["petal_width"]
    del rows[5]["sepal_length"]
    error = error_of(predict("iris", {"data": rows}), 400)
    assert "'petal_width'" in error["message"]
    assert "'sepal_length'" in error["message"]
    assert error["details"]["missing_columns"] == [
        {"column": "sepal_length", "rows": [5], "count": 1},
        {"column": "petal_width", "rows": list(range(2, 12)), "count": 12},
    ]


def test_values_are_coerced_to_the_training_kind_or_refused_naming_row_and_column(iris: list[dict[str, Any]]) -> None:
    as_text = [{key: str(value) for key, value in row.items()} for row in iris[:20]]
    coerced = ok(predict("iris", {"data": as_text}))
    assert [entry["prediction"] for entry in coerced] == download("iris", "v1").predict(iris[:20]).tolist()
    assert coerced[0]["sepal_length"] == "5.1"  # the row is echoed as sent

    rows = [dict(row) for row in iris[:5]]
    rows[3]["petal_length"] = "long"
    error = error_of(predict("iris", {"data": rows}), 400)
    assert "Row 3" in error["message"]
    assert "'petal_length'" in error["message"]
    assert error["details"] == {"row": 3, "column": "petal_length"}


def test_a_categorical_column_refuses_arrays(aws: AwsClients) -> None:
    train("stocks", {"training_data": stock_rows(60, 4), "parameters": {"target_label": "close", "rules": STOCK_RULES}})
    rows = features_only(stock_rows(3, 5), "close")
    rows[1]["sector"] = ["tech"]
    error = error_of(predict("stocks", {"data": rows}), 400)
    assert error["details"] == {"row": 1, "column": "sector"}


def test_empty_data_is_an_empty_list(iris: list[dict[str, Any]]) -> None:
    assert ok(predict("iris", {"data": []})) == []
    assert ok(predict("iris", {"columns": IRIS_COLUMNS, "data": []})) == []
    assert ok(predict("iris", {"data": [], "probabilities": True})) == []


def test_rows_that_are_not_objects_are_a_400(iris: list[dict[str, Any]]) -> None:
    for row in ([5.1, 3.5, 1.4, 0.2], "5.1,3.5", 7, None):
        error = error_of(predict("iris", {"data": [iris[0], row]}), 400)
        assert "row 1" in error["message"], row


def test_malformed_bodies_and_other_media_types(iris: list[dict[str, Any]]) -> None:
    assert error_of(predict("iris", b"{not json"), 400)["code"] == "invalid_json"
    for body in ({"version": "v1"}, {"data": {"a": 1}}, {"data": [], "columns": "a"}, [iris[0]]):
        assert error_of(predict("iris", body), 422)["code"] == "validation_error", body
    form = predict("iris", b"a=1", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert error_of(form, 415)["code"] == "unsupported_media_type"


def test_unknown_model_or_version_is_a_404(iris: list[dict[str, Any]]) -> None:
    assert "'nope'" in error_of(predict("nope", {"data": iris[:1]}), 404)["message"]
    assert "'v9'" in error_of(predict("iris", {"version": "v9", "data": iris[:1]}), 404)["message"]
    assert error_of(predict("bad%20name", {"data": []}), 400)["code"] == "invalid_input"


# --- the warm path -------------------------------------------------------------------------------------------

WINDOW = 0.5


@pytest.fixture
def short_window(aws: AwsClients, monkeypatch: pytest.MonkeyPatch) -> float:
    monkeypatch.setenv("MODEL_CACHE_REVALIDATE_SECONDS", str(WINDOW))
    reset_cached_wiring()
    return WINDOW


def linear(slope: float) -> LinearRegression:
    return LinearRegression().fit(np.array([[0.0], [1.0], [2.0]]), slope * np.array([0.0, 1.0, 2.0]))


def value_of(name: str, version: str = "v1") -> Any:
    return ok(predict(name, {"version": version, "data": [{"x": 1.0}]}))[0]["prediction"]


def test_an_overwritten_version_is_served_within_the_window(short_window: float) -> None:
    upload("swap", linear(1.0), {"feature_labels": ["x"]}, version="v1")
    assert value_of("swap") == pytest.approx(1.0)
    upload("swap", linear(5.0), {"feature_labels": ["x"]}, version="v1")
    changed_at = time.monotonic()
    stale = value_of("swap")
    if time.monotonic() - changed_at < short_window:
        assert stale == pytest.approx(1.0)  # the warm copy, not yet revalidated
    time.sleep(short_window + 0.05)
    assert value_of("swap") == pytest.approx(5.0)


def test_a_deleted_version_is_a_404_after_the_window(short_window: float) -> None:
    upload("gone", linear(2.0), {"feature_labels": ["x"]}, version="v1")
    upload("gone", linear(3.0), {"feature_labels": ["x"]}, version="v2")
    assert value_of("gone", "v1") == pytest.approx(2.0)
    assert value_of("gone", "latest") == pytest.approx(3.0)
    for version in ("v1", "v2"):
        deleted = invoke("RegistryFunction", rest_v1_event("DELETE", f"/models/gone/{version}"))
        assert deleted.status == 204
    time.sleep(short_window + 0.05)
    assert error_of(predict("gone", {"version": "v1", "data": [{"x": 1.0}]}), 404)["code"] == "not_found"
    assert error_of(predict("gone", {"data": [{"x": 1.0}]}), 404)["code"] == "not_found"


def test_latest_follows_a_new_version_after_the_window(short_window: float) -> None:
    upload("moving", linear(1.0), {"feature_labels": ["x"]})
    assert value_of("moving", "latest") == pytest.approx(1.0)
    upload("moving", linear(7.0), {"feature_labels": ["x"]})
    time.sleep(short_window + 0.05)
    response = predict("moving", {"data": [{"x": 1.0}]})
    assert ok(response)[0]["prediction"] == pytest.approx(7.0)
    assert response.headers["x-model-version"] == "v2"


def emitted_metrics(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith('{"_aws"')]


def test_a_warm_function_loads_a_model_once_and_counts_rows(
    iris: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    ok(predict("iris", {"data": iris[:4]}))
    ok(predict("iris", {"data": iris[:6]}))
    first, second = [m for m in emitted_metrics(capsys.readouterr().out) if "PredictionServed" in m]
    assert first["ModelCacheMiss"] == [1.0]
    assert "ModelCacheHit" not in first
    assert second["ModelCacheHit"] == [1.0]
    assert "ModelCacheMiss" not in second
    assert (first["PredictionServed"], second["PredictionServed"]) == ([4.0], [6.0])
    assert second["PredictionDuration"][0] > 0
