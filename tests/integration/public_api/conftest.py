"""The endpoint under test: `LRNSTAK_API_URL` (and `LRNSTAK_API_KEY` when the API wants a key), else the
embedded stack `make run` starts, once for the whole session.

Runs may share a deployed stack with people and with each other, so every test makes its own names
(`it-<suffix>-<kind>`), deletes what it made and never assumes the registry or the cache is empty.
"""

import os
import secrets
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .helpers import Cleanup, Names, Table, diabetes, iris
from support.stack import RunningStack, start_stack

API_URL_VARIABLE = "LRNSTAK_API_URL"
API_KEY_VARIABLE = "LRNSTAK_API_KEY"


@pytest.fixture(scope="session")
def api_key() -> str | None:
    """The key the endpoint wants: LRNSTAK_API_KEY with LRNSTAK_API_URL; for the embedded stack, a fresh one
    it is started with, so the suite always goes through the key check."""
    if os.environ.get(API_URL_VARIABLE, "").strip():
        return os.environ.get(API_KEY_VARIABLE) or None
    return secrets.token_urlsafe(24)


@pytest.fixture(scope="session")
def api_url(tmp_path_factory: pytest.TempPathFactory, api_key: str | None) -> Iterator[str]:
    given = os.environ.get(API_URL_VARIABLE, "").strip()
    if given:
        yield given.rstrip("/")  # a stage path (https://...execute-api.../Prod) is kept
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(API_KEY_VARIABLE, api_key or "")
        running = start_stack(Path(tmp_path_factory.mktemp("public-api-stack")), reset=True)
    # The stack writes to a pipe: read it all along, or a full pipe would block the stack.
    reader = threading.Thread(target=_keep_reading, args=(running,), daemon=True)
    reader.start()
    yield running.url
    running.process.send_signal(signal.SIGTERM)
    code = running.process.wait(timeout=30)
    reader.join(timeout=5)
    assert code == 0, "\n".join(running.output[-60:])


def _keep_reading(running: RunningStack) -> None:
    assert running.process.stdout is not None
    for line in running.process.stdout:
        running.output.append(line.rstrip())


@pytest.fixture(scope="session")
def api(api_url: str, api_key: str | None) -> Iterator[httpx.Client]:
    headers = {"x-api-key": api_key} if api_key else {}
    with httpx.Client(base_url=api_url, timeout=60, headers=headers) as client:
        yield client


@pytest.fixture(scope="session")
def names() -> Names:
    return Names(secrets.token_hex(4))


@pytest.fixture
def made(api: httpx.Client, names: Names) -> Iterator[Cleanup]:
    """Unique model names and cache keys for one test; what was made under them is deleted after it."""
    cleanup = Cleanup(api, names)
    yield cleanup
    cleanup.close()


@pytest.fixture(scope="session")
def iris_table() -> Table:
    return iris()


@pytest.fixture(scope="session")
def diabetes_table() -> Table:
    return diabetes()
