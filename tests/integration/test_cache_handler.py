"""The cache function through its Lambda handler, with API Gateway events, against a moto account.

Covers the old stack's contract: every route with REST (v1) events and a few with HTTP API (v2) events on a
named stage; every JSON type (falsy ones included) round-tripping byte-exact; expiry that is exact whatever
the table still holds; lists in order; values over 350 KB in S3 and gone with their key; the 5 MB limit;
bad keys and ttls; AWS throttling.
"""

import itertools
import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.stub import Stubber

from lrnstak.cache.service import MAX_INLINE_BYTES, MAX_TTL_SECONDS, MAX_VALUE_BYTES, CacheService, get_cache_service
from lrnstak.errors import ServiceUnavailable
from lrnstak.local.template import Template
from lrnstak.storage import cache_table
from lrnstak.storage.clients import AwsClients

from support.functions import LambdaResponse, invoke_traced

FUNCTION = "CacheFunction"
ONE_MB = 1024 * 1024

# Every JSON type, the falsy ones the old stack refused included; compared as canonical JSON text so that
# 0 and false, 1 and 1.0, [] and {} stay different.
JSON_VALUES: dict[str, Any] = {
    "zero": 0,
    "false": False,
    "empty-string": "",
    "empty-list": [],
    "empty-object": {},
    "null": None,
    "true": True,
    "integer": 42,
    "negative": -7,
    "big-integer": 10**30,
    "float": 1.5,
    "float-one": 1.0,
    "tiny-float": 5e-324,
    "string": "hello",
    "unicode": "é ☃ 𝄞 \u0000 \ud800",
    "escapes": 'quote " backslash \\ newline \n',
    "list": [1, "a", None, False, 0, "", [], {}],
    "object": {"a": 1, "b": None, "c": [True, {"d": ""}]},
    "nested": {"l1": [{"l2": [{"l3": [[[]]]}]}]},
}


# helpers ---------------------------------------------------------------------------------------------------


def call(method: str, path: str, body: Any = None, **options: Any) -> LambdaResponse:
    """The handler invoked with a fresh request id (support.functions.invoke_traced); errors in the one shape."""
    response, request_id = invoke_traced(FUNCTION, method, path, body, **options)
    if response.status >= 400:
        payload = response.json()
        assert set(payload) == {"error", "request_id"}, payload
        assert set(payload["error"]) == {"code", "message", "details"}, payload
        assert payload["error"]["message"]
        assert payload["request_id"] == request_id
    return response


def assert_error(response: LambdaResponse, status: int, code: str | None = None, text: str = "") -> dict[str, Any]:
    assert response.status == status, (response.status, response.raw_body[:300])
    error: dict[str, Any] = response.json()["error"]
    if code is not None:
        assert error["code"] == code, error
    assert text in error["message"], error
    return error


def mismatch(label: str, response: LambdaResponse, status: int, code: str | None, text: str = "") -> list[str]:
    """What is wrong with an error response, as a line for a collected list (empty when it is right)."""
    if response.status != status:
        return [f"{label}: {response.status} instead of {status}: {response.raw_body[:200]!r}"]
    error = response.json()["error"]
    if code is not None and error["code"] != code:
        return [f"{label}: code {error['code']!r} instead of {code!r}"]
    if text not in error["message"]:
        return [f"{label}: message {error['message']!r} does not mention {text!r}"]
    return []


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def put(key: str, value: Any, ttl: Any = None, method: str = "PUT") -> LambdaResponse:
    body = {"value": value} if ttl is None else {"value": value, "ttl": ttl}
    response = call(method, f"/cache/{key}", body)
    assert response.status == 200, response.raw_body[:300]
    assert response.json() == {"message": "OK"}
    return response


def push(key: str, value: Any, ttl: Any = None) -> None:
    body = {"value": value} if ttl is None else {"value": value, "ttl": ttl}
    response = call("PUT", f"/cache/push/{key}", body)
    assert response.status == 200, response.raw_body[:300]
    assert response.json() == {"message": "OK"}


