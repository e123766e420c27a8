"""Predictions over HTTP from models fitted here and uploaded: each answer must be the local model's own.

Labels are compared exactly. Floats are compared to 1e-12: the same estimator can differ in the last bit
between batch sizes and CPUs (BLAS), which is no part of the contract.
"""

import csv
import io
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge

from .helpers import MODEL_VERSION_HEADER, Cleanup, Names, Table, assert_error, encoded, joblib_bytes, ok

# A changed or deleted version is served at most MODEL_CACHE_REVALIDATE_SECONDS (2 by default) after.
REVALIDATE_WAIT_SECONDS = 10


@dataclass(frozen=True)
class Served:
    """The uploaded models: an iris classifier (v1) and a diabetes regressor (v1 linear, v2 ridge)."""

    classifier_name: str
    classifier: LogisticRegression
    regressor_name: str
    regressors: dict[str, LinearRegression | Ridge]


@pytest.fixture(scope="module")
def served(api: httpx.Client, names: Names, iris_table: Table, diabetes_table: Table) -> Iterator[Served]:
    cleanup = Cleanup(api, names)
    try:
        classifier = LogisticRegression(max_iter=1000).fit(iris_table.X, iris_table.y)
        regressors = {
            "v1": LinearRegression().fit(diabetes_table.X, diabetes_table.y),
            "v2": Ridge(alpha=0.1).fit(diabetes_table.X, diabetes_table.y),
        }
        classifier_name, regressor_name = cleanup.model("predict-iris"), cleanup.model("predict-diabetes")
        upload = {"model": encoded(joblib_bytes(classifier)), "parameters": {"feature_labels": iris_table.features}}
        ok(api.post(f"/models/{classifier_name}", json=upload))
        for version, regressor in regressors.items():
            upload = {
                "model": encoded(joblib_bytes(regressor)),
                "version": version,
                "parameters": {"feature_labels": diabetes_table.features, "target_label": "progression"},
            }
            ok(api.post(f"/models/{regressor_name}", json=upload))
        yield Served(classifier_name, classifier, regressor_name, regressors)
    finally:
        cleanup.close()


def close_to(expected: Any) -> Any:
    return pytest.approx(expected, rel=1e-12, abs=1e-12)


def inputs(table: Table, step: int = 1) -> list[dict[str, Any]]:
    """Rows as clients send them: features in another order, and a column the model does not use."""
    return [{"id": index, **dict(reversed(row.items()))} for index, row in enumerate(table.rows(False, step))]


def probabilities_of(model: LogisticRegression, table: Table, step: int = 1) -> list[dict[str, float]]:
    classes = [str(label) for label in model.classes_]
    return [dict(zip(classes, row, strict=True)) for row in model.predict_proba(table.X[::step]).tolist()]


def test_the_old_stacks_call_answers_each_row_with_its_prediction(
    api: httpx.Client, served: Served, iris_table: Table
) -> None:
    rows = inputs(iris_table)
    # The old clients: requests.post(url, data=json.dumps({"version": ..., "data": rows})), no Content-Type.
    body = json.dumps({"version": "v1", "data": rows}).encode()
    response = api.post(f"/predict/model/{served.classifier_name}", content=body)
    answer = ok(response)
    assert response.headers[MODEL_VERSION_HEADER] == "v1"
    expected = served.classifier.predict(iris_table.X).tolist()
    assert answer == [{**row, "prediction": label} for row, label in zip(rows, expected, strict=True)]


def test_regression_predictions_are_the_uploaded_models_and_latest_is_the_newest(
    api: httpx.Client, served: Served, diabetes_table: Table
) -> None:
    rows = inputs(diabetes_table, step=4)
    for version in ("v1", "v2", "latest"):
        response = api.post(f"/predict/model/{served.regressor_name}", json={"version": version, "data": rows})
        served_version = "v2" if version == "latest" else version
        assert response.headers[MODEL_VERSION_HEADER] == served_version
        expected = served.regressors[served_version].predict(diabetes_table.X[::4]).tolist()
        answer = ok(response)
        assert [{k: v for k, v in entry.items() if k != "prediction"} for entry in answer] == rows
        assert [entry["prediction"] for entry in answer] == close_to(expected)

    # Options also come from the query string when the body leaves them out.
    response = api.post(f"/predict/model/{served.regressor_name}", params={"version": "v1"}, json={"data": rows})
    assert response.headers[MODEL_VERSION_HEADER] == "v1"


