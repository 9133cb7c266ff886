"""Session statements that are not plain SQL: SET, database DDL, LOAD DATA, LOAD EXTENSION.

These are answered by the engine itself instead of becoming transpiled SQLite plans (or, for LOAD DATA,
become many executions of one plan); each handler takes the statement's text and parses it with
``statements.py`` (LOAD DATA: ``load_data.py``). A separate object from ``Session`` so the session file
keeps to composing its parts and routing; it holds the session, whose variables and state SET changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from marmot.engine import errors, extensions, load_data, sql_mode, statements
from marmot.engine.causal_token import read_after
from marmot.engine.errors import MySQLError
from marmot.engine.read_consistency import VARIABLE as READ_VARIABLE
from marmot.engine.read_consistency import check_level
from marmot.engine.replicated_write import LEVELS
from marmot.engine.results import OkResult, Result, ResultSet
from marmot.engine.variables import DEFAULT_SQL_MODE, normalize_system_value, simple_value
from marmot.sql import lexer
from marmot.storage.databases import (
    DatabaseError,
    DatabaseExists,
    InvalidDatabaseName,
    UnknownDatabase,
    validate_name,
)

if TYPE_CHECKING:
    from marmot.engine.session import Session


class SessionCommands:
    """SET / CREATE|DROP|ALTER DATABASE / LOAD DATA / LOAD EXTENSION for one session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # -- LOAD DATA, LOAD EXTENSION --------------------------------------------------------------------

    async def load_data(self, sql: str) -> Result:
        s = self.session
        spec = load_data.parse(sql)
        if not spec.local:
            raise MySQLError(
                1290,
                "HY000",
                "The MySQL server is running with the --secure-file-priv option so it "
                "cannot execute this statement",
            )
        if not s.ctx.local_infile or s.request_local_file is None:
            raise MySQLError(
                3948,
                "42000",
                "Loading local data is disabled; this must be enabled on both the client and server sides",
            )
        data = (await s.request_local_file(spec.filename)).decode("utf-8", "surrogateescape")
        rows = load_data.split_rows(data, spec)
        database = spec.database or s.database
        if database is None:
            raise MySQLError(1046, "3D000", "No database selected")
        conn = s.connections.get(database)
        columns = spec.columns or [r[1] for r in conn.execute(f'PRAGMA table_info("{spec.table}")')]
        if not columns:
            raise errors.no_such_table(f"Table '{database}.{spec.table}' doesn't exist")
        verb = {"REPLACE": "REPLACE", "IGNORE": "INSERT IGNORE"}.get(spec.mode, "INSERT")
        target = f"`{spec.database}`.`{spec.table}`" if spec.database else f"`{spec.table}`"
        by_width: dict[int, list[list[object]]] = {}
        skipped = 0
        for row in rows:
            keep = [i for i, c in enumerate(columns[: len(row)]) if not c.startswith("@")]
            values: list[object] = [row[i] for i in keep]
            if not values:
                skipped += 1
                continue
            by_width.setdefault(len(row), []).append(values)
        affected = 0
        dropped = 0  # warnings beyond those SHOW WARNINGS keeps
        for width, batch in by_width.items():
            cols = [c for c in columns[:width] if not c.startswith("@")]
            stmt = f"{verb} INTO {target} ({', '.join(f'`{c}`' for c in cols)}) VALUES ({', '.join('?' * len(cols))})"
            plan = s.plans.plan(lexer.normalize(stmt), stmt)
            affected += await s.plans.write_batch(plan, batch)
            checks = s.functions.checks
            dropped += checks.dropped if checks is not None else 0
        warned = len(s.warnings) + dropped
        info = f"Records: {len(rows)}  Deleted: 0  Skipped: {skipped + len(rows) - affected if spec.mode == 'IGNORE' else skipped}  Warnings: {warned}"
        return OkResult(affected_rows=affected, info=info, warnings=warned)

    def load_extension(self, sql: str) -> Result:
        s = self.session
        path = extensions.resolve(s.ctx.extensions_dir, statements.extension_name(sql))
        s.connections.load_extension(path, s.database)
        return OkResult()

    # -- SET ------------------------------------------------------------------------------------------

    async def set(self, sql: str) -> Result:
        s = self.session
        try:
            assignments = statements.parse_set(sql)
        except ValueError as err:
            raise errors.syntax_error(
                f"You have an error in your SQL syntax; check the manual that corresponds to your MySQL "
                f"server version for the right syntax to use near '{sql}' at line 1 ({err})"
            ) from err
        for a in assignments:
            if a.kind == "names":
                s.variables["character_set_client"] = a.name
                s.variables["character_set_connection"] = a.name
                s.variables["character_set_results"] = a.name
                if a.extra:
                    s.variables["collation_connection"] = a.extra
                continue
            if a.kind in ("charset", "transaction"):
                if a.kind == "charset":
                    s.variables["character_set_client"] = a.name
                    s.variables["character_set_results"] = a.name
                continue
            ok, value = simple_value(a.value_sql)
            if not ok:
                value = await self._evaluate(a.value_sql)
            if a.kind == "user":
                s.user_variables[a.name] = value
                continue
            if a.name == "marmot_read_after":
                await read_after(s.ctx.replication, value)
                s.variables[a.name] = "" if value is None else str(value)
                continue
            if (
                a.name == "autocommit"
                and a.scope != "global"
                and not s.autocommit
                and str(value).upper() in ("1", "ON", "TRUE")
            ):
                await (
                    s.transactions.commit()
                )  # MySQL commits an open transaction when autocommit is switched on
            self._set_system(a.name, a.scope, value)
        return OkResult()

    async def _evaluate(self, expr_sql: str) -> object:
        result = await self.session.execute("SELECT " + expr_sql)
        if isinstance(result, ResultSet) and result.rows:
            return result.rows[0][0]
        return None

    def _set_system(self, name: str, scope: str, value: object) -> None:
        s = self.session
        ctx = s.ctx
        if name == "marmot_transpilation":
            s.transpilation = str(value).upper() not in ("OFF", "0", "FALSE")
            return
        if name == "marmot_write_consistency":
            level = str(value or "").upper()
            if level not in LEVELS and level not in ("", "DEFAULT"):
                raise MySQLError(
                    1231,
                    "42000",
                    f"Variable 'marmot_write_consistency' can't be set to the value "
                    f"of '{value}' (use one of {', '.join(LEVELS)})",
                )
            if scope == "global":  # the node's default until restart; DEFAULT: the config's again
                rep = ctx.replication
                default = rep.default_level if rep is not None else "QUORUM"
                ctx.global_variables[name] = default if level in ("", "DEFAULT") else level
            elif level in ("", "DEFAULT"):
                s.variables.pop(name, None)  # DEFAULT: the node's level again
            else:
                s.variables[name] = level
            return
        if name == READ_VARIABLE:
            level = check_level(value)
            if scope == "global":  # the node's default until restart; DEFAULT: the config's again
                rep = ctx.replication
                ctx.global_variables[name] = level or (rep.default_read_level if rep else "LOCAL_ONE")
            elif level:
                s.variables[name] = level
            else:
                s.variables.pop(name, None)  # DEFAULT: the node's level again
            return
        if name in ("general_log", "general_log_file") and ctx.general_log is not None:
            if scope != "global":
                raise MySQLError(
                    1229, "HY000", f"Variable '{name}' is a GLOBAL variable and should be set with SET GLOBAL"
                )
            if name == "general_log":
                on = str(value).upper() in ("1", "ON", "TRUE")
                ctx.general_log.set_enabled(on)
                ctx.global_variables[name] = 1 if on else 0
            else:
                ctx.general_log.set_path(str(value))
                ctx.global_variables[name] = str(value)
            return
        if name not in ctx.global_variables:
            raise MySQLError(1193, "HY000", f"Unknown system variable '{name}'")
        if name == "foreign_key_checks" and scope != "global":
            on = str(value).upper() not in ("0", "OFF", "FALSE")
            s.variables[name] = 1 if on else 0
            s.connections.set_foreign_keys(on)
            return
        if value is None:  # DEFAULT
            value = (
                DEFAULT_SQL_MODE if name == "sql_mode" and scope == "global" else ctx.global_variables[name]
            )
        try:
            value = sql_mode.normalize(value) if name == "sql_mode" else normalize_system_value(name, value)
        except ValueError as err:
            raise MySQLError(1231, "42000", str(err)) from err
        if name == "autocommit" and scope != "global":
            s.autocommit = bool(value)  # an open transaction was committed by ``set`` when turning it on
            return
        if scope == "global":
            ctx.global_variables[name] = value
        else:
            s.variables[name] = value

    # -- databases ------------------------------------------------------------------------------------

    async def database_ddl(self, sql: str, verb: str) -> Result:
        s = self.session
        if verb == "ALTER":
            return OkResult()  # character set / collation options: SQLite has one encoding
        ddl = statements.database_ddl(sql, verb)
        await s.transactions.implicit_commit()
        try:
            if s.ctx.replication is not None:
                return await self._replicated_database_ddl(ddl)
            if ddl.verb == "CREATE":
                created = s.ctx.databases.create(ddl.name, if_not_exists=ddl.if_clause)
                return OkResult(affected_rows=1 if created else 0)
            for other in list(s.ctx.sessions.values()):
                other.forget_database(ddl.name)
            dropped = s.ctx.databases.drop(ddl.name, if_exists=ddl.if_clause)
            if s.database == ddl.name:
                s.database = None
            return OkResult(affected_rows=0 if not dropped else 1)
        except DatabaseExists as err:
            raise MySQLError(1007, "HY000", str(err)) from err
        except UnknownDatabase as err:
            raise MySQLError(1008, "HY000", str(err)) from err
        except InvalidDatabaseName as err:
            raise MySQLError(1102, "42000", str(err)) from err
        except DatabaseError as err:
            raise MySQLError(1105, "HY000", str(err)) from err

    async def _replicated_database_ddl(self, ddl: statements.DatabaseDDL) -> Result:
        """CREATE/DROP DATABASE through 2PC: checked here first (1007/1008/1102), applied on every node."""
        s = self.session
        dbs = s.ctx.databases
        name = ddl.name
        if ddl.verb == "CREATE":
            validate_name(name)
            if dbs.exists(name):
                if ddl.if_clause:
                    return OkResult()
                raise DatabaseExists(f"Can't create database '{name}'; database exists")
            await s.writer.replicate_database_op("create", name)
            return OkResult(affected_rows=1)
        if not dbs.exists(name):
            if ddl.if_clause:
                return OkResult()
            raise UnknownDatabase(f"Can't drop database '{name}'; database doesn't exist")
        await s.writer.replicate_database_op("drop", name)
        if s.database == name:
            s.database = None
        return OkResult(affected_rows=1)
