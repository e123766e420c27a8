"""The stack `make run` starts, driven over real HTTP: routes, restarts, signals."""

import signal
import time
from pathlib import Path

import httpx
import pytest

from support.models import linear_regression, model_b64
from support.stack import port_is_free, start_stack


@pytest.mark.parametrize("path", ["/health", "/health/registry", "/health/trainer", "/health/predict", "/health/cache"])
def test_every_function_answers_health(http: httpx.Client, path: str) -> None:
    response = http.get(path)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_health_names_the_function_that_answered(http: httpx.Client) -> None:
    assert http.get("/health/cache").json()["function"] == "cache"
    assert http.get("/health/trainer").json()["function"] == "trainer"


def test_registry_round_trip_over_http(http: httpx.Client) -> None:
    upload = {"model": model_b64(), "version": "v1", "parameters": {"target_label": "y", "metadata": {"team": "a"}}}
    saved = http.post("/models/http-model", json=upload)
    assert saved.status_code == 200, saved.text
    assert saved.json()["message"] == "Model uploaded successfully"

    listed = http.get("/models").json()
    assert {"model": "http-model", "versions": ["v1"], "latest": "v1"}.items() <= next(
        m for m in listed if m["model"] == "http-model"
    ).items()
    assert http.get("/models/http-model/latest/info").json()["sha256"] == saved.json()["sha256"]
    assert http.get("/models/http-model/v1").json()["model"] == upload["model"]
    assert http.delete("/models/http-model/v1").status_code == 204
    assert http.get("/models/http-model").status_code == 404


def test_unknown_routes_and_methods_get_the_error_shape(http: httpx.Client) -> None:
    missing = http.get("/nothing/here")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    wrong_method = http.patch("/models/x")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"


def test_a_restart_keeps_the_models_and_reset_starts_empty(tmp_path: Path) -> None:
    first = start_stack(tmp_path)
    with first.client() as client:
        assert client.post("/models/kept", json={"model": model_b64(linear_regression(3))}).status_code == 200
    assert first.stop(signal.SIGINT) == 0
    assert port_is_free(first.port)
    assert port_is_free(first.aws_port)

    second = start_stack(tmp_path)
    try:
        with second.client() as client:
            assert client.get("/models/kept").json()["versions"][0]["version"] == "v1"
            assert client.get("/models/kept/v1").json()["model"] == model_b64(linear_regression(3))
    finally:
        assert second.stop() == 0

    emptied = start_stack(tmp_path, reset=True)
    try:
        with emptied.client() as client:
            assert client.get("/models/kept").status_code == 404
    finally:
        emptied.stop()


def test_state_is_saved_while_running_so_a_killed_stack_keeps_it(tmp_path: Path) -> None:
    stack = start_stack(tmp_path)
    with stack.client() as client:
        assert client.post("/models/survivor", json={"model": model_b64()}).status_code == 200
    time.sleep(2)  # the snapshot runs every 0.5 s in tests (LRNSTAK_SNAPSHOT_SECONDS)
    stack.stop(signal.SIGKILL)

    again = start_stack(tmp_path)
    try:
        with again.client() as client:
            assert client.get("/models/survivor").status_code == 200
    finally:
        again.stop()


def test_a_pop_is_saved_like_a_write_so_a_restart_does_not_bring_it_back(tmp_path: Path) -> None:
    stack = start_stack(tmp_path)
    with stack.client() as client:
        for value in ("a", "b"):
            assert client.put("/cache/push/queue", json={"value": value}).status_code == 200
        time.sleep(1.5)  # the pushes are saved
        assert client.get("/cache/pop/queue").json() == "b"
    time.sleep(1.5)  # the snapshot runs every 0.5 s in tests
    stack.stop(signal.SIGKILL)

    again = start_stack(tmp_path)
    try:
        with again.client() as client:
            assert client.get("/cache/pop/queue").json() == "a"
            assert client.get("/cache/pop/queue").status_code == 404
    finally:
        again.stop()
