"""Snapshots: a whole database copied from a peer, for lags the commit log cannot fill.

Why: delta sync (``catchup/log_pull.py``) replays a peer's commit log, which GC trims; a node that was away
longer than the log reaches, one that is very far behind, or a brand-new node would replay too much or
find a gap. Then it installs a copy of the peer's database file and continues with delta sync right
after the position the copy contains.

**Export** (serving node, ``serve``): ``VACUUM INTO`` a temporary file, on a worker thread with its own
connection. It runs in one read transaction, so the copy is consistent while writes go on (WAL readers
do not block writers), and the result is a self-contained file with no WAL. The copy's own
``__marmot_txn_log`` says which transactions it contains, and its highest ``seq`` is where the receiver's
pull cursor continues. Streamed as ``snapshot_stream {db}``: a ``SnapshotManifest {db, size, sha256,
log_id, last_seq, schema_version, chunks}``, then ``SnapshotChunk {i, data, sha256}`` messages
(``catchup/sync_messages.py``); the temporary file is removed at the end, also when the receiver goes away.

**Install** (receiving node, ``receive`` + ``install``): chunks go to ``<db>.db.snapshot-<random>`` (not
a ``*.db`` name, so never listed as a database), each chunk's sha256 and the whole file's are checked and
any mismatch deletes the file: nothing is swapped. The copy gets a fresh ``log_id`` (its log is now this
node's log, in this node's order from here on: peers' cursors on the old one must not apply to it). Then,
under the database's writer lock (priority lane), every holder of a connection lets go (``release``: the
hooks DROP DATABASE uses) and ``DatabaseManager.replace_file`` removes the old WAL/SHM and renames the new
file in.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import apsw

from marmot.replication.catchup.sync_messages import SnapshotChunk, SnapshotManifest
from marmot.replication.messages import MessageError
from marmot.storage import collations
from marmot.storage import replication_tables as rt
from marmot.storage.databases import DatabaseManager

log = logging.getLogger("marmot.replication.catchup.snapshot")
DEFAULT_CHUNK = 1 << 20


class SnapshotError(Exception):
    """The snapshot could not be taken, transferred or verified (nothing was swapped)."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def export_to(src: Path, dest: Path) -> dict[str, Any]:
    """Blocking: a consistent copy of ``src`` at ``dest``; returns the manifest fields of the copy."""
    conn = apsw.Connection(str(src))
    collations.register(conn)  # VACUUM INTO rebuilds indexes, DECIMAL ones use MARMOT_DECIMAL
    try:
        conn.set_busy_timeout(10_000)  # a worker thread: waiting here blocks nobody
        conn.execute("VACUUM INTO ?", (str(dest),))
    finally:
        conn.close()
    copy = apsw.Connection(str(dest), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        has_tables = copy.execute(
            "SELECT 1 FROM sqlite_schema WHERE name = ?", (rt.SCHEMA_VERSION,)
        ).fetchone()
        if has_tables:
            log_id = rt.log_id(copy)
            last = rt.last_seq(copy)
            sv = rt.schema_version(copy)
        else:
            log_id, last, sv = "", 0, 0
    finally:
        copy.close()
    return {
        "size": dest.stat().st_size,
        "sha256": sha256_file(dest),
        "log_id": log_id,
        "last_seq": last,
        "schema_version": sv,
    }


def read_chunk(f: Any, size: int) -> tuple[bytes, str]:
    """One chunk and its sha256, both off the event loop (callers run this in a thread)."""
    data = f.read(size)
    return data, hashlib.sha256(data).hexdigest()


async def serve(
    databases: DatabaseManager, db: str, chunk_size: int = DEFAULT_CHUNK
) -> AsyncIterator[SnapshotManifest | SnapshotChunk]:
    """The ``snapshot_stream`` handler's body: manifest, then chunks (``SnapshotError`` when ``db`` does
    not exist)."""
    if not databases.exists(db):
        raise SnapshotError(f"unknown database {db}")
    tmp = databases.data_dir / f"{db}.db.export-{secrets.token_hex(6)}"
    try:
        started = time.monotonic()
        manifest = await asyncio.to_thread(export_to, databases.path(db), tmp)
        chunks = (manifest["size"] + chunk_size - 1) // chunk_size
        log.info(
            "snapshot of %s taken for a peer: %d bytes, up to log seq %d, in %.2fs",
            db,
            manifest["size"],
            manifest["last_seq"],
            time.monotonic() - started,
        )
        yield SnapshotManifest(db=db, **manifest, chunks=chunks)
        with open(tmp, "rb") as f:
            for i in range(chunks):
                data, digest = await asyncio.to_thread(read_chunk, f, chunk_size)
                yield SnapshotChunk(i, data, digest)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


class Progress:
    """Logs a restore's progress every ~10%; draws a one-line bar on stderr when ``bar`` (a restore in
    the foreground at startup, stderr a terminal) — an operator starting a node by hand sees it move."""

    def __init__(self, db: str, peer: int, total: int, bar: bool = False) -> None:
        self.db, self.peer, self.total, self.bar = db, peer, max(total, 1), bar
        self._next_tenth = 1

    def __call__(self, done: int) -> None:
        frac = min(done / self.total, 1.0)
        if self.bar:
            filled = int(frac * 30)
            sys.stderr.write(
                f"\rrestoring {self.db} from node {self.peer} [{'#' * filled}{'.' * (30 - filled)}] "
                f"{frac * 100:5.1f}% {done / 1048576:.1f}/{self.total / 1048576:.1f} MiB"
            )
            if frac >= 1.0:
                sys.stderr.write("\n")
            sys.stderr.flush()
        while frac * 10 >= self._next_tenth and self._next_tenth <= 10:
            log.info(
                "snapshot of %s from node %d: %d%% (%d of %d bytes)",
                self.db,
                self.peer,
                self._next_tenth * 10,
                done,
                self.total,
            )
            self._next_tenth += 1


async def receive(
    messages: AsyncIterator[Any],
    data_dir: Path,
    db: str,
    progress: Callable[[SnapshotManifest], Callable[[int], None]] | None = None,
) -> tuple[Path, SnapshotManifest]:
    """Write a ``snapshot_stream`` (the messages as they came off the network) to a temporary file next
    to the database, verifying every chunk and the whole file. Returns (file, manifest); raises
    ``SnapshotError`` (file removed) on any mismatch or malformed message."""
    path = data_dir / f"{db}.db.snapshot-{secrets.token_hex(6)}"
    ok = False
    try:
        it = messages.__aiter__()
        try:
            first = await it.__anext__()
        except StopAsyncIteration:
            raise SnapshotError("empty snapshot stream") from None
        try:
            manifest = SnapshotManifest.decode(first)
        except MessageError as e:
            raise SnapshotError(f"snapshot of {db}: manifest: {e}") from None
        size, want, chunks = manifest.size, manifest.sha256, manifest.chunks
        report = progress(manifest) if progress is not None else None
        whole = hashlib.sha256()
        written = 0
        expect = 0
        with open(path, "wb") as f:
            async for raw in it:
                try:
                    msg = SnapshotChunk.decode(raw)
                except MessageError:
                    msg = None
                if msg is None or msg.i != expect:
                    raise SnapshotError(f"snapshot of {db}: chunk {expect} malformed or out of order")
                data = msg.data
                if hashlib.sha256(data).hexdigest() != msg.sha256:
                    raise SnapshotError(f"snapshot of {db}: checksum mismatch in chunk {expect}")
                f.write(data)
                whole.update(data)
                written += len(data)
                expect += 1
                if written > size:
                    raise SnapshotError(f"snapshot of {db}: more data than announced ({size} bytes)")
                if report is not None:
                    report(written)
            f.flush()
            os.fsync(f.fileno())
        if expect != chunks or written != size:
            raise SnapshotError(
                f"snapshot of {db}: got {expect} chunks / {written} bytes, expected {chunks} / {size}"
            )
        if whole.hexdigest() != want:
            raise SnapshotError(f"snapshot of {db}: file checksum mismatch")
        ok = True
        return path, manifest
    finally:
        if not ok:
            with contextlib.suppress(OSError):
                path.unlink()


def prepare(path: Path) -> None:
    """Blocking: give the received copy its own log identity (see the module docstring) before it is
    swapped in. Journal mode DELETE while we touch it, so no WAL is left next to the temporary file."""
    conn = apsw.Connection(str(path))
    collations.register(conn)
    try:
        conn.execute("PRAGMA journal_mode=DELETE").fetchall()
        rt.ensure_tables(conn)
        conn.execute(f"UPDATE {rt.SCHEMA_VERSION} SET log_id = lower(hex(randomblob(8))) WHERE id = 1")
    finally:
        conn.close()


async def install(
    databases: DatabaseManager, db: str, path: Path, release: Callable[[str], None], lock_timeout: float
) -> None:
    """Swap the verified copy at ``path`` in as ``db`` (see the module docstring). On failure the copy
    is removed and the old file stays."""
    try:
        await asyncio.to_thread(prepare, path)
        lock = databases.write_lock(db)
        await lock.acquire(timeout=lock_timeout, priority=True)
        try:
            release(db)
            databases.replace_file(db, path)
        finally:
            lock.release()
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise
