"""Cache use cases: a key holds a JSON value or a list of them, optionally expiring. Nothing here knows HTTP.

Expiry is exact on every read. DynamoDB's TTL deletes expired items late (typically within days), so an item
whose `expires_at` is at or before now is missing whatever the table still holds; the reader that finds it
removes it, only if it is still that same expired item, and with it its S3 objects.

Values travel as JSON text, so every JSON value (null, false, 0, "", [] and {} included) comes back exactly.
Up to MAX_INLINE_BYTES the text lives in the item; up to MAX_VALUE_BYTES in S3 under a key unique to the
write, the item holding the pointer. An overwrite writes the new object, then the item, then deletes the
object it replaced; a failed write deletes its own object.

A write whose answer was lost may have been applied: the writer reads its item back (its write_id, or its
element) before deleting its own object, and keeps the object when it cannot tell (a server error or a
timeout, and the read-back failing too). An overwrite whose answer was lost no longer knows what it replaced.
Both leave objects no item points at, never an item pointing at a missing object; nothing collects them.
A pop marks its element as its own before removing it, so a mark retried after a lost answer still owns it.
"""

import hashlib
import json
import math
import random
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NoReturn

from aws_lambda_powertools.metrics import MetricUnit

from lrnstak.errors import Conflict, InvalidInput, LrnstakError, NotFound, PayloadTooLarge, ServiceUnavailable
from lrnstak.observability import logger, metrics
from lrnstak.settings import get_settings
from lrnstak.storage.artifacts import ArtifactStore
from lrnstak.storage.cache_table import (
    CacheTable,
    ElementItem,
    ListMetaItem,
    StoredValue,
    ValueItem,
    element_sort_key,
    timestamp,
)
from lrnstak.storage.clients import get_clients
from lrnstak.storage.errors import ArtifactMissing, outcome_unknown

# RFC 3986 pchar without percent-encoding: a key is one path segment as clients send it, unescaped.
KEY_PATTERN = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@]{1,512}")
KEY_RULE = "1 to 512 characters from A-Z a-z 0-9 - . _ ~ ! $ & ' ( ) * + , ; = : @ (no '/', '%' or spaces)"
MAX_TTL_SECONDS = 315_576_000  # ten years of 365.25 days
# A DynamoDB item holds 400 KB; the rest of the item and its attribute names fit in what is left.
MAX_INLINE_BYTES = 350_000
MAX_VALUE_BYTES = 5 * 1024 * 1024
OBJECT_PREFIX = "cache/"
VALUE_CONTENT_TYPE = "application/json"
# Elements a pop reads at once: when another client claims the first, others are tried without a re-read.
POP_CANDIDATES = 32
ELEMENTS_PAGE = 1000
READ_ATTEMPTS = 3
DEFAULT_ATTEMPTS = 20
NANOSECONDS = 1_000_000_000


def check_key(key: str) -> str:
    if not KEY_PATTERN.fullmatch(key):
        shown = key if len(key) <= 40 else key[:40] + "..."
        raise InvalidInput(
            f"Invalid key {shown!r}: use {KEY_RULE}.",
            details={"field": "key", "value": shown, "pattern": KEY_PATTERN.pattern},
        )
    return key


def check_ttl(ttl: object) -> int:
    """Seconds until expiry as a JSON integer; 0 is no expiry. Booleans, floats and strings are refused."""
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 <= ttl <= MAX_TTL_SECONDS:
        shown = repr(ttl) if len(repr(ttl)) <= 40 else repr(ttl)[:40] + "..."
        raise InvalidInput(
            f"`ttl` must be a whole number of seconds from 0 (no expiry) to {MAX_TTL_SECONDS} (ten years), "
            f"not {shown}.",
            details={"field": "ttl", "value": shown},
        )
    return ttl


def expiry_time(ttl: int, now: float) -> int | None:
    """Epoch seconds at which a value set now with `ttl` expires; None for no expiry.

    Rounded up to the whole second DynamoDB's TTL attribute holds: a value never expires early.
    """
    return None if ttl == 0 else math.ceil(now + ttl)


def is_expired(expires_at: int | None, now: float) -> bool:
    return expires_at is not None and expires_at <= now


def encode_value(value: Any) -> str:
    try:
        # ASCII escapes keep any string (lone surrogates included) storable and byte-counted honestly.
        return json.dumps(value, allow_nan=False, separators=(",", ":"))
    except ValueError as error:
        raise InvalidInput(
            "`value` holds a number JSON cannot carry (NaN, Infinity or out of range).",
            details={"field": "value", "problem": str(error)},
        ) from error


