"""Writes forwarded from a read-only replica to a three-node cluster, with real node processes.

One cluster for the module, a replica with ``forward_writes = true`` following node 2 and one without
following node 3. Through the forwarding replica: an autocommit INSERT returns the affected rows and the
id the cluster assigned (``LAST_INSERT_ID()`` on the replica too); ``BEGIN; INSERT; UPDATE; COMMIT`` is
one transaction (nothing visible on the cluster before COMMIT, all of it after; ROLLBACK leaves nothing);
a duplicate key arrives as 1062; LOAD DATA LOCAL goes with its file and a prepared INSERT with its
parameters; with ``marmot_wait_for_replication = ON`` the next read sees the session's write although
the replica's following is held back (failpoint ``replica_before_pull``), while a session without it
does not. The ``forward`` RPC driven directly: a retried request id is answered from memory and applied
once cluster-wide; through a fault proxy, a forwarded INSERT whose answer is lost (connection reset while
node 1 holds it in 2PC) is retried with the same id and applied once. A client that goes away
mid-transaction leaves nothing; with the followed node SIGKILLed, writes go to another node. The other
replica refuses writes with 1290.
"""

from __future__ import annotations

import signal
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from marmot.cluster.rpc import ClientPool
from marmot.replica.forward_protocol import METHOD, ForwardAnswer, ForwardRequest
from marmot.testing.admin import SECRET, admin_json
from marmot.testing.faultproxy import ProxyPool
from marmot.testing.nodes import NodeProcess, free_port
from marmot.testing.replicas import FAST_REPLICA, make_replica
from tests.support import connect, replicated_cluster, run, run_async, wait_for, wait_until_equal

FORWARDING = FAST_REPLICA + "forward_writes = true\nforward_write_timeout_sec = 20\n"


class Setup:
    def __init__(
        self, nodes: list[NodeProcess], fwd: NodeProcess, ro: NodeProcess, failpoints: Path, tmp: Path
    ) -> None:
        self.nodes, self.fwd, self.ro, self.failpoints, self.tmp = nodes, fwd, ro, failpoints, tmp
        self.node1_failpoints = tmp / "node1-failpoints"  # MARMOT_FAILPOINTS_FILE of cluster node 1


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("forward")
    (tmp / "node1-failpoints").write_text("")
    with replicated_cluster(
        tmp / "cluster", env={1: {"MARMOT_FAILPOINTS_FILE": str(tmp / "node1-failpoints")}}
    ) as nodes:
        n1, n2, n3 = nodes
        run(
            n1,
            "CREATE DATABASE fwd",
            "CREATE TABLE fwd.items (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(20) UNIQUE, n INT DEFAULT 0)",
        )
        failpoints = tmp / "replica-failpoints"
        failpoints.write_text("")
        fwd = make_replica(tmp / "fwd-replica", [n2], node_id=61, replica_extra=FORWARDING)
        fwd.env = {"MARMOT_FAILPOINTS_FILE": str(failpoints)}
        ro = make_replica(tmp / "ro-replica", [n3], node_id=62)
        try:
            fwd.start()
            ro.start()
            for replica in (fwd, ro):
                wait_for(
                    lambda r=replica: admin_json(r, "/admin/replica/status")["state"] == "STREAMING",
                    30,
                    "the replica to stream",
                )
                wait_for(
                    lambda r=replica: run(r, "SELECT COUNT(*) FROM items", db="fwd") == ((0,),), 30, "items"
                )
            yield Setup(nodes, fwd, ro, failpoints, tmp)
        finally:
            fwd.stop()
            ro.stop()


def _cluster_rows(setup: Setup, sql: str) -> Any:
    return run(setup.nodes[0], sql, db="fwd")


def test_autocommit_insert_answers_as_if_local(setup: Setup) -> None:
    conn = connect(setup.fwd, "fwd")
    try:
        cur = conn.cursor()
        assert cur.execute("INSERT INTO items (v) VALUES ('auto')") == 1  # affected rows
        new_id = cur.lastrowid  # the OK packet's insert id
        assert new_id and new_id > 0
        cur.execute("SELECT LAST_INSERT_ID()")  # a local read on the replica
        assert cur.fetchall() == ((new_id,),)
        cur.execute("SELECT @@marmot_last_commit_ts")
        assert cur.fetchall()[0][0].count(".") == 2  # the forwarded commit's causal token
    finally:
        conn.close()
    # the cluster assigned that id: every node has the row under it, and so does the replica in time
    wait_until_equal(setup.nodes, "SELECT id FROM fwd.items WHERE v = 'auto'", expected=((new_id,),))
    wait_for(
        lambda: run(setup.fwd, "SELECT id FROM items WHERE v = 'auto'", db="fwd") == ((new_id,),), 20, "row"
    )


