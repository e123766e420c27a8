"""The cache service against moto with an injected clock: expiry exact at the second whatever the table still
holds (moto never deletes expired items), and the races of concurrent writers played out step by step."""

import json
import os
from dataclasses import dataclass
from typing import Any

import pytest

from lrnstak.cache import service as service_module
from lrnstak.cache.service import CacheService
from lrnstak.errors import Conflict, NotFound, PayloadTooLarge
from lrnstak.storage.artifacts import ArtifactStore
from lrnstak.storage.cache_table import CacheTable, ElementItem, StoredValue, ValueItem
from lrnstak.storage.clients import AwsClients


@dataclass
class Clock:
    now: float = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache(aws: AwsClients, clock: Clock) -> CacheService:
    table = CacheTable(aws.dynamodb, os.environ["CACHE_TABLE"])
    return CacheService(table, ArtifactStore(aws.s3, os.environ["MODELS_BUCKET"]), now=clock)


def items(aws: AwsClients, key: str) -> list[dict[str, Any]]:
    found = aws.dynamodb.scan(TableName=os.environ["CACHE_TABLE"], ConsistentRead=True)["Items"]
    return [item for item in found if item["pk"]["S"] == key]


def objects(aws: AwsClients) -> list[str]:
    listed = aws.s3.list_objects_v2(Bucket=os.environ["MODELS_BUCKET"], Prefix="cache/")
    return [obj["Key"] for obj in listed.get("Contents", [])]


def is_missing(cache: CacheService, key: str) -> bool:
    try:
        cache.get_value(key)
    except NotFound:
        return True
    return False


def test_a_value_expires_exactly_at_its_second(cache: CacheService, clock: Clock, aws: AwsClients) -> None:
    cache.put_value("k", "v", ttl=10)
    assert items(aws, "k")[0]["expires_at"] == {"N": "1010"}
    clock.now = 1009.999
    assert cache.get_value("k").json_text == '"v"'
    assert cache.get_value("k").expires_at == 1010
    clock.now = 1010.0
    assert len(items(aws, "k")) == 1
    assert is_missing(cache, "k")
    assert items(aws, "k") == []  # the reader removed it


def test_a_fractional_start_rounds_the_expiry_up(cache: CacheService, clock: Clock) -> None:
    clock.now = 1000.5
    cache.put_value("k", "v", ttl=1)
    clock.now = 1001.9
    assert not is_missing(cache, "k")
    clock.now = 1002.0
    assert is_missing(cache, "k")


def test_no_ttl_never_expires(cache: CacheService, clock: Clock) -> None:
    cache.put_value("k", 0)
    clock.now = 10.0**12
    assert cache.get_value("k").json_text == "0"


def test_ttl_update_shortens_extends_and_removes(cache: CacheService, clock: Clock) -> None:
    cache.put_value("k", "v", ttl=100)
    cache.set_ttl("k", 5)
    assert cache.get_value("k").expires_at == 1005
    clock.now = 1004.0
    cache.set_ttl("k", 100)
    assert cache.get_value("k").expires_at == 1104
    clock.now = 1103.0
    cache.set_ttl("k", 0)
    clock.now = 10.0**9
    assert cache.get_value("k").expires_at is None


def test_ttl_update_of_an_expired_value_is_not_found(cache: CacheService, clock: Clock, aws: AwsClients) -> None:
    cache.put_value("k", "v", ttl=5)
    clock.now = 1005.0
    with pytest.raises(NotFound):
        cache.set_ttl("k", 100)
    assert is_missing(cache, "k")


def test_an_expired_list_is_missing_and_a_push_starts_a_new_one(
    cache: CacheService, clock: Clock, aws: AwsClients
) -> None:
    cache.push_value("l", "old-1", ttl=10)
    cache.push_value("l", "old-2")
    clock.now = 1009.0
    assert cache.peek_value("l", 1).json_text == '"old-1"'
    clock.now = 1010.0
    with pytest.raises(NotFound):
        cache.pop_value("l")
    with pytest.raises(NotFound):
        cache.peek_value("l", 0)
    cache.push_value("l", "new")
    assert cache.get_value("l").json_text == '["new"]'
    assert cache.get_value("l").expires_at is None
    assert len(items(aws, "l")) == 2  # the new meta item and its one element


def test_a_push_onto_a_list_that_expired_unread_does_not_bring_it_back(
    cache: CacheService, clock: Clock, aws: AwsClients
) -> None:
    cache.push_value("l", "old", ttl=10)
    clock.now = 2000.0
    cache.push_value("l", "new")
    assert cache.pop_value("l").json_text == '"new"'
    with pytest.raises(NotFound):
        cache.pop_value("l")


def test_an_expired_value_does_not_block_a_push(cache: CacheService, clock: Clock) -> None:
    cache.put_value("k", "v", ttl=10)
    clock.now = 1010.0
    cache.push_value("k", 1)
    assert cache.get_value("k").json_text == "[1]"


def test_delete_of_an_expired_key_says_it_did_not_exist(cache: CacheService, clock: Clock, aws: AwsClients) -> None:
    cache.put_value("k", "v", ttl=10)
    cache.push_value("l", "v", ttl=10)
    clock.now = 1010.0
    assert cache.delete_value("k") is False
    assert cache.delete_value("l") is False
    assert items(aws, "k") == []
    assert items(aws, "l") == []