def test_probabilities_name_each_class(api: httpx.Client, served: Served, iris_table: Table) -> None:
    body = {"data": inputs(iris_table, step=10), "probabilities": True, "include_input": False}
    answer = ok(api.post(f"/predict/model/{served.classifier_name}", json=body))
    assert [entry["prediction"] for entry in answer] == served.classifier.predict(iris_table.X[::10]).tolist()
    expected = probabilities_of(served.classifier, iris_table, step=10)
    for entry, probabilities in zip(answer, expected, strict=True):
        assert set(entry) == {"prediction", "probabilities"}
        assert entry["probabilities"] == close_to(probabilities)

    assert_error(
        api.post(
            f"/predict/model/{served.regressor_name}", json={"data": inputs(iris_table)[:1], "probabilities": True}
        ),
        400,
        "invalid_input",
    )


def test_columnar_rows_answer_like_objects(api: httpx.Client, served: Served, iris_table: Table) -> None:
    columns = ["id", *reversed(iris_table.features)]
    data = [[index, *reversed(x.tolist())] for index, x in enumerate(iris_table.X[::7])]
    expected = served.classifier.predict(iris_table.X[::7]).tolist()

    answer = ok(api.post(f"/predict/model/{served.classifier_name}", json={"columns": columns, "data": data}))
    assert answer == [
        {**dict(zip(columns, values, strict=True)), "prediction": label}
        for values, label in zip(data, expected, strict=True)
    ]
    body = {"columns": columns, "data": data, "include_input": False}
    answer = ok(api.post(f"/predict/model/{served.classifier_name}", json=body))
    assert answer == [{"prediction": label} for label in expected]


def csv_body(rows: list[dict[str, Any]]) -> tuple[list[str], bytes]:
    columns = list(rows[0])
    text = io.StringIO()
    csv.writer(text).writerows([columns, *([row[column] for column in columns] for row in rows)])
    return columns, text.getvalue().encode()


def test_csv_in_json_or_csv_out(api: httpx.Client, served: Served, iris_table: Table) -> None:
    rows = inputs(iris_table, step=5)
    columns, body = csv_body(rows)
    labels = served.classifier.predict(iris_table.X[::5]).tolist()
    path = f"/predict/model/{served.classifier_name}"

    as_json = api.post(path, content=body, headers={"Content-Type": "text/csv"})
    assert ok(as_json) == [{**row, "prediction": label} for row, label in zip(rows, labels, strict=True)]

    as_csv = api.post(
        path,
        params={"version": "v1", "probabilities": "true"},
        content=body,
        headers={"Content-Type": "text/csv", "Accept": "text/csv"},
    )
    assert as_csv.status_code == 200, as_csv.text
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.headers[MODEL_VERSION_HEADER] == "v1"
    header, *lines = list(csv.reader(io.StringIO(as_csv.text)))
    classes = [str(label) for label in served.classifier.classes_]
    assert header == [*columns, "prediction", *(f"probability_{label}" for label in classes)]
    assert [line[: len(columns)] for line in lines] == [[str(row[c]) for c in columns] for row in rows]
    assert [line[len(columns)] for line in lines] == labels
    probabilities = [[float(cell) for cell in line[len(columns) + 1 :]] for line in lines]
    expected = [list(row.values()) for row in probabilities_of(served.classifier, iris_table, step=5)]
    assert probabilities == [close_to(row) for row in expected]

    only = api.post(
        path,
        params={"include_input": "false"},
        content=body,
        headers={"Content-Type": "text/csv", "Accept": "text/csv"},
    )
    assert list(csv.reader(io.StringIO(only.text))) == [["prediction"], *([label] for label in labels)]


