"""Running a transpiled statement: plan it, then run the plan's SQLite steps as a read, a write or DDL.

Why its own object: this is the path of almost every statement (``Command.PLAN``, and LOAD DATA's
batches), and it is where the session's parts meet — the connections (``connections.py``), the
transaction (``transaction_control.py``, ``transaction_state.py``) and the replicated writer
(``replicated_write.py``). It holds the session for what a statement reads and leaves behind in it
(current database, ``FOUND_ROWS()``, ``ROW_COUNT()``, ``LAST_INSERT_ID()``); the columns of a read's
result are ``result_columns.py``'s job.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from itertools import islice
from typing import TYPE_CHECKING

import apsw

from marmot.engine import error_details, errors, foreign_keys, sql_mode
from marmot.engine.column_checks import ColumnCheck, StatementChecks, table_checks
from marmot.engine.errors import MySQLError
from marmot.engine.locking import retry_busy
from marmot.engine.read_only import read_only_error
from marmot.engine.result_columns import ResultColumns
from marmot.engine.results import OkResult, Result, ResultSet, Row
from marmot.engine.table_description import describe
from marmot.sql import lexer
from marmot.sql.transpiler import DDL, READ, NoSuchTable, Plan, SQLSyntaxError, Unsupported

if TYPE_CHECKING:
    from marmot.engine.session import Session

_STATEMENT_ERRORS = errors.STATEMENT_ERRORS
_READ_KEYWORDS = frozenset({"SELECT", "WITH", "TABLE", "VALUES", "("})


def _read_databases(plan: Plan, current: str | None) -> set[str] | None:
    """The databases a read names, for its read barrier: the current one when a table is unqualified,
    and every ``otherdb.table``; None (every database) when it reads INFORMATION_SCHEMA."""
    if "information_schema" in plan.attach:
        return None
    dbs = set(plan.attach)
    if plan.needs_database and current:
        dbs.add(current)
    return dbs


class PlanRunner:
    """Plans and runs the transpiled statements of one session."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.columns = ResultColumns(session)

    def plan(self, norm: lexer.Normalized, sql: str) -> Plan:
        """The cached plan of ``norm`` for the current database and its schema generation."""
        s = self.session
        database = s.database or ""
        gen = s.ctx.databases.generation(database) if database else 0
        try:
            return s.ctx.transpiler.plan(norm, database, gen, sql)
        except SQLSyntaxError as err:
            raise errors.syntax_error(str(err)) from err
        except NoSuchTable as err:
            raise errors.no_such_table(str(err)) from err
        except Unsupported as err:
            raise MySQLError(1235, "42000", f"This version of Marmot doesn't yet support: {err}") from err

    def connection_for(self, plan: Plan) -> apsw.Connection:
        """The connection a plan runs on (the one holding the session's SQLite transaction, if any),
        with the databases it names ATTACHed."""
        s = self.session
        local = s.txn.local_conn
        try:
            conn = local if local is not None else s.connections.get(s.database)
            return s.connections.attach_all(conn, plan.attach) if plan.attach else conn
        except MySQLError as err:
            # a table of a database that does not exist: MySQL names the table (1146 'db.t')
            raise error_details.missing_database_table(err, (step.sql for step in plan.steps)) from err

    async def run_statement(self, sql: str, norm: lexer.Normalized, params: list[object]) -> Result:
        """``Command.PLAN``: plan the statement and run it."""
        s = self.session
        try:
            plan = self.plan(norm, sql)
        except MySQLError as err:
            # a table created on another node may be missing here only: a read with a barrier to run
            # catches up first and plans again
            if err.code != 1146 or norm.keyword not in _READ_KEYWORDS or s.reads.needed(sql) is None:
                raise
            await s.reads.before_read(sql, [s.database] if s.database else None)
            plan = self.plan(norm, sql)
        else:
            if plan.kind == READ and s.reads.needed(sql) is not None:
                dbs = _read_databases(plan, s.database)
                if dbs is None or dbs:
                    await s.reads.before_read(sql, dbs)
                    plan = self.plan(norm, sql)  # the barrier may have applied DDL: the cached plan if not
        if plan.kind == READ:  # the common case, straight to the read
            return await self._read(plan, norm.literals, params)
        if (
            plan.attach
            and not plan.needs_database
            and len(plan.attach) == 1
            and s.ctx.replication is not None
        ):
            # Every table is qualified with one other database: run it as a statement of that database,
            # so its rows are captured and replicated in that database's stream.
            target = next(iter(plan.attach))
            saved = s.database
            s.database = target
            try:
                return await self._run_retrying(self.plan(norm, sql), norm, sql, params)
            finally:
                s.database = saved
        return await self._run_retrying(plan, norm, sql, params)

    async def _run_retrying(
        self, plan: Plan, norm: lexer.Normalized, sql: str, params: list[object]
    ) -> Result:
        """DDL is serialised cluster-wide: a DDL that meets another one in flight (a write conflict on the
        database's DDL intent) waits and retries, re-planned against the schema the other one left, for up
        to ``[ddl] lock_lease_seconds`` before the client gets the 1213."""
        ctx = self.session.ctx
        if plan.kind != DDL or ctx.replication is None:
            return await self.run(plan, norm.literals, params)
        deadline = time.monotonic() + ctx.ddl_lock_lease_s
        delay = 0.02
        while True:
            try:
                return await self.run(plan, norm.literals, params)
            except MySQLError as err:
                if err.code != 1213 or time.monotonic() + delay > deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)
            plan = self.plan(norm, sql)

    async def run(self, plan: Plan, literals: list[object], params: list[object]) -> Result:
        """Run one plan with its literals and the client's parameters bound."""
        if plan.kind == READ:
            return await self._read(plan, literals, params)
        s = self.session
        if s.database is None and plan.needs_database:
            raise MySQLError(1046, "3D000", "No database selected")
        if s.ctx.read_only:
            raise read_only_error()
        if plan.kind == DDL:
            if not s.ctx.ddl_implicit_commit and (s.txn.in_transaction or s.txn.replicated is not None):
                raise MySQLError(
                    1105,
                    "HY000",
                    "DDL inside a transaction is refused ([transaction] "
                    "ddl_implicit_commit = false): COMMIT or ROLLBACK first",
                )
            await s.transactions.implicit_commit()
            if s.connections.foreign_keys and s.database is not None and not plan.attach:
                self._refuse_fk_ddl(plan)
            if s.ctx.replication is not None and not _is_truncate(plan):
                return await self._ddl(plan)
        return await self._write(plan, literals, params)

    # -- reads ----------------------------------------------------------------------------------------

    async def _read(self, plan: Plan, literals: list[object], params: list[object]) -> Result:
        s = self.session
        conn = self.connection_for(plan)
        # The result columns of a plan only change with the schema: after the first run the traced
        # cursor (which asks SQLite for column metadata on every statement) is not needed.
        known = self.columns.known(plan)
        traced, plain = s.connections.read_cursors(conn, self.columns.trace)
        cursor = plain if known is not None else traced
        self.columns.description = None
        rows: list[Row] = []
        view = s.writer.reads_in_view(s.database)
        if view:  # this transaction wrote: its reads see its own writes
            assert s.database is not None
            await s.writer.enter_view_to_read(conn, s.database)
        try:
            if view or not plan.steps:
                rows = self._read_steps(conn, plan, literals, params, cursor)
            else:
                rows = await self._read_steps_yielding(plan, literals, params, cursor)
        except apsw.BusyError:
            rows = await retry_busy(
                lambda: self._read_steps(conn, plan, literals, params), s.ctx.lock_wait_timeout_s
            )
        except _STATEMENT_ERRORS as err:
            if s.database is None and isinstance(err, apsw.SQLError) and "no such table" in str(err):
                raise MySQLError(1046, "3D000", "No database selected") from err
            raise self.detailed(errors.from_sqlite(err, s.database or ""), plan, conn) from err
        finally:
            if view:
                s.writer.park_view()
        if s.txn.autocommit is False and not s.txn.in_transaction:
            s.txn.in_transaction = True
        if known is not None:
            return ResultSet(known, rows)
        return ResultSet(self.columns.of_plan(plan), rows)

    def _read_steps(
        self,
        conn: apsw.Connection,
        plan: Plan,
        literals: list[object],
        params: list[object],
        cursor: apsw.Cursor | None = None,
    ) -> list[Row]:
        if cursor is None:
            cursor = conn.cursor()
            cursor.exec_trace = self.columns.trace
        rows: list[Row] = []
        found: int | None = None
        for step in plan.steps:
            rows = cursor.execute(step.sql, _bind(step.binds, literals, params)).fetchall()
            if step.role == "found_rows":
                found = int(rows[0][0]) if rows else 0
        self.session.variables["__found_rows"] = len(rows) if found is None else found
        return rows

    async def _read_steps_yielding(
        self, plan: Plan, literals: list[object], params: list[object], cursor: apsw.Cursor
    ) -> list[Row]:
        """``_read_steps``, but the last step's rows are fetched in batches with the event loop free
        in between: a read of millions of rows must not stall every other connection of the node.

        Only outside a transaction's write view: the cursor stays open across the pauses, which is
        safe on the session's own connection (its commands run one at a time)."""
        *first, last = plan.steps
        found: int | None = None
        rows: list[Row]
        for step in first:
            rows = cursor.execute(step.sql, _bind(step.binds, literals, params)).fetchall()
            if step.role == "found_rows":
                found = int(rows[0][0]) if rows else 0
        it = cursor.execute(last.sql, _bind(last.binds, literals, params))
        rows = list(islice(it, _ROWS_PER_BATCH))
        if len(rows) == _ROWS_PER_BATCH:
            while batch := list(islice(it, _ROWS_PER_BATCH)):
                rows.extend(batch)
                await asyncio.sleep(0)
        if last.role == "found_rows":
            found = int(rows[0][0]) if rows else 0
        self.session.variables["__found_rows"] = len(rows) if found is None else found
        return rows

    def prepared_columns(self, plan: Plan) -> list[tuple[str, str]]:
        """The result columns of a SELECT plan, from preparing (never running) its last step
        (COM_STMT_PREPARE)."""
        step = plan.steps[-1]
        cursor = self.connection_for(plan).cursor()
        captured: list[tuple[tuple[str, str], ...]] = []

        def trace(cur: apsw.Cursor, _sql: str, _b: object) -> bool:
            captured.append(cur.get_description())
            return False  # stop before the statement runs

        cursor.exec_trace = trace
        try:
            cursor.execute(step.sql, [None] * len(step.binds))
        except apsw.ExecTraceAbort:
            pass
        except _STATEMENT_ERRORS as err:
            raise errors.from_sqlite(err, self.session.database or "") from err
        return list(captured[-1]) if captured else []

    # -- writes ---------------------------------------------------------------------------------------

    async def _ddl(self, plan: Plan) -> Result:
        """Replicated DDL (temporary tables stay local): validated here, applied on every node."""
        s = self.session
        writer = s.writer
        conn = self.connection_for(plan)
        sqls = [step.sql for step in plan.steps]
        database = s.database
        if database is None or plan.attach or writer.is_local_ddl(conn, sqls):
            writer.made_temp_tables = (
                True  # from now on, writes check whether they only touch TEMPORARY tables
            )
            if plan.attach and not writer.is_local_ddl(conn, sqls):
                raise MySQLError(
                    1105,
                    "HY000",
                    "DDL on another database than the current one is not replicated: USE that database first",
                )
            return await self._write(plan, [], [])
        # a table rebuild, and a DROP of several tables that reference each other (3730 already checked
        # that no other table references them), must not fire ON DELETE actions or fail on the order
        fk_off = plan.rebuild or foreign_keys.drops_several(sqls)
        if fk_off:
            conn.execute("PRAGMA foreign_keys=OFF").fetchall()
        try:
            await writer.lock_for_write(conn, database)

            def validate() -> None:
                try:
                    before = foreign_keys.declared(conn, plan.tables) if s.connections.foreign_keys else set()
                    for sql in sqls:
                        conn.execute(sql)
                    if s.connections.foreign_keys:
                        foreign_keys.refuse_definition(conn, database, plan.tables, before)
                except _STATEMENT_ERRORS as err:
                    raise errors.from_sqlite(err, database) from err

            await writer.replicate_ddl(conn, database, sqls, validate)
        finally:
            if fk_off and s.connections.foreign_keys:
                conn.execute("PRAGMA foreign_keys=ON").fetchall()
        s.variables["__row_count"] = 0
        return OkResult()

    async def _write(self, plan: Plan, literals: list[object], params: list[object]) -> Result:
        conn = self.connection_for(plan)
        if plan.rebuild:
            # A table rebuild drops the old table: with enforcement on, that would fire other tables'
            # ON DELETE actions. The pragma only takes effect outside a transaction.
            conn.execute("PRAGMA foreign_keys=OFF").fetchall()
            try:
                return await self._write_locked(conn, plan, literals, params)
            finally:
                if self.session.connections.foreign_keys:
                    conn.execute("PRAGMA foreign_keys=ON").fetchall()
        return await self._write_locked(conn, plan, literals, params)

    async def _write_locked(
        self, conn: apsw.Connection, plan: Plan, literals: list[object], params: list[object]
    ) -> Result:
        s = self.session
        s.functions.start_statement()
        self.begin_checks(plan)
        counter = _AffectedRows(plan.affected, s.client_found_rows) if plan.affected else None

        def run_steps() -> int:
            changed = 0
            for step in plan.steps:
                conn.execute(step.sql, _bind(step.binds, literals, params))
                changed = conn.changes() if plan.kind != DDL else 0
            return changed

        try:
            affected = await self._run_write(conn, plan, run_steps, counter)
        except MySQLError as err:
            raise self.detailed(err, plan, conn) from err.__cause__
        if counter is not None:
            affected = counter.count
        if plan.kind == DDL:
            s.ctx.databases.bump_generation(s.txn.local_db or s.database or "")
            for db in plan.attach:
                s.ctx.databases.bump_generation(db)
        if not s.txn.in_transaction or plan.kind == DDL:
            await s.transactions.commit()  # DDL commits implicitly in MySQL, before and after
        insert_id = 0
        if s.functions.first_generated is not None:
            s.last_insert_id = insert_id = s.functions.first_generated
        elif plan.autoinc and s.functions.last_explicit is not None:
            insert_id = s.functions.last_explicit
        s.variables["__row_count"] = affected
        checks = s.functions.checks
        if checks is not None and plan.value_order:
            checks.in_order(plan.value_order)
        warnings = len(s.warnings) + (checks.dropped if checks is not None else 0)
        return OkResult(affected_rows=affected, last_insert_id=insert_id, warnings=warnings)

    async def _run_write(
        self, conn: apsw.Connection, plan: Plan, run_steps: Callable[[], int], counter: _AffectedRows | None
    ) -> int:
        """Run a write's steps: captured for 2PC, or under the session's own SQLite transaction."""
        s = self.session
        if self._replicates(conn, plan):
            assert s.database is not None
            return await s.writer.run_captured(conn, s.database, run_steps, counter, self.statement_error)
        if s.ctx.replication is None or plan.kind == DDL:
            await s.transactions.begin_write(conn)
        else:
            # a write to TEMPORARY tables only, with replication on: it commits at once (a SAVEPOINT
            # outside a transaction is one), outside the view, holding no lock across statements
            s.writer.close_view()
        if counter is not None:
            conn.preupdate_hook(counter)
        try:
            return s.transactions.atomic_statement(conn, run_steps)
        finally:
            if counter is not None:
                conn.preupdate_hook(None)

    def detailed(self, err: MySQLError, plan: Plan, conn: apsw.Connection) -> MySQLError:
        """``err`` with the details MySQL gives and SQLite's message lacks (``error_details.py``): the value
        and key of a duplicate entry, the clause of an unknown column."""
        if err.code == 1062:
            checks = self.session.functions.checks
            stored = checks.stored if checks is not None else {}
            return error_details.duplicate_entry(
                err, err.__cause__, conn, stored.get, self.session.functions.last_auto_value
            )
        if err.code == 1054:
            return error_details.unknown_column_clause(err, (step.sql for step in plan.steps))
        if err.code == 1452 and "(" not in err.message:
            checks = self.session.functions.checks
            return foreign_keys.violation(
                err,
                conn,
                self.session.database or "",
                plan.tables,
                [step.sql for step in plan.steps],
                checks.stored.get if checks is not None else None,
            )
        return err

    def _refuse_fk_ddl(self, plan: Plan) -> None:
        """InnoDB's refusals SQLite lacks (``foreign_keys.py``): DROP TABLE (3730) and TRUNCATE (1701) of a
        table another table references."""
        conn = self.connection_for(plan)
        sqls = [step.sql for step in plan.steps]
        foreign_keys.refuse_drop(conn, sqls)
        if _is_truncate(plan):
            foreign_keys.refuse_truncate(conn, self.session.database or "", sqls)

    def begin_checks(self, plan: Plan, ignore: bool = False) -> None:
        """Give the session's ``__marmot_chk`` the column checks of the tables ``plan`` stores into
        (built once per table and schema generation) and the statement's mode (``sql_mode``, IGNORE)."""
        s = self.session
        tables: list[tuple[ColumnCheck, ...]] = []
        cache = s.ctx.column_checks
        for db, table in plan.checked:
            database = db or s.database or ""
            key = (database, table.lower(), s.ctx.databases.generation(database))
            checks = cache.get(key)
            if checks is None:
                found = describe(s.connections.get(database), table) if database else None
                checks = table_checks(found) if found is not None else ()
                if len(cache) > 4096:
                    cache.clear()
                cache[key] = checks
            tables.append(checks)
        mode = s.variables.get("sql_mode", s.ctx.global_variables.get("sql_mode", ""))
        flags = sql_mode.flags(str(mode or ""))
        notes = str(s.variables.get("sql_notes", s.ctx.global_variables.get("sql_notes", 1))) not in (
            "0",
            "OFF",
        )
        s.functions.begin_checks(
            tables, StatementChecks(flags, plan.ignore or ignore, plan.single_row, s.warnings, notes)
        )

    async def write_batch(self, plan: Plan, param_sets: list[list[object]]) -> int:
        """Run one write plan for many parameter sets in a single transaction (LOAD DATA)."""
        s = self.session
        if s.ctx.read_only:
            raise read_only_error()
        conn = self.connection_for(plan)
        s.functions.start_statement()
        # LOAD DATA LOCAL: MySQL turns data errors into warnings (the server cannot stop the client's file)
        self.begin_checks(plan, ignore=True)

        def run_rows() -> int:
            changed = 0
            for row, params in enumerate(param_sets):
                s.functions.row_base = row
                for step in plan.steps:
                    conn.execute(step.sql, _bind(step.binds, [], params))
                    changed += conn.changes()
            return changed

        try:
            if self._replicates(conn, plan):
                assert s.database is not None
                affected = await s.writer.run_captured(conn, s.database, run_rows, None, self.statement_error)
            else:
                await s.transactions.begin_write(conn)
                affected = s.transactions.atomic_statement(conn, run_rows)
        except MySQLError as err:
            raise self.detailed(err, plan, conn) from err.__cause__
        if not s.txn.in_transaction:
            await s.transactions.commit()
        return affected

    def statement_error(self, err: Exception) -> MySQLError:
        """The MySQL error of a failed write statement (``err`` is one of ``errors.STATEMENT_ERRORS``)."""
        return errors.from_sqlite(err, self.session.database or "")

    def _replicates(self, conn: apsw.Connection, plan: Plan) -> bool:
        """Does this write go through capture and 2PC? Not without a replication layer, not without a
        database, and not when it only writes this session's TEMPORARY tables (never replicated: they
        are committed here at once, outside the transaction)."""
        s = self.session
        if s.ctx.replication is None or s.database is None or s.txn.local_conn is not None:
            return False
        if plan.kind == DDL:
            return _is_truncate(plan)  # other DDL replicates as statements (``_ddl``) or stays local
        return not (s.writer.made_temp_tables and plan.tables and _temp_tables(conn) >= plan.tables)


