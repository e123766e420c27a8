"""The trainer over HTTP: training now and as a job, from rows and from an uploaded dataset.

Scores depend on scikit-learn's numerics, so they are checked for shape and sense, not for exact values.
"""

import csv
import io
import json
import time
from typing import Any

import httpx
import pytest

from .helpers import MODEL_VERSION_HEADER, Cleanup, Names, Table, assert_error, ok

JOB_TIMEOUT_SECONDS = 120
CLASSIFICATION_METRICS = {"accuracy", "precision", "recall", "f1", "log_loss"}
REGRESSION_METRICS = {"mse", "mae", "r2", "rmse"}


def accepted(response: httpx.Response) -> str:
    """The 202 of a request that continues as a job: its id."""
    body = ok(response, 202)
    job_id = str(body["job_id"])
    assert body == {"job_id": job_id, "status": "queued", "links": {"self": f"/train/jobs/{job_id}"}}
    assert response.headers["location"].endswith(f"/train/jobs/{job_id}")
    return job_id


def finished(api: httpx.Client, job_id: str) -> dict[str, Any]:
    """The job once it has succeeded or failed; its status never goes back on the way."""
    order = ["queued", "running", "succeeded"]
    seen: list[str] = []
    deadline = time.monotonic() + JOB_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        job: dict[str, Any] = ok(api.get(f"/train/jobs/{job_id}"))
        assert job["job_id"] == job_id
        if job["status"] == "failed":
            return job
        seen.append(job["status"])
        assert seen == sorted(seen, key=order.index), seen
        if job["status"] == "succeeded":
            return job
        time.sleep(0.25)
    raise AssertionError(f"job {job_id} did not finish in {JOB_TIMEOUT_SECONDS} s; seen {seen}")


def train_request(table: Table, algorithm: str | list[str] | None = None, **fields: Any) -> dict[str, Any]:
    parameters: dict[str, Any] = {"target_label": table.target}
    if algorithm is not None:
        parameters["algorithm"] = algorithm
    return {"training_data": table.rows(), "parameters": parameters, **fields}


def predicted(api: httpx.Client, name: str, table: Table) -> list[Any]:
    entries = ok(api.post(f"/predict/model/{name}", json={"data": table.rows(with_target=False)}))
    return [entry["prediction"] for entry in entries]


def test_training_now_registers_a_version_that_predicts(api: httpx.Client, made: Cleanup, iris_table: Table) -> None:
    name = made.model("sync")
    body = train_request(iris_table, "logistic_regression")
    body["parameters"]["metadata"] = {"suite": "public-api"}
    answer = ok(api.post(f"/train/{name}", json=body))

    assert answer["message"] == f"Model {name}_v1 trained and saved."
    assert (answer["model"], answer["version"], answer["algorithm"]) == (name, "v1", "logistic_regression")
    results = answer["training_results"]
    metadata = results["metadata"]
    assert metadata["suite"] == "public-api"
    assert metadata["task"] == "classification"
    assert metadata["rows"] == len(iris_table.y)
    assert metadata["training_rows"] + metadata["holdout_rows"] == len(iris_table.y)
    assert metadata["features"] == iris_table.features
    [score] = results["scores"]
    assert score["iteration"] == 1
    assert score["algorithm"] == "logistic_regression"
    assert set(score) >= CLASSIFICATION_METRICS
    assert results["results"] == {"logistic_regression": score["accuracy"]}

    info = ok(api.get(f"/models/{name}/v1/info"))
    assert info["algorithm"] == "logistic_regression"
    assert info["metadata"] == {"suite": "public-api"}
    assert info["metrics"]["accuracy"] == score["accuracy"]

    labels = predicted(api, name, iris_table)
    assert set(labels) <= set(iris_table.y)  # the classes keep their training type: the species names
    assert sum(a == b for a, b in zip(labels, iris_table.y, strict=True)) / len(labels) > 0.9