def test_values_are_coerced_to_numbers_and_empty_data_answers_empty(
    api: httpx.Client, served: Served, iris_table: Table
) -> None:
    row = {name: str(value) for name, value in zip(iris_table.features, iris_table.X[0].tolist(), strict=True)}
    [entry] = ok(api.post(f"/predict/model/{served.classifier_name}", json={"data": [row]}))
    assert entry == {**row, "prediction": served.classifier.predict(iris_table.X[:1]).tolist()[0]}
    assert ok(api.post(f"/predict/model/{served.classifier_name}", json={"data": []})) == []


def test_bad_requests_name_what_is_wrong(api: httpx.Client, served: Served, made: Cleanup, iris_table: Table) -> None:
    path = f"/predict/model/{served.classifier_name}"
    rows = inputs(iris_table, step=50)

    missing = [{k: v for k, v in row.items() if k != "petal_width"} for row in rows]
    error = assert_error(api.post(path, json={"data": missing}), 400, "invalid_input")
    assert "petal_width" in error["message"]
    assert error["details"]["missing_columns"] == [{"column": "petal_width", "rows": [0, 1, 2], "count": 3}]

    bad_value = [rows[0], {**rows[1], "sepal_length": "long"}]
    error = assert_error(api.post(path, json={"data": bad_value}), 400, "invalid_input")
    assert error["details"] == {"row": 1, "column": "sepal_length"}

    assert_error(api.post(f"/predict/model/{made.model('nobody')}", json={"data": rows}), 404, "not_found")
    assert_error(api.post(path, json={"version": "v9", "data": rows}), 404, "not_found")
    assert_error(api.post(path, json={"rows": rows}), 422, "validation_error")
    assert_error(api.post(path, content=b'{"data": [1,'), 400, "invalid_json")
    assert_error(
        api.post(path, content=b"a,b\n1,2\n", headers={"Content-Type": "text/plain"}), 415, "unsupported_media_type"
    )


def test_a_model_without_feature_names_asks_for_feature_labels(
    api: httpx.Client, made: Cleanup, iris_table: Table
) -> None:
    name = made.model("no-labels")
    model = LogisticRegression(max_iter=1000).fit(iris_table.X, iris_table.y)
    ok(api.post(f"/models/{name}", json={"model": encoded(joblib_bytes(model))}))
    error = assert_error(
        api.post(f"/predict/model/{name}", json={"data": inputs(iris_table)[:2]}), 400, "invalid_input"
    )
    assert error["details"] == {"field": "parameters.feature_labels"}


def served_soon(predict: Callable[[], httpx.Response], done: Callable[[httpx.Response], bool]) -> httpx.Response:
    """The first answer that shows the change, polling for up to REVALIDATE_WAIT_SECONDS."""
    deadline = time.monotonic() + REVALIDATE_WAIT_SECONDS
    while not done(answer := predict()):
        assert time.monotonic() < deadline, f"not served within {REVALIDATE_WAIT_SECONDS} s; last: {answer.text}"
        time.sleep(0.25)
    return answer


def test_an_overwritten_then_deleted_version_is_served_soon_after(
    api: httpx.Client, made: Cleanup, diabetes_table: Table
) -> None:
    name = made.model("changing")
    before = LinearRegression().fit(diabetes_table.X, diabetes_table.y)
    after = Ridge(alpha=10.0).fit(diabetes_table.X, diabetes_table.y)
    labels = {"feature_labels": diabetes_table.features}
    rows = inputs(diabetes_table, step=100)

    def predict() -> httpx.Response:
        return api.post(f"/predict/model/{name}", json={"version": "v1", "data": rows, "include_input": False})

    def answers_like(model: LinearRegression | Ridge) -> Callable[[httpx.Response], bool]:
        expected = model.predict(diabetes_table.X[::100]).tolist()
        return lambda response: bool([entry["prediction"] for entry in ok(response)] == close_to(expected))

    ok(api.post(f"/models/{name}", json={"model": encoded(joblib_bytes(before)), "parameters": labels}))
    assert answers_like(before)(predict())  # now cached by a warm function
    replaced = {"model": encoded(joblib_bytes(after)), "version": "v1", "parameters": labels}
    ok(api.post(f"/models/{name}", json=replaced))
    served_soon(predict, answers_like(after))

    ok(api.delete(f"/models/{name}/v1"), 204)
    gone = served_soon(predict, lambda response: response.status_code != 200)
    assert_error(gone, 404, "not_found")
