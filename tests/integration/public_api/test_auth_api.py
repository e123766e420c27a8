"""Who gets in: with a key configured, a request without it, or with a wrong one, is refused in the one
error shape; with it, it is served."""

import httpx
import pytest

from .helpers import assert_error


@pytest.fixture
def keyless(api_url: str, api_key: str | None) -> httpx.Client:
    if api_key is None:
        pytest.skip("this endpoint was given without LRNSTAK_API_KEY: it wants no key")
    return httpx.Client(base_url=api_url, timeout=60)


@pytest.mark.parametrize(("method", "path"), [("GET", "/health"), ("GET", "/models"), ("POST", "/predict/model/x")])
def test_a_request_without_the_key_is_refused(keyless: httpx.Client, method: str, path: str) -> None:
    with keyless:
        response = keyless.request(method, path, json={"data": []} if method == "POST" else None)
    assert_error(response, 403, "forbidden")


def test_a_wrong_key_is_refused_and_the_right_one_served(keyless: httpx.Client, api: httpx.Client) -> None:
    with keyless:
        assert_error(keyless.get("/models", headers={"x-api-key": "not-the-key"}), 403, "forbidden")
    assert api.get("/models").status_code == 200
