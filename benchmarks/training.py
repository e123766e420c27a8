"""Training (group "training"): POST /train on 100,000 rows x 20 columns against the same pipeline in-process.

The data set is generated (sklearn.datasets.make_classification, fixed seed): 20 numeric columns x0..x19,
rounded to 6 significant digits as a client's file would hold them, and an integer class `label`. As JSON it
is ~25 MB, over API Gateway's 6 MB request cap, so it goes the way lrnstak offers for large data:

  lrnstak  on the local stack (`python -m lrnstak.local`, started empty), end to end, per repetition:
           POST /datasets {"format": "json"}, PUT the file to the upload_url it answers (S3, presigned),
           POST /train/{name} {"dataset": id, "parameters": {target_label, task, algorithm}} until the version
           is in the registry: the 200 answer, or the job's success when the answer is 202. Upload, S3 reads,
           JSON parsing, row validation, column kinds, the fit, the scores, the saved pipeline (dump, safe
           reload check, SHA-256, S3 put), the training rows kept with the version, the registry transaction.
  floor    in this process, from the rows already in memory: the pipeline lrnstak builds for them
           (lrnstak.ml.training's build_estimator/build_pipeline: rows-to-matrix, imputer, scaler when the
           algorithm needs it, the estimator, same hyperparameters), fitted on the same hold-out split
           (train_test_split, same test_size and random_state) and scored on the hold-out with the same scores.

Target: lrnstak <= 1.15x the floor. The two run back to back in each repetition (alternating which goes
first). The snapshot the local stack takes of its state every 2 s (a local-stack feature, absent in Lambda)
is given time to finish between runs.

    .venv/bin/python benchmarks/training.py --repetitions 3 --algorithm logistic_regression

Writes benchmarks/results/training.json (bench.py's row format) and prints the rows. Exits 0 whether or not
the target holds.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import harness  # first: it points boto3 and Powertools at a fake account
import httpx
import scenario_rows

from lrnstak.ml.catalog import CATALOG, build_estimator
from lrnstak.ml.training import (
    TrainingSpec,
    build_pipeline,
    fit_candidate,
    score,
    select_columns,
    split,
    target_values,
)

LIMIT = 1.15
TARGET = "label"
TASK = "classification"


def generate_rows(count: int, columns: int, seed: int) -> list[dict[str, Any]]:
    from sklearn.datasets import make_classification

    features, labels = make_classification(
        n_samples=count, n_features=columns, n_informative=columns // 2, random_state=seed
    )
    names = [f"x{index}" for index in range(columns)]
    rounded = [[float(f"{value:.6g}") for value in row] for row in features.tolist()]
    return [
        {**dict(zip(names, row, strict=True)), TARGET: int(label)}
        for row, label in zip(rounded, labels.tolist(), strict=True)
    ]


def train_through_api(client: httpx.Client, model: str, data: bytes, algorithm: str) -> tuple[float, dict[str, Any]]:
    """Seconds from the dataset's creation to the version in the registry, and the answer (or the job)."""
    started = time.perf_counter()
    created = client.post("/datasets", json={"format": "json"})
    created.raise_for_status()
    dataset = created.json()
    httpx.put(dataset["upload_url"], content=data, timeout=300).raise_for_status()
    body = {
        "dataset": dataset["dataset_id"],
        "parameters": {"target_label": TARGET, "task": TASK, "algorithm": algorithm},
    }
    answer = client.post(f"/train/{model}", json=body, timeout=600)
    if answer.status_code == 202:
        job_url = answer.headers["location"]
        while True:
            job = client.get(job_url).json()
            if job["status"] in {"succeeded", "failed"}:
                break
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        if job["status"] != "succeeded":
            raise RuntimeError(f"the training job failed: {job}")
        return seconds, {"job": job}
    seconds = time.perf_counter() - started
    if answer.status_code != 200:
        raise RuntimeError(f"POST /train answered {answer.status_code}: {answer.text[:2000]}")
    return seconds, answer.json()


def fit_and_score(rows: list[dict[str, Any]], algorithm: str) -> tuple[float, dict[str, Any]]:
    """The same pipeline fitted on the same split and scored on the hold-out: seconds, and the scores."""
    spec = TrainingSpec(rows=rows, target=TARGET, task=TASK, algorithms=algorithm)
    # Untimed: what the service decides from the rows before fitting (column kinds, target labels).
    columns = select_columns(spec, rows, None)
    y = target_values(rows, TARGET, TASK, "training_data")
    started = time.perf_counter()
    train_at, test_at = split(spec, y)
    train_rows, test_rows = [rows[i] for i in train_at], [rows[i] for i in test_at]
    estimator = build_estimator(algorithm, TASK, {}, spec.random_state)
    pipeline = build_pipeline(columns, estimator, CATALOG[algorithm].needs_scaling, None)
    fitted = fit_candidate(algorithm, pipeline, train_rows, y[train_at])
    scores = score(fitted, TASK, test_rows, y[test_at], fitted.predict(test_rows))
    return time.perf_counter() - started, scores


