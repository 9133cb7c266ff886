"""SHOW and DESCRIBE statements, answered from the node's own state and the SQLite schema.

MySQL clients learn about the server through these (the ``mysql`` CLI runs ``SHOW DATABASES`` for tab
completion, SQLAlchemy runs ``DESCRIBE`` to test for a table, every driver reads ``SHOW VARIABLES``), so
the column names and shapes follow MySQL 8.0 exactly.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import apsw

from marmot.engine import errors, table_description
from marmot.engine.errors import MySQLError
from marmot.engine.results import ResultSet, Row
from marmot.engine.table_description import TableDescription
from marmot.engine.variables import BOOLEAN_VARIABLES, like_to_regex
from marmot.sql import lexer

if TYPE_CHECKING:
    from marmot.engine.session import Session

_TEXT = "TEXT"
_INT = "BIGINT"


def _cols(*names: str, types: tuple[str | None, ...] | None = None) -> list[tuple[str, str | None]]:
    return [(n, (types[i] if types else _TEXT)) for i, n in enumerate(names)]


def answer(session: Session, sql: str) -> ResultSet:
    toks = lexer.code_tokens(sql)
    words = [t.text.upper() for t in toks]
    if words[0] in ("DESCRIBE", "DESC", "EXPLAIN"):
        if len(toks) < 2:
            raise errors.syntax_error("You have an error in your SQL syntax near 'DESCRIBE'")
        return _columns(session, toks[1:], full=False)
    rest = toks[1:]
    rw = words[1:]
    full = False
    if rw[:1] == ["FULL"]:
        full, rest, rw = True, rest[1:], rw[1:]
    for scope in ("SESSION", "GLOBAL", "LOCAL"):
        if rw[:1] == [scope]:
            rest, rw = rest[1:], rw[1:]
            break
    head = rw[0] if rw else ""
    if head in ("DATABASES", "SCHEMAS"):
        return _filtered(
            ResultSet(_cols("Database"), [(n,) for n in session.ctx.databases.names()]), rest[1:]
        )
    if head == "TABLES":
        return _tables(session, rest[1:], full)
    if head in ("COLUMNS", "FIELDS"):
        return _columns(session, rest[1:], full=full)
    if head == "VARIABLES":
        merged = dict(session.ctx.global_variables)
        merged.update({k: v for k, v in session.variables.items() if not k.startswith("__")})
        merged["autocommit"] = 1 if session.autocommit else 0
        rows: list[Row] = [(k, _show_value(k, v)) for k, v in sorted(merged.items())]
        return _filtered(ResultSet(_cols("Variable_name", "Value"), rows), rest[1:])
    if head == "STATUS":
        rows = [
            ("Threads_connected", str(len(session.ctx.sessions))),
            ("Uptime", "1"),
            ("Questions", "0"),
            ("Ssl_cipher", ""),
        ]
        return _filtered(ResultSet(_cols("Variable_name", "Value"), rows), rest[1:])
    if head in ("WARNINGS", "ERRORS"):
        return _diagnostics(session.warnings, head == "ERRORS", rw[1:])
    if head == "COUNT" and rw[1:5] in (["(", "*", ")", "WARNINGS"], ["(", "*", ")", "ERRORS"]):
        errors_only = rw[4] == "ERRORS"
        count = sum(1 for w in session.warnings if not errors_only or w[0] == "Error")
        name = "@@session.error_count" if errors_only else "@@session.warning_count"
        return ResultSet(_cols(name, types=(_INT,)), [(count,)])
    if head == "CREATE" and rw[1:2] == ["TABLE"]:
        return _create_table(session, rest[2:])
    if head == "CREATE" and rw[1:2] == ["VIEW"]:
        return _create_table(session, rest[2:], view_only=True)
    if head == "CREATE" and rw[1:2] == ["TRIGGER"]:
        return _create_trigger(session, rest[2:])
    if head == "TRIGGERS":
        return _triggers(session, rest[1:])
    if head == "CREATE" and rw[1:2] in (["DATABASE"], ["SCHEMA"]):
        name = lexer.unquote_identifier(rest[-1].text)
        if not session.ctx.databases.exists(name):
            raise errors.unknown_database(name)
        # mariadb-dump --databases / --all-databases asks with IF NOT EXISTS and replays the answer.
        exists = "/*!32312 IF NOT EXISTS*/ " if rw[2:5] == ["IF", "NOT", "EXISTS"] else ""
        return ResultSet(
            _cols("Database", "Create Database"),
            [
                (
                    name,
                    f"CREATE DATABASE {exists}`{name}` /*!40100 DEFAULT CHARACTER SET utf8mb4 "
                    "COLLATE utf8mb4_general_ci */",
                )
            ],
        )
    if head == "ENGINES":
        return ResultSet(
            _cols("Engine", "Support", "Comment", "Transactions", "XA", "Savepoints"),
            [("InnoDB", "DEFAULT", "SQLite storage replicated by Marmot", "YES", "NO", "YES")],
        )
    if head in ("COLLATION",):
        rows = [
            ("utf8mb4_general_ci", "utf8mb4", 45, "Yes", "Yes", 1),
            ("utf8mb4_bin", "utf8mb4", 46, "", "Yes", 1),
            ("utf8mb4_unicode_ci", "utf8mb4", 224, "", "Yes", 8),
            ("utf8mb4_0900_ai_ci", "utf8mb4", 255, "", "Yes", 0),
            ("binary", "binary", 63, "Yes", "Yes", 1),
        ]
        return _filtered(
            ResultSet(
                _cols(
                    "Collation",
                    "Charset",
                    "Id",
                    "Default",
                    "Compiled",
                    "Sortlen",
                    types=(_TEXT, _TEXT, _INT, _TEXT, _TEXT, _INT),
                ),
                rows,
            ),
            rest[1:],
        )
    if head in ("CHARACTER", "CHARSET"):
        rows = [
            ("utf8mb4", "UTF-8 Unicode", "utf8mb4_general_ci", 4),
            ("binary", "Binary pseudo charset", "binary", 1),
        ]
        skip = 2 if head == "CHARACTER" else 1
        return _filtered(
            ResultSet(
                _cols(
                    "Charset", "Description", "Default collation", "Maxlen", types=(_TEXT, _TEXT, _TEXT, _INT)
                ),
                rows,
            ),
            rest[skip:],
        )
    if head == "PROCESSLIST":
        rows = []
        now = time.monotonic()
        for cid, other in sorted(session.ctx.sessions.items()):
            command = getattr(other, "command", "Sleep")
            busy = command != "Sleep"
            rows.append(
                (
                    cid,
                    getattr(other, "user", ""),
                    getattr(other, "host", ""),
                    getattr(other, "database", None),
                    command,
                    int(now - getattr(other, "command_started", now)),  # seconds in this command
                    (getattr(other, "state", "") or "executing") if busy else "",
                    getattr(other, "info", "") or None,
                )
            )
        return ResultSet(
            _cols(
                "Id",
                "User",
                "Host",
                "db",
                "Command",
                "Time",
                "State",
                "Info",
                types=(_INT, _TEXT, _TEXT, _TEXT, _TEXT, _INT, _TEXT, _TEXT),
            ),
            rows,
        )
    if head == "GRANTS":
        return ResultSet(
            _cols(f"Grants for {session.user}@%"),
            [(f"GRANT ALL PRIVILEGES ON *.* TO `{session.user}`@`%` WITH GRANT OPTION",)],
        )
    if head in ("INDEX", "INDEXES", "KEYS"):
        return _indexes(session, rest[1:])
    if head == "TABLE" and rw[1:2] == ["STATUS"]:
        return _table_status(session, rest[2:])
    if head in ("PROCEDURE", "FUNCTION") and rw[1:2] == [
        "STATUS"
    ]:  # no stored routines: MySQL's columns, no rows
        return ResultSet(
            _cols(
                "Db",
                "Name",
                "Type",
                "Definer",
                "Modified",
                "Created",
                "Security_type",
                "Comment",
                "character_set_client",
                "collation_connection",
                "Database Collation",
            ),
            [],
        )
    if head == "EVENTS":
        return ResultSet(
            _cols(
                "Db",
                "Name",
                "Definer",
                "Time zone",
                "Type",
                "Execute at",
                "Interval value",
                "Interval field",
                "Starts",
                "Ends",
                "Status",
                "Originator",
                "character_set_client",
                "collation_connection",
                "Database Collation",
            ),
            [],
        )
    if head in (
        "EVENTS",
        "PLUGINS",
        "PROCEDURE",
        "FUNCTION",
        "PRIVILEGES",
        "PROFILES",
        "OPEN",
        "MASTER",
        "SLAVE",
        "REPLICAS",
        "BINARY",
    ):
        return ResultSet(_cols("Name"), [])
    raise errors.syntax_error(
        "You have an error in your SQL syntax; check the manual that corresponds to your MySQL server version "
        f"for the right syntax to use near '{sql.strip()[:80]}' at line 1"
    )


def _show_value(name: str, v: object) -> str:
    """SHOW VARIABLES text: booleans read ON/OFF there (``@@x`` gives 1/0), as in MySQL."""
    if name in BOOLEAN_VARIABLES and v in (0, 1):
        return "ON" if v else "OFF"
    return "" if v is None else str(v)


def _diagnostics(warnings: list[tuple[str, int, str]], errors_only: bool, rest: list[str]) -> ResultSet:
    """SHOW WARNINGS / SHOW ERRORS [LIMIT [offset,] count]: the previous statement's diagnostics
    (ERRORS: its Error-level ones)."""
    rows = [w for w in warnings if not errors_only or w[0] == "Error"]
    if rest[:1] == ["LIMIT"]:
        nums = [int(w) for w in rest[1:] if w.isdigit()]
        offset, count = (nums[0], nums[1]) if len(nums) > 1 else (0, nums[0] if nums else len(rows))
        rows = rows[offset : offset + count]
    return ResultSet(_cols("Level", "Code", "Message", types=(_TEXT, _INT, _TEXT)), list(rows))


def _filtered(rs: ResultSet, rest: list[lexer.Token]) -> ResultSet:
    """Apply ``LIKE 'pattern'`` (to the first column) or a simple ``WHERE col = / LIKE 'x'``."""
    if not rest:
        return rs
    word = rest[0].text.upper()
    if word == "LIKE" and len(rest) > 1:
        rx = like_to_regex(lexer.unquote_string(rest[1].text))
        return ResultSet(rs.columns, [r for r in rs.rows if rx.match(str(r[0]))])
    if word == "WHERE" and len(rest) >= 4:
        col = lexer.unquote_identifier(rest[1].text).lower()
        names = [c[0].lower() for c in rs.columns]
        if col not in names:
            raise MySQLError(1054, "42S22", f"Unknown column '{col}' in 'where clause'")
        idx = names.index(col)
        op = rest[2].text.upper()
        value = lexer.unquote_string(rest[3].text) if rest[3].kind in ("sq", "dq") else rest[3].text
        if op == "LIKE":
            rx = like_to_regex(value)
            return ResultSet(rs.columns, [r for r in rs.rows if rx.match(str(r[idx]))])
        if op == "=":
            return ResultSet(rs.columns, [r for r in rs.rows if str(r[idx]).lower() == value.lower()])
    if word in ("FROM", "IN"):
        return _filtered(rs, rest[2:])
    return rs


def _db_from(session: Session, rest: list[lexer.Token]) -> tuple[str, list[lexer.Token]]:
    if len(rest) >= 2 and rest[0].text.upper() in ("FROM", "IN"):
        return lexer.unquote_identifier(rest[1].text), rest[2:]
    if session.database is None:
        raise MySQLError(1046, "3D000", "No database selected")
    return session.database, rest


def _tables(session: Session, rest: list[lexer.Token], full: bool) -> ResultSet:
    db, rest = _db_from(session, rest)
    conn = session.connections.get(db)
    tables = table_description.user_objects(conn)
    col = f"Tables_in_{db}"
    if full:
        rows = [(n, "VIEW" if t == "view" else "BASE TABLE") for n, t in tables]
        rs = ResultSet(_cols(col, "Table_type"), rows)
    else:
        rs = ResultSet(_cols(col), [(n,) for n, _ in tables])
    if rest and rest[0].text.upper() == "WHERE" and len(rest) >= 4:
        target = lexer.unquote_identifier(rest[1].text)
        if target.lower() == "table_type":
            rest = [rest[0], lexer.Token("word", "Table_type", 0), *rest[2:]]
    return _filtered(rs, rest)


def _table_name(session: Session, toks: list[lexer.Token]) -> tuple[str, str, list[lexer.Token]]:
    """(database, table, remaining tokens) from ``tbl``, ``db.tbl`` or ``tbl FROM db``."""
    if not toks:
        raise errors.syntax_error("You have an error in your SQL syntax; table name missing")
    name = lexer.unquote_identifier(toks[0].text)
    rest = toks[1:]
    db = session.database
    if rest and rest[0].text == "." and len(rest) > 1:
        db, name, rest = name, lexer.unquote_identifier(rest[1].text), rest[2:]
    if len(rest) >= 2 and rest[0].text.upper() in ("FROM", "IN"):
        db, rest = lexer.unquote_identifier(rest[1].text), rest[2:]
    if db is None:
        raise MySQLError(1046, "3D000", "No database selected")
    if name.lower().startswith("__marmot"):
        raise errors.no_such_table(f"Table '{db}.{name}' doesn't exist")
    return db, name, rest


def _describe(session: Session, db: str, table: str) -> tuple[apsw.Connection, TableDescription]:
    conn = session.connections.get(db)
    described = table_description.describe(conn, table)
    if described is None:
        raise errors.no_such_table(f"Table '{db}.{table}' doesn't exist")
    return conn, described


def _columns(session: Session, toks: list[lexer.Token], full: bool) -> ResultSet:
    if toks and toks[0].text.upper() in ("FROM", "IN"):
        toks = toks[1:]
    db, table, rest = _table_name(session, toks)
    _conn, described = _describe(session, db, table)
    rows: list[Row] = []
    for c in described.columns:
        null = "YES" if c.nullable else "NO"
        if full:
            collation = (
                "utf8mb4_general_ci" if any(x in c.type for x in ("char", "text", "enum", "set")) else None
            )
            rows.append(
                (
                    c.name,
                    c.type,
                    collation,
                    null,
                    c.key,
                    c.default,
                    c.extra,
                    "select,insert,update,references",
                    "",
                )
            )
        else:
            rows.append((c.name, c.type, null, c.key, c.default, c.extra))
    if full:
        cols = _cols("Field", "Type", "Collation", "Null", "Key", "Default", "Extra", "Privileges", "Comment")
    else:
        cols = _cols("Field", "Type", "Null", "Key", "Default", "Extra")
    return _filtered(ResultSet(cols, rows), rest)


def _create_table(session: Session, toks: list[lexer.Token], view_only: bool = False) -> ResultSet:
    db, table, _ = _table_name(session, toks)
    _conn, described = _describe(session, db, table)
    if described.is_view:
        ddl = (
            f"CREATE ALGORITHM=UNDEFINED DEFINER=`root`@`%` SQL SECURITY DEFINER VIEW `{described.name}` AS "
            f"{described.view_select}"
        )
        return ResultSet(
            _cols("View", "Create View", "character_set_client", "collation_connection"),
            [(described.name, ddl, "utf8mb4", "utf8mb4_general_ci")],
        )
    if view_only:
        raise MySQLError(1347, "HY000", f"'{db}.{described.name}' is not VIEW")
    lines = []
    for c in described.columns:
        parts = [f"`{c.name}`", c.type]
        if c.generated:
            parts.append(f"GENERATED ALWAYS AS ({c.generated}) {'STORED' if c.stored else 'VIRTUAL'}")
        if not c.nullable:
            parts.append("NOT NULL")
        if c.default_clause:
            parts.append(f"DEFAULT {c.default_clause}")
        if c.on_update:
            parts.append("ON UPDATE CURRENT_TIMESTAMP")
        if c.auto_increment:
            parts.append("AUTO_INCREMENT")
        lines.append("  " + " ".join(parts))
    for ix in described.indexes:
        cols = ",".join(f"`{c}`" for c in ix.columns)
        kind = "PRIMARY KEY" if ix.primary else f"UNIQUE KEY `{ix.name}`" if ix.unique else f"KEY `{ix.name}`"
        lines.append(f"  {kind} ({cols})")
    lines.extend("  " + table_description.foreign_key_clause(fk) for fk in described.foreign_keys)
    lines.extend(f"  CONSTRAINT `{ck.name}` CHECK ({ck.clause})" for ck in described.checks)
    ddl = (
        f"CREATE TABLE `{described.name}` (\n"
        + ",\n".join(lines)
        + "\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci"
    )
    return ResultSet(_cols("Table", "Create Table"), [(described.name, ddl)])


_TRIGGER_COLUMNS = (
    "Trigger",
    "Event",
    "Table",
    "Statement",
    "Timing",
    "Created",
    "sql_mode",
    "Definer",
    "character_set_client",
    "collation_connection",
    "Database Collation",
)


def _trigger_rows(session: Session, db: str) -> list[Row]:
    """SHOW TRIGGERS rows, each followed by the trigger's CREATE statement."""
    sql_mode = session.ctx.global_variables.get("sql_mode", "")
    return [
        (
            t.name,
            t.event,
            t.table,
            t.body,
            t.timing,
            None,
            sql_mode,
            "root@%",
            "utf8mb4",
            "utf8mb4_general_ci",
            "utf8mb4_general_ci",
            t.create_statement,
        )
        for t in table_description.user_triggers(session.connections.get(db))
    ]


