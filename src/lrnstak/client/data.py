"""The inputs the client takes (rows, a pandas DataFrame, a CSV file) as the API's rows, and back.

pandas is optional: a DataFrame can only be passed by someone who imported pandas, so it is recognised
through sys.modules and never imported here unless a DataFrame has to be built for one that was given.
"""

import csv
import importlib
import io
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lrnstak.client.errors import LrnstakError
from lrnstak.datasets import csv_cell

# What train, predict and predict_batch take as data.
Rows = Sequence[dict[str, Any]] | Any  # rows (dicts, or lists under `columns`), a DataFrame, or a CSV path


def is_dataframe(value: Any) -> bool:
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(value, pandas.DataFrame)


def is_path(value: Any) -> bool:
    return isinstance(value, str | os.PathLike)


def dataframe_rows(frame: Any) -> list[dict[str, Any]]:
    # pandas' own JSON writer turns numpy types, NaN (null) and timestamps (ISO 8601) into what the API reads.
    rows: list[dict[str, Any]] = json.loads(frame.to_json(orient="records", date_format="iso", date_unit="s"))
    return rows


def csv_rows(text: str) -> list[dict[str, Any]]:
    """Typed as the API types CSV datasets: empty is missing, integers and decimals are numbers."""
    return [{name: csv_cell(cell or "") for name, cell in row.items()} for row in csv.DictReader(io.StringIO(text))]


def read_csv_file(path: str | os.PathLike[str]) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise LrnstakError(
            f"Cannot read {os.fspath(path)!r}: {error.strerror or error}", code="invalid_input"
        ) from None


def as_rows(data: Any) -> list[Any]:
    """Rows for a JSON body, from rows, a DataFrame or the path of a CSV file."""
    if is_dataframe(data):
        return dataframe_rows(data)
    if is_path(data):
        return csv_rows(read_csv_file(data).decode("utf-8-sig"))
    if isinstance(data, dict | str | bytes) or not isinstance(data, Sequence):
        raise LrnstakError(
            f"Data must be a list of rows (dicts), a pandas DataFrame or a CSV file's path, not {type(data).__name__}.",
            code="invalid_input",
        )
    return list(data)


def entries_as(entries: list[Any], like: Any) -> Any:
    """A DataFrame (indexed like the input) when the input was one, else the entries themselves."""
    if not is_dataframe(like):
        return entries
    pandas = importlib.import_module("pandas")
    return pandas.DataFrame(entries, index=like.index if len(entries) == len(like) else None)


def jsonl_entries(data: bytes) -> list[Any]:
    return [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