def test_transaction_is_forwarded_as_one(setup: Setup) -> None:
    conn = connect(setup.fwd, "fwd")
    try:
        cur = conn.cursor()
        cur.execute("BEGIN")
        assert cur.execute("INSERT INTO items (v, n) VALUES ('txn', 1)") == 1
        txn_id = cur.lastrowid
        assert cur.execute("UPDATE items SET n = n + 41 WHERE v = 'txn'") == 1
        cur.execute("SELECT n FROM items WHERE v = 'txn'")  # inside the transaction: sees its own writes
        assert cur.fetchall() == ((42,),)
        assert _cluster_rows(setup, "SELECT COUNT(*) FROM items WHERE v = 'txn'") == ((0,),)  # not yet
        cur.execute("COMMIT")
        wait_until_equal(setup.nodes, "SELECT id, n FROM fwd.items WHERE v = 'txn'", expected=((txn_id, 42),))

        cur.execute("BEGIN")
        cur.execute("INSERT INTO items (v) VALUES ('undone')")
        cur.execute("UPDATE items SET n = 0 WHERE v = 'txn'")
        cur.execute("ROLLBACK")
        cur.execute("SELECT 1")  # the session goes on
    finally:
        conn.close()
    time.sleep(0.5)
    assert _cluster_rows(setup, "SELECT COUNT(*) FROM items WHERE v = 'undone'") == ((0,),)
    assert _cluster_rows(setup, "SELECT n FROM items WHERE v = 'txn'") == ((42,),)


def test_load_data_local_is_forwarded_with_its_file(setup: Setup, tmp_path: Path) -> None:
    data = tmp_path / "items.tsv"
    data.write_text("loaded1\t7\nloaded2\t8\n")
    conn = connect(setup.fwd, "fwd")
    try:
        cur = conn.cursor()
        assert cur.execute(f"LOAD DATA LOCAL INFILE '{data}' INTO TABLE items (v, n)") == 2
        cur.execute("SELECT @@read_only")  # a forwarding replica takes writes
        assert cur.fetchall() == ((0,),)
    finally:
        conn.close()
    wait_until_equal(
        setup.nodes,
        "SELECT v, n FROM fwd.items WHERE v LIKE 'loaded%' ORDER BY v",
        expected=(("loaded1", 7), ("loaded2", 8)),
    )


def test_prepared_statement_is_forwarded_with_its_parameters(setup: Setup) -> None:
    connector = pytest.importorskip("mysql.connector", reason="mysql-connector-python is not installed")
    cnx = connector.connect(
        host="127.0.0.1", port=setup.fwd.mysql_port, user="root", password="", database="fwd", autocommit=True
    )
    try:
        cur = cnx.cursor(prepared=True)  # COM_STMT_PREPARE / COM_STMT_EXECUTE with binary parameters
        cur.execute("INSERT INTO items (v, n) VALUES (?, ?)", ("prepared", 77))
        assert cur.rowcount == 1
        new_id = cur.lastrowid
    finally:
        cnx.close()
    wait_until_equal(
        setup.nodes, "SELECT id, n FROM fwd.items WHERE v = 'prepared'", expected=((new_id, 77),)
    )


def test_duplicate_key_arrives_as_1062(setup: Setup) -> None:
    run(setup.nodes[0], "INSERT INTO items (v) VALUES ('dup')", db="fwd")
    conn = connect(setup.fwd, "fwd")
    try:
        with pytest.raises(pymysql.err.IntegrityError) as err:
            conn.cursor().execute("INSERT INTO items (v) VALUES ('dup')")
        assert err.value.args[0] == 1062 and "Duplicate entry" in err.value.args[1]
        conn.cursor().execute("SELECT 1")  # the connection stays usable
    finally:
        conn.close()


def _forward(node: NodeProcess, *requests: ForwardRequest) -> list[ForwardAnswer]:
    """Send ``requests`` one after the other to ``node``'s forward service, as a replica would."""

    async def main() -> list[ForwardAnswer]:
        pool = ClientPool(secret=SECRET, node_id=99)
        try:
            client = pool.get(f"127.0.0.1:{node.grpc_port}")
            out = []
            for req in requests:
                msg: Any = await client.call(METHOD, req.to_wire(), 30.0)
                out.append(ForwardAnswer.from_wire(msg))
            return out
        finally:
            await pool.close()

    return run_async(main(), timeout=60)


