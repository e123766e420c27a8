"""The cache over HTTP: any JSON value per key, expiry to the second, lists with push, peek and pop."""

import json
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx
import pytest

from .helpers import Cleanup, assert_error, ok
from support.values import JSON_VALUES

S3_SIZED = 400_000  # values over 350,000 bytes are kept in S3, not in the DynamoDB item


def seconds_until_expiry(response: httpx.Response) -> float:
    """X-Expires-At against the server's own Date header, so the client's clock does not matter."""
    expires = datetime.strptime(response.headers["x-expires-at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return (expires - parsedate_to_datetime(response.headers["date"])).total_seconds()


@pytest.mark.parametrize("method", ["PUT", "POST"])
def test_every_json_value_round_trips(api: httpx.Client, made: Cleanup, method: str) -> None:
    problems = []
    for index, value in enumerate(JSON_VALUES):
        key = made.key(f"{method.lower()}-value-{index}")
        # Old clients send JSON without a Content-Type.
        stored = api.request(method, f"/cache/{key}", content=json.dumps({"value": value}).encode())
        if stored.status_code != 200 or stored.json() != {"message": "OK"}:
            problems.append(f"{value!r}: stored {stored.status_code} {stored.text[:200]}")
            continue
        got = api.get(f"/cache/{key}")
        if got.status_code != 200 or json.dumps(got.json(), sort_keys=True) != json.dumps(value, sort_keys=True):
            problems.append(f"{value!r}: got {got.status_code} {got.text[:200]}")
        elif got.headers.get("cache-control") != "no-store" or "x-expires-at" in got.headers:
            problems.append(f"{value!r}: headers {dict(got.headers)}")
    assert problems == []


def test_a_value_is_replaced_and_deleted(api: httpx.Client, made: Cleanup) -> None:
    key = made.key("replace-delete")
    ok(api.put(f"/cache/{key}", json={"value": {"round": 1}}))
    ok(api.post(f"/cache/{key}", json={"value": [2]}))
    assert ok(api.get(f"/cache/{key}")) == [2]
    assert ok(api.delete(f"/cache/{key}")) == {"message": "OK", "value": 1}
    assert_error(api.get(f"/cache/{key}"), 404, "not_found")
    assert ok(api.delete(f"/cache/{key}")) == {"message": "OK", "value": None}


def test_keys_may_use_every_allowed_punctuation(api: httpx.Client, made: Cleanup) -> None:
    key = made.key("punctuation.~!$&'()*+,;=:@_")
    ok(api.put(f"/cache/{key}", json={"value": key}))
    assert ok(api.get(f"/cache/{key}")) == key
    ok(api.put(f"/cache/push/{key}-list", json={"value": 1}))
    assert ok(api.get(f"/cache/pop/{key}-list")) == 1


def test_a_large_value_round_trips(api: httpx.Client, made: Cleanup) -> None:
    key = made.key("large")
    value = {"blob": "x" * S3_SIZED, "falsy": [0, False, None, ""]}
    ok(api.put(f"/cache/{key}", json={"value": value}))
    assert ok(api.get(f"/cache/{key}")) == value
    assert ok(api.delete(f"/cache/{key}"))["value"] == 1
    assert_error(api.get(f"/cache/{key}"), 404, "not_found")


def test_ttls_expire_to_the_second_and_can_be_changed(api: httpx.Client, made: Cleanup) -> None:
    short, changed, missing = made.key("ttl-short"), made.key("ttl-changed"), made.key("ttl-missing")
    ok(api.put(f"/cache/{short}", json={"value": "soon gone", "ttl": 1}))
    ok(api.put(f"/cache/{changed}", json={"value": "kept", "ttl": 1}))
    assert 0 <= seconds_until_expiry(api.get(f"/cache/{short}")) <= 3
    started = time.monotonic()

    ok(api.put(f"/cache/ttl/{changed}", json={"ttl": 600}))
    assert 597 <= seconds_until_expiry(api.get(f"/cache/{changed}")) <= 603
    ok(api.put(f"/cache/ttl/{changed}", json={"ttl": 0}))  # never
    assert "x-expires-at" not in api.get(f"/cache/{changed}").headers
    assert_error(api.put(f"/cache/ttl/{missing}", json={"ttl": 5}), 404, "not_found")

    time.sleep(max(0.0, 2.1 - (time.monotonic() - started)))  # an expiry is rounded up to the whole second
    assert_error(api.get(f"/cache/{short}"), 404, "not_found")
    assert_error(api.put(f"/cache/ttl/{short}", json={"ttl": 60}), 404, "not_found")
    assert ok(api.get(f"/cache/{changed}")) == "kept"


def test_a_list_is_pushed_at_the_front_peeked_and_popped(api: httpx.Client, made: Cleanup) -> None:
    key = made.key("list")
    for value in ("a", {"b": 2}, None):
        ok(api.put(f"/cache/push/{key}", json={"value": value, "ttl": 600}))
    assert ok(api.get(f"/cache/{key}")) == [None, {"b": 2}, "a"]  # front first
    assert ok(api.get(f"/cache/peek/{key}")) is None
    assert ok(api.get(f"/cache/peek/{key}", params={"pos": 2})) == "a"
    assert_error(api.get(f"/cache/peek/{key}", params={"pos": 3}), 404, "not_found")
    assert_error(api.get(f"/cache/peek/{key}", params={"pos": "first"}), 400, "invalid_input")

    popped = api.get(f"/cache/pop/{key}")
    assert popped.json() is None
    assert popped.headers["cache-control"] == "no-store"
    ok(api.put(f"/cache/push/{key}", json={"value": "d"}))  # no ttl: the list keeps its expiry
    kept = api.get(f"/cache/{key}")
    assert ok(kept) == ["d", {"b": 2}, "a"]
    assert 590 <= seconds_until_expiry(kept) <= 603

    assert [ok(api.get(f"/cache/pop/{key}")) for _ in range(3)] == ["d", {"b": 2}, "a"]
    for path in (f"/cache/pop/{key}", f"/cache/peek/{key}", f"/cache/{key}"):
        assert_error(api.get(path), 404, "not_found")


def test_values_and_lists_do_not_mix(api: httpx.Client, made: Cleanup) -> None:
    key = made.key("value-not-list")
    ok(api.put(f"/cache/{key}", json={"value": [1, 2]}))
    assert_error(api.put(f"/cache/push/{key}", json={"value": 3}), 409, "conflict")
    assert_error(api.get(f"/cache/peek/{key}"), 409, "conflict")
    assert_error(api.get(f"/cache/pop/{key}"), 409, "conflict")
    assert ok(api.get(f"/cache/{key}")) == [1, 2]


def test_bad_requests_are_400_naming_the_field(api: httpx.Client, made: Cleanup) -> None:
    key = made.key("cache-bad-requests")
    assert assert_error(api.put(f"/cache/{key}", json={"ttl": 5}), 400, "invalid_input")["details"] == {
        "field": "value"
    }
    assert assert_error(api.put(f"/cache/{key}", json=["value"]), 400, "invalid_input")["details"] == {"field": "body"}
    for ttl in (-1, "soon", 1.5, 315576001):
        error = assert_error(api.put(f"/cache/{key}", json={"value": 1, "ttl": ttl}), 400, "invalid_input")
        assert error["details"]["field"] == "ttl"
    assert_error(api.put(f"/cache/ttl/{key}", json={}), 400, "invalid_input")
    assert_error(api.put(f"/cache/{key}", content=b"{nope"), 400, "invalid_json")
    error = assert_error(api.put(f"/cache/{key} with spaces", json={"value": 1}), 400, "invalid_input")
    assert error["details"]["field"] == "key"
    assert_error(api.get(f"/cache/{key}"), 404, "not_found")  # nothing was stored
