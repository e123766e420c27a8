"""Soak: mixed traffic on the local stack from several client processes for a few minutes, loopback only.

The stack `make run` starts (python -m lrnstak.local, an API key required) gets, from each client process
in a loop: predictions (one row and 200 rows) from two models, cache writes, reads, list pushes and pops
with TTLs, model uploads, synchronous training, and now and then a training job. Uploads and training
overwrite three versions per client, so the data the embedded AWS holds (in the stack's own memory) stays
bounded and the memory figures are the stack's. Every answer's status is
counted. The stack's resident memory (VmRSS) is sampled every second: after a warm-up, at the end, and its
peak. Exits 1 if any answer was a 5xx (or a connection failed); memory is reported, not asserted.

    .venv/bin/python benchmarks/soak.py                  # 180 s, 4 client processes
    .venv/bin/python benchmarks/soak.py --seconds 60 --clients 2
"""

import argparse
import base64
import io
import multiprocessing
import random
import re
import secrets
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import harness  # noqa: F401 - first: points boto3 and Powertools at a fake account
import httpx
from harness import diabetes, iris, machine, print_table, start_stack, train_body, write_results

OPERATIONS = (  # (name, weight)
    ("predict_1", 30),
    ("predict_200", 15),
    ("cache_set", 12),
    ("cache_get", 12),
    ("cache_push", 8),
    ("cache_pop", 8),
    ("upload", 6),
    ("train_sync", 5),
    ("train_job", 2),
    ("bad_input", 2),
)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def model_payload(seed: int) -> str:
    import joblib
    from sklearn.linear_model import LinearRegression

    rng = random.Random(seed)
    x = [[rng.random(), rng.random()] for _ in range(30)]
    y = [a + 2 * b for a, b in x]
    buffer = io.BytesIO()
    joblib.dump(LinearRegression().fit(x, y), buffer)
    return base64.b64encode(buffer.getvalue()).decode()


def client(url: str, key: str, seconds: float, number: int, results: Any) -> None:
    rng = random.Random(number)
    iris_rows = iris().features(200)
    diabetes_rows = diabetes().features(200)
    small_training = iris().training[::3]
    uploads = [model_payload(number * 100 + i) for i in range(3)]
    names, weights = zip(*OPERATIONS, strict=True)
    statuses: Counter[str] = Counter()
    latencies: dict[str, list[float]] = {name: [] for name in names}
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=url, timeout=120, headers={"x-api-key": key}) as http:
        while time.monotonic() < deadline:
            operation = rng.choices(names, weights)[0]
            started = time.perf_counter()
            try:
                response = request(http, operation, rng, number, iris_rows, diabetes_rows, small_training, uploads)
                statuses[f"{operation} {response.status_code}"] += 1
            except httpx.HTTPError as error:
                statuses[f"{operation} {type(error).__name__}"] += 1
            latencies[operation].append(time.perf_counter() - started)
    results.put({"statuses": dict(statuses), "latencies": latencies})


def request(
    http: httpx.Client,
    operation: str,
    rng: random.Random,
    number: int,
    iris_rows: list[dict[str, Any]],
    diabetes_rows: list[dict[str, Any]],
    small_training: list[dict[str, Any]],
    uploads: list[str],
) -> httpx.Response:
    key = f"soak-{number}-{rng.randrange(50)}"
    if operation == "predict_1":
        return http.post("/predict/model/soak-iris", json={"data": [rng.choice(iris_rows)]})
    if operation == "predict_200":
        return http.post("/predict/model/soak-diabetes", json={"data": diabetes_rows, "include_input": False})
    if operation == "cache_set":
        value = {"n": rng.random(), "text": secrets.token_hex(rng.randrange(1, 2000))}
        return http.put(f"/cache/{key}", json={"value": value, "ttl": rng.choice([0, 5, 60])})
    if operation == "cache_get":
        return http.get(f"/cache/{key}")
    if operation == "cache_push":
        return http.put(f"/cache/push/soak-list-{number}", json={"value": rng.random(), "ttl": 120})
    if operation == "cache_pop":
        return http.get(f"/cache/pop/soak-list-{number}")
    if operation == "upload":
        # Overwrites of three versions: the data held stays bounded, so memory growth is the stack's own.
        body = {
            "model": rng.choice(uploads),
            "version": f"v{rng.randrange(3) + 1}",
            "parameters": {"feature_labels": ["a", "b"]},
        }
        return http.post(f"/models/soak-upload-{number}", json=body)
    if operation == "train_sync":
        body = {
            "training_data": small_training,
            "version": f"v{rng.randrange(3) + 1}",
            "parameters": {"target_label": "species", "algorithm": "knn"},
        }
        return http.post(f"/train/soak-trained-{number}", json=body)
    if operation == "train_job":
        body = {
            "training_data": small_training,
            "version": f"v{rng.randrange(3) + 1}",
            "parameters": {"target_label": "species"},
            "async": True,
        }
        return http.post(f"/train/soak-job-{number}", json=body)
    return http.post("/predict/model/soak-iris", json={"data": [{"sepal_length": "long"}]})


