"""Properties of the input coercion at predict time (lrnstak.ml.predicting, lrnstak.ml.frame), and of the
column kinds training decides (lrnstak.ml.frame.infer_kind).

Any JSON value in any cell either coerces or is refused with InvalidInput naming the row and the column,
never another exception; coercion is idempotent; a number written as text reads as the number itself.
"""

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lrnstak.errors import InvalidInput
from lrnstak.ml.frame import AsFloat, RowsToMatrix, as_number, infer_kind, infer_kind_cell_by_cell
from lrnstak.ml.predicting import MatrixInputs, RowInputs, _category, _number, model_input

PROPERTIES = settings(derandomize=True, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# Ints past a float's range (JSON carries integers of up to 4300 digits) and floats that JSON's 1e400 gives.
HUGE_INTS = st.integers(min_value=10**308, max_value=10**400) | st.integers(min_value=-(10**400), max_value=-(10**308))
NUMBERS = st.integers() | HUGE_INTS | st.floats(allow_nan=True, allow_infinity=True)
NUMERIC_TEXT = (
    st.floats(allow_nan=False, allow_infinity=False).map(repr)
    | st.integers().map(str)
    | st.from_regex(r"\A\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d{1,3})?\s*\Z")
    | st.sampled_from(["true", "False", " TRUE ", "nan", "NaN", "inf", "-Infinity", "1e400", "0x10", "1_000", ""])
)
SCALARS = st.none() | st.booleans() | NUMBERS | st.text(max_size=20) | NUMERIC_TEXT
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=12,
)
COLUMNS = st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=4, unique=True)
# Where a cell is: its row number and its column name.
CELL_PLACE = (st.integers(min_value=0, max_value=10**6), st.text(min_size=1, max_size=10))


def attempt[T](call: Callable[[], T]) -> T | InvalidInput:
    """What the call returns, or the InvalidInput it raises; any other exception fails the property."""
    try:
        return call()
    except InvalidInput as error:
        return error


def is_json_scalar(value: Any) -> bool:
    return not isinstance(value, list | dict)


def assert_names_cell(error: InvalidInput, row: int, column: str) -> None:
    assert error.details["row"] == row
    assert error.details["column"] == column
    assert f"Row {row}, column {column!r}" in error.message


@PROPERTIES
@given(JSON_VALUES)
def test_as_number_gives_a_finite_float_or_none(value: Any) -> None:
    number = as_number(value)
    assert number is None or (isinstance(number, float) and math.isfinite(number))
    if number is not None:
        assert as_number(number) == number


@PROPERTIES
@given(st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(["", " ", "\t", "\n "]))
def test_a_float_written_as_text_reads_as_the_float(number: float, padding: str) -> None:
    assert as_number(padding + repr(number) + padding) == as_number(number) == number


@PROPERTIES
@given(st.integers(min_value=-(10**400), max_value=10**400))
def test_an_integer_written_as_text_reads_as_the_integer(number: int) -> None:
    # Both fit a float, or neither does.
    assert as_number(str(number)) == as_number(number)


@PROPERTIES
@given(JSON_VALUES, *CELL_PLACE)
def test_a_numeric_cell_coerces_or_names_its_row_and_column(value: Any, row: int, column: str) -> None:
    number = attempt(lambda: _number(value, row, column))
    if isinstance(number, InvalidInput):
        assert_names_cell(number, row, column)
        assert as_number(value) is None
        return
    assert number is None or math.isfinite(number)
    assert _number(number, row, column) == number  # idempotent


@PROPERTIES
@given(JSON_VALUES, *CELL_PLACE)
def test_a_categorical_cell_keeps_scalars_and_refuses_arrays(value: Any, row: int, column: str) -> None:
    kept = attempt(lambda: _category(value, row, column))
    if isinstance(kept, InvalidInput):
        assert_names_cell(kept, row, column)
        assert not is_json_scalar(value)
        return
    assert is_json_scalar(value)
    assert kept is value


@st.composite
def rows_for(draw: st.DrawFn, columns: list[str]) -> list[dict[str, Any]]:
    """Rows that have most of the columns, with any JSON value in any cell, and sometimes extra columns."""
    names = st.sampled_from(columns) | st.text(max_size=4)
    return draw(st.lists(st.dictionaries(names, JSON_VALUES, max_size=len(columns) + 2), max_size=6))


@PROPERTIES
@given(st.data(), COLUMNS, st.integers(min_value=0, max_value=3), st.integers(min_value=0, max_value=1000))
def test_rows_for_a_trained_pipeline_coerce_or_fail_with_invalid_input(
    data: st.DataObject, columns: list[str], split: int, first_row: int
) -> None:
    inputs = RowInputs(numeric=tuple(columns[:split]), categorical=tuple(columns[split:]), rule_inputs=())
    rows = data.draw(rows_for(columns))
    shaped = attempt(lambda: model_input(inputs, rows, first_row))
    if isinstance(shaped, InvalidInput):
        details = shaped.details
        if "missing_columns" in details:
            assert all(entry["column"] in columns for entry in details["missing_columns"])
        else:
            assert first_row <= details["row"] < first_row + len(rows)
            assert details["column"] in columns
        return
    assert isinstance(shaped, list)
    assert len(shaped) == len(rows)
    for row in shaped:
        assert set(row) == set(columns)
        for column in inputs.numeric:
            assert row[column] is None or math.isfinite(row[column])
    assert model_input(inputs, shaped, first_row) == shaped  # idempotent


