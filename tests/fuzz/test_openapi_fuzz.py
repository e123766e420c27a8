"""Schemathesis against the exported OpenAPI of the four functions' apps, in process, inside moto.

Two kinds of requests, each answer checked against the schema by schemathesis: it must not be a 5xx, and its
status, content type and body must be ones the operation documents (errors included: the one error body of
lrnstak.schemas.errors).

- Generated from the schema (test_registry, test_trainer, test_predict, test_cache): per operation, the
  coverage phase (boundary values, wrong types, missing and unexpected parts, other methods) and
  MAX_EXAMPLES fuzzed cases, positive and negative, with a fixed seed.
- Close to valid (test_near_valid_requests): what a client that mostly gets it right sends, against the
  seeded state, so that requests reach past the validation and the 404s: rows with any JSON in one cell,
  CSV bodies, uploads of a real model, training requests, cache values.

Each test gets a fresh moto account seeded for its function: a pipeline trained with feature rules and an
uploaded estimator, datasets, a queued training job, a finished prediction job, cache entries.
"""

import base64
import csv
import io
import json
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from lrnstak.cache.service import get_cache_service
from lrnstak.jobs.service import get_job_service
from lrnstak.ml.safe_loading import dump_model
from lrnstak.ml.training import TrainedModel, TrainingSpec, train
from lrnstak.predict.batch import BatchRequest, get_batch_prediction_service
from lrnstak.registry.service import NewVersion, get_registry_service
from lrnstak.schemas.trainer import TrainModelRequest
from lrnstak.settings import get_settings
from lrnstak.storage.clients import AwsClients
from lrnstak.storage.jobs_table import PREDICTION
from lrnstak.trainer.service import get_trainer_service

from support.functions import function_module
from support.models import joblib_bytes, linear_regression

SEED = 20261126
# Per operation, the coverage phase's cases and MAX_EXAMPLES generated from its schema; per function,
# NEAR_VALID_EXAMPLES requests close to valid ones (test_near_valid_requests). Well over 1,000 in all.
MAX_EXAMPLES = 25
NEAR_VALID_EXAMPLES = 150
MIN_REQUESTS = 1000
MIN_PER_OPERATION = 5
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

ROWS_MODEL = "fuzz-rows"  # trained here: rules, a numeric and a categorical column, classes with probabilities
MATRIX_MODEL = "fuzz-matrix"  # uploaded: a LinearRegression over feature_labels a, b, c
ROWS_DATASET = "0" * 31 + "1.jsonl"
MATRIX_DATASET = "0" * 31 + "2.csv"
MISSING_DATASET = "f" * 32 + ".csv"
VALUE_KEY, LIST_KEY = "fuzz-value", "fuzz-list"
# Ids of the jobs seeded for the running test (uuids, known only once the fixture made them).
JOB_IDS: dict[str, str] = {}
# (function, operation, status) -> requests; the sent_requests fixture of tests/fuzz/conftest.py.
Sent = Counter[tuple[str, str, int]]

RULES = {
    "extract": {"when": {"type": "datetime", "elements": ["year", "month", "day_of_week", "epoch"]}},
    "flatten": {"series": ["mean", "max", "count"]},
    "expand": {"series": "columns"},
}
TRAINING_ROWS = [
    {
        "num": index * 1.5,
        "cat": ["red", "green", "blue"][index % 3],
        "when": f"2026-0{1 + index % 9}-1{index % 10}T0{index % 10}:30:00Z",
        "series": [index, index + 1, None if index % 4 == 0 else index * 2][: 1 + index % 3],
        "label": "yes" if index % 2 else "no",
    }
    for index in range(24)
]