def test_the_long_route_takes_versions_options_and_extra_data(
    api: httpx.Client, made: Cleanup, iris_table: Table
) -> None:
    name = made.model("long-route")
    rows = iris_table.rows()
    body = {
        "data": rows[::2],  # the old stack's name for training_data
        "testing_data": rows[1::4],
        "validation_data": rows[3::4],
        "version": "2026.1",
        "parameters": {
            "target_label": "species",
            "task": "classification",
            "algorithm": "knn",
            "hyper": {"knn": {"n_neighbors": 7}},
            "split": {"test_size": 0.25, "random_state": 7},
            "cv": 3,
        },
    }
    answer = ok(api.post(f"/train/model/{name}", json=body))
    assert (answer["version"], answer["algorithm"]) == ("2026.1", "knn")
    results = answer["training_results"]
    assert [score["iteration"] for score in results["scores"]] == [1, 2, 3]
    assert results["metadata"]["rows"] == len(rows[::2])
    assert results["cv"]["knn"]["k"] == 3
    assert len(results["cv"]["knn"]["scores"]) == 3
    assert ok(api.get(f"/models/{name}/2026.1/info"))["parameters"]["hyper"] == {"knn": {"n_neighbors": 7}}

    assert ok(api.post(f"/train/{name}", json=train_request(iris_table, "naive_bayes")))["version"] == "v1"


def test_without_an_algorithm_the_best_candidate_on_the_holdout_is_kept(
    api: httpx.Client, made: Cleanup, diabetes_table: Table
) -> None:
    name = made.model("candidates")
    answer = ok(api.post(f"/train/{name}", json=train_request(diabetes_table)))
    results = answer["training_results"]
    assert results["metadata"]["task"] == "regression"
    assert len(results["results"]) > 1
    assert answer["algorithm"] == min(results["results"], key=results["results"].get)  # lowest mse
    assert {score["algorithm"] for score in results["scores"]} == set(results["results"])
    assert all(set(score) >= REGRESSION_METRICS for score in results["scores"])
    response = api.post(f"/predict/model/{name}", json={"data": diabetes_table.rows(with_target=False, step=50)})
    assert response.headers[MODEL_VERSION_HEADER] == "v1"
    assert all(isinstance(entry["prediction"], float) for entry in ok(response))


@pytest.mark.parametrize("how", ["async-field", "prefer-header"])
def test_a_job_trains_in_the_background_to_a_version(
    api: httpx.Client, made: Cleanup, iris_table: Table, how: str
) -> None:
    name = made.model(f"job-{how}")
    body = train_request(iris_table, "decision_tree")
    if how == "async-field":
        response = api.post(f"/train/{name}", json={**body, "async": True})
    else:
        response = api.post(f"/train/model/{name}", json=body, headers={"Prefer": "respond-async"})
    job_id = accepted(response)

    job = finished(api, job_id)
    assert job["status"] == "succeeded", job
    assert (job["model"], job["version"], job["progress"], job["error"]) == (name, "v1", 1.0, None)
    assert job["created_at"] <= job["started_at"] <= job["finished_at"]
    assert job["training_results"]["results"].keys() == {"decision_tree"}

    info = ok(api.get(f"/models/{name}/v1/info"))
    assert info["algorithm"] == "decision_tree"
    listed = ok(api.get("/train/jobs", params={"model": name}))
    assert [(entry["job_id"], entry["status"]) for entry in listed] == [(job_id, "succeeded")]
    assert len(predicted(api, name, iris_table)) == len(iris_table.y)


def test_a_job_that_cannot_train_fails_with_the_reason(api: httpx.Client, made: Cleanup, iris_table: Table) -> None:
    name = made.model("job-fails")
    body = train_request(iris_table, "logistic_regression", **{"async": True})
    body["parameters"]["target_label"] = "no_such_column"
    response = api.post(f"/train/{name}", json=body)
    if response.status_code == 400:  # checked before queueing: as good an answer
        assert_error(response, 400, "invalid_input")
        return
    job = finished(api, accepted(response))
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "invalid_input"
    assert "no_such_column" in job["error"]["message"]
    assert_error(api.get(f"/models/{name}"), 404, "not_found")


