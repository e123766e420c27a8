"""Training jobs on the stack `make run` starts, over real HTTP: the queue worker runs each job in its own
process, like Lambda; a worker killed mid-job leaves the job failed, and a sync request past its budget
continues as exactly one job."""

import base64
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sklearn.datasets import load_diabetes

from lrnstak.ml.safe_loading import load_model

from support.stack import RunningStack, start_stack

BUDGET_SECONDS = 1
WORKER_MODULE = "lrnstak.local.run_function"


def diabetes_rows() -> list[dict[str, Any]]:
    bunch = load_diabetes()
    names = [str(name) for name in bunch.feature_names]
    return [
        {**dict(zip(names, map(float, x), strict=True)), "target": float(y)}
        for x, y in zip(bunch.data, bunch.target, strict=True)
    ]


ROWS = diabetes_rows()


def request(algorithm: str | list[str], hyper: dict[str, dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    parameters = {"target_label": "target", "algorithm": algorithm, "hyper": hyper or {}}
    return {"training_data": ROWS, "parameters": parameters, **extra}


def gradient_boosting(trees: int) -> dict[str, Any]:
    """Gradient boosting on diabetes: about 0.8 ms per tree here, and a small model."""
    return request("gradient_boosting", {"gradient_boosting": {"n_estimators": trees}})


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SYNC_TRAINING_BUDGET_SECONDS", str(BUDGET_SECONDS))
        running = start_stack(tmp_path_factory.mktemp("jobs-state"), reset=True)
    drain = threading.Thread(target=_drain, args=(running,), daemon=True)  # a full pipe would block the stack
    drain.start()
    yield running
    code = running.stop()
    drain.join(timeout=5)
    assert code == 0, "\n".join(running.output[-60:])


def _drain(stack: RunningStack) -> None:
    assert stack.process.stdout is not None
    for line in stack.process.stdout:
        stack.output.append(line.rstrip())


@pytest.fixture
def http(stack: RunningStack) -> Iterator[httpx.Client]:
    with stack.client() as client:
        yield client


def accepted(response: httpx.Response) -> str:
    assert response.status_code == 202, response.text
    job_id = str(response.json()["job_id"])
    assert response.json() == {"job_id": job_id, "status": "queued", "links": {"self": f"/train/jobs/{job_id}"}}
    assert response.headers["location"] == f"/train/jobs/{job_id}"
    return job_id


def poll(
    http: httpx.Client, job_id: str, until: set[str], timeout: float = 30, every: float = 0.05
) -> list[dict[str, Any]]:
    """Every state seen, until the job reaches one of `until`."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = http.get(f"/train/jobs/{job_id}")
        assert response.status_code == 200, response.text
        seen.append(response.json())
        if seen[-1]["status"] in until:
            return seen
        time.sleep(every)
    raise AssertionError(f"job {job_id} never reached {until}; last seen {seen[-1] if seen else None}")


def versions(http: httpx.Client, name: str) -> list[str]:
    response = http.get(f"/models/{name}")
    if response.status_code == 404:
        return []
    assert response.status_code == 200, response.text
    return [entry["version"] for entry in response.json()["versions"]]


def worker_processes(stack: RunningStack) -> list[int]:
    """The stack's children running a worker invocation (what `pkill -f lrnstak.local.run_function` finds)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent == stack.process.pid and WORKER_MODULE.encode() in command:
            found.append(int(entry.name))
    return found


# 8. a job end to end -----------------------------------------------------------------------------------


def test_a_job_runs_in_the_worker_with_rising_progress_to_a_downloadable_version(http: httpx.Client) -> None:
    hyper = {
        "gradient_boosting": {"n_estimators": 1500},
        "random_forest": {"n_estimators": 250, "max_depth": 4},
        "extra_trees": {"n_estimators": 400, "max_depth": 4},
    }
    body = request(["gradient_boosting", "random_forest", "extra_trees"], hyper, **{"async": True})
    job_id = accepted(http.post("/train/http-job", json=body))
    seen = poll(http, job_id, {"succeeded", "failed"})
    done = seen[-1]
    assert done["status"] == "succeeded", done

    statuses = [state["status"] for state in seen]
    assert statuses == sorted(statuses, key=["queued", "running", "succeeded"].index)  # never goes back
    running = [state["progress"] for state in seen if state["status"] == "running"]
    assert running, f"never saw the job running: {statuses}"
    assert running == sorted(running)
    assert len(set(running)) >= 2, f"progress did not rise while running: {running}"
    assert all(0 < progress < 1 for progress in running)
    assert done["progress"] == 1.0
    assert done["version"] == "v1"
    assert done["started_at"] is not None
    assert done["finished_at"] is not None
    assert set(done["training_results"]["results"]) == set(hyper)

    assert versions(http, "http-job") == ["v1"]
    listed = http.get("/train/jobs", params={"model": "http-job"}).json()
    assert [(j["job_id"], j["status"]) for j in listed] == [(job_id, "succeeded")]
    artifact = http.get("/models/http-job/v1")
    assert artifact.status_code == 200, artifact.text
    saved = load_model(base64.b64decode(artifact.json()["model"])).estimator
    features = [{k: v for k, v in row.items() if k != "target"} for row in ROWS[:5]]
    assert len(saved.predict(features)) == 5


# 9. a worker killed mid-job ----------------------------------------------------------------------------


def test_a_worker_killed_mid_job_leaves_the_job_failed_and_the_stack_serving(
    stack: RunningStack, http: httpx.Client
) -> None:
    job_id = accepted(http.post("/train/killed", json={**gradient_boosting(200_000), "async": True}))
    poll(http, job_id, {"running", "succeeded", "failed"})
    assert http.get(f"/train/jobs/{job_id}").json()["status"] == "running"
    workers = worker_processes(stack)
    assert len(workers) == 1, workers
    os.kill(workers[0], signal.SIGKILL)

    failed = poll(http, job_id, {"succeeded", "failed"}, timeout=15)[-1]
    assert failed["status"] == "failed", failed
    assert failed["error"]["code"] == "worker_lost"
    assert "stopped before finishing" in failed["error"]["message"]
    assert str(-signal.SIGKILL) in failed["error"]["message"]  # the exit status says how it died
    assert failed["finished_at"] is not None
    assert versions(http, "killed") == []
    assert worker_processes(stack) == []

    assert http.get("/health/trainer").status_code == 200
    after = accepted(http.post("/train/after-kill", json={**request("linear_regression"), "async": True}))
    finished = poll(http, after, {"succeeded", "failed"})[-1]
    assert finished["status"] == "succeeded", finished
    assert versions(http, "after-kill") == ["v1"]
    assert http.get(f"/train/jobs/{job_id}").json() == failed  # nothing revived the killed job


# 10. a sync request past its budget --------------------------------------------------------------------


def test_a_sync_request_past_the_budget_answers_202_and_registers_exactly_one_version(http: httpx.Client) -> None:
    started = time.monotonic()
    response = http.post("/train/over-budget", json=gradient_boosting(4000))
    answered = time.monotonic() - started
    job_id = accepted(response)
    # Not the whole training: the bound leaves room for a loaded machine, the job still has its work after.
    assert BUDGET_SECONDS <= answered < BUDGET_SECONDS + 30, answered

    done = poll(http, job_id, {"succeeded", "failed"}, timeout=240)[-1]
    assert done["status"] == "succeeded", done
    assert done["version"] == "v1"
    # The abandoned attempt trains as long as the job did, from the request on; give it that and more.
    seconds = float(done["training_results"]["metadata"]["seconds"])
    deadline = started + 2 * seconds + 3
    while time.monotonic() < deadline:
        assert versions(http, "over-budget") == ["v1"]
        time.sleep(0.25)
    assert versions(http, "over-budget") == ["v1"]
    assert [j["job_id"] for j in http.get("/train/jobs", params={"model": "over-budget"}).json()] == [job_id]


def test_a_sync_request_within_the_budget_answers_200_without_a_job(http: httpx.Client) -> None:
    response = http.post("/train/in-budget", json=request("linear_regression"))
    assert response.status_code == 200, response.text
    assert response.json()["version"] == "v1"
    assert http.get("/train/jobs", params={"model": "in-budget"}).json() == []


def test_a_stack_stopped_while_an_abandoned_attempt_still_fits_exits_cleanly(tmp_path: Path) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SYNC_TRAINING_BUDGET_SECONDS", str(BUDGET_SECONDS))
        running = start_stack(tmp_path / "state", reset=True)
    drain = threading.Thread(target=_drain, args=(running,), daemon=True)
    drain.start()
    with running.client() as client:
        # About 40 s of fitting: far past the budget and past the grace a stopping stack gives it.
        job_id = accepted(client.post("/train/long-fit", json=gradient_boosting(50_000)))
    started = time.monotonic()
    code = running.stop(timeout=40)
    drain.join(timeout=5)
    assert code == 0, "\n".join(running.output[-60:])
    assert time.monotonic() - started < 30
    assert "lrnstak stopped; state saved." in running.output
    assert not any("Traceback" in line for line in running.output), "\n".join(running.output)
    assert job_id
