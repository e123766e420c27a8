"""lrnstak.client against the real local stack (`make run`), behind an API key.

The stack's synchronous training budget is lowered to a millisecond, so every training request here outlasts
it and continues as a job (202): the client must follow the job to the registered version by itself.
"""

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from lrnstak.client import (
    BestModel,
    Client,
    Job,
    LrnstakError,
    ModelInfo,
    ModelSummary,
    TrainingData,
    TrainResult,
    UploadResult,
    VersionInfo,
)

from support.stack import RunningStack, serving

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
API_KEY = secrets.token_urlsafe(16)


def iris_rows() -> list[dict[str, Any]]:
    bunch = load_iris()
    return [
        {**dict(zip(FEATURES, map(float, x), strict=True)), "species": str(bunch.target_names[y])}
        for x, y in zip(bunch.data, bunch.target, strict=True)
    ]


ROWS = iris_rows()
INPUTS = [{name: row[name] for name in FEATURES} for row in ROWS[::10]]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    data = tmp_path_factory.mktemp("client-stack")
    with serving(data, LRNSTAK_API_KEY=API_KEY, SYNC_TRAINING_BUDGET_SECONDS="0.001") as running:
        yield running


@pytest.fixture(scope="module")
def client(stack: RunningStack) -> Iterator[Client]:
    with Client(stack.url, API_KEY) as opened:
        yield opened


@pytest.fixture(scope="module")
def trained(client: Client) -> TrainResult:
    seen: list[Job] = []
    result = client.train(
        "iris",
        ROWS,
        target="species",
        features=FEATURES,
        algorithm="logistic_regression",
        parameters={"metadata": {"team": "flowers"}},
        on_progress=seen.append,
    )
    assert seen, "the training went through a job: its states are reported"
    assert seen[-1].status == "succeeded"
    return result


def test_a_training_past_the_sync_budget_is_followed_to_its_version(client: Client, trained: TrainResult) -> None:
    assert isinstance(trained, TrainResult)
    assert trained.job_id is not None  # answered 202, then waited for
    assert (trained.model, trained.version, trained.algorithm) == ("iris", "v1", "logistic_regression")
    assert trained.message == "Model iris_v1 trained and saved."
    assert trained.training_results["metadata"]["rows"] == len(ROWS)
    job = client.jobs.get(trained.job_id)
    assert (job.kind, job.status, job.model, job.version) == ("training", "succeeded", "iris", "v1")
    assert trained.job_id in [listed.job_id for listed in client.jobs.list(model="iris")]


def test_train_without_waiting_answers_the_job_and_jobs_wait_finishes_it(client: Client, tmp_path: Path) -> None:
    path = tmp_path / "iris.csv"
    path.write_text(
        ",".join([*FEATURES, "species"])
        + "\n"
        + "".join(",".join(str(row[name]) for name in [*FEATURES, "species"]) + "\n" for row in ROWS)
    )
    # A limit below the file's size: the CSV goes through /datasets instead of the request body.
    with Client(client.url, API_KEY, inline_limit_bytes=1000) as small:
        job = small.train("iris-csv", path, target="species", algorithm="decision_tree", version="v7", wait=False)
        assert isinstance(job, Job)
        assert job.status in ("queued", "running")
        states: list[str] = []
        done = small.jobs.wait(job, on_progress=lambda current: states.append(current.status))
    assert done.status == "succeeded"
    assert states[-1] == "succeeded"
    assert done.version == "v7"
    assert done.training_results is not None
    assert done.training_results["metadata"]["rows"] == len(ROWS)  # every CSV row arrived, through the dataset
    client.delete("iris-csv")


def test_registry_reads(client: Client, trained: TrainResult) -> None:
    models = client.models()
    assert ModelSummary("iris", ["v1"], "v1", models[0].updated_at) in models
    [version] = client.versions("iris")
    assert isinstance(version, VersionInfo)
    assert (version.version, version.algorithm) == ("v1", "logistic_regression")
    assert version.metrics["accuracy"] > 0.8
    info = client.info("iris", "latest")
    assert isinstance(info, ModelInfo)
    assert (info.model, info.version, info.parameters["target_label"]) == ("iris", "v1", "species")
    assert len(info.sha256) == 64
    best = client.best("iris", metric="accuracy", order="max", team="flowers")
    assert isinstance(best, BestModel)
    assert (best.version, best.best_score) == ("v1", version.metrics["accuracy"])
    data = client.training_data("iris", "v1")
    assert isinstance(data, TrainingData)
    assert data.rows == ROWS


