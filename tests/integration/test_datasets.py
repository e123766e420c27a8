"""Datasets: upload through a presigned PUT, train on them by id; bodies over the limit get a 413."""

import csv
import io
import json

import pytest
import requests
from conftest import reset_cached_wiring

from lrnstak.storage.clients import AwsClients

from support.events import rest_v1_event
from support.functions import invoke


def create_dataset(dataset_format: str) -> dict[str, str]:
    response = invoke("TrainerFunction", rest_v1_event("POST", "/datasets", body={"format": dataset_format}))
    assert response.status == 201, response.raw_body
    return dict(response.json())


def csv_bytes(rows: int) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["size", "rooms", "district", "note", "price"])
    for i in range(rows):
        writer.writerow(
            [
                50 + i % 70,
                1 + i % 5,
                ["north", "south", "east"][i % 3],
                "" if i % 7 else "corner",
                1000 + 30 * (i % 70) + 7 * (i % 5),
            ]
        )
    return out.getvalue().encode()


def test_a_csv_dataset_trains_by_id_with_inferred_types(aws: AwsClients) -> None:
    dataset = create_dataset("csv")
    assert dataset["dataset_id"].endswith(".csv")
    assert dataset["expires_at"].endswith("Z")
    assert requests.put(dataset["upload_url"], data=csv_bytes(200), timeout=30).status_code == 200

    body = {"dataset": dataset["dataset_id"], "parameters": {"target_label": "price", "algorithm": "linear_regression"}}
    response = invoke("TrainerFunction", rest_v1_event("POST", "/train/houses", body=body))
    assert response.status == 200, response.raw_body
    metadata = response.json()["training_results"]["metadata"]
    assert metadata["task"] == "regression"
    assert metadata["rows"] == 200
    info = invoke("RegistryFunction", rest_v1_event("GET", "/models/houses/v1/info")).json()
    kinds = {feature["name"]: feature["kind"] for feature in info["feature_schema"]["features"]}
    assert kinds == {"size": "numeric", "rooms": "numeric", "district": "categorical", "note": "categorical"}


@pytest.mark.parametrize(
    ("dataset_format", "payload"),
    [
        ("json", json.dumps([{"x": i, "y": 2 * i + 1} for i in range(30)]).encode()),
        ("json", json.dumps({"training_data": [{"x": i, "y": 2 * i + 1} for i in range(30)]}).encode()),
        ("jsonl", "\n".join(json.dumps({"x": i, "y": 2 * i + 1}) for i in range(30)).encode()),
    ],
)
def test_json_and_json_lines_datasets_train(aws: AwsClients, dataset_format: str, payload: bytes) -> None:
    dataset = create_dataset(dataset_format)
    requests.put(dataset["upload_url"], data=payload, timeout=30).raise_for_status()
    body = {"dataset": dataset["dataset_id"], "parameters": {"target_label": "y", "algorithm": "linear_regression"}}
    response = invoke("TrainerFunction", rest_v1_event("POST", "/train/line", body=body))
    assert response.status == 200, response.raw_body
    assert response.json()["training_results"]["results"]["linear_regression"] < 1e-20


@pytest.mark.parametrize(
    "body",
    [
        {"dataset": "0" * 32 + ".csv", "parameters": {"target_label": "y"}},
        {"dataset": "not-an-id", "parameters": {"target_label": "y"}},
        {"dataset": "0" * 32 + ".csv", "async": True, "parameters": {"target_label": "y"}},
    ],
    ids=["never-uploaded", "malformed", "never-uploaded-async"],
)
def test_unknown_dataset_is_400_and_queues_nothing(aws: AwsClients, body: dict) -> None:
    response = invoke("TrainerFunction", rest_v1_event("POST", "/train/x", body=body))
    assert response.status == 400, response.raw_body
    assert "dataset" in response.json()["error"]["message"].lower()
    import os

    assert aws.dynamodb.scan(TableName=os.environ["JOBS_TABLE"])["Items"] == []


def test_rows_and_a_dataset_together_are_refused(aws: AwsClients) -> None:
    body = {"dataset": "0" * 32 + ".csv", "training_data": [{"y": 1}], "parameters": {"target_label": "y"}}
    response = invoke("TrainerFunction", rest_v1_event("POST", "/train/x", body=body))
    assert response.status == 400
    assert "not both" in response.json()["error"]["message"]


@pytest.mark.parametrize("dataset_format", ["xlsx", "CSV", ""])
def test_unsupported_dataset_formats_are_refused(aws: AwsClients, dataset_format: str) -> None:
    response = invoke("TrainerFunction", rest_v1_event("POST", "/datasets", body={"format": dataset_format}))
    assert response.status == 422
    assert response.json()["error"]["code"] == "validation_error"


def test_a_body_over_the_limit_is_413_pointing_to_datasets(aws: AwsClients, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_REQUEST_BYTES", "2000")
    reset_cached_wiring()
    rows = [{"x": i, "y": i} for i in range(200)]
    response = invoke(
        "TrainerFunction",
        rest_v1_event("POST", "/train/big", body={"training_data": rows, "parameters": {"target_label": "y"}}),
    )
    assert response.status == 413, response.raw_body
    error = response.json()["error"]
    assert error["code"] == "too_large"
    assert "/datasets" in error["message"]
    assert error["details"] == {"limit_bytes": 2000}
