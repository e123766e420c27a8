"""Where a route's CPU-bound work runs (lrnstak.http.run_cpu_bound): on the event loop for a request alone,
on a worker thread when other requests are in flight or were lately."""

import asyncio
import math
import threading
from collections.abc import Iterator

import httpx
import pytest
from fastapi import APIRouter

from lrnstak import http
from lrnstak.http import RequestsInFlight, create_app, run_cpu_bound

# create_app's middleware reads the settings, which name the template's resources.
pytestmark = pytest.mark.usefixtures("aws")

router = APIRouter()


def where() -> dict[str, int]:
    return {"thread": threading.get_ident()}


@router.get("/where")
async def where_route() -> dict[str, int]:
    return await run_cpu_bound(where)


@router.get("/where/after-a-wait")
async def where_after_a_wait() -> dict[str, int]:
    await asyncio.sleep(0.05)  # keeps the request in flight while the others arrive
    return await run_cpu_bound(where)


@pytest.fixture(autouse=True)
def nobody_together_lately() -> Iterator[None]:
    RequestsInFlight.last_together = -math.inf
    yield
    RequestsInFlight.last_together = -math.inf
    assert RequestsInFlight.count == 0


async def threads_of(*paths: str) -> tuple[int, list[int]]:
    """The event loop's thread, and the thread each request's work ran on (the requests sent together)."""
    transport = httpx.ASGITransport(app=create_app("test", [router]))
    async with httpx.AsyncClient(transport=transport, base_url="http://local") as client:
        answers = await asyncio.gather(*(client.get(path) for path in paths))
    return threading.get_ident(), [answer.json()["thread"] for answer in answers]


def test_a_request_alone_runs_its_work_on_the_event_loop() -> None:
    loop_thread, (worked_on,) = asyncio.run(threads_of("/where"))
    assert worked_on == loop_thread


def test_requests_in_flight_together_run_their_work_on_worker_threads() -> None:
    loop_thread, worked_on = asyncio.run(threads_of("/where/after-a-wait", "/where/after-a-wait", "/where"))
    assert loop_thread not in worked_on


def test_requests_that_arrive_together_count_each_other_before_choosing() -> None:
    loop_thread, worked_on = asyncio.run(threads_of("/where", "/where", "/where"))
    assert loop_thread not in worked_on


def test_after_requests_came_together_a_lone_one_still_goes_to_a_thread_for_a_while(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asyncio.run(threads_of("/where/after-a-wait", "/where/after-a-wait"))
    loop_thread, (worked_on,) = asyncio.run(threads_of("/where"))
    assert worked_on != loop_thread

    monkeypatch.setattr(http, "TOGETHER_LATELY_SECONDS", 0.0)
    loop_thread, (worked_on,) = asyncio.run(threads_of("/where"))
    assert worked_on == loop_thread


def test_work_that_raises_raises_in_the_route_either_way() -> None:
    def refuse() -> None:
        raise ValueError("refused")

    async def alone() -> None:
        await run_cpu_bound(refuse)

    with pytest.raises(ValueError, match="refused"):
        asyncio.run(alone())
    RequestsInFlight.last_together = math.inf  # as if requests were together just now
    with pytest.raises(ValueError, match="refused"):
        asyncio.run(alone())
