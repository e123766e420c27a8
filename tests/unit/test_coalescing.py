"""Concurrent predictions for one model run as one estimator call, each request getting its own answer."""

import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from lrnstak.errors import InvalidInput
from lrnstak.ml.predicting import Estimates, ModelInput, ServedModel, prepare_model
from lrnstak.predict.coalescing import Coalescer, Outcome
from lrnstak.predict.service import _estimate_each


class Recorder:
    """run_batch for the coalescer: records each batch; the first one waits until `release` is set."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.first_started = threading.Event()
        self.release = threading.Event()

    def __call__(self, items: Sequence[int]) -> list[Outcome[int]]:
        self.batches.append(list(items))
        if len(self.batches) == 1:
            self.first_started.set()
            assert self.release.wait(10)
        return [ValueError(f"refused {item}") if item < 0 else item * 10 for item in items]


def wait_for_waiters(coalescer: Coalescer[int, int], key: str, count: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        group = coalescer._groups.get(key)
        if group is not None and len(group.waiting) == count:
            return
        time.sleep(0.005)
    raise AssertionError(f"{count} requests never queued")


def test_requests_arriving_during_a_call_share_the_next_one_and_get_their_own_outcome() -> None:
    coalescer: Coalescer[int, int] = Coalescer()
    recorder = Recorder()
    with ThreadPoolExecutor(6) as pool:
        first = pool.submit(coalescer.run, "model", 1, recorder)
        assert recorder.first_started.wait(10)
        later: dict[int, Future[int]] = {
            item: pool.submit(coalescer.run, "model", item, recorder) for item in (2, -3, 4)
        }
        wait_for_waiters(coalescer, "model", 3)
        recorder.release.set()
        assert first.result(10) == 10
        assert later[2].result(10) == 20
        assert later[4].result(10) == 40
        with pytest.raises(ValueError, match="refused -3"):
            later[-3].result(10)
    assert recorder.batches[0] == [1]
    assert sorted(recorder.batches[1]) == [-3, 2, 4]
    assert len(recorder.batches) == 2
    assert not any(group.running or group.waiting for group in coalescer._groups.values())


def test_other_keys_do_not_wait_and_a_lone_request_runs_at_once() -> None:
    coalescer: Coalescer[int, int] = Coalescer()
    recorder = Recorder()
    with ThreadPoolExecutor(2) as pool:
        blocked = pool.submit(coalescer.run, "a", 1, recorder)
        assert recorder.first_started.wait(10)
        assert coalescer.run("b", 5, lambda items: [item + 1 for item in items]) == 6
        recorder.release.set()
        assert blocked.result(10) == 10


def test_a_call_that_fails_as_a_whole_fails_every_request_of_it_and_the_next_batch_still_runs() -> None:
    coalescer: Coalescer[int, int] = Coalescer()
    started = threading.Event()
    release = threading.Event()
    calls: list[list[int]] = []

    def run_batch(items: Sequence[int]) -> list[Outcome[int]]:
        calls.append(list(items))
        if len(calls) == 1:
            started.set()
            assert release.wait(10)
            raise RuntimeError("broken")
        return list(items)

    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(coalescer.run, "k", 1, run_batch)
        assert started.wait(10)
        second = pool.submit(coalescer.run, "k", 2, run_batch)
        wait_for_waiters(coalescer, "k", 1)
        release.set()
        with pytest.raises(RuntimeError, match="broken"):
            first.result(10)
        assert second.result(10) == 2
    assert not any(group.running or group.waiting for group in coalescer._groups.values())


def test_after_a_call_for_several_requests_the_next_one_lingers_until_as_many_have_queued() -> None:
    # A long linger: the call must start as soon as the third request queues, not when the linger ends.
    coalescer: Coalescer[int, int] = Coalescer(linger_seconds=30, recent_seconds=60)
    recorder = Recorder()
    with ThreadPoolExecutor(6) as pool:
        first = pool.submit(coalescer.run, "m", 1, recorder)
        assert recorder.first_started.wait(10)
        burst = [pool.submit(coalescer.run, "m", item, recorder) for item in (2, 3, 4)]
        wait_for_waiters(coalescer, "m", 3)
        recorder.release.set()
        assert [future.result(10) for future in (first, *burst)] == [10, 20, 30, 40]
        # The last call served three: the next request waits for two more before predicting.
        started = time.monotonic()
        lone = pool.submit(coalescer.run, "m", 5, recorder)
        time.sleep(0.01)
        assert not lone.done()
        more = [pool.submit(coalescer.run, "m", item, recorder) for item in (6, 7)]
        assert [future.result(10) for future in (lone, *more)] == [50, 60, 70]
        assert time.monotonic() - started < 10
    assert [sorted(batch) for batch in recorder.batches] == [[1], [2, 3, 4], [5, 6, 7]]


def test_a_lone_client_never_lingers() -> None:
    coalescer: Coalescer[int, int] = Coalescer(linger_seconds=30, recent_seconds=60)
    started = time.monotonic()
    for item in range(5):
        assert coalescer.run("m", item, lambda items: [item * 2 for item in items]) == item * 2
    assert time.monotonic() - started < 5


# --- the service's batch: one call, split back; refused rows blamed on their own request ----------------------


def served(estimator: object) -> ServedModel:
    return prepare_model(estimator, None, {"feature_labels": [f"x{i}" for i in range(30)]})


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    return np.asarray(load_breast_cancer().data[:60], dtype=np.float64)


def test_one_call_for_several_requests_answers_each_as_alone(data: np.ndarray) -> None:
    target = load_breast_cancer().target[:60]
    model = served(RandomForestClassifier(n_estimators=10, random_state=0).fit(data, target))
    inputs: list[ModelInput] = [data[:1], data[1:8], data[8:9]]
    outcomes = _estimate_each([(model, True, features) for features in inputs])
    for features, outcome in zip(inputs, outcomes, strict=True):
        assert isinstance(outcome, Estimates)
        assert outcome.values.tolist() == model.estimator.predict(features).tolist()
        assert outcome.probabilities is not None
        assert outcome.probabilities.tolist() == model.estimator.predict_proba(features).tolist()


def test_rows_the_estimator_refuses_fail_only_their_own_request(data: np.ndarray) -> None:
    target = load_breast_cancer().target[:60]
    model = served(LogisticRegression(max_iter=5000).fit(data, target))
    with_nan = data[2:4].copy()
    with_nan[1, 3] = np.nan  # a missing value, which LogisticRegression refuses
    outcomes = _estimate_each([(model, False, data[:2]), (model, False, with_nan), (model, False, data[4:5])])
    assert isinstance(outcomes[1], InvalidInput)
    assert "could not predict" in outcomes[1].message
    for features, outcome in ((data[:2], outcomes[0]), (data[4:5], outcomes[2])):
        assert isinstance(outcome, Estimates)
        assert outcome.values.tolist() == model.estimator.predict(features).tolist()


def test_only_models_that_predict_each_row_on_its_own_are_coalesced(data: np.ndarray) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.decomposition import PCA
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    target = load_breast_cancer().target[:60]
    forest = RandomForestClassifier(n_estimators=3, random_state=0)
    scaled = ColumnTransformer(
        [("numbers", Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]), [0, 1])]
    )
    cases = {
        "forest": (forest, True),
        "trees after cell-by-cell steps": (Pipeline([("prep", scaled), ("model", forest)]), True),
        "boosting": (HistGradientBoostingRegressor(max_iter=5), True),
        # A matrix product rounds a row differently with the batch around it.
        "linear": (LogisticRegression(max_iter=5000), False),
        "trees after a projection": (Pipeline([("pca", PCA(2)), ("model", forest)]), False),
    }
    for name, (estimator, expected) in cases.items():
        assert served(estimator.fit(data, target)).row_by_row is expected, name