def _triggers(session: Session, rest: list[lexer.Token]) -> ResultSet:
    """SHOW TRIGGERS [FROM db] [LIKE 'table pattern' | WHERE ...] (LIKE matches the table, as in MySQL)."""
    db, rest = _db_from(session, rest)
    rows = [r[:-1] for r in _trigger_rows(session, db)]
    if rest and rest[0].text.upper() == "LIKE" and len(rest) > 1:
        rx = like_to_regex(lexer.unquote_string(rest[1].text))
        rows, rest = [r for r in rows if rx.match(r[2])], []
    return _filtered(
        ResultSet(_cols(*_TRIGGER_COLUMNS, types=(*[_TEXT] * 5, "DATETIME", *[_TEXT] * 5)), rows), rest
    )


def _create_trigger(session: Session, toks: list[lexer.Token]) -> ResultSet:
    db, name, _ = _table_name(session, toks)
    for row in _trigger_rows(session, db):
        if row[0].lower() == name.lower():
            return ResultSet(
                _cols(
                    "Trigger",
                    "sql_mode",
                    "SQL Original Statement",
                    "character_set_client",
                    "collation_connection",
                    "Database Collation",
                    "Created",
                ),
                [(row[0], row[6], row[-1], "utf8mb4", "utf8mb4_general_ci", "utf8mb4_general_ci", None)],
            )
    raise MySQLError(1360, "HY000", "Trigger does not exist")


