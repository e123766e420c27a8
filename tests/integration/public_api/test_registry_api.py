"""The registry over HTTP: upload, list, read, download, overwrite, rank and delete model versions.

The models are fitted here and uploaded, so what the registry hands back must be byte for byte what was sent.
"""

import hashlib
import os
import pickle
from typing import Any

import httpx
import numpy as np
from sklearn.linear_model import LinearRegression, Ridge

from .helpers import Cleanup, Table, assert_error, encoded, joblib_bytes, ok


def regressor(table: Table, alpha: float | None = None) -> bytes:
    estimator = LinearRegression() if alpha is None else Ridge(alpha=alpha)
    return joblib_bytes(estimator.fit(table.X, table.y))


def upload(api: httpx.Client, name: str, model: bytes, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = ok(api.post(f"/models/{name}", json={"model": encoded(model), **fields}))
    return body


def all_models(api: httpx.Client) -> list[dict[str, Any]]:
    """Every page of GET /models, following X-Next-Token (the registry may hold anybody's models)."""
    entries: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 1000}
    while True:
        response = api.get("/models", params=params)
        entries += ok(response)
        token = response.headers.get("x-next-token")
        if not token:
            return entries
        params = {"limit": 1000, "next_token": token}


def test_upload_without_a_version_takes_the_next_free_one(
    api: httpx.Client, made: Cleanup, diabetes_table: Table
) -> None:
    name = made.model("next-free")
    first, second = regressor(diabetes_table), regressor(diabetes_table, alpha=0.5)
    parameters = {"feature_labels": diabetes_table.features, "target_label": "progression"}

    saved = upload(api, name, first, parameters=parameters)
    assert saved["message"] == "Model uploaded successfully"
    assert (saved["model"], saved["version"]) == (name, "v1")
    assert saved["sha256"] == hashlib.sha256(first).hexdigest()
    assert upload(api, name, second, parameters=parameters)["version"] == "v2"

    versions = ok(api.get(f"/models/{name}"))
    assert versions["model"] == name
    assert [entry["version"] for entry in versions["versions"]] == ["v2", "v1"]  # newest first
    assert versions["versions"][1]["size"] == len(first)
    assert {entry["algorithm"] for entry in versions["versions"]} == {"LinearRegression", "Ridge"}
    for entry in versions["versions"]:
        assert set(entry) == {"version", "created_at", "updated_at", "size", "algorithm", "metrics"}

    [listed] = [entry for entry in all_models(api) if entry["model"] == name]
    assert {key: listed[key] for key in ("model", "versions", "latest")} == {
        "model": name,
        "versions": ["v1", "v2"],
        "latest": "v2",
    }
    assert listed["updated_at"]


def test_a_version_downloads_as_sent_inline_and_through_its_url(
    api: httpx.Client, made: Cleanup, diabetes_table: Table
) -> None:
    name = made.model("download")
    model = regressor(diabetes_table)
    parameters = {"feature_labels": diabetes_table.features, "metadata": {"team": "it", "run": 3}}
    upload(api, name, model, version="2026-01", parameters=parameters)

    inline = ok(api.get(f"/models/{name}/2026-01"))
    assert inline == {"model": encoded(model), "parameters": parameters}
    assert ok(api.get(f"/models/{name}/latest"))["model"] == encoded(model)

    linked = ok(api.get(f"/models/{name}/2026-01", params={"format": "url"}))
    assert set(linked) == {"model_url", "model_size", "parameters"}
    assert linked["model_size"] == len(model)
    fetched = httpx.get(linked["model_url"], timeout=60)  # presigned: no API key, no other credentials
    assert fetched.status_code == 200, fetched.text
    assert fetched.content == model


def test_info_describes_the_version(api: httpx.Client, made: Cleanup, diabetes_table: Table) -> None:
    name = made.model("info")
    model = regressor(diabetes_table)
    parameters = {"feature_labels": diabetes_table.features, "target_label": "progression", "metadata": {"team": "a"}}
    results = {"mse": 2900.5, "r2": 0.51}
    saved = upload(api, name, model, parameters=parameters, training_results=results)

    for version in ("v1", "latest"):
        info = ok(api.get(f"/models/{name}/{version}/info"))
        assert (info["model"], info["version"]) == (name, "v1")
        assert info["algorithm"] == "LinearRegression"
        assert info["parameters"] == parameters
        assert info["metadata"] == {"team": "a"}
        assert info["training_scores"] == results
        assert info["metrics"] == results
        assert info["sha256"] == saved["sha256"]
        assert info["size"] == len(model)
        assert info["sklearn_version"]
        assert info["created_at"] <= info["updated_at"]


