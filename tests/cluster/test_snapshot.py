"""Snapshots with real node processes (issue "Anti-entropy"): a node that was down while its peers'
commit logs were garbage-collected past its position catches up by snapshot, and an empty node joining
a loaded cluster installs snapshots (then delta sync) instead of replaying everything."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import apsw

from marmot.testing import NodeProcess, join_keys, make_node, member_states
from tests.support import connect, replicated_cluster, run, wait_until_equal

# GC within seconds: log entries older than 0.001 h (3.6 s) go whatever the members consumed
FAST_GC = (
    "anti_entropy_interval_seconds = 1\ngc_interval_seconds = 1\ngc_min_retention_hours = 0\n"
    "gc_max_retention_hours = 0.001\ndelta_sync_threshold_seconds = 0\n"
)


def log_bounds(node: NodeProcess, db: str = "marmot") -> tuple[int, int]:
    """(MIN(seq), MAX(seq)) of a node's commit log, read from its file (internal tables are hidden
    from clients)."""
    conn = apsw.Connection(str(Path(node.data_dir) / f"{db}.db"), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        conn.set_busy_timeout(2000)
        lo, hi = conn.execute("SELECT MIN(seq), MAX(seq) FROM __marmot_txn_log").fetchone()
        return int(lo or 0), int(hi or 0)
    finally:
        conn.close()


def test_node_down_past_gc_catches_up_by_snapshot(tmp_path):
    with replicated_cluster(tmp_path, 3, replication_extra=FAST_GC) as nodes:
        n1, n2, n3 = nodes
        c1 = connect(n1)
        c1.cursor().execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))")
        c1.cursor().execute("INSERT INTO t VALUES (1, 'before')")
        wait_until_equal(nodes, "SELECT * FROM t ORDER BY id", expected=((1, "before"),))
        n3.stop(signal.SIGKILL)
        marks = [log_bounds(n)[1] for n in (n1, n2)]
        c2 = connect(n2)
        for i in range(2, 302):
            (c1 if i % 2 else c2).cursor().execute(f"INSERT INTO t VALUES ({i}, 'v{i}')")
        c1.cursor().execute("UPDATE t SET v = 'changed' WHERE id % 3 = 0")
        c2.cursor().execute("DELETE FROM t WHERE id % 7 = 0")
        # wait until both survivors collected their logs past what node 3 had consumed
        deadline = time.monotonic() + 40
        while not all(log_bounds(n)[0] > mark + 1 for n, mark in zip((n1, n2), marks, strict=True)):
            assert time.monotonic() < deadline, (
                f"logs not collected: {[log_bounds(n) for n in (n1, n2)]} {marks}"
            )
            time.sleep(0.5)
        n3.start()
        wait_until_equal(nodes, "SELECT COUNT(*), SUM(id) FROM t", timeout=60)
        wait_until_equal(nodes, "SELECT * FROM t ORDER BY id", timeout=30)
        assert "catches up from node" in n3.log() and "installed a snapshot of marmot" in n3.log()
        # and node 3 takes part in writes again, on its installed file
        connect(n3).cursor().execute("INSERT INTO t VALUES (1000, 'from three')")
        wait_until_equal(nodes, "SELECT v FROM t WHERE id = 1000", expected=(("from three",),))
        c1.close()
        c2.close()


def test_empty_node_joins_loaded_cluster(tmp_path):
    extra = "anti_entropy_interval_seconds = 1\n"
    with replicated_cluster(tmp_path, 2, replication_extra=extra) as nodes:
        n1, n2 = nodes
        c1 = connect(n1)
        cur = c1.cursor()
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(40))")
        cur.execute("CREATE DATABASE other")
        cur.execute("CREATE TABLE other.u (id INT PRIMARY KEY, n INT)")
        for b in range(40):
            cur.execute(
                "INSERT INTO t VALUES " + ",".join(f"({b * 75 + i}, 'row {b * 75 + i}')" for i in range(75))
            )
        for b in range(20):
            cur.execute("INSERT INTO other.u VALUES " + ",".join(f"({b * 100 + i}, {i})" for i in range(100)))
        cur.execute("DELETE FROM t WHERE id % 11 = 0")
        wait_until_equal(nodes, "SELECT COUNT(*), SUM(id) FROM t", timeout=30)
        n3 = make_node(
            tmp_path / "n3",
            node_id=3,
            unix_socket=False,
            cluster_extra=join_keys(n1),
            extra_toml=f'[replication]\ndefault_write_consistency = "QUORUM"\n{extra}',
        )
        stop = threading.Event()
        written: list[int] = []

        def writer() -> None:  # writes go on while node 3 restores
            c = connect(n2)
            i = 10_000
            while not stop.is_set() and i < 10_200:
                try:
                    c.cursor().execute(f"INSERT INTO t VALUES ({i}, 'during join')")
                    written.append(i)
                except Exception:
                    time.sleep(0.05)
                i += 1
                time.sleep(0.01)
            c.close()

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            # it turns ALIVE only once caught up: from the first moment its own state reads ALIVE, it
            # holds at least every row written before it started (counted before the start: rows
            # committed after its last catch-up pull may still be on their way when it turns ALIVE)
            before = run(n1, "SELECT COUNT(*) FROM t")[0][0]
            n3.start()
            deadline = time.monotonic() + 30
            while member_states(n3).get(3) != "ALIVE":
                assert time.monotonic() < deadline, f"node 3 never turned ALIVE: {member_states(n3)}"
                time.sleep(0.02)
            assert run(n3, "SELECT COUNT(*) FROM t")[0][0] >= before
            assert run(n3, "SELECT COUNT(*) FROM u", db="other")[0][0] == 2000
            time.sleep(1)
        except BaseException:
            n3.stop(signal.SIGTERM)  # the second block's finally never runs: stop it here, by its PID
            raise
        finally:
            stop.set()
            thread.join()
        try:
            everyone = [n1, n2, n3]
            wait_until_equal(everyone, "SELECT COUNT(*), SUM(id) FROM t", timeout=60)
            wait_until_equal(everyone, "SELECT * FROM t ORDER BY id", timeout=30)
            wait_until_equal(
                everyone,
                "SELECT COUNT(*), SUM(n) FROM u",
                db="other",
                timeout=60,
                expected=((2000, sum(range(100)) * 20),),
            )
            text = n3.log()
            assert "installed a snapshot of marmot" in text and "installed a snapshot of other" in text
        finally:
            n3.stop(signal.SIGTERM)
        c1.close()
