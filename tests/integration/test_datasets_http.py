"""The issue's large-data path over real HTTP: a 50 MB CSV uploaded through /datasets trains as a job."""

import csv
import io
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from support.stack import RunningStack, start_stack

TARGET_BYTES = 50 * 1024 * 1024


def fifty_megabyte_csv() -> bytes:
    rng = np.random.default_rng(0)
    columns = [f"x{i}" for i in range(8)]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*columns, "segment", "y"])
    weights = rng.normal(size=8)
    while out.tell() < TARGET_BYTES:
        block = rng.normal(size=(5000, 8)).round(6)
        targets = block @ weights + rng.normal(scale=0.01, size=5000)
        for values, target in zip(block, targets, strict=True):
            writer.writerow([*values, "abc"[int(abs(values[0]) * 10) % 3], round(float(target), 6)])
    return out.getvalue().encode()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = start_stack(Path(tmp_path_factory.mktemp("datasets")))
    yield running
    running.stop()


def test_a_50_mb_csv_uploaded_through_datasets_trains_through_a_job(stack: RunningStack) -> None:
    data = fifty_megabyte_csv()
    assert len(data) >= TARGET_BYTES
    with stack.client() as client:
        dataset = client.post("/datasets", json={"format": "csv"}).json()
        upload = httpx.put(dataset["upload_url"], content=data, timeout=120)
        assert upload.status_code == 200, upload.text
        body = {
            "dataset": dataset["dataset_id"],
            "async": True,
            "parameters": {"target_label": "y", "algorithm": "linear_regression"},
        }
        accepted = client.post("/train/big-csv", json=body)
        assert accepted.status_code == 202, accepted.text
        link = accepted.json()["links"]["self"]
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            job = client.get(link).json()
            if job["status"] in ("succeeded", "failed"):
                break
            time.sleep(1)
        assert job["status"] == "succeeded", job
        metadata = job["training_results"]["metadata"]
        assert metadata["rows"] > 400_000
        assert job["training_results"]["results"]["linear_regression"] < 0.01
        assert client.get("/models/big-csv").json()["versions"][0]["version"] == job["version"]
