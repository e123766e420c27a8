"""The registry function through its Lambda handler, with API Gateway events, against a moto account.

Covers the contract old clients rely on: every route with REST (v1) events, the main flow with HTTP API (v2)
events on the `$default` and a named stage, bodies without or with odd Content-Types, paging, `latest`,
overwrites, the byte-exact round trip, /best and deletes.
"""

import base64
import hashlib
import io
import json
import os
from typing import Any
from urllib.parse import unquote, urlparse

import joblib
import numpy as np
import pytest
import requests
import sklearn
from conftest import reset_cached_wiring

from lrnstak.storage.clients import AwsClients

from support.events import http_v2_event, rest_v1_event
from support.functions import LambdaResponse, invoke, invoke_traced
from support.models import joblib_bytes, linear_regression, logistic_regression, model_b64

FUNCTION = "RegistryFunction"
PARAMETERS = {"target_label": "y", "feature_labels": ["a", "b", "c"]}
PROBE = np.array([[0.1, 0.2, 0.3], [1.0, -1.0, 2.0], [-3.0, 0.5, 0.0]])


# helpers ---------------------------------------------------------------------------------------------------


def call(method: str, path: str, body: Any = None, **options: Any) -> LambdaResponse:
    """The handler invoked with a fresh request id (support.functions.invoke_traced); errors in the one shape."""
    response, request_id = invoke_traced(FUNCTION, method, path, body, **options)
    if response.status >= 400:
        assert_error_shape(response, request_id)
    return response


