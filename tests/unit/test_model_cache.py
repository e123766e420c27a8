"""The predict function's model cache: LRU by size, the revalidation window, versions that change, threads."""

import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest

from lrnstak.errors import NotFound
from lrnstak.predict.model_cache import ModelCache
from lrnstak.storage.errors import ArtifactMissing
from lrnstak.storage.records import VersionRecord

WINDOW = 2.0


def record(model: str, version: str, size: int = 10) -> VersionRecord:
    write_id = uuid.uuid4().hex
    return VersionRecord(
        model=model,
        version=version,
        created_at=write_id,
        updated_at=write_id,
        write_id=write_id,
        artifact_key=f"artifacts/{model}/{write_id}/model.joblib",
        training_data_key=None,
        size=size,
        sha256=write_id * 2,
        sklearn_version="1.9.1",
        algorithm="linear_regression",
        metrics={},
        parameters={},
        training_results=None,
    )


@dataclass
class FakeRegistry:
    """The registry as the cache sees it, counting what the cache asks of it."""

    versions: dict[tuple[str, str], VersionRecord] = field(default_factory=dict)
    latest: dict[str, str] = field(default_factory=dict)
    reads: int = 0
    latest_reads: int = 0
    loads: int = 0
    load_delay: float = 0.0
    missing_artifacts: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def save(self, model: str, version: str, size: int = 10) -> VersionRecord:
        saved = record(model, version, size)
        self.versions[(model, version)] = saved
        self.latest[model] = version
        return saved

    def latest_version(self, model: str) -> str | None:
        with self.lock:
            self.latest_reads += 1
        return self.latest.get(model)

    def read_version(self, model: str, version: str) -> VersionRecord | None:
        with self.lock:
            self.reads += 1
        return self.versions.get((model, version))

    def load(self, saved: VersionRecord) -> str:
        with self.lock:
            self.loads += 1
        if saved.artifact_key in self.missing_artifacts:
            raise ArtifactMissing(f"{saved.artifact_key} is gone")
        time.sleep(self.load_delay)
        return f"{saved.model}/{saved.version}@{saved.write_id}"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def cache_of(registry: FakeRegistry, clock: Clock, max_bytes: int = 1000, window: float = WINDOW) -> ModelCache[str]:
    return ModelCache(registry, max_bytes=max_bytes, revalidate_seconds=window, clock=clock)


def value_of(saved: VersionRecord) -> str:
    return f"{saved.model}/{saved.version}@{saved.write_id}"


# --- the revalidation window ---------------------------------------------------------------------------------


def test_within_the_window_a_cached_model_costs_no_registry_read(registry: FakeRegistry, clock: Clock) -> None:
    saved = registry.save("m", "v1")
    cache = cache_of(registry, clock)
    first = cache.get("m", "v1")
    assert (first.value, first.hit, first.record) == (value_of(saved), False, saved)
    clock.advance(WINDOW - 0.01)
    again = cache.get("m", "v1")
    assert (again.value, again.hit) == (value_of(saved), True)
    assert (registry.reads, registry.loads) == (1, 1)


def test_past_the_window_one_read_revalidates_and_restarts_the_window(registry: FakeRegistry, clock: Clock) -> None:
    registry.save("m", "v1")
    cache = cache_of(registry, clock)
    cache.get("m", "v1")
    clock.advance(WINDOW)
    assert cache.get("m", "v1").hit
    assert (registry.reads, registry.loads) == (2, 1)
    clock.advance(WINDOW / 2)
    assert cache.get("m", "v1").hit
    assert registry.reads == 2


def test_an_overwritten_version_is_served_stale_only_within_the_window(registry: FakeRegistry, clock: Clock) -> None:
    old = registry.save("m", "v1")
    cache = cache_of(registry, clock)
    cache.get("m", "v1")
    new = registry.save("m", "v1")
    clock.advance(WINDOW - 0.01)
    assert cache.get("m", "v1").value == value_of(old)
    clock.advance(0.01)
    fresh = cache.get("m", "v1")
    assert (fresh.value, fresh.hit, fresh.record) == (value_of(new), False, new)
    assert cache.keys() == [("m", "v1")]
    assert cache.size_bytes == new.size