# Values clients send, plausible or not: numbers as JSON and as text, dates, arrays, objects.
NUMERIC_TEXT = st.sampled_from(["1", " 2.5 ", "-0", "1e3", "true", "False", "nan", "inf", "1e400", "1_000", "x"])
DATE_TEXT = st.sampled_from(["2026-01-05T15:30:00Z", "2026-01-05", "2026-01-05 15:30:00+02:00", "2026-13-40", ""])
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**300, max_value=10**400)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
    | NUMERIC_TEXT
    | DATE_TEXT
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)
CELLS = SCALARS | st.lists(st.none() | st.floats(-1e6, 1e6) | st.integers(), max_size=6) | JSON_VALUES
VERSIONS = st.sampled_from(["v1", "latest", "v1", "latest", "v9", "best", "a/b"])
# What each feature column of the seeded models takes, as clients send it.
GOOD_CELLS: dict[str, st.SearchStrategy[Any]] = {
    "num": st.floats(-100, 100) | st.integers(-100, 100) | st.sampled_from(["2.5", " 7 ", "true", None]),
    "cat": st.sampled_from(["red", "green", "blue", "violet", "", None]),
    "when": DATE_TEXT | st.integers(0, 2 * 10**9) | st.none(),
    "series": st.lists(st.floats(-100, 100) | st.none(), max_size=5) | st.none(),
    "a": st.floats(-100, 100) | st.integers(-5, 5),
    "b": st.floats(-100, 100) | st.just("1.5"),
    "c": st.integers(-5, 5),
}


@st.composite
def rows_near_valid(draw: st.DrawFn, columns: dict[str, st.SearchStrategy[Any]]) -> list[dict[str, Any]]:
    """Rows a model takes, or the same with one thing wrong: a column left out, a cell of any JSON, an extra."""
    rows = [{name: draw(cell) for name, cell in columns.items()} for _ in range(draw(st.integers(0, 4)))]
    if rows and draw(st.booleans()):
        row = draw(st.sampled_from(rows))
        mistake = draw(st.sampled_from(["drop", "cell", "extra"]))
        column = draw(st.sampled_from(sorted(columns)))
        if mistake == "drop":
            del row[column]
        else:
            row[column if mistake == "cell" else "extra"] = draw(CELLS)
    return rows