def assert_error_shape(response: LambdaResponse, request_id: str) -> None:
    body = response.json()
    assert set(body) == {"error", "request_id"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert isinstance(body["error"]["code"], str)
    assert body["error"]["code"]
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    assert body["request_id"] == request_id


def assert_error(response: LambdaResponse, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status == status, (response.status, response.raw_body)
    error: dict[str, Any] = response.json()["error"]
    if code is not None:
        assert error["code"] == code, error
    return error


def upload(
    name: str,
    estimator: object | None = None,
    *,
    version: str | None = None,
    parameters: dict[str, Any] | None = None,
    shape: str = "v1",
    stage: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model_b64(estimator), "parameters": parameters or PARAMETERS, **extra}
    if version is not None:
        body["version"] = version
    response = call("POST", f"/models/{name}", body, shape=shape, stage=stage, headers=headers)
    assert response.status == 200, (response.status, response.raw_body)
    result: dict[str, Any] = response.json()
    return result


def ok(response: LambdaResponse) -> Any:
    assert response.status == 200, (response.status, response.raw_body)
    return response.json()


def bucket_keys(aws: AwsClients, prefix: str = "") -> list[str]:
    bucket = bucket_name()
    listed = aws.s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(obj["Key"] for obj in listed.get("Contents", []))


def bucket_name() -> str:
    return os.environ["MODELS_BUCKET"]


def table_items(aws: AwsClients, model: str | None = None) -> list[dict[str, Any]]:
    items = aws.dynamodb.scan(TableName=os.environ["REGISTRY_TABLE"], ConsistentRead=True)["Items"]
    if model is None:
        return items
    return [item for item in items if item["pk"]["S"] == f"MODEL#{model}"]


def predictions(estimator: Any) -> np.ndarray:
    return np.asarray(estimator.predict(PROBE))


# health ----------------------------------------------------------------------------------------------------


def test_health(aws: AwsClients) -> None:
    for path in ("/health", "/health/registry"):
        body = ok(call("GET", path))
        assert body["status"] == "ok"
        assert body["function"] == "registry"


# upload, read, list (REST v1) ------------------------------------------------------------------------------


def test_upload_answers_message_model_version_and_sha256(aws: AwsClients) -> None:
    data = joblib_bytes(linear_regression(3))
    response = call(
        "POST",
        "/models/house-prices",
        {"model": base64.b64encode(data).decode(), "version": "2024.1", "parameters": PARAMETERS},
    )
    body = ok(response)
    assert body["message"] == "Model uploaded successfully"
    assert body["model"] == "house-prices"
    assert body["version"] == "2024.1"
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    # One artifact object and the version + summary items were written.
    assert len(bucket_keys(aws, "artifacts/house-prices/")) == 1
    assert {item["sk"]["S"] for item in table_items(aws, "house-prices")} == {"SUMMARY", "VERSION#2024.1"}


def test_round_trip_is_byte_exact_and_predicts_like_the_original(aws: AwsClients) -> None:
    estimator = linear_regression(7)
    data = joblib_bytes(estimator)
    parameters = {**PARAMETERS, "metadata": {"team": "pricing"}}
    ok(call("POST", "/models/rt", {"model": base64.b64encode(data).decode(), "parameters": parameters}))

    body = ok(call("GET", "/models/rt/v1"))
    assert set(body) == {"model", "parameters"}
    downloaded = base64.b64decode(body["model"])
    assert downloaded == data
    assert body["parameters"] == parameters

    info = ok(call("GET", "/models/rt/v1/info"))
    assert info["sha256"] == hashlib.sha256(downloaded).hexdigest()
    assert info["size"] == len(data)

    loaded = joblib.load(io.BytesIO(downloaded))
    np.testing.assert_array_equal(predictions(loaded), predictions(estimator))


def test_classifier_round_trip_predicts_the_same_classes(aws: AwsClients) -> None:
    estimator = logistic_regression()
    upload("clf", estimator, version="c1", parameters={"target_label": "label", "feature_labels": ["x1", "x2"]})
    downloaded = base64.b64decode(ok(call("GET", "/models/clf/c1"))["model"])
    probe = np.array([[1.0, 0.0], [-1.0, 0.3], [0.2, 5.0]])
    np.testing.assert_array_equal(joblib.load(io.BytesIO(downloaded)).predict(probe), estimator.predict(probe))
    assert ok(call("GET", "/models/clf/c1/info"))["parameters"]["target_label"] == "label"


def test_info_has_every_documented_field(aws: AwsClients) -> None:
    training_results = {"scores": [{"iteration": 1, "algorithm": "LinearRegression", "mse": 0.25}], "best": 1}
    parameters = {**PARAMETERS, "metadata": {"fold": 3, "owner": "ana"}}
    saved = upload("info-m", version="v1", parameters=parameters, training_results=training_results)

    info = ok(call("GET", "/models/info-m/v1/info"))
    expected = {
        "parameters",
        "training_scores",
        "created_at",
        "updated_at",
        "size",
        "sha256",
        "sklearn_version",
        "metadata",
    }
    assert expected <= set(info)
    assert info["parameters"] == parameters
    assert info["training_scores"] == training_results
    assert info["metadata"] == {"fold": 3, "owner": "ana"}
    assert info["sha256"] == saved["sha256"]
    assert info["sklearn_version"] == sklearn.__version__
    assert info["size"] > 0
    assert info["created_at"] == info["updated_at"]
    assert info["created_at"].endswith("Z")


def test_training_data_returns_the_uploaded_rows(aws: AwsClients) -> None:
    rows = [{"a": 1, "b": 2.5, "c": "x", "y": 0}, {"a": 2, "b": -1.0, "c": "z", "y": 1}]
    upload("td", version="v1", training_data=rows)
    body = ok(call("GET", "/models/td/v1/training_data"))
    assert body == {"parameters": PARAMETERS, "training_data": rows}


def test_training_data_falls_back_to_data(aws: AwsClients) -> None:
    rows = [[1, 2, 3, 4], [5, 6, 7, 8]]
    upload("td2", version="v1", data=rows)
    assert ok(call("GET", "/models/td2/v1/training_data"))["training_data"] == rows


def test_training_data_wins_over_data_when_both_are_sent(aws: AwsClients) -> None:
    upload("td3", version="v1", data=[{"from": "data"}], training_data=[{"from": "training_data"}])
    assert ok(call("GET", "/models/td3/v1/training_data"))["training_data"] == [{"from": "training_data"}]


def test_training_data_of_a_version_uploaded_without_rows_is_empty(aws: AwsClients) -> None:
    upload("td4", version="v1")
    assert ok(call("GET", "/models/td4/v1/training_data")) == {"parameters": PARAMETERS, "training_data": []}


def test_list_versions_newest_first_with_documented_fields(aws: AwsClients) -> None:
    upload("lv", version="first", training_results={"mse": 1.5, "r2": 0.5})
    upload("lv", version="second", training_results={"mse": 0.5})
    upload("lv", version="third")
    body = ok(call("GET", "/models/lv"))
    assert body["model"] == "lv"
    assert [entry["version"] for entry in body["versions"]] == ["third", "second", "first"]
    for entry in body["versions"]:
        assert {"version", "created_at", "size", "algorithm", "metrics"} <= set(entry)
        assert entry["algorithm"] == "LinearRegression"
        assert entry["size"] > 0
    created = [entry["created_at"] for entry in body["versions"]]
    assert created == sorted(created, reverse=True)
    assert body["versions"][2]["metrics"] == {"mse": 1.5, "r2": 0.5}
    assert body["versions"][1]["metrics"] == {"mse": 0.5}
    assert body["versions"][0]["metrics"] == {}


def test_list_models_sorted_by_name_with_versions_latest_and_updated_at(aws: AwsClients) -> None:
    upload("zeta", version="v1")
    upload("alpha", version="a")
    upload("alpha", version="b")
    upload("Mid", version="v1")
    body = ok(call("GET", "/models"))
    assert [entry["model"] for entry in body] == ["Mid", "alpha", "zeta"]
    alpha = body[1]
    assert set(alpha) == {"model", "versions", "latest", "updated_at"}
    assert alpha["versions"] == ["a", "b"]
    assert alpha["latest"] == "b"
    assert alpha["updated_at"].endswith("Z")
    assert "x-next-token" not in call("GET", "/models").headers


def test_list_models_when_empty_is_an_empty_list(aws: AwsClients) -> None:
    response = call("GET", "/models")
    assert ok(response) == []
    assert "x-next-token" not in response.headers


def test_names_and_versions_of_128_characters_are_accepted(aws: AwsClients) -> None:
    name = "N" + "a1._-" * 25 + "xy"  # 128 characters, every allowed symbol
    version = "7" * 128
    assert len(name) == 128
    saved = upload(name, version=version)
    assert (saved["model"], saved["version"]) == (name, version)
    assert ok(call("GET", f"/models/{name}/{version}/info"))["sha256"] == saved["sha256"]


# paging ----------------------------------------------------------------------------------------------------


def test_paging_with_limit_and_next_token(aws: AwsClients) -> None:
    names = ["zeta", "Alpha", "beta", "9lives", "gamma.2", "gamma-1", "delta_x"]
    for name in names:
        upload(name, version="v1")

    pages: list[list[str]] = []
    token: str | None = None
    for _ in range(5):
        query = {"limit": "3"} if token is None else {"limit": "3", "next_token": token}
        response = call("GET", "/models", query=query)
        pages.append([entry["model"] for entry in ok(response)])
        token = response.headers.get("x-next-token")
        if token is None:
            break
    assert [len(page) for page in pages] == [3, 3, 1]
    flat = [name for page in pages for name in page]
    assert flat == sorted(names)
    assert len(set(flat)) == len(flat)


def test_limit_equal_to_the_number_of_models_gives_no_token(aws: AwsClients) -> None:
    for name in ("m1", "m2", "m3"):
        upload(name, version="v1")
    response = call("GET", "/models", query={"limit": "3"})
    assert [entry["model"] for entry in ok(response)] == ["m1", "m2", "m3"]
    assert "x-next-token" not in response.headers


def test_default_limit_is_100(aws: AwsClients) -> None:
    # Summaries are written directly: 101 uploads through the handler would be slow for what is tested here.
    for index in range(101):
        name = f"m{index:03d}"
        aws.dynamodb.put_item(
            TableName=os.environ["REGISTRY_TABLE"],
            Item={
                "pk": {"S": f"MODEL#{name}"},
                "sk": {"S": "SUMMARY"},
                "gsi1pk": {"S": "MODELS"},
                "gsi1sk": {"S": name},
                "model": {"S": name},
                "versions": {"M": {"v1": {"S": "2026-01-01T00:00:00.000000Z"}}},
                "updated_at": {"S": "2026-01-01T00:00:00.000000Z"},
                "revision": {"N": "1"},
            },
        )
    first = call("GET", "/models")
    assert len(ok(first)) == 100
    token = first.headers.get("x-next-token")
    assert token
    second = call("GET", "/models", query={"next_token": token})
    assert [entry["model"] for entry in ok(second)] == ["m100"]
    assert "x-next-token" not in second.headers


def test_limit_out_of_range_is_a_client_error(aws: AwsClients) -> None:
    upload("only", version="v1")
    for limit in ("0", "1001", "-1", "ten"):
        response = call("GET", "/models", query={"limit": limit})
        assert 400 <= response.status < 500, (limit, response.status)
        assert "limit" in response.json()["error"]["message"], limit


def test_limit_1000_is_accepted(aws: AwsClients) -> None:
    upload("only", version="v1")
    assert [entry["model"] for entry in ok(call("GET", "/models", query={"limit": "1000"}))] == ["only"]


def test_a_next_token_the_api_did_not_issue_is_400(aws: AwsClients) -> None:
    error = assert_error(call("GET", "/models", query={"next_token": "!!not a token!!"}), 400)
    assert "next_token" in error["message"]


# latest, automatic versions, overwrites -------------------------------------------------------------------


def test_versions_are_numbered_automatically_and_latest_follows_them(aws: AwsClients) -> None:
    digests = [upload("auto", linear_regression(seed))["sha256"] for seed in range(3)]
    body = ok(call("GET", "/models/auto"))
    assert [entry["version"] for entry in body["versions"]] == ["v3", "v2", "v1"]

    latest = ok(call("GET", "/models/auto/latest/info"))
    assert latest["sha256"] == digests[2]
    latest_download = ok(call("GET", "/models/auto/latest"))
    assert hashlib.sha256(base64.b64decode(latest_download["model"])).hexdigest() == digests[2]

    assert call("DELETE", "/models/auto/v3").status == 204
    assert ok(call("GET", "/models/auto/latest/info"))["sha256"] == digests[1]
    listed = ok(call("GET", "/models"))
    assert listed[0]["versions"] == ["v1", "v2"]
    assert listed[0]["latest"] == "v2"

    # The next automatic version is one past the highest still in use.
    assert upload("auto")["version"] == "v3"


def test_automatic_version_skips_past_explicit_v_numbers(aws: AwsClients) -> None:
    upload("skip", version="v7")
    upload("skip", version="custom")
    assert upload("skip")["version"] == "v8"


def test_latest_means_newest_by_creation_time_not_by_name(aws: AwsClients) -> None:
    first = upload("ct", linear_regression(1), version="zzz")
    second = upload("ct", linear_regression(2), version="aaa")
    assert ok(call("GET", "/models/ct/latest/info"))["sha256"] == second["sha256"]

    # Overwriting the older version keeps its creation time, so it does not become latest.
    replaced = upload("ct", linear_regression(3), version="zzz")
    assert replaced["sha256"] != first["sha256"]
    assert ok(call("GET", "/models/ct/latest/info"))["sha256"] == second["sha256"]
    assert ok(call("GET", "/models"))[0]["latest"] == "aaa"


def test_overwrite_keeps_created_at_changes_updated_at_and_sha256(aws: AwsClients) -> None:
    old_bytes = joblib_bytes(linear_regression(1))
    new_bytes = joblib_bytes(linear_regression(2))
    assert old_bytes != new_bytes
    post = {"version": "v1", "parameters": PARAMETERS, "training_data": [{"a": 1}]}
    ok(call("POST", "/models/ow", {**post, "model": base64.b64encode(old_bytes).decode()}))
    before = ok(call("GET", "/models/ow/v1/info"))
    objects_before = bucket_keys(aws, "artifacts/ow/")

    new_parameters = {**PARAMETERS, "metadata": {"round": 2}}
    body = {**post, "parameters": new_parameters, "training_data": [{"a": 2}]}
    saved = ok(call("POST", "/models/ow", {**body, "model": base64.b64encode(new_bytes).decode()}))
    assert saved["version"] == "v1"
    after = ok(call("GET", "/models/ow/v1/info"))

    assert after["created_at"] == before["created_at"]
    assert after["updated_at"] > before["updated_at"]
    assert before["sha256"] == hashlib.sha256(old_bytes).hexdigest()
    assert after["sha256"] == hashlib.sha256(new_bytes).hexdigest() == saved["sha256"]
    assert after["parameters"] == new_parameters
    assert base64.b64decode(ok(call("GET", "/models/ow/v1"))["model"]) == new_bytes
    assert ok(call("GET", "/models/ow/v1/training_data"))["training_data"] == [{"a": 2}]

    # Listed once, and the replaced bytes are gone from the bucket (same number of objects, none of the old).
    assert ok(call("GET", "/models")) == [
        {"model": "ow", "versions": ["v1"], "latest": "v1", "updated_at": after["updated_at"]}
    ]
    assert [entry["version"] for entry in ok(call("GET", "/models/ow"))["versions"]] == ["v1"]
    objects_after = bucket_keys(aws, "artifacts/ow/")
    assert len(objects_after) == len(objects_before) == 2
    assert not set(objects_after) & set(objects_before)


# inline limit and presigned URLs ---------------------------------------------------------------------------


def _presigned_target(url: str) -> tuple[str, str]:
    parsed = urlparse(url)
    host_bucket = parsed.hostname.split(".s3", 1)[0] if parsed.hostname and ".s3" in parsed.hostname else None
    path = unquote(parsed.path).lstrip("/")
    if host_bucket and host_bucket != "s3":
        return host_bucket, path
    bucket, _, key = path.partition("/")
    return bucket, key


def test_format_url_gives_a_presigned_url_to_the_same_bytes(aws: AwsClients) -> None:
    data = joblib_bytes(linear_regression(4))
    ok(call("POST", "/models/url-m", {"model": base64.b64encode(data).decode(), "version": "v1"}))
    body = ok(call("GET", "/models/url-m/v1", query={"format": "url"}))
    assert "model" not in body
    assert body["model_size"] == len(data)
    assert body["parameters"] == {}
    url = body["model_url"]
    assert "X-Amz-Signature=" in url
    assert "X-Amz-Expires=" in url

    bucket, key = _presigned_target(url)
    assert bucket == bucket_name()
    assert key.startswith("artifacts/url-m/")
    assert aws.s3.get_object(Bucket=bucket, Key=key)["Body"].read() == data
    # moto also answers plain HTTP clients (requests) inside mock_aws: the URL itself works.
    fetched = requests.get(url, timeout=10)
    assert fetched.status_code == 200
    assert fetched.content == data


def test_format_inline_is_the_default_answer(aws: AwsClients) -> None:
    upload("inline-m", version="v1")
    assert set(ok(call("GET", "/models/inline-m/v1", query={"format": "inline"}))) == {"model", "parameters"}


def test_model_over_the_inline_limit_comes_as_a_url(aws: AwsClients, monkeypatch: pytest.MonkeyPatch) -> None:
    data = joblib_bytes(linear_regression(5))
    ok(call("POST", "/models/big", {"model": base64.b64encode(data).decode(), "version": "v1"}))
    monkeypatch.setenv("INLINE_MODEL_LIMIT_BYTES", "100")
    reset_cached_wiring()

    body = ok(call("GET", "/models/big/v1"))
    assert "model" not in body
    assert body["model_size"] == len(data)
    bucket, key = _presigned_target(body["model_url"])
    assert aws.s3.get_object(Bucket=bucket, Key=key)["Body"].read() == data
    assert requests.get(body["model_url"], timeout=10).content == data


def test_inline_limit_compares_the_base64_length(aws: AwsClients, monkeypatch: pytest.MonkeyPatch) -> None:
    data = joblib_bytes(linear_regression(6))
    ok(call("POST", "/models/edge", {"model": base64.b64encode(data).decode(), "version": "v1"}))
    encoded_length = len(base64.b64encode(data))

    monkeypatch.setenv("INLINE_MODEL_LIMIT_BYTES", str(encoded_length))
    reset_cached_wiring()
    assert base64.b64decode(ok(call("GET", "/models/edge/v1"))["model"]) == data

    monkeypatch.setenv("INLINE_MODEL_LIMIT_BYTES", str(encoded_length - 1))
    reset_cached_wiring()
    assert "model_url" in ok(call("GET", "/models/edge/v1"))


# best ------------------------------------------------------------------------------------------------------


@pytest.fixture
def ranked(aws: AwsClients) -> AwsClients:
    old_shape = {
        "scores": [{"iteration": 1, "algorithm": "LinearRegression", "mse": 0.5, "r2": 0.90}],
        "best_iteration": 1,
    }
    upload("rank", version="v1", parameters={**PARAMETERS, "metadata": {"fold": 3, "prod": True}},
           training_results=old_shape)  # fmt: skip
    upload("rank", version="v2", parameters={**PARAMETERS, "metadata": {"fold": 3, "prod": False}},
           training_results={"mse": 0.2, "r2": 0.95})  # fmt: skip
    upload("rank", version="v3", parameters={**PARAMETERS, "metadata": {"fold": 4, "prod": True, "tag": "x"}},
           training_results={"mse": 0.1, "r2": 0.99})  # fmt: skip
    upload("rank", version="v4", parameters={**PARAMETERS, "metadata": {"fold": 3}})
    return aws


def test_best_defaults_to_lowest_mse(ranked: AwsClients) -> None:
    body = ok(call("GET", "/models/rank/best"))
    assert set(body) == {"model", "version", "best_score", "details", "parameters"}
    assert body["model"] == "rank"
    assert body["version"] == "v3"
    assert body["best_score"] == pytest.approx(0.1)
    assert body["details"]["mse"] == pytest.approx(0.1)
    assert body["parameters"]["metadata"] == {"fold": 4, "prod": True, "tag": "x"}


def test_best_filters_on_metadata_with_string_values(ranked: AwsClients) -> None:
    assert ok(call("GET", "/models/rank/best", query={"fold": "3"}))["version"] == "v2"
    body = ok(call("GET", "/models/rank/best", query={"fold": "3", "prod": "true"}))
    assert body["version"] == "v1"
    assert body["best_score"] == pytest.approx(0.5)
    # The old stack's shape: details is the score entry that won.
    assert body["details"] == {"iteration": 1, "algorithm": "LinearRegression", "mse": 0.5, "r2": 0.90}
    assert ok(call("GET", "/models/rank/best", query={"tag": "x"}))["version"] == "v3"


def test_best_with_order_max(ranked: AwsClients) -> None:
    body = ok(call("GET", "/models/rank/best", query={"metric": "r2", "order": "max"}))
    assert (body["version"], body["best_score"]) == ("v3", pytest.approx(0.99))
    body = ok(call("GET", "/models/rank/best", query={"metric": "r2", "order": "max", "fold": "3"}))
    assert (body["version"], body["best_score"]) == ("v2", pytest.approx(0.95))
    assert body["details"]["r2"] == pytest.approx(0.95)
    assert ok(call("GET", "/models/rank/best", query={"metric": "r2", "order": "min"}))["version"] == "v1"
    assert ok(call("GET", "/models/rank/best", query={"order": "max"}))["version"] == "v1"


def test_best_404_when_nothing_matches_and_4xx_for_a_bad_order(ranked: AwsClients) -> None:
    assert_error(call("GET", "/models/rank/best", query={"fold": "5"}), 404, "not_found")
    assert_error(call("GET", "/models/rank/best", query={"prod": "false", "fold": "4"}), 404, "not_found")
    assert_error(call("GET", "/models/rank/best", query={"metric": "accuracy"}), 404, "not_found")
    assert_error(call("GET", "/models/rank/best", query={"unknown_key": "1"}), 404, "not_found")
    assert_error(call("GET", "/models/nobody/best"), 404, "not_found")
    response = call("GET", "/models/rank/best", query={"order": "sideways"})
    assert 400 <= response.status < 500
    assert "order" in response.json()["error"]["message"]


# deletes ---------------------------------------------------------------------------------------------------


def test_delete_version_removes_artifact_training_data_and_metadata(aws: AwsClients) -> None:
    upload("dv", version="v1", training_data=[{"a": 1}])
    upload("dv", version="v2", training_data=[{"a": 2}])
    v1_keys = bucket_keys(aws, "artifacts/dv/")
    assert len(v1_keys) == 4

    response = call("DELETE", "/models/dv/v1")
    assert response.status == 204
    assert response.raw_body == b""

    remaining = bucket_keys(aws, "artifacts/dv/")
    assert len(remaining) == 2
    assert {item["sk"]["S"] for item in table_items(aws, "dv")} == {"SUMMARY", "VERSION#v2"}
    for path in ("/models/dv/v1", "/models/dv/v1/info", "/models/dv/v1/training_data"):
        assert_error(call("GET", path), 404, "not_found")
    assert ok(call("GET", "/models/dv/v2/training_data"))["training_data"] == [{"a": 2}]
    assert ok(call("GET", "/models"))[0]["versions"] == ["v2"]
    assert_error(call("DELETE", "/models/dv/v1"), 404, "not_found")


def test_delete_latest_version_alias(aws: AwsClients) -> None:
    upload("dl", version="old")
    upload("dl", version="new")
    assert call("DELETE", "/models/dl/latest").status == 204
    assert [entry["version"] for entry in ok(call("GET", "/models/dl"))["versions"]] == ["old"]


def test_deleting_the_last_version_removes_the_model(aws: AwsClients) -> None:
    upload("single", version="v1")
    upload("keep", version="v1")
    assert call("DELETE", "/models/single/v1").status == 204
    assert [entry["model"] for entry in ok(call("GET", "/models"))] == ["keep"]
    assert_error(call("GET", "/models/single"), 404, "not_found")
    assert table_items(aws, "single") == []


def test_delete_model_removes_every_version_and_object(aws: AwsClients) -> None:
    for version in ("v1", "v2", "v3"):
        upload("gone", version=version, training_data=[{"v": version}])
    upload("gone-not", version="v1", training_data=[{"v": 1}])
    upload("stays", version="v1")
    assert len(bucket_keys(aws, "artifacts/gone/")) == 6
    kept_objects = bucket_keys(aws, "artifacts/gone-not/") + bucket_keys(aws, "artifacts/stays/")

    response = call("DELETE", "/models/gone")
    assert response.status == 204
    assert response.raw_body == b""

    assert bucket_keys(aws, "artifacts/gone/") == []
    assert bucket_keys(aws) == sorted(kept_objects)
    assert table_items(aws, "gone") == []
    assert [entry["model"] for entry in ok(call("GET", "/models"))] == ["gone-not", "stays"]
    for method, path in [
        ("GET", "/models/gone"),
        ("GET", "/models/gone/v1"),
        ("GET", "/models/gone/latest"),
        ("GET", "/models/gone/v2/info"),
        ("GET", "/models/gone/latest/info"),
        ("GET", "/models/gone/v3/training_data"),
        ("GET", "/models/gone/best"),
        ("DELETE", "/models/gone/v1"),
        ("DELETE", "/models/gone"),
    ]:
        assert_error(call(method, path), 404, "not_found")
    # The name is free again, and numbering starts over.
    assert upload("gone")["version"] == "v1"


# HTTP API (v2) events, default and named stage -------------------------------------------------------------

SHAPES = [
    pytest.param("v1", "prod", id="rest-v1"),
    pytest.param("v2", "$default", id="http-v2-default-stage"),
    pytest.param("v2", "prod", id="http-v2-named-stage"),
    pytest.param("v2", "models", id="http-v2-stage-named-like-a-route"),
]


@pytest.mark.parametrize(("shape", "stage"), SHAPES)
def test_main_flow_with_each_event_shape(aws: AwsClients, shape: str, stage: str) -> None:
    estimator = linear_regression(11)
    data = joblib_bytes(estimator)
    rows = [{"a": 1, "b": 2, "c": 3, "y": 4}]

    def send(method: str, path: str, body: Any = None, query: dict[str, str] | None = None) -> LambdaResponse:
        return call(method, path, body, query=query, shape=shape, stage=stage)

    post = {"model": base64.b64encode(data).decode(), "parameters": PARAMETERS, "training_data": rows,
            "training_results": {"mse": 0.3}}  # fmt: skip
    saved = ok(send("POST", "/models/flow", post))
    assert (saved["model"], saved["version"]) == ("flow", "v1")
    assert saved["sha256"] == hashlib.sha256(data).hexdigest()
    ok(send("POST", "/models/flow", {**post, "version": "named"}))

    listed = ok(send("GET", "/models"))
    assert [(entry["model"], entry["versions"], entry["latest"]) for entry in listed] == [
        ("flow", ["v1", "named"], "named")
    ]
    versions = ok(send("GET", "/models/flow"))
    assert [entry["version"] for entry in versions["versions"]] == ["named", "v1"]
    assert base64.b64decode(ok(send("GET", "/models/flow/v1"))["model"]) == data
    assert ok(send("GET", "/models/flow/v1/info"))["sha256"] == saved["sha256"]
    assert ok(send("GET", "/models/flow/v1/training_data"))["training_data"] == rows
    assert ok(send("GET", "/models/flow/best"))["best_score"] == pytest.approx(0.3)
    assert ok(send("GET", "/models", query={"limit": "1"})) == listed
    assert ok(send("GET", "/health"))["status"] == "ok"

    assert send("DELETE", "/models/flow/v1").status == 204
    assert_error(send("GET", "/models/flow/v1/info"), 404, "not_found")
    assert send("DELETE", "/models/flow").status == 204
    assert ok(send("GET", "/models")) == []
    assert_error(send("GET", "/models/flow"), 404, "not_found")
    assert bucket_keys(aws) == []


@pytest.mark.parametrize(("shape", "stage"), SHAPES)
def test_errors_keep_their_shape_and_request_id_with_each_event_shape(aws: AwsClients, shape: str, stage: str) -> None:
    assert_error(call("GET", "/models/nope", shape=shape, stage=stage), 404, "not_found")
    assert_error(call("POST", "/models/x", b"{not json", shape=shape, stage=stage), 400, "invalid_json")
    assert_error(call("GET", "/models/bad%20name", shape=shape, stage=stage), 400)


def test_named_stage_prefix_is_stripped_only_once(aws: AwsClients) -> None:
    # A model named like the stage: /prod/models/prod must reach /models/prod, not /models.
    upload("prod", version="v1", shape="v2", stage="prod")
    body = ok(call("GET", "/models/prod", shape="v2", stage="prod"))
    assert body["model"] == "prod"
    assert [entry["version"] for entry in body["versions"]] == ["v1"]


# Content-Type of old clients -------------------------------------------------------------------------------

CONTENT_TYPES = [
    pytest.param(None, id="no-content-type"),
    pytest.param({"Content-Type": "Application/json"}, id="capitalised"),
    pytest.param({"Content-Type": "application/json; charset=utf-8"}, id="with-charset"),
    pytest.param({"content-type": "APPLICATION/JSON"}, id="upper-case"),
]


@pytest.mark.parametrize("headers", CONTENT_TYPES)
@pytest.mark.parametrize("shape", ["v1", "v2"])
def test_upload_accepts_the_content_types_of_old_clients(
    aws: AwsClients, headers: dict[str, str] | None, shape: str
) -> None:
    data = joblib_bytes(linear_regression(2))
    body = {"model": base64.b64encode(data).decode(), "version": "v1", "parameters": PARAMETERS}
    saved = ok(call("POST", "/models/ct-model", body, headers=headers, shape=shape))
    assert saved["sha256"] == hashlib.sha256(data).hexdigest()
    assert base64.b64decode(ok(call("GET", "/models/ct-model/v1", shape=shape))["model"]) == data
    assert ok(call("GET", "/models/ct-model/v1/info"))["parameters"] == PARAMETERS


def test_event_without_content_type_really_has_none() -> None:
    # Guards the test above: the sam event shapes send no Content-Type of their own.
    assert not any(name.lower() == "content-type" for name in rest_v1_event("POST", "/models/x", {})["headers"])
    assert not any(name.lower() == "content-type" for name in http_v2_event("POST", "/models/x", {})["headers"])


def test_body_passed_as_plain_text_is_read_too(aws: AwsClients) -> None:
    # API Gateway passes a text body as it is (isBase64Encoded false) when no binary media type applies.
    event = rest_v1_event("POST", "/models/plain", None)
    event["body"] = json.dumps({"model": model_b64(), "version": "v1", "parameters": PARAMETERS})
    event["isBase64Encoded"] = False
    response = invoke(FUNCTION, event)
    assert response.status == 200, response.raw_body
    assert response.json()["version"] == "v1"


def test_strings_that_spell_nan_or_infinity_are_ordinary_text(aws: AwsClients) -> None:
    # Only the bare JSON-invalid tokens NaN/Infinity are refused; the words inside strings are data.
    parameters = {"target_label": "NaN", "feature_labels": ["Infinity", "-Infinity", "a"], "metadata": {"n": "NaN"}}
    saved = upload("words", version="v1", parameters=parameters, training_data=[{"label": "NaN", "x": 1}])
    assert saved["version"] == "v1"
    assert ok(call("GET", "/models/words/v1/info"))["parameters"] == parameters
    assert ok(call("GET", "/models/words/v1/training_data"))["training_data"] == [{"label": "NaN", "x": 1}]


def test_mime_style_base64_with_line_breaks_is_accepted(aws: AwsClients) -> None:
    model = joblib_bytes(linear_regression(7))
    wrapped = base64.encodebytes(model).decode()
    assert "\n" in wrapped
    response = invoke("RegistryFunction", rest_v1_event("POST", "/models/wrapped", body={"model": wrapped}))
    assert response.status == 200, response.raw_body
    assert response.json()["sha256"] == hashlib.sha256(model).hexdigest()