def table_items(aws: AwsClients, key: str | None = None) -> list[dict[str, Any]]:
    items = aws.dynamodb.scan(TableName=os.environ["CACHE_TABLE"], ConsistentRead=True)["Items"]
    return [item for item in items if key is None or item["pk"]["S"] == key]


def cache_objects(aws: AwsClients) -> list[str]:
    listed = aws.s3.list_objects_v2(Bucket=os.environ["MODELS_BUCKET"], Prefix="cache/")
    return sorted(obj["Key"] for obj in listed.get("Contents", []))


def expires_header(response: LambdaResponse) -> float | None:
    raw = response.headers.get("x-expires-at")
    if raw is None:
        return None
    assert raw.endswith("Z"), raw
    assert len(raw) == len("2026-01-01T00:00:00Z"), raw
    return datetime.strptime(raw, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


@pytest.fixture(scope="module", autouse=True)
def template_parsed_once() -> Iterator[None]:
    """support.events parses template.yaml for every event (about 0.1 s each, most of this module's time);
    the template does not change while the module runs."""
    template = Template.load()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Template, "load", classmethod(lambda cls, root=None: template))
        yield


@pytest.fixture
def service(aws: AwsClients) -> CacheService:
    return get_cache_service()


# values ----------------------------------------------------------------------------------------------------


def test_every_json_type_round_trips(aws: AwsClients) -> None:
    problems = []
    for name, value in JSON_VALUES.items():
        put(f"value-{name}", value)
        response = call("GET", f"/cache/value-{name}")
        if response.status != 200 or canonical(response.json()) != canonical(value):
            problems.append(f"{name}: {response.status} {response.raw_body[:100]!r}")
        elif (response.headers["content-type"], response.headers["cache-control"]) != ("application/json", "no-store"):
            problems.append(f"{name}: headers {response.headers}")
        elif "x-expires-at" in response.headers:
            problems.append(f"{name}: an expiry header without a ttl")
    assert problems == []


def test_get_answers_the_stored_json_itself_and_404_when_missing(aws: AwsClients) -> None:
    put("plain", {"value": 1})
    assert call("GET", "/cache/plain").json() == {"value": 1}  # not unwrapped: the body is what was stored
    put("nothing", None)
    assert call("GET", "/cache/nothing").raw_body == b"null"
    put("text", "first", ttl=60)
    put("text", "second")  # an overwrite replaces the value and its expiry
    response = call("GET", "/cache/text")
    assert response.raw_body == b'"second"'
    assert "x-expires-at" not in response.headers
    assert len(table_items(aws, "text")) == 1
    assert_error(call("GET", "/cache/never-set"), 404, "not_found", "never-set")


def test_post_and_http_api_events_on_a_named_stage_work_alike(aws: AwsClients) -> None:
    put("posted", [1, 2], method="POST")
    assert call("GET", "/cache/posted", shape="v2", stage="dev").json() == [1, 2]
    response = call("PUT", "/cache/v2-key", {"value": False, "ttl": 60}, shape="v2", stage="dev")
    assert response.status == 200, response.raw_body
    got = call("GET", "/cache/v2-key", shape="v2")
    assert got.json() is False
    assert got.headers["x-expires-at"]
    assert call("DELETE", "/cache/v2-key", shape="v2", stage="dev").json() == {"message": "OK", "value": 1}


OLD_CLIENT_HEADERS = [{}, {"Content-Type": "application/json"}, {"Content-Type": "Application/JSON; charset=utf-8"}]


def test_old_clients_bodies_are_read_as_json(aws: AwsClients) -> None:
    for index, headers in enumerate(OLD_CLIENT_HEADERS):
        response = call("PUT", f"/cache/old-{index}", json.dumps({"value": {"a": index}}).encode(), headers=headers)
        assert response.status == 200, (headers, response.raw_body)
        assert call("GET", f"/cache/old-{index}").json() == {"a": index}


