"""The cache over real HTTP against the stack `make run` starts: round trips, real expiry, concurrent pops.

The embedded AWS answers one request at a time, as DynamoDB applies each request atomically, so the
concurrency test exercises the conditional deletes the way AWS would.
"""

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import httpx
import pytest

from lrnstak.local.template import Template, local_physical_name
from lrnstak.storage import cache_table

from support.stack import RunningStack
from support.values import JSON_VALUES

RESOURCE_PREFIX = "lrnstak"  # the local stack's default (LRNSTAK_RESOURCE_PREFIX)
ELEMENTS = 1000
CLIENTS = 32
ONE_MB = 1024 * 1024


@pytest.fixture(scope="module")
def embedded_aws(stack: RunningStack) -> dict[str, Any]:
    """boto3 clients on the stack's embedded AWS, to look at what the functions wrote."""
    options: dict[str, Any] = {
        "endpoint_url": stack.aws_endpoint,
        "region_name": "us-east-1",
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
    }
    return {
        "dynamodb": boto3.client("dynamodb", **options),
        "s3": boto3.client("s3", **options),
        "table": local_physical_name("CacheTable", RESOURCE_PREFIX),
        "bucket": local_physical_name("ModelsBucket", RESOURCE_PREFIX),
    }


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def items_of(aws: dict[str, Any], key: str) -> list[dict[str, Any]]:
    response = aws["dynamodb"].query(
        TableName=aws["table"],
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": key}},
        ConsistentRead=True,
    )
    return list(response["Items"])


def test_every_json_type_round_trips_over_http(http: httpx.Client) -> None:
    problems = []
    for index, value in enumerate(JSON_VALUES):
        key = f"http-type-{index}"
        # Old clients send JSON without a Content-Type; POST and PUT are the same.
        stored = http.post(f"/cache/{key}", content=json.dumps({"value": value}).encode())
        if stored.status_code != 200 or stored.json() != {"message": "OK"}:
            problems.append(f"{value!r}: set {stored.status_code} {stored.text[:100]}")
            continue
        got = http.get(f"/cache/{key}")
        if got.status_code != 200 or canonical(got.json()) != canonical(value):
            problems.append(f"{value!r}: got {got.status_code} {got.text[:100]}")
        if http.delete(f"/cache/{key}").json() != {"message": "OK", "value": 1}:
            problems.append(f"{value!r}: delete")
    assert problems == []


def test_one_second_ttl_expires_over_http(http: httpx.Client, embedded_aws: dict[str, Any]) -> None:
    assert http.put("/cache/http-short", json={"value": "soon gone", "ttl": 1}).status_code == 200
    assert http.put("/cache/http-kept", json={"value": "stays"}).status_code == 200
    fresh = http.get("/cache/http-short")
    assert fresh.json() == "soon gone"
    assert fresh.headers["x-expires-at"].endswith("Z")

    time.sleep(2.1)

    assert len(items_of(embedded_aws, "http-short")) == 1  # still in the table: nothing deleted it
    expired = http.get("/cache/http-short")
    assert expired.status_code == 404
    assert expired.json()["error"]["code"] == "not_found"
    assert http.put("/cache/ttl/http-short", json={"ttl": 60}).status_code == 404
    assert http.get("/cache/http-kept").json() == "stays"


def test_32_clients_popping_1000_elements_get_each_exactly_once(http: httpx.Client) -> None:
    key = "http-queue"
    pushed = [f"element-{index}" for index in range(ELEMENTS)]

    def push_all(values: list[str]) -> list[int]:
        with httpx.Client(base_url=str(http.base_url), timeout=60) as client:
            return [client.put(f"/cache/push/{key}", json={"value": value}).status_code for value in values]

    def pop_until_empty(_: int) -> list[Any]:
        popped: list[Any] = []
        with httpx.Client(base_url=str(http.base_url), timeout=60) as client:
            while True:
                response = client.get(f"/cache/pop/{key}")
                if response.status_code == 404:
                    return popped
                assert response.status_code == 200, response.text
                popped.append(response.json())

    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        statuses = [
            status for batch in pool.map(push_all, [pushed[i::CLIENTS] for i in range(CLIENTS)]) for status in batch
        ]
    assert statuses == [200] * ELEMENTS
    assert sorted(http.get(f"/cache/{key}").json()) == sorted(pushed)

    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        per_client = list(pool.map(pop_until_empty, range(CLIENTS)))
    popped = [value for values in per_client for value in values]
    duplicates = sorted({value for value in popped if popped.count(value) > 1})
    assert duplicates == []
    assert sorted(popped) == sorted(pushed)
    assert sum(1 for values in per_client if values) > 1  # the clients really did pop side by side
    for path in (f"/cache/pop/{key}", f"/cache/peek/{key}", f"/cache/{key}"):
        assert http.get(path).status_code == 404


def test_a_1_mb_value_round_trips_over_http(http: httpx.Client, embedded_aws: dict[str, Any]) -> None:
    value = {"blob": "x" * ONE_MB, "falsy": [0, False, None, ""]}
    assert http.put("/cache/http-big", json={"value": value}).status_code == 200
    [item] = items_of(embedded_aws, "http-big")
    assert item["object_key"]["S"].startswith("cache/")
    assert canonical(http.get("/cache/http-big").json()) == canonical(value)
    assert http.delete("/cache/http-big").json() == {"message": "OK", "value": 1}
    assert http.get("/cache/http-big").status_code == 404
    listed = embedded_aws["s3"].list_objects_v2(Bucket=embedded_aws["bucket"], Prefix=item["object_key"]["S"])
    assert listed.get("KeyCount", 0) == 0


def test_the_local_bootstrap_enables_the_templates_ttl_attribute(embedded_aws: dict[str, Any]) -> None:
    declared = Template.load().resources["CacheTable"]["Properties"]["TimeToLiveSpecification"]
    assert declared["AttributeName"] == cache_table.EXPIRES_AT
    described = embedded_aws["dynamodb"].describe_time_to_live(TableName=embedded_aws["table"])
    assert described["TimeToLiveDescription"] == {
        "TimeToLiveStatus": "ENABLED" if declared["Enabled"] else "DISABLED",
        "AttributeName": declared["AttributeName"],
    }