def numpy_floor(rows: list[dict[str, Any]], algorithm: str) -> float:
    """For scale, not a target: the estimator (and scaler) alone on a float matrix, same split, same scores."""
    import numpy as np
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from lrnstak.ml.metrics import classification_scores

    names = [name for name in rows[0] if name != TARGET]
    matrix = np.asarray([[row[name] for name in names] for row in rows], dtype=np.float64)
    y = np.asarray([row[TARGET] for row in rows])
    started = time.perf_counter()
    train_at, test_at = train_test_split(np.arange(len(rows)), test_size=0.2, random_state=142, shuffle=True)
    estimator = build_estimator(algorithm, TASK, {}, 142)
    steps = [StandardScaler(), estimator] if CATALOG[algorithm].needs_scaling else [estimator]
    fitted = make_pipeline(*steps).fit(matrix[train_at], y[train_at])
    classification_scores(fitted, matrix[test_at], y[test_at], fitted.predict(matrix[test_at]))
    return time.perf_counter() - started


# The stack saves its state (the 34 MB data set included) every 2 s after writes; let that finish first.
SNAPSHOT_SETTLE_SECONDS = 3.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    scenario_rows.repetitions_argument(parser)
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the data set (100000)")
    parser.add_argument("--columns", type=int, default=20, help="feature columns (20)")
    parser.add_argument(
        "--algorithm", default="logistic_regression", help="the one algorithm trained (logistic_regression)"
    )
    parser.add_argument("--seed", type=int, default=0, help="make_classification's random_state (0)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    started = time.monotonic()
    print(f"generating {args.rows} rows x {args.columns} columns ...", flush=True)
    rows = generate_rows(args.rows, args.columns, args.seed)
    data = json.dumps({"training_data": rows}).encode()
    print(f"data set: {len(data) / 1e6:.1f} MB of JSON", flush=True)
    service: list[float] = []
    floor: list[float] = []
    numpy_seconds: list[float] = []
    answers: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="lrnstak-bench-c2-training-") as folder:
        stack = harness.start_stack(Path(folder))
        try:
            with httpx.Client(base_url=stack.url, timeout=60) as client:
                for repetition in range(args.repetitions):
                    print(f"repetition {repetition + 1}/{args.repetitions} ...", flush=True)
                    floor_first = repetition % 2 == 1
                    if floor_first:
                        floor_seconds, floor_scores = fit_and_score(rows, args.algorithm)
                    seconds, answer = train_through_api(client, "bench-training", data, args.algorithm)
                    time.sleep(SNAPSHOT_SETTLE_SECONDS)
                    if not floor_first:
                        floor_seconds, floor_scores = fit_and_score(rows, args.algorithm)
                    service.append(seconds)
                    floor.append(floor_seconds)
                    numpy_seconds.append(numpy_floor(rows, args.algorithm))
                    answers.append({"answer_scores": _hold_out(answer), "floor_scores": floor_scores})
                    print(f"  lrnstak {seconds:.2f} s, floor {floor_seconds:.2f} s", flush=True)
        finally:
            stack.stop()
    row = scenario_rows.against_floor(
        f"training: POST /train, {args.rows} x {args.columns}, {args.algorithm}", "s", service, floor, LIMIT
    )
    print()
    scenario_rows.print_rows([row])
    print(
        f"\nfor scale (not a target): the estimator alone on a float matrix took {min(numpy_seconds):.2f}-"
        f"{max(numpy_seconds):.2f} s; lrnstak's scores equal the floor's: {_same_scores(answers)}"
    )
    extra = {"numpy_floor_s": numpy_seconds, "scores": answers, "dataset_bytes": len(data)}
    path = scenario_rows.write_group("training", [row], args, extra)
    print(f"{time.monotonic() - started:.0f}s; written to {path.relative_to(harness.ROOT)}")


def _hold_out(answer: dict[str, Any]) -> dict[str, Any] | None:
    results = answer.get("training_results") or answer.get("job", {}).get("training_results") or {}
    return next((entry for entry in results.get("scores", []) if entry.get("iteration") == 1), None)


def _same_scores(answers: list[dict[str, Any]]) -> bool:
    def scores(entry: dict[str, Any] | None) -> dict[str, Any]:
        return {k: v for k, v in (entry or {}).items() if k not in {"iteration", "algorithm"}}

    return all(scores(a["answer_scores"]) == scores(a["floor_scores"]) for a in answers)


if __name__ == "__main__":
    main()
