"""The cluster node's half of forwarded writes: one engine session per replica session.

Why a real ``engine.Session``: a write forwarded from a replica must mean exactly what it means when a
client sends it to this node — the same transpiler, the same capture and 2PC, the same errors — and a
forwarded ``BEGIN … COMMIT`` must be one transaction. So every replica session (``session_id``) gets a
session of this node's engine, kept between its statements, registered with the engine like a client's
(a dropped database lets go of it, it shows in the process list as user ``replica:<node id>``).

Exactly once: a replica retries a request whose answer it lost (connection reset) with the same
``request_id``. The statement runs in a task of its own, shielded from the RPC handler (which the RPC
layer cancels when the connection drops or the deadline passes), and its answer is kept; a retry of the
id that is still running waits for it, a retry of the id that finished gets the kept answer. Requests of
one session are sequential (the replica waits for each answer), so the last answer is all there is to keep.

Expiry: a forward session idle for ``idle_timeout_s`` (60 s) is closed — an open transaction rolls back
— and so is one whose replica session ended (``forward_close``). A replica that believes its transaction
is open on this node while the node has no such session (expired, or this node restarted) gets 1105
saying the transaction was rolled back, never a statement run outside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from marmot.cluster.rpc import RpcError
from marmot.engine.context import EngineContext
from marmot.engine.errors import MySQLError
from marmot.engine.session import Session
from marmot.replica.forward_protocol import CLOSE_METHOD, METHOD, NOT_RUN, ForwardAnswer, ForwardRequest
from marmot.transport import Router

log = logging.getLogger("marmot.replica.forward")

IDLE_TIMEOUT_S = 60.0  # upstream's forward session expiry


@dataclass(eq=False)
class ForwardSession:
    """One replica session's engine session and its latest request."""

    session: Session
    last_used: float
    last_request_id: int = 0
    last_answer: dict[str, Any] | None = None
    running: asyncio.Task[dict[str, Any]] | None = None
    running_id: int = 0


