"""Transaction control of a session: BEGIN/COMMIT/ROLLBACK, savepoints, statement atomicity, lock waits.

A mixin of ``Session`` (engine/session.py), split out so each file keeps one job: the session routes and
runs statements; this decides when a transaction ends and what a failure undoes. With replication the
writes of a transaction are kept as captured changes (``replicated_write.py``) and COMMIT hands them to the
replication layer; without it (the engine alone) SQLite's own transaction is committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import apsw

from marmot.engine import errors
from marmot.engine.errors import MySQLError
from marmot.engine.results import OkResult, Result
from marmot.sql import lexer

_STATEMENT_ERRORS = errors.STATEMENT_ERRORS
_BUSY_FIRST_SLEEP = 0.0005
_BUSY_MAX_SLEEP = 0.02


class TransactionControl:
    """Transaction and savepoint statements, and the SQLite-transaction helpers behind them."""

    ctx: Any
    database: str | None
    autocommit: bool
    in_transaction: bool
    _txn_conn: apsw.Connection | None
    _txn_db: str | None
    _txn_level: str | None
    _pending_savepoints: list[str]
    _savepoint_marks: dict[str, int]
    _rtxn: Any
    _close_view: Callable[[], None]
    _replicate_transaction: Callable[[], Any]
    _savepoint_mark: Callable[[], int]
    _rollback_to_mark: Callable[[int], None]

    def _atomic_statement(self, conn: apsw.Connection, body: Callable[[], int]) -> int:
        """Run ``body`` as one MySQL statement: inside a transaction a failure undoes only the statement
        (a SAVEPOINT around it); in autocommit mode the SQLite transaction is the statement."""
        use_savepoint = self.in_transaction
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
                self._rollback_sqlite()
            raise errors.from_sqlite(err, self.database or "") from err

    async def _begin_write(self, conn: apsw.Connection) -> None:
        """Take the database's write lock for this session (once per transaction)."""
        if self._txn_conn is not None:
            if self._txn_conn is not conn:
                raise MySQLError(1105, "HY000", "A Marmot transaction can write to one database only")
            return
        if not self.autocommit:
            self.in_transaction = True
        try:
            conn.execute("BEGIN IMMEDIATE")
        except apsw.BusyError:
            await self._retry_busy(lambda: conn.execute("BEGIN IMMEDIATE"))
        self._txn_conn = conn
        self._txn_db = self.database
        for name in self._pending_savepoints:
            conn.execute(f'SAVEPOINT "{name}"')
        self._pending_savepoints.clear()

    async def _retry_busy(self, attempt: Callable[[], object]) -> object:
        deadline = time.monotonic() + self.ctx.lock_wait_timeout_s
        delay = _BUSY_FIRST_SLEEP
        while True:
            await asyncio.sleep(delay)
            try:
                return attempt()
            except apsw.BusyError:
                if time.monotonic() >= deadline:
                    raise errors.lock_wait_timeout() from None
                delay = min(delay * 2, _BUSY_MAX_SLEEP)

    async def _commit(self) -> None:
        conn = self._txn_conn
        self.in_transaction = False
        self._pending_savepoints.clear()
        self._savepoint_marks.clear()
        if self._rtxn is not None:
            await self._replicate_transaction()
        self._txn_level = None
        if conn is None:
            return
        self._txn_conn = None
        self._txn_db = None
        try:
            conn.execute("COMMIT")
        except _STATEMENT_ERRORS as err:
            if not conn.get_autocommit():
                conn.execute("ROLLBACK")
            raise errors.from_sqlite(err, self.database or "") from err

    async def _implicit_commit(self) -> None:
        """BEGIN and DDL end an open transaction first, as in MySQL."""
        if self.in_transaction or self._txn_conn is not None or self._rtxn is not None:
            await self._commit()

    def _rollback_sqlite(self) -> None:
        self._pending_savepoints.clear()
        self._savepoint_marks.clear()
        self._txn_level = None
        self._close_view()
        self._rtxn = None
        conn = self._txn_conn
        self._txn_conn = None
        self._txn_db = None
        if conn is not None and not conn.get_autocommit():
            with contextlib.suppress(apsw.Error):
                conn.execute("ROLLBACK")

    def _rollback_statement(self, sql: str) -> Result:
        toks = [t.text.upper() for t in lexer.code_tokens(sql)]
        if "TO" in toks:
            name = _savepoint_name(sql)
            if self._txn_conn is None:
                if name not in self._pending_savepoints:
                    raise _no_savepoint(name)
                # nothing was written since (or, replicated, the writes are ours to drop): drop the later
                # savepoints, keep this one
                del self._pending_savepoints[self._pending_savepoints.index(name) + 1 :]
                self._rollback_to_mark(self._savepoint_marks.get(name, 0))
                return OkResult()
            try:
                self._txn_conn.execute(f'ROLLBACK TO "{name}"')
            except apsw.SQLError as err:
                raise _no_savepoint(name) from err
            return OkResult()
        self._rollback_sqlite()
        self.in_transaction = False
        return OkResult()

    async def _savepoint(self, sql: str) -> Result:
        """SAVEPOINT: created in SQLite once the transaction holds the write lock; before its first
        write the transaction has changed nothing, so the savepoint is only remembered (taking the lock
        here would block every writer for the whole of, say, a mysqldump --single-transaction)."""
        name = _savepoint_name(sql)
        self.in_transaction = True
        if self._txn_conn is None:
            if name in self._pending_savepoints:
                self._pending_savepoints.remove(name)
            self._pending_savepoints.append(name)
            self._savepoint_marks[name] = self._savepoint_mark()
            return OkResult()
        self._txn_conn.execute(f'SAVEPOINT "{name}"')
        return OkResult()

    def _release(self, sql: str) -> Result:
        name = _savepoint_name(sql)
        if self._txn_conn is None:
            if name not in self._pending_savepoints:
                raise _no_savepoint(name)
            del self._pending_savepoints[self._pending_savepoints.index(name) :]
            return OkResult()
        try:
            self._txn_conn.execute(f'RELEASE "{name}"')
        except apsw.SQLError as err:
            raise _no_savepoint(name) from err
        return OkResult()

    # -- raw SQLite mode ------------------------------------------------------------------------------


def _no_savepoint(name: str) -> MySQLError:
    return MySQLError(1305, "42000", f"SAVEPOINT {name} does not exist")


def _savepoint_name(sql: str) -> str:
    toks = lexer.code_tokens(sql)
    if len(toks) < 2:
        raise errors.syntax_error("You have an error in your SQL syntax; savepoint name missing")
    return lexer.unquote_identifier(toks[-1].text).replace('"', "")