def test_a_deleted_version_is_a_404_past_the_window_and_leaves_the_cache(registry: FakeRegistry, clock: Clock) -> None:
    registry.save("m", "v1", size=30)
    cache = cache_of(registry, clock)
    cache.get("m", "v1")
    del registry.versions[("m", "v1")]
    clock.advance(WINDOW - 0.01)
    assert cache.get("m", "v1").hit
    clock.advance(0.01)
    with pytest.raises(NotFound, match="'v1'"):
        cache.get("m", "v1")
    assert cache.keys() == []
    assert cache.size_bytes == 0


def test_a_zero_window_reads_the_registry_on_every_request(registry: FakeRegistry, clock: Clock) -> None:
    registry.save("m", "v1")
    cache = cache_of(registry, clock, window=0)
    assert [cache.get("m", "v1").hit for _ in range(3)] == [False, True, True]
    assert (registry.reads, registry.loads) == (3, 1)


def test_latest_follows_the_summary_with_the_same_window(registry: FakeRegistry, clock: Clock) -> None:
    first = registry.save("m", "v1")
    cache = cache_of(registry, clock)
    assert cache.get("m", "latest").record == first
    second = registry.save("m", "v2")
    clock.advance(WINDOW - 0.01)
    assert cache.get("m", "latest").record == first
    assert registry.latest_reads == 1
    clock.advance(0.01)
    assert cache.get("m", "latest").record == second
    assert registry.latest_reads == 2


def test_latest_whose_version_was_deleted_resolves_again_at_once(registry: FakeRegistry, clock: Clock) -> None:
    registry.save("m", "v1")
    cache = cache_of(registry, clock)
    cache.get("m", "v1")
    clock.advance(WINDOW - 0.1)
    assert cache.get("m", "latest").hit  # `latest` -> v1 read now; v1's entry still inside its window
    clock.advance(0.2)  # v1's entry is due for revalidation, the alias is not
    del registry.versions[("m", "v1")]
    kept = registry.save("m", "v0")
    assert cache.get("m", "latest").record == kept
    assert registry.latest_reads == 2
    assert cache.keys() == [("m", "v0")]


def test_an_unknown_model_or_version_is_not_found(registry: FakeRegistry, clock: Clock) -> None:
    registry.save("m", "v1")
    cache = cache_of(registry, clock)
    with pytest.raises(NotFound, match="'other'"):
        cache.get("other", "latest")
    with pytest.raises(NotFound, match="'v2'"):
        cache.get("m", "v2")
    assert cache.keys() == []


def test_an_artifact_gone_during_the_load_is_read_again_from_the_new_save(registry: FakeRegistry, clock: Clock) -> None:
    old = registry.save("m", "v1")
    cache = cache_of(registry, clock)

    def overwrite_then_miss(saved: VersionRecord) -> str:
        if saved == old:
            registry.save("m", "v1")
            raise ArtifactMissing("replaced")
        return value_of(saved)

    registry.load = overwrite_then_miss  # type: ignore[method-assign]
    assert cache.get("m", "v1").record == registry.versions[("m", "v1")] != old


# --- the size budget --------------------------------------------------------------------------------------------


def test_least_recently_used_models_leave_first_when_the_budget_is_spent(registry: FakeRegistry, clock: Clock) -> None:
    for version in ("a", "b", "c"):
        registry.save("m", version, size=40)
    cache = cache_of(registry, clock, max_bytes=100)
    cache.get("m", "a")
    cache.get("m", "b")
    cache.get("m", "a")  # a is now the most recently used
    cache.get("m", "c")
    assert cache.keys() == [("m", "a"), ("m", "c")]
    assert cache.size_bytes == 80
    loads = registry.loads
    assert cache.get("m", "a").hit
    assert not cache.get("m", "b").hit
    assert registry.loads == loads + 1
    assert cache.keys() == [("m", "a"), ("m", "b")]  # c was the least recently used


