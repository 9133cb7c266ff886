"""Transaction control of a session: BEGIN/COMMIT/ROLLBACK, savepoints, statement atomicity.

Its own object, beside the session's ``TransactionState`` (what is open) and ``ReplicatedWriter`` (the
kept changes and their hand-over): this decides when a transaction ends and what a failure undoes. With
replication the writes of a transaction are kept as captured changes and COMMIT hands them to the
replication layer; without it (the engine alone) SQLite's own transaction is committed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

import apsw

from marmot.engine import errors
from marmot.engine.errors import MySQLError
from marmot.engine.locking import retry_busy
from marmot.engine.replicated_write import ReplicatedWriter
from marmot.engine.transaction_state import TransactionState

if TYPE_CHECKING:
    from marmot.engine.context import EngineContext

_STATEMENT_ERRORS = errors.STATEMENT_ERRORS


class TransactionControl:
    """Transaction and savepoint statements, and the SQLite-transaction helpers behind them."""

    def __init__(
        self,
        ctx: EngineContext,
        state: TransactionState,
        writer: ReplicatedWriter,
        current_database: Callable[[], str | None],
    ) -> None:
        self.ctx = ctx
        self.state = state
        self.writer = writer
        self._current_database = current_database  # for the database named in SQLite's error messages

    def _error(self, err: Exception) -> MySQLError:
        return errors.from_sqlite(err, self._current_database() or "")

    def atomic_statement(self, conn: apsw.Connection, body: Callable[[], int]) -> int:
        """Run ``body`` as one MySQL statement: inside a transaction a failure undoes only the statement
        (a SAVEPOINT around it); in autocommit mode the SQLite transaction is the statement."""
        use_savepoint = self.state.in_transaction
        try:
            if use_savepoint:
                conn.execute("SAVEPOINT __marmot_stmt")
            result = body()
            if use_savepoint:
                conn.execute("RELEASE __marmot_stmt")
            return result
        except _STATEMENT_ERRORS as err:
            if use_savepoint:
                conn.execute("ROLLBACK TO __marmot_stmt")
                conn.execute("RELEASE __marmot_stmt")
            else:
                self.rollback()
            raise self._error(err) from err

    async def begin_write(self, conn: apsw.Connection) -> None:
        """Take the database's SQLite write lock for this session (once per transaction)."""
        state = self.state
        if state.local_conn is not None:
            if state.local_conn is not conn:
                raise MySQLError(1105, "HY000", "A Marmot transaction can write to one database only")
            return
        if not state.autocommit:
            state.in_transaction = True
        try:
            conn.execute("BEGIN IMMEDIATE")
        except apsw.BusyError:
            await retry_busy(lambda: conn.execute("BEGIN IMMEDIATE"), self.ctx.lock_wait_timeout_s)
        state.local_conn = conn
        state.local_db = self._current_database()
        for name in state.pending_savepoints:
            conn.execute(f'SAVEPOINT "{name}"')
        state.pending_savepoints.clear()

    async def begin(self) -> None:
        """BEGIN / START TRANSACTION: an open transaction is committed first, as in MySQL."""
        await self.implicit_commit()
        self.state.in_transaction = True

    async def commit(self) -> None:
        state = self.state
        conn = state.local_conn
        state.in_transaction = False
        state.forget_savepoints()
        if state.replicated is not None:
            await self.writer.replicate_transaction()
        state.level = None
        state.read_barrier_done = False
        if conn is None:
            return
        state.local_conn = None
        state.local_db = None
        try:
            conn.execute("COMMIT")
        except _STATEMENT_ERRORS as err:
            if not conn.get_autocommit():
                conn.execute("ROLLBACK")
            raise self._error(err) from err

    async def implicit_commit(self) -> None:
        """BEGIN and DDL end an open transaction first, as in MySQL."""
        if self.state.active:
            await self.commit()

    def rollback(self) -> None:
        """Drop whatever the transaction holds: its kept changes, its view, its SQLite transaction."""
        state = self.state
        state.forget_savepoints()
        state.level = None
        state.read_barrier_done = False
        self.writer.close_view()
        state.replicated = None
        conn = state.local_conn
        state.local_conn = None
        state.local_db = None
        if conn is not None and not conn.get_autocommit():
            with contextlib.suppress(apsw.Error):
                conn.execute("ROLLBACK")

    def rollback_statement(self, savepoint: str | None) -> None:
        """ROLLBACK, or ROLLBACK TO [SAVEPOINT] ``savepoint``."""
        state = self.state
        if savepoint is None:
            self.rollback()
            state.in_transaction = False
            return
        if state.local_conn is None:
            if savepoint not in state.pending_savepoints:
                raise _no_savepoint(savepoint)
            # nothing was written since (or, replicated, the writes are ours to drop): drop the later
            # savepoints, keep this one
            del state.pending_savepoints[state.pending_savepoints.index(savepoint) + 1 :]
            self.writer.rollback_to_mark(state.savepoint_marks.get(savepoint, 0))
            return
        try:
            state.local_conn.execute(f'ROLLBACK TO "{savepoint}"')
        except apsw.SQLError as err:
            raise _no_savepoint(savepoint) from err

    def savepoint(self, name: str) -> None:
        """SAVEPOINT: created in SQLite once the transaction holds the write lock; before its first
        write the transaction has changed nothing, so the savepoint is only remembered (taking the lock
        here would block every writer for the whole of, say, a mysqldump --single-transaction)."""
        state = self.state
        state.in_transaction = True
        if state.local_conn is None:
            if name in state.pending_savepoints:
                state.pending_savepoints.remove(name)
            state.pending_savepoints.append(name)
            state.savepoint_marks[name] = self.writer.savepoint_mark()
            return
        state.local_conn.execute(f'SAVEPOINT "{name}"')

    def release(self, name: str) -> None:
        state = self.state
        if state.local_conn is None:
            if name not in state.pending_savepoints:
                raise _no_savepoint(name)
            del state.pending_savepoints[state.pending_savepoints.index(name) :]
            return
        try:
            state.local_conn.execute(f'RELEASE "{name}"')
        except apsw.SQLError as err:
            raise _no_savepoint(name) from err


def _no_savepoint(name: str) -> MySQLError:
    return MySQLError(1305, "42000", f"SAVEPOINT {name} does not exist")
