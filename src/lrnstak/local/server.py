"""`make run`: moto's server as the embedded AWS, the template's resources, the four apps on one port.

Runs in the foreground; Ctrl-C or SIGTERM stops the HTTP server, saves the state and stops moto.
"""

import asyncio
import gc
import logging
import os
import shutil
import socket
import sys
import threading
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import uvicorn
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from lrnstak.local.bootstrap import BUCKET, DROPPED_AWS_ENVIRONMENT, TABLE, create_resources, shared_environment
from lrnstak.local.template import Template
from lrnstak.settings import get_settings
from lrnstak.storage.clients import AwsClients, build_clients, get_clients

if TYPE_CHECKING:
    from lrnstak.local.workers import QueueWorker

# The local stack must never reach a real AWS account, whatever the shell has configured.
FAKE_AWS_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}
# How long a stopping stack waits for a synchronous fit still running (one abandoned to a job, say).
ATTEMPT_GRACE_SECONDS = 10.0


class LocalSettings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=5000, ge=1, le=65535)
    moto_port: int = Field(default=0, ge=0, le=65535, description="0: any free port")
    lrnstak_data_dir: Path = Path(".lrnstak")
    lrnstak_reset: bool = False
    lrnstak_snapshot_seconds: float = Field(default=2.0, gt=0)
    lrnstak_resource_prefix: str = Field(default="lrnstak", pattern="^[a-z0-9][a-z0-9-]{0,30}$")
    # Empty: open, as `make run` always was. Set: every request needs it in x-api-key, like the deployed API.
    lrnstak_api_key: str = Field(default="", pattern=r"^[\x21-\x7e]*$")


class EmbeddedAws:
    """moto's server in this process, over real HTTP on loopback, one AWS request at a time.

    DynamoDB and S3 apply each request atomically (a conditional delete either claims an item or fails).
    moto checks conditions and writes in plain Python from several threads, so two requests could both
    pass the same check; serialising them gives the local stack the atomicity the code relies on in AWS.
    """

    def __init__(self, host: str, port: int = 0) -> None:
        from moto.core.model_instances import reset_model_data
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        moto_app = DomainDispatcherApplication(create_backend_app)
        lock = threading.Lock()

        def one_at_a_time(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
            with lock:
                try:
                    return list(moto_app(environ, start_response))
                finally:
                    # moto keeps every model instance it ever made (each item, each copy of one a scan or a
                    # condition made, each object key) in a list per class, for its dashboard. Nothing here
                    # reads them and they grew the stack by ~65 KiB a write (benchmarks/soak.py), so they are
                    # dropped after each request (8 us); moto's stores keep what they hold.
                    reset_model_data()

        self._server = make_server(host, port, one_at_a_time, threaded=True, request_handler=MotoRequestHandler)
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="embedded-aws", daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def check_port_free(host: str, port: int) -> None:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as probe:
        # As uvicorn binds: connections of a previous run left in TIME_WAIT do not make the port busy.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            raise SystemExit(
                f"error: port {port} on {host} is in use. Stop what is using it, or run `make run PORT=<other>`."
            ) from None


def point_at_embedded_aws(endpoint: str, environment: dict[str, str]) -> None:
    for name in DROPPED_AWS_ENVIRONMENT:
        os.environ.pop(name, None)
    os.environ.update(FAKE_AWS_ENVIRONMENT)
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    os.environ.update(environment)
    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "lrnstak-local")
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    get_settings.cache_clear()
    get_clients.cache_clear()


@dataclass
class LocalStack:
    """Everything `make run` starts, also used by the tests that drive the stack over HTTP."""

    settings: LocalSettings
    template: Template
    # The queue consumers, once start_workers has started them.
    workers: "list[QueueWorker]" = field(default_factory=list, init=False)

    def start_aws(self) -> AwsClients:
        from lrnstak.local.persistence import StateSnapshot, WriteGate

        self.aws = EmbeddedAws(self.settings.host, self.settings.moto_port)
        self.aws.start()
        point_at_embedded_aws(self.aws.endpoint, {})
        names = create_resources(self.template, build_clients(), self.settings.lrnstak_resource_prefix)
        self.references = names
        point_at_embedded_aws(self.aws.endpoint, shared_environment(self.template, names))
        clients = get_clients()
        data_dir = self.settings.lrnstak_data_dir
        if self.settings.lrnstak_reset and data_dir.exists():
            shutil.rmtree(data_dir)
        self.snapshot = StateSnapshot(
            clients,
            tables={k: names[k] for k in self.template.resources_of_type(TABLE)},
            buckets={k: names[k] for k in self.template.resources_of_type(BUCKET)},
            folder=data_dir,
        )
        self.restored = self.snapshot.restore()
        self.gate = WriteGate(self.snapshot.save)
        return clients

    def start_workers(self) -> None:
        """The queue consumers, after jobs a previous run left unfinished are put back in order."""
        from lrnstak.jobs.service import get_job_service
        from lrnstak.local.workers import QueueWorker, recover_unfinished_jobs

        recover_unfinished_jobs()
        jobs = get_job_service()
        timeout = get_settings().worker_timeout_seconds
        self.workers = [
            QueueWorker(
                get_clients().sqs, self.references[queue], function, timeout, jobs.abandon, self.gate.mark_dirty
            )
            for function, queue in self.template.queue_consumers()
        ]
        for worker in self.workers:
            worker.start()

    def build_gateway(self) -> object:
        from lrnstak.local.gateway import LocalGateway

        gate = self.gate
        tasks: list[asyncio.Task[None]] = []

        async def start_snapshots() -> None:
            tasks.append(asyncio.create_task(gate.snapshot_every(self.settings.lrnstak_snapshot_seconds)))

        async def stop_snapshots() -> None:
            for task in tasks:
                task.cancel()
            await gate.snapshot_if_dirty()

        return LocalGateway.from_template(
            self.template,
            guard=gate.run_write,
            on_startup=start_snapshots,
            on_shutdown=stop_snapshots,
            api_key=self.settings.lrnstak_api_key,
            after_write=self.ring_workers,
        )

    def ring_workers(self) -> None:
        for worker in self.workers:
            worker.ring()

    def stop(self) -> bool:
        """Stops the workers, saves the state and stops moto. False when a synchronous training attempt
        that outlasted its budget is still fitting: its thread must not outlive the interpreter's shutdown."""
        from lrnstak.trainer.service import get_trainer_service

        attempts_finished = get_trainer_service().wait_for_attempts(ATTEMPT_GRACE_SECONDS)
        try:
            for worker in self.workers:
                worker.stop()
            self.snapshot.save()
        finally:
            # Even when the last save failed: moto's server thread must not outlive the interpreter.
            self.aws.stop()
        return attempts_finished


class ForegroundServer(uvicorn.Server):
    """Ctrl-C / SIGTERM stop serving and return, so the state is saved and moto stopped before exit.

    uvicorn would re-raise the signal once it has shut down, killing the process before that.
    """

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


def _announce_when_ready(server: uvicorn.Server, url: str, started_at: float, stack: LocalStack) -> None:
    while not server.started:
        if server.should_exit:
            return
        time.sleep(0.02)
    # __main__ turned the cyclic GC off for the start; what the start built stays, so it is frozen out of its way.
    gc.freeze()
    gc.enable()
    restored = stack.restored
    print(
        f"lrnstak is ready on {url} ({time.monotonic() - started_at:.1f}s; "
        f"embedded AWS at {stack.aws.endpoint}; state in {stack.settings.lrnstak_data_dir}/, "
        f"restored {restored['items']} items and {restored['objects']} objects). Ctrl-C stops it.",
        flush=True,
    )


def main() -> None:
    started_at = time.monotonic()
    # moto's werkzeug server logs every AWS call it answers; the stack's own console stays readable.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    settings = LocalSettings()
    check_port_free(settings.host, settings.port)
    stack = LocalStack(settings, Template.load())
    stack.start_aws()
    try:
        gateway = stack.build_gateway()
        stack.start_workers()
        config = uvicorn.Config(
            gateway,  # type: ignore[arg-type]
            host=settings.host,
            port=settings.port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=10,
            http="httptools",  # C, not h11's pure Python: a 1000-row prediction is 0.8 MB each way
        )
        server = ForegroundServer(config)
        url = f"http://{settings.host}:{settings.port}"
        threading.Thread(target=_announce_when_ready, args=(server, url, started_at, stack), daemon=True).start()
        server.run()
    finally:
        attempts_finished = stack.stop()
        print("lrnstak stopped; state saved.", flush=True)
    if not attempts_finished:
        # An abandoned fit (its job already has the work) would run on into the interpreter's shutdown and
        # fail there; the state is saved and nothing of it is needed.
        sys.stderr.flush()
        os._exit(0)
    sys.exit(0)