def test_training_data_is_kept_with_the_version(api: httpx.Client, made: Cleanup, diabetes_table: Table) -> None:
    name = made.model("training-data")
    rows = diabetes_table.rows(step=40)
    parameters = {"feature_labels": diabetes_table.features, "target_label": "progression"}
    upload(api, name, regressor(diabetes_table), parameters=parameters, training_data=rows)
    assert ok(api.get(f"/models/{name}/v1/training_data")) == {"parameters": parameters, "training_data": rows}

    # The old stack's clients send the rows as `data`.
    upload(api, name, regressor(diabetes_table), version="v2", data=rows[:3])
    assert ok(api.get(f"/models/{name}/v2/training_data"))["training_data"] == rows[:3]


def test_uploading_an_existing_version_replaces_it(api: httpx.Client, made: Cleanup, diabetes_table: Table) -> None:
    name = made.model("overwrite")
    before, after = regressor(diabetes_table), regressor(diabetes_table, alpha=2.0)
    first = upload(api, name, before, version="v1", parameters={"metadata": {"round": 1}})
    created = ok(api.get(f"/models/{name}/v1/info"))["created_at"]

    second = upload(api, name, after, version="v1", parameters={"metadata": {"round": 2}})
    assert second["version"] == "v1"
    assert second["sha256"] == hashlib.sha256(after).hexdigest() != first["sha256"]
    info = ok(api.get(f"/models/{name}/v1/info"))
    assert (info["sha256"], info["algorithm"], info["metadata"]) == (second["sha256"], "Ridge", {"round": 2})
    assert info["updated_at"] >= created
    assert ok(api.get(f"/models/{name}/v1"))["model"] == encoded(after)
    assert [entry["version"] for entry in ok(api.get(f"/models/{name}"))["versions"]] == ["v1"]


def test_best_ranks_versions_by_a_metric_and_filters_on_metadata(
    api: httpx.Client, made: Cleanup, diabetes_table: Table
) -> None:
    name = made.model("best")
    model = regressor(diabetes_table)
    upload(api, name, model, parameters={"metadata": {"team": "a"}}, training_results={"mse": 3.0, "r2": 0.4})
    upload(api, name, model, parameters={"metadata": {"team": "b"}}, training_results={"mse": 2.0})
    upload(api, name, model, parameters={"metadata": {"team": "a"}}, training_results={"mse": 5.0})

    best = ok(api.get(f"/models/{name}/best"))  # mse, lowest
    assert {key: best[key] for key in ("model", "version", "best_score")} == {
        "model": name,
        "version": "v2",
        "best_score": 2.0,
    }
    assert best["parameters"] == {"metadata": {"team": "b"}}
    assert best["details"]["mse"] == 2.0
    assert ok(api.get(f"/models/{name}/best", params={"team": "a"}))["version"] == "v1"
    assert ok(api.get(f"/models/{name}/best", params={"order": "max"}))["version"] == "v3"
    assert ok(api.get(f"/models/{name}/best", params={"metric": "r2", "order": "max"}))["version"] == "v1"

    missing = assert_error(api.get(f"/models/{name}/best", params={"metric": "accuracy"}), 404, "not_found")
    assert missing["details"]["metric"] == "accuracy"
    assert_error(api.get(f"/models/{name}/best", params={"team": "c"}), 404, "not_found")
    assert_error(api.get(f"/models/{name}/best", params={"order": "up"}), 422, "validation_error")


def test_models_come_in_pages_sorted_by_name(api: httpx.Client, made: Cleanup, diabetes_table: Table) -> None:
    mine = [made.model(f"page-{letter}") for letter in "abc"]
    model = regressor(diabetes_table)
    for name in mine:
        upload(api, name, model)

    first = api.get("/models", params={"limit": 1})
    assert len(ok(first)) == 1
    token = first.headers["x-next-token"]  # there are at least three models
    following = ok(api.get("/models", params={"limit": 2, "next_token": token}))
    assert 1 <= len(following) <= 2
    assert following[0]["model"] > ok(first)[0]["model"]

    everything = [entry["model"] for entry in all_models(api)]
    assert everything == sorted(everything)
    assert len(set(everything)) == len(everything)
    assert [name for name in everything if name in mine] == mine

    assert_error(api.get("/models", params={"limit": 0}), 422, "validation_error")
    assert_error(api.get("/models", params={"limit": 1001}), 422, "validation_error")
    assert_error(api.get("/models", params={"next_token": "not a token"}), 400, "invalid_input")


