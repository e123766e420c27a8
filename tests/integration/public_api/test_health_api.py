"""GET /health and /health/{function}: each of the four functions answers for itself."""

import httpx
import pytest

from .helpers import ok


@pytest.mark.parametrize(
    ("path", "function"),
    [
        ("/health", "registry"),  # API Gateway sends the bare /health to the registry function
        ("/health/registry", "registry"),
        ("/health/trainer", "trainer"),
        ("/health/predict", "predict"),
        ("/health/cache", "cache"),
    ],
)
def test_every_function_answers_health(api: httpx.Client, path: str, function: str) -> None:
    response = api.get(path)
    body = ok(response)
    assert body == {"status": "ok", "function": function, "version": body["version"]}
    assert isinstance(body["version"], str)
    assert body["version"]
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["x-request-id"]


def test_all_functions_run_the_same_release(api: httpx.Client) -> None:
    functions = ("registry", "trainer", "predict", "cache")
    versions = {ok(api.get(f"/health/{function}"))["version"] for function in functions}
    assert len(versions) == 1, versions
