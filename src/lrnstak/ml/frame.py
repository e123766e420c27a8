"""From rows (JSON objects) to the matrix scikit-learn fits, inside the saved pipeline.

The first steps of every pipeline lrnstak trains take the client's rows as they come (a list of dicts), so
predict needs nothing but the rows. Column kinds are decided at training and saved with the version.
"""

import math
import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, TransformerMixin

from lrnstak.errors import InvalidInput

NUMERIC = "numeric"
CATEGORICAL = "categorical"
BOOLEAN_STRINGS = {"true": 1.0, "false": 0.0}


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def as_number(value: Any) -> float | None:
    """A JSON value as a finite float, or None when it is not one (bools count as 0/1).

    Numbers beyond a float's range are not numbers a model can take: JSON's 1e400 arrives as infinity and
    an integer of 310 digits does not fit a float at all; both give None, like text that is not a number.
    """
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:
            return None
    elif isinstance(value, str):
        text = value.strip()
        if text.lower() in BOOLEAN_STRINGS:
            return BOOLEAN_STRINGS[text.lower()]
        try:
            number = float(text)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def is_out_of_range(value: Any) -> bool:
    """A JSON number that as_number refuses: infinite, or too large for a float."""
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    return is_number and not is_missing(value) and as_number(value) is None


def shown(value: Any) -> str:
    """A value as an error message quotes it: its repr, cut to 60 characters."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        # Python refuses to write out an integer of more than 4300 digits; past 60 none would be shown anyway.
        return f"an integer of about {round(value.bit_length() * math.log10(2))} digits"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class ColumnProblem:
    column: str
    message: str


def infer_kind(column: str, values: Iterable[Any]) -> str:
    """numeric when every present value is (or reads as) a number; categorical when all are text."""
    cells = list(values)
    numbers = column_floats(cells)
    if numbers is not None and not bool(np.isnan(numbers).all()):
        return NUMERIC  # the common case, decided in one numpy call instead of as_number on every cell
    return infer_kind_cell_by_cell(column, cells)


def infer_kind_cell_by_cell(column: str, cells: list[Any]) -> str:
    """infer_kind's rules, one cell at a time."""
    present = [value for value in cells if not is_missing(value)]
    if not present:
        raise InvalidInput(f"Column {column!r} has no values: drop it from feature_labels.", {"column": column})
    if any(isinstance(value, list | dict) for value in present):
        raise InvalidInput(
            f"Column {column!r} holds arrays or objects: add a flatten, expand or classify rule for it, "
            "or leave it out of feature_labels.",
            {"column": column},
        )
    if all(as_number(value) is not None for value in present):
        return NUMERIC
    if all(isinstance(value, str) for value in present):
        return CATEGORICAL
    huge = next((value for value in present if is_out_of_range(value)), None)
    if huge is not None:
        raise InvalidInput(
            f"Column {column!r} holds {shown(huge)}, which is beyond the range of numbers a model takes "
            "(about ±1.8e308): send a smaller number, or null for a missing value.",
            {"column": column},
        )
    # Numbers and text that does not read as a number: no single kind fits the column.
    text = next(value for value in present if isinstance(value, str) and as_number(value) is None)
    raise InvalidInput(
        f"Column {column!r} mixes numbers with text that cannot be read as a number (e.g. {text!r}).",
        {"column": column, "value": text},
    )


class RowsToMatrix(TransformerMixin, BaseEstimator):
    """Rows (dicts) -> a 2-D object array: numeric columns first (as floats, NaN when missing), then
    categorical ones (as text, NaN when missing). Values are coerced to the kind seen at training."""

    def __init__(self, numeric_columns: Sequence[str] = (), categorical_columns: Sequence[str] = ()) -> None:
        self.numeric_columns = numeric_columns
        self.categorical_columns = categorical_columns

    def fit(self, rows: Sequence[dict[str, Any]], y: Any = None) -> "RowsToMatrix":
        self.n_features_in_ = len(self.numeric_columns) + len(self.categorical_columns)
        return self

    def transform(self, rows: Sequence[dict[str, Any]]) -> npt.NDArray[Any]:
        numeric = list(self.numeric_columns)
        numbers = _numeric_block(rows, numeric)
        if numbers is None:
            return self.transform_cell_by_cell(rows)  # it names the first refused cell, row by row
        matrix = np.empty((len(rows), len(numeric) + len(self.categorical_columns)), dtype=object)
        matrix[:, : len(numeric)] = numbers
        for position, name in enumerate(self.categorical_columns, start=len(numeric)):
            matrix[:, position] = [np.nan if is_missing(value) else _text(value) for value in _cells(rows, name)]
        return matrix

    def transform_cell_by_cell(self, rows: Sequence[dict[str, Any]]) -> npt.NDArray[Any]:
        """transform's rules, one cell at a time."""
        numeric = list(self.numeric_columns)
        categorical = list(self.categorical_columns)
        matrix = np.empty((len(rows), len(numeric) + len(categorical)), dtype=object)
        for index, row in enumerate(rows):
            for position, column in enumerate(numeric):
                matrix[index, position] = _numeric_cell(row.get(column), index, column)
            for position, column in enumerate(categorical, start=len(numeric)):
                value = row.get(column)
                matrix[index, position] = np.nan if is_missing(value) else _text(value)
        return matrix

    def get_feature_names_out(self, input_features: Any = None) -> npt.NDArray[Any]:
        return np.asarray([*self.numeric_columns, *self.categorical_columns], dtype=object)


