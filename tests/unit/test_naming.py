import pytest

from lrnstak.errors import InvalidInput
from lrnstak.naming import check_model_name, check_version_to_read, check_version_to_write, next_free_version


@pytest.mark.parametrize("name", ["a", "Model_1", "m.v-2", "9", "x" * 128])
def test_valid_names(name: str) -> None:
    assert check_model_name(name) == name


@pytest.mark.parametrize("name", ["", "a/b", "..", ".hidden", "-x", "has space", "x" * 129, "é", "a%2Fb", "a\n"])
def test_invalid_names_say_what_is_allowed(name: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        check_model_name(name)
    assert "model name" in raised.value.message
    assert "A-Z a-z 0-9" in raised.value.message


def test_latest_is_readable_but_reserved_for_writing() -> None:
    assert check_version_to_read("latest") == "latest"
    for reserved in ("latest", "best"):
        with pytest.raises(InvalidInput, match="reserved"):
            check_version_to_write(reserved)


def test_next_free_version_is_one_past_the_highest_v_number() -> None:
    assert next_free_version(set()) == "v1"
    assert next_free_version({"v1", "v2", "prod"}) == "v3"
    assert next_free_version({"v10", "v9"}) == "v11"
    assert next_free_version({"v01x", "release"}) == "v1"
