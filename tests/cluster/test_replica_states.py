"""A replica's states when the cluster goes away and comes back: RECONNECTING at once, reconnect attempts
backing off (reconnect_interval_seconds doubling up to reconnect_max_backoff_seconds), STALE past
failover_timeout_seconds with /admin/replica/health answering 503, and STREAMING again, with the writes
made meanwhile, once a node answers. A one-node cluster and one replica."""

from __future__ import annotations

import re
import time
from pathlib import Path

from pymysql.err import MySQLError

from marmot.testing.admin import admin_call, admin_json
from marmot.testing.cluster import LocalCluster
from marmot.testing.replicas import make_replica
from tests.support import run, wait_for

TIMERS = (
    "discovery_interval_seconds = 2\nfailover_timeout_seconds = 4\nreconnect_interval_seconds = 1\n"
    "reconnect_max_backoff_seconds = 2\ndatabase_discovery_interval_seconds = 1\n"
)


def test_states_through_a_cluster_outage(tmp_path: Path) -> None:
    with LocalCluster(1, tmp_path / "cluster") as cl:
        node = cl.node(1)
        run(
            node,
            "CREATE DATABASE app",
            "CREATE TABLE app.t (id INT PRIMARY KEY)",
            "INSERT INTO app.t VALUES (1)",
        )
        replica = make_replica(tmp_path / "replica", [node], node_id=55, replica_extra=TIMERS)
        try:
            replica.start()
            wait_for(
                lambda: admin_json(replica, "/admin/replica/status")["state"] == "STREAMING", 30, "STREAMING"
            )
            assert admin_call(replica, "/admin/replica/health")[0] == 200
            cl.kill(1)
            lost = time.monotonic()
            wait_for(
                lambda: admin_json(replica, "/admin/replica/status")["state"] == "RECONNECTING",
                10,
                "RECONNECTING",
            )
            status = wait_for(
                lambda: (s := admin_json(replica, "/admin/replica/status"))["state"] == "STALE" and s,
                20,
                "STALE",
            )
            assert time.monotonic() - lost >= 4 - 0.5  # not before failover_timeout_seconds
            assert status["source"] is None and status["databases"][0]["lag_seconds"] >= 3
            code, body = admin_call(replica, "/admin/replica/health")
            assert code == 503 and body["state"] == "STALE"
            # the reads keep working on the copy it has
            assert run(replica, "SELECT COUNT(*) FROM t", db="app") == ((1,),)
            # attempts back off: 1 s, then 2 s (the maximum), as the log says
            delays = [float(d) for d in re.findall(r"next attempt in ([0-9.]+)s", replica.log())]
            assert delays[:2] == [1.0, 2.0] and set(delays[2:]) <= {2.0}, delays
            cl.restart(1)
            run(node, "INSERT INTO app.t VALUES (2)")
            wait_for(
                lambda: admin_json(replica, "/admin/replica/status")["state"] == "STREAMING", 30, "STREAMING"
            )
            wait_for(lambda: run(replica, "SELECT COUNT(*) FROM t", db="app") == ((2,),), 30, "the new row")
        finally:
            replica.stop()


# GC as soon as every member consumed an entry (a one-node cluster: at once), whatever a replica consumed
GC_NOW = "anti_entropy_interval_seconds = 1\ngc_interval_seconds = 1\ngc_min_retention_hours = 0\ndelta_sync_threshold_seconds = 0\n"


def test_gc_does_not_wait_for_a_replica_which_re_snapshots(tmp_path: Path) -> None:
    """The cluster's log GC collects past a stopped replica's position (it never waits for a replica);
    started again, the replica finds its position gone and bootstraps that database by snapshot."""
    import apsw

    with LocalCluster(1, tmp_path / "cluster", replication_extra=GC_NOW) as cl:
        node = cl.node(1)
        run(
            node,
            "CREATE DATABASE app",
            "CREATE TABLE app.t (id INT PRIMARY KEY, v INT)",
            "INSERT INTO app.t VALUES (1, 0)",
        )
        replica = make_replica(tmp_path / "replica", [node], node_id=56, replica_extra=TIMERS)
        try:
            replica.start()
            wait_for(
                lambda: run(replica, "SELECT COUNT(*) FROM t", db="app") == ((1,),),
                30,
                "bootstrap",
                ignore=(MySQLError,),
            )
            position = admin_json(replica, "/admin/replica/status")["databases"][0]["position"]
            replica.stop()
            run(node, *(f"INSERT INTO app.t VALUES ({i}, {i})" for i in range(2, 60)), db="app")

            def first_kept() -> int:
                conn = apsw.Connection(str(node.data_dir / "app.db"), flags=apsw.SQLITE_OPEN_READONLY)
                try:
                    conn.set_busy_timeout(2000)
                    return int(conn.execute("SELECT MIN(seq) FROM __marmot_txn_log").fetchone()[0] or 0)
                finally:
                    conn.close()

            wait_for(lambda: first_kept() > position + 1, 30, "GC past the replica's position")
            replica.start()
            wait_for(
                lambda: (
                    run(replica, "SELECT COUNT(*), SUM(v) FROM t", db="app") == ((59, sum(range(2, 60))),)
                ),
                30,
                "caught up",
            )
            assert admin_json(replica, "/admin/replica/status")["pull"]["snapshots"] == 1
            assert "was collected past this node's position" in replica.log_path.read_text()
        finally:
            replica.stop()
