"""SnapStart: the predict function registers its hooks with the runtime's snapshot_restore_py; before the
snapshot they preload the configured models, after a restore every cached model is revalidated."""

import importlib
from typing import Any

import pytest
import snapshot_restore_py
from conftest import reset_cached_wiring
from sklearn.linear_model import LinearRegression

from lrnstak.predict import snapstart
from lrnstak.predict.service import get_model_cache
from lrnstak.storage.clients import AwsClients, drop_connections, get_clients

from support.events import rest_v1_event
from support.functions import invoke
from support.models import model_b64


def upload(name: str, slope: float) -> None:
    model = LinearRegression().fit([[0.0], [1.0], [2.0]], [0.0, slope, 2 * slope])
    body = {"model": model_b64(model), "parameters": {"feature_labels": ["x"]}}
    response = invoke("RegistryFunction", rest_v1_event("POST", f"/models/{name}", body=body))
    assert response.status == 200, response.raw_body


def predict(name: str) -> Any:
    response = invoke("PredictFunction", rest_v1_event("POST", f"/predict/model/{name}", body={"data": [{"x": 1}]}))
    assert response.status == 200, response.raw_body
    return response.json()[0]["prediction"]


def test_preload_names_parse_the_setting() -> None:
    assert snapstart.preload_names(" iris, wine:v2 ,,") == [("iris", "latest"), ("wine", "v2")]
    assert snapstart.preload_names("") == []


def test_the_predict_function_registers_both_hooks_with_the_runtime(aws: AwsClients) -> None:
    before = list(snapshot_restore_py.get_before_snapshot())
    after = list(snapshot_restore_py.get_after_restore())
    assert snapstart.register_runtime_hooks() is True
    assert [hook[0] for hook in snapshot_restore_py.get_before_snapshot()[len(before) :]] == [snapstart.preload_models]
    assert [hook[0] for hook in snapshot_restore_py.get_after_restore()[len(after) :]] == [
        snapstart.refresh_after_restore
    ]


def test_without_the_runtime_library_nothing_is_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = importlib.import_module

    def no_runtime(name: str, package: str | None = None) -> Any:
        if name == snapstart.RUNTIME_HOOKS_MODULE:
            raise ImportError(name)
        return real_import(name, package)

    monkeypatch.setattr(importlib, "import_module", no_runtime)
    assert snapstart.register_runtime_hooks() is False


def test_preloading_loads_the_named_models_and_skips_missing_ones(
    aws: AwsClients, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload("alpha", 2.0)
    upload("beta", 3.0)
    upload("beta", 4.0)
    monkeypatch.setenv("PREDICT_PRELOAD_MODELS", "alpha,missing,beta:v1,beta:v9")
    reset_cached_wiring()
    assert snapstart.preload_models() == [("alpha", "v1"), ("beta", "v1")]
    assert sorted(get_model_cache().keys()) == [("alpha", "v1"), ("beta", "v1")]


def test_after_a_restore_a_cached_model_is_revalidated_on_its_next_request(
    aws: AwsClients, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODEL_CACHE_REVALIDATE_SECONDS", "300")  # a window the test could never outwait
    monkeypatch.setenv("PREDICT_PRELOAD_MODELS", "gamma")
    reset_cached_wiring()
    upload("gamma", 2.0)
    snapstart.preload_models()
    assert predict("gamma") == pytest.approx(2.0)
    upload("gamma", 5.0)  # v2 is now latest; the warm cache still answers v1 within its window
    assert predict("gamma") == pytest.approx(2.0)

    snapstart.refresh_after_restore()
    assert predict("gamma") == pytest.approx(5.0)


def test_dropping_connections_closes_every_clients_pool(aws: AwsClients) -> None:
    clients = get_clients()
    clients.s3.list_buckets()
    assert drop_connections(clients) == 3
    assert clients.s3.list_buckets()["Buckets"]  # fresh connections open on the next call