@st.composite
def predict_bodies(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = draw(
        st.fixed_dictionaries(
            {},
            optional={"version": VERSIONS, "include_input": st.booleans(), "probabilities": st.booleans()},
        )
    )
    rows = draw(rows_near_valid(GOOD_CELLS))
    if draw(st.booleans()):
        body["data"] = rows
    else:
        columns = sorted({column for row in rows for column in row})
        body["columns"] = columns
        body["data"] = [[row.get(column) for column in columns] for row in rows]
    return body


@st.composite
def csv_bodies(draw: st.DrawFn) -> str:
    rows = draw(rows_near_valid({name: GOOD_CELLS[name] for name in ("num", "cat", "when", "a", "b", "c")}))
    header = sorted({column for row in rows for column in row}) or draw(st.lists(st.text(max_size=3), max_size=3))
    buffer = io.StringIO()
    csv.writer(buffer).writerows([header, *[[row.get(column, "") for column in header] for row in rows]])
    return buffer.getvalue()


def upload_bodies(model_b64: str) -> st.SearchStrategy[dict[str, Any]]:
    parameters = st.fixed_dictionaries(
        {},
        optional={
            "feature_labels": st.just(["a", "b", "c"]) | st.lists(st.sampled_from(["a", "b", "x"]), max_size=4),
            "target_label": st.text(max_size=4) | JSON_VALUES,
            "metadata": st.dictionaries(st.text(max_size=4), JSON_VALUES, max_size=3),
        },
    )
    return st.fixed_dictionaries(
        {"model": st.just(model_b64) | st.text(max_size=8)},
        optional={
            "version": VERSIONS | st.text(max_size=6),
            "parameters": parameters,
            "training_data": rows_near_valid(GOOD_CELLS),
            "training_results": st.dictionaries(st.sampled_from(["scores", "metrics", "x"]), JSON_VALUES, max_size=2),
        },
    )


TRAIN_CELLS = {
    "x": st.integers(-5, 5) | st.floats(-10, 10),
    "g": st.sampled_from(["a", "b"]),
    "when": DATE_TEXT,
    "series": st.lists(st.floats(-10, 10), min_size=1, max_size=4),
    "y": st.sampled_from([0, 1]) | st.floats(-10, 10),
}
TRAIN_RULES = st.sampled_from(
    [
        None,
        {"flatten": {"series": ["mean", "sum"]}},
        {"expand": {"series": "columns"}, "extract": {"when": {"type": "datetime", "elements": ["month"]}}},
        {"classify": {"series": {"method": "linear_regression"}}},
        {"flatten": {"nope": "sum"}},
    ]
)


@st.composite
def train_bodies(draw: st.DrawFn) -> dict[str, Any]:
    rows = [{name: draw(cell) for name, cell in TRAIN_CELLS.items()} for _ in range(draw(st.integers(0, 12)))]
    if rows and draw(st.booleans()):
        draw(st.sampled_from(rows))[draw(st.sampled_from(sorted(TRAIN_CELLS)))] = draw(CELLS)
    parameters = draw(
        st.fixed_dictionaries(
            {"target_label": st.sampled_from(["y", "y", "y", "g", "nope"])},
            optional={
                # Quick algorithms only: a fuzzed request must not train for seconds.
                "algorithm": st.sampled_from(["linear_regression", "decision_tree", "knn", "naive_bayes", "nope"]),
                "task": st.sampled_from(["regression", "classification"]),
                "feature_labels": st.lists(st.sampled_from(["x", "g", "when", "series", "z"]), max_size=3),
                "split": st.fixed_dictionaries({}, optional={"test_size": st.sampled_from([0.25, 0.9, 1, 3, 50])}),
                "cv": st.integers(2, 3),
                "rules": TRAIN_RULES,
                "metadata": st.dictionaries(st.text(max_size=4), JSON_VALUES, max_size=2),
            },
        )
    )
    if "feature_labels" not in parameters or "rules" in parameters:
        rows = [{k: v for k, v in row.items() if k not in ("when", "series")} for row in rows]
        if parameters.get("rules"):
            rows = [{**row, **{name: draw(TRAIN_CELLS[name]) for name in ("when", "series")}} for row in rows]
    body: dict[str, Any] = {"parameters": parameters}
    if not rows or draw(st.integers(0, 3)) == 0:
        body["dataset"] = draw(st.sampled_from([ROWS_DATASET, MATRIX_DATASET, MISSING_DATASET]))
    else:
        body["training_data"] = rows
    return body


BATCH_BODIES = st.fixed_dictionaries(
    {"dataset": st.sampled_from([ROWS_DATASET, MATRIX_DATASET, MISSING_DATASET, "nope"])},
    optional={
        "version": VERSIONS,
        "format": st.sampled_from(["csv", "jsonl"]),
        "include_input": st.booleans(),
        "probabilities": st.booleans(),
    },
)
TTLS = st.sampled_from([0, 1, 3600, -1, 10**10, 2.5, "5", None])
CACHE_BODIES = st.fixed_dictionaries({"value": JSON_VALUES}, optional={"ttl": TTLS})
TOKEN = base64.urlsafe_b64encode(MATRIX_MODEL.encode()).decode().rstrip("=")

# Per operation, what a client that mostly gets it right sends: (query, headers, bodies with their media type).
QUERIES: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "GET /models": st.fixed_dictionaries({}, optional={"limit": st.integers(1, 3), "next_token": st.just(TOKEN)}),
    "GET /models/{name}/best": st.fixed_dictionaries(
        {},
        optional={
            "metric": st.sampled_from(["accuracy", "f1", "mse", "nope"]),
            "order": st.sampled_from(["min", "max"]),
            "team": st.sampled_from(["fuzz", "other"]),
        },
    ),
    "GET /models/{name}/{version}": st.fixed_dictionaries({}, optional={"format": st.sampled_from(["url", "inline"])}),
    "POST /predict/model/{name}": st.fixed_dictionaries(
        {},
        optional={
            "version": VERSIONS,
            "include_input": st.sampled_from(["true", "false"]),
            "probabilities": st.sampled_from(["true", "false"]),
        },
    ),
    "GET /train/jobs": st.fixed_dictionaries(
        {}, optional={"model": st.sampled_from([ROWS_MODEL, MATRIX_MODEL]), "limit": st.integers(1, 5)}
    ),
    "GET /cache/peek/{key}": st.fixed_dictionaries({}, optional={"pos": st.sampled_from(["0", "1", "2", "9"])}),
}
TRAIN_HEADERS = st.fixed_dictionaries(
    # A key reused with another body is refused: mostly fresh keys, sometimes the same one.
    {},
    optional={"Prefer": st.just("respond-async"), "Idempotency-Key": st.uuids().map(str) | st.just("fuzz-1")},
)
ACCEPT = st.sampled_from(["application/json", "text/csv", "text/csv;q=0.5, application/json", "*/*"])
JSON = "application/json"
FORMATS = ["csv", "json", "jsonl", "xml"]
BODIES: dict[str, st.SearchStrategy[tuple[str, Any]]] = {
    "POST /predict/model/{name}": st.tuples(st.just(JSON), predict_bodies())
    | st.tuples(st.just("text/csv"), csv_bodies()),
    "POST /predict/model/{name}/batch": st.tuples(st.just(JSON), BATCH_BODIES),
    "POST /models/{name}": st.tuples(
        st.just(JSON), upload_bodies(base64.b64encode(joblib_bytes(linear_regression())).decode())
    ),
    "POST /train/model/{name}": st.tuples(st.just(JSON), train_bodies()),
    "POST /train/{name}": st.tuples(st.just(JSON), train_bodies()),
    "POST /datasets": st.tuples(st.just(JSON), st.fixed_dictionaries({"format": st.sampled_from(FORMATS)})),
    "PUT /cache/{key}": st.tuples(st.just(JSON), CACHE_BODIES),
    "POST /cache/{key}": st.tuples(st.just(JSON), CACHE_BODIES),
    "PUT /cache/push/{key}": st.tuples(st.just(JSON), CACHE_BODIES),
    "PUT /cache/ttl/{key}": st.tuples(st.just(JSON), st.builds(dict, ttl=TTLS)),
}


