"""The snapshot cache cluster nodes serve replicas from (``replica/snapshot_cache.py``): ten replicas asking
at once cost one export, each receives a whole verified copy, a copy older than the TTL is rebuilt and
deleted once nobody streams it, and a TTL of 0 builds one per request. Real SQLite files, real streams
(``snapshot.receive`` checks every chunk)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import apsw

from marmot.replica.snapshot_cache import SUFFIX, SnapshotCache
from marmot.replication.catchup import snapshot as snap
from marmot.storage import replication_tables as rt
from marmot.storage.databases import DatabaseManager
from tests.support import run_async


def _fill(dbs: DatabaseManager, rows: int) -> None:
    conn = dbs.open("marmot")
    rt.ensure_tables(conn)
    conn.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)")
    with conn:
        conn.executemany("INSERT INTO t (v) VALUES (?)", [(f"v{i}" * 20,) for i in range(rows)])
    conn.close()


async def _wire(cache: SnapshotCache, db: str):  # type: ignore[no-untyped-def]
    async for m in cache.serve(db):
        yield m.encode()


def _leftovers(dbs: DatabaseManager) -> list[Path]:
    return list(dbs.data_dir.glob(f"*{SUFFIX}*"))


def test_ten_concurrent_requests_cost_one_export(tmp_path: Path) -> None:
    src = DatabaseManager(tmp_path / "src")
    _fill(src, 5000)
    cache = SnapshotCache(src, chunk_size=16 * 1024, ttl=30)

    async def ten() -> list[int]:
        outs = []
        for i in range(10):
            dest = tmp_path / f"r{i}"
            dest.mkdir()
            outs.append(snap.receive(_wire(cache, "marmot"), dest, "marmot"))
        received = await asyncio.gather(*outs)
        rows = []
        for path, manifest in received:
            conn = apsw.Connection(str(path))
            rows.append(conn.execute("SELECT COUNT(*) FROM t").fetchone()[0])
            conn.close()
            assert manifest.size == path.stat().st_size
        return rows

    assert run_async(ten()) == [5000] * 10
    assert (cache.stats.builds, cache.stats.served, cache.stats.hits) == (1, 10, 9)
    assert len(_leftovers(src)) == 1  # kept for the next replica until the TTL passes
    cache.close()
    assert _leftovers(src) == []


def test_expired_copy_is_rebuilt_and_ttl_zero_builds_per_request(tmp_path: Path) -> None:
    src = DatabaseManager(tmp_path / "src")
    _fill(src, 100)
    cache = SnapshotCache(src, chunk_size=4096, ttl=0.2)
    (tmp_path / "a").mkdir()
    run_async(snap.receive(_wire(cache, "marmot"), tmp_path / "a", "marmot"))
    _fill(src, 100)  # newer data: the next copy after the TTL must hold it
    run_async(asyncio.sleep(0.3))
    path, _m = run_async(snap.receive(_wire(cache, "marmot"), tmp_path / "a", "marmot"))
    conn = apsw.Connection(str(path))
    assert conn.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 200
    conn.close()
    assert cache.stats.builds == 2 and len(_leftovers(src)) == 1  # the old copy is gone
    no_cache = SnapshotCache(src, chunk_size=4096, ttl=0)
    for _ in range(2):
        run_async(snap.receive(_wire(no_cache, "marmot"), tmp_path / "a", "marmot"))
    assert no_cache.stats.builds == 2
    cache.close()
    assert _leftovers(src) == []


def test_leftovers_of_a_crashed_process_are_removed(tmp_path: Path) -> None:
    src = DatabaseManager(tmp_path / "src")
    stray = src.data_dir / f"marmot.db{SUFFIX}deadbeef"
    stray.write_bytes(b"x")
    SnapshotCache(src, chunk_size=4096, ttl=30)
    assert not stray.exists()


def _log(dbs: DatabaseManager, seqs: range) -> None:
    conn = dbs.open("marmot")
    with conn:
        conn.executemany(
            f"INSERT INTO {rt.TXN_LOG} (seq, txn_id, wall, logical, node, origin, payload) VALUES (?, ?, 0, 0, 1, 1, x'')",
            [(q, 1000 + q) for q in seqs],
        )
    conn.close()


def test_a_copy_overtaken_by_gc_is_not_served(tmp_path: Path) -> None:
    """A cached copy whose position the node's log no longer continues (GC collected the entries right
    after it) would make a replica skip them: a fresh copy is built instead, within the TTL too."""
    src = DatabaseManager(tmp_path / "src")
    _fill(src, 10)
    _log(src, range(1, 6))
    cache = SnapshotCache(src, chunk_size=4096, ttl=30)
    (tmp_path / "a").mkdir()
    _p, first = run_async(snap.receive(_wire(cache, "marmot"), tmp_path / "a", "marmot"))
    assert first.last_seq == 5
    _log(src, range(6, 9))  # more entries: the copy is still continued by the log (6 follows 5)
    _p, again = run_async(snap.receive(_wire(cache, "marmot"), tmp_path / "a", "marmot"))
    assert again.last_seq == 5 and cache.stats.builds == 1
    conn = src.open("marmot")
    conn.execute(f"DELETE FROM {rt.TXN_LOG} WHERE seq <= 7")  # GC: 6 and 7 are gone
    conn.close()
    _p, fresh = run_async(snap.receive(_wire(cache, "marmot"), tmp_path / "a", "marmot"))
    assert fresh.last_seq == 8 and cache.stats.builds == 2
    cache.close()
