"""The cache's rules for keys, ttls, expiry and values, without AWS."""

import json
from typing import Any

import pytest

from lrnstak.cache.service import (
    MAX_TTL_SECONDS,
    check_key,
    check_ttl,
    encode_value,
    expiry_time,
    is_expired,
    object_key_for,
)
from lrnstak.errors import InvalidInput


@pytest.mark.parametrize("key", ["a", "Z9", "a-b.c_d~e", "!$&'()*+,;=:@", "x" * 512, "ttl", "..."])
def test_path_safe_keys_are_valid(key: str) -> None:
    assert check_key(key) == key


@pytest.mark.parametrize(
    "key", ["", "x" * 513, "a/b", "a%2Fb", "a b", "é", "a\nb", 'a"b', "a#b", "a?b", "a[0]", "a\\b", "a<b>", "{k}"]
)
def test_other_keys_are_refused_naming_the_rule(key: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        check_key(key)
    assert "512 characters" in raised.value.message
    assert raised.value.details["field"] == "key"


@pytest.mark.parametrize("ttl", [0, 1, 60, MAX_TTL_SECONDS])
def test_whole_seconds_up_to_ten_years_are_ttls(ttl: int) -> None:
    assert check_ttl(ttl) == ttl


@pytest.mark.parametrize("ttl", [-1, MAX_TTL_SECONDS + 1, True, False, 5.0, 1.5, "5", None, [5], {"s": 5}])
def test_other_ttls_are_refused_naming_ttl(ttl: Any) -> None:
    with pytest.raises(InvalidInput) as raised:
        check_ttl(ttl)
    assert "`ttl`" in raised.value.message


def test_ten_years_is_ten_julian_years() -> None:
    assert MAX_TTL_SECONDS == 10 * 365.25 * 24 * 3600


def test_expiry_is_never_early_and_at_most_a_second_late() -> None:
    assert expiry_time(0, 1000.0) is None
    assert expiry_time(1, 1000.0) == 1001
    assert expiry_time(1, 1000.2) == 1002
    assert expiry_time(10, 1000.999) == 1011


def test_expired_means_at_or_after_the_second() -> None:
    assert not is_expired(None, 10**12)
    assert not is_expired(1001, 1000.999)
    assert is_expired(1001, 1001.0)
    assert is_expired(1001, 1001.5)


@pytest.mark.parametrize("value", [0, False, "", [], {}, None, 1.0, 10**40, "é\ud800", {"a": [None, {"b": 0}]}])
def test_values_encode_to_json_that_decodes_to_them(value: Any) -> None:
    text = encode_value(value)
    assert text.isascii()
    assert json.dumps(json.loads(text), sort_keys=True) == json.dumps(value, sort_keys=True)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), [float("-inf")]])
def test_numbers_json_cannot_carry_are_refused(value: Any) -> None:
    with pytest.raises(InvalidInput, match="value"):
        encode_value(value)


def test_object_keys_are_unique_per_write_and_free_of_the_key_text() -> None:
    first, second = object_key_for("user:1/../x"), object_key_for("user:1/../x")
    assert first != second
    assert first.startswith("cache/")
    assert first.split("/")[1] == second.split("/")[1]
    assert "user" not in first
    assert len(first.split("/")) == 3