def _indexes(session: Session, toks: list[lexer.Token]) -> ResultSet:
    if toks and toks[0].text.upper() in ("FROM", "IN"):
        toks = toks[1:]
    db, table, rest = _table_name(session, toks)
    _conn, described = _describe(session, db, table)
    nullable = {c.name: c.nullable for c in described.columns}
    rows = []
    for ix in described.indexes:
        for seq, col in enumerate(ix.columns, 1):
            rows.append(
                (
                    described.name,
                    0 if ix.unique else 1,
                    ix.name,
                    seq,
                    col,
                    "A",
                    None,
                    None,
                    None,
                    "YES" if nullable.get(col) else "",
                    "BTREE",
                    "",
                    "",
                    "YES",
                    None,
                )
            )
    cols = _cols(
        "Table",
        "Non_unique",
        "Key_name",
        "Seq_in_index",
        "Column_name",
        "Collation",
        "Cardinality",
        "Sub_part",
        "Packed",
        "Null",
        "Index_type",
        "Comment",
        "Index_comment",
        "Visible",
        "Expression",
        types=(
            _TEXT,
            _INT,
            _TEXT,
            _INT,
            _TEXT,
            _TEXT,
            _INT,
            _INT,
            _TEXT,
            _TEXT,
            _TEXT,
            _TEXT,
            _TEXT,
            _TEXT,
            _TEXT,
        ),
    )
    return _filtered(ResultSet(cols, rows), rest)


