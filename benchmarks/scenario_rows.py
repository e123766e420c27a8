"""The result rows cold_start.py, training.py and registry_list.py write, in the shape bench.py reads.

Each script writes benchmarks/results/<group>.json: {"rows": [row, ...], "machine": {...}, "args": {...}}.
A row holds one figure per repetition for lrnstak and its reference; the ratio is taken per repetition (the
two measured back to back in it), then summarised, because the machine is shared and noisy.
"""

import argparse
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import harness


def stat(runs: Sequence[float]) -> dict[str, Any]:
    return {"median": statistics.median(runs), "min": min(runs), "max": max(runs), "runs": list(runs)}


def ratio(of: str, numerators: Sequence[float], denominators: Sequence[float]) -> dict[str, Any]:
    values = [a / b for a, b in zip(numerators, denominators, strict=True)]
    return {"of": of, "median": statistics.median(values), "min": min(values), "max": max(values)}


def against_floor(
    scenario: str, unit: str, lrnstak: Sequence[float], floor: Sequence[float], limit: float
) -> dict[str, Any]:
    """A row whose target is `lrnstak <= limit x floor`, judged on the median of the per-repetition ratios."""
    measured = ratio("lrnstak/floor", lrnstak, floor)
    return {
        "scenario": scenario,
        "unit": unit,
        "lrnstak": stat(lrnstak),
        "mlflow": None,
        "floor": stat(floor),
        "ratio": measured,
        "target": f"<= {limit:g}x floor",
        "holds": measured["median"] <= limit,
    }


def within(
    scenario: str, unit: str, lrnstak: Sequence[float], limit: float, floor: Sequence[float] | None
) -> dict[str, Any]:
    """A row whose target is an absolute bound (`lrnstak <= limit`); the floor, if any, is for context."""
    return {
        "scenario": scenario,
        "unit": unit,
        "lrnstak": stat(lrnstak),
        "mlflow": None,
        "floor": stat(floor) if floor is not None else None,
        "ratio": ratio("lrnstak/floor", lrnstak, floor)
        if floor is not None
        else ratio("lrnstak/target", lrnstak, [limit] * len(lrnstak)),
        "target": f"<= {limit:g} {unit}",
        "holds": statistics.median(lrnstak) <= limit,
    }


def repetitions_argument(parser: argparse.ArgumentParser, default: int = 3) -> None:
    parser.add_argument(
        "--repetitions", type=int, default=default, help=f"repetitions of each scenario, at least 3 ({default})"
    )


def write_group(group: str, rows: list[dict[str, Any]], args: argparse.Namespace, extra: dict[str, Any]) -> Path:
    document = {"rows": rows, "machine": harness.machine(), "args": vars(args), **extra}
    return harness.write_results(group, document)


def print_rows(rows: list[dict[str, Any]]) -> None:
    headers = ["scenario", "unit", "lrnstak", "spread", "floor", "ratio", "spread", "target", "holds"]
    table = []
    for row in rows:
        floor = row["floor"]
        table.append(
            [
                row["scenario"],
                row["unit"],
                row["lrnstak"]["median"],
                f"{row['lrnstak']['min']:.4g}-{row['lrnstak']['max']:.4g}",
                floor["median"] if floor else None,
                row["ratio"]["median"],
                f"{row['ratio']['min']:.3g}-{row['ratio']['max']:.3g}",
                row["target"],
                "yes" if row["holds"] else "NO",
            ]
        )
    harness.print_table(headers, table)