class ForwardSessions:
    """The ``forward`` and ``forward_close`` RPC methods of a cluster node (module docstring)."""

    def __init__(self, engine: EngineContext, idle_timeout_s: float = IDLE_TIMEOUT_S) -> None:
        self.engine = engine
        self.idle_timeout_s = idle_timeout_s
        self.sessions: dict[str, ForwardSession] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self.executed = 0  # statements run (retries answered from memory are not counted)
        self.replayed = 0  # retried requests answered from memory
        self._stopped = False

    def register(self, router: Router) -> None:
        router.unary(METHOD, self.handle_forward)
        router.unary(CLOSE_METHOD, self.handle_close)

    def start(self) -> None:
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def stop(self) -> None:
        """Node shutdown: stop sweeping, roll back every forward session's open transaction; requests
        arriving later are refused unrun (the replica may take them to another node)."""
        self._stopped = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        for sid in list(self.sessions):
            self._close(sid)

    # -- RPC handlers ----------------------------------------------------------------------------------

    async def handle_forward(self, payload: Any, ctx: Any) -> dict[str, Any]:
        try:
            req = ForwardRequest.from_wire(payload)
        except ValueError as err:
            return ForwardAnswer(0, error=MySQLError(1105, "HY000", f"bad forward request: {err}")).to_wire()
        peer = f"replica:{getattr(ctx, 'peer_node_id', '?')}"
        while True:
            if self._stopped:
                raise RpcError(NOT_RUN, "this node is shutting down: the forwarded request was not run")
            entry = self.sessions.get(req.session_id)
            if entry is None:
                if req.in_transaction:
                    return self._lost_transaction(req).to_wire()
                entry = self._open(req, peer)
            entry.last_used = time.monotonic()
            running = entry.running
            if running is not None:
                if entry.running_id == req.request_id:  # a retry of the request still running
                    self.replayed += 1
                    return await asyncio.shield(running)
                with contextlib.suppress(Exception):
                    await asyncio.shield(running)  # an earlier request still runs: ours comes after it
                continue
            if req.request_id == entry.last_request_id and entry.last_answer is not None:
                self.replayed += 1
                return entry.last_answer  # a retry of a finished request: its answer, not a second run
            if req.request_id < entry.last_request_id:
                stale = MySQLError(
                    1105,
                    "HY000",
                    f"forwarded request {req.request_id} of session {req.session_id} is older than the "
                    f"latest one ({entry.last_request_id}); it is not run",
                )
                return ForwardAnswer(req.request_id, error=stale).to_wire()
            if req.in_transaction and not entry.session.status_in_transaction:
                return self._lost_transaction(req).to_wire()
            task = asyncio.get_running_loop().create_task(self._run(entry, req))
            entry.running, entry.running_id = task, req.request_id
            return await asyncio.shield(task)

    async def handle_close(self, payload: Any, ctx: Any) -> bool:
        sid = payload.get("sid") if isinstance(payload, dict) else None
        if isinstance(sid, str) and sid in self.sessions:
            entry = self.sessions[sid]
            if entry.running is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(entry.running)
            self._close(sid)
            return True
        return False

    # -- sessions --------------------------------------------------------------------------------------

    def _open(self, req: ForwardRequest, peer: str) -> ForwardSession:
        engine = self.engine
        conn_id = engine.next_connection_id()
        session = Session(engine, conn_id, req.user or peer, None, client_found_rows=req.client_found_rows)
        session.host = peer
        engine.sessions[conn_id] = session
        entry = self.sessions[req.session_id] = ForwardSession(session, time.monotonic())
        log.debug("forward session %s opened for %s", req.session_id, peer)
        return entry

    def _close(self, sid: str) -> None:
        entry = self.sessions.pop(sid, None)
        if entry is None:
            return
        with contextlib.suppress(Exception):
            entry.session.close()  # rolls back an open transaction
        self.engine.sessions.pop(entry.session.connection_id, None)

    def _lost_transaction(self, req: ForwardRequest) -> ForwardAnswer:
        err = MySQLError(
            1105,
            "HY000",
            "the forwarded transaction is no longer open on the cluster node (idle for more than "
            f"{int(self.idle_timeout_s)} s, or the node restarted): it was rolled back; start it again",
        )
        return ForwardAnswer(req.request_id, error=err)

    async def _sweep_forever(self) -> None:
        interval = max(0.05, min(5.0, self.idle_timeout_s / 4))
        while True:
            await asyncio.sleep(interval)
            self.expire_idle()

    def expire_idle(self) -> list[str]:
        """Close the forward sessions idle for longer than the timeout; their ids."""
        cutoff = time.monotonic() - self.idle_timeout_s
        gone = [sid for sid, e in self.sessions.items() if e.running is None and e.last_used < cutoff]
        for sid in gone:
            log.info("forward session %s expired after %.0f s idle", sid, self.idle_timeout_s)
            self._close(sid)
        return gone

    # -- running one request ---------------------------------------------------------------------------

    async def _run(self, entry: ForwardSession, req: ForwardRequest) -> dict[str, Any]:
        try:
            try:
                answer = await self._execute(entry.session, req)
            except Exception:  # a bug costs this statement, not the session
                log.exception("forwarded statement of session %s failed", req.session_id)
                answer = ForwardAnswer(
                    req.request_id,
                    error=MySQLError(
                        1105, "HY000", "internal error on the cluster node running a forwarded write"
                    ),
                    in_transaction=entry.session.status_in_transaction,
                )
            wire = answer.to_wire()
            entry.last_request_id, entry.last_answer = req.request_id, wire
            self.executed += 1
            return wire
        finally:
            entry.running, entry.running_id = None, 0
            entry.last_used = time.monotonic()

    async def _execute(self, s: Session, req: ForwardRequest) -> ForwardAnswer:
        before = s.last_commit_ts
        if not req.in_transaction and s.status_in_transaction:
            # the replica holds no transaction here (it lost an answer and gave it up): neither do we
            s.transactions.rollback()
            s.in_transaction = False
        try:
            self._adopt(s, req)
            if req.prelude and not s.status_in_transaction:
                for stmt in req.prelude:
                    await s.execute(stmt)
            result = await s.execute(req.sql, req.params)
        except MySQLError as err:
            answer = ForwardAnswer(req.request_id, error=err)
        else:
            answer = ForwardAnswer(req.request_id, result=result)
        answer.warnings = list(s.warnings)
        answer.session_last_insert_id = s.last_insert_id
        answer.in_transaction = s.status_in_transaction
        after = s.last_commit_ts
        if after is not None and after != before:  # this request committed (an error after a commit too)
            answer.commit_ts, answer.commit_db = after, s.writer.last_commit_db
        return answer

    @staticmethod
    def _adopt(s: Session, req: ForwardRequest) -> None:
        """Give the engine session the replica session's state the statement depends on."""
        if req.database != s.database:
            if req.database is None:
                s.database = None
            else:
                s.use(req.database)  # 1049 when this node has no such database
        fk = req.variables.get("foreign_key_checks", s.variables.get("foreign_key_checks", 1))
        if fk != s.variables.get("foreign_key_checks", 1):
            s.connections.set_foreign_keys(str(fk).upper() not in ("0", "OFF", "FALSE"))
        s.variables = dict(req.variables)
        s.user_variables = dict(req.user_variables)
        s.transpilation = req.transpilation
        s.client_found_rows = req.client_found_rows
        s.last_insert_id = req.last_insert_id
        data = req.local_file
        if data is not None:

            async def local_file(_name: str) -> bytes:
                return data

            s.request_local_file = local_file
        else:
            s.request_local_file = None