def _table_status(session: Session, rest: list[lexer.Token]) -> ResultSet:
    db, rest = _db_from(session, rest)
    conn = session.connections.get(db)
    rows = []
    for name, kind in table_description.user_objects(conn):
        counted = conn.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone() if kind == "table" else None
        count = counted[0] if counted is not None else None
        rows.append(
            (
                name,
                "InnoDB" if kind == "table" else None,
                10,
                "Dynamic",
                count,
                0,
                0,
                0,
                0,
                0,
                None,
                None,
                None,
                None,
                "utf8mb4_general_ci",
                None,
                "",
                "VIEW" if kind == "view" else "",
            )
        )
    cols = _cols(
        "Name",
        "Engine",
        "Version",
        "Row_format",
        "Rows",
        "Avg_row_length",
        "Data_length",
        "Max_data_length",
        "Index_length",
        "Data_free",
        "Auto_increment",
        "Create_time",
        "Update_time",
        "Check_time",
        "Collation",
        "Checksum",
        "Create_options",
        "Comment",
        types=(
            _TEXT,
            _TEXT,
            _INT,
            _TEXT,
            _INT,
            _INT,
            _INT,
            _INT,
            _INT,
            _INT,
            _INT,
            "DATETIME",
            "DATETIME",
            "DATETIME",
            _TEXT,
            _INT,
            _TEXT,
            _TEXT,
        ),
    )
    return _filtered(ResultSet(cols, rows), rest)