def data_held(endpoint: str) -> dict[str, float]:
    """What the embedded AWS holds in the stack's memory: S3 bytes (every object version: the bucket is
    versioned, so overwrites keep the old bytes, as in AWS) and DynamoDB items."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint)
    dynamodb = boto3.client("dynamodb", endpoint_url=endpoint)
    stored = 0
    for bucket in s3.list_buckets()["Buckets"]:
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket["Name"]):
            stored += sum(version["Size"] for version in page.get("Versions", []))
    items = 0
    for table in dynamodb.list_tables()["TableNames"]:
        items += sum(page["Count"] for page in dynamodb.get_paginator("scan").paginate(TableName=table, Select="COUNT"))
    return {"s3_mib": round(stored / 2**20, 1), "dynamodb_items": items}


def sample_memory(pid: int, samples: list[tuple[float, int]], stop: threading.Event) -> None:
    started = time.monotonic()
    while not stop.wait(1.0):
        try:
            samples.append((time.monotonic() - started, rss_kib(pid)))
        except OSError:
            return


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=180, help="traffic duration (180)")
    parser.add_argument("--clients", type=int, default=4, help="client processes (4)")
    parser.add_argument("--warmup", type=float, default=20, help="seconds of traffic before the first RSS (20)")
    arguments = parser.parse_args()

    key = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="lrnstak-soak-") as folder:
        import os

        os.environ["LRNSTAK_API_KEY"] = key
        stack = start_stack(Path(folder))
        try:
            with httpx.Client(base_url=stack.url, timeout=120, headers={"x-api-key": key}) as http:
                for name, dataset, algorithm in (
                    ("soak-iris", iris(), "random_forest"),
                    ("soak-diabetes", diabetes(), "ridge"),
                ):
                    trained = http.post(f"/train/{name}", json=train_body(dataset, algorithm))
                    trained.raise_for_status()
            pid = stack.process.pid
            samples: list[tuple[float, int]] = []
            stop = threading.Event()
            sampler = threading.Thread(target=sample_memory, args=(pid, samples, stop), daemon=True)
            endpoint = re.search(r"embedded AWS at (http://[\d.:]+)", stack.log.read_text()).group(1)  # type: ignore[union-attr]
            data_before = data_held(endpoint)
            started_rss = rss_kib(pid)
            sampler.start()
            results: Any = multiprocessing.Queue()
            processes = [
                multiprocessing.Process(target=client, args=(stack.url, key, arguments.seconds, n, results))
                for n in range(arguments.clients)
            ]
            for process in processes:
                process.start()
            outcomes = [results.get(timeout=arguments.seconds + 300) for _ in processes]
            for process in processes:
                process.join()
            stop.set()
            sampler.join()
            ended_rss = rss_kib(pid)
            data_after = data_held(endpoint)
        finally:
            code = stack.stop()

    statuses: Counter[str] = Counter()
    latencies: dict[str, list[float]] = {}
    for outcome in outcomes:
        statuses.update(outcome["statuses"])
        for name, values in outcome["latencies"].items():
            latencies.setdefault(name, []).extend(values)
    after_warmup = [rss for at, rss in samples if at >= arguments.warmup] or [started_rss]
    failures = {k: v for k, v in statuses.items() if k.split()[1][0] == "5" or not k.split()[1].isdigit()}
    total = sum(statuses.values())
    rows = [
        [name, len(values), f"{sorted(values)[len(values) // 2] * 1000:.1f}" if values else "-"]
        for name, values in sorted(latencies.items())
    ]
    print_table(["operation", "requests", "p50 ms"], rows)
    print()
    print_table(["operation status", "count"], sorted(statuses.items()))
    print()
    memory = {
        "before_traffic_mib": round(started_rss / 1024, 1),
        "after_warmup_mib": round(after_warmup[0] / 1024, 1),
        "end_mib": round(ended_rss / 1024, 1),
        "peak_mib": round(max(rss for _, rss in samples) / 1024, 1) if samples else None,
        "growth_after_warmup_mib": round((ended_rss - after_warmup[0]) / 1024, 1),
    }
    print(
        f"{total} requests from {arguments.clients} processes in {arguments.seconds:.0f} s; "
        f"5xx or failed connections: {sum(failures.values())}; stack exit code {code}"
    )
    print("stack RSS (MiB): " + ", ".join(f"{k} {v}" for k, v in memory.items()))
    print(f"held by the embedded AWS (in that RSS): before {data_before}, after {data_after}")
    path = write_results(
        "soak",
        {
            "arguments": vars(arguments),
            "machine": machine(),
            "statuses": dict(statuses),
            "memory": memory,
            "data_held": {"before": data_before, "after": data_after},
        },
    )
    print(f"written to {path}")
    return 1 if failures or code != 0 else 0


if __name__ == "__main__":
    sys.exit(main())
