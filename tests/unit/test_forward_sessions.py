"""Forward sessions (``replica/forward_server.py``) over real RPC sockets, on an in-process engine (no
replication: writes commit locally), and the replica's client (``replica/forward_client.py``) against them.

What is checked: a retried request id returns the kept answer and runs nothing twice (also while the
first try is still running); an idle forward session expires and its open transaction rolls back; a
replica that believes a transaction open where there is none gets 1105; the client retries the same
request id on the same node after a lost connection, fails over only while no node has received the
request, and reports 1105 when no node takes it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from marmot.cluster.rpc import ClientPool, RpcError, RpcRouter, serve_rpc
from marmot.engine.context import EngineContext
from marmot.engine.errors import MySQLError
from marmot.engine.variables import default_globals
from marmot.ids import make_id_generator
from marmot.replica.forward_client import ForwardClient, SessionLink, never_sent
from marmot.replica.forward_protocol import METHOD, NOT_RUN, ForwardAnswer, ForwardRequest
from marmot.replica.forward_server import ForwardSessions
from marmot.storage.databases import DatabaseManager
from marmot.testing import free_port
from tests.support import run_async

SECRET = "forward-unit-secret"


def _engine(tmp: Path) -> EngineContext:
    dbs = DatabaseManager(tmp / "data")
    return EngineContext(
        databases=dbs,
        id_generator=make_id_generator("compact", 1, None),
        global_variables=default_globals("8.0.36-marmot", 64 << 20, 100),
    )


def _req(sid: str, rid: int, sql: str, **kw: Any) -> ForwardRequest:
    return ForwardRequest(session_id=sid, request_id=rid, sql=sql, database="marmot", **kw)


async def _serve(sessions: ForwardSessions) -> tuple[Any, str]:
    router = RpcRouter()
    sessions.register(router)
    port = free_port()
    server = await serve_rpc(router, "127.0.0.1", port, secret=SECRET, node_id=1)
    return server, f"127.0.0.1:{port}"


def _count(engine: EngineContext, table: str) -> int:
    return int(engine.databases.open("marmot").execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def test_retried_request_id_runs_once(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    sessions = ForwardSessions(engine)

    async def main() -> None:
        server, addr = await _serve(sessions)
        pool = ClientPool(secret=SECRET, node_id=9)
        try:
            call = pool.get(addr).call
            ok = ForwardAnswer.from_wire(
                await call(
                    METHOD,
                    _req("s1", 1, "CREATE TABLE t (id INT PRIMARY KEY AUTO_INCREMENT, v TEXT)").to_wire(),
                )
            )
            assert ok.error is None
            insert = _req("s1", 2, "INSERT INTO t (v) VALUES ('a')").to_wire()
            first, second = await asyncio.gather(call(METHOD, insert), call(METHOD, insert))
            again = await call(METHOD, insert)
            assert first == second == again  # the same kept answer
            assert ForwardAnswer.from_wire(first).result.affected_rows == 1  # type: ignore[union-attr]
            assert _count(engine, "t") == 1  # ran once
            assert sessions.replayed == 2
            stale = ForwardAnswer.from_wire(
                await call(METHOD, _req("s1", 1, "INSERT INTO t (v) VALUES ('b')").to_wire())
            )
            assert stale.error is not None and stale.error.code == 1105 and "older" in stale.error.message
            assert _count(engine, "t") == 1
            await sessions.stop()  # node shutdown: later requests are refused unrun, as never sent
            with pytest.raises(RpcError) as refused:
                await call(METHOD, _req("s1", 3, "INSERT INTO t (v) VALUES ('c')").to_wire())
            assert refused.value.code == NOT_RUN and never_sent(refused.value)
            assert _count(engine, "t") == 1 and not sessions.sessions and not engine.sessions
        finally:
            await pool.close()
            await sessions.stop()
            server.close()

    run_async(main())


def test_idle_session_expires_and_rolls_back(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    sessions = ForwardSessions(engine, idle_timeout_s=0.3)

    async def main() -> None:
        server, addr = await _serve(sessions)
        sessions.start()
        pool = ClientPool(secret=SECRET, node_id=9)
        try:
            call = pool.get(addr).call
            await call(METHOD, _req("s2", 1, "CREATE TABLE u (id INT PRIMARY KEY)").to_wire())
            opened = ForwardAnswer.from_wire(
                await call(METHOD, _req("s2", 2, "INSERT INTO u VALUES (1)", prelude=["BEGIN"]).to_wire())
            )
            assert opened.error is None and opened.in_transaction
            assert len(engine.sessions) == 1
            for _ in range(100):
                if "s2" not in sessions.sessions:
                    break
                await asyncio.sleep(0.05)
            assert "s2" not in sessions.sessions and not engine.sessions
            assert _count(engine, "u") == 0  # the open transaction rolled back
            lost = ForwardAnswer.from_wire(
                await call(METHOD, _req("s2", 3, "COMMIT", in_transaction=True).to_wire())
            )
            assert lost.error is not None and lost.error.code == 1105 and "rolled back" in lost.error.message
        finally:
            await pool.close()
            await sessions.stop()
            server.close()

    run_async(main())


def test_client_retries_same_id_and_fails_over_only_when_unsent(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    sessions = ForwardSessions(engine)

    async def main() -> None:
        server, addr = await _serve(sessions)
        pool = ClientPool(secret=SECRET, node_id=9, max_backoff=0.05)
        dead = f"127.0.0.1:{free_port()}"  # nothing listens there
        sent: list[str] = []
        lose_first_answer = [True]

        async def send(address: str, method: str, payload: Any, timeout: float) -> Any:
            sent.append(address)
            answer = await pool.get(address).call(method, payload, timeout)
            if lose_first_answer[0] and method == METHOD:
                lose_first_answer[0] = False
                raise RpcError("unavailable", f"connection to {address} lost")  # after it ran
            return answer

        try:
            client = ForwardClient(send, lambda: [dead, addr], timeout_s=5.0, retry_interval_s=0.05)
            link = SessionLink()
            ans = await client.call(link, _req("s3", 1, "CREATE TABLE w (id INT PRIMARY KEY)"))
            assert ans.error is None and link.node == addr
            assert sent[0] == dead and sent[1:] == [addr, addr]  # failed over (never sent), then retried
            assert client.retries == 1
            ans = await client.call(link, _req("s3", 2, "INSERT INTO w VALUES (1)"))
            assert ans.error is None and _count(engine, "w") == 1

            # a transaction open on a node that is gone: no failover, 1105 naming the loss
            gone = SessionLink(dead)
            quick = ForwardClient(send, lambda: [dead, addr], timeout_s=0.5, retry_interval_s=0.05)
            with pytest.raises(MySQLError) as err:
                await quick.call(gone, _req("s4", 2, "INSERT INTO w VALUES (2)", in_transaction=True))
            assert err.value.code == 1105 and "transaction is lost" in err.value.message
            # no node reachable at all: not applied
            nowhere = ForwardClient(send, lambda: [dead], timeout_s=0.5, retry_interval_s=0.05)
            with pytest.raises(MySQLError) as err:
                await nowhere.call(SessionLink(), _req("s5", 1, "INSERT INTO w VALUES (3)"))
            assert err.value.code == 1105 and "not applied" in err.value.message
            assert _count(engine, "w") == 1
        finally:
            await pool.close()
            await sessions.stop()
            server.close()

    run_async(main())


def test_never_sent_reads_the_rpc_errors() -> None:
    assert never_sent(RpcError("unavailable", "cannot connect to 127.0.0.1:1: connection refused"))
    assert never_sent(RpcError("deadline", "not connected to 127.0.0.1:1 within 1.0s"))
    assert never_sent(RpcError("auth", "invalid cluster secret"))
    assert not never_sent(RpcError("unavailable", "connection to 127.0.0.1:1 lost"))
    assert not never_sent(RpcError("deadline", "call Forward timed out"))
