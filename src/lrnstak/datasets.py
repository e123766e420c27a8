"""Datasets uploaded through POST /datasets: ids, and parsing CSV, JSON and JSON-lines into rows."""

import csv
import io
import math
import re
from typing import Any

from lrnstak import json_codec
from lrnstak.errors import InvalidInput

FORMATS = ("csv", "json", "jsonl")
# The id carries the format, so reading a dataset needs no second lookup.
DATASET_ID = re.compile(r"[0-9a-f]{32}\.(csv|json|jsonl)")
INTEGER = re.compile(r"[+-]?\d+")


def dataset_key(dataset_id: str) -> str:
    if not DATASET_ID.fullmatch(dataset_id):
        raise InvalidInput(
            f"Unknown dataset id {dataset_id!r}: create one with POST /datasets and upload to its upload_url.",
            {"field": "dataset"},
        )
    return f"datasets/{dataset_id}"


def csv_cell(text: str) -> Any:
    """CSV has no types: empty is missing, integers and finite decimals are numbers, the rest is text."""
    value = text.strip()
    if not value:
        return None
    if INTEGER.fullmatch(value):
        try:
            return int(value)
        except ValueError:  # more digits than Python converts (4,300): no number a model takes; stays text
            return text
    try:
        number = float(value)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def parse_dataset(dataset_id: str, data: bytes) -> list[dict[str, Any]]:
    dataset_format = dataset_id.rsplit(".", 1)[1]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidInput(f"Dataset {dataset_id} is not UTF-8 text: {error}", {"dataset": dataset_id}) from error
    if dataset_format == "csv":
        return [{name: csv_cell(cell or "") for name, cell in row.items()} for row in csv.DictReader(io.StringIO(text))]
    if dataset_format == "jsonl":
        return [_json(line, dataset_id, number) for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    document = _json(text, dataset_id, None)
    rows = document.get("training_data", document.get("data")) if isinstance(document, dict) else document
    if not isinstance(rows, list):
        raise InvalidInput(
            f'Dataset {dataset_id} must hold a JSON array of rows (or {{"training_data": [...]}}).',
            {"dataset": dataset_id},
        )
    return rows


def _json(text: str, dataset_id: str, line: int | None) -> Any:
    try:
        return json_codec.decode(text)
    except ValueError as error:
        where = f" line {line}" if line is not None else ""
        raise InvalidInput(
            f"Dataset {dataset_id}{where} is not valid JSON: {error}", {"dataset": dataset_id}
        ) from error