def csv_file(table: Table) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow([*table.features, table.target])
    writer.writerows([*(row[name] for name in table.features), row[table.target]] for row in table.rows())
    return text.getvalue().encode()


def jsonl_file(table: Table) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in table.rows()).encode()


@pytest.mark.parametrize("format", ["csv", "jsonl"])
def test_a_dataset_uploaded_to_its_url_trains_a_model(
    api: httpx.Client, made: Cleanup, iris_table: Table, format: str
) -> None:
    name = made.model(f"dataset-{format}")
    dataset = ok(api.post("/datasets", json={"format": format}), 201)
    assert set(dataset) == {"dataset_id", "upload_url", "expires_at"}
    content = csv_file(iris_table) if format == "csv" else jsonl_file(iris_table)
    uploaded = httpx.put(dataset["upload_url"], content=content, timeout=60)  # presigned: no API key
    assert uploaded.status_code == 200, uploaded.text

    body = {"dataset": dataset["dataset_id"], "parameters": {"target_label": "species", "algorithm": "knn"}}
    answer = ok(api.post(f"/train/{name}", json=body))
    metadata = answer["training_results"]["metadata"]
    assert (metadata["rows"], metadata["features"], metadata["task"]) == (150, iris_table.features, "classification")
    labels = predicted(api, name, iris_table)
    assert sum(a == b for a, b in zip(labels, iris_table.y, strict=True)) / len(labels) > 0.9


def test_an_idempotency_key_answers_a_retry_without_training_again(
    api: httpx.Client, made: Cleanup, names: Names, iris_table: Table
) -> None:
    name = made.model("idempotent")
    key = names.new("idempotency-key")  # keys are remembered for an hour, by everybody's requests
    body = train_request(iris_table, "logistic_regression")
    first = ok(api.post(f"/train/{name}", json=body, headers={"Idempotency-Key": key}))
    again = ok(api.post(f"/train/{name}", json=body, headers={"Idempotency-Key": key}))
    assert (again["version"], again["message"]) == (first["version"], first["message"])
    assert [entry["version"] for entry in ok(api.get(f"/models/{name}"))["versions"]] == ["v1"]

    other = {**body, "version": "v2"}
    assert_error(api.post(f"/train/{name}", json=other, headers={"Idempotency-Key": key}), 400, "invalid_input")
    assert [entry["version"] for entry in ok(api.get(f"/models/{name}"))["versions"]] == ["v1"]


def test_bad_training_requests_say_what_to_fix(api: httpx.Client, made: Cleanup, iris_table: Table) -> None:
    name = made.model("train-bad-requests")
    rows = iris_table.rows()

    error = assert_error(api.post(f"/train/{name}", json={"data": rows, "parameters": {}}), 422, "validation_error")
    assert {"field": "parameters.target_label", "problem": "Field required"} in error["details"]
    body = {"data": rows, "parameters": {"target_label": "colour"}}
    error = assert_error(api.post(f"/train/{name}", json=body), 400, "invalid_input")
    assert "colour" in error["message"]
    body = {"data": rows, "parameters": {"target_label": "species", "algorithm": "magic"}}
    error = assert_error(api.post(f"/train/{name}", json=body), 400, "invalid_input")
    assert "logistic_regression" in error["details"]["valid"]
    body = {"dataset": f"{name}.csv", "parameters": {"target_label": "species"}}
    assert_error(api.post(f"/train/{name}", json=body), 400, "invalid_input")
    assert_error(api.post(f"/train/{name}", content=b"[1, 2"), 400, "invalid_json")
    assert_error(api.post("/datasets", json={"format": "xml"}), 422, "validation_error")
    assert_error(api.get(f"/models/{name}"), 404, "not_found")  # nothing was registered

    assert_error(api.get(f"/train/jobs/{name}"), 404, "not_found")
    assert ok(api.get("/train/jobs", params={"model": name})) == []
    assert_error(api.get("/train/jobs", params={"limit": 0}), 422, "validation_error")
