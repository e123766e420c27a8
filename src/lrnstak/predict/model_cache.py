"""The models a warm predict function keeps loaded: LRU by artifact size, revalidated against the registry.

Entries are keyed by (model, version name) and remember which save of the version they hold (its
`write_id` and SHA-256). An entry is served as it is for `revalidate_seconds` after the registry read that
validated it; the next request after that re-reads the version item (one strongly consistent GetItem) and
keeps the entry if the save is the same, reloads if the version was overwritten, and answers 404 (dropping
the entry) if it was deleted. `latest` resolves through the model's summary item with the same window.
Reads are consistent, so a change committed at time T is seen by every read that starts after T: a
request never gets a version that changed more than `revalidate_seconds` ago.

The budget counts artifact bytes (the compressed joblib file, as the registry records it); a model whose
artifact alone is over the budget is served but not kept. Requests may run on threads (the local server
does): a lock guards the structure, and registry reads and model loads happen outside it, so two
concurrent misses may both load the same model (the later one is kept).
"""

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from lrnstak.errors import NotFound, ServiceUnavailable
from lrnstak.naming import LATEST
from lrnstak.storage.errors import ArtifactMissing
from lrnstak.storage.records import VersionRecord

# A load that finds the artifact gone (overwritten since the version was read) re-reads the version.
LOAD_ATTEMPTS = 3


class ModelSource[T](Protocol):
    """Where the cache reads versions and loads what it keeps (the registry table and bucket, in service)."""

    def latest_version(self, model: str) -> str | None: ...

    def read_version(self, model: str, version: str) -> VersionRecord | None: ...

    def load(self, record: VersionRecord) -> T: ...


@dataclass(frozen=True)
class CacheLookup[T]:
    record: VersionRecord
    value: T
    # True when no model was loaded for this request (a revalidation read may still have happened).
    hit: bool


@dataclass
class _Entry[T]:
    record: VersionRecord
    value: T
    loaded_at: float
    # When the registry read that vouched for this entry started.
    validated_at: float


def same_save(cached: VersionRecord, current: VersionRecord) -> bool:
    return cached.write_id == current.write_id and cached.sha256 == current.sha256


class ModelCache[T]:
    def __init__(
        self,
        source: ModelSource[T],
        *,
        max_bytes: int,
        revalidate_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._max_bytes = max_bytes
        self._window = revalidate_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, str], _Entry[T]] = OrderedDict()
        self._latest: dict[str, tuple[str, float]] = {}
        self._bytes = 0

    @property
    def size_bytes(self) -> int:
        with self._lock:
            return self._bytes

    def keys(self) -> list[tuple[str, str]]:
        """Cached (model, version) pairs, least recently used first."""
        with self._lock:
            return list(self._entries)

    def revalidate_all(self) -> None:
        """Every entry and `latest` alias is re-read from the registry on its next use (after a SnapStart
        restore: the window's clock did not run while the snapshot waited)."""
        with self._lock:
            for entry in self._entries.values():
                entry.validated_at = -math.inf
            self._latest.clear()

    def get(self, model: str, version: str, fresh: bool = False) -> CacheLookup[T]:
        """The model for (model, version or `latest`); NotFound when the registry has no such version.

        `fresh`: re-read the registry now whatever the window (a batch job about to run for minutes)."""
        if version != LATEST:
            found = self._get_version(model, version, fresh)
            if found is None:
                raise NotFound(f"Version {version!r} of model {model!r} does not exist.")
            return found
        # The version `latest` named may have been deleted since: resolve it again, once, from the registry.
        for force in (False, True):
            found = self._get_version(model, self._resolve_latest(model, force or fresh), fresh)
            if found is not None:
                return found
        raise ServiceUnavailable("The model's versions kept changing while it was read; retry.")

    def _resolve_latest(self, model: str, force: bool) -> str:
        now = self._clock()
        with self._lock:
            alias = self._latest.get(model)
        if alias is not None and not force and now - alias[1] < self._window:
            return alias[0]
        name = self._source.latest_version(model)
        with self._lock:
            if name is None:
                self._latest.pop(model, None)
            else:
                self._latest[model] = (name, now)
        if name is None:
            raise NotFound(f"Model {model!r} does not exist.")
        return name

    def _get_version(self, model: str, version: str, fresh: bool = False) -> CacheLookup[T] | None:
        key = (model, version)
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                if not fresh and now - entry.validated_at < self._window:
                    return CacheLookup(entry.record, entry.value, hit=True)
        record = self._source.read_version(model, version)
        if record is None:
            self._drop(key, validated_before=now)
            return None
        if entry is not None and same_save(entry.record, record):
            with self._lock:
                entry.validated_at = max(entry.validated_at, now)
            return CacheLookup(entry.record, entry.value, hit=True)
        loaded = self._load(record)
        if loaded is None:
            self._drop(key, validated_before=now)
            return None
        record, value = loaded
        self._store(key, _Entry(record, value, loaded_at=self._clock(), validated_at=now))
        return CacheLookup(record, value, hit=False)

    def _load(self, record: VersionRecord) -> tuple[VersionRecord, T] | None:
        current: VersionRecord | None = record
        for _ in range(LOAD_ATTEMPTS):
            if current is None:
                return None
            try:
                return current, self._source.load(current)
            except ArtifactMissing:
                # Overwritten between reading the version and fetching its bytes: the new save has new bytes.
                current = self._source.read_version(record.model, record.version)
        raise ServiceUnavailable("The version kept changing while its model was loaded; retry.")

    def _store(self, key: tuple[str, str], entry: _Entry[T]) -> None:
        with self._lock:
            present = self._entries.get(key)
            if present is not None and present.validated_at > entry.validated_at:
                return  # a concurrent request stored a save it read more recently
            if present is not None:
                del self._entries[key]
                self._bytes -= present.record.size
            if entry.record.size > self._max_bytes:
                return  # served to this request, never kept: it would push out everything else
            self._entries[key] = entry
            self._bytes += entry.record.size
            while self._bytes > self._max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.record.size

    def _drop(self, key: tuple[str, str], validated_before: float) -> None:
        """Forgets a version the registry no longer has, unless a later read stored it again."""
        with self._lock:
            present = self._entries.get(key)
            if present is not None and present.validated_at <= validated_before:
                del self._entries[key]
                self._bytes -= present.record.size
