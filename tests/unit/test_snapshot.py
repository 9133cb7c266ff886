"""Snapshots (replication/catchup/snapshot.py): a copy taken under write load is consistent, a corrupted transfer
is detected and swaps nothing, and installing over a live database removes the old WAL first."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import apsw
import pytest

from marmot.replication.catchup import snapshot as snap
from marmot.storage import replication_tables as rt
from marmot.storage.databases import DatabaseManager
from tests.support import run_async


def _fill(dbs: DatabaseManager, name: str, rows: int, tag: str) -> None:
    conn = dbs.open(name)
    rt.ensure_tables(conn)
    conn.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)")
    with conn:
        conn.executemany("INSERT INTO t (v) VALUES (?)", [(f"{tag}{i}",) for i in range(rows)])
    conn.close()


async def _collect(gen: AsyncIterator[Any]) -> list[Any]:
    return [m async for m in gen]


async def _aiter(items: list[Any]) -> AsyncIterator[Any]:
    for m in items:
        yield m


async def _wire(gen: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """The messages of ``snap.serve`` as the receiver gets them off the network."""
    async for m in gen:
        yield m.encode()


def test_export_under_concurrent_writes_is_consistent(tmp_path: Path) -> None:
    dbs = DatabaseManager(tmp_path)
    _fill(dbs, "marmot", 20000, "x")
    stop = threading.Event()
    counts: list[int] = []

    def writer() -> None:
        conn = dbs.open("marmot")
        conn.set_busy_timeout(5000)
        i = 0
        while not stop.is_set():
            with conn:
                conn.executemany("INSERT INTO t (v) VALUES (?)", [(f"w{i}-{j}",) for j in range(50)])
            i += 1
            counts.append(i)
        conn.close()

    def count() -> int:
        c = dbs.open("marmot")
        try:
            return int(c.execute("SELECT COUNT(*) FROM t").fetchone()[0])
        finally:
            c.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while not counts:  # the writer is running
            pass
        before = count()
        manifest = snap.export_to(dbs.path("marmot"), tmp_path / "copy.bin")
        after_export_batches = len(counts)
    finally:
        stop.set()
        thread.join()
    after = count()
    assert after_export_batches > counts[0] or after > before  # writes really went on meanwhile
    copy = apsw.Connection(str(tmp_path / "copy.bin"))
    assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    copied = int(copy.execute("SELECT COUNT(*) FROM t").fetchone()[0])
    assert before <= copied <= after
    assert copied % 50 == 0  # whole transactions only (20000 + 50 per batch)
    assert manifest["size"] == (tmp_path / "copy.bin").stat().st_size
    copy.close()
    dbs.close()


@pytest.mark.parametrize("damage", ["chunk", "chunk_hash", "file_hash", "missing_chunk"])
def test_corrupted_transfer_is_detected_and_nothing_is_swapped(tmp_path: Path, damage: str) -> None:
    src = DatabaseManager(tmp_path / "src")
    _fill(src, "marmot", 5000, "src")
    dst = DatabaseManager(tmp_path / "dst")
    _fill(dst, "marmot", 3, "dst")
    msgs = run_async(_collect(snap.serve(src, "marmot", chunk_size=16 * 1024)))
    assert msgs[0].chunks == len(msgs) - 1 > 3
    if damage == "chunk":
        msgs[2] = dataclasses.replace(msgs[2], data=b"\0" + msgs[2].data[1:])
    elif damage == "chunk_hash":
        msgs[2] = dataclasses.replace(msgs[2], sha256="0" * 64)
    elif damage == "file_hash":
        msgs[0] = dataclasses.replace(msgs[0], sha256="0" * 64)
    else:
        del msgs[-1]
    with pytest.raises(snap.SnapshotError):
        run_async(snap.receive(_aiter([m.encode() for m in msgs]), dst.data_dir, "marmot"))
    assert [p.name for p in dst.data_dir.iterdir() if ".snapshot-" in p.name] == []
    conn = dst.open("marmot")
    assert conn.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 3
    conn.close()
    assert [p.name for p in src.data_dir.iterdir() if ".export-" in p.name] == []  # the export was removed
    src.close()
    dst.close()


def test_install_over_a_live_database_with_a_stale_wal(tmp_path: Path) -> None:
    src = DatabaseManager(tmp_path / "src")
    _fill(src, "marmot", 4000, "new")
    dst = DatabaseManager(tmp_path / "dst")
    live = dst.open("marmot")
    rt.ensure_tables(live)
    live.execute("PRAGMA wal_autocheckpoint=0").fetchall()
    live.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    with live:
        live.executemany("INSERT INTO t (v) VALUES (?)", [(f"old{i}" * 20,) for i in range(3000)])
    wal = Path(str(dst.path("marmot")) + "-wal")
    assert wal.stat().st_size > 100_000  # the old data sits in the WAL, not yet in the file
    stale = wal.read_bytes()
    old_log_id = rt.log_id(src.open("marmot"))

    def release(name: str) -> None:  # like a holder that closed its connection but left its WAL behind
        live.close()
        wal.write_bytes(stale)

    async def main() -> None:
        path, manifest = await snap.receive(
            _wire(snap.serve(src, "marmot", chunk_size=64 * 1024)), dst.data_dir, "marmot"
        )
        assert manifest.last_seq == 0 and manifest.log_id == old_log_id
        await snap.install(dst, "marmot", path, release, lock_timeout=5)

    run_async(main())
    conn = dst.open("marmot")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT COUNT(*), MIN(v) FROM t").fetchone() == (4000, "new0")
    assert rt.log_id(conn) != old_log_id  # the installed copy has its own log identity
    conn.close()
    assert [p.name for p in dst.data_dir.iterdir() if ".snapshot-" in p.name] == []
    src.close()
    dst.close()
