"""A small HTTP/1.1 load generator: asyncio streams over raw sockets, keep-alive, N connections at once.

Each connection sends one request, reads the whole answer (Content-Length or chunked), then sends the next:
a closed loop, as N clients each waiting for their answer. The request is built once as bytes, so the
client's own cost per request is a write, a read and a few splits. Per-request latency is from the write to
the last byte of the answer. Standard library only: it runs in any venv.

`calibrate()` runs the generator against a trivial server in a child process (asyncio, a fixed answer): its
requests per second and p50 are the client's own ceiling on this machine, and show whether the figures of a
real server are the server's or the client's.

Run alone: `python benchmarks/loadgen.py` prints that ceiling for 1 and 8 connections.
"""

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

FIXED_BODY = b'{"ok":true}'


@dataclass
class LoadResult:
    connections: int
    # Seconds from sending each request to the last byte of its answer, in the order they finished.
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    # The body of the last answer (for checking what the server said).
    last_body: bytes = b""

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def per_second(self) -> float:
        return self.requests / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.latencies) * 1000 if self.latencies else float("nan")

    @property
    def all_ok(self) -> bool:
        return self.errors == 0 and set(self.statuses) == {200}


def build_request(url: str, method: str = "POST", body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    parts = urlsplit(url)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}", "Connection: keep-alive"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head[:-4].split(b"\r\n")
    status = int(status_line.split(b" ", 2)[1])
    length = None
    chunked = False
    for line in header_lines:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            parts.append(chunk[:-2])
        return status, b"".join(parts)
    if length is None:
        raise ValueError("an answer without Content-Length or chunked encoding cannot be framed on keep-alive")
    return status, await reader.readexactly(length)


async def _connection(
    host: str, port: int, request: bytes, result: LoadResult, budget: list[int], deadline: float | None
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    clock = time.perf_counter
    try:
        while True:
            if deadline is not None:
                if clock() >= deadline:
                    return
            else:
                if budget[0] <= 0:
                    return
                budget[0] -= 1
            started = clock()
            writer.write(request)
            try:
                status, body = await _read_answer(reader)
            except (asyncio.IncompleteReadError, ConnectionError, ValueError):
                result.errors += 1
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
                continue
            result.latencies.append(clock() - started)
            result.statuses[status] = result.statuses.get(status, 0) + 1
            result.last_body = body
    finally:
        writer.close()


async def drive(
    url: str,
    request: bytes,
    connections: int,
    requests: int | None = None,
    duration: float | None = None,
    warmup: int = 0,
) -> LoadResult:
    """`connections` closed-loop clients sending `request` until `requests` answers in all, or for
    `duration` seconds. `warmup` requests first (on every connection, untimed)."""
    if (requests is None) == (duration is None):
        raise ValueError("give either requests or duration")
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    if warmup:
        await _gather(host, port, request, LoadResult(connections), connections, [warmup * connections], None)
    result = LoadResult(connections)
    started = time.perf_counter()
    deadline = started + duration if duration is not None else None
    await _gather(host, port, request, result, connections, [requests or 0], deadline)
    result.elapsed = time.perf_counter() - started
    return result


async def _gather(
    host: str,
    port: int,
    request: bytes,
    result: LoadResult,
    connections: int,
    budget: list[int],
    deadline: float | None,
) -> None:
    await asyncio.gather(*(_connection(host, port, request, result, budget, deadline) for _ in range(connections)))


def run(url: str, request: bytes, connections: int, **options: float | int | None) -> LoadResult:
    """`drive` on a new event loop of its own (closed afterwards)."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(drive(url, request, connections, **options))  # type: ignore[arg-type]
    finally:
        loop.close()


# --- the trivial server and the calibration ----------------------------------------------------------------


class _FixedAnswer(asyncio.Protocol):
    """Answers every request (a head and its Content-Length body) with the same bytes, as fast as asyncio can."""

    ANSWER = (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
        + str(len(FIXED_BODY)).encode()
        + b"\r\n\r\n"
        + FIXED_BODY
    )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            length = 0
            for line in self.buffer[:end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            self.buffer = self.buffer[total:]
            self.transport.write(self.ANSWER)  # type: ignore[attr-defined]


def serve_fixed(port: int) -> None:
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(loop.create_server(_FixedAnswer, "127.0.0.1", port))
    print("ready", flush=True)
    try:
        loop.run_forever()
    finally:
        server.close()
        loop.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def calibrate(body: bytes, connections: tuple[int, ...] = (1, 8), duration: float = 2.0) -> list[dict[str, float]]:
    """The generator against the trivial server (in a child process), sending `body`: its ceiling."""
    port = _free_port()
    child = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--serve-fixed", str(port)], stdout=subprocess.PIPE
    )
    try:
        assert child.stdout is not None
        child.stdout.readline()
        url = f"http://127.0.0.1:{port}/"
        request = build_request(url, body=body, headers={"Content-Type": "application/json"})
        figures = []
        for count in connections:
            result = run(url, request, count, duration=duration, warmup=20)
            if not result.all_ok:
                raise RuntimeError(f"the trivial server answered {result.statuses}, {result.errors} errors")
            figures.append(
                {"connections": count, "per_second": result.per_second, "p50_ms": result.p50_ms, "bytes": len(body)}
            )
        return figures
    finally:
        child.terminate()
        child.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve-fixed", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per figure (2)")
    args = parser.parse_args()
    if args.serve_fixed:
        serve_fixed(args.serve_fixed)
        return
    for figure in calibrate(json.dumps({"data": [{"x": 1.0}]}).encode(), duration=args.duration):
        print(json.dumps(figure))


if __name__ == "__main__":
    main()
