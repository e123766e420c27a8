"""The README's quickstart, run exactly as written: its server block, then its client block, then the page.

The blocks are the fenced `sh` blocks after `<!-- quickstart: server -->` and `<!-- quickstart: client -->`.
The server block runs from the checkout (it is `make run`) on a free port with its own state folder; the
client block runs in an empty folder holding only a link to the checkout's .venv, with LRNSTAK_API_URL
pointing the command line at that port. Nothing in the blocks is changed.
"""

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from lrnstak.local.template import find_repo_root

from support.stack import free_port

ROOT = find_repo_root()
READY = re.compile(r"lrnstak is ready on (http://\S+) ")


def quickstart_block(name: str) -> str:
    readme = (ROOT / "README.md").read_text()
    match = re.search(rf"<!-- quickstart: {name} -->\s*```sh\n(.*?)```", readme, re.S)
    assert match, f"README.md has no ```sh block after <!-- quickstart: {name} -->"
    return match.group(1)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    state = tmp_path_factory.mktemp("quickstart-state")
    log_path = state / "server.log"
    environment = {
        **os.environ,
        "PORT": str(port),
        "LRNSTAK_DATA_DIR": str(state / "data"),
        "LRNSTAK_RESET": "1",
        "PYTHONUNBUFFERED": "1",
    }
    environment.pop("LRNSTAK_API_KEY", None)
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            ["bash", "-euo", "pipefail", "-c", quickstart_block("server")],
            cwd=ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 180
        while not READY.search(log_path.read_text(errors="replace")):
            assert server.poll() is None, "the server block exited:\n" + log_path.read_text(errors="replace")
            assert time.monotonic() < deadline, "the server block never said it was ready:\n" + log_path.read_text()
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    assert "lrnstak stopped; state saved." in log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def client_run(served: str, tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    folder = tmp_path_factory.mktemp("quickstart-client")
    (folder / ".venv").symlink_to(ROOT / ".venv")
    environment = {**os.environ, "LRNSTAK_API_URL": served}
    environment.pop("LRNSTAK_API_KEY", None)
    environment.pop("VIRTUAL_ENV", None)
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", quickstart_block("client")],
        cwd=folder,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_client_block_runs_without_an_error(client_run: subprocess.CompletedProcess[str]) -> None:
    assert client_run.returncode == 0, client_run.stdout + client_run.stderr
    assert "Traceback" not in client_run.stderr


def test_it_trained_predicted_and_listed(client_run: subprocess.CompletedProcess[str], served: str) -> None:
    output = client_run.stdout
    # The three flowers of flowers.csv are iris's first three rows: all setosa.
    predicted = [line for line in output.splitlines() if line.startswith("5.1,3.5,1.4,0.2")]
    assert predicted, output
    assert predicted[0].endswith(",setosa"), output
    assert re.search(r"^iris\s", output, re.M), output
    assert "random_forest" in output, output
    versions = httpx.get(f"{served}/models/iris").json()
    assert len(versions["versions"]) == 1


def test_the_page_it_points_at_is_served(client_run: subprocess.CompletedProcess[str], served: str) -> None:
    assert client_run.returncode == 0
    page = httpx.get(f"{served}/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<html" in page.text.lower()
