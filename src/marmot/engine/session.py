"""One client session: its current database, variables, transaction, and the execution of statements.

Path of a statement: ``execute(sql)`` -> ``lexer.normalize`` -> routing by first keyword. Session-level
statements (transactions, SET, USE, SHOW, database DDL, accepted no-ops) are answered here or in
``metadata.py``; everything else becomes a cached ``Plan`` and runs on this session's SQLite connection.

Transactions and locking: with replication (the normal case) a write statement is a dry run whose row
changes go to ``replication/`` (``replicated_write.py`` has the why and the how: statement-scoped writer
lock, a transaction's view kept open until another writer waits). Without it (the engine alone) a session
takes SQLite's write lock (``BEGIN IMMEDIATE``) at its first write and keeps it until COMMIT/ROLLBACK. In
both, reads before the first write run on the latest committed data, so a read-only transaction never
blocks writers, and waiting for a lock happens on the event loop; after ``lock_wait_timeout_seconds`` the
statement fails with 1205.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import apsw

from marmot.engine import errors, extensions, information_schema, metadata
from marmot.engine.capture import ChangeCapture
from marmot.engine.context import EngineContext
from marmot.engine.errors import MySQLError
from marmot.engine.raw_sql import RawSQL
from marmot.engine.replicated_write import PendingTransaction, ReplicatedWrites, consistency_hint
from marmot.engine.results import OkResult, PreparedInfo, Result, ResultSet
from marmot.engine.session_commands import SessionCommands
from marmot.engine.transaction_control import TransactionControl
from marmot.hlc import Timestamp
from marmot.sql import functions, lexer
from marmot.sql.functions import datetime as datetime_functions
from marmot.sql.transpiler import DDL, READ, NoSuchTable, Plan, SQLSyntaxError, Unsupported
from marmot.storage.databases import DEFAULT_DATABASE
from marmot.storage.rowkey import SchemaCache

# Statements a MySQL server accepts that have no meaning for a SQLite node (upstream: "Parsed").
_ACCEPTED_NOOPS = frozenset(
    {"LOCK", "UNLOCK", "XA", "GRANT", "REVOKE", "FLUSH", "OPTIMIZE", "REPAIR", "ANALYZE", "CHECK", "CHECKSUM",
     "RESET", "PURGE", "INSTALL", "UNINSTALL", "HANDLER", "CACHE", "LOAD_INDEX"}
)
_USER_DDL = frozenset({"USER", "ROLE"})
# First words of the statements this server knows (others are a syntax error already at PREPARE)
_STATEMENT_KEYWORDS = frozenset(
    {"SELECT", "WITH", "(", "INSERT", "REPLACE", "UPDATE", "DELETE", "CREATE", "ALTER", "DROP", "RENAME",
     "TRUNCATE", "SET", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "USE", "BEGIN", "START", "COMMIT", "ROLLBACK",
     "SAVEPOINT", "RELEASE", "LOAD", "DO", "VALUES", "TABLE", "CALL", "KILL"} | _ACCEPTED_NOOPS)
_STATEMENT_ERRORS = errors.STATEMENT_ERRORS
_KINDS = {"SELECT": "select", "WITH": "select", "SHOW": "select", "DESCRIBE": "select", "DESC": "select",
          "INSERT": "insert", "REPLACE": "insert", "LOAD": "insert", "UPDATE": "update", "DELETE": "delete",
          "CREATE": "ddl", "ALTER": "ddl", "DROP": "ddl", "RENAME": "ddl", "TRUNCATE": "ddl"}


class Session(SessionCommands, ReplicatedWrites, TransactionControl, RawSQL):
    """State and statement execution for one MySQL connection."""

    def __init__(self, ctx: EngineContext, connection_id: int, user: str, database: str | None,
                 client_found_rows: bool = False) -> None:
        self.ctx = ctx
        self.connection_id = connection_id
        self.user = user
        self.host = "localhost"
        self.database: str | None = None
        self.variables: dict[str, object] = {}
        self.user_variables: dict[str, object] = {}
        self.client_found_rows = client_found_rows
        self.autocommit = True
        self.in_transaction = False  # MySQL-level: BEGIN seen, or autocommit=0 and a statement ran
        self._txn_conn: apsw.Connection | None = None  # connection holding BEGIN IMMEDIATE, if any
        self._txn_db: str | None = None
        self._conns: dict[str, apsw.Connection] = {}
        self._attached: dict[apsw.Connection, set[str]] = {}  # connection -> databases ATTACHed to it
        # per connection: (cursor with the metadata trace, plain cursor)
        self._read_cursors: dict[apsw.Connection, tuple[apsw.Cursor, apsw.Cursor]] = {}
        self._column_cache: dict[tuple, list] = {}
        self._plan_columns: dict[int, tuple] = {}  # id(plan) -> (plan, schema stamp, result columns)
        self._extensions: list = []  # files loaded by this session's LOAD EXTENSION, for new connections too
        self._foreign_keys = True  # SET foreign_key_checks
        self._pending_savepoints: list[str] = []  # SAVEPOINTs taken before the transaction's first write
        # Replication: the capture of the open write transaction, one capture per connection, a schema
        # cache per database, capture positions of savepoints, and a consistency hint for this transaction
        self._rtxn: PendingTransaction | None = None
        self._view: apsw.Connection | None = None
        self._view_db = ""
        self._made_temp_tables = False
        self._captures: dict[apsw.Connection, ChangeCapture] = {}
        self._schemas: dict[str, SchemaCache] = {}
        self._savepoint_marks: dict[str, int] = {}
        self._txn_level: str | None = None
        # LOAD DATA LOCAL INFILE: the wire layer fetches the file from the client (None = not possible)
        self.request_local_file: Callable[[str], Awaitable[bytes]] | None = None
        self.last_insert_id = 0  # LAST_INSERT_ID(): first id generated by the latest generating statement
        # @@marmot_last_commit_ts: "wall_ns.logical.node_id" of this session's latest replicated commit, so
        # a client (the fault-test checker) can order its writes exactly as last-writer-wins does
        self.last_commit_ts: Timestamp | None = None
        self._stmt_first_generated: int | None = None
        self._stmt_last_explicit: int | None = None
        self._description: list | None = None
        self._changed_rows = 0
        self.transpilation = True
        self.statement_kind = "other"  # select/insert/update/delete/ddl/other, for metrics
        self.warnings: list[tuple[str, int, str]] = []
        self.command = "Sleep"
        self.info = ""
        self.started = time.monotonic()
        if database is not None:
            self.use(database)
        elif ctx.databases.exists(DEFAULT_DATABASE):
            # As upstream: a client that names no database starts in the default one ("marmot")
            self.database = DEFAULT_DATABASE

    # -- connections ----------------------------------------------------------------------------------

    def _conn(self, database: str | None = None) -> apsw.Connection:
        name = database or self.database
        if name is None:
            # No database selected: expressions (SELECT 1, @@version) still work, tables do not.
            conn = self._conns.get("")
            if conn is None:
                conn = self._conns[""] = apsw.Connection(":memory:")
                self._install_functions(conn)
            return conn
        conn = self._conns.get(name)
        if conn is None:
            if not self.ctx.databases.exists(name):
                raise errors.unknown_database(name)
            conn = self.ctx.databases.open(name)
            if not self._foreign_keys:
                conn.execute("PRAGMA foreign_keys=OFF").fetchall()
            self._install_functions(conn)
            self._conns[name] = conn
        return conn

    def _install_functions(self, conn: apsw.Connection) -> None:
        for name in self.ctx.always_loaded:
            extensions.load(conn, extensions.resolve(self.ctx.extensions_dir, name))
        for path in self._extensions:
            extensions.load(conn, path)
        functions.register(conn)
        for name, (fn, nargs, deterministic) in datetime_functions.FUNCTIONS.items():
            conn.create_scalar_function(name, fn, nargs, deterministic=deterministic)
        conn.create_scalar_function("__marmot_autoid", self._autoid, 1, deterministic=False)
        conn.create_scalar_function("__marmot_autoid_null", self._autoid_null, 1, deterministic=False)
        conn.create_scalar_function("__marmot_sysvar", self._sysvar, 2, deterministic=False)
        conn.create_scalar_function("__marmot_uservar", self._uservar, 1, deterministic=False)
        conn.create_scalar_function("LAST_INSERT_ID", self._last_insert_id_fn, -1, deterministic=False)
        conn.create_scalar_function("DATABASE", lambda: self.database, 0, deterministic=False)
        conn.create_scalar_function("SCHEMA", lambda: self.database, 0, deterministic=False)
        conn.create_scalar_function("VERSION", lambda: self.ctx.global_variables["version"], 0)
        conn.create_scalar_function("CONNECTION_ID", lambda: self.connection_id, 0, deterministic=False)
        conn.create_scalar_function("USER", lambda: f"{self.user}@{self.host}", 0, deterministic=False)
        conn.create_scalar_function("SESSION_USER", lambda: f"{self.user}@{self.host}", 0, deterministic=False)
        conn.create_scalar_function("SYSTEM_USER", lambda: f"{self.user}@{self.host}", 0, deterministic=False)
        conn.create_scalar_function("CURRENT_USER", lambda: f"{self.user}@%", 0, deterministic=False)
        conn.create_scalar_function("FOUND_ROWS", lambda: self.variables.get("__found_rows", 0), 0,
                                    deterministic=False)
        conn.create_scalar_function("ROW_COUNT", lambda: self.variables.get("__row_count", -1), 0,
                                    deterministic=False)

    def _trace(self, cursor: apsw.Cursor, sql: str, bindings: object) -> bool:
        """exec_trace hook: apsw only exposes column metadata while a statement is active."""
        self._description = cursor.description_full
        return True

    def _columns(self, description: tuple) -> list:
        """Result columns as (name, decltype, database, table, origin column, flags): where a column comes
        from a table, clients learn its table and its key/NOT NULL/AUTO_INCREMENT flags (GUIs need them
        to edit result rows). Cached per description and schema generation."""
        key = (description, self.database, self.ctx.databases.generation(self.database or ""))
        cols = self._column_cache.get(key)
        if cols is None:
            cols = []
            for name, decl, schema, table, origin in description:
                db = self.database if schema == "main" else schema
                flags = 0
                if table and origin and db and db not in ("temp", "information_schema"):
                    flags = self.ctx.databases.column_flags(db, table).get(origin, 0)
                cols.append((name, decl, db if table else None, table, origin, flags))
            if len(self._column_cache) > 256:
                self._column_cache.clear()
            self._column_cache[key] = cols
        return cols

    # -- SQL functions bound to this session -----------------------------------------------------------

    def _autoid(self, value: object) -> object:
        if value is None or value == 0 or value == "0":
            new = self.ctx.id_generator.next_id()
            if self._stmt_first_generated is None:
                self._stmt_first_generated = new
            return new
        self._stmt_last_explicit = value if isinstance(value, int) else self._stmt_last_explicit
        return value

    def _autoid_null(self, value: object) -> object:
        return self._autoid(value) if value is None else value

    def _sysvar(self, name: str, scope: str) -> object:
        key = name.lower()
        if key in ("last_insert_id", "identity"):
            return self.last_insert_id
        if key == "marmot_last_commit_ts":
            ts = self.last_commit_ts
            return "" if ts is None else f"{ts.wall_ns}.{ts.logical}.{ts.node_id}"
        if scope == "global":
            value = self.ctx.global_variables.get(key)
        else:
            value = self.variables.get(key, self.ctx.global_variables.get(key))
            if key == "autocommit":
                value = 1 if self.autocommit else 0
        if value is None and key not in self.ctx.global_variables and key not in self.variables:
            raise apsw.SQLError(f"Unknown system variable '{name}'")
        return value

    def _uservar(self, name: str) -> object:
        return self.user_variables.get(name.lower())

    def _last_insert_id_fn(self, *args: object) -> object:
        if args:
            self.last_insert_id = int(args[0]) if args[0] is not None else 0  # type: ignore[arg-type]
            return args[0]
        return self.last_insert_id

    # -- public API -----------------------------------------------------------------------------------

    def use(self, database: str) -> None:
        if not self.ctx.databases.exists(database):
            raise errors.unknown_database(database)
        self.database = database

    async def execute(self, sql: str, params: list[object] | None = None) -> Result:
        """Run one statement (multi-statement text is split by the caller with ``split``)."""
        self.warnings = []
        glog = self.ctx.general_log
        if glog is not None and glog.enabled:
            glog.write(self.connection_id, "Query" if params is None else "Execute", sql)
        try:
            norm = lexer.normalize(sql)
        except lexer.LexError as err:
            raise errors.syntax_error(
                "You have an error in your SQL syntax; check the manual that corresponds to your MySQL server "
                f"version for the right syntax to use near '{sql[err.position:err.position + 80]}' at line 1"
            ) from err
        if params is not None and len(params) != norm.param_count:
            raise MySQLError(1210, "HY000", "Incorrect arguments to mysqld_stmt_execute")
        if not norm.keyword:
            raise MySQLError(1065, "42000", "Query was empty")
        self.statement_kind = _KINDS.get(norm.keyword, "other")
        if self.ctx.replication is not None and (level := consistency_hint(sql)) is not None:
            self._txn_level = level
        return await self._dispatch(sql, norm, params or [])

    @staticmethod
    def split(sql: str) -> list[str]:
        try:
            return lexer.split_statements(sql)
        except lexer.LexError:
            return [sql]

    def prepare(self, sql: str) -> PreparedInfo:
        """Parameter count and result columns for COM_STMT_PREPARE, without running the statement."""
        try:
            norm = lexer.normalize(sql)
        except lexer.LexError as err:
            raise errors.syntax_error(f"You have an error in your SQL syntax near '{sql[err.position:]}'") from err
        if not norm.keyword:
            raise MySQLError(1065, "42000", "Query was empty")
        if self.transpilation and norm.keyword not in _STATEMENT_KEYWORDS:
            # MySQL rejects a statement it cannot parse at PREPARE, not at the first EXECUTE
            raise errors.syntax_error(
                "You have an error in your SQL syntax; check the manual that corresponds to your MySQL server "
                f"version for the right syntax to use near '{sql.strip()[:80]}' at line 1")
        if self.transpilation and norm.keyword in ("INSERT", "REPLACE", "UPDATE", "DELETE"):
            self._plan(norm, sql)  # a syntax error surfaces now; the plan is cached for EXECUTE
        columns: list = []
        if norm.keyword in ("SELECT", "WITH") and self.transpilation and self.database is not None:
            plan = self._plan(norm, sql)
            step = plan.steps[-1]
            conn = self._prepare_conn(plan)
            cursor = conn.cursor()
            captured: list = []

            def trace(cur: apsw.Cursor, _sql: str, _b: object) -> bool:
                captured.append(cur.get_description())
                return False  # stop before the statement runs

            cursor.exec_trace = trace
            try:
                cursor.execute(step.sql, [None] * len(step.binds))
            except apsw.ExecTraceAbort:
                pass
            except _STATEMENT_ERRORS as err:
                raise errors.from_sqlite(err, self.database or "") from err
            if captured:
                columns = list(captured[-1])
        return PreparedInfo(norm.param_count, columns)

    def close(self) -> None:
        """Roll back whatever is open and release every connection (client gone or COM_QUIT)."""
        self._rollback_sqlite()
        for conn in self._conns.values():
            with contextlib.suppress(apsw.Error):
                conn.close()
        self._conns.clear()
        self._attached.clear()
        self._read_cursors.clear()

    def reset(self) -> None:
        """COM_RESET_CONNECTION: forget session state, keep the login and database."""
        self._rollback_sqlite()
        self.in_transaction = False
        self.variables.clear()
        self.user_variables.clear()
        self.autocommit = True
        self.last_insert_id = 0
        self.transpilation = True

    @property
    def status_in_transaction(self) -> bool:
        return self.in_transaction or self._txn_conn is not None or self._rtxn is not None

    # -- routing --------------------------------------------------------------------------------------

    async def _dispatch(self, sql: str, norm: lexer.Normalized, params: list[object]) -> Result:
        kw = norm.keyword
        words = norm.words
        if kw in ("BEGIN", "START"):
            if kw == "START" and words[1:2] != ["TRANSACTION"]:
                raise errors.syntax_error(f"You have an error in your SQL syntax near '{sql}'")
            await self._implicit_commit()
            self.in_transaction = True
            return OkResult()
        if kw == "COMMIT":
            await self._commit()
            return OkResult()
        if kw == "ROLLBACK":
            return self._rollback_statement(sql)
        if kw == "SAVEPOINT":
            return await self._savepoint(sql)
        if kw == "RELEASE":
            return self._release(sql)
        if kw == "SET":
            return await self._set(sql)
        if kw == "USE":
            toks = lexer.code_tokens(sql)
            if len(toks) < 2:
                raise errors.syntax_error("You have an error in your SQL syntax near 'USE'")
            self.use(lexer.unquote_identifier(toks[1].text))
            return OkResult()
        if kw in ("SHOW", "DESCRIBE", "DESC") or (kw == "EXPLAIN" and len(words) > 1 and words[1] not in (
                "SELECT", "UPDATE", "DELETE", "INSERT", "REPLACE", "WITH", "FORMAT", "ANALYZE", "EXTENDED")):
            return metadata.answer(self, sql)
        if kw in ("CREATE", "DROP", "ALTER") and len(words) > 1 and words[1] in ("DATABASE", "SCHEMA"):
            return await self._database_ddl(sql, kw)
        if kw in _ACCEPTED_NOOPS or (kw in ("CREATE", "DROP", "ALTER", "RENAME") and words[1:2]
                                      and words[1] in _USER_DDL):
            return OkResult()
        if kw == "ALTER" and _is_keys_toggle(sql):
            return OkResult()  # ALTER TABLE t DISABLE/ENABLE KEYS: MyISAM index maintenance, a no-op here
        if kw == "LOAD" and words[1:2] == ["EXTENSION"]:
            return self._load_extension(sql)
        if kw == "LOAD" and words[1:2] == ["DATA"]:
            return await self._load_data(sql)
        if kw == "DO":
            await self._run_plan(self._plan(lexer.normalize("SELECT " + sql.strip()[2:]), sql), [], [])
            return OkResult()
        if not self.transpilation:
            return await self._run_raw(sql, params)
        plan = self._plan(norm, sql)
        if plan.kind != READ and plan.attach and not plan.needs_database and len(plan.attach) == 1 \
                and self.ctx.replication is not None:
            # Every table is qualified with one other database: run it as a statement of that database,
            # so its rows are captured and replicated in that database's stream.
            target = next(iter(plan.attach))
            saved = self.database
            self.database = target
            try:
                return await self._run_plan_retrying(self._plan(norm, sql), norm, sql, params)
            finally:
                self.database = saved
        return await self._run_plan_retrying(plan, norm, sql, params)

    async def _run_plan_retrying(self, plan: Plan, norm: lexer.Normalized, sql: str, params: list[object]) -> Result:
        """DDL is serialised cluster-wide: a DDL that meets another one in flight (a write conflict on the
        database's DDL intent) waits and retries, re-planned against the schema the other one left, for up
        to ``[ddl] lock_lease_seconds`` before the client gets the 1213."""
        if plan.kind != DDL or self.ctx.replication is None:
            return await self._run_plan(plan, norm.literals, params)
        deadline = time.monotonic() + self.ctx.ddl_lock_lease_s
        delay = 0.02
        while True:
            try:
                return await self._run_plan(plan, norm.literals, params)
            except MySQLError as err:
                if err.code != 1213 or time.monotonic() + delay > deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)
            plan = self._plan(norm, sql)

    def _plan(self, norm: lexer.Normalized, sql: str) -> Plan:
        database = self.database or ""
        gen = self.ctx.databases.generation(database) if database else 0
        try:
            return self.ctx.transpiler.plan(norm, database, gen, sql)
        except SQLSyntaxError as err:
            raise errors.syntax_error(str(err)) from err
        except NoSuchTable as err:
            raise errors.no_such_table(str(err)) from err
        except Unsupported as err:
            raise MySQLError(1235, "42000", f"This version of Marmot doesn't yet support: {err}") from err

    def _prepare_conn(self, plan: Plan) -> apsw.Connection:
        conn = self._txn_conn if self._txn_conn is not None else self._conn()
        for db in plan.attach:
            self._attach(conn, db)
        return conn

    def _attach(self, conn: apsw.Connection, db: str) -> None:
        attached = self._attached.setdefault(conn, set())
        if db == information_schema.SCHEMA_NAME:
            if db not in attached:
                conn.execute("ATTACH DATABASE ':memory:' AS information_schema")
                attached.add(db)
            information_schema.refresh(self, conn)
            return
        if db in attached:
            return
        if not self.ctx.databases.exists(db):
            raise errors.unknown_database(db)
        if not conn.get_autocommit():
            raise MySQLError(1105, "HY000", f"database '{db}' must be used once outside a transaction first")
        conn.execute("ATTACH DATABASE ? AS ?", (str(self.ctx.databases.path(db)), db))
        attached.add(db)

    # -- plan execution -------------------------------------------------------------------------------

    def _bind(self, binds: tuple[tuple[str, int], ...], literals: list[object], params: list[object]) -> list:
        return [literals[i] if k == "l" else params[i] for k, i in binds]

    async def _run_plan(self, plan: Plan, literals: list[object], params: list[object]) -> Result:
        if plan.kind == READ:
            conn = self._prepare_conn(plan)
            # The result columns of a plan only change with the schema: after the first run the traced
            # cursor (which asks SQLite for column metadata on every statement) is not needed.
            stamp = (self.database, self.ctx.databases.generation(self.database or ""),
                     *[self.ctx.databases.generation(db) for db in plan.attach])
            known = self._plan_columns.get(id(plan))
            if known is not None and (known[0] is not plan or known[1] != stamp):
                known = None
            cursors = self._read_cursors.get(conn)
            if cursors is None:
                traced = conn.cursor()
                traced.exec_trace = self._trace
                cursors = self._read_cursors[conn] = (traced, conn.cursor())
            cursor = cursors[1] if known is not None else cursors[0]
            self._description = None
            rows: list[tuple] = []
            view = self._rtxn is not None and self._rtxn.db == self.database and self._in_view(conn, self._rtxn.db)
            if view:  # this transaction wrote: its reads see its own writes
                assert self._rtxn is not None
                await self._enter_view(conn, self._rtxn.db)
                self._view_db = self._rtxn.db
            try:
                rows = self._read_steps(conn, plan, literals, params, cursor)
            except apsw.BusyError:
                rows = await self._retry_busy(lambda: self._read_steps(conn, plan, literals, params))
            except _STATEMENT_ERRORS as err:
                if self.database is None and isinstance(err, apsw.SQLError) and "no such table" in str(err):
                    raise MySQLError(1046, "3D000", "No database selected") from err
                raise errors.from_sqlite(err, self.database or "") from err
            finally:
                if view:
                    self._park_view()
            if self.autocommit is False and not self.in_transaction:
                self.in_transaction = True
            if known is not None:
                return ResultSet(known[2], rows)
            description = self._columns(self._description) if self._description else []
            if plan.result_types and len(plan.result_types) == len(description):
                description = [(c[0], c[1] or rt, *c[2:]) for c, rt in zip(description, plan.result_types,
                                                                           strict=True)]
            if self._description is not None:
                if len(self._plan_columns) > 1024:
                    self._plan_columns.clear()
                self._plan_columns[id(plan)] = (plan, stamp, description)
            return ResultSet(description, rows)
        if self.database is None and plan.needs_database:
            raise MySQLError(1046, "3D000", "No database selected")
        if self.ctx.read_only:
            raise MySQLError(1290, "HY000", "The MySQL server is running with the --read-only option")
        if plan.kind == DDL:
            if not self.ctx.ddl_implicit_commit and (self.in_transaction or self._rtxn is not None):
                raise MySQLError(1105, "HY000", "DDL inside a transaction is refused ([transaction] "
                                 "ddl_implicit_commit = false): COMMIT or ROLLBACK first")
            await self._implicit_commit()
            if self.ctx.replication is not None and not _is_truncate(plan):
                return await self._ddl(plan)
        return await self._write(plan, literals, params)

    async def _ddl(self, plan: Plan) -> Result:
        """Replicated DDL (temporary tables stay local): validated here, applied on every node."""
        conn = self._prepare_conn(plan)
        sqls = [step.sql for step in plan.steps]
        if self.database is None or plan.attach or self._is_local_ddl(conn, sqls):
            self._made_temp_tables = True  # from now on, writes check whether they only touch TEMPORARY tables
            if plan.attach and not self._is_local_ddl(conn, sqls):
                raise MySQLError(1105, "HY000", "DDL on another database than the current one is not "
                                 "replicated: USE that database first")
            return await self._write(plan, [], [])
        if plan.rebuild:
            conn.execute("PRAGMA foreign_keys=OFF").fetchall()
        try:
            await self._lock_for_write(conn, self.database)

            def validate() -> None:
                try:
                    for sql in sqls:
                        conn.execute(sql)
                except _STATEMENT_ERRORS as err:
                    raise errors.from_sqlite(err, self.database or "") from err

            await self._replicate_ddl(conn, self.database, sqls, validate)
        finally:
            if plan.rebuild and self._foreign_keys:
                conn.execute("PRAGMA foreign_keys=ON").fetchall()
        self.variables["__row_count"] = 0
        return OkResult()



    def _read_steps(self, conn: apsw.Connection, plan: Plan, literals: list[object],
                    params: list[object], cursor: apsw.Cursor | None = None) -> list[tuple]:
        if cursor is None:
            cursor = conn.cursor()
            cursor.exec_trace = self._trace
        rows: list[tuple] = []
        found: int | None = None
        for step in plan.steps:
            rows = cursor.execute(step.sql, self._bind(step.binds, literals, params)).fetchall()
            if step.role == "found_rows":
                found = int(rows[0][0]) if rows else 0
        self.variables["__found_rows"] = len(rows) if found is None else found
        return rows

    async def _write(self, plan: Plan, literals: list[object], params: list[object]) -> Result:
        conn = self._prepare_conn(plan)
        if plan.rebuild:
            # A table rebuild drops the old table: with enforcement on, that would fire other tables'
            # ON DELETE actions. The pragma only takes effect outside a transaction.
            conn.execute("PRAGMA foreign_keys=OFF").fetchall()
            try:
                return await self._write_locked(conn, plan, literals, params)
            finally:
                if self._foreign_keys:
                    conn.execute("PRAGMA foreign_keys=ON").fetchall()
        return await self._write_locked(conn, plan, literals, params)

    async def _write_locked(self, conn: apsw.Connection, plan: Plan, literals: list[object],
                            params: list[object]) -> Result:
        self._stmt_first_generated = None
        self._stmt_last_explicit = None
        counter = _AffectedRows(plan.affected, self.client_found_rows) if plan.affected else None

        def run_steps() -> int:
            changed = 0
            for step in plan.steps:
                conn.execute(step.sql, self._bind(step.binds, literals, params))
                changed = conn.changes() if plan.kind != DDL else 0
            return changed

        if self._replicated_write(conn, plan):
            assert self.database is not None
            affected = await self._run_captured(conn, self.database, run_steps, counter, self._statement_error)
        else:
            if self.ctx.replication is None or plan.kind == DDL:
                await self._begin_write(conn)
            else:
                self._close_view()  # TEMPORARY-table writes commit at once, outside the view
            # else: a write to TEMPORARY tables only, with replication on: it commits at once (a
            # SAVEPOINT outside a transaction is one), holding no lock across statements
            if counter is not None:
                conn.preupdate_hook(counter)
            try:
                affected = self._atomic_statement(conn, run_steps)
            finally:
                if counter is not None:
                    conn.preupdate_hook(None)
        if counter is not None:
            affected = counter.count
        if plan.kind == DDL:
            self.ctx.databases.bump_generation(self._txn_db or self.database or "")
            for db in plan.attach:
                self.ctx.databases.bump_generation(db)
        if not self.in_transaction or plan.kind == DDL:
            await self._commit()  # DDL commits implicitly in MySQL, before and after
        insert_id = 0
        if self._stmt_first_generated is not None:
            self.last_insert_id = insert_id = self._stmt_first_generated
        elif plan.autoinc and self._stmt_last_explicit is not None:
            insert_id = self._stmt_last_explicit
        self.variables["__row_count"] = affected
        return OkResult(affected_rows=affected, last_insert_id=insert_id)

    def _statement_error(self, err: BaseException) -> MySQLError:
        return errors.from_sqlite(err, self.database or "")  # type: ignore[arg-type]

    def _replicated_write(self, conn: apsw.Connection, plan: Plan) -> bool:
        """Does this write go through capture and 2PC? Not without a replication layer, not without a
        database, and not when it only writes this session's TEMPORARY tables (never replicated: they
        are committed here at once, outside the transaction)."""
        if self.ctx.replication is None or self.database is None or self._txn_conn is not None:
            return False
        if plan.kind == DDL:
            return _is_truncate(plan)  # other DDL replicates as statements (``_ddl``) or stays local
        return not (self._made_temp_tables and plan.tables and self._temp_tables(conn) >= plan.tables)

    def _temp_tables(self, conn: apsw.Connection) -> set[str]:
        return {r[0].lower() for r in conn.execute("SELECT name FROM temp.sqlite_schema WHERE type = 'table'")}


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


def _is_truncate(plan: Plan) -> bool:
    """TRUNCATE is planned as ``DELETE FROM t``: it replicates as the row deletions it makes."""
    return bool(plan.steps) and all(step.sql.lstrip()[:6].upper() == "DELETE" for step in plan.steps)


def _is_keys_toggle(sql: str) -> bool:
    words = [t.text.upper() for t in lexer.code_tokens(sql)]
    return len(words) >= 5 and words[1] == "TABLE" and words[-1] == "KEYS" and words[-2] in ("DISABLE", "ENABLE")