BODIES_WITHOUT_A_VALUE: list[tuple[Any, str]] = [
    ({}, "value"),
    ({"ttl": 5}, "value"),
    ({"val": 1}, "value"),
    ([{"value": 1}], "object"),
    ("value", "object"),
    (5, "object"),
    (b"null", "object"),
    (b"", "empty"),
    (b"{not json", "JSON"),
    (b'{"value": 1e400}', "value"),
    (b'{"value": NaN}', "NaN"),
]


def test_body_without_a_value_is_400(aws: AwsClients) -> None:
    problems = []
    for body, text in BODIES_WITHOUT_A_VALUE:
        for method, path in (("PUT", "/cache/k"), ("POST", "/cache/k"), ("PUT", "/cache/push/k")):
            problems += mismatch(f"{method} {path} {body!r}", call(method, path, body), 400, None, text)
    assert problems == []
    assert table_items(aws) == []


# keys and ttls ---------------------------------------------------------------------------------------------

GOOD_KEYS = ["a", "A-Z_a.z~0", "!$&'()*+,;=:@", "x" * 512, "ttl", "push", "user:42@site"]
BAD_KEYS = {
    "space": "a%20b",
    "encoded-slash": "a%2Fb",
    "percent": "a%25b",
    "non-ascii": "%C3%A9",
    "too-long": "x" * 513,
    "quote": "a%22b",
    "hash": "a%23b",
    "question": "a%3Fb",
}


def test_path_safe_keys_are_accepted(aws: AwsClients) -> None:
    for key in GOOD_KEYS:
        put(key, key)
        assert call("GET", f"/cache/{key}").json() == key
    assert sorted(item["pk"]["S"] for item in table_items(aws)) == sorted(GOOD_KEYS)


def test_bad_keys_are_400_on_every_route(aws: AwsClients) -> None:
    problems = []
    for label, key in BAD_KEYS.items():
        for method, path, body in [
            ("PUT", f"/cache/{key}", {"value": 1}),
            ("POST", f"/cache/{key}", {"value": 1}),
            ("GET", f"/cache/{key}", None),
            ("DELETE", f"/cache/{key}", None),
            ("PUT", f"/cache/ttl/{key}", {"ttl": 5}),
            ("PUT", f"/cache/push/{key}", {"value": 1}),
            ("GET", f"/cache/peek/{key}", None),
            ("GET", f"/cache/pop/{key}", None),
        ]:
            problems += mismatch(f"{label} {method} {path[:40]}", call(method, path, body), 400, "invalid_input",
                                 "512 characters")  # fmt: skip
    assert problems == []
    assert table_items(aws) == []


BAD_TTLS = [-1, 1.5, 5.0, "5", True, False, MAX_TTL_SECONDS + 1, [], {"s": 1}]


def test_bad_ttls_are_400_naming_ttl(aws: AwsClients) -> None:
    put("has-ttl", 1)
    problems = []
    for ttl in BAD_TTLS:
        for path, body in [
            ("/cache/k", {"value": 1, "ttl": ttl}),
            ("/cache/push/k", {"value": 1, "ttl": ttl}),
            ("/cache/ttl/has-ttl", {"ttl": ttl}),
        ]:
            problems += mismatch(f"{path} {ttl!r}", call("PUT", path, body), 400, "invalid_input", "`ttl`")
    assert problems == []
    assert [item["pk"]["S"] for item in table_items(aws)] == ["has-ttl"]
    assert "x-expires-at" not in call("GET", "/cache/has-ttl").headers


