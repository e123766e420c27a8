"""How often the embedded stack's queue workers poll (lrnstak/local/workers.py): often while jobs come and go,
slowly once the queue has been quiet, and at once when a write rings them."""

import time
from collections.abc import Callable, Iterator

import pytest

from lrnstak.local import workers
from lrnstak.local.workers import QueueWorker
from lrnstak.storage.clients import AwsClients

from support.jobs import jobs_queue


def wait_for(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture
def polls(aws: AwsClients) -> list[float]:
    """When each ReceiveMessage call left the worker's client."""
    seen: list[float] = []
    aws.sqs.meta.events.register("before-call.sqs.ReceiveMessage", lambda **_: seen.append(time.monotonic()))
    return seen


@pytest.fixture
def worker(aws: AwsClients) -> Iterator[QueueWorker]:
    running = QueueWorker(aws.sqs, jobs_queue(), "JobsWorkerFunction", 60, lambda *_: None, lambda: None)
    yield running
    running.stop()
    assert not running.is_alive()


def test_a_quiet_worker_polls_slowly_and_at_once_when_rung(
    worker: QueueWorker, polls: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workers, "QUIET_AFTER_SECONDS", 0.0)
    monkeypatch.setattr(workers, "IDLE_POLL_SECONDS", 60.0)
    worker.start()
    wait_for(lambda: len(polls) == 1)
    time.sleep(0.5)
    assert len(polls) == 1

    rung_at = time.monotonic()
    worker.ring()
    wait_for(lambda: len(polls) == 2)
    assert polls[1] - rung_at < 1.0


def test_a_worker_polls_often_until_the_queue_has_been_quiet(
    worker: QueueWorker, polls: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workers, "QUIET_AFTER_SECONDS", 60.0)
    worker.start()
    time.sleep(1.1)
    assert len(polls) >= 4  # every POLL_INTERVAL_SECONDS (0.2 s)