@st.composite
def near_valid(draw: st.DrawFn, operation: schemathesis.APIOperation) -> schemathesis.Case:
    """A request to the operation as a client that mostly gets it right sends it, against the seeded state."""
    label = operation.label
    # Mostly what exists, sometimes what does not.
    seeds = {
        "name": st.sampled_from([ROWS_MODEL, MATRIX_MODEL, ROWS_MODEL, MATRIX_MODEL, "nope"]),
        "version": st.sampled_from(["v1", "latest", "v1", "latest", "v2"]),
        "key": st.sampled_from([VALUE_KEY, LIST_KEY, VALUE_KEY, LIST_KEY, "nope"]),
        "job_id": st.sampled_from([*JOB_IDS.values(), *JOB_IDS.values(), "0" * 32]),
    }
    path_parameters = {name: draw(seeds[name]) for name in re.findall(r"{(\w+)}", operation.path)}
    query = draw(QUERIES.get(label, st.just({})))
    headers = draw(TRAIN_HEADERS) if label.startswith("POST /train/") else {}
    if label == "POST /predict/model/{name}":
        headers["Accept"] = draw(ACCEPT)
    if label not in BODIES:
        return operation.Case(path_parameters=path_parameters, query=query, headers=headers)
    media_type, body = draw(BODIES[label])
    headers["Content-Type"] = media_type
    return operation.Case(
        path_parameters=path_parameters, query=query, headers=headers, body=body, media_type=media_type
    )


