"""A replica session's statements through ``WriteForwarder`` (``replica/forward_writes.py``): two
in-process engines, the "replica" forwarding over real RPC sockets to the "cluster node" (its forward
sessions); no replication, so the checks are about what is forwarded and what comes back.

What is checked: an autocommit write runs on the cluster node with its affected rows and insert id
returned (and ``LAST_INSERT_ID()`` on the replica follows); reads stay local outside a forwarded
transaction and go to the cluster node inside one (seeing its writes); ROLLBACK leaves nothing; a
savepoint taken before the first write is replayed there; ``SET autocommit = 0`` transactions; the
cluster's MySQL error arrives unchanged; a write the first look missed (the read-only refusal) is
forwarded too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from marmot.cluster.rpc import ClientPool, RpcRouter, serve_rpc
from marmot.engine.context import EngineContext
from marmot.engine.errors import MySQLError
from marmot.engine.results import OkResult, ResultSet
from marmot.engine.session import Session
from marmot.engine.variables import default_globals
from marmot.hlc import Timestamp
from marmot.ids import make_id_generator
from marmot.replica.forward_client import ForwardClient
from marmot.replica.forward_server import ForwardSessions
from marmot.replica.forward_writes import WriteForwarder
from marmot.storage.databases import DatabaseManager
from marmot.testing import free_port
from tests.support import run_async

SECRET = "forward-writes-secret"


def _engine(path: Path, node_id: int) -> EngineContext:
    return EngineContext(
        databases=DatabaseManager(path),
        id_generator=make_id_generator("compact", node_id, None),
        global_variables=default_globals("8.0.36-marmot", 64 << 20, 100),
    )


def _rows(engine: EngineContext, sql: str) -> list[tuple[Any, ...]]:
    conn = engine.databases.open("marmot")
    try:
        return [tuple(r) for r in conn.execute(sql)]
    finally:
        conn.close()


Scenario = Callable[[Session, EngineContext, EngineContext], Awaitable[None]]


def _with_replica(tmp: Path, scenario: Scenario) -> None:
    """Run ``scenario(replica session, replica engine, cluster engine)``."""
    cluster = _engine(tmp / "cluster", 1)
    replica = _engine(tmp / "replica", 2)

    async def main() -> None:
        sessions = ForwardSessions(cluster)
        router = RpcRouter()
        sessions.register(router)
        port = free_port()
        server = await serve_rpc(router, "127.0.0.1", port, secret=SECRET, node_id=1)
        pool = ClientPool(secret=SECRET, node_id=2)

        async def send(address: str, method: str, payload: Any, timeout: float) -> Any:
            return await pool.get(address).call(method, payload, timeout)

        async def never_applied(_ts: Timestamp, _db: str, _timeout: float) -> bool:
            return False

        client = ForwardClient(send, lambda: [f"127.0.0.1:{port}"], timeout_s=10.0)
        forwarder = WriteForwarder(client, 2, never_applied)
        replica.read_only, replica.forwarder, replica.write_gate = True, forwarder, forwarder.gate
        session = Session(replica, replica.next_connection_id(), "app", "marmot")
        replica.sessions[session.connection_id] = session
        try:
            await scenario(session, replica, cluster)
        finally:
            session.close()
            await pool.close()
            await sessions.stop()
            server.close()

    run_async(main(), timeout=60)


CREATE = "CREATE TABLE items (id INT PRIMARY KEY AUTO_INCREMENT, v TEXT UNIQUE)"


def test_autocommit_write_returns_the_cluster_answer(tmp_path: Path) -> None:
    async def scenario(s: Session, replica: EngineContext, cluster: EngineContext) -> None:
        await s.execute(CREATE)  # DDL is forwarded: the table is on the cluster node only
        assert _rows(cluster, "SELECT COUNT(*) FROM items") == [(0,)]
        ok = await s.execute("INSERT INTO items (v) VALUES ('a')")
        assert isinstance(ok, OkResult) and ok.affected_rows == 1 and ok.last_insert_id > 0
        assert _rows(cluster, "SELECT id, v FROM items") == [(ok.last_insert_id, "a")]
        assert s.last_insert_id == ok.last_insert_id  # LAST_INSERT_ID() on the replica
        with pytest.raises(MySQLError) as err:
            await s.execute("INSERT INTO items (v) VALUES ('a')")
        assert err.value.code == 1062 and err.value.sqlstate == "23000"
        with pytest.raises(MySQLError) as err:  # reads stay local: the replica has no such table
            await s.execute("SELECT * FROM items")
        assert err.value.code == 1146

    _with_replica(tmp_path, scenario)


def test_transaction_is_forwarded_whole(tmp_path: Path) -> None:
    async def scenario(s: Session, replica: EngineContext, cluster: EngineContext) -> None:
        await s.execute(CREATE)
        await s.execute("BEGIN")
        await s.execute("INSERT INTO items (v) VALUES ('t1')")
        got = await s.execute("SELECT v FROM items")  # forwarded: sees the transaction's own write
        assert isinstance(got, ResultSet) and got.rows == [("t1",)]
        assert s.status_in_transaction
        await s.execute("ROLLBACK")
        assert not s.status_in_transaction
        assert _rows(cluster, "SELECT COUNT(*) FROM items") == [(0,)]

        await s.execute("START TRANSACTION")
        await s.execute("SAVEPOINT before_any")  # before the first write: replayed there with BEGIN
        await s.execute("INSERT INTO items (v) VALUES ('dropped')")
        await s.execute("ROLLBACK TO SAVEPOINT before_any")
        await s.execute("INSERT INTO items (v) VALUES ('kept')")
        upd = await s.execute("UPDATE items SET v = 'kept2' WHERE v = 'kept'")
        assert isinstance(upd, OkResult) and upd.affected_rows == 1
        assert _rows(cluster, "SELECT COUNT(*) FROM items") == [(0,)]  # nothing before COMMIT
        await s.execute("COMMIT")
        assert _rows(cluster, "SELECT v FROM items") == [("kept2",)]

        await s.execute("BEGIN")
        await s.execute("CREATE TABLE other (id INT PRIMARY KEY)")  # DDL ends the transaction, as in MySQL
        assert not s.status_in_transaction
        await s.execute("INSERT INTO other VALUES (1)")  # so this one is autocommitted
        assert _rows(cluster, "SELECT COUNT(*) FROM other") == [(1,)]

        await s.execute("SET autocommit = 0")
        await s.execute("DELETE FROM items")
        assert s.status_in_transaction
        await s.execute("SET autocommit = 1")  # commits the forwarded transaction, as MySQL does
        assert not s.status_in_transaction
        assert _rows(cluster, "SELECT COUNT(*) FROM items") == [(0,)]

    _with_replica(tmp_path, scenario)


def test_refused_write_is_forwarded_and_wait_times_out(tmp_path: Path) -> None:
    async def scenario(s: Session, replica: EngineContext, cluster: EngineContext) -> None:
        await s.execute(CREATE)
        forwarder = replica.forwarder
        assert isinstance(forwarder, WriteForwarder)
        await s.execute("INSERT INTO items (v) VALUES ('a'), ('b')")
        # a write behind a read's first words passes the router's look and reaches the plan runner's
        # read-only check: forwarded from there (the replica needs the table to plan it)
        local = replica.databases.open("marmot")
        local.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT UNIQUE)")
        local.close()
        got = await s.execute(
            "WITH gone AS (SELECT 'a' AS v) DELETE FROM items WHERE v IN (SELECT v FROM gone)"
        )
        assert isinstance(got, OkResult) and got.affected_rows == 1
        assert _rows(cluster, "SELECT v FROM items") == [("b",)]
        # a forwarded commit this replica never applies: with the wait on, the next read gives 1105
        state = forwarder._states[s.connection_id]
        state.pending = (Timestamp(1, 0, 1), "marmot")
        forwarder.client.timeout_s = 0.3
        await s.execute("SELECT 1")  # the wait is off: no wait
        await s.execute("SET marmot_wait_for_replication = ON")
        with pytest.raises(MySQLError) as err:
            await s.execute("SELECT 1")
        assert err.value.code == 1105 and "marmot_wait_for_replication" in err.value.message
        await s.execute("SET marmot_wait_for_replication = OFF")
        await s.execute("SELECT 1")

    _with_replica(tmp_path, scenario)