def test_ttl_limits_are_accepted(aws: AwsClients) -> None:
    put("ten-years", 1, ttl=MAX_TTL_SECONDS)
    header = expires_header(call("GET", "/cache/ten-years"))
    assert header is not None
    assert abs(header - (time.time() + MAX_TTL_SECONDS)) < 5
    put("zero", 1, ttl=0)
    put("null-ttl", 1, ttl=None)
    assert call("PUT", "/cache/null-ttl", {"value": 1, "ttl": None}).status == 200
    for key in ("zero", "null-ttl"):
        assert "x-expires-at" not in call("GET", f"/cache/{key}").headers
        assert "expires_at" not in table_items(aws, key)[0]
    for body in ({}, {"ttl": None}, [5], 5):  # the ttl route needs one
        assert_error(call("PUT", "/cache/ttl/zero", body), 400, "invalid_input", "ttl")


# expiry ----------------------------------------------------------------------------------------------------


def test_one_second_ttl_really_expires_though_the_items_are_still_in_the_table(aws: AwsClients) -> None:
    big = "x" * ONE_MB
    put("short", "gone soon", ttl=1)
    put("short-big", big, ttl=1)
    put("shortened", "was long", ttl=3600)
    assert call("PUT", "/cache/ttl/shortened", {"ttl": 1}).status == 200
    push("short-list", "a", ttl=1)
    push("short-list", "b")
    put("kept", "stays")
    keys = ["short", "short-big", "shortened", "short-list"]
    assert all(call("GET", f"/cache/{key}").status == 200 for key in keys)
    assert len(cache_objects(aws)) == 1

    time.sleep(2.1)

    # DynamoDB (moto here) has deleted nothing: every item is still there, and every read says missing.
    assert {key: len(table_items(aws, key)) for key in keys} == {
        "short": 1,
        "short-big": 1,
        "shortened": 1,
        "short-list": 3,
    }
    problems = []
    for key in keys:
        paths = [f"/cache/{key}"] + ([f"/cache/pop/{key}", f"/cache/peek/{key}"] if key == "short-list" else [])
        problems += [f"GET {path}: {status}" for path in paths if (status := call("GET", path).status) != 404]
    assert problems == []
    assert_error(call("PUT", "/cache/ttl/short", {"ttl": 60}), 404, "not_found")
    assert call("DELETE", "/cache/shortened").json() == {"message": "OK", "value": None}
    # The readers that found them expired removed them, S3 object included.
    assert [item["pk"]["S"] for item in table_items(aws)] == ["kept"]
    assert cache_objects(aws) == []
    assert call("GET", "/cache/kept").json() == "stays"


def test_expired_value_is_404_even_when_removing_it_fails(
    aws: AwsClients, service: CacheService, monkeypatch: pytest.MonkeyPatch
) -> None:
    put("stale", 1)
    item = table_items(aws, "stale")[0]
    item["expires_at"] = {"N": str(int(time.time()) - 1)}
    aws.dynamodb.put_item(TableName=os.environ["CACHE_TABLE"], Item=item)

    def busy(*_: Any, **__: Any) -> None:
        raise ServiceUnavailable("DynamoDB is busy (test).")

    monkeypatch.setattr(service._table, "delete_value", busy)
    assert_error(call("GET", "/cache/stale"), 404, "not_found")
    assert len(table_items(aws, "stale")) == 1


def test_ttl_update_extends_shortens_and_removes(aws: AwsClients) -> None:
    before = time.time()
    put("timed", "v", ttl=120)
    header = expires_header(call("GET", "/cache/timed"))
    assert header is not None
    assert before + 120 <= header <= time.time() + 121
    assert int(table_items(aws, "timed")[0]["expires_at"]["N"]) == header
    put("k", "v")
    assert "x-expires-at" not in call("GET", "/cache/k").headers
    problems = []
    for ttl in (100, 10_000, 5, MAX_TTL_SECONDS):
        assert call("PUT", "/cache/ttl/k", {"ttl": ttl}).json() == {"message": "OK"}
        header = expires_header(call("GET", "/cache/k"))
        if header is None or not time.time() + ttl - 2 <= header <= time.time() + ttl + 2:
            problems.append(f"ttl {ttl}: header {header}")
    assert problems == []
    assert call("PUT", "/cache/ttl/k", {"ttl": 0}).status == 200
    response = call("GET", "/cache/k")
    assert response.json() == "v"
    assert "x-expires-at" not in response.headers
    assert "expires_at" not in table_items(aws, "k")[0]


