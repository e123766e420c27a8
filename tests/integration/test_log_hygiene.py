"""Logs never carry what users put here: no row data, no model bytes, no cache values, at INFO (the
deployed level), on success and on refusal. Every value sent below carries a marker; the functions' output
(Powertools writes JSON lines to stdout, metrics included) must not contain any of them."""

import base64
import json
from typing import Any

import pytest

from lrnstak.storage.clients import AwsClients

from support.events import rest_v1_event
from support.functions import LambdaResponse, invoke
from support.jobs import run_queued_jobs
from support.models import joblib_bytes, linear_regression

MARK = "zq7MARKqz"


def rows(count: int) -> list[dict[str, Any]]:
    return [{"x": float(i), "shop": f"{MARK}-shop-{i % 3}", "y": 2.0 * i + 1} for i in range(count)]


def call(function: str, method: str, path: str, body: Any = None, **extra: Any) -> LambdaResponse:
    return invoke(function, rest_v1_event(method, path, body=body, **extra))


def test_no_user_data_reaches_the_logs(aws: AwsClients, capfd: pytest.CaptureFixture[str]) -> None:
    parameters = {"target_label": "y", "algorithm": "linear_regression"}
    assert (
        call("TrainerFunction", "POST", "/train/shops", {"training_data": rows(40), "parameters": parameters}).status
        == 200
    )
    assert (
        call(
            "TrainerFunction",
            "POST",
            "/train/shops-job",
            {"training_data": rows(40), "parameters": parameters, "async": True},
        ).status
        == 202
    )
    run_queued_jobs(aws)
    served = call("PredictFunction", "POST", "/predict/model/shops", {"data": rows(5)})
    assert served.status == 200
    refused = call("PredictFunction", "POST", "/predict/model/shops", {"data": [{"x": f"{MARK}-nan", "shop": "a"}]})
    assert refused.status == 400
    assert MARK in refused.raw_body.decode()  # the client is told; the logs are not
    assert call("PredictFunction", "POST", "/predict/model/shops", {"data": [{MARK: 1}]}).status == 400

    model = joblib_bytes(linear_regression(3))
    upload = {
        "model": base64.b64encode(model).decode(),
        "parameters": {"feature_labels": ["a", "b", "c"]},
        "training_data": [{"a": 1, "b": 2, "c": 3, "note": MARK}],
    }
    assert call("RegistryFunction", "POST", "/models/uploaded", upload).status == 200
    assert call("RegistryFunction", "GET", "/models/uploaded/v1/training_data").status in (200, 404)

    assert call("CacheFunction", "PUT", "/cache/secret", {"value": {"token": f"{MARK}-value"}}).status in (200, 201)
    assert MARK in call("CacheFunction", "GET", "/cache/secret").raw_body.decode()
    assert call("CacheFunction", "POST", "/cache/push/queue", {"value": f"{MARK}-element"}).status < 500
    assert call("CacheFunction", "PUT", "/cache/bad", {"value": f"{MARK}" * 10, "ttl": -5}).status == 400

    output = capfd.readouterr()
    logged = output.out + output.err
    assert "ModelTrained" in logged  # the capture works: metrics lines are there
    assert MARK not in logged
    assert base64.b64encode(model).decode()[:40] not in logged
    for line in output.out.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            assert record.get("level", "INFO") != "DEBUG", record
