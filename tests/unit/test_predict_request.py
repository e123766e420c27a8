"""PredictModelRequest.from_json: orjson's parse is trusted to hold no infinity, so rows skip the walk that
looks for one; a number beyond a float's range still gets numbers_are_finite's 400 through pydantic."""

import orjson
import pytest

from lrnstak.errors import InvalidInput
from lrnstak.schemas.predict import PredictModelRequest


@pytest.mark.parametrize("number", [b"1e400", b"-1e400", b"1" + b"0" * 400, b"1.8e308"])
def test_orjson_refuses_numbers_beyond_a_float_instead_of_reading_infinity(number: bytes) -> None:
    # The pinned orjson's behaviour that from_json relies on: an upgrade that reads infinity fails here.
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(b'{"data": [{"a": ' + number + b"}]}")


def test_finite_rows_are_taken_as_parsed() -> None:
    request = PredictModelRequest.from_json(b'{"data": [{"a": 1.5, "b": "x"}, {"a": 1.7976931348623157e308}]}')
    assert request.data == [{"a": 1.5, "b": "x"}, {"a": 1.7976931348623157e308}]


@pytest.mark.parametrize("number", ["1e400", "-1e400"])
def test_a_number_beyond_a_float_is_refused_naming_its_row(number: str) -> None:
    body = f'{{"data": [{{"a": 1}}, {{"a": [2, {{"b": {number}}}]}}]}}'.encode()
    with pytest.raises(InvalidInput, match="`data` row 1"):
        PredictModelRequest.from_json(body)