def test_ttl_update_on_a_list_and_on_missing_keys(aws: AwsClients) -> None:
    push("l", 1)
    assert call("PUT", "/cache/ttl/l", {"ttl": 50}).status == 200
    assert expires_header(call("GET", "/cache/peek/l")) is not None
    assert expires_header(call("GET", "/cache/l")) is not None
    assert call("PUT", "/cache/ttl/l", {"ttl": 0}).status == 200
    assert "x-expires-at" not in call("GET", "/cache/l").headers
    assert_error(call("PUT", "/cache/ttl/missing", {"ttl": 5}), 404, "not_found")
    call("GET", "/cache/pop/l")
    assert_error(call("PUT", "/cache/ttl/l", {"ttl": 5}), 404, "not_found")


def test_the_table_and_its_ttl_attribute_are_as_the_template_declares(aws: AwsClients) -> None:
    properties = Template.load().resources["CacheTable"]["Properties"]
    keys = {key["KeyType"]: key["AttributeName"] for key in properties["KeySchema"]}
    assert keys == {"HASH": cache_table.PARTITION_KEY, "RANGE": cache_table.SORT_KEY}
    declared = properties["TimeToLiveSpecification"]
    assert declared["AttributeName"] == cache_table.EXPIRES_AT
    described = aws.dynamodb.describe_time_to_live(TableName=os.environ["CACHE_TABLE"])["TimeToLiveDescription"]
    assert described["TimeToLiveStatus"] == ("ENABLED" if declared["Enabled"] else "DISABLED")
    assert described["AttributeName"] == declared["AttributeName"]


# delete ----------------------------------------------------------------------------------------------------


def test_delete_says_whether_the_key_existed(aws: AwsClients) -> None:
    put("d", 0)
    assert call("DELETE", "/cache/d").json() == {"message": "OK", "value": 1}
    assert_error(call("GET", "/cache/d"), 404)
    assert call("DELETE", "/cache/d").json() == {"message": "OK", "value": None}
    assert call("DELETE", "/cache/never").json() == {"message": "OK", "value": None}
    push("dl", "a")
    push("dl", "b")
    assert call("DELETE", "/cache/dl").json() == {"message": "OK", "value": 1}
    assert_error(call("GET", "/cache/pop/dl"), 404)
    assert table_items(aws) == []


# lists -----------------------------------------------------------------------------------------------------


def test_push_goes_to_the_front_and_pop_takes_from_it(aws: AwsClients) -> None:
    for value in ("a", "b", "c"):
        push("letters", value)
    assert call("GET", "/cache/letters").json() == ["c", "b", "a"]
    peeked = [call("GET", "/cache/peek/letters", query={"pos": str(pos)}).json() for pos in range(3)]
    assert peeked == ["c", "b", "a"]
    assert call("GET", "/cache/peek/letters").json() == "c"
    assert_error(call("GET", "/cache/peek/letters", query={"pos": "3"}), 404, "not_found")
    popped = [call("GET", "/cache/pop/letters").json() for _ in range(3)]
    assert popped == ["c", "b", "a"]
    for path in ("/cache/pop/letters", "/cache/peek/letters", "/cache/letters"):
        assert_error(call("GET", path), 404, "not_found")
    assert call("DELETE", "/cache/letters").json()["value"] is None
    assert_error(call("GET", "/cache/pop/none"), 404, "not_found")
    assert_error(call("GET", "/cache/peek/none", query={"pos": "0"}), 404, "not_found")


