"""What one raw SQLite statement (``SET marmot_transpilation = OFF``) would do, found out before it runs.

Why: with transpilation OFF the client speaks SQLite directly, so the transpiler's plan (read, write,
DDL, tables written) does not exist. Running the text as given on the session's connection made every
write of such a session local to one node: never captured, never replicated, invisible to the digests
(issue #12, "No silent divergence"). Upstream classifies these statements with a SQLite parser and sends
mutations down its normal capture + 2PC path; we ask SQLite itself instead. Preparing a statement calls
the connection's *authorizer* once for every action the statement can take — including the bodies of
triggers it fires — and ``sqlite3_stmt_readonly`` says whether it can change the file at all. The
statement is prepared and never stepped (the exec tracer aborts it), so classifying costs one prepare.

What each kind becomes (``raw_sql.py`` runs them):

* ``READ`` — changes nothing in the file: SELECT, EXPLAIN, PRAGMA queries and connection settings,
  ATTACH/DETACH. Runs on this node.
* ``WRITE`` — INSERT/UPDATE/DELETE (also through CTEs, RETURNING, triggers) on ordinary tables of the
  session's database: the normal replicated write (dry run with capture, 2PC, applied on every node).
* ``TEMP_WRITE`` / ``TEMP_DDL`` — only the session's TEMPORARY objects: local, as with transpilation ON.
* ``DDL`` — CREATE/DROP/ALTER of the database's schema: replicated as DDL is (validated here, run on
  every node).
* ``MAINTENANCE`` — REINDEX, ``VACUUM INTO 'file'``, ``PRAGMA optimize`` / ``wal_checkpoint`` /
  ``incremental_vacuum``: they rewrite pages or copy the file, never a row; local, like OPTIMIZE TABLE.

Refused, with the reason in the message (nothing runs): writes to internal ``__marmot*`` tables (1146,
as with transpilation ON), to SQLite's own tables (``sqlite_*``), to virtual tables or their storage
(a module's writes cannot be captured row by row), to another ATTACHed database, DDL there, PRAGMAs that
change the file or what later writes may store (``user_version = n``, ``writable_schema``,
``ignore_check_constraints`` ...), VACUUM (it may renumber rowids, which are the row keys of tables
without an INTEGER PRIMARY KEY), raw transaction control (``END``; use COMMIT), and any other
statement that could write without being one of the kinds above.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

import apsw

from marmot.engine import errors
from marmot.engine.errors import MySQLError

READ = "read"
WRITE = "write"
TEMP_WRITE = "temp_write"
DDL = "ddl"
TEMP_DDL = "temp_ddl"
MAINTENANCE = "maintenance"

_WRITES = frozenset({apsw.SQLITE_INSERT, apsw.SQLITE_UPDATE, apsw.SQLITE_DELETE})
_SCHEMA_CHANGES = frozenset(
    {
        apsw.SQLITE_CREATE_INDEX,
        apsw.SQLITE_CREATE_TABLE,
        apsw.SQLITE_CREATE_TRIGGER,
        apsw.SQLITE_CREATE_VIEW,
        apsw.SQLITE_DROP_INDEX,
        apsw.SQLITE_DROP_TABLE,
        apsw.SQLITE_DROP_TRIGGER,
        apsw.SQLITE_DROP_VIEW,
        apsw.SQLITE_ALTER_TABLE,
        apsw.SQLITE_CREATE_VTABLE,
        apsw.SQLITE_DROP_VTABLE,
    }
)
_TEMP_SCHEMA_CHANGES = frozenset(
    {
        apsw.SQLITE_CREATE_TEMP_INDEX,
        apsw.SQLITE_CREATE_TEMP_TABLE,
        apsw.SQLITE_CREATE_TEMP_TRIGGER,
        apsw.SQLITE_CREATE_TEMP_VIEW,
        apsw.SQLITE_DROP_TEMP_INDEX,
        apsw.SQLITE_DROP_TEMP_TABLE,
        apsw.SQLITE_DROP_TEMP_TRIGGER,
        apsw.SQLITE_DROP_TEMP_VIEW,
    }
)
_ON_TABLE = frozenset(
    {apsw.SQLITE_CREATE_INDEX, apsw.SQLITE_DROP_INDEX, apsw.SQLITE_CREATE_TRIGGER, apsw.SQLITE_DROP_TRIGGER}
)
_TRANSACTION_CONTROL = frozenset({apsw.SQLITE_TRANSACTION, apsw.SQLITE_SAVEPOINT})
# Pragmas SQLite counts as read-only that still change what later writes store or how the schema is read
_UNSAFE_SETTINGS = frozenset({"writable_schema", "ignore_check_constraints"})
# Pragmas that write to the file but leave every row as it is
_MAINTENANCE_PRAGMAS = frozenset(
    {"optimize", "wal_checkpoint", "incremental_vacuum", "shrink_memory", "journal_mode"}
)
_TEMP_SCHEMAS = frozenset({"temp"})
_SCHEMA_TABLES = frozenset({"sqlite_master", "sqlite_schema"})
_VACUUM_INTO = re.compile(r"^\s*VACUUM\b(?:\s+\S+)?\s+INTO\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class RawStatement:
    """One statement of a raw text: its own text, what is left after it, and what it does."""

    sql: str
    rest: str | None
    kind: str
    # lower case: WRITE, the main tables written; DDL, the tables (views) created, dropped or altered, or
    # whose indexes or triggers are
    tables: frozenset[str] = field(default_factory=frozenset)
    inserts: bool = False  # the statement itself (not a trigger) inserts rows: report the new rowid


@dataclass
class _Seen:
    """Everything the authorizer reported while the statement was prepared."""

    writes: list[tuple[str, str]] = field(default_factory=list)  # (schema, table)
    direct_insert: bool = False
    schema_changes: list[tuple[int, str, str]] = field(default_factory=list)  # (code, schema, object)
    temp_schema_changes: int = 0
    modules: list[str] = field(default_factory=list)  # of CREATE VIRTUAL TABLE
    pragmas: list[tuple[str, str | None]] = field(default_factory=list)  # (name, value)
    transaction_control: bool = False


def classify(
    conn: apsw.Connection, sql: str, database: str, bindings: list[object] | None = None
) -> RawStatement | None:
    """Classify the first statement of ``sql`` on ``conn`` without running it; None when ``sql`` holds no
    statement (only whitespace or comments). Raises ``MySQLError`` for a statement refused here and
    for one SQLite cannot prepare (syntax, unknown table)."""
    seen = _Seen()
    traced: dict[str, object] = {}

    def authorizer(code: int, a: str | None, b: str | None, schema: str | None, trigger: str | None) -> int:
        if code in _WRITES:
            seen.writes.append((schema or "main", a or ""))
            if code == apsw.SQLITE_INSERT and trigger is None:
                seen.direct_insert = True
        elif code in _SCHEMA_CHANGES:
            if code == apsw.SQLITE_ALTER_TABLE:  # (schema, table) in the arguments, no database name
                schema, table = a, b
            else:  # index and trigger changes name their table second
                table = b if code in _ON_TABLE else a
            if (schema or "main") in _TEMP_SCHEMAS:
                seen.temp_schema_changes += 1
            else:
                seen.schema_changes.append((code, schema or "main", table or ""))
            if code == apsw.SQLITE_CREATE_VTABLE:
                seen.modules.append(b or "")
        elif code in _TEMP_SCHEMA_CHANGES:
            seen.temp_schema_changes += 1
        elif code == apsw.SQLITE_PRAGMA:
            seen.pragmas.append(((a or "").lower(), b))
        elif code in _TRANSACTION_CONTROL:
            seen.transaction_control = True
        return apsw.SQLITE_OK

    def tracer(cursor: apsw.Cursor, first: str, _bindings: object) -> bool:
        traced["first"] = first
        traced["readonly"] = cursor.is_readonly
        traced["does_something"] = cursor.has_vdbe  # False for a text of comments only
        return False  # prepared, never stepped

    cursor = conn.cursor()
    cursor.exec_trace = tracer
    previous = conn.authorizer
    conn.authorizer = authorizer
    try:
        cursor.execute(sql, bindings or None, can_cache=False)
    except apsw.ExecTraceAbort:
        pass
    except errors.STATEMENT_ERRORS as err:
        raise errors.from_sqlite(err, database) from err
    finally:
        conn.authorizer = previous
    if "first" not in traced or not traced["does_something"]:
        return None
    first = str(traced["first"])
    rest = sql[len(first) :] if len(sql) > len(first) else None
    kind, tables = _kind(conn, first, seen, bool(traced["readonly"]))
    return RawStatement(first, rest, kind, tables, seen.direct_insert and kind == WRITE)


def _refuse(what: str) -> MySQLError:
    return MySQLError(1105, "HY000", f"marmot_transpilation = OFF: {what}")


def _kind(conn: apsw.Connection, sql: str, seen: _Seen, readonly: bool) -> tuple[str, frozenset[str]]:
    if seen.transaction_control:
        raise _refuse(
            "raw SQLite transaction control is not accepted; use BEGIN, COMMIT, ROLLBACK, "
            "SAVEPOINT and RELEASE (they apply to the replicated transaction)"
        )
    for name, value in seen.pragmas:
        if name in _UNSAFE_SETTINGS and value is not None:
            raise _refuse(
                f"PRAGMA {name} is refused: it changes what this node's writes store or how its "
                "schema is read, which other nodes would not share"
            )
    if seen.schema_changes:
        for _code, schema, obj in seen.schema_changes:
            if schema != "main":
                raise _refuse(
                    f"DDL on attached database '{schema}' ({obj}) is not replicated; USE that "
                    "database and run it there"
                )
        for module in seen.modules:
            if module.lower() not in _builtin_modules():
                raise _refuse(
                    f"virtual table module '{module}' is not built into SQLite: the nodes apply "
                    "replicated DDL without session extensions, so the table cannot be replicated "
                    "(a TEMPORARY virtual table can use it: CREATE VIRTUAL TABLE temp.name ...)"
                )
        return DDL, frozenset(obj.lower() for _code, _schema, obj in seen.schema_changes if obj)
    if seen.temp_schema_changes:
        return TEMP_DDL, frozenset()
    if any(schema == "main" and table.lower() in _SCHEMA_TABLES for schema, table in seen.writes):
        # what ``CREATE VIRTUAL TABLE IF NOT EXISTS`` of an existing table reports (a no-op), or a
        # direct write to the schema table (SQLite refuses it when the DDL is validated)
        return DDL, frozenset()
    main_writes: set[str] = set()
    for schema, table in seen.writes:
        if schema in _TEMP_SCHEMAS:
            continue
        if schema != "main":
            raise _refuse(
                f"a write to attached database '{schema}' (table {table}) is not replicated; USE "
                "that database and write there"
            )
        lower = table.lower()
        if lower.startswith("__marmot"):
            raise errors.internal_table_write(table)
        if lower.startswith("sqlite_"):
            raise _refuse(f"a write to SQLite's own table {table} would change this node only")
        main_writes.add(lower)
    if main_writes:
        for table in sorted(main_writes):
            kind = _table_kind(conn, table)
            if kind in ("virtual", "shadow"):
                what = "virtual table" if kind == "virtual" else "storage table of a virtual table"
                raise _refuse(
                    f"{table} is a {what}: its writes cannot be captured row by row, so they "
                    "cannot be replicated"
                )
        return WRITE, frozenset(main_writes)
    if seen.writes:
        return TEMP_WRITE, frozenset()
    if readonly:
        return READ, frozenset()
    if seen.pragmas:
        name, value = seen.pragmas[0]
        if name in _MAINTENANCE_PRAGMAS and (value is None or name != "journal_mode"):
            return MAINTENANCE, frozenset()
        shown = f"PRAGMA {name}" + (f" = {value}" if value is not None else "")
        raise _refuse(f"{shown} changes this node's database file only (it is not replicated)")
    if _VACUUM_INTO.match(sql) or sql.lstrip()[:7].upper() == "REINDEX":
        return MAINTENANCE, frozenset()
    if sql.lstrip()[:6].upper() == "VACUUM":
        raise _refuse(
            "VACUUM is refused: it may renumber the rowids of tables without an INTEGER PRIMARY "
            "KEY, and those rowids are the rows' keys on every node (VACUUM INTO 'file' is fine)"
        )
    raise _refuse(
        f"this statement may change the database without being a replicable write or DDL: {sql.strip()[:80]}"
    )


@functools.cache
def _builtin_modules() -> frozenset[str]:
    """Virtual table modules every node's applier has: those of a plain connection (FTS5, R*Tree ...)."""
    conn = apsw.Connection(":memory:")
    try:
        return frozenset(str(r[0]).lower() for r in conn.execute("PRAGMA module_list"))
    finally:
        conn.close()


def _table_kind(conn: apsw.Connection, table: str) -> str:
    """``PRAGMA table_list`` type of ``main.table``: 'table', 'view', 'virtual', 'shadow' ('' if absent)."""
    row = conn.execute(
        "SELECT type FROM pragma_table_list WHERE schema = 'main' AND name = ? COLLATE NOCASE", (table,)
    ).fetchone()
    return str(row[0]) if row else ""
