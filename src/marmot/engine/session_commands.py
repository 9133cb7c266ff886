"""Session statements that are not plain SQL: SET, database DDL, LOAD DATA, LOAD EXTENSION.

A mixin of ``Session`` (engine/session.py), split out to keep each file one job: these statements are
answered by the engine itself instead of becoming transpiled SQLite plans (or, for LOAD DATA, become many
executions of one plan).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import apsw

from marmot.engine import errors, extensions, load_data
from marmot.engine.errors import MySQLError
from marmot.engine.replicated_write import LEVELS
from marmot.engine.results import OkResult, Result, ResultSet
from marmot.engine.variables import normalize_system_value, parse_set, simple_value
from marmot.sql import lexer
from marmot.storage.databases import (
    DatabaseError,
    DatabaseExists,
    InvalidDatabaseName,
    UnknownDatabase,
    validate_name,
)

if TYPE_CHECKING:
    from marmot.sql.transpiler import Plan


class SessionCommands:
    """SET / CREATE|DROP|ALTER DATABASE / LOAD DATA / LOAD EXTENSION for ``Session``."""

    async def _load_data(self, sql: str) -> Result:
        spec = load_data.parse(sql)
        if not spec.local:
            raise MySQLError(1290, "HY000", "The MySQL server is running with the --secure-file-priv option so it "
                                            "cannot execute this statement")
        if not self.ctx.local_infile or self.request_local_file is None:
            raise MySQLError(3948, "42000", "Loading local data is disabled; this must be enabled on both the "
                                            "client and server sides")
        data = (await self.request_local_file(spec.filename)).decode("utf-8", "surrogateescape")
        rows = load_data.split_rows(data, spec)
        database = spec.database or self.database
        if database is None:
            raise MySQLError(1046, "3D000", "No database selected")
        conn = self._conn(database)
        columns = spec.columns or [r[1] for r in conn.execute(f'PRAGMA table_info("{spec.table}")')]
        if not columns:
            raise errors.no_such_table(f"Table '{database}.{spec.table}' doesn't exist")
        verb = {"REPLACE": "REPLACE", "IGNORE": "INSERT IGNORE"}.get(spec.mode, "INSERT")
        target = f"`{spec.database}`.`{spec.table}`" if spec.database else f"`{spec.table}`"
        by_width: dict[int, list[list[object]]] = {}
        skipped = 0
        for row in rows:
            keep = [i for i, c in enumerate(columns[: len(row)]) if not c.startswith("@")]
            values = [row[i] for i in keep]
            if not values:
                skipped += 1
                continue
            by_width.setdefault(len(row), []).append(values)
        affected = 0
        for width, batch in by_width.items():
            cols = [c for c in columns[:width] if not c.startswith("@")]
            stmt = f"{verb} INTO {target} ({', '.join(f'`{c}`' for c in cols)}) VALUES ({', '.join('?' * len(cols))})"
            norm = lexer.normalize(stmt)
            plan = self._plan(norm, stmt)
            affected += await self._write_batch(plan, batch)
        info = f"Records: {len(rows)}  Deleted: 0  Skipped: {skipped + len(rows) - affected if spec.mode == 'IGNORE' else skipped}  Warnings: 0"
        return OkResult(affected_rows=affected, info=info)

    async def _write_batch(self, plan: Plan, param_sets: list[list[object]]) -> int:
        """Run one write plan for many parameter sets in a single transaction (LOAD DATA)."""
        if self.ctx.read_only:
            raise MySQLError(1290, "HY000", "The MySQL server is running with the --read-only option")
        conn = self._prepare_conn(plan)

        def run_rows() -> int:
            changed = 0
            for params in param_sets:
                for step in plan.steps:
                    conn.execute(step.sql, self._bind(step.binds, [], params))
                    changed += conn.changes()
            return changed

        if self._replicated_write(conn, plan):
            affected = await self._run_captured(conn, self.database, run_rows, None, self._statement_error)
        else:
            await self._begin_write(conn)
            affected = self._atomic_statement(conn, run_rows)
        if not self.in_transaction:
            await self._commit()
        return affected

    def _load_extension(self, sql: str) -> Result:
        toks = lexer.code_tokens(sql)[2:]
        name = "".join(lexer.unquote_string(t.text) if t.kind in ("sq", "dq") else t.text for t in toks)
        path = extensions.resolve(self.ctx.extensions_dir, name.strip())
        for conn in self._conns.values():
            extensions.load(conn, path)
        if not self._conns:
            extensions.load(self._conn(), path)
        if path not in self._extensions:
            self._extensions.append(path)
        return OkResult()


    # -- SET ------------------------------------------------------------------------------------------

    async def _set(self, sql: str) -> Result:
        try:
            assignments = parse_set(sql)
        except ValueError as err:
            raise errors.syntax_error(
                f"You have an error in your SQL syntax; check the manual that corresponds to your MySQL "
                f"server version for the right syntax to use near '{sql}' at line 1 ({err})"
            ) from err
        for a in assignments:
            if a.kind == "names":
                self.variables["character_set_client"] = a.name
                self.variables["character_set_connection"] = a.name
                self.variables["character_set_results"] = a.name
                if a.extra:
                    self.variables["collation_connection"] = a.extra
                continue
            if a.kind in ("charset", "transaction"):
                if a.kind == "charset":
                    self.variables["character_set_client"] = a.name
                    self.variables["character_set_results"] = a.name
                continue
            ok, value = simple_value(a.value_sql)
            if not ok:
                value = await self._evaluate(a.value_sql)
            if a.kind == "user":
                self.user_variables[a.name] = value
                continue
            if a.name == "autocommit" and a.scope != "global" and not self.autocommit \
                    and str(value).upper() in ("1", "ON", "TRUE"):
                await self._commit()  # MySQL commits an open transaction when autocommit is switched on
            self._set_system(a.name, a.scope, value)
        return OkResult()

    async def _evaluate(self, expr_sql: str) -> object:
        result = await self.execute("SELECT " + expr_sql)
        if isinstance(result, ResultSet) and result.rows:
            return result.rows[0][0]
        return None

    def _set_system(self, name: str, scope: str, value: object) -> None:
        if name == "marmot_transpilation":
            self.transpilation = str(value).upper() not in ("OFF", "0", "FALSE")
            return
        if name == "marmot_write_consistency":
            level = str(value or "").upper()
            if level not in LEVELS and level not in ("", "DEFAULT"):
                raise MySQLError(1231, "42000", f"Variable 'marmot_write_consistency' can't be set to the value "
                                                f"of '{value}' (use one of {', '.join(LEVELS)})")
            self.variables[name] = "" if level in ("", "DEFAULT") else level
            return
        if name in ("general_log", "general_log_file") and self.ctx.general_log is not None:
            if scope != "global":
                raise MySQLError(1229, "HY000", f"Variable '{name}' is a GLOBAL variable and should be set "
                                                "with SET GLOBAL")
            if name == "general_log":
                on = str(value).upper() in ("1", "ON", "TRUE")
                self.ctx.general_log.set_enabled(on)
                self.ctx.global_variables[name] = 1 if on else 0
            else:
                self.ctx.general_log.set_path(str(value))
                self.ctx.global_variables[name] = str(value)
            return
        if name not in self.ctx.global_variables:
            raise MySQLError(1193, "HY000", f"Unknown system variable '{name}'")
        if name == "foreign_key_checks" and scope != "global":
            on = str(value).upper() not in ("0", "OFF", "FALSE")
            self.variables[name] = 1 if on else 0
            self._foreign_keys = on
            for conn in self._conns.values():
                if conn.get_autocommit():  # SQLite changes it only outside a transaction
                    conn.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}").fetchall()
            return
        if value is None:  # DEFAULT
            value = self.ctx.global_variables[name]
        try:
            value = normalize_system_value(name, value)
        except ValueError as err:
            raise MySQLError(1231, "42000", str(err)) from err
        if name == "autocommit" and scope != "global":
            self.autocommit = bool(value)  # an open transaction was committed by _set when turning it on
            return
        if scope == "global":
            self.ctx.global_variables[name] = value
        else:
            self.variables[name] = value

    # -- databases ------------------------------------------------------------------------------------

    async def _database_ddl(self, sql: str, kw: str) -> Result:
        toks = lexer.code_tokens(sql)
        rest = [t for t in toks[2:]]
        words = [t.text.upper() for t in rest]
        if kw == "ALTER":
            return OkResult()  # character set / collation options: SQLite has one encoding
        if_clause = False
        if kw == "CREATE" and words[:3] == ["IF", "NOT", "EXISTS"]:
            if_clause, rest = True, rest[3:]
        elif kw == "DROP" and words[:2] == ["IF", "EXISTS"]:
            if_clause, rest = True, rest[2:]
        if not rest:
            raise errors.syntax_error("You have an error in your SQL syntax; a database name is missing")
        name = lexer.unquote_identifier(rest[0].text)
        await self._implicit_commit()
        try:
            if self.ctx.replication is not None:
                return await self._replicated_database_ddl(kw, name, if_clause)
            if kw == "CREATE":
                created = self.ctx.databases.create(name, if_not_exists=if_clause)
                return OkResult(affected_rows=1 if created else 0)
            for other in self.ctx.sessions.values():
                if isinstance(other, SessionCommands):
                    other.forget_database(name)
            dropped = self.ctx.databases.drop(name, if_exists=if_clause)
            if self.database == name:
                self.database = None
            return OkResult(affected_rows=0 if not dropped else 1)
        except DatabaseExists as err:
            raise MySQLError(1007, "HY000", str(err)) from err
        except UnknownDatabase as err:
            raise MySQLError(1008, "HY000", str(err)) from err
        except InvalidDatabaseName as err:
            raise MySQLError(1102, "42000", str(err)) from err
        except DatabaseError as err:
            raise MySQLError(1105, "HY000", str(err)) from err

    async def _replicated_database_ddl(self, kw: str, name: str, if_clause: bool) -> Result:
        """CREATE/DROP DATABASE through 2PC: checked here first (1007/1008/1102), applied on every node."""
        dbs = self.ctx.databases
        if kw == "CREATE":
            validate_name(name)
            if dbs.exists(name):
                if if_clause:
                    return OkResult()
                raise DatabaseExists(f"Can't create database '{name}'; database exists")
            await self._replicate_database_op("create", name)
            return OkResult(affected_rows=1)
        if not dbs.exists(name):
            if if_clause:
                return OkResult()
            raise UnknownDatabase(f"Can't drop database '{name}'; database doesn't exist")
        await self._replicate_database_op("drop", name)
        if self.database == name:
            self.database = None
        return OkResult(affected_rows=1)

    def forget_database(self, name: str) -> None:
        """``name`` is being dropped: close our handles on it so the files can go."""
        for conn, dbs in self._attached.items():
            if name in dbs:
                dbs.discard(name)
                with contextlib.suppress(apsw.Error):
                    conn.execute("DETACH DATABASE ?", (name,))
        conn = self._conns.pop(name, None)
        if conn is not None:
            if conn is self._txn_conn:
                self._rollback_sqlite()
            self._attached.pop(conn, None)
            self._read_cursors.pop(conn, None)
            conn.close()
        if self.database == name:
            self.database = None
