"""Upstream's per-database admin routes on a real 3-node cluster: transactions, intents, DDL lock, schema
versions, replication states, and the operator's abort of a stuck transaction (issue #18 point 2).

A transaction is made stuck for real: node 1 coordinates an UPDATE and pauses between PREPARE and COMMIT
(a failpoint armed through a file while it runs), so nodes 2 and 3 hold it prepared with an intent on the
row. The routes must show it; the abort must be refused while its coordinator still runs it and succeed,
on every node, once the coordinator is SIGKILLed — after which the row takes writes again. The heartbeat
timeout is long, so it is the abort, not the resolver, that unblocks the row.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from marmot.testing import LocalCluster, NodeProcess, admin_call, admin_json
from tests.support import connect, wait_for

DB = "marmot"
META = f"/admin/{DB}/metadata"


def query(node: NodeProcess, sql: str) -> tuple:
    c = connect(node, read_timeout=60)
    try:
        cur = c.cursor()
        cur.execute(sql)
        return tuple(cur.fetchall())
    finally:
        c.close()


@pytest.fixture(scope="module")
def stuck(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[NodeProcess], list[Path]]]:
    """Three nodes; nodes 1 and 2 follow a failpoints file each (``files[0]``, ``files[1]``)."""
    tmp = tmp_path_factory.mktemp("admin-txn")
    files = [tmp / "failpoints-1", tmp / "failpoints-2"]
    for f in files:
        f.write_text("")
    with LocalCluster(
        3,
        tmp,
        env={i + 1: {"MARMOT_FAILPOINTS_FILE": str(f)} for i, f in enumerate(files)},
        extra_toml="[transaction]\nheartbeat_timeout_seconds = 300\n",
        stop_signal=signal.SIGKILL,
    ) as cluster:
        nodes = cluster.nodes
        query(nodes[0], "CREATE TABLE acct (id INT PRIMARY KEY, v INT)")
        query(nodes[0], "INSERT INTO acct VALUES (1, 10), (2, 20)")
        for n in nodes:
            wait_for(lambda n=n: query(n, "SELECT v FROM acct WHERE id = 1") == ((10,),), timeout=30)
        yield nodes, files


def paused_write(node: NodeProcess, fp_file: Path, sql: str) -> tuple[threading.Thread, dict]:
    """Run ``sql`` on ``node`` in a thread, its coordinator paused between PREPARE and COMMIT; the dict
    gets "ok" or "error" when the statement ends (the test SIGKILLs the node meanwhile)."""
    fp_file.write_text("coordinator_after_prepare=sleep:60")
    time.sleep(0.5)  # the node reads the file every 50 ms
    out: dict = {}

    def run() -> None:
        try:
            query(node, sql)
            out["ok"] = True
        except Exception as e:  # the node is SIGKILLed under this client
            out["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def pending_on(node: NodeProcess) -> list:
    return admin_json(node, f"{META}/transactions/pending")["transactions"]


def test_routes_when_nothing_is_in_flight(stuck):
    nodes, _ = stuck
    n1, n2, _n3 = nodes
    pending = admin_json(n2, f"{META}/transactions/pending")
    assert pending == {"node_id": 2, "database": DB, "transactions": []}
    intents = admin_json(n2, f"{META}/intents")
    assert intents == {"node_id": 2, "database": DB, "intents": [], "ddl_lock": None}

    committed = admin_json(n2, f"{META}/transactions/committed?limit=5")["transactions"]
    assert len(committed) >= 2  # the CREATE TABLE and the INSERT, newest first
    assert committed[0]["seq"] > committed[1]["seq"]
    assert set(committed[0]) == {"seq", "txn_id", "commit_ts", "origin"}
    assert committed[0]["origin"] == 1 and len(committed[0]["commit_ts"]) == 3
    one = admin_json(n2, f"{META}/transactions/{committed[0]['txn_id']}")
    assert one["state"] == "committed" and one["commit_ts"] == committed[0]["commit_ts"]

    def same_schema() -> bool:
        doc = admin_json(n1, f"{META}/schema/version")
        return set(doc["nodes"]) == {"1", "2", "3"} and len(set(doc["nodes"].values())) == 1

    wait_for(same_schema, timeout=20, what="every node's schema version gossiped")
    doc = admin_json(n1, f"{META}/schema/version")
    assert doc["schema_version"] == doc["nodes"]["1"] >= 1

    states = admin_json(n2, f"{META}/replication/states")
    assert states["database"] == DB and isinstance(states["peers"], list)
    for s in states["peers"]:
        assert s["database"] == DB and {"peer", "behind_txns", "lag_seconds"} <= set(s)

    assert admin_call(n2, "/admin/nope/metadata/transactions/pending")[0] == 404
    assert admin_call(n2, f"{META}/transactions/123")[0] == 404
    assert admin_call(n2, f"{META}/transactions/abc")[0] == 400
    assert admin_call(n2, f"{META}/transactions/committed?limit=0")[0] == 400
    assert admin_call(n2, f"{META}/replication/state/9")[0] == 404
    status, body = admin_call(n2, f"{META}/intents", secret="wrong")
    assert status == 401 and "invalid cluster secret" in body["error"]


def test_stuck_transaction_is_shown_and_aborted_safely(stuck):
    nodes, files = stuck
    n1, n2, n3 = nodes
    writer, out = paused_write(n1, files[0], "UPDATE acct SET v = 11 WHERE id = 1")

    wait_for(lambda: len(pending_on(n2)) == 1 and len(pending_on(n3)) == 1, timeout=20, what="prepared")
    [txn] = pending_on(n2)
    assert txn["coordinator"] == 1 and txn["kind"] == "dml" and txn["state"] == "prepared"
    assert txn["tables"] == ["acct"] and txn["rows"] == 1 and txn["database"] == DB
    assert txn["waiting_seconds"] >= 0 and txn["resolve_after_seconds"] == 300
    txn_id = txn["txn_id"]
    [own] = pending_on(n1)  # the coordinator's own participant holds it too, and says it is deciding
    assert own["txn_id"] == txn_id and own["coordinator_state"] == "pending"

    intents = admin_json(n2, f"{META}/intents")
    assert intents["ddl_lock"] is None
    [intent] = intents["intents"]
    assert intent["table"] == "acct" and intent["txn_id"] == txn_id and intent["coordinator"] == 1
    assert set(intent) == {"key", "table", "txn_id", "coordinator", "waiting_seconds"}

    def keys(path: str) -> list:
        return [(i["key"], i["txn_id"]) for i in admin_json(n2, path)["intents"]]

    assert keys(f"{META}/intents/table/ACCT") == [(intent["key"], txn_id)]  # table names: any case
    assert keys(f"{META}/intents/table/other") == []
    assert keys(f"{META}/intents/txn/{txn_id}") == [(intent["key"], txn_id)]
    assert keys(f"{META}/intents/txn/{txn_id + 1}") == []
    assert admin_json(n2, f"{META}/transactions/{txn_id}")["state"] == "prepared"

    # the row is blocked: another write to it is a write-write conflict
    with pytest.raises(pymysql.err.OperationalError) as blocked:
        query(n2, "UPDATE acct SET v = 99 WHERE id = 1")
    assert blocked.value.args[0] == 1213

    # refused while the coordinator still runs it, on a participant and on the coordinator itself
    status, body = admin_call(n2, f"/admin/{DB}/transactions/{txn_id}/abort", "POST")
    assert status == 409 and "still running on its coordinator, node 1" in body["error"], body
    status, body = admin_call(n1, f"/admin/{DB}/transactions/{txn_id}/abort", "POST")
    assert status == 409 and "coordinates transaction" in body["error"], body
    assert len(pending_on(n2)) == 1  # nothing changed
    status, body = admin_call(n2, f"/admin/{DB}/transactions/{txn_id}/abort", "POST", secret="wrong")
    assert status == 401

    n1.stop(signal.SIGKILL)  # the coordinator dies between PREPARE and COMMIT: the transaction is stuck
    writer.join(30)
    assert "ok" not in out

    status, body = admin_call(n2, f"/admin/{DB}/transactions/{txn_id}/abort", "POST")
    assert status == 200, body
    assert body["status"] == "aborted" and body["txn_id"] == txn_id and body["coordinator"] == 1
    assert body["node_id"] == 2 and body["database"] == DB
    assert body["abort_sent"].get("3") == "ok", body  # node 3 dropped its prepared copy too
    assert pending_on(n2) == [] and pending_on(n3) == []
    assert admin_json(n2, f"{META}/intents")["intents"] == []
    assert admin_json(n2, f"{META}/transactions/{txn_id}")["state"] == "aborted"
    status, body = admin_call(n2, f"/admin/{DB}/transactions/{txn_id}/abort", "POST")
    assert status == 404 and "not pending" in body["error"]

    # the row takes writes again (QUORUM: nodes 2 and 3 of 3), and the aborted update is nowhere
    query(n2, "UPDATE acct SET v = 12 WHERE id = 1")
    for n in (n2, n3):
        wait_for(lambda n=n: query(n, "SELECT v FROM acct WHERE id = 1") == ((12,),), timeout=20)


def test_stuck_ddl_holds_the_ddl_lock_until_aborted(stuck):
    """Runs after the test above (node 1 is down): node 2 coordinates an ALTER TABLE and dies between
    PREPARE and COMMIT; node 3 shows the DDL and the database's DDL lock, and releases both on abort."""
    nodes, files = stuck
    _n1, n2, n3 = nodes
    writer, out = paused_write(n2, files[1], "ALTER TABLE acct ADD COLUMN w INT")
    wait_for(lambda: len(pending_on(n3)) == 1, timeout=20, what="the DDL prepared on node 3")
    [txn] = pending_on(n3)
    assert txn["kind"] == "ddl" and txn["coordinator"] == 2 and txn["rows"] == 0
    assert any("ADD COLUMN" in s.upper() for s in txn["statements"]), txn
    lock = admin_json(n3, f"{META}/intents")["ddl_lock"]
    assert lock["txn_id"] == txn["txn_id"] and lock["coordinator"] == 2
    assert lock["tables"] == ["acct"] and lock["statements"] == txn["statements"]

    n2.stop(signal.SIGKILL)
    writer.join(30)
    assert "ok" not in out
    status, body = admin_call(n3, f"/admin/{DB}/transactions/{txn['txn_id']}/abort", "POST")
    assert status == 200 and body["status"] == "aborted", body
    assert admin_json(n3, f"{META}/intents")["ddl_lock"] is None
    assert pending_on(n3) == []
    columns = [r[0] for r in query(n3, "SHOW COLUMNS FROM acct")]
    assert columns == ["id", "v"]  # the aborted ALTER left no trace
