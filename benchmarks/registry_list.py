"""Registry listing (group "registry"): GET /models's first page against one GetItem, on the same moto.

The local stack (`python -m lrnstak.local`, started empty) gets 10,000 versions across 1,000 models written
straight into its registry table (moto's server, over HTTP, BatchWriteItem), as the registry writes them:
the items come from lrnstak.storage.registry_table's own version_item() and summary_item(), for records
shaped like a trained model's (metrics, parameters, training results, feature schema).

Each repetition times, back to back (alternating the order):
  lrnstak  GET /models (the first page, the default limit of 100 models) on the stack, httpx with keep-alive;
  floor    one GetItem of a model's summary item (ConsistentRead, as the registry reads it) with a boto3 client
           (keep-alive) on the same moto endpoint;
  context  the one Query GET /models makes (ModelsByName, Limit 101), through lrnstak's RegistryTable in this
           process: what moto alone takes for the page, so the rest is what lrnstak adds;
and keeps each one's p50 over --requests requests. Target: lrnstak p50 <= 3x the GetItem p50.

    .venv/bin/python benchmarks/registry_list.py --repetitions 3

Writes benchmarks/results/registry.json (bench.py's row format) and prints the row. Exits 0 whether or not the
target holds.
"""

import argparse
import os
import re
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import harness  # first: it points boto3 and Powertools at a fake account
import httpx
import scenario_rows

from lrnstak.local.bootstrap import physical_names
from lrnstak.local.template import Template
from lrnstak.storage.clients import build_clients
from lrnstak.storage.records import ModelSummary, VersionRecord
from lrnstak.storage.registry_table import RegistryTable, summary_item, version_item

LIMIT = 3.0
EMBEDDED_AWS = re.compile(r"embedded AWS at (http://\S+);")
FEATURES = [f"x{index}" for index in range(20)]


def model_name(index: int) -> str:
    return f"model-{index:05d}"


def version_record(model: str, number: int) -> VersionRecord:
    created = f"2026-11-{1 + number:02d}T12:00:00Z"
    scores = {"accuracy": 0.9 + number / 1000, "f1": 0.88, "precision": 0.87, "recall": 0.89}
    return VersionRecord(
        model=model,
        version=f"v{number}",
        created_at=created,
        updated_at=created,
        write_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{model}/{number}").hex,
        artifact_key=f"artifacts/{model}/{number:032x}/model.joblib",
        training_data_key=f"artifacts/{model}/{number:032x}/training_data.json.gz",
        size=1_234_567,
        sha256="0" * 64,
        sklearn_version="1.9.1",
        algorithm="random_forest",
        metrics=scores,
        parameters={"target_label": "label", "task": "classification", "algorithm": "random_forest"},
        training_results={
            "metadata": {"task": "classification", "rows": 1000, "features": FEATURES},
            "scores": [{"iteration": 1, "algorithm": "random_forest", **scores}],
            "results": {"random_forest": scores["accuracy"]},
            "algorithm": "random_forest",
        },
        feature_schema={
            "target": "label",
            "task": "classification",
            "features": [{"name": name, "kind": "numeric"} for name in FEATURES],
            "rule_inputs": [],
            "classes": [0, 1],
        },
    )


def fill(dynamodb: Any, table: str, models: int, versions: int) -> int:
    items: list[dict[str, Any]] = []
    for index in range(models):
        name = model_name(index)
        records = [version_record(name, number) for number in range(1, versions + 1)]
        items += [version_item(record) for record in records]
        summary = ModelSummary(
            model=name,
            versions={record.version: record.created_at for record in records},
            updated_at=records[-1].updated_at,
            revision=versions,
        )
        items.append(summary_item(summary))
    for start in range(0, len(items), 25):
        requests: Any = {table: [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]}
        while requests:
            requests = dynamodb.batch_write_item(RequestItems=requests).get("UnprocessedItems") or {}
    return len(items)


def p50_list(client: httpx.Client, count: int) -> float:
    seconds = []
    for _ in range(count):
        started = time.perf_counter()
        response = client.get("/models")
        response.read()
        seconds.append(time.perf_counter() - started)
        if response.status_code != 200 or len(response.json()) != 100:
            raise RuntimeError(f"GET /models answered {response.status_code}: {response.text[:500]}")
    return statistics.median(seconds) * 1000