def load(logical_id: str) -> Any:
    app = function_module(logical_id).app
    config = schemathesis.Config.from_dict(
        {"seed": SEED, "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "database": "none"}}
    )
    schema = schemathesis.openapi.from_dict(app.openapi(), config=config)
    schema.app = app
    return schema


registry = load("RegistryFunction")
trainer = load("TrainerFunction")
predict = load("PredictFunction")
cache = load("CacheFunction")
SCHEMAS = {"registry": registry, "trainer": trainer, "predict": predict, "cache": cache}
OPERATIONS = {
    (app, result.ok().label): result.ok() for app, schema in SCHEMAS.items() for result in schema.get_all_operations()
}

FUZZ = hypothesis.settings(
    derandomize=True,
    deadline=None,
    database=None,
    max_examples=MAX_EXAMPLES,
    # moto answers in milliseconds, not microseconds; the aws fixture is per operation on purpose.
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)


@pytest.fixture(scope="session")
def trained() -> TrainedModel:
    spec = TrainingSpec(rows=TRAINING_ROWS, target="label", algorithms="logistic_regression", rules=RULES)
    return train(spec)


def seed_models(trained: TrainedModel) -> None:
    registry_service = get_registry_service()
    registry_service.save_version(
        ROWS_MODEL,
        NewVersion(
            model_bytes=dump_model(trained.pipeline),
            version="v1",
            parameters={"target_label": "label", "rules": RULES, "metadata": {"team": "fuzz"}},
            training_rows=TRAINING_ROWS,
            training_results=trained.training_results,
            algorithm=trained.algorithm,
            feature_schema=trained.feature_schema,
        ),
    )
    registry_service.save_version(
        MATRIX_MODEL,
        NewVersion(joblib_bytes(linear_regression()), "v1", {"feature_labels": ["a", "b", "c"]}, None, None),
    )


def seed_datasets(aws: AwsClients) -> None:
    bucket = get_settings().models_bucket
    jsonl = "\n".join(json.dumps({k: v for k, v in row.items() if k != "label"}) for row in TRAINING_ROWS[:5])
    aws.s3.put_object(Bucket=bucket, Key=f"datasets/{ROWS_DATASET}", Body=jsonl.encode())
    aws.s3.put_object(Bucket=bucket, Key=f"datasets/{MATRIX_DATASET}", Body=b"a,b,c,y\n1,2,3,4\n,5,x,6\n")


@pytest.fixture
def registry_state(aws: AwsClients, trained: TrainedModel) -> None:
    seed_models(trained)


@pytest.fixture
def trainer_state(aws: AwsClients) -> Iterator[None]:
    seed_datasets(aws)
    request = TrainModelRequest.model_validate({"dataset": ROWS_DATASET, "parameters": {"target_label": "num"}})
    JOB_IDS["training"] = get_trainer_service().submit_job(ROWS_MODEL, request).job_id
    yield
    JOB_IDS.clear()


@pytest.fixture
def predict_state(aws: AwsClients, trained: TrainedModel) -> Iterator[None]:
    seed_models(trained)
    seed_datasets(aws)
    batches = get_batch_prediction_service()
    job = batches.submit(ROWS_MODEL, "v1", BatchRequest(ROWS_DATASET, "jsonl", include_input=True, probabilities=True))
    get_job_service().run(job.job_id, {PREDICTION: batches.run_job})
    JOB_IDS["prediction"] = job.job_id
    yield
    JOB_IDS.clear()


@pytest.fixture
def cache_state(aws: AwsClients) -> None:
    cache_service = get_cache_service()
    cache_service.put_value(VALUE_KEY, {"a": [1, None, "x"]})
    for value in (1, "two", [3]):
        cache_service.push_value(LIST_KEY, value, 3600)


def send(app: str, case: schemathesis.Case, sent: Sent) -> None:
    response = case.call()
    sent[app, case.operation.label, response.status_code] += 1
    case.validate_response(response, checks=CHECKS)


@registry.parametrize()
@FUZZ
def test_registry(case: schemathesis.Case, registry_state: None, sent_requests: Sent) -> None:
    send("registry", case, sent_requests)


@trainer.parametrize()
@FUZZ
def test_trainer(case: schemathesis.Case, trainer_state: None, sent_requests: Sent) -> None:
    send("trainer", case, sent_requests)


@predict.parametrize()
@FUZZ
def test_predict(case: schemathesis.Case, predict_state: None, sent_requests: Sent) -> None:
    send("predict", case, sent_requests)


@cache.parametrize()
@FUZZ
def test_cache(case: schemathesis.Case, cache_state: None, sent_requests: Sent) -> None:
    send("cache", case, sent_requests)


@pytest.fixture
def app_state(request: pytest.FixtureRequest, app: str) -> None:
    request.getfixturevalue(f"{app}_state")


@pytest.mark.parametrize("app", sorted(SCHEMAS))
@hypothesis.settings(FUZZ, max_examples=NEAR_VALID_EXAMPLES)
@hypothesis.given(data=st.data())
def test_near_valid_requests(app: str, app_state: None, sent_requests: Sent, data: st.DataObject) -> None:
    """Requests to any operation of the function, one after the other in one account (what one deletes, the
    next may miss), as clients that mostly get them right send them."""
    operations = [operation for (owner, _label), operation in sorted(OPERATIONS.items()) if owner == app]
    operation = data.draw(st.sampled_from(operations), label="operation")
    send(app, data.draw(near_valid(operation), label="case"), sent_requests)


def test_every_operation_got_its_share_of_the_budget(sent_requests: Sent) -> None:
    """Runs last in this module: the fuzz tests above must have sent at least MIN_REQUESTS requests."""
    per_operation: Counter[tuple[str, str]] = Counter()
    for (app, operation, _status), count in sent_requests.items():
        per_operation[app, operation] += count
    if set(per_operation) != set(OPERATIONS):
        pytest.skip("only part of the fuzz suite ran (-k or a single test): the budget is checked on a full run")
    total = sum(per_operation.values())
    assert total >= MIN_REQUESTS, f"only {total} requests were sent"
    # Operations without parameters (health) have few distinct requests to send; the others get dozens.
    starved = {operation: count for operation, count in per_operation.items() if count < MIN_PER_OPERATION}
    assert starved == {}