def test_list_elements_keep_their_json_type(aws: AwsClients) -> None:
    values = list(JSON_VALUES.values())
    for value in reversed(values):
        push("typed", value)
    assert canonical(call("GET", "/cache/typed").json()) == canonical(values)
    popped = []
    for _ in values:
        response = call("GET", "/cache/pop/typed")
        assert response.status == 200, response.raw_body
        popped.append(response.json())
    assert canonical(popped) == canonical(values)


def test_bad_peek_position_is_400(aws: AwsClients) -> None:
    push("p", 1)
    problems = []
    for pos in ["-1", "x", "1.5", "", " 1", "\u0661", "1e3"]:
        problems += mismatch(repr(pos), call("GET", "/cache/peek/p", query={"pos": pos}), 400, "invalid_input", "pos")
    assert problems == []
    assert call("GET", "/cache/peek/p", query={"pos": "0"}).json() == 1


def test_a_value_and_a_list_do_not_mix(aws: AwsClients) -> None:
    put("scalar", "v")
    for path in ("/cache/push/scalar",):
        assert_error(call("PUT", path, {"value": 1}), 409, "conflict", "holds a value")
    assert_error(call("GET", "/cache/pop/scalar"), 409, "conflict")
    assert_error(call("GET", "/cache/peek/scalar"), 409, "conflict")
    assert call("GET", "/cache/scalar").json() == "v"

    push("list", 1)
    push("list", 2)
    put("list", "now a value")
    assert call("GET", "/cache/list").json() == "now a value"
    assert [item["sk"]["S"] for item in table_items(aws, "list")] == ["VALUE"]
    assert call("DELETE", "/cache/list").json()["value"] == 1
    push("list", "a list again")
    assert call("GET", "/cache/list").json() == ["a list again"]


def test_push_with_ttl_sets_the_list_expiry_and_without_keeps_it(aws: AwsClients) -> None:
    push("t", 1, ttl=100)
    first = expires_header(call("GET", "/cache/t"))
    push("t", 2)
    assert expires_header(call("GET", "/cache/t")) == first
    push("t", 3, ttl=0)
    assert expires_header(call("GET", "/cache/t")) is None


def test_pop_that_keeps_losing_races_is_503(service: CacheService, monkeypatch: pytest.MonkeyPatch) -> None:
    push("contended", 1)
    monkeypatch.setattr(service, "_attempts", 2)
    monkeypatch.setattr(service._table, "claim_element", lambda element, claim_id: None)
    response = call("GET", "/cache/pop/contended")
    assert_error(response, 503, "service_unavailable")
    assert int(response.headers["retry-after"]) >= 1


# large values ----------------------------------------------------------------------------------------------


