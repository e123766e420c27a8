"""Keeps the embedded stack's state across restarts: tables and buckets mirrored under a data folder.

moto keeps everything in memory. The snapshot is taken while no write is in flight (WriteGate), so a
restored registry never has metadata pointing at bytes the snapshot missed, and only changed objects are
rewritten, so saving every few seconds stays cheap.
"""

import asyncio
import hashlib
import json
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio

from lrnstak.storage.clients import AwsClients

MANIFEST = "manifest.json"


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


class StateSnapshot:
    def __init__(self, clients: AwsClients, tables: dict[str, str], buckets: dict[str, str], folder: Path) -> None:
        self._clients = clients
        self._tables = tables  # logical id -> physical name
        self._buckets = buckets
        self._folder = folder

    def save(self) -> None:
        for logical, name in self._tables.items():
            items = list(self._scan(name))
            _write_atomically(self._folder / "dynamodb" / f"{logical}.json", json.dumps(items).encode())
        for logical, name in self._buckets.items():
            self._save_bucket(self._folder / "s3" / logical, name)

    def restore(self) -> dict[str, int]:
        """Puts saved items and objects back; returns how many of each came back."""
        counts = {"items": 0, "objects": 0}
        for logical, name in self._tables.items():
            path = self._folder / "dynamodb" / f"{logical}.json"
            if path.is_file():
                items = json.loads(path.read_bytes())
                self._put_items(name, items)
                counts["items"] += len(items)
        for logical, name in self._buckets.items():
            folder = self._folder / "s3" / logical
            manifest = self._read_manifest(folder)
            for key, entry in manifest.items():
                self._clients.s3.put_object(
                    Bucket=name,
                    Key=key,
                    Body=(folder / "objects" / entry["file"]).read_bytes(),
                    ContentType=entry.get("content_type", "application/octet-stream"),
                    Metadata=entry.get("metadata", {}),
                )
                counts["objects"] += 1
        return counts

    def _scan(self, table: str) -> Iterator[dict[str, Any]]:
        paginator = self._clients.dynamodb.get_paginator("scan")
        for page in paginator.paginate(TableName=table, ConsistentRead=True):
            yield from page.get("Items", [])

    def _put_items(self, table: str, items: list[dict[str, Any]]) -> None:
        for start in range(0, len(items), 25):
            requests: Any = {table: [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]}
            while requests:
                response = self._clients.dynamodb.batch_write_item(RequestItems=requests)
                requests = response.get("UnprocessedItems") or {}

    def _read_manifest(self, folder: Path) -> dict[str, dict[str, Any]]:
        path = folder / MANIFEST
        return dict(json.loads(path.read_bytes())) if path.is_file() else {}

    def _save_bucket(self, folder: Path, bucket: str) -> None:
        old = self._read_manifest(folder)
        new: dict[str, dict[str, Any]] = {}
        paginator = self._clients.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket):
            for summary in page.get("Contents", []):
                key, etag = summary["Key"], summary["ETag"]
                file = hashlib.sha256(key.encode()).hexdigest()
                if old.get(key, {}).get("etag") == etag and (folder / "objects" / file).is_file():
                    new[key] = old[key]
                    continue
                try:
                    response = self._clients.s3.get_object(Bucket=bucket, Key=key)
                except self._clients.s3.exceptions.NoSuchKey:
                    continue  # deleted since the listing (an old artifact after an overwrite): not state
                _write_atomically(folder / "objects" / file, response["Body"].read())
                new[key] = {
                    "etag": etag,
                    "file": file,
                    "content_type": response.get("ContentType", "application/octet-stream"),
                    "metadata": response.get("Metadata", {}),
                }
        _write_atomically(folder / MANIFEST, json.dumps(new).encode())
        kept = {entry["file"] for entry in new.values()}
        for entry in old.values():
            if entry["file"] not in kept:
                (folder / "objects" / entry["file"]).unlink(missing_ok=True)


class WriteGate:
    """Lets writes run side by side, and a snapshot run only when none is in flight."""

    def __init__(self, save: Callable[[], None]) -> None:
        self._save = save
        self._condition = asyncio.Condition()
        self._writes_in_flight = 0
        self._closed = False
        self._dirty = False

    def mark_dirty(self) -> None:
        """A write made outside an HTTP request (a training job): save at the next tick."""
        self._dirty = True

    async def run_write(self, write: Callable[[], Awaitable[None]]) -> None:
        async with self._condition:
            await self._condition.wait_for(lambda: not self._closed)
            self._writes_in_flight += 1
        try:
            await write()
        finally:
            async with self._condition:
                self._writes_in_flight -= 1
                self._dirty = True
                self._condition.notify_all()

    async def snapshot_if_dirty(self) -> None:
        async with self._condition:
            if not self._dirty:
                return
            self._closed = True
            await self._condition.wait_for(lambda: self._writes_in_flight == 0)
            self._dirty = False
        try:
            await anyio.to_thread.run_sync(self._save)
        except Exception:
            self._dirty = True  # try again at the next tick
            raise
        finally:
            async with self._condition:
                self._closed = False
                self._condition.notify_all()

    async def snapshot_every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await self.snapshot_if_dirty()
            except Exception as error:  # a failed save must not stop the stack; the next tick retries
                print(f"lrnstak: could not save the local state: {error}", file=sys.stderr, flush=True)
