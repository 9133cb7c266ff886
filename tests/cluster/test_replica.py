"""Read-only replicas (issue #14): a replica process following a 3-node cluster, talked to with real MySQL
clients and the admin API. One cluster and two replicas (one of every database, one of ``shop_*`` only)
for the whole module: bootstrap, streaming lag, new databases, the glob filter, the read-only refusal,
"not a member", the cluster's list of replicas, and ``marmot verify`` against a replica's address."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from marmot.testing.admin import SECRET, admin_json
from marmot.testing.nodes import NodeProcess
from marmot.testing.replicas import make_replica
from tests.support import connect, marmot_verify, replicated_cluster, run, wait_for

READ_ONLY = "The MySQL server is running with the --read-only option so it cannot execute this statement"


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[list[NodeProcess], NodeProcess, NodeProcess]]:
    """3 nodes with data written before any replica exists; ``full`` follows every database through node
    1 only (it learns the others), ``shop`` follows ``shop_*`` through node 2."""
    tmp = tmp_path_factory.mktemp("replica")
    with replicated_cluster(tmp / "cluster", 3) as nodes:
        run(
            nodes[0],
            "CREATE DATABASE shop_eu",
            "CREATE TABLE shop_eu.orders (id INT PRIMARY KEY, item VARCHAR(40), qty INT)",
            *(f"INSERT INTO shop_eu.orders VALUES ({i}, 'item{i}', {i % 7})" for i in range(200)),
            "CREATE DATABASE billing",
            "CREATE TABLE billing.invoices (id INT PRIMARY KEY, total INT)",
            "INSERT INTO billing.invoices VALUES (1, 10), (2, 20)",
        )
        full = make_replica(tmp / "full", nodes[:1], node_id=50)
        shop = make_replica(tmp / "shop", nodes[1:2], node_id=51, databases=["shop_*"])
        try:
            full.start()
            shop.start()
            yield nodes, full, shop
        finally:
            full.stop()
            shop.stop()


def count(node: NodeProcess, sql: str, db: str | None = None) -> object:
    try:
        rows = run(node, sql, db=db)
    except pymysql.err.MySQLError:
        return None
    return rows[0][0] if rows else None


def test_bootstrap_then_streaming_with_low_lag(
    setup: tuple[list[NodeProcess], NodeProcess, NodeProcess],
) -> None:
    nodes, full, _shop = setup
    wait_for(lambda: count(full, "SELECT COUNT(*) FROM shop_eu.orders") == 200, 30, "the replica's bootstrap")
    wait_for(lambda: admin_json(full, "/admin/replica/status")["state"] == "STREAMING", 30, "STREAMING")
    # streaming: a write on any node (not the one followed) shows on the replica well under a second later
    writer, reader = connect(nodes[2]), connect(full)
    lags = []
    try:
        for i in range(5):
            writer.cursor().execute(f"INSERT INTO shop_eu.orders VALUES ({1000 + i}, 'new', 1)")
            t0 = time.monotonic()
            while time.monotonic() - t0 < 10:
                cur = reader.cursor()
                cur.execute(f"SELECT COUNT(*) FROM shop_eu.orders WHERE id = {1000 + i}")
                if cur.fetchone()[0] == 1:
                    break
                time.sleep(0.005)
            lags.append(time.monotonic() - t0)
    finally:
        writer.close()
        reader.close()
    assert sorted(lags)[len(lags) // 2] < 1.0, lags  # median: generous for a loaded machine
    status = admin_json(full, "/admin/replica/status")
    assert status["source"]["node_id"] == 1
    assert {n["node_id"] for n in status["cluster_nodes"]} == {1, 2, 3}
    dbs = {d["database"]: d for d in status["databases"]}
    assert {"shop_eu", "billing"} <= set(dbs)
    assert status["pull"]["snapshots"] >= 1  # an empty copy bootstraps by snapshot


def test_writes_and_ddl_are_refused_with_1290(
    setup: tuple[list[NodeProcess], NodeProcess, NodeProcess],
) -> None:
    _nodes, full, _shop = setup
    wait_for(lambda: count(full, "SELECT COUNT(*) FROM billing.invoices") == 2, 30, "billing on the replica")
    conn = connect(full, "billing")
    try:
        for sql in (
            "INSERT INTO invoices VALUES (3, 30)",
            "UPDATE invoices SET total = 0",
            "DELETE FROM invoices",
            "REPLACE INTO invoices VALUES (1, 1)",
            "CREATE TABLE t2 (id INT PRIMARY KEY)",
            "ALTER TABLE invoices ADD COLUMN x INT",
            "DROP TABLE invoices",
            "TRUNCATE TABLE invoices",
            "CREATE DATABASE other",
            "DROP DATABASE billing",
            "LOAD DATA INFILE '/nonexistent.csv' INTO TABLE invoices",
        ):
            with pytest.raises(pymysql.err.MySQLError) as err:
                conn.cursor().execute(sql)
            assert err.value.args == (1290, READ_ONLY), sql
        # inside a transaction too, and reads still work afterwards
        cur = conn.cursor()
        cur.execute("BEGIN")
        with pytest.raises(pymysql.err.MySQLError) as err:
            cur.execute("INSERT INTO invoices VALUES (9, 9)")
        assert err.value.args[0] == 1290
        cur.execute("ROLLBACK")
        cur.execute("SELECT SUM(total) FROM invoices")
        assert cur.fetchone()[0] == 30
        cur.execute("SELECT @@read_only, @@global.read_only")
        assert cur.fetchone() == (1, 1)
    finally:
        conn.close()
    # the SQLSTATE a MySQL client prints
    out = subprocess.run(
        ["mysql", "-h127.0.0.1", f"-P{full.mysql_port}", "-uroot", "billing", "-e", "DELETE FROM invoices"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode != 0 and "ERROR 1290 (HY000)" in out.stderr and READ_ONLY in out.stderr, out.stderr
    assert count(full, "SELECT COUNT(*) FROM billing.invoices") == 2


def test_new_database_is_discovered_and_glob_filter_applies(
    setup: tuple[list[NodeProcess], NodeProcess, NodeProcess],
) -> None:
    nodes, full, shop = setup
    run(
        nodes[1],
        "CREATE DATABASE shop_us",
        "CREATE TABLE shop_us.orders (id INT PRIMARY KEY, item VARCHAR(40))",
        "INSERT INTO shop_us.orders VALUES (1, 'a'), (2, 'b'), (3, 'c')",
    )
    for replica in (full, shop):
        wait_for(
            lambda r=replica: count(r, "SELECT COUNT(*) FROM shop_us.orders") == 3, 30, "shop_us discovered"
        )
    wait_for(
        lambda: (
            count(shop, "SELECT COUNT(*) FROM shop_eu.orders")
            == count(nodes[0], "SELECT COUNT(*) FROM shop_eu.orders")
        ),
        30,
        "shop_eu",
    )
    # the filtered replica never copied billing: no such database there
    with pytest.raises(pymysql.err.MySQLError) as err:
        run(shop, "SELECT COUNT(*) FROM billing.invoices", db=None)
    assert err.value.args[0] in (1049, 1146)
    listed = {d["name"] for d in admin_json(shop, "/admin/databases")["databases"]}
    assert listed == {"shop_eu", "shop_us"}
    status = admin_json(shop, "/admin/replica/status")
    assert status["replicate_databases"] == ["shop_*"] and status["source"]["node_id"] == 2


def test_a_replica_is_no_member_and_the_cluster_lists_it(
    setup: tuple[list[NodeProcess], NodeProcess, NodeProcess],
) -> None:
    nodes, full, shop = setup
    for node in nodes:
        members = admin_json(node, "/admin/cluster/members")
        assert {m["node_id"] for m in members["members"]} == {1, 2, 3}
        assert (members["total"], members["quorum_size"]) == (3, 2)  # two replicas count for nothing

    # every node hears every replica's heartbeat, with its lag
    def listed() -> set[str]:
        return {
            r["address"]
            for r in admin_json(nodes[2], "/admin/cluster/replicas")["replicas"]
            if r["state"] != "GONE"
        }

    wait_for(
        lambda: listed() == {f"127.0.0.1:{full.grpc_port}", f"127.0.0.1:{shop.grpc_port}"},
        30,
        "replicas listed",
    )
    entry = next(r for r in admin_json(nodes[0], "/admin/cluster/replicas")["replicas"] if r["node_id"] == 50)
    assert entry["mysql_address"] == f"127.0.0.1:{full.mysql_port}" and entry["source_node"] == 1
    assert "shop_eu" in entry["databases"] and entry["databases"]["shop_eu"]["behind_txns"] >= 0
    metrics = _metrics(nodes[0])
    assert 'marmot_replicas{node_id="1"} 2.0' in metrics
    assert "marmot_replica_lag_seconds{" in metrics and "marmot_replica_lag_transactions{" in metrics
    replica_metrics = _metrics(full)
    assert 'marmot_replica_state{node_id="50",state="STREAMING"} 1.0' in replica_metrics
    # the health check counts the three members only
    health = admin_json(nodes[0], "/admin/cluster/health")
    assert (health["total"], health["alive"], health["ok"]) == (3, 3, True)


def _metrics(node: NodeProcess) -> str:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{node.grpc_port}/metrics", timeout=5) as resp:
        return resp.read().decode()


def test_marmot_verify_accepts_a_replica_address(
    setup: tuple[list[NodeProcess], NodeProcess, NodeProcess],
) -> None:
    nodes, full, shop = setup
    run(nodes[0], "INSERT INTO shop_eu.orders VALUES (5000, 'last', 1)")
    wait_for(lambda: count(full, "SELECT COUNT(*) FROM shop_eu.orders WHERE id = 5000") == 1, 30, "last row")
    for replica in (full, shop):
        out = marmot_verify(replica)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "REPLICA" in out.stdout.upper() and "DIFFER" not in out.stdout, out.stdout
    # a replica that differs is reported: a verify with the secret of another cluster is refused
    out = subprocess.run(
        [*_verify_cmd(full), "--secret", "wrong"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2, out.stdout + out.stderr


def _verify_cmd(node: NodeProcess) -> list[str]:
    import sys

    return [
        sys.executable,
        "-m",
        "marmot.cli",
        "verify",
        "--address",
        f"127.0.0.1:{node.grpc_port}",
        "--settle",
        "1",
    ]


def test_secret_mismatch_keeps_a_replica_out(
    tmp_path: Path, setup: tuple[list[NodeProcess], NodeProcess, NodeProcess]
) -> None:
    nodes, _full, _shop = setup
    rogue = make_replica(tmp_path / "rogue", nodes[:1], node_id=52, secret="not-the-cluster-secret")
    rogue.start()
    try:
        time.sleep(2)
        status = admin_json(rogue, "/admin/replica/status", secret="not-the-cluster-secret")
        assert status["state"] in ("INITIALIZING", "STALE") and status["source"] is None
        assert status["databases"] == []
        assert all(r["node_id"] != 52 for r in admin_json(nodes[0], "/admin/cluster/replicas")["replicas"])
    finally:
        rogue.stop()
    assert SECRET != "not-the-cluster-secret"


def test_ddl_reaches_a_session_already_open_on_the_replica(
    setup: tuple[list[NodeProcess], NodeProcess, NodeProcess],
) -> None:
    """DDL arrives through the apply path like rows do; a replica session that already read the table
    (its plans cached) sees the new column and the new table."""
    nodes, full, _shop = setup
    reader = connect(full, "shop_eu")
    try:
        cur = reader.cursor()
        cur.execute("SELECT COUNT(*) FROM orders")
        run(
            nodes[1],
            "ALTER TABLE shop_eu.orders ADD COLUMN note VARCHAR(20) DEFAULT 'none'",
            "UPDATE shop_eu.orders SET note = 'vip' WHERE id = 7",
            "CREATE TABLE shop_eu.customers (id INT PRIMARY KEY, name TEXT)",
            "INSERT INTO shop_eu.customers VALUES (1, 'ada')",
        )

        def seen() -> object:
            cur.execute("SELECT o.note, c.name FROM orders o JOIN customers c ON c.id = 1 WHERE o.id = 7")
            return cur.fetchall()

        assert wait_for(seen, 30, "the DDL on the replica", ignore=(pymysql.err.MySQLError,)) == (
            ("vip", "ada"),
        )
    finally:
        reader.close()


def test_readers_never_see_half_a_transaction(
    setup: tuple[list[NodeProcess], NodeProcess, NodeProcess],
) -> None:
    """Transfers between accounts, each one transaction of two UPDATEs on a cluster node; a reader on the
    replica sums the balances over and over: every sum is the total (a transaction is applied whole)."""
    import threading

    nodes, full, _shop = setup
    run(
        nodes[0],
        "CREATE DATABASE bank",
        "CREATE TABLE bank.accounts (id INT PRIMARY KEY, balance INT)",
        "INSERT INTO bank.accounts VALUES " + ", ".join(f"({i}, 100)" for i in range(10)),
    )
    wait_for(lambda: count(full, "SELECT SUM(balance) FROM bank.accounts") == 1000, 30, "bank on the replica")
    stop = time.monotonic() + 5
    done = []

    def transfers() -> None:
        conn = connect(nodes[0], "bank")
        cur = conn.cursor()
        i = 0
        while time.monotonic() < stop:
            a, b = i % 10, (i * 7 + 3) % 10
            if a != b:
                cur.execute("BEGIN")
                cur.execute(f"UPDATE accounts SET balance = balance - 1 WHERE id = {a}")
                cur.execute(f"UPDATE accounts SET balance = balance + 1 WHERE id = {b}")
                cur.execute("COMMIT")
                done.append(i)
            i += 1
        conn.close()

    writer = threading.Thread(target=transfers)
    writer.start()
    sums = []
    reader = connect(full, "bank")
    try:
        cur = reader.cursor()
        while writer.is_alive():
            cur.execute("SELECT SUM(balance), COUNT(*) FROM accounts")
            sums.append(cur.fetchone())
    finally:
        writer.join()
        reader.close()
    assert len(done) > 20 and len(sums) > 50, (len(done), len(sums))
    assert set(sums) == {(1000, 10)}, sorted(set(sums))
    # and the replica ends with the cluster's balances
    want = run(nodes[0], "SELECT id, balance FROM accounts ORDER BY id", db="bank")
    wait_for(
        lambda: run(full, "SELECT id, balance FROM accounts ORDER BY id", db="bank") == want, 30, "balances"
    )
