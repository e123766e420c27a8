"""Predictions over real HTTP from the stack `make run` starts, for models trained and uploaded over HTTP.

Expected values come from each model as GET /models/{name}/v1 hands it out, loaded with the safe loader.
The local server answers requests on threads, so the concurrent test also exercises the model cache's lock.
"""

import base64
import csv
import io
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_wine
from sklearn.linear_model import LinearRegression, LogisticRegression

from lrnstak.ml.safe_loading import load_model

from support.models import model_b64
from support.stack import RunningStack


@dataclass(frozen=True)
class Served:
    rows: list[dict[str, Any]]
    # What the saved model itself is called with: the rows for pipelines lrnstak trained, a matrix otherwise.
    model_input: Any
    classifier: bool


def dataset_rows(loader: Any, target: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Training rows (features and target) and the same rows without the target, with an extra column."""
    bunch = loader()
    names = [str(name) for name in bunch.feature_names]
    features = [dict(zip(names, map(float, x), strict=True)) for x in bunch.data]
    training = [{**row, target: value.item()} for row, value in zip(features, bunch.target, strict=True)]
    return training, [{"ref": index, **row} for index, row in enumerate(features)]


def ticker_rows(count: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return [
        {
            "when": f"2026-{1 + day % 12:02d}-{1 + day % 28:02d}T09:00:00+02:00",
            "price": round(50 + float(rng.normal(scale=2)), 2),
            "last": [round(50 + float(rng.normal()), 2) for _ in range(4)],
            "venue": ["xnas", "xnys"][day % 2],
            "next": round(50 + float(rng.normal(scale=2)), 2),
        }
        for day in range(count)
    ]


def post_ok(http: httpx.Client, path: str, body: dict[str, Any]) -> Any:
    response = http.post(path, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def create_models(http: httpx.Client) -> dict[str, Served]:
    wine, wine_inputs = dataset_rows(load_wine, "kind")
    post_ok(
        http,
        "/train/wine",
        {"training_data": wine, "parameters": {"target_label": "kind", "algorithm": "logistic_regression"}},
    )
    diabetes, diabetes_inputs = dataset_rows(load_diabetes, "progress")
    post_ok(
        http,
        "/train/model/diabetes",
        {"data": diabetes, "parameters": {"target_label": "progress", "algorithm": "ridge"}},
    )
    rules = {
        "extract": {"when": {"type": "datetime", "elements": ["month", "hour"]}},
        "flatten": {"last": ["avg", "max"]},
    }
    post_ok(
        http,
        "/train/ticker",
        {"training_data": ticker_rows(60, 1), "parameters": {"target_label": "next", "rules": rules}},
    )
    ticker_inputs = [{k: v for k, v in row.items() if k != "next"} for row in ticker_rows(20, 2)]

    rng = np.random.default_rng(11)
    X = rng.normal(size=(40, 3))
    post_ok(
        http,
        "/models/uploaded-linear",
        {
            "model": model_b64(LinearRegression().fit(X, X @ [1.0, 2.0, -3.0])),
            "parameters": {"feature_labels": ["u", "v", "w"]},
        },
    )
    post_ok(
        http,
        "/models/uploaded-logistic",
        {
            "model": model_b64(LogisticRegression().fit(X, (X[:, 2] > 0).astype(int))),
            "parameters": {"feature_labels": ["u", "v", "w"]},
        },
    )
    uploaded_rows = [{"w": float(x[2]), "u": float(x[0]), "v": float(x[1]), "tag": "t"} for x in X]
    return {
        "wine": Served(wine_inputs, wine_inputs, classifier=True),
        "diabetes": Served(diabetes_inputs, diabetes_inputs, classifier=False),
        "ticker": Served(ticker_inputs, ticker_inputs, classifier=False),
        "uploaded-linear": Served(uploaded_rows, X, classifier=False),
        "uploaded-logistic": Served(uploaded_rows, X, classifier=True),
    }


@pytest.fixture(scope="module")
def models(stack: RunningStack) -> dict[str, Served]:
    with stack.client() as client:
        return create_models(client)


@pytest.fixture(scope="module")
def saved(stack: RunningStack, models: dict[str, Served]) -> dict[str, Any]:
    with stack.client() as client:
        return {
            name: load_model(base64.b64decode(client.get(f"/models/{name}/v1").json()["model"])).estimator
            for name in models
        }


def expected_entries(served: Served, model: Any, probabilities: bool) -> list[dict[str, Any]]:
    labels = model.predict(served.model_input).tolist()
    entries = [{**row, "prediction": label} for row, label in zip(served.rows, labels, strict=True)]
    if probabilities:
        keys = [str(label) for label in model.classes_.tolist()]
        for entry, row in zip(entries, model.predict_proba(served.model_input).tolist(), strict=True):
            entry["probabilities"] = dict(zip(keys, row, strict=True))
    return entries


@pytest.mark.parametrize("name", ["wine", "diabetes", "ticker", "uploaded-linear", "uploaded-logistic"])
def test_the_old_stacks_call_answers_the_saved_models_predictions(
    http: httpx.Client, models: dict[str, Served], saved: dict[str, Any], name: str
) -> None:
    served = models[name]
    body = {"version": "v1", "data": served.rows, "probabilities": served.classifier}
    # The old clients: requests.post(url, data=json.dumps(body)), no Content-Type.
    response = http.post(f"/predict/model/{name}", content=json.dumps(body).encode())
    assert response.status_code == 200, response.text
    assert response.json() == expected_entries(served, saved[name], served.classifier)


def test_csv_in_csv_out_and_csv_in_json_out(
    http: httpx.Client, models: dict[str, Served], saved: dict[str, Any]
) -> None:
    served = models["wine"]
    columns = list(served.rows[0])
    text = io.StringIO()
    csv.writer(text).writerows([columns, *([row[c] for c in columns] for row in served.rows)])
    labels = saved["wine"].predict(served.rows).tolist()

    as_csv = http.post(
        "/predict/model/wine?version=v1",
        content=text.getvalue().encode(),
        headers={"Content-Type": "text/csv", "Accept": "text/csv"},
    )
    assert as_csv.status_code == 200, as_csv.text
    assert as_csv.headers["content-type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(as_csv.text)))
    assert table[0] == [*columns, "prediction"]
    assert [int(line[-1]) for line in table[1:]] == labels
    assert [float(line[1]) for line in table[1:]] == [row[columns[1]] for row in served.rows]

    as_json = http.post("/predict/model/wine", content=text.getvalue().encode(), headers={"Content-Type": "text/csv"})
    assert as_json.status_code == 200, as_json.text
    assert as_json.json() == [{**row, "prediction": label} for row, label in zip(served.rows, labels, strict=True)]


def test_concurrent_requests_each_get_their_models_answer(
    stack: RunningStack, models: dict[str, Served], saved: dict[str, Any]
) -> None:
    names = sorted(models) * 5
    expected = {name: expected_entries(models[name], saved[name], False) for name in models}

    def ask(name: str) -> tuple[str, Any]:
        with stack.client() as client:
            return name, client.post(f"/predict/model/{name}", json={"data": models[name].rows}).json()

    with ThreadPoolExecutor(len(names)) as pool:
        answers = list(pool.map(ask, names))
    assert all(answer == expected[name] for name, answer in answers)


def test_errors_over_http_have_the_error_shape(http: httpx.Client, models: dict[str, Served]) -> None:
    unknown = http.post("/predict/model/nobody", json={"data": []})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "not_found"
    missing = http.post("/predict/model/uploaded-linear", json={"data": [{"u": 1.0, "w": 2.0}]})
    assert missing.status_code == 400
    assert missing.json()["error"]["details"]["missing_columns"] == [{"column": "v", "rows": [0], "count": 1}]
    assert http.post("/predict/model/wine", json={"data": []}).json() == []
