"""What the public-API tests share: names unique to a run, their cleanup, datasets as rows, the error shape.

Nothing here reaches the stack except over HTTP, so the same tests run against any endpoint.
"""

import base64
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import joblib
import numpy as np
from sklearn.datasets import load_diabetes, load_iris
from sklearn.utils import Bunch

MODEL_VERSION_HEADER = "x-model-version"


class Names:
    """Model names and cache keys unique to one run (`it-<suffix>-<kind>`), so runs can share a stack."""

    def __init__(self, suffix: str) -> None:
        self.suffix = suffix
        self._issued: set[str] = set()

    def new(self, kind: str) -> str:
        name = f"it-{self.suffix}-{kind}"
        assert name not in self._issued, f"{name!r} was asked for twice: give each test its own kind"
        self._issued.add(name)
        return name


class Cleanup:
    """Hands out unique names and deletes what was made under them, whatever the tests' outcome."""

    def __init__(self, api: httpx.Client, names: Names) -> None:
        self.api = api
        self.names = names
        self.models: list[str] = []
        self.keys: list[str] = []

    def model(self, kind: str) -> str:
        self.models.append(self.names.new(kind))
        return self.models[-1]

    def key(self, kind: str) -> str:
        self.keys.append(self.names.new(kind))
        return self.keys[-1]

    def close(self) -> None:
        left = [
            f"DELETE /models/{model}: {status}"
            for model in self.models
            if (status := self.api.delete(f"/models/{model}").status_code) not in (204, 404)
        ]
        left += [
            f"DELETE /cache/{key}: {status}"
            for key in self.keys
            if (status := self.api.delete(f"/cache/{key}").status_code) != 200
        ]
        assert left == [], f"could not clean up: {left}"


@dataclass(frozen=True)
class Table:
    """A scikit-learn dataset as a matrix and as the rows clients send."""

    features: list[str]
    target: str
    X: np.ndarray
    y: list[Any]

    def rows(self, with_target: bool = True, step: int = 1) -> list[dict[str, Any]]:
        rows = []
        for x, label in zip(self.X[::step], self.y[::step], strict=True):
            row: dict[str, Any] = dict(zip(self.features, map(float, x), strict=True))
            if with_target:
                row[self.target] = label
            rows.append(row)
        return rows


def _table(bunch: Bunch, target: str, label: Callable[[Any], Any]) -> Table:
    features = [str(name).removesuffix(" (cm)").replace(" ", "_") for name in bunch.feature_names]
    return Table(features, target, np.asarray(bunch.data, dtype=float), [label(value) for value in bunch.target])


def iris() -> Table:
    """150 rows, 4 features; species as text, so predictions must come back as the class names."""
    bunch = load_iris()
    return _table(bunch, "species", lambda value: str(bunch.target_names[value]))


def diabetes() -> Table:
    """442 rows, 10 features, a numeric target."""
    return _table(load_diabetes(), "progression", float)


def joblib_bytes(estimator: object) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(estimator, buffer)
    return buffer.getvalue()


def encoded(data: bytes) -> str:
    return base64.b64encode(data).decode()


def ok(response: httpx.Response, status: int = 200) -> Any:
    """The JSON of an answer that must have `status`; the body is in the message when it has not."""
    assert response.status_code == status, f"{response.request.method} {response.request.url}: {response.text}"
    return response.json() if response.content else None


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Every error, 4xx or 5xx, has one shape: {"error": {"code", "message", "details"}, "request_id"}."""
    assert response.status_code == status, f"{response.request.method} {response.request.url}: {response.text}"
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "request_id"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, body
    assert error["code"] == code, body
    assert isinstance(error["message"], str), body
    assert error["message"], body
    assert isinstance(body["request_id"], str), body
    assert body["request_id"], body
    if "x-request-id" in response.headers:
        assert response.headers["x-request-id"] == body["request_id"]
    return dict(error)
