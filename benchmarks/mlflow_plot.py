"""Run inside the MLflow venv by bench.py (it has matplotlib; the project venv does not): bench.json as a PNG.

One bar per row of the table: the ratio's median with its min-max spread as an error bar, on a log scale,
and the target's threshold as a tick; rows whose target holds are green, the others red.

    python mlflow_plot.py bench.json bench.png
"""

import json
import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def threshold(target: str) -> float | None:
    match = re.search(r"([0-9.]+)x", target)
    return float(match.group(1)) if match else None


def main() -> None:
    document = json.loads(Path(sys.argv[1]).read_text())
    rows = document["rows"]
    labels = [f"{row['scenario']}\n({row['ratio']['of']}; target {row['target']})" for row in rows]
    medians = [row["ratio"]["median"] for row in rows]
    below = [row["ratio"]["median"] - row["ratio"]["min"] for row in rows]
    above = [row["ratio"]["max"] - row["ratio"]["median"] for row in rows]
    colours = ["#2e8b57" if row["holds"] else "#c0392b" for row in rows]
    figure, axes = plt.subplots(figsize=(13, 0.7 * len(rows) + 1.5))
    positions = range(len(rows))
    axes.barh(positions, medians, xerr=[below, above], color=colours, capsize=3)
    for position, row in zip(positions, rows, strict=True):
        limit = threshold(row["target"])
        if limit is not None:
            axes.plot([limit, limit], [position - 0.4, position + 0.4], color="black", linewidth=2)
    axes.set_yticks(list(positions), labels, fontsize=7)
    axes.invert_yaxis()
    axes.set_xscale("log")
    axes.axvline(1.0, color="grey", linewidth=0.8, linestyle=":")
    axes.set_xlabel("ratio, median of repetitions (bar: min-max); black tick: the target")
    machine = document.get("machine", {})
    axes.set_title(f"make bench, {machine.get('date', '')}: green holds, red does not", fontsize=10)
    figure.tight_layout()
    figure.savefig(sys.argv[2], dpi=110)


if __name__ == "__main__":
    main()