@PROPERTIES
@given(st.data(), COLUMNS, st.integers(min_value=0, max_value=1000))
def test_rows_for_an_uploaded_estimator_make_a_float_matrix_or_fail(
    data: st.DataObject, columns: list[str], first_row: int
) -> None:
    inputs = MatrixInputs(columns=tuple(columns), n_features=len(columns))
    rows = data.draw(rows_for(columns))
    matrix = attempt(lambda: model_input(inputs, rows, first_row))
    if isinstance(matrix, InvalidInput):
        if "missing_columns" not in matrix.details:
            assert first_row <= matrix.details["row"] < first_row + len(rows)
            assert matrix.details["column"] in columns
        return
    assert isinstance(matrix, np.ndarray)
    assert matrix.dtype == np.float64
    assert matrix.shape == (len(rows), len(columns))
    assert not np.isinf(matrix).any()
    # The same cells, each coerced alone, give the same numbers (NaN for missing).
    for index, row in enumerate(rows):
        for position, column in enumerate(columns):
            number = _number(row[column], index, column)
            assert (math.isnan(matrix[index, position]) and number is None) or matrix[index, position] == number


@PROPERTIES
@given(st.data(), COLUMNS, st.integers(min_value=0, max_value=3))
def test_rows_to_matrix_gives_floats_and_text_or_fails_with_invalid_input(
    data: st.DataObject, columns: list[str], split: int
) -> None:
    numeric, categorical = columns[:split], columns[split:]
    step = RowsToMatrix(numeric, categorical).fit([])
    rows = data.draw(st.lists(st.dictionaries(st.sampled_from(columns), JSON_VALUES), max_size=6))
    matrix = attempt(lambda: step.transform(rows))
    if isinstance(matrix, InvalidInput):
        assert matrix.details["column"] in numeric
        assert 0 <= matrix.details["row"] < len(rows)
        return
    assert matrix.shape == (len(rows), len(columns))
    block = AsFloat().fit(matrix[:, : len(numeric)]).transform(matrix[:, : len(numeric)])
    assert block.dtype == np.float64
    assert not np.isinf(block).any()
    for cell in matrix[:, len(numeric) :].ravel():
        assert isinstance(cell, str) or (isinstance(cell, float) and math.isnan(cell))
    # What the pipeline's own step makes of a row agrees with the check predict runs before it.
    for index, row in enumerate(rows):
        for position, column in enumerate(numeric):
            number = _number(row.get(column), index, column)
            cell = matrix[index, position]
            assert (number is None and math.isnan(cell)) or cell == number


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (10**400, "beyond the range of numbers a model takes"),
        (math.inf, "beyond the range of numbers a model takes"),
        ("1e400", "is not a number"),
        ("seven", "is not a number"),
    ],
)
def test_the_message_says_what_is_wrong_with_the_value(value: Any, problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem) as caught:
        _number(value, 3, "price")
    assert caught.value.message.startswith("Row 3, column 'price': ")


def kind_or_refusal(call: Callable[[], str]) -> tuple[str, Any]:
    outcome = attempt(call)
    return ("refused", (outcome.message, outcome.details)) if isinstance(outcome, InvalidInput) else ("kind", outcome)


@PROPERTIES
@given(st.lists(JSON_VALUES, max_size=8) | st.lists(SCALARS, min_size=1, max_size=8) | st.lists(NUMBERS, max_size=8))
def test_a_column_kind_decided_in_one_numpy_call_is_the_kind_the_cell_rules_give(cells: list[Any]) -> None:
    assert kind_or_refusal(lambda: infer_kind("c", iter(cells))) == kind_or_refusal(
        lambda: infer_kind_cell_by_cell("c", cells)
    )


def same_cells(left: Any, right: Any) -> bool:
    return bool(left == right) or (
        isinstance(left, float) and isinstance(right, float) and math.isnan(left) and math.isnan(right)
    )


def assert_same_transform(step: RowsToMatrix, rows: list[dict[str, Any]]) -> None:
    """RowsToMatrix by columns gives the cell-by-cell rules' matrix (cells and their types) or error."""
    fast, careful = attempt(lambda: step.transform(rows)), attempt(lambda: step.transform_cell_by_cell(rows))
    if isinstance(careful, InvalidInput):
        assert isinstance(fast, InvalidInput)
        assert (fast.message, fast.details) == (careful.message, careful.details)
        return
    assert isinstance(fast, np.ndarray)
    assert fast.shape == careful.shape
    assert all(same_cells(a, b) and type(a) is type(b) for a, b in zip(fast.ravel(), careful.ravel(), strict=True))


@PROPERTIES
@given(st.data(), COLUMNS, st.integers(min_value=0, max_value=3))
def test_rows_to_matrix_by_columns_gives_what_the_cell_rules_give(
    data: st.DataObject, columns: list[str], split: int
) -> None:
    numeric, categorical = columns[:split], columns[split:]
    step = RowsToMatrix(numeric, categorical).fit([])
    cells = SCALARS | NUMBERS | st.none()
    rows = data.draw(st.lists(st.dictionaries(st.sampled_from(columns), cells), max_size=6))
    assert_same_transform(step, rows)


@pytest.mark.parametrize(
    "cell", ["nan", "NaN", "true", " 1.5 ", "1_000", None, math.nan, 10**400, "1e400", True, "inf", -0.0, 2**63, [1]]
)
@pytest.mark.parametrize("every_column", [True, False], ids=["every row has every column", "a row lacks one"])
def test_rows_to_matrix_by_columns_agrees_on_each_kind_of_cell(cell: Any, every_column: bool) -> None:
    step = RowsToMatrix(["n", "m"], ["c"]).fit([])
    last = {"n": 7, "m": 4.5, "c": None} if every_column else {"m": 4.5, "c": None}
    rows = [{"n": 1.5, "m": 2, "c": "x"}, {"n": cell, "m": 3, "c": cell}, last]
    assert_same_transform(step, rows)
