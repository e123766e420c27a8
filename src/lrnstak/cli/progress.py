"""A job's progress on stderr: a redrawn bar with status and elapsed time on a terminal, plain lines elsewhere."""

import itertools
import sys
import threading
import time
from typing import TextIO

from lrnstak.client import Job

BAR_WIDTH = 24
SPINNER = "|/-\\"


class Progress:
    def __init__(self, label: str, status: str, stream: TextIO | None = None, interactive: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.label = label
        self.status = status
        self.fraction: float | None = None
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_line = ""

    def __enter__(self) -> "Progress":
        if self.interactive:
            self._thread = threading.Thread(target=self._redraw, name="progress", daemon=True)
            self._thread.start()
        else:
            self._say(f"{self.label}: {self.status}")
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self.stream.write("\r" + " " * len(self._last_line) + "\r")
            self.stream.flush()

    def set_status(self, status: str, fraction: float | None = None) -> None:
        with self._lock:
            changed = status != self.status
            self.status, self.fraction = status, fraction
        if changed and not self.interactive:
            self._say(f"{self.label}: {status} ({self.elapsed():.1f} s)")

    def on_job(self, job: Job) -> None:
        self.set_status(f"job {job.job_id} {job.status}", job.progress)

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def line(self, spinner: str) -> str:
        with self._lock:
            status, fraction = self.status, self.fraction
        if fraction is None:
            bar = ""
        else:
            filled = round(max(0.0, min(1.0, fraction)) * BAR_WIDTH)
            bar = f" [{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {fraction:4.0%}"
        return f"{spinner} {self.label}: {status}{bar} {self.elapsed():5.1f}s"

    def _redraw(self) -> None:
        for spinner in itertools.cycle(SPINNER):
            text = self.line(spinner)
            padding = " " * max(0, len(self._last_line) - len(text))
            self.stream.write("\r" + text + padding)
            self.stream.flush()
            self._last_line = text
            if self._stop.wait(0.1):
                return

    def _say(self, text: str) -> None:
        self.stream.write(f"lrnstak: {text}\n")
        self.stream.flush()


class LazyProgress:
    """A Progress that appears with the first job state reported, for work that is a job only sometimes."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._progress: Progress | None = None

    def __enter__(self) -> "LazyProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def on_job(self, job: Job) -> None:
        if self._progress is None:
            self._progress = Progress(self.label, f"job {job.job_id} {job.status}").__enter__()
        self._progress.on_job(job)