def test_a_model_larger_than_the_budget_is_served_but_not_kept(registry: FakeRegistry, clock: Clock) -> None:
    registry.save("m", "small", size=50)
    big = registry.save("m", "big", size=101)
    cache = cache_of(registry, clock, max_bytes=100)
    cache.get("m", "small")
    for _ in range(2):
        served = cache.get("m", "big")
        assert (served.value, served.hit) == (value_of(big), False)
    assert cache.keys() == [("m", "small")]
    assert cache.size_bytes == 50
    assert registry.loads == 3


def test_a_cached_version_overwritten_by_an_oversized_one_leaves_the_cache(
    registry: FakeRegistry, clock: Clock
) -> None:
    registry.save("m", "v1", size=50)
    cache = cache_of(registry, clock, max_bytes=100)
    cache.get("m", "v1")
    registry.save("m", "v1", size=500)
    clock.advance(WINDOW)
    assert cache.get("m", "v1").record.size == 500
    assert (cache.keys(), cache.size_bytes) == ([], 0)


def test_a_zero_budget_keeps_nothing(registry: FakeRegistry, clock: Clock) -> None:
    registry.save("m", "v1", size=1)
    cache = cache_of(registry, clock, max_bytes=0)
    assert not cache.get("m", "v1").hit
    assert not cache.get("m", "v1").hit
    assert cache.keys() == []


# --- threads -----------------------------------------------------------------------------------------------------


@pytest.fixture
def eager_thread_switches() -> Iterator[None]:
    """Threads switch every microsecond instead of every 5 ms, so unguarded read-modify-writes collide."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


@pytest.mark.usefixtures("eager_thread_switches")
def test_concurrent_misses_on_one_model_all_get_it_and_one_copy_is_kept(registry: FakeRegistry) -> None:
    saved = registry.save("m", "v1", size=10)
    registry.load_delay = 0.05
    cache: ModelCache[str] = ModelCache(registry, max_bytes=1000, revalidate_seconds=60)
    start = threading.Barrier(16)

    def get() -> str:
        start.wait()
        return cache.get("m", "v1").value

    with ThreadPoolExecutor(16) as pool:
        values = list(pool.map(lambda _: get(), range(16)))
    assert values == [value_of(saved)] * 16
    assert cache.keys() == [("m", "v1")]
    assert cache.size_bytes == 10
    assert 1 <= registry.loads <= 16


@pytest.mark.usefixtures("eager_thread_switches")
def test_concurrent_gets_changes_and_evictions_keep_the_books_straight(registry: FakeRegistry) -> None:
    versions = [f"v{i}" for i in range(12)]
    for index, version in enumerate(versions):
        registry.save("m", version, size=10 + index)
    # Always revalidate, a budget for about four models, and overwrites while readers run.
    cache: ModelCache[str] = ModelCache(registry, max_bytes=60, revalidate_seconds=0)
    errors: list[BaseException] = []

    def reader(seed: int) -> None:
        try:
            for step in range(400):
                version = versions[(seed * 7 + step * 5) % len(versions)]
                served = cache.get("m", version)
                assert served.value == value_of(served.record)
                assert served.record.version == version
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    def writer() -> None:
        for step in range(200):
            registry.save("m", versions[step % len(versions)], size=10 + step % 12)

    threads = [threading.Thread(target=reader, args=(seed,)) for seed in range(16)]
    threads.append(threading.Thread(target=writer))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    kept = cache.keys()
    assert len(kept) == len(set(kept))
    assert cache.size_bytes == sum(cache._entries[key].record.size for key in kept)
    assert cache.size_bytes <= 60
    for _, version in kept:
        assert cache.get("m", version).record == registry.versions[("m", version)]