def test_deleting_a_version_then_the_model(api: httpx.Client, made: Cleanup, diabetes_table: Table) -> None:
    name = made.model("delete")
    model = regressor(diabetes_table)
    for _ in range(3):
        upload(api, name, model, training_data=diabetes_table.rows(step=100))

    assert ok(api.delete(f"/models/{name}/v2"), 204) is None
    assert_error(api.get(f"/models/{name}/v2"), 404, "not_found")
    assert_error(api.get(f"/models/{name}/v2/info"), 404, "not_found")
    assert_error(api.get(f"/models/{name}/v2/training_data"), 404, "not_found")
    assert_error(api.delete(f"/models/{name}/v2"), 404, "not_found")
    assert [entry["version"] for entry in ok(api.get(f"/models/{name}"))["versions"]] == ["v3", "v1"]

    assert ok(api.delete(f"/models/{name}"), 204) is None
    for path in (f"/models/{name}", f"/models/{name}/v1", f"/models/{name}/latest/info"):
        assert_error(api.get(path), 404, "not_found")
    assert_error(api.delete(f"/models/{name}"), 404, "not_found")
    assert name not in {entry["model"] for entry in all_models(api)}


def test_unknown_models_and_versions_are_404(api: httpx.Client, made: Cleanup, diabetes_table: Table) -> None:
    name = made.model("unknown")
    assert_error(api.get(f"/models/{name}"), 404, "not_found")
    assert_error(api.get(f"/models/{name}/v1"), 404, "not_found")
    assert_error(api.get(f"/models/{name}/latest/info"), 404, "not_found")
    upload(api, name, regressor(diabetes_table))
    error = assert_error(api.get(f"/models/{name}/v9/info"), 404, "not_found")
    assert "v9" in error["message"]


def test_bad_names_and_versions_are_400_naming_the_bad_part(
    api: httpx.Client, made: Cleanup, diabetes_table: Table
) -> None:
    name = made.model("names")
    model = encoded(regressor(diabetes_table))
    error = assert_error(api.get("/models/bad name!"), 400, "invalid_input")
    assert error["details"]["value"] == "bad name!"
    assert_error(api.post("/models/-leading-dash", json={"model": model}), 400, "invalid_input")
    assert_error(api.post(f"/models/{'x' * 129}", json={"model": model}), 400, "invalid_input")
    for reserved in ("latest", "best"):
        error = assert_error(
            api.post(f"/models/{name}", json={"model": model, "version": reserved}), 400, "invalid_input"
        )
        assert error["details"] == {"field": "version", "value": reserved}
    assert_error(api.post(f"/models/{name}", json={"model": model, "version": "a/b"}), 400, "invalid_input")
    assert_error(api.get(f"/models/{name}"), 404, "not_found")  # nothing was saved


def test_uploads_that_are_not_models_are_refused(api: httpx.Client, made: Cleanup) -> None:
    name = made.model("refused")
    assert_error(api.post(f"/models/{name}", json={"model": "not base64!"}), 400, "invalid_input")
    assert_error(api.post(f"/models/{name}", json={"model": encoded(b"hello")}), 422, "invalid_model")
    assert_error(api.post(f"/models/{name}", json={}), 422, "validation_error")
    assert_error(api.post(f"/models/{name}", content=b"{not json"), 400, "invalid_json")
    assert_error(api.get(f"/models/{name}"), 404, "not_found")


class _CallsCode:
    """Unpickling this would call os.getpid: the registry must refuse it without running it."""

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return (os.getpid, ())


def test_a_pickle_that_runs_code_is_refused_as_unsafe(api: httpx.Client, made: Cleanup) -> None:
    name = made.model("unsafe")
    unsafe = encoded(pickle.dumps({"estimator": _CallsCode(), "weights": np.zeros(3)}))
    error = assert_error(api.post(f"/models/{name}", json={"model": unsafe}), 422, "unsafe_model")
    assert [refused.rsplit(".", 1)[-1] for refused in error["details"]["refused_globals"]] == ["getpid"]
    assert_error(api.get(f"/models/{name}"), 404, "not_found")