class _AffectedRows:
    """preupdate hook that counts affected rows the way MySQL does (SQLite's changes() counts matches).

    UPDATE counts rows whose values changed (all matched rows with CLIENT_FOUND_ROWS); an upsert counts 1
    per inserted row and 2 per updated one; REPLACE counts the deleted and the inserted row. Rows touched
    by foreign-key actions or triggers (depth > 0) do not count, as in MySQL.
    """

    __slots__ = ("mode", "found_rows", "count")

    def __init__(self, mode: str, found_rows: bool) -> None:
        self.mode = mode
        self.found_rows = found_rows
        self.count = 0

    def __call__(self, u: apsw.PreUpdate) -> None:
        if u.depth:
            return
        op = u.op
        if op == "UPDATE":
            changed = u.old != u.new
            if self.mode == "upsert":
                self.count += 2 if changed else (1 if self.found_rows else 0)
            elif changed or self.found_rows:
                self.count += 1
        elif self.mode != "update":
            self.count += 1


# Rows fetched between two yields of the event loop by a large read (``_read_steps_yielding``).
_ROWS_PER_BATCH = 2000


def _bind(binds: tuple[tuple[str, int], ...], literals: list[object], params: list[object]) -> list[object]:
    return [literals[i] if k == "l" else params[i] for k, i in binds]


def _is_truncate(plan: Plan) -> bool:
    """TRUNCATE is planned as ``DELETE FROM t``: it replicates as the row deletions it makes."""
    return bool(plan.steps) and all(step.sql.lstrip()[:6].upper() == "DELETE" for step in plan.steps)


def _temp_tables(conn: apsw.Connection) -> set[str]:
    return {r[0].lower() for r in conn.execute("SELECT name FROM temp.sqlite_schema WHERE type = 'table'")}
