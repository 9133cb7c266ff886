"""A replica session's writes, run by the cluster: what is forwarded, and reading one's own writes after.

What goes to the cluster (``[replica] forward_writes = true``; ``engine/forwarding.py`` is the seam):

* **Writes**: whatever the replica's read-only seam catches (``engine/read_only.py``: INSERT, REPLACE,
  UPDATE, DELETE, DDL, CREATE/DROP DATABASE, LOAD DATA, and a write behind a read's first words such as
  ``WITH … DELETE``) comes to ``gate``/``forward`` instead of getting 1290. LOAD DATA LOCAL: the replica
  reads the file from its client and sends it along.
* **Transactions**: BEGIN only opens a local transaction; reads before its first write run here, like any
  read. The first write is sent with ``BEGIN`` (and the savepoints taken so far) in front, so the cluster
  node opens the transaction then; from that write on, *every* statement of the transaction goes to that
  node — reads too, so they see the transaction's own writes, and COMMIT, ROLLBACK and savepoints — until
  it ends. A forwarded ``BEGIN … COMMIT`` is one transaction of the cluster's usual 2PC there.
  ``SET autocommit = 1`` with a forwarded transaction open commits it there first, as MySQL does.
* **Everything else stays local**: reads outside such a transaction, SET, USE, SHOW.

Each forwarded statement carries the session's state (database, session variables, user variables,
``LAST_INSERT_ID()``), and its answer comes back as if local: affected rows, the insert id the cluster
assigned (the session's ``LAST_INSERT_ID()`` follows), warnings, or the cluster's MySQL error unchanged
(1062 stays 1062). ``@@marmot_last_commit_ts`` becomes the forwarded commit's token.

Reading one's own writes: with ``SET marmot_wait_for_replication = ON`` the session's first local read
after a forwarded commit waits until this replica has applied that commit (the causal-token wait of
``SET marmot_read_after``), at most ``forward_write_timeout_sec``; past it the read fails with 1105 and
the next read waits again (``= OFF`` stops waiting). Only commits this replica will apply count: one in a
database it follows (the answer names the commit's database), not CREATE/DROP DATABASE.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from marmot.engine import load_data, statements
from marmot.engine.errors import MySQLError
from marmot.engine.read_only import writes
from marmot.engine.statement_router import Command, command_of
from marmot.hlc import Timestamp
from marmot.replica.forward_client import ForwardClient, SessionLink
from marmot.replica.forward_protocol import REPLICA_ONLY_VARIABLES, ForwardRequest

if TYPE_CHECKING:
    from marmot.engine.results import Result
    from marmot.engine.session import Session
    from marmot.sql import lexer

WaitApplied = Callable[[Timestamp, str, float], Awaitable[bool]]  # (commit ts, database, timeout) -> applied
Follows = Callable[[str], bool]  # does this replica follow that database?

# Statements that read: they wait for the session's forwarded commits (marmot_wait_for_replication)
_READS = frozenset({Command.PLAN, Command.RAW, Command.SHOW, Command.DO})
# Statements that stay local even inside a forwarded transaction
_LOCAL_ALWAYS = frozenset({Command.USE, Command.NOOP, Command.LOAD_EXTENSION})
_WAIT_VARIABLE = "marmot_wait_for_replication"


@dataclass(slots=True)
class ForwardState:
    """One replica session's forwarding: its ids, where its forward session lives, what is open there."""

    session_id: str
    link: SessionLink = field(default_factory=SessionLink)
    next_request_id: int = 1
    remote_open: bool = False  # a transaction of this session is open on ``link.node``
    savepoints: list[str] = field(default_factory=list)  # taken locally before the transaction's first write
    pending: tuple[Timestamp, str] | None = None  # the latest forwarded commit (and its database) to wait for


def _on(value: object) -> bool:
    return str(value).upper() in ("1", "ON", "TRUE")