def test_retried_request_id_applies_once(setup: Setup) -> None:
    n1, n2, n3 = setup.nodes
    insert = ForwardRequest("rpc-once-1", 1, "INSERT INTO items (v) VALUES ('once')", database="fwd")
    first, retried = _forward(n2, insert, insert)
    assert first.error is None, first.error
    assert first.result is not None and first.result.affected_rows == 1  # type: ignore[union-attr]
    assert retried == first  # the kept answer, not a second run
    new_id = first.result.last_insert_id  # type: ignore[union-attr]
    assert new_id > 0 and first.session_last_insert_id == new_id
    wait_until_equal(setup.nodes, "SELECT id FROM fwd.items WHERE v = 'once'", expected=((new_id,),))
    assert first.commit_ts is not None
    token = f"{first.commit_ts.wall_ns}.{first.commit_ts.logical}.{first.commit_ts.node_id}"
    conn = connect(n3, "fwd")
    try:
        cur = conn.cursor()
        cur.execute("SET marmot_read_after = %s", (token,))  # a real causal token of the cluster
        cur.execute("SELECT COUNT(*) FROM items WHERE v = 'once'")
        assert cur.fetchall() == ((1,),)
    finally:
        conn.close()


def _metric(node: NodeProcess, name: str) -> float:
    """The value of the ``name`` series in ``node``'s /metrics (one series: labelled by node_id only)."""
    req = urllib.request.Request(
        f"http://127.0.0.1:{node.grpc_port}/metrics", headers={"X-Marmot-Secret": SECRET}
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        text = resp.read().decode()
    for line in text.splitlines():
        if line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def test_forwarding_is_counted(setup: Setup) -> None:
    assert _metric(setup.nodes[1], "marmot_forward_replayed_total") >= 1  # the retried request id above
    assert _metric(setup.nodes[1], "marmot_forward_statements_total") >= 3
    assert _metric(setup.fwd, "marmot_replica_forwarded_statements_total") >= 3


def test_lost_answer_is_retried_with_the_same_id_and_applied_once(setup: Setup) -> None:
    """A third replica reaches node 1 through a fault proxy; the forwarded INSERT is held in node 1's 2PC
    (failpoint) while the proxy resets the connection: the replica sends the same request id again and
    gets the first run's answer — one row, counted as a replay on node 1 and a retry on the replica."""
    n1 = setup.nodes[0]
    proxy = ProxyPool()
    port = free_port()
    proxy.add(99, 1, port, n1.grpc_port)
    flaky = make_replica(setup.tmp / "flaky-replica", [], node_id=63, replica_extra=FORWARDING)
    flaky.config_path.write_text(
        flaky.config_path.read_text().replace(
            "follow_addresses = []", f'follow_addresses = ["127.0.0.1:{port}"]'
        )
    )
    try:
        flaky.start()
        wait_for(lambda: admin_json(flaky, "/admin/replica/status")["state"] == "STREAMING", 30, "STREAMING")
        replayed = _metric(n1, "marmot_forward_replayed_total")
        setup.node1_failpoints.write_text("coordinator_after_prepare=sleep:2")
        time.sleep(0.5)  # node 1 has read it
        got: dict[str, Any] = {}

        def insert() -> None:
            conn = connect(flaky, "fwd", read_timeout=60)
            try:
                got["affected"] = conn.cursor().execute("INSERT INTO items (v) VALUES ('retried')")
            except Exception as err:  # reported by the assertion below
                got["error"] = err
            finally:
                conn.close()

        t = threading.Thread(target=insert)
        t.start()
        wait_for(lambda: _metric(n1, "marmot_forward_sessions") >= 1, 10, "the request to reach node 1")
        time.sleep(0.3)
        proxy.reset(99, 1)  # the answer is lost: RST both ways while node 1 holds the write
        t.join(60)
        assert got == {"affected": 1}, got
        assert _metric(n1, "marmot_forward_replayed_total") >= replayed + 1
        assert _metric(flaky, "marmot_replica_forward_retries_total") >= 1
        wait_until_equal(setup.nodes, "SELECT COUNT(*) FROM fwd.items WHERE v = 'retried'", expected=((1,),))
    finally:
        setup.node1_failpoints.write_text("")
        flaky.stop()
        proxy.close()


def test_wait_for_replication_reads_the_session_own_write(setup: Setup) -> None:
    setup.failpoints.write_text("replica_before_pull=sleep:4*")  # every pull of the replica waits 4 s
    time.sleep(1.0)  # the pulls under way before it was armed have finished
    plain, waiting = connect(setup.fwd, "fwd"), connect(setup.fwd, "fwd")
    try:
        cur = plain.cursor()
        cur.execute("INSERT INTO items (v) VALUES ('unseen')")
        cur.execute("SELECT COUNT(*) FROM items WHERE v = 'unseen'")
        assert cur.fetchall() == ((0,),)  # without the wait: the replica has not applied it yet

        cur = waiting.cursor()
        cur.execute("SET marmot_wait_for_replication = ON")
        cur.execute("INSERT INTO items (v) VALUES ('seen')")
        started = time.monotonic()
        cur.execute("SELECT COUNT(*) FROM items WHERE v = 'seen'")
        assert cur.fetchall() == ((1,),)  # the read waited until the replica applied the commit
        assert time.monotonic() - started > 0.5  # it did wait (the pulls are held 4 s)

        cur.execute("BEGIN")  # a forwarded transaction, then a read of its outcome
        cur.execute("INSERT INTO items (v, n) VALUES ('seen-txn', 1)")
        cur.execute("UPDATE items SET n = 2 WHERE v IN ('seen', 'seen-txn')")
        cur.execute("COMMIT")
        cur.execute("SELECT v, n FROM items WHERE v LIKE 'seen%' ORDER BY v")
        assert cur.fetchall() == (("seen", 2), ("seen-txn", 2))

        # CREATE DATABASE is logged in no database's commit log: the next read has nothing to wait for
        cur.execute("CREATE DATABASE fwd_made_here")
        started = time.monotonic()
        cur.execute("SELECT 1")
        assert time.monotonic() - started < 10  # not the 20 s forward_write_timeout_sec and a 1105
    finally:
        setup.failpoints.write_text("")
        plain.close()
        waiting.close()


def test_without_forward_writes_writes_get_1290(setup: Setup) -> None:
    conn = connect(setup.ro, "fwd")
    try:
        for sql in ("INSERT INTO items (v) VALUES ('refused')", "CREATE TABLE nope (id INT PRIMARY KEY)"):
            with pytest.raises(pymysql.err.MySQLError) as err:
                conn.cursor().execute(sql)
            assert err.value.args[0] == 1290 and "--read-only" in err.value.args[1], sql
        cur = conn.cursor()
        cur.execute("SELECT @@read_only")
        assert cur.fetchall() == ((1,),)
        cur.execute("SET marmot_wait_for_replication = ON")  # accepted: there is nothing to wait for
        cur.execute("SELECT COUNT(*) FROM items WHERE v = 'auto'")
    finally:
        conn.close()
    assert _cluster_rows(setup, "SELECT COUNT(*) FROM items WHERE v = 'refused'") == ((0,),)


def _forward_sessions_on(node: NodeProcess, replica_node_id: int) -> int:
    rows = run(node, "SHOW PROCESSLIST")
    return sum(1 for r in rows if r[2] == f"replica:{replica_node_id}")


def test_a_client_gone_mid_transaction_leaves_nothing(setup: Setup) -> None:
    n2 = setup.nodes[1]  # the node the replica follows: forwarded writes go there first
    conn = connect(setup.fwd, "fwd")
    cur = conn.cursor()
    cur.execute("BEGIN")
    cur.execute("INSERT INTO items (v) VALUES ('abandoned')")
    assert _forward_sessions_on(n2, 61) >= 1  # its forward session holds the open transaction
    conn.close()  # the client goes away: the replica closes the forward session, which rolls back
    wait_for(lambda: _forward_sessions_on(n2, 61) == 0, 20, "the forward sessions to close")
    assert _cluster_rows(setup, "SELECT COUNT(*) FROM items WHERE v = 'abandoned'") == ((0,),)


def test_forwarding_moves_on_when_the_followed_node_dies(setup: Setup) -> None:
    """Last in the module: it SIGKILLs node 2 (the replica's source and first forwarding target)."""
    n1, n2, n3 = setup.nodes
    n2.stop(signal.SIGKILL)
    time.sleep(1.0)
    conn = connect(setup.fwd, "fwd")
    try:
        cur = conn.cursor()
        assert cur.execute("INSERT INTO items (v) VALUES ('after-kill')") == 1  # never reached node 2
    finally:
        conn.close()
    wait_until_equal([n1, n3], "SELECT COUNT(*) FROM fwd.items WHERE v = 'after-kill'", expected=((1,),))
