"""The issue's batch path over real HTTP on the stack `make run` starts: a 100,000-row dataset uploaded
through /datasets, predicted by a job in the worker, its output equal to direct predictions of the same rows."""

import csv
import io
import time
from typing import Any

import httpx
import numpy as np

from support.stack import RunningStack

ROWS = 100_000
CHUNK = 20_000  # direct predictions in requests well under the 6 MB limit


def shop_rows(count: int, seed: int) -> list[dict[str, Any]]:
    """Numeric, categorical and datetime columns, so the saved pipeline's rules run on every row."""
    rng = np.random.default_rng(seed)
    basket = rng.gamma(2.0, 30.0, count).round(2)
    visits = rng.integers(0, 40, count)
    channel = rng.choice(["web", "app", "store"], count)
    day = rng.integers(1, 29, count)
    rows = []
    for index in range(count):
        rows.append(
            {
                "basket": float(basket[index]),
                "visits": int(visits[index]),
                "channel": str(channel[index]),
                "when": f"2026-{1 + index % 12:02d}-{int(day[index]):02d}T10:00:00Z",
            }
        )
    return rows


def label(row: dict[str, Any]) -> str:
    score = row["basket"] / 60 + row["visits"] / 20 + (0.8 if row["channel"] == "app" else 0.0)
    return "loyal" if score > 2.2 else "casual"


def as_csv(rows: list[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def test_a_100000_row_dataset_predicts_as_a_job_matching_direct_predictions(stack: RunningStack) -> None:
    with httpx.Client(base_url=stack.url, timeout=120) as http:
        training = [{**row, "segment": label(row)} for row in shop_rows(3_000, seed=1)]
        parameters = {
            "target_label": "segment",
            "algorithm": "decision_tree",
            "rules": {"extract": {"when": {"type": "datetime", "elements": ["month", "day_of_week"]}}},
        }
        trained = http.post("/train/shoppers", json={"training_data": training, "parameters": parameters})
        assert trained.status_code == 200, trained.text

        rows = shop_rows(ROWS, seed=2)
        dataset = http.post("/datasets", json={"format": "csv"}).json()
        assert httpx.put(dataset["upload_url"], content=as_csv(rows), timeout=120).status_code == 200
        submitted = http.post("/predict/model/shoppers/batch", json={"dataset": dataset["dataset_id"]})
        assert submitted.status_code == 202, submitted.text
        link = submitted.headers["location"]

        deadline = time.monotonic() + 240
        job = http.get(link).json()
        while job["status"] in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.5)
            job = http.get(link).json()
        assert job["status"] == "succeeded", job
        assert job["output"]["rows"] == ROWS

        output = httpx.get(job["output"]["url"], timeout=120)
        assert output.status_code == 200
        lines = list(csv.DictReader(io.StringIO(output.text)))
        assert len(lines) == ROWS
        assert list(lines[0]) == ["basket", "visits", "channel", "when", "prediction"]

        direct: list[Any] = []
        for start in range(0, ROWS, CHUNK):
            body = {"data": rows[start : start + CHUNK], "include_input": False}
            answer = http.post("/predict/model/shoppers", json=body)
            assert answer.status_code == 200, answer.text
            direct.extend(entry["prediction"] for entry in answer.json())
        assert [line["prediction"] for line in lines] == direct
        assert {"loyal", "casual"} == set(direct)
        assert [(line["channel"], line["when"]) for line in lines[:3]] == [
            (row["channel"], row["when"]) for row in rows[:3]
        ]