def test_predictions_match_the_downloaded_model(client: Client, trained: TrainResult) -> None:
    answered = client.predict("iris", INPUTS)
    assert [entry["sepal_length"] for entry in answered] == [row["sepal_length"] for row in INPUTS]
    estimator = client.download("iris", trained.version)  # through lrnstak's allowlisting loader
    assert [entry["prediction"] for entry in answered] == list(estimator.predict(INPUTS))
    only = client.predict("iris", INPUTS[:2], "v1", include_input=False, probabilities=True)
    assert set(only[0]) == {"prediction", "probabilities"}
    assert set(only[0]["probabilities"]) == {"setosa", "versicolor", "virginica"}
    csv_answer = client.predict_csv("iris", b"sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n")
    assert csv_answer.decode().splitlines() == [",".join([*FEATURES, "prediction"]), "5.1,3.5,1.4,0.2,setosa"]


def test_large_predictions_go_through_a_batch_job(client: Client, trained: TrainResult) -> None:
    direct = client.predict("iris", INPUTS, include_input=False)
    with Client(client.url, API_KEY, inline_limit_bytes=200) as small:
        # Over the limit: the rows are uploaded as a dataset, predicted by a job, read back from its output file.
        batched = small.predict("iris", INPUTS, include_input=False)
    assert batched == direct


def test_upload_download_delete(client: Client) -> None:
    bunch = load_iris()
    estimator = LogisticRegression(max_iter=500).fit(bunch.data, bunch.target)
    saved = client.upload("iris-upload", estimator, "v1", target="species", features=FEATURES)
    assert isinstance(saved, UploadResult)
    assert (saved.model, saved.version, len(saved.sha256)) == ("iris-upload", "v1", 64)
    assert client.info("iris-upload", "v1").sha256 == saved.sha256
    answered = client.predict("iris-upload", INPUTS, include_input=False)
    assert [entry["prediction"] for entry in answered] == estimator.predict(
        [list(row.values()) for row in INPUTS]
    ).tolist()
    loaded = client.download("iris-upload", "v1")
    assert loaded.predict(bunch.data[:5]).tolist() == estimator.predict(bunch.data[:5]).tolist()
    client.upload("iris-upload", estimator, "v2", features=FEATURES)
    client.delete("iris-upload", "v1")
    assert [entry.version for entry in client.versions("iris-upload")] == ["v2"]
    client.delete("iris-upload")
    with pytest.raises(LrnstakError) as gone:
        client.versions("iris-upload")
    assert gone.value.status_code == 404


def test_cache(client: Client) -> None:
    key = "client:key@1"
    client.cache.put(key, {"a": [1, 2]}, ttl=60)
    assert client.cache.get(key) == {"a": [1, 2]}
    client.cache.post(key, None)
    assert client.cache.get(key) is None  # null is a value
    assert client.cache.delete(key) is True
    assert client.cache.delete(key) is False
    assert client.cache.get(key, default="absent") == "absent"
    client.cache.push("client-list", 1)
    client.cache.push("client-list", {"two": 2}, ttl=60)
    client.cache.set_ttl("client-list", 120)
    # push puts at the front and pop takes from it (Redis' LPUSH and LPOP, as the old stack used them)
    assert client.cache.peek("client-list", 1) == 1
    assert client.cache.peek("client-list") == {"two": 2}
    assert client.cache.pop("client-list") == {"two": 2}
    assert client.cache.pop("client-list") == 1
    with pytest.raises(LrnstakError) as empty:
        client.cache.pop("client-list")
    assert empty.value.status_code == 404


def test_errors_carry_the_status_and_the_api_error_body(stack: RunningStack, client: Client) -> None:
    with pytest.raises(LrnstakError) as missing:
        client.info("no-such-model", "v1")
    error = missing.value
    assert (error.status_code, error.code) == (404, "not_found")
    assert error.body == {
        "error": {"code": "not_found", "message": error.message, "details": None},
        "request_id": error.request_id,
    }
    assert str(error) == f"404 not_found: {error.message}"
    with pytest.raises(LrnstakError) as invalid:
        client.train("iris-bad", ROWS, target="no_such_column")
    assert invalid.value.status_code == 400
    assert "no_such_column" in invalid.value.message
    with Client(stack.url, "wrong-key", attempts=1) as intruder, pytest.raises(LrnstakError) as refused:
        intruder.models()
    assert (refused.value.status_code, refused.value.code) == (403, "forbidden")


def test_a_dataframe_goes_in_and_comes_back(client: Client, trained: TrainResult) -> None:
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame(INPUTS, index=[f"row{i}" for i in range(len(INPUTS))])
    answered = client.predict("iris", frame)
    assert isinstance(answered, pandas.DataFrame)
    assert list(answered.index) == list(frame.index)
    assert list(answered["prediction"]) == [entry["prediction"] for entry in client.predict("iris", INPUTS)]
    table = pandas.DataFrame(ROWS)
    table.loc[0, "sepal_width"] = float("nan")  # a missing value travels as null
    result = client.train("iris-frame", table, target="species", algorithm="decision_tree")
    assert result.training_results["metadata"]["rows"] == len(ROWS)
    client.delete("iris-frame")