def p50_get_item(dynamodb: Any, table: str, count: int) -> float:
    seconds = []
    for index in range(count):
        key = {"pk": {"S": f"MODEL#{model_name(index % 1000)}"}, "sk": {"S": "SUMMARY"}}
        started = time.perf_counter()
        item = dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
        seconds.append(time.perf_counter() - started)
        if item is None:
            raise RuntimeError(f"GetItem found nothing for {key}")
    return statistics.median(seconds) * 1000


def p50_query(registry: RegistryTable, count: int) -> float:
    """The one Query GET /models makes (lrnstak's storage layer, in this process): moto's share of the page."""
    seconds = []
    for _ in range(count):
        started = time.perf_counter()
        summaries, _ = registry.list_summaries(100, None)
        seconds.append(time.perf_counter() - started)
        if len(summaries) != 100:
            raise RuntimeError(f"the Query gave {len(summaries)} summaries")
    return statistics.median(seconds) * 1000


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    scenario_rows.repetitions_argument(parser)
    parser.add_argument("--models", type=int, default=1000, help="models in the table (1000)")
    parser.add_argument("--versions", type=int, default=10, help="versions per model (10)")
    parser.add_argument("--requests", type=int, default=100, help="requests per figure and repetition (100)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    started = time.monotonic()
    listing: list[float] = []
    get_item: list[float] = []
    query: list[float] = []
    with tempfile.TemporaryDirectory(prefix="lrnstak-bench-c2-registry-") as folder:
        stack = harness.start_stack(Path(folder))
        try:
            match = EMBEDDED_AWS.search(stack.log.read_text())
            if match is None:
                raise RuntimeError("the stack did not say where its embedded AWS is")
            os.environ["AWS_ENDPOINT_URL"] = match.group(1)
            dynamodb = build_clients().dynamodb
            table = physical_names(Template.load(), "lrnstak")["RegistryTable"]
            registry = RegistryTable(dynamodb, table)
            clock = time.monotonic()
            written = fill(dynamodb, table, args.models, args.versions)
            print(f"{written} items written to {table} in {time.monotonic() - clock:.1f}s", flush=True)
            with httpx.Client(base_url=stack.url, timeout=60) as client:
                p50_list(client, 5)  # warm-up: the registry function's first request, the connections
                p50_get_item(dynamodb, table, 5)
                p50_query(registry, 5)
                for repetition in range(args.repetitions):
                    steps = [
                        (listing, lambda: p50_list(client, args.requests)),
                        (get_item, lambda: p50_get_item(dynamodb, table, args.requests)),
                        (query, lambda: p50_query(registry, args.requests)),
                    ]
                    for figures, step in steps if repetition % 2 == 0 else steps[::-1]:
                        figures.append(step())
                    print(
                        f"repetition {repetition + 1}: p50 GET /models {listing[-1]:.2f} ms, GetItem "
                        f"{get_item[-1]:.2f} ms, the Query alone {query[-1]:.2f} ms",
                        flush=True,
                    )
        finally:
            stack.stop()
    row = scenario_rows.against_floor(
        f"registry: GET /models first page ({args.models * args.versions} versions, {args.models} models) vs GetItem",
        "ms",
        listing,
        get_item,
        LIMIT,
    )
    row["ratio"]["of"] = "lrnstak/GetItem p50"
    row["target"] = f"<= {LIMIT:g}x GetItem"
    print()
    scenario_rows.print_rows([row])
    by_query = scenario_rows.ratio("GET /models/Query", listing, query)
    print(
        f"\nfor context (not a target): the page's one Query alone, p50 {statistics.median(query):.1f} ms;"
        f" GET /models is {by_query['median']:.2f}x ({by_query['min']:.2f}-{by_query['max']:.2f}) of it"
    )
    extra = {"query_alone": scenario_rows.stat(query), "listing_over_query": by_query}
    path = scenario_rows.write_group("registry", [row], args, extra)
    print(f"{time.monotonic() - started:.0f}s; written to {path.relative_to(harness.ROOT)}")


if __name__ == "__main__":
    main()