def test_a_1_mb_value_goes_to_s3_round_trips_and_goes_with_its_key(aws: AwsClients) -> None:
    value = {"blob": "é" * (ONE_MB // 6), "n": [0, False, None]}
    put("big", value)
    objects = cache_objects(aws)
    assert len(objects) == 1
    assert objects[0].startswith("cache/")
    [item] = table_items(aws, "big")
    assert "value" not in item
    assert item["object_key"]["S"] == objects[0]
    assert canonical(call("GET", "/cache/big").json()) == canonical(value)

    put("big", "small now")  # the replaced object goes
    assert cache_objects(aws) == []
    put("big", value)
    assert call("DELETE", "/cache/big").json() == {"message": "OK", "value": 1}
    assert cache_objects(aws) == []
    assert table_items(aws) == []


def test_the_item_limit_decides_and_list_elements_go_to_s3_too(aws: AwsClients) -> None:
    put("inline", "x" * (MAX_INLINE_BYTES - 2))  # the quotes make it exactly the limit
    put("outside", "x" * (MAX_INLINE_BYTES - 1))
    assert "value" in table_items(aws, "inline")[0]
    assert "object_key" in table_items(aws, "outside")[0]
    assert len(cache_objects(aws)) == 1
    assert call("DELETE", "/cache/outside").json()["value"] == 1
    push("big-list", "y" * ONE_MB)
    push("big-list", "small")
    assert len(cache_objects(aws)) == 1
    assert call("GET", "/cache/peek/big-list", query={"pos": "1"}).json() == "y" * ONE_MB
    assert call("GET", "/cache/pop/big-list").json() == "small"
    assert call("GET", "/cache/pop/big-list").json() == "y" * ONE_MB
    assert cache_objects(aws) == []


def test_5_mb_is_accepted_and_one_byte_more_is_413(aws: AwsClients) -> None:
    put("at-limit", "z" * (MAX_VALUE_BYTES - 2))
    assert len(call("GET", "/cache/at-limit").raw_body) == MAX_VALUE_BYTES
    assert call("DELETE", "/cache/at-limit").json()["value"] == 1
    for method, path in (("PUT", "/cache/too-big"), ("PUT", "/cache/push/too-big")):
        error = assert_error(call(method, path, {"value": "z" * (MAX_VALUE_BYTES - 1)}), 413, "too_large", "5 MB")
        assert str(MAX_VALUE_BYTES) in error["message"]
    assert table_items(aws) == []
    assert cache_objects(aws) == []


# AWS unavailable -------------------------------------------------------------------------------------------


THROTTLING_CODES = ["ThrottlingException", "ProvisionedThroughputExceededException"]
THROTTLED_ROUTES: list[tuple[str, str, Any, str]] = [
    ("GET", "/cache/k", None, "batch_get_item"),
    ("PUT", "/cache/k", {"value": 1}, "put_item"),
    ("DELETE", "/cache/k", None, "batch_get_item"),  # reads the item first: its object goes even if the answer is lost
    ("PUT", "/cache/push/k", {"value": 1}, "update_item"),
    ("GET", "/cache/pop/k", None, "batch_get_item"),
    ("GET", "/cache/peek/k", None, "batch_get_item"),
    ("PUT", "/cache/ttl/k", {"ttl": 5}, "batch_get_item"),
]


def test_throttled_dynamodb_is_503_with_retry_after(service: CacheService) -> None:
    problems = []
    for (method, path, body, operation), code in itertools.product(THROTTLED_ROUTES, THROTTLING_CODES):
        with Stubber(service._table._dynamodb) as stubber:
            stubber.add_client_error(operation, service_error_code=code, http_status_code=400)
            response = call(method, path, body)
            stubber.assert_no_pending_responses()
        problems += mismatch(f"{method} {path}", response, 503, "service_unavailable", code)
        if response.status == 503 and not int(response.headers.get("retry-after", "0")) >= 1:
            problems.append(f"{method} {path}: no Retry-After")
    assert problems == []


def test_throttled_s3_write_of_a_large_value_is_503_and_writes_nothing(service: CacheService, aws: AwsClients) -> None:
    with Stubber(service._artifacts._s3) as stubber:
        stubber.add_client_error("put_object", service_error_code="SlowDown", http_status_code=503)
        response = call("PUT", "/cache/big", {"value": "x" * ONE_MB})
        stubber.assert_no_pending_responses()
    assert_error(response, 503, "service_unavailable")
    assert table_items(aws) == []
    assert cache_objects(aws) == []


def test_failed_item_write_removes_its_own_s3_object(
    service: CacheService, aws: AwsClients, monkeypatch: pytest.MonkeyPatch
) -> None:
    put("kept", "old")

    def busy(*_: Any, **__: Any) -> None:
        raise ServiceUnavailable("DynamoDB is busy (test).")

    monkeypatch.setattr(service._table, "put_value", busy)
    assert_error(call("PUT", "/cache/kept", {"value": "x" * ONE_MB}), 503)
    monkeypatch.setattr(service._table, "put_element", busy)
    assert_error(call("PUT", "/cache/push/list", {"value": "x" * ONE_MB}), 503)
    assert cache_objects(aws) == []
    assert call("GET", "/cache/kept").json() == "old"
