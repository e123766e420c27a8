"""Batch predictions through the predict and jobs-worker Lambda handlers against moto, in process: a dataset
uploaded through POST /datasets, a 202 job pinned to a version, an output file equal to direct predictions."""

import csv
import io
import json
from typing import Any

import pytest
import requests
from sklearn.datasets import load_iris

from lrnstak.storage.clients import AwsClients

from support.events import rest_v1_event
from support.functions import LambdaResponse, invoke
from support.jobs import jobs_queue, receive, run_queued_jobs, run_worker
from support.models import model_b64

IRIS = load_iris()
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
IRIS_ROWS = [
    {**dict(zip(FEATURES, map(float, x), strict=True)), "species": str(IRIS.target_names[y])}
    for x, y in zip(IRIS.data, IRIS.target, strict=True)
]


def upload_dataset(dataset_format: str, data: bytes) -> str:
    response = invoke("TrainerFunction", rest_v1_event("POST", "/datasets", body={"format": dataset_format}))
    assert response.status == 201, response.raw_body
    assert requests.put(response.json()["upload_url"], data=data, timeout=30).status_code == 200
    return str(response.json()["dataset_id"])


def iris_csv(rows: list[dict[str, Any]], columns: list[str]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def train_iris(name: str = "iris", algorithm: str = "logistic_regression") -> None:
    body = {"training_data": IRIS_ROWS, "parameters": {"target_label": "species", "algorithm": algorithm}}
    response = invoke("TrainerFunction", rest_v1_event("POST", f"/train/{name}", body=body))
    assert response.status == 200, response.raw_body


def submit(name: str, body: dict[str, Any]) -> LambdaResponse:
    return invoke("PredictFunction", rest_v1_event("POST", f"/predict/model/{name}/batch", body=body))


def accepted(response: LambdaResponse) -> str:
    assert response.status == 202, response.raw_body
    job_id = str(response.json()["job_id"])
    assert response.json() == {"job_id": job_id, "status": "queued", "links": {"self": f"/prod/predict/jobs/{job_id}"}}
    assert response.headers["location"] == f"/prod/predict/jobs/{job_id}"
    return job_id


def prediction_job(job_id: str) -> dict[str, Any]:
    response = invoke("PredictFunction", rest_v1_event("GET", f"/predict/jobs/{job_id}"))
    assert response.status == 200, response.raw_body
    return dict(response.json())


def direct(name: str, rows: list[dict[str, Any]], **options: Any) -> list[dict[str, Any]]:
    response = invoke(
        "PredictFunction", rest_v1_event("POST", f"/predict/model/{name}", body={"data": rows, **options})
    )
    assert response.status == 200, response.raw_body
    return list(response.json())


def output_of(job: dict[str, Any]) -> bytes:
    assert job["status"] == "succeeded", job
    download = requests.get(job["output"]["url"], timeout=30)
    assert download.status_code == 200
    return download.content


def error_of(response: LambdaResponse, status: int) -> dict[str, Any]:
    assert response.status == status, response.raw_body
    return dict(response.json()["error"])


def test_a_csv_dataset_predicts_as_a_job_whose_csv_output_equals_direct_predictions(aws: AwsClients) -> None:
    train_iris()
    dataset = upload_dataset("csv", iris_csv(IRIS_ROWS, [*FEATURES, "species"]))
    job_id = accepted(submit("iris", {"dataset": dataset, "probabilities": True}))

    queued = prediction_job(job_id)
    assert (queued["status"], queued["model"], queued["version"], queued["output"]) == ("queued", "iris", "v1", None)
    assert run_queued_jobs(aws) == 1

    done = prediction_job(job_id)
    assert done["progress"] == 1
    assert done["output"]["format"] == "csv"
    assert done["output"]["rows"] == 150
    assert done["output"]["url_expires_at"].endswith("Z")
    lines = list(csv.DictReader(io.StringIO(output_of(done).decode())))
    expected = direct("iris", IRIS_ROWS, probabilities=True)
    classes = sorted(expected[0]["probabilities"])
    assert list(lines[0]) == [*FEATURES, "species", "prediction", *(f"probability_{c}" for c in classes)]
    assert [line["prediction"] for line in lines] == [entry["prediction"] for entry in expected]
    for line, entry in zip(lines, expected, strict=True):
        assert [float(line[f"probability_{c}"]) for c in classes] == [entry["probabilities"][c] for c in classes]
        assert [float(line[name]) for name in FEATURES] == [entry[name] for name in FEATURES]


def test_a_json_dataset_gives_json_lines_equal_to_direct_predictions_for_an_uploaded_model(aws: AwsClients) -> None:
    from sklearn.linear_model import LinearRegression

    regression = LinearRegression().fit(IRIS.data[:, :3], IRIS.data[:, 3])
    body = {"model": model_b64(regression), "parameters": {"feature_labels": FEATURES[:3]}}
    uploaded = invoke("RegistryFunction", rest_v1_event("POST", "/models/petals", body=body))
    assert uploaded.status == 200, uploaded.raw_body
    rows = [{name: row[name] for name in FEATURES[:3]} | {"id": index} for index, row in enumerate(IRIS_ROWS)]
    dataset = upload_dataset("json", json.dumps(rows).encode())
    job_id = accepted(submit("petals", {"dataset": dataset, "include_input": False}))
    run_queued_jobs(aws)

    done = prediction_job(job_id)
    assert done["output"]["format"] == "jsonl"
    entries = [json.loads(line) for line in output_of(done).decode().splitlines()]
    assert entries == [{"prediction": p} for p in regression.predict(IRIS.data[:, :3]).tolist()]
    assert entries == direct("petals", rows, include_input=False)


def test_the_version_is_pinned_when_the_job_is_submitted(aws: AwsClients) -> None:
    train_iris("pinned", "logistic_regression")
    dataset = upload_dataset("csv", iris_csv(IRIS_ROWS, FEATURES))
    job_id = accepted(submit("pinned", {"dataset": dataset, "format": "jsonl"}))
    train_iris("pinned", "decision_tree")  # v2 becomes latest before the job runs
    run_queued_jobs(aws)

    done = prediction_job(job_id)
    assert done["version"] == "v1"
    entries = [json.loads(line) for line in output_of(done).decode().splitlines()]
    rows = [{name: row[name] for name in FEATURES} for row in IRIS_ROWS]
    assert entries == direct("pinned", rows, version="v1")
    assert entries != direct("pinned", rows, version="v2")  # the tree fits iris exactly; the regression does not


@pytest.mark.parametrize(
    ("name", "body", "status", "words"),
    [
        ("missing", {"dataset": "0" * 32 + ".csv"}, 404, "does not exist"),
        ("iris", {"dataset": "0" * 32 + ".csv", "version": "v9"}, 404, "v9"),
        ("iris", {"dataset": "0" * 32 + ".csv"}, 400, "has not been uploaded"),
        ("iris", {"dataset": "not-a-dataset"}, 400, "POST /datasets"),
        ("iris", {"dataset": "0" * 32 + ".csv", "format": "parquet"}, 422, "format"),
        ("iris", {}, 422, "dataset"),
    ],
)
def test_a_batch_that_cannot_run_is_refused_before_any_job(
    aws: AwsClients, name: str, body: dict[str, Any], status: int, words: str
) -> None:
    train_iris()
    response = submit(name, body)
    assert words in json.dumps(error_of(response, status))
    assert receive(aws, jobs_queue()) == []


def test_probabilities_from_a_model_without_them_are_refused_at_submit(aws: AwsClients) -> None:
    from sklearn.linear_model import LinearRegression

    regression = LinearRegression().fit(IRIS.data, IRIS.target)
    body = {"model": model_b64(regression), "parameters": {"feature_labels": FEATURES}}
    assert invoke("RegistryFunction", rest_v1_event("POST", "/models/plain", body=body)).status == 200
    dataset = upload_dataset("csv", iris_csv(IRIS_ROWS, FEATURES))
    assert "predict_proba" in error_of(submit("plain", {"dataset": dataset, "probabilities": True}), 400)["message"]


def test_a_bad_row_fails_the_job_naming_its_row_in_the_dataset(aws: AwsClients) -> None:
    train_iris()
    rows = [dict(row) for row in IRIS_ROWS] * 50  # 7,500 rows: the bad one is in the second chunk
    rows[6_001] = {**rows[6_001], "petal_width": "wide"}
    dataset = upload_dataset("json", json.dumps(rows).encode())
    job_id = accepted(submit("iris", {"dataset": dataset}))
    run_queued_jobs(aws)

    failed = prediction_job(job_id)
    assert failed["status"] == "failed"
    assert failed["output"] is None
    assert failed["error"]["code"] == "invalid_input"
    assert "Row 6001, column 'petal_width'" in failed["error"]["message"]


def test_a_deleted_version_fails_the_job_with_the_reason(aws: AwsClients) -> None:
    train_iris()
    dataset = upload_dataset("csv", iris_csv(IRIS_ROWS, FEATURES))
    job_id = accepted(submit("iris", {"dataset": dataset}))
    assert invoke("RegistryFunction", rest_v1_event("DELETE", "/models/iris/v1")).status in (200, 204)
    run_queued_jobs(aws)

    failed = prediction_job(job_id)
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "not_found"


def test_training_and_prediction_jobs_are_kept_apart(aws: AwsClients) -> None:
    train_iris()
    dataset = upload_dataset("csv", iris_csv(IRIS_ROWS, FEATURES))
    job_id = accepted(submit("iris", {"dataset": dataset}))
    training_job = invoke("TrainerFunction", rest_v1_event("GET", f"/train/jobs/{job_id}"))
    assert training_job.status == 404
    listed = invoke("TrainerFunction", rest_v1_event("GET", "/train/jobs", query={"model": "iris"}))
    assert listed.json() == []
    assert invoke("PredictFunction", rest_v1_event("GET", "/predict/jobs/" + "0" * 32)).status == 404
    assert invoke("PredictFunction", rest_v1_event("GET", "/predict/jobs/nonsense")).status == 404


def test_a_redelivered_message_does_not_run_a_finished_job_again(aws: AwsClients) -> None:
    train_iris()
    dataset = upload_dataset("csv", iris_csv(IRIS_ROWS, FEATURES))
    job_id = accepted(submit("iris", {"dataset": dataset}))
    message = receive(aws, jobs_queue(), visibility=0)[0]
    assert run_worker(aws, message) == {"batchItemFailures": []}
    finished = prediction_job(job_id)
    assert run_worker(aws, message) == {"batchItemFailures": []}
    again = prediction_job(job_id)
    assert (again["status"], again["finished_at"]) == ("succeeded", finished["finished_at"])