def object_key_for(key: str) -> str:
    return f"{OBJECT_PREFIX}{hashlib.sha256(key.encode()).hexdigest()}/{uuid.uuid4().hex}"


@dataclass(frozen=True)
class CachedValue:
    """A value as the client gets it back: its JSON text, and when it expires (epoch seconds)."""

    json_text: str
    expires_at: int | None


class CacheService:
    def __init__(
        self,
        table: CacheTable,
        artifacts: ArtifactStore,
        *,
        now: Callable[[], float] = time.time,
        attempts: int = DEFAULT_ATTEMPTS,
    ) -> None:
        self._table = table
        self._artifacts = artifacts
        self._now = now
        self._attempts = attempts

    # values --------------------------------------------------------------------------------------------

    def get_value(self, key: str) -> CachedValue:
        """The key's value, or its list's elements as a JSON array (front first)."""
        check_key(key)
        for _ in range(READ_ATTEMPTS):
            try:
                found = self._read(key)
            except ArtifactMissing:
                continue  # replaced or popped between the item read and the object read: read again
            return self._hit(found) if found is not None else self._miss(key)
        raise ServiceUnavailable("The key kept changing while it was read; retry.")

    def _read(self, key: str) -> CachedValue | None:
        entry = self._table.read_entry(key)
        now = self._now()
        value = self._live_value(entry.value, now)
        if value is not None:
            return CachedValue(self._load(value.value), value.expires_at)
        meta = self._live_meta(entry.meta, now)
        if meta is None:
            return None
        elements = self._sweep(key, meta.list_id, None)
        if not elements:
            return None
        if sum(element.value.size for element in elements) > MAX_VALUE_BYTES:
            raise PayloadTooLarge(
                f"The list at {key!r} holds more than 5 MB ({MAX_VALUE_BYTES} bytes) of JSON, more than one "
                "response carries: read it with peek or pop.",
                details={"limit_bytes": MAX_VALUE_BYTES},
            )
        texts = [self._load(element.value) for element in elements]
        return CachedValue("[" + ",".join(texts) + "]", meta.expires_at)

    def put_value(self, key: str, value: Any, ttl: int = 0) -> None:
        """Sets the key to the value, replacing a value or a list."""
        check_key(key)
        check_ttl(ttl)
        stored = self._store(key, encode_value(value))
        now = self._now()
        record = ValueItem(key, stored, uuid.uuid4().hex, timestamp(now), expiry_time(ttl, now))
        try:
            replaced = self._table.put_value(record)
        except Exception as error:
            landed = self._value_landed(record, error)
            if landed is False:
                self._discard([stored.object_key])
            if not landed:
                raise
            replaced = None  # applied, its answer lost: what it replaced is not known any more
        if replaced is not None and replaced.write_id != record.write_id:  # else: our own first attempt
            self._discard([replaced.value.object_key])
        # The value wins over a list on every read, so removing the list second never shows a gap.
        meta = self._table.get_list_meta(key)
        if meta is not None:
            self._remove_list(meta)

    def _value_landed(self, record: ValueItem, error: Exception) -> bool | None:
        """After a failed put: whether it was applied all the same (None: cannot tell)."""
        try:
            current = self._table.read_entry(record.key, with_value=False).value
        except LrnstakError:
            return None if outcome_unknown(error) else False
        if current is not None and current.write_id == record.write_id:
            return True
        return None if outcome_unknown(error) else False

    def delete_value(self, key: str) -> bool:
        """Deletes the value or list at the key; whether there was one (not expired, not empty)."""
        check_key(key)
        now = self._now()
        # Read first: when the delete's answer is lost its retry returns nothing, and the object would stay.
        seen = self._table.read_entry(key, with_value=False).value
        try:
            old = self._table.delete_value(key) or seen
        except LrnstakError:
            current = self._table.read_entry(key, with_value=False).value
            if current is not None and (seen is None or current.write_id == seen.write_id):
                raise
            old = seen  # gone all the same: the delete was applied, its answers lost
        existed = old is not None and not is_expired(old.expires_at, now)
        if old is not None:
            self._discard([old.value.object_key])
        for attempt in range(self._attempts):
            meta = self._table.get_list_meta(key)
            if meta is None:
                self._sweep(key, None, None, with_values=False)  # elements a crashed delete left behind
                return existed
            removed = self._remove_list(meta)
            if removed is not None:
                return existed or (removed > 0 and not is_expired(meta.expires_at, now))
            _back_off(attempt)
        raise ServiceUnavailable("The list kept changing while it was deleted; retry shortly.")

    def set_ttl(self, key: str, ttl: int) -> None:
        """Gives the value or list at the key a new expiry from now (0: none)."""
        check_key(key)
        check_ttl(ttl)
        for attempt in range(self._attempts):
            now = self._now()
            entry = self._table.read_entry(key, with_value=False)
            expires_at = expiry_time(ttl, now)
            if self._live_value(entry.value, now) is not None:
                if self._table.set_value_expiry(key, expires_at, now):
                    return
            else:
                meta = self._live_meta(entry.meta, now)
                if meta is None or not self._sweep(key, meta.list_id, 1):
                    raise NotFound(f"Key {key!r} does not exist or has expired.")
                if self._table.set_list_expiry(meta, expires_at, now):
                    return
            _back_off(attempt)
        raise ServiceUnavailable("The key kept changing while its expiry was set; retry shortly.")

    # lists ---------------------------------------------------------------------------------------------

    def push_value(self, key: str, value: Any, ttl: int | None = None) -> None:
        """Puts the value at the front of the key's list, creating it. A given `ttl` sets the list's expiry."""
        check_key(key)
        if ttl is not None:
            check_ttl(ttl)
        self._push(key, self._store(key, encode_value(value)), ttl)

    def _push(self, key: str, stored: StoredValue, ttl: int | None) -> None:
        pointed_at = False  # whether an element may point at the stored object (then it must stay)
        try:
            for attempt in range(self._attempts):
                now = self._now()
                proposed = ListMetaItem(
                    key=key,
                    list_id=uuid.uuid4().hex,
                    base=int(now * NANOSECONDS),
                    head=0,
                    updated_at=timestamp(now),
                    expires_at=expiry_time(ttl or 0, now),
                )
                meta = self._table.next_sequence(key, proposed, change_expiry=ttl is not None, now=now)
                if meta is None:  # the list has expired: remove it, and the next attempt starts a new one
                    self._live_meta(self._table.get_list_meta(key), now)
                    continue
                element = ElementItem(key, element_sort_key(meta.base + meta.head), meta.list_id, stored)
                pointed_at = True
                self._put_element(element)
                stands, holds_value = self._push_stands(element)
                if stands:
                    return
                pointed_at = False  # taken back
                if holds_value:
                    raise _holds_a_value(key)
                _back_off(attempt)
            raise ServiceUnavailable("The key kept changing while the value was pushed; retry shortly.")
        except _NotWritten as not_written:
            self._discard([stored.object_key])
            raise not_written.error  # noqa: B904 - the error itself, as put_element raised it
        except Exception:
            if not pointed_at:
                self._discard([stored.object_key])
            raise

    def _put_element(self, element: ElementItem) -> None:
        """Writes the element; after a failure, reads it back: raises _NotWritten when it surely is not there."""
        try:
            self._table.put_element(element)
        except Exception as error:
            try:
                if self._table.get_element(element) is not None:
                    return  # applied, its answer lost
            except LrnstakError:
                pass
            if outcome_unknown(error):
                raise
            raise _NotWritten(error) from error

    def _push_stands(self, element: ElementItem) -> tuple[bool, bool]:
        """Whether an element just written counts: its list is still there and live, and no value took the key;
        and whether a value holds the key.

        Otherwise the element is taken back and the push tried again (or refused if a value holds the key). If
        it cannot be taken back, a pop or the list's deletion already took it: the push happened before that.
        """
        entry = self._table.read_entry(element.key, with_value=False)
        now = self._now()
        holds_value = self._live_value(entry.value, now) is not None
        meta = self._live_meta(entry.meta, now)
        if not holds_value and meta is not None and meta.list_id == element.list_id:
            return True, False
        claim_id = uuid.uuid4().hex
        if self._table.claim_element(element, claim_id) is None:
            return True, holds_value
        self._table.delete_claimed(element, claim_id)
        return False, holds_value

    def peek_value(self, key: str, position: int) -> CachedValue:
        """The element at `position` (0: the front) without removing it."""
        check_key(key)
        if position < 0:
            raise InvalidInput("`pos` must be an integer from 0 (the front of the list).", details={"field": "pos"})
        for _ in range(READ_ATTEMPTS):
            meta = self._list_to_read(key)
            if meta is None:
                self._miss(key)
            elements = self._sweep(key, meta.list_id, position + 1)
            if len(elements) <= position:
                self._miss(key)
            try:
                return self._hit(CachedValue(self._load(elements[position].value), meta.expires_at))
            except ArtifactMissing:
                continue  # popped between the query and the object read
        raise ServiceUnavailable("The list kept changing while it was read; retry.")

    def pop_value(self, key: str) -> CachedValue:
        """Removes and returns the front element. Each element goes to exactly one of many concurrent poppers."""
        check_key(key)
        for attempt in range(self._attempts):
            meta = self._list_to_read(key)
            if meta is None:
                self._miss(key)
            candidates = self._sweep(key, meta.list_id, POP_CANDIDATES, with_values=False, fill=False)
            if not candidates:
                self._miss(key)
            popped = self._claim_one(candidates)
            if popped is not None:
                return self._hit(CachedValue(popped, meta.expires_at))
            _back_off(attempt)
        raise ServiceUnavailable("Too many clients are popping this list at once; retry shortly.")

    def _claim_one(self, candidates: list[ElementItem]) -> str | None:
        """The JSON text of a candidate this call manages to claim, the first one when no one else is popping.

        Once a race is lost the next tries are random among the rest, so concurrent poppers spread over the
        front of the list instead of queueing for one element after another. None when others took them all.
        A value kept in S3 is read before the claim: a failed read then takes nothing from the list.
        """
        remaining = list(candidates)
        contended = False
        claim_id = uuid.uuid4().hex
        while remaining:
            index = random.randrange(len(remaining)) if contended else 0  # noqa: S311 - not security
            candidate = remaining.pop(index)
            try:
                text = self._load(candidate.value) if candidate.value.object_key else None
            except ArtifactMissing:
                contended = True  # popped (and its object deleted) since the query
                continue
            claimed = self._claim(candidate, claim_id)
            if claimed is None:
                contended = True  # another client popped it first
                continue
            text = text if text is not None else self._load(claimed.value)
            self._remove_claimed(claimed, claim_id)
            return text
        return None

    def _remove_claimed(self, claimed: ElementItem, claim_id: str) -> None:
        """Deletes a claimed element, then its object. Best-effort: a claimed element is invisible already."""
        try:
            self._table.delete_claimed(claimed, claim_id)
        except LrnstakError as error:
            try:
                gone = self._table.get_element(claimed) is None  # deleted, its answers lost
            except LrnstakError:
                gone = False
            if not gone:  # left, invisible, until the list is removed; it keeps its object meanwhile
                logger.warning("a popped element was left claimed", extra={"reason": error.message})
                return
        self._discard([claimed.value.object_key])

    def _claim(self, candidate: ElementItem, claim_id: str) -> ElementItem | None:
        try:
            return self._table.claim_element(candidate, claim_id)
        except LrnstakError:
            # The mark may have been applied, its answers lost: the element then carries this claim's id.
            current = self._table.get_element(candidate)
            if current is not None and current.claimed_by == claim_id:
                return current
            raise

    def _list_to_read(self, key: str) -> ListMetaItem | None:
        entry = self._table.read_entry(key, with_value=False)
        now = self._now()
        if self._live_value(entry.value, now) is not None:
            raise _holds_a_value(key)
        return self._live_meta(entry.meta, now)

    # expiry and removal --------------------------------------------------------------------------------

    def _live_value(self, item: ValueItem | None, now: float) -> ValueItem | None:
        if item is None or not is_expired(item.expires_at, now):
            return item
        try:
            removed = self._table.delete_value(item.key, expected=item)
            if removed is not None:
                self._discard([removed.value.object_key])
        except LrnstakError as error:  # the read answers "missing" anyway; DynamoDB's TTL cleans up later
            logger.warning("could not remove an expired cache value", extra={"reason": error.message})
        return None

    def _live_meta(self, meta: ListMetaItem | None, now: float) -> ListMetaItem | None:
        if meta is None or not is_expired(meta.expires_at, now):
            return meta
        try:
            self._remove_list(meta, expired_at=meta.expires_at)
        except LrnstakError as error:
            logger.warning("could not remove an expired cache list", extra={"reason": error.message})
        return None

    def _remove_list(self, meta: ListMetaItem, expired_at: int | None = None) -> int | None:
        """Removes the list if it is still `meta`; how many of its elements went, None if it had changed."""
        if not self._table.delete_list_meta(meta, only_if_expired_at=expired_at):
            return None
        removed = self._delete_dead(meta.key, list(self._table.elements(meta.key, ELEMENTS_PAGE, with_values=False)))
        return sum(1 for element in removed if element.list_id == meta.list_id)

    def _sweep(
        self, key: str, list_id: str | None, limit: int | None, with_values: bool = True, fill: bool = True
    ) -> list[ElementItem]:
        """The elements of list `list_id`, front first, at most `limit`; dead lists' elements seen are deleted.

        Elements claimed by pops are skipped. `fill=False`: one page's worth will do when it holds any (pops
        racing on the front would otherwise make every pop read a second page).
        """
        kept: list[ElementItem] = []
        others: list[ElementItem] = []
        page = min(limit or ELEMENTS_PAGE, ELEMENTS_PAGE)
        for seen, element in enumerate(self._table.elements(key, page, with_values), start=1):
            if element.list_id != list_id:
                others.append(element)
            elif element.claimed_by is None:
                kept.append(element)
            if len(kept) == limit or (kept and not fill and seen % page == 0):
                break  # (taking no further item: the next page is never queried)
        if others:
            self._delete_dead(key, others)
        return kept

    def _delete_dead(self, key: str, elements: list[ElementItem]) -> list[ElementItem]:
        """Deletes the elements whose list no longer exists; returns them.

        A list is dead once its meta item is gone: list ids are never reused, and a push that finds its list
        gone after writing takes its element back. Reading the meta item after the elements proves it.
        """
        current = self._table.get_list_meta(key)
        dead = [element for element in elements if current is None or element.list_id != current.list_id]
        # Objects first: dead elements are invisible, and a failed delete of the items leaves no orphan.
        self._discard(element.value.object_key for element in dead)
        self._table.delete_elements(dead)
        return dead

    # values in S3 ---------------------------------------------------------------------------------------

    def _store(self, key: str, text: str) -> StoredValue:
        data = text.encode()
        if len(data) > MAX_VALUE_BYTES:
            raise PayloadTooLarge(
                f"The value is {len(data)} bytes as JSON; the limit is 5 MB ({MAX_VALUE_BYTES} bytes).",
                details={"size_bytes": len(data), "limit_bytes": MAX_VALUE_BYTES},
            )
        if len(data) <= MAX_INLINE_BYTES:
            return StoredValue(text=text, object_key=None, size=len(data))
        object_key = object_key_for(key)
        try:
            self._artifacts.put_bytes(object_key, data, VALUE_CONTENT_TYPE)
        except Exception:
            self._discard([object_key])  # a PUT whose answer was lost may have stored it
            raise
        return StoredValue(text=None, object_key=object_key, size=len(data))

    def _load(self, stored: StoredValue) -> str:
        if stored.object_key is None:
            assert stored.text is not None, "an inline value always has its text"
            return stored.text
        return self._artifacts.get_bytes(stored.object_key).decode()

    def _discard(self, keys: Iterable[str | None]) -> None:
        """Deletes objects nothing points at any more. A failure leaves an orphan object, never a broken value."""
        present = [key for key in keys if key]
        if not present:
            return
        try:
            self._artifacts.delete_keys(present)
        except LrnstakError as error:
            logger.warning(
                "orphaned cache objects left in the bucket", extra={"keys": present, "reason": error.message}
            )

    # metrics -------------------------------------------------------------------------------------------

    @staticmethod
    def _hit(found: CachedValue) -> CachedValue:
        metrics.add_metric(name="CacheHit", unit=MetricUnit.Count, value=1)
        return found

    @staticmethod
    def _miss(key: str) -> NoReturn:
        metrics.add_metric(name="CacheMiss", unit=MetricUnit.Count, value=1)
        raise NotFound(f"Key {key!r} does not exist or has expired.", details={"key": key})


class _NotWritten(Exception):
    """A write that surely was not applied (read back), with the error it failed with."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _holds_a_value(key: str) -> Conflict:
    return Conflict(f"Key {key!r} holds a value, not a list: DELETE it first to use it as a list.")


def _back_off(attempt: int) -> None:
    # Full jitter: clients racing on one key spread out instead of colliding again.
    time.sleep(random.uniform(0, min(0.2, 0.005 * 2**attempt)))  # noqa: S311 - timing jitter, not security


@lru_cache(maxsize=1)
def get_cache_service() -> CacheService:
    """The service wired to this container's settings and AWS clients, built on first use."""
    settings = get_settings()
    clients = get_clients()
    return CacheService(
        CacheTable(clients.dynamodb, settings.cache_table),
        ArtifactStore(clients.s3, settings.models_bucket),
    )
