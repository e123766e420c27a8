"""What the command line prints: aligned text tables for people, JSON for programs, one-line errors."""

import dataclasses
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], stream: TextIO | None = None) -> None:
    """Columns as wide as their widest cell, two spaces apart; numbers right-aligned."""
    out = stream or sys.stdout
    cells = [[cell_text(cell) for cell in row] for row in rows]
    widths = [max(len(text) for text in column) for column in zip(headers, *cells, strict=True)]
    numeric = [
        all(isinstance(row[i], int | float) and not isinstance(row[i], bool) for row in rows)
        for i in range(len(headers))
    ]
    for row in [list(headers), *cells]:
        parts = [
            text.rjust(width) if numeric[i] and row is not headers else text.ljust(width)
            for i, (text, width) in enumerate(zip(row, widths, strict=True))
        ]
        out.write("  ".join(parts).rstrip() + "\n")


def cell_text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list | tuple):
        return ", ".join(cell_text(item) for item in value)
    if isinstance(value, dict):
        return ", ".join(f"{key}={cell_text(item)}" for key, item in value.items())
    return str(value)


def plain(value: Any) -> Any:
    """Dataclasses (the client's records) as dicts, for JSON."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def print_json(value: Any, stream: TextIO | None = None) -> None:
    (stream or sys.stdout).write(json.dumps(plain(value), indent=2, default=str) + "\n")


def one_line(text: str) -> str:
    return " ".join(text.split())


def error(message: str) -> None:
    sys.stderr.write(f"lrnstak: error: {one_line(message)}\n")
    sys.stderr.flush()
