"""A replica under write load: its source SIGKILLed mid-load (failover within failover_timeout_seconds,
no gap, no duplicate: ``marmot verify`` against the replica's address finds every table identical), and
the replica itself SIGKILLed and restarted (it resumes from its persisted position: no snapshot, and it
fetches only what it had not applied). One 3-node cluster and one replica for the module."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator

import pymysql
import pytest

from marmot.testing.admin import admin_json
from marmot.testing.cluster import LocalCluster
from marmot.testing.nodes import NodeProcess
from marmot.testing.replicas import make_replica
from tests.support import connect, marmot_verify, run, wait_for

FAILOVER_TIMEOUT_S = 10  # FAST_REPLICA's failover_timeout_seconds


class Load:
    """Client threads writing short transactions (insert / update / delete of ``load.kv``) to some nodes
    for a bounded time; errors (a node killed under them) are counted and the client moves on."""

    def __init__(self, nodes: list[NodeProcess], clients: int = 4) -> None:
        self.nodes = nodes
        self.clients = clients
        self.stop_at = 0.0
        self.commits = 0
        self.errors = 0
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(self, seconds: float) -> Load:
        self.stop_at = time.monotonic() + seconds
        for c in range(self.clients):
            t = threading.Thread(target=self._client, args=(c,), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self.stop_at = 0.0
        for t in self._threads:
            t.join(60)

    def _client(self, c: int) -> None:
        rnd = random.Random(c)
        conn = None
        while time.monotonic() < self.stop_at:
            node = self.nodes[(c + rnd.randrange(len(self.nodes))) % len(self.nodes)]
            try:
                if conn is None:
                    conn = connect(node, "load", read_timeout=10, write_timeout=10)
                cur = conn.cursor()
                cur.execute("BEGIN")
                for _ in range(3):
                    k = rnd.randrange(300)
                    op = rnd.random()
                    if op < 0.5:
                        cur.execute(f"REPLACE INTO kv VALUES ({k}, {rnd.randrange(10**6)}, 'c{c}')")
                    elif op < 0.85:
                        cur.execute(f"UPDATE kv SET v = v + 1 WHERE k = {k}")
                    else:
                        cur.execute(f"DELETE FROM kv WHERE k = {k}")
                cur.execute("COMMIT")
                with self._lock:
                    self.commits += 1
            except pymysql.err.MySQLError:
                with self._lock:
                    self.errors += 1
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.05)
        if conn is not None:
            conn.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalCluster, NodeProcess]]:
    tmp = tmp_path_factory.mktemp("replica-failover")
    with LocalCluster(3, tmp / "cluster") as cl:
        run(
            cl.node(1),
            "CREATE DATABASE load",
            "CREATE TABLE load.kv (k INT PRIMARY KEY, v INT, who VARCHAR(10))",
            *(f"INSERT INTO load.kv VALUES ({k}, 0, 'init')" for k in range(0, 300, 3)),
        )
        replica = make_replica(tmp / "replica", [cl.node(2)], node_id=60)
        try:
            replica.start()
            wait_for(
                lambda: admin_json(replica, "/admin/replica/status")["state"] == "STREAMING", 30, "STREAMING"
            )
            yield cl, replica
        finally:
            replica.stop()


def _status(replica: NodeProcess) -> dict:
    return admin_json(replica, "/admin/replica/status")


def _same_rows(cl: LocalCluster, replica: NodeProcess) -> bool:
    want = run(cl.node(1), "SELECT k, v, who FROM kv ORDER BY k", db="load")
    return run(replica, "SELECT k, v, who FROM kv ORDER BY k", db="load") == want


def test_source_killed_mid_load_fails_over_and_ends_identical(
    cluster: tuple[LocalCluster, NodeProcess],
) -> None:
    cl, replica = cluster
    assert _status(replica)["source"]["node_id"] == 2
    load = Load([cl.node(1), cl.node(3)]).start(seconds=8)
    try:
        time.sleep(2)
        killed_at = time.monotonic()
        cl.kill(2)
        status = wait_for(
            lambda: (s := _status(replica))["source"] is not None and s["source"]["node_id"] != 2 and s,
            FAILOVER_TIMEOUT_S,
            "the replica to fail over to a live node",
        )
        failover_s = time.monotonic() - killed_at
    finally:
        load.stop()
    assert failover_s < FAILOVER_TIMEOUT_S
    assert status["failovers"] >= 1 and status["source"]["node_id"] in (1, 3)
    assert load.commits > 20, (load.commits, load.errors)
    # the cluster's own copy converges once node 2 is back; the replica must equal it, row for row
    cl.restart(2)
    cl.wait_all_alive(60)
    wait_for(lambda: _same_rows(cl, replica), 60, "the replica to equal the cluster")
    out = marmot_verify(replica, settle=2)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "REPLICA 60" in out.stdout and "NODE 2" in out.stdout, out.stdout
    assert _status(replica)["state"] == "STREAMING"


def test_replica_killed_and_restarted_resumes_without_snapshot(
    cluster: tuple[LocalCluster, NodeProcess],
) -> None:
    cl, replica = cluster
    wait_for(lambda: _same_rows(cl, replica), 60, "the replica to equal the cluster")
    before = _status(replica)
    source = before["source"]["node_id"]
    replica.stop(9)  # SIGKILL: no clean shutdown
    new_rows = 40
    run(cl.node(1), *(f"INSERT INTO kv VALUES ({1000 + i}, {i}, 'late')" for i in range(new_rows)), db="load")
    replica.start()
    wait_for(lambda: _same_rows(cl, replica), 60, "the restarted replica to catch up")
    after = wait_for(lambda: (s := _status(replica))["state"] == "STREAMING" and s, 30, "STREAMING")
    assert after["source"]["node_id"] == source  # the same source: its persisted cursor applies
    assert after["pull"]["snapshots"] == 0, after  # resumed from its position, no snapshot
    # it fetched what it lacked, not the source's whole log again
    assert new_rows <= after["pull"]["pulled"] < new_rows + 50, after
    out = marmot_verify(replica, settle=2)
    assert out.returncode == 0, out.stdout + out.stderr
