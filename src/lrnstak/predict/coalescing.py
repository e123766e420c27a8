"""Concurrent requests for the same model, predicted in one call of the estimator (group commit).

A forest's predict costs about the same for one row as for eight: most of it is per call (input checks, a
Python loop over the trees), not per row. Requests run on worker threads (the local server's thread pool;
one at a time in Lambda, where this never waits), and eight threads each predicting one row also fight
over the GIL, which the trees release and re-take. So the first request for a key predicts at once, alone;
requests for the same key that arrive while it runs wait, and when it is done the oldest of them predicts
every row that queued meanwhile, in one call, and hands each request its own answers. A request alone
never waits for anybody; a request under load waits for at most the call in progress and its own.

Under steady load the requests answered together come back together, so one of them arrives first and
would predict alone, the others queueing behind it: every other call would be a call for one row. So when
the previous call for the key, just finished, served several requests, the next one lingers (at most
`linger_seconds`) until as many have queued. A lone client's calls serve one request each and never linger.
"""

import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field


@dataclass
class _Waiting[T, R]:
    item: T
    done: threading.Event = field(default_factory=threading.Event)
    leads: bool = False
    result: R | None = None
    error: BaseException | None = None

    def outcome(self) -> R:
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]


@dataclass
class _Group[T, R]:
    waiting: list[_Waiting[T, R]] = field(default_factory=list)
    running: bool = False
    # How many requests the last call served, and when it ended (monotonic seconds).
    last_size: int = 0
    last_end: float = 0.0


# A lull longer than this since the last call means the burst is over: the next call does not linger.
RECENT_SECONDS = 0.05


# Each item's own result, or the exception that item alone must raise.
type Outcome[R] = R | BaseException


class Coalescer[T, R]:
    def __init__(self, linger_seconds: float = 0.002, recent_seconds: float = RECENT_SECONDS) -> None:
        self._linger = linger_seconds
        self._recent = recent_seconds
        self._changed = threading.Condition(threading.Lock())
        self._groups: dict[Hashable, _Group[T, R]] = {}

    def run(self, key: Hashable, item: T, run_batch: Callable[[Sequence[T]], Sequence[Outcome[R]]]) -> R:
        """`run_batch(items)` for this item and whatever else queued under `key` meanwhile; this item's outcome.

        `run_batch` returns one outcome per item, in order: an item whose rows the estimator refuses gets its
        own exception, the others their results."""
        me: _Waiting[T, R] = _Waiting(item)
        group, follows = self._join(key, me)
        if follows:
            me.done.wait()
            if not me.leads:
                return me.outcome()
        batch = self._take_batch(group)
        try:
            outcomes = run_batch([waiting.item for waiting in batch])
            for waiting, outcome in zip(batch, outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    waiting.error = outcome
                else:
                    waiting.result = outcome
        except BaseException as error:  # a failure of the whole call: every request of it reports it
            for waiting in batch:
                waiting.error = error
            raise
        finally:
            self._hand_over(group, batch, me)
        return me.outcome()

    def _join(self, key: Hashable, me: _Waiting[T, R]) -> tuple[_Group[T, R], bool]:
        """Queues `me` under `key`; True when a call is in progress (so `me` waits for its turn)."""
        with self._changed:
            group = self._groups.setdefault(key, _Group())
            group.waiting.append(me)
            follows = group.running
            group.running = True
            self._changed.notify_all()  # a lingering call may be waiting for this one
        return group, follows

    def _take_batch(self, group: _Group[T, R]) -> list[_Waiting[T, R]]:
        with self._changed:
            expected = group.last_size
            if expected > 1 and time.monotonic() - group.last_end < self._recent:
                self._changed.wait_for(lambda: len(group.waiting) >= expected, timeout=self._linger)
            batch, group.waiting = group.waiting, []
        return batch

    def _hand_over(self, group: _Group[T, R], batch: list[_Waiting[T, R]], me: _Waiting[T, R]) -> None:
        """The oldest request that queued meanwhile makes the next call; every request of this one wakes."""
        with self._changed:
            group.last_size, group.last_end = len(batch), time.monotonic()
            if group.waiting:
                successor = group.waiting[0]
                successor.leads = True
                successor.done.set()
            else:
                group.running = False
                self._forget_idle(group.last_end)
        for waiting in batch:
            if waiting is not me:
                waiting.done.set()

    def _forget_idle(self, now: float) -> None:
        """Drops the groups of keys nobody asked for lately (the lock is held)."""
        idle = [key for key, group in self._groups.items() if not group.running and now - group.last_end > self._recent]
        for key in idle:
            del self._groups[key]
