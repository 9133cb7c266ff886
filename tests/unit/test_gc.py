"""GC of the commit log and tombstones: nothing a member has not consumed goes before the minimum
retention; everything older than the maximum retention goes; tombstones only by maximum retention."""

from __future__ import annotations

from pathlib import Path

from marmot.replication.apply.queue import ApplyQueues
from marmot.replication.catchup.gc import NS_PER_HOUR, LogGC, collect, consumed_key
from marmot.storage import replication_tables as rt
from marmot.storage.databases import DatabaseManager
from tests.support import run_async

NOW = 1_800_000_000 * 1_000_000_000  # a fixed "now" in ns


def _fill(conn, walls: list[int]) -> None:
    """One log entry per wall time (seq 1..n), and a tombstone and a live version at each wall."""
    with conn:
        for i, wall in enumerate(walls, start=1):
            conn.execute(
                f"INSERT INTO {rt.TXN_LOG} (txn_id, wall, logical, node, origin, payload) "
                "VALUES (?, ?, 0, 1, 1, x'00')",
                (i, wall),
            )
            conn.execute(
                f"INSERT INTO {rt.ROW_VERSION} (pk, tbl, wall, logical, node, deleted) "
                "VALUES (?, 't', ?, 0, 1, 1)",
                (b"d%d" % i, wall),
            )
            conn.execute(
                f"INSERT INTO {rt.ROW_VERSION} (pk, tbl, wall, logical, node, deleted) "
                "VALUES (?, 't', ?, 0, 1, 0)",
                (b"l%d" % i, wall),
            )


def _seqs(conn) -> list[int]:
    return [r[0] for r in conn.execute(f"SELECT seq FROM {rt.TXN_LOG} ORDER BY seq")]


def _open(tmp_path: Path) -> tuple[DatabaseManager, ApplyQueues]:
    dbs = DatabaseManager(tmp_path)
    queues = ApplyQueues(dbs)
    rt.ensure_tables(queues.connection("marmot"))
    return dbs, queues


def test_min_retention_protects_unconsumed_and_recent(tmp_path: Path) -> None:
    dbs, queues = _open(tmp_path)
    conn = queues.connection("marmot")
    old, recent = NOW - 5 * NS_PER_HOUR, NOW - NS_PER_HOUR // 2
    _fill(conn, [old, old, old, recent])
    with conn:
        deleted = collect(conn, safe_seq=2, now_ns=NOW, min_retention_h=2, max_retention_h=24)
    assert deleted == (2, 0)  # seq 1-2: consumed by everyone and old; 3: old but not consumed; 4: recent
    assert _seqs(conn) == [3, 4]
    with conn:
        assert collect(conn, safe_seq=4, now_ns=NOW, min_retention_h=2, max_retention_h=24) == (1, 0)
    assert _seqs(conn) == [4]  # recent entries stay even when consumed
    dbs.close()


def test_max_retention_deletes_regardless_and_purges_tombstones(tmp_path: Path) -> None:
    dbs, queues = _open(tmp_path)
    conn = queues.connection("marmot")
    ancient, old = NOW - 30 * NS_PER_HOUR, NOW - 5 * NS_PER_HOUR
    _fill(conn, [ancient, old])
    with conn:
        deleted = collect(conn, safe_seq=0, now_ns=NOW, min_retention_h=2, max_retention_h=24)
    assert deleted == (1, 1)  # the ancient entry and its tombstone; nobody consumed anything
    assert _seqs(conn) == [2]
    live = conn.execute(f"SELECT COUNT(*) FROM {rt.ROW_VERSION} WHERE deleted = 0").fetchone()[0]
    assert live == 2  # live versions are never collected
    with conn:  # max retention 0 = unlimited: nothing goes by age
        assert collect(
            conn, safe_seq=0, now_ns=NOW + 100 * NS_PER_HOUR, min_retention_h=2, max_retention_h=0
        ) == (0, 0)
    dbs.close()


def test_safe_seq_is_the_slowest_member(tmp_path: Path) -> None:
    dbs, queues = _open(tmp_path)
    members = [2, 3]
    gc = LogGC(
        dbs,
        queues,
        members=lambda: members,
        interval=60,
        min_retention_h=0,
        max_retention_h=0,
        clock_ns=lambda: NOW,
    )
    assert gc.safe_seq("marmot") == 0  # a member that never asked holds everything back
    gc.state.set(consumed_key("marmot", 2), 7)
    gc.state.set(consumed_key("marmot", 3), 4)
    assert gc.safe_seq("marmot") == 4
    conn = queues.connection("marmot")
    _fill(conn, [NOW - NS_PER_HOUR] * 6)
    assert run_async(gc.run_once()) == (4, 0)
    assert _seqs(conn) == [5, 6]
    dbs.close()


def test_keep_from_holds_entries_a_publisher_has_not_published(tmp_path: Path) -> None:
    """The CDC publisher's hold: from ``keep_from`` on, nothing goes, by min or by max retention."""
    dbs, queues = _open(tmp_path)
    conn = queues.connection("marmot")
    ancient = NOW - 100 * NS_PER_HOUR
    _fill(conn, [ancient] * 6)
    with conn:
        deleted = collect(conn, safe_seq=6, now_ns=NOW, min_retention_h=2, max_retention_h=24, keep_from=3)
    assert deleted[0] == 2 and _seqs(conn) == [3, 4, 5, 6]  # only what the sink published (1, 2) went
    with conn:
        collect(conn, safe_seq=6, now_ns=NOW, min_retention_h=2, max_retention_h=24, keep_from=None)
    assert _seqs(conn) == [6]  # without a hold, the newest entry alone stays
