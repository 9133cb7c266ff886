"""Consistency levels, per-statement hints, conflicts at COMMIT, DDL serialisation and schema versions on a
3-node cluster of real processes (issue "Replicated writes", points 2, 4 and 6)."""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.request

import pymysql
import pytest

from marmot.testing import NodeProcess, admin_json, member_states
from tests.support import cluster_fixture, connect, run, wait_until_equal

cluster = cluster_fixture()


def admin_members(node: NodeProcess) -> list[dict]:
    return admin_json(node, "/admin/cluster/members")["members"]


def metrics(node: NodeProcess) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{node.grpc_port}/metrics", timeout=5) as resp:
        return resp.read().decode()


def test_interactive_conflict_at_commit_applies_nothing(cluster):
    """Two transactions on different nodes change the same row: the second to COMMIT gets 1213 and none of
    its writes (not even to other rows) appear anywhere."""
    n1, n2, n3 = cluster
    run(n1, "CREATE TABLE cc (id INT PRIMARY KEY, v INT)", "INSERT INTO cc VALUES (1, 0), (2, 0)")
    wait_until_equal(cluster, "SELECT * FROM cc ORDER BY id", expected=((1, 0), (2, 0)))
    a, b = connect(n1), connect(n2)
    ca, cb = a.cursor(), b.cursor()
    ca.execute("BEGIN")
    cb.execute("BEGIN")
    ca.execute("UPDATE cc SET v = 10 WHERE id = 1")
    cb.execute("UPDATE cc SET v = 20 WHERE id = 1")
    cb.execute("UPDATE cc SET v = 21 WHERE id = 2")
    cb.execute("SELECT v FROM cc ORDER BY id")
    assert cb.fetchall() == ((20,), (21,))  # reads inside see the transaction's own writes
    ca.execute("COMMIT")
    with pytest.raises(pymysql.err.OperationalError) as ei:
        cb.execute("COMMIT")
    assert ei.value.args[0] == 1213
    a.close()
    b.close()
    wait_until_equal(cluster, "SELECT * FROM cc ORDER BY id", expected=((1, 10), (2, 0)))


def test_consistency_hint_and_session_level(cluster):
    n1, n2, n3 = cluster
    run(n1, "CREATE TABLE lv (id INT PRIMARY KEY, v VARCHAR(10))")
    wait_until_equal(cluster, "SHOW TABLES LIKE 'lv'", expected=(("lv",),))
    run(n2, "INSERT /*+ MARMOT_CONSISTENCY(ALL) */ INTO lv VALUES (1, 'all')")
    # ALL: every node confirmed the COMMIT before the OK, so a single read on each node sees it
    for n in cluster:
        assert run(n, "SELECT v FROM lv WHERE id = 1") == (("all",),)
    run(n3, "SET SESSION marmot_write_consistency = 'ONE'", "INSERT INTO lv VALUES (2, 'one')")
    wait_until_equal(cluster, "SELECT * FROM lv ORDER BY id", expected=((1, "all"), (2, "one")))
    with pytest.raises(pymysql.err.OperationalError) as ei:
        run(n1, "SET marmot_write_consistency = 'SOMETIMES'")
    assert ei.value.args[0] == 1231


def test_concurrent_ddl_from_two_nodes_is_serialised(cluster):
    """Two nodes add different columns to one table at the same moment: both succeed (one waits for the
    other's DDL intent), and every node ends with the same schema."""
    n1, n2, n3 = cluster
    run(n1, "CREATE TABLE dd (id INT PRIMARY KEY)")
    wait_until_equal(cluster, "SHOW TABLES LIKE 'dd'", expected=(("dd",),))
    errors: list[Exception] = []

    def alter(node: NodeProcess, col: str) -> None:
        try:
            for i in range(5):
                run(node, f"ALTER TABLE dd ADD COLUMN {col}{i} INT")
        except Exception as e:  # collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=alter, args=(n, c)) for n, c in ((n1, "a"), (n2, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    cols = wait_until_equal(
        cluster, "SELECT COUNT(*) FROM information_schema.columns WHERE table_name = 'dd'"
    )
    assert cols[0] == ((11,),)


def test_schema_versions_gossiped_and_metrics(cluster):
    n1, n2, n3 = cluster
    run(n1, "CREATE TABLE sv (id INT PRIMARY KEY)")

    def versions(node: NodeProcess) -> set:
        return {json.dumps(m["extra"].get("schema_versions"), sort_keys=True) for m in admin_members(node)}

    deadline = time.monotonic() + 10
    while len(versions(n2)) != 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    seen = versions(n2)
    assert len(seen) == 1, seen  # every member gossips the same versions
    assert json.loads(seen.pop())["marmot"] >= 1
    text = metrics(n1)
    assert 'marmot_txn_total{node_id="1",result="committed",type="ddl"}' in text
    assert "marmot_twophase_prepare_seconds_count" in text


def test_ddl_between_statements_of_a_transaction_gives_1213(cluster):
    """A transaction whose table changed schema under it (DDL from another node, applied here between its
    statements) cannot commit images computed against the old schema: its next statement gets 1213 and
    nothing of it is applied; a retry works."""
    n1, n2, n3 = cluster
    run(n1, "CREATE TABLE mid (id INT PRIMARY KEY)")
    wait_until_equal(cluster, "SHOW TABLES LIKE 'mid'", expected=(("mid",),))
    c = connect(n1)
    cur = c.cursor()
    cur.execute("BEGIN")
    cur.execute("INSERT INTO mid VALUES (1)")
    run(n2, "ALTER TABLE mid ADD COLUMN extra INT DEFAULT 7")
    wait_until_equal(
        cluster, "SELECT COUNT(*) FROM information_schema.columns WHERE table_name = 'mid'", expected=((2,),)
    )
    with pytest.raises(pymysql.err.OperationalError) as ei:
        cur.execute("INSERT INTO mid (id) VALUES (2)")
    assert ei.value.args[0] == 1213
    cur.execute("BEGIN")
    cur.execute("INSERT INTO mid (id) VALUES (3)")
    cur.execute("COMMIT")
    c.close()
    wait_until_equal(cluster, "SELECT * FROM mid ORDER BY id", expected=((3, 7),))


def test_all_refused_with_a_node_down_quorum_still_works(cluster):
    """Last test of the module: it kills node 3. ALL needs every member; QUORUM needs two of three."""
    n1, n2, n3 = cluster
    run(n1, "CREATE TABLE down (id INT PRIMARY KEY)")
    wait_until_equal(cluster, "SHOW TABLES LIKE 'down'", expected=(("down",),))
    n3.stop(signal.SIGKILL)
    deadline = time.monotonic() + 15
    while member_states(n1).get(3) == "ALIVE" and time.monotonic() < deadline:
        time.sleep(0.1)
    with pytest.raises(pymysql.err.OperationalError) as ei:
        run(n1, "INSERT /*+ MARMOT_CONSISTENCY(ALL) */ INTO down VALUES (1)")
    assert ei.value.args[0] == 1105 and "ALL" in ei.value.args[1]
    run(n1, "INSERT INTO down VALUES (2)")
    wait_until_equal([n1, n2], "SELECT * FROM down", expected=((2,),))
