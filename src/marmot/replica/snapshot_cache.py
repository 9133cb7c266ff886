"""Snapshots served to replicas from a cache: ten replicas bootstrapping at once cost one export.

Why: a snapshot is a ``VACUUM INTO`` of the whole database (``replication/catchup/snapshot.py``), which
reads every page and writes a copy. Members ask for one rarely (a node that was away too long); replicas
are many and often start together (a fleet of edge copies rolled out at once). A cluster node therefore
keeps the copy it built for a replica for ``[replica] snapshot_cache_ttl_seconds`` and streams the same
file to every replica that asks for that database meanwhile. A copy is as consistent as a fresh one (one
read transaction) and carries its own log position (``last_seq``), so a replica served an older copy
simply replays more of the log after it — as long as the node's log still holds every entry after the
copy's position: a copy that GC has overtaken (or whose log was replaced) is never served, a fresh one
is built instead (``_continuable``).

Members never use this cache (their ``snapshot_stream`` requests go to ``LogServer`` as before): the
cache is reached only through the replica RPC ``replica.snapshot`` (``cluster_side.py``).

Files: ``<db>.db.replica-snapshot-<random>`` in the data directory (not a ``*.db`` name: never listed
as a database). An expired copy is deleted once no stream reads it; leftovers of a crashed process are
deleted when the cache is built.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import apsw

from marmot.replication.catchup import snapshot as snap
from marmot.replication.catchup.sync_messages import SnapshotChunk, SnapshotManifest
from marmot.storage import replication_tables as rt
from marmot.storage.databases import DatabaseManager

log = logging.getLogger("marmot.replica.snapshot_cache")
SUFFIX = ".replica-snapshot-"


@dataclass
class _Copy:
    """One exported copy of a database and who is streaming it."""

    path: Path
    manifest: dict[str, Any]
    built: float  # time.monotonic() of the export
    readers: int = 0
    expired: bool = False


@dataclass
class CacheStats:
    builds: int = 0  # exports made
    served: int = 0  # streams started (from a fresh or a cached copy)
    hits: int = 0  # streams served from a copy another request built


@dataclass
class SnapshotCache:
    """``serve(db)`` yields a snapshot stream's messages, from a cached copy when one is young enough."""

    databases: DatabaseManager
    chunk_size: int
    ttl: float  # seconds; 0: a copy per request, deleted after it
    stats: CacheStats = field(default_factory=CacheStats)
    _copies: dict[str, _Copy] = field(default_factory=dict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for leftover in self.databases.data_dir.glob(f"*.db{SUFFIX}*"):
            with contextlib.suppress(OSError):
                leftover.unlink()

    async def _copy_of(self, db: str) -> _Copy:
        """A young enough copy of ``db``, built now if there is none (one build at a time per database:
        requests that arrive during a build wait for it and share it)."""
        lock = self._locks.setdefault(db, asyncio.Lock())
        async with lock:
            current = self._copies.get(db)
            if (
                current is not None
                and time.monotonic() - current.built <= self.ttl
                and self._continuable(db, current)
            ):
                self.stats.hits += 1
                return current
            if current is not None:
                self._expire(db, current)
            path = self.databases.data_dir / f"{db}.db{SUFFIX}{secrets.token_hex(6)}"
            started = time.monotonic()
            try:
                manifest = await asyncio.to_thread(snap.export_to, self.databases.path(db), path)
            except BaseException:
                with contextlib.suppress(OSError):
                    path.unlink()
                raise
            self.stats.builds += 1
            log.info(
                "snapshot of %s built for replicas: %d bytes, up to log seq %d, in %.2fs (kept %gs)",
                db,
                manifest["size"],
                manifest["last_seq"],
                time.monotonic() - started,
                self.ttl,
            )
            copy = _Copy(path, manifest, time.monotonic())
            self._copies[db] = copy
            # expired copies go once their TTL passes, not only when the next replica asks
            asyncio.get_running_loop().call_later(self.ttl + 1, self.sweep)
            return copy

    def _continuable(self, db: str, copy: _Copy) -> bool:
        """Whether the live log still continues ``copy``: same log id, and every entry after the copy's
        last position is still kept (GC may have collected past it since the export: a replica that
        installed the copy would then skip what lies in between)."""
        conn = self.databases.open(db)
        try:
            row = conn.execute(f"SELECT MIN(seq) FROM {rt.TXN_LOG}").fetchone()
            first = row[0] if row is not None else None
            log_id = rt.log_id(conn) if first is not None else copy.manifest["log_id"]
        except apsw.Error:  # no replication tables (yet): nothing to compare, build a fresh copy
            return False
        finally:
            conn.close()
        if log_id != copy.manifest["log_id"]:
            return False
        return first is None or int(first) <= int(copy.manifest["last_seq"]) + 1

    def _expire(self, db: str, copy: _Copy) -> None:
        if self._copies.get(db) is copy:
            del self._copies[db]
        copy.expired = True
        if copy.readers == 0:
            with contextlib.suppress(OSError):
                copy.path.unlink()

    async def serve(self, db: str) -> AsyncIterator[SnapshotManifest | SnapshotChunk]:
        """Manifest, then chunks (``snapshot.SnapshotError`` when ``db`` does not exist)."""
        if not self.databases.exists(db):
            raise snap.SnapshotError(f"unknown database {db}")
        copy = await self._copy_of(db)
        copy.readers += 1
        self.stats.served += 1
        try:
            manifest = copy.manifest
            chunks = (manifest["size"] + self.chunk_size - 1) // self.chunk_size
            yield SnapshotManifest(db=db, **manifest, chunks=chunks)
            with open(copy.path, "rb") as f:
                for i in range(chunks):
                    data, digest = await asyncio.to_thread(snap.read_chunk, f, self.chunk_size)
                    yield SnapshotChunk(i, data, digest)
        finally:
            copy.readers -= 1
            if self.ttl <= 0 or copy.expired or time.monotonic() - copy.built > self.ttl:
                self._expire(db, copy)

    def sweep(self) -> None:
        """Delete the copies older than the TTL that nobody streams (called now and then, and at close)."""
        now = time.monotonic()
        for db, copy in list(self._copies.items()):
            if now - copy.built > self.ttl and copy.readers == 0:
                self._expire(db, copy)

    def close(self) -> None:
        for db, copy in list(self._copies.items()):
            self._expire(db, copy)
