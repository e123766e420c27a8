"""Starts `python -m lrnstak.local` (what `make run` runs) as a real process on free loopback ports."""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

READY = re.compile(r"lrnstak is ready on (http://\S+) .*embedded AWS at (http://[\d.:]+)")
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Nothing listens there (connections of a stopped server left in TIME_WAIT do not count)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@dataclass
class RunningStack:
    process: subprocess.Popen[str]
    url: str
    aws_endpoint: str
    output: list[str] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def aws_port(self) -> int:
        return int(self.aws_endpoint.rsplit(":", 1)[1])

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout=timeout)
        if self.process.stdout:
            self.output.extend(self.process.stdout.read().splitlines())
        return code


def start_stack(data_dir: Path, reset: bool = False, timeout: float = 60) -> RunningStack:
    environment = {
        **os.environ,
        "PORT": str(free_port()),
        "LRNSTAK_DATA_DIR": str(data_dir),
        "LRNSTAK_RESET": "1" if reset else "0",
        "LRNSTAK_SNAPSHOT_SECONDS": "0.5",
        "PYTHONUNBUFFERED": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "lrnstak.local"],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        output.append(line.rstrip())
        match = READY.search(line)
        if match:
            return RunningStack(process, match.group(1), match.group(2), output)
    process.kill()
    raise RuntimeError("the local stack did not become ready:\n" + "\n".join(output))


@contextmanager
def serving(data_dir: Path, **environment: str) -> Iterator[RunningStack]:
    """A fresh stack started with `environment` added to this one's, its output read all along (a full pipe
    would block it), stopped afterwards; it must stop cleanly."""
    saved = {name: os.environ.get(name) for name in environment}
    os.environ.update(environment)
    try:
        running = start_stack(data_dir, reset=True)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    reader = threading.Thread(target=_read_all, args=(running,), daemon=True)
    reader.start()
    yield running
    code = running.stop()
    reader.join(timeout=5)
    assert code == 0, "\n".join(running.output[-60:])


def _read_all(stack: RunningStack) -> None:
    assert stack.process.stdout is not None
    for line in stack.process.stdout:
        stack.output.append(line.rstrip())