# races, played out one step at a time --------------------------------------------------------------------


def test_a_push_whose_list_goes_before_its_element_is_written_lands_in_a_new_list_once(
    cache: CacheService, aws: AwsClients, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache.push_value("l", "old")
    put_element = cache._table.put_element
    written: list[ElementItem] = []

    def list_deleted_first(element: ElementItem) -> None:
        if not written:
            assert cache.delete_value("l") is True  # another client deletes the list under the push
        written.append(element)
        put_element(element)

    monkeypatch.setattr(cache._table, "put_element", list_deleted_first)
    cache.push_value("l", "new")
    assert len(written) == 2  # taken back from the removed list, then pushed onto a new one
    assert written[0].list_id != written[1].list_id
    assert cache.get_value("l").json_text == '["new"]'
    assert len(items(aws, "l")) == 2  # the new list's meta item and its one element, nothing left over


def test_a_push_whose_element_was_written_before_the_list_went_counts_as_earlier(
    cache: CacheService, aws: AwsClients, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache.push_value("l", "old")
    put_element = cache._table.put_element

    def list_deleted_after(element: ElementItem) -> None:
        put_element(element)
        assert cache.delete_value("l") is True  # the delete takes the new element with the list

    monkeypatch.setattr(cache._table, "put_element", list_deleted_after)
    cache.push_value("l", "new")  # not pushed again: it happened before the delete
    assert is_missing(cache, "l")
    assert items(aws, "l") == []


def test_a_push_that_meets_a_value_being_set_is_taken_back_and_refused(
    cache: CacheService, aws: AwsClients, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_element = cache._table.put_element

    def value_written_meanwhile(element: ElementItem) -> None:
        put_element(element)
        # another client's PUT has written its value item and not yet removed the list
        cache._table.put_value(ValueItem("k", StoredValue('"a value"', None, 9), "w", "t", None))

    monkeypatch.setattr(cache._table, "put_element", value_written_meanwhile)
    with pytest.raises(Conflict, match="holds a value"):
        cache.push_value("k", "x" * 400_000)  # large: its S3 object must go too
    assert cache.get_value("k").json_text == '"a value"'
    assert [item["sk"]["S"] for item in items(aws, "k") if item["sk"]["S"].startswith("E#")] == []
    assert objects(aws) == []


def test_a_pop_that_loses_the_front_takes_another_element(cache: CacheService, monkeypatch: pytest.MonkeyPatch) -> None:
    for value in ("a", "b", "c"):
        cache.push_value("l", value)
    claim = cache._table.claim_element
    stolen = []

    def front_taken_first(element: ElementItem, claim_id: str) -> ElementItem | None:
        if not stolen:
            stolen.append(claim(element, "another client"))  # another client pops the front just before this one
        return claim(element, claim_id)

    monkeypatch.setattr(cache._table, "claim_element", front_taken_first)
    popped = cache.pop_value("l").json_text
    assert stolen[0] is not None
    assert stolen[0].value.text == '"c"'
    assert popped in {'"b"', '"a"'}
    # c went to the other client, this pop took one of the rest, and the third is still there
    left = json.loads(cache.get_value("l").json_text)
    assert sorted([json.loads(popped), *left]) == ["a", "b"]


def test_elements_of_a_removed_list_are_invisible_and_swept(cache: CacheService, aws: AwsClients) -> None:
    cache.push_value("l", "live")
    orphan = {"pk": {"S": "l"}, "sk": {"S": "E#00000000000000000001"}, "list_id": {"S": "gone"},
              "value": {"S": '"orphan"'}, "size": {"N": "8"}}  # fmt: skip
    aws.dynamodb.put_item(TableName=os.environ["CACHE_TABLE"], Item=orphan)
    assert cache.get_value("l").json_text == '["live"]'
    assert "E#00000000000000000001" not in [item["sk"]["S"] for item in items(aws, "l")]
    aws.dynamodb.put_item(TableName=os.environ["CACHE_TABLE"], Item=orphan)
    assert cache.delete_value("l") is True
    assert items(aws, "l") == []
    aws.dynamodb.put_item(TableName=os.environ["CACHE_TABLE"], Item={**orphan, "pk": {"S": "bare"}})
    assert cache.delete_value("bare") is False  # no list, but its leftovers go
    assert items(aws, "bare") == []


def test_a_list_too_large_for_one_response_is_413(cache: CacheService, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service_module, "MAX_VALUE_BYTES", 10)
    cache.push_value("l", "12345")
    cache.push_value("l", "67890")
    with pytest.raises(PayloadTooLarge, match="peek or pop"):
        cache.get_value("l")
    assert cache.pop_value("l").json_text == '"67890"'


def test_a_reader_whose_list_was_replaced_meanwhile_keeps_the_new_lists_elements(
    cache: CacheService, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache.push_value("l", "old")
    elements = cache._table.elements
    replaced = []

    def replaced_first(*args: Any, **kwargs: Any) -> Any:
        if not replaced:
            replaced.append(True)  # between this pop's read of the list and its query of the elements
            assert cache.delete_value("l") is True
            cache.push_value("l", "newer")
        return elements(*args, **kwargs)

    monkeypatch.setattr(cache._table, "elements", replaced_first)
    with pytest.raises(NotFound):
        cache.pop_value("l")  # the list it read is gone; the new one's element is not its to take or sweep
    assert cache.get_value("l").json_text == '["newer"]'