class WriteForwarder:
    """``engine.forwarding.StatementForwarder`` of a replica (module docstring)."""

    def __init__(
        self,
        client: ForwardClient,
        node_id: int,
        wait_applied: WaitApplied,
        follows: Follows = lambda _db: True,
    ) -> None:
        self.client = client
        self.node_id = node_id
        self.wait_applied = wait_applied
        self.follows = follows
        self._states: dict[int, ForwardState] = {}  # connection id -> its forwarding
        self._closing: set[asyncio.Task[None]] = set()
        self._run_id = uuid.uuid4().hex[:12]  # session ids stay unique across replica restarts
        self._generation = 0
        self.forwarded = 0  # statements forwarded
        self.failed = 0  # of which no answer came in time

    @property
    def timeout_s(self) -> float:
        return self.client.timeout_s

    def _state(self, session: Session) -> ForwardState:
        st = self._states.get(session.connection_id)
        if st is None:
            st = self._states[session.connection_id] = ForwardState(self._new_session_id(session))
        return st

    def _new_session_id(self, session: Session) -> str:
        self._generation += 1
        return f"{self.node_id}-{self._run_id}-{session.connection_id}-{self._generation}"

    # -- the engine seam -------------------------------------------------------------------------------

    async def intercept(
        self, session: Session, sql: str, norm: lexer.Normalized, params: list[object]
    ) -> Result | None:
        cmd = command_of(sql, norm, session.transpilation)
        st = self._states.get(session.connection_id)
        if st is not None and st.remote_open:
            return await self._in_forwarded_transaction(session, st, sql, norm, params, cmd)
        if cmd in (Command.BEGIN, Command.COMMIT, Command.SAVEPOINT, Command.RELEASE, Command.ROLLBACK):
            if st is not None or cmd is Command.SAVEPOINT:
                self._track_savepoints(self._state(session), sql, cmd)
            return None
        if st is not None and st.pending is not None and cmd in _READS and not writes(cmd.value, norm):
            await self._wait_for_own_writes(session, st)
        return None  # a write goes on to the read-only seam, whose gate is ``gate``

    async def gate(self, session: Session, sql: str, norm: lexer.Normalized, params: list[object]) -> Result:
        """``EngineContext.write_gate``: a write on this read-only node runs on the cluster."""
        return await self.forward(session, sql, params)

    async def forward(self, session: Session, sql: str, params: list[object]) -> Result:
        """Run a write on the cluster: alone (autocommit) or as the first write of a transaction."""
        st = self._state(session)
        if st.remote_open:
            result = await self._send(session, st, sql, params)
            assert result is not None
            return result
        prelude: list[str] = []
        if session.in_transaction or not session.autocommit:
            prelude = ["BEGIN"] + [f"SAVEPOINT `{name}`" for name in st.savepoints]
        result = await self._send(session, st, sql, params, prelude)
        assert result is not None
        return result

    def session_closed(self, session: Session) -> None:
        st = self._states.pop(session.connection_id, None)
        if st is None or st.link.node is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # closed outside the event loop (shutdown): the session expires there
            return
        task = loop.create_task(self.client.close(st.link, st.session_id))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    # -- inside a forwarded transaction ----------------------------------------------------------------

    async def _in_forwarded_transaction(
        self,
        session: Session,
        st: ForwardState,
        sql: str,
        norm: lexer.Normalized,
        params: list[object],
        cmd: Command,
    ) -> Result | None:
        if cmd in _LOCAL_ALWAYS:
            return None
        if cmd is Command.SET:
            if _turns_autocommit_on(sql):
                await self._send(session, st, "COMMIT", [])  # MySQL commits the open transaction
            return None  # SET itself is the session's: the next request carries the new values
        result = await self._send(session, st, sql, params)
        if cmd in (Command.BEGIN, Command.COMMIT) or (
            cmd is Command.ROLLBACK and statements.rollback_target(sql) is None
        ):
            st.savepoints.clear()
            return None  # the local (write-free) transaction ends or restarts as well
        return result

    def _track_savepoints(self, st: ForwardState, sql: str, cmd: Command) -> None:
        """Savepoints of a local transaction before its first write, replayed with that write's BEGIN."""
        if cmd is Command.SAVEPOINT:
            name = statements.savepoint_name(sql)
            if name in st.savepoints:
                st.savepoints.remove(name)
            st.savepoints.append(name)
        elif cmd is Command.RELEASE or (cmd is Command.ROLLBACK and statements.rollback_target(sql)):
            name = statements.savepoint_name(sql)
            if name in st.savepoints:
                keep = st.savepoints.index(name) + (1 if cmd is Command.ROLLBACK else 0)
                del st.savepoints[keep:]
        else:  # BEGIN, COMMIT, ROLLBACK: a new transaction has none
            st.savepoints.clear()

    # -- one request -----------------------------------------------------------------------------------

    async def _send(
        self,
        session: Session,
        st: ForwardState,
        sql: str,
        params: list[object],
        prelude: list[str] | None = None,
    ) -> Result | None:
        local_file = await _local_file(session, sql)
        req = ForwardRequest(
            session_id=st.session_id,
            request_id=st.next_request_id,
            sql=sql,
            params=list(params) if params else None,
            database=session.database,
            variables={k: v for k, v in session.variables.items() if k not in REPLICA_ONLY_VARIABLES},
            user_variables=dict(session.user_variables),
            transpilation=session.transpilation,
            client_found_rows=session.client_found_rows,
            last_insert_id=session.last_insert_id,
            prelude=prelude or [],
            in_transaction=st.remote_open,
            local_file=local_file,
            user=session.user,
        )
        st.next_request_id += 1
        self.forwarded += 1
        try:
            answer = await self.client.call(st.link, req)
        except MySQLError:
            self.failed += 1
            # No answer: what the forward session holds is unknown, so it is left to expire (rolling
            # back what it has open) and the next statement starts a new one.
            if st.remote_open:
                self._end_local_transaction(session, st)
            st.session_id, st.next_request_id, st.link = self._new_session_id(session), 1, SessionLink()
            raise
        was_open = st.remote_open
        st.remote_open = answer.in_transaction
        if (was_open or prelude) and not st.remote_open:
            self._end_local_transaction(session, st)  # committed, rolled back or ended by DDL there
        elif prelude:
            session.in_transaction = True  # (autocommit = 0: the write opened the transaction)
        if answer.commit_ts is not None:
            session.writer.last_commit_ts = answer.commit_ts  # @@marmot_last_commit_ts: the token
            # a read waits only for what this replica will apply: a database it follows (not CREATE/DROP
            # DATABASE, which no database's log holds, nor a database outside replicate_databases)
            db = answer.commit_db
            if db is not None and self.follows(db):
                st.pending = (answer.commit_ts, db)
        session.last_insert_id = answer.session_last_insert_id
        session.warnings = answer.warnings
        if answer.error is not None:
            raise answer.error
        return answer.result

    @staticmethod
    def _end_local_transaction(session: Session, st: ForwardState) -> None:
        st.remote_open = False
        st.savepoints.clear()
        session.transactions.rollback()  # holds no writes: only its read view and flags
        session.in_transaction = False

    async def _wait_for_own_writes(self, session: Session, st: ForwardState) -> None:
        """``marmot_wait_for_replication = ON``: the session's forwarded commit is applied here first."""
        wanted = session.variables.get(_WAIT_VARIABLE, session.ctx.global_variables.get(_WAIT_VARIABLE, 0))
        pending = st.pending
        if pending is None or not _on(wanted):
            return
        ts, db = pending
        if not await self.wait_applied(ts, db, self.timeout_s):
            raise MySQLError(
                1105,
                "HY000",
                f"marmot_wait_for_replication: this replica has not applied the session's forwarded commit "
                f"{ts.wall_ns}.{ts.logical}.{ts.node_id} within [replica] forward_write_timeout_sec = "
                f"{self.timeout_s:g} s; retry the read, or SET marmot_wait_for_replication = OFF",
            )
        if st.pending == pending:
            st.pending = None


def _turns_autocommit_on(sql: str) -> bool:
    try:
        assignments = statements.parse_set(sql)
    except ValueError:
        return False
    return any(
        a.kind == "system"
        and a.name == "autocommit"
        and a.scope != "global"
        and _on(a.value_sql.strip("'\""))
        for a in assignments
    )


async def _local_file(session: Session, sql: str) -> bytes | None:
    """LOAD DATA LOCAL: the file, read from the replica's client (the cluster node cannot ask it)."""
    words = sql.lstrip().split(None, 3)
    if len(words) < 2 or words[0].upper() != "LOAD" or words[1].upper() != "DATA":
        return None
    spec = load_data.parse(sql)
    if not spec.local or session.request_local_file is None or not session.ctx.local_infile:
        return None
    return await session.request_local_file(spec.filename)