def _cells(rows: Sequence[dict[str, Any]], column: str) -> list[Any]:
    return [row.get(column) for row in rows]


def as_floats(cells: Iterable[Any], count: int, cell: Callable[[int], Any]) -> npt.NDArray[np.float64] | None:
    """`count` cells as floats in one numpy call, each as _numeric_cell converts it: numpy converts as float()
    does (numbers, booleans, text that reads as a number) and reads null as NaN. None when a cell is one that
    _numeric_cell refuses or numpy cannot convert ("true" as text, say): the cell-by-cell rules decide those.
    `cell(index)` gives back a cell, to tell a missing value from "nan" written as text. A KeyError that
    reading the cells raises goes to the caller."""
    try:
        numbers = np.fromiter(cells, dtype=np.float64, count=count)
    except (TypeError, ValueError, OverflowError):
        return None
    if bool(np.isinf(numbers).any()):
        return None
    if any(not is_missing(cell(index)) for index in np.flatnonzero(np.isnan(numbers)).tolist()):
        return None
    return numbers


def column_floats(cells: list[Any]) -> npt.NDArray[np.float64] | None:
    """One column's cells as floats (as_floats)."""
    return as_floats(cells, len(cells), cells.__getitem__)


def float_matrix(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> npt.NDArray[np.float64] | None:
    """These columns of the rows as a float matrix, in one pass over the rows (as_floats: None for a cell the
    cell-by-cell rules must decide); KeyError when a row lacks one of the columns."""
    width = len(columns)
    pick = operator.itemgetter(*columns)
    cells = chain.from_iterable(map(pick, rows)) if width > 1 else map(pick, rows)
    numbers = as_floats(cells, len(rows) * width, lambda index: rows[index // width][columns[index % width]])
    return None if numbers is None else numbers.reshape(len(rows), width)


def _numeric_block(rows: Sequence[dict[str, Any]], columns: list[str]) -> npt.NDArray[np.float64] | None:
    """The numeric columns as a float matrix: in one pass when every row has every column, else a column at a
    time, a missing column read as null."""
    if not columns:
        return np.empty((len(rows), 0), dtype=np.float64)
    try:
        return float_matrix(rows, columns)
    except KeyError:
        by_column = [column_floats(_cells(rows, column)) for column in columns]
        converted = [column for column in by_column if column is not None]
        return np.column_stack(converted) if len(converted) == len(columns) else None


def _numeric_cell(value: Any, row: int, column: str) -> float:
    if is_missing(value):
        return math.nan
    number = as_number(value)
    if number is None:
        raise not_a_number(value, row, column)
    return number


def not_a_number(value: Any, row: int, column: str) -> InvalidInput:
    """The error for a value of a numeric column that as_number refuses."""
    if is_out_of_range(value):
        problem = "is beyond the range of numbers a model takes (about ±1.8e308)"
    else:
        problem = "is not a number"
    return InvalidInput(
        f"Row {row}, column {column!r}: {shown(value)} {problem}, and this column was numeric at training.",
        {"row": row, "column": column},
    )


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class AsFloat(TransformerMixin, BaseEstimator):
    """The numeric block of the object matrix as float64, so imputers and scalers take it."""

    def fit(self, matrix: npt.NDArray[Any], y: Any = None) -> "AsFloat":
        self.n_features_in_ = matrix.shape[1]
        return self

    def transform(self, matrix: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        return np.asarray(matrix, dtype=np.float64)

    def get_feature_names_out(self, input_features: Any = None) -> npt.NDArray[Any]:
        return np.asarray(input_features if input_features is not None else [], dtype=object)
