"""Statements of a session with ``SET marmot_transpilation = OFF``: SQLite SQL as given, replicated.

Why this exists (issue #12, "No silent divergence"): raw SQLite used to run on the session's connection
as it came, so its writes changed one node's file and nothing else — no capture, no 2PC, no row
versions, nothing any digest could see. Now each statement is classified first (``raw_statement.py``:
SQLite's authorizer lists what it would touch) and takes the same road as its transpiled twin:

* writes go through ``ReplicatedWriter.run_captured`` (dry run with the preupdate hook, rolled back,
  2PC at COMMIT or at once in autocommit), inside transactions and savepoints exactly like MySQL-dialect
  writes; the client gets the affected rows, the new rowid of an INSERT, or the rows of RETURNING;
* DDL is validated here and replicated as statements (``ReplicatedWriter.replicate_ddl``), retried like transpiled DDL
  when it meets another DDL in flight (1213) for up to ``[ddl] lock_lease_seconds``;
* reads, PRAGMA queries and connection settings, ATTACH/DETACH, the session's TEMPORARY objects and
  page-level maintenance (VACUUM, REINDEX, PRAGMA optimize) run on this node only, as they do with
  transpilation ON;
* everything else is refused with an error that says why, before anything runs.

Without a replication layer (the engine alone) or without a current database, the text runs as given.
What the transpiler adds is not applied: no AUTO_INCREMENT ids from the node's generator (SQLite picks
the rowid, so two nodes inserting at once may collide and one gets 1213), no MySQL functions rewritten.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import apsw

from marmot.engine import errors
from marmot.engine import raw_statement as rs
from marmot.engine.errors import MySQLError
from marmot.engine.locking import retry_busy
from marmot.engine.read_only import read_only_error
from marmot.engine.result_columns import Description
from marmot.engine.results import OkResult, Result, ResultSet, Row
from marmot.sql import lexer

if TYPE_CHECKING:
    from marmot.engine.session import Session

_STATEMENT_ERRORS = errors.STATEMENT_ERRORS


class RawSQL:
    """Runs the statements of a ``marmot_transpilation = OFF`` session (module docstring)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._description: Description | None = None  # of the statement last traced

    def _trace(self, cursor: apsw.Cursor, sql: str, bindings: object) -> bool:
        self._description = cursor.description_full
        return True

    def _cursor(self, conn: apsw.Connection) -> apsw.Cursor:
        cursor = conn.cursor()
        cursor.exec_trace = self._trace
        self._description = None
        return cursor

    async def run(self, sql: str, norm: lexer.Normalized, params: list[object]) -> Result:
        """``Command.RAW``: run ``sql`` (one or more SQLite statements), return the last one's result."""
        s = self.session
        conn = s.connections.get(s.database)
        bindings = params or None
        if s.ctx.replication is None or s.database is None:
            return await self._here(conn, sql, bindings)
        result: Result = OkResult()
        text: str | None = sql
        while text:
            stmt = rs.classify(conn, text, s.database, bindings)
            if stmt is None:
                break
            if bindings is not None and stmt.rest is not None and _has_statement(stmt.rest):
                raise MySQLError(1105, "HY000", "a prepared statement holds one SQL statement")
            result = await self._statement(conn, stmt, bindings)
            text = stmt.rest
        return result

    async def _statement(
        self, conn: apsw.Connection, stmt: rs.RawStatement, bindings: list[object] | None
    ) -> Result:
        s = self.session
        if stmt.kind == rs.READ:
            return await self._read(conn, stmt.sql, bindings)
        if s.ctx.read_only:
            raise read_only_error()
        if stmt.kind == rs.WRITE:
            return await self._write(conn, stmt, bindings)
        if stmt.kind == rs.DDL:
            return await self._ddl(conn, stmt.sql)
        if stmt.kind == rs.TEMP_DDL:
            s.writer.made_temp_tables = True
        assert stmt.kind in (rs.TEMP_WRITE, rs.TEMP_DDL, rs.MAINTENANCE), stmt.kind
        # Local to this node and committed at once, outside the transaction's view (as with
        # transpilation ON: TEMPORARY tables belong to the session, maintenance changes no row)
        s.writer.close_view()
        return await self._here(conn, stmt.sql, bindings)

    async def _read(self, conn: apsw.Connection, sql: str, bindings: list[object] | None) -> Result:
        """A statement that changes no row: in the transaction's view when it has written (its reads
        see its own writes), else on the latest committed data."""
        writer = self.session.writer
        db = self.session.database or ""
        view = writer.reads_in_view(db)
        if view:
            await writer.enter_view_to_read(conn, db)
        try:
            return await self._here(conn, sql, bindings)
        finally:
            if view:
                writer.park_view()

    async def _here(self, conn: apsw.Connection, sql: str, bindings: list[object] | None) -> Result:
        """Run ``sql`` on this node's connection as it is, waiting out SQLITE_BUSY."""

        def attempt() -> list[Row]:
            return self._cursor(conn).execute(sql, bindings).fetchall()

        s = self.session
        try:
            try:
                rows = attempt()
            except apsw.BusyError:
                rows = await retry_busy(attempt, s.ctx.lock_wait_timeout_s)
        except _STATEMENT_ERRORS as err:
            raise errors.from_sqlite(err, s.database or "") from err
        if self._description:
            return ResultSet([d[:2] for d in self._description], rows)
        return OkResult(affected_rows=conn.changes())

    async def _write(
        self, conn: apsw.Connection, stmt: rs.RawStatement, bindings: list[object] | None
    ) -> Result:
        """A write to the database's tables: captured in a dry run and replicated like any write."""
        s = self.session
        db = s.database
        assert db is not None
        out: dict[str, Any] = {}

        def body() -> int:
            out["rows"] = self._cursor(conn).execute(stmt.sql, bindings).fetchall()
            changed = conn.changes()
            if stmt.inserts and changed:
                out["rowid"] = conn.last_insert_rowid()
            return changed

        affected = await s.writer.run_captured(conn, db, body, None, s.plans.statement_error)
        description = self._description
        if not s.txn.in_transaction:
            await s.transactions.commit()
        s.variables["__row_count"] = affected
        insert_id = int(out.get("rowid", 0))
        if insert_id:
            s.last_insert_id = insert_id
        if description:
            return ResultSet([d[:2] for d in description], out["rows"])
        return OkResult(affected_rows=affected, last_insert_id=insert_id)

    async def _ddl(self, conn: apsw.Connection, sql: str) -> Result:
        """DDL of the database's schema, replicated as statements like transpiled DDL (which see)."""
        s = self.session
        db = s.database
        assert db is not None
        if not s.ctx.ddl_implicit_commit and (s.txn.in_transaction or s.txn.replicated is not None):
            raise MySQLError(
                1105,
                "HY000",
                "DDL inside a transaction is refused ([transaction] "
                "ddl_implicit_commit = false): COMMIT or ROLLBACK first",
            )
        await s.transactions.implicit_commit()
        statement = _without_final_semicolon(sql)

        def validate() -> None:
            try:
                conn.execute(statement)
            except _STATEMENT_ERRORS as err:
                raise errors.from_sqlite(err, db) from err

        deadline = time.monotonic() + s.ctx.ddl_lock_lease_s
        delay = 0.02
        while True:
            try:
                await s.writer.lock_for_write(conn, db)
                await s.writer.replicate_ddl(conn, db, [statement], validate)
                break
            except MySQLError as err:
                if err.code != 1213 or time.monotonic() + delay > deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)
        s.variables["__row_count"] = 0
        return OkResult()


def _has_statement(text: str) -> bool:
    try:
        return bool(lexer.normalize(text).keyword)
    except lexer.LexError:
        return True


def _without_final_semicolon(sql: str) -> str:
    """The statement as replicated: without the separator SQLite left on its text (``… ;  ``), so the
    applier's idempotency rules (``replication/apply/idempotent_ddl.py``, anchored at the end) still match."""
    text = sql.strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    return text
