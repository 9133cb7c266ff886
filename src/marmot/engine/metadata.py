"""SHOW and DESCRIBE statements, answered from the node's own state and the SQLite schema.

MySQL clients learn about the server through these (the ``mysql`` CLI runs ``SHOW DATABASES`` for tab
completion, SQLAlchemy runs ``DESCRIBE`` to test for a table, every driver reads ``SHOW VARIABLES``), so
the column names and shapes follow MySQL 8.0 exactly.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import apsw

from marmot.engine import errors
from marmot.engine.errors import MySQLError
from marmot.engine.results import ResultSet
from marmot.engine.variables import like_to_regex
from marmot.sql import lexer

if TYPE_CHECKING:
    from marmot.engine.session import Session

_TEXT = "TEXT"
_INT = "BIGINT"


def _cols(*names: str, types: tuple[str | None, ...] | None = None) -> list[tuple[str, str | None]]:
    return [(n, (types[i] if types else _TEXT)) for i, n in enumerate(names)]


def answer(session: Session, sql: str) -> ResultSet:
    toks = [t for t in lexer.tokenize(sql) if t.kind not in ("ws", "comment")]
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
        return _filtered(ResultSet(_cols("Database"), [(n,) for n in session.ctx.databases.names()]), rest[1:])
    if head == "TABLES":
        return _tables(session, rest[1:], full)
    if head in ("COLUMNS", "FIELDS"):
        return _columns(session, rest[1:], full=full)
    if head == "VARIABLES":
        merged = dict(session.ctx.global_variables)
        merged.update({k: v for k, v in session.variables.items() if not k.startswith("__")})
        merged["autocommit"] = "ON" if session.autocommit else "OFF"
        rows = [(k, _show_value(v)) for k, v in sorted(merged.items())]
        return _filtered(ResultSet(_cols("Variable_name", "Value"), rows), rest[1:])
    if head == "STATUS":
        rows = [("Threads_connected", str(len(session.ctx.sessions))), ("Uptime", "1"),
                ("Questions", "0"), ("Ssl_cipher", "")]
        return _filtered(ResultSet(_cols("Variable_name", "Value"), rows), rest[1:])
    if head in ("WARNINGS", "ERRORS"):
        return ResultSet(_cols("Level", "Code", "Message", types=(_TEXT, _INT, _TEXT)),
                         list(session.warnings))
    if head == "CREATE" and rw[1:2] == ["TABLE"]:
        return _create_table(session, rest[2:])
    if head == "CREATE" and rw[1:2] in (["DATABASE"], ["SCHEMA"]):
        name = lexer.unquote_identifier(rest[-1].text)
        if not session.ctx.databases.exists(name):
            raise errors.unknown_database(name)
        return ResultSet(_cols("Database", "Create Database"),
                         [(name, f"CREATE DATABASE `{name}` /*!40100 DEFAULT CHARACTER SET utf8mb4 */")])
    if head == "ENGINES":
        return ResultSet(_cols("Engine", "Support", "Comment", "Transactions", "XA", "Savepoints"),
                         [("InnoDB", "DEFAULT", "SQLite storage replicated by Marmot", "YES", "NO", "YES")])
    if head in ("COLLATION",):
        rows = [("utf8mb4_general_ci", "utf8mb4", 45, "Yes", "Yes", 1),
                ("utf8mb4_bin", "utf8mb4", 46, "", "Yes", 1),
                ("utf8mb4_unicode_ci", "utf8mb4", 224, "", "Yes", 8),
                ("utf8mb4_0900_ai_ci", "utf8mb4", 255, "", "Yes", 0),
                ("binary", "binary", 63, "Yes", "Yes", 1)]
        return _filtered(ResultSet(_cols("Collation", "Charset", "Id", "Default", "Compiled", "Sortlen",
                                         types=(_TEXT, _TEXT, _INT, _TEXT, _TEXT, _INT)), rows), rest[1:])
    if head in ("CHARACTER", "CHARSET"):
        rows = [("utf8mb4", "UTF-8 Unicode", "utf8mb4_general_ci", 4), ("binary", "Binary pseudo charset", "binary", 1)]
        skip = 2 if head == "CHARACTER" else 1
        return _filtered(ResultSet(_cols("Charset", "Description", "Default collation", "Maxlen",
                                         types=(_TEXT, _TEXT, _TEXT, _INT)), rows), rest[skip:])
    if head == "PROCESSLIST":
        rows = []
        for cid, other in sorted(session.ctx.sessions.items()):
            rows.append((cid, getattr(other, "user", ""), getattr(other, "host", ""), getattr(other, "database", None),
                         getattr(other, "command", "Sleep"), 0, "", getattr(other, "info", "") or None))
        return ResultSet(_cols("Id", "User", "Host", "db", "Command", "Time", "State", "Info",
                               types=(_INT, _TEXT, _TEXT, _TEXT, _TEXT, _INT, _TEXT, _TEXT)), rows)
    if head == "GRANTS":
        return ResultSet(_cols(f"Grants for {session.user}@%"),
                         [(f"GRANT ALL PRIVILEGES ON *.* TO `{session.user}`@`%` WITH GRANT OPTION",)])
    if head in ("INDEX", "INDEXES", "KEYS"):
        return _indexes(session, rest[1:])
    if head == "TABLE" and rw[1:2] == ["STATUS"]:
        return _table_status(session, rest[2:])
    if head in ("TRIGGERS", "EVENTS", "PLUGINS", "PROCEDURE", "FUNCTION", "PRIVILEGES", "PROFILES",
                "OPEN", "MASTER", "SLAVE", "REPLICAS", "BINARY"):
        return ResultSet(_cols("Name"), [])
    raise errors.syntax_error(
        "You have an error in your SQL syntax; check the manual that corresponds to your MySQL server version "
        f"for the right syntax to use near '{sql.strip()[:80]}' at line 1"
    )


def _show_value(v: object) -> str:
    return "" if v is None else str(v)


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


def _user_tables(conn: apsw.Connection, schema: str = "main") -> list[tuple[str, str]]:
    return [
        (n, t)
        for n, t in conn.execute(
            f"SELECT name, type FROM \"{schema}\".sqlite_schema WHERE type IN ('table','view') "
            "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_\\_marmot%' ESCAPE '\\' ORDER BY name"
        ).fetchall()
    ]


def _tables(session: Session, rest: list[lexer.Token], full: bool) -> ResultSet:
    db, rest = _db_from(session, rest)
    conn = session._conn(db)
    tables = _user_tables(conn)
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


def _table_info(session: Session, db: str, table: str) -> tuple[apsw.Connection, list[tuple], str]:
    conn = session._conn(db)
    row = conn.execute(
        "SELECT name, sql FROM sqlite_schema WHERE type IN ('table','view') AND name = ? COLLATE NOCASE", (table,)
    ).fetchone()
    if row is None:
        raise errors.no_such_table(f"Table '{db}.{table}' doesn't exist")
    info = conn.execute(f'PRAGMA table_xinfo("{row[0]}")').fetchall()
    return conn, info, row[1] or ""


def _unique_columns(conn: apsw.Connection, table: str) -> tuple[set[str], set[str]]:
    unique: set[str] = set()
    multiple: set[str] = set()
    for idx in conn.execute(f'PRAGMA index_list("{table}")').fetchall():
        cols = [c[2] for c in conn.execute(f'PRAGMA index_info("{idx[1]}")').fetchall()]
        if not cols:
            continue
        if idx[2] and len(cols) == 1:
            unique.add(cols[0])
        else:
            multiple.add(cols[0])
    return unique, multiple


def mysql_column_type(decl: str) -> str:
    """The MySQL spelling of a stored declared type (``BIGINT UNSIGNED(20)`` -> ``bigint(20) unsigned``)."""
    text = (decl or "text").strip()
    m = re.match(r"^([A-Za-z ]+?)\s*(\([^)]*\))?$", text)
    if not m:
        return text.lower()
    words = m.group(1).lower().split()
    args = m.group(2) or ""
    if words == ["integer"]:
        words = ["bigint"]
    base, mods = words[0], [w for w in words[1:] if w in ("unsigned", "zerofill")]
    rest = [w for w in words[1:] if w not in ("unsigned", "zerofill")]
    return " ".join([base + (" " + " ".join(rest) if rest else "") + args, *mods])


def _columns(session: Session, toks: list[lexer.Token], full: bool) -> ResultSet:
    if toks and toks[0].text.upper() in ("FROM", "IN"):
        toks = toks[1:]
    db, table, rest = _table_name(session, toks)
    conn, info, create_sql = _table_info(session, db, table)
    unique, multiple = _unique_columns(conn, table)
    auto = "AUTOINCREMENT" in create_sql.upper()
    rows = []
    for _cid, name, decl, notnull, default, pk, hidden in info:
        if hidden:
            continue
        key = "PRI" if pk else "UNI" if name in unique else "MUL" if name in multiple else ""
        extra = "auto_increment" if pk and auto and str(decl).upper() == "INTEGER" else ""
        if isinstance(default, str) and len(default) >= 2 and default[0] == default[-1] == "'":
            default = default[1:-1].replace("''", "'")
        null = "NO" if (notnull or pk) else "YES"
        ctype = mysql_column_type(decl)
        if full:
            collation = "utf8mb4_general_ci" if any(x in ctype for x in ("char", "text", "enum")) else None
            rows.append((name, ctype, collation, null, key, default, extra, "select,insert,update,references", ""))
        else:
            rows.append((name, ctype, null, key, default, extra))
    if full:
        cols = _cols("Field", "Type", "Collation", "Null", "Key", "Default", "Extra", "Privileges", "Comment")
    else:
        cols = _cols("Field", "Type", "Null", "Key", "Default", "Extra")
    return _filtered(ResultSet(cols, rows), rest)


def _create_table(session: Session, toks: list[lexer.Token]) -> ResultSet:
    db, table, _ = _table_name(session, toks)
    conn, info, create_sql = _table_info(session, db, table)
    lines = []
    auto = "AUTOINCREMENT" in create_sql.upper()
    pk_cols = [c[1] for c in sorted(info, key=lambda c: c[5]) if c[5]]
    for _cid, name, decl, notnull, default, pk, hidden in info:
        if hidden:
            continue
        parts = [f"`{name}`", mysql_column_type(decl)]
        if notnull or pk:
            parts.append("NOT NULL")
        if default is not None:
            parts.append(f"DEFAULT {default}")
        if pk and auto and str(decl).upper() == "INTEGER":
            parts.append("AUTO_INCREMENT")
        lines.append("  " + " ".join(parts))
    if pk_cols:
        lines.append("  PRIMARY KEY (" + ",".join(f"`{c}`" for c in pk_cols) + ")")
    for idx in conn.execute(f'PRAGMA index_list("{table}")').fetchall():
        if idx[3] != "c":
            continue
        cols = ",".join(f"`{c[2]}`" for c in conn.execute(f'PRAGMA index_info("{idx[1]}")').fetchall())
        name = idx[1].split("__", 1)[1] if "__" in idx[1] else idx[1]
        lines.append(f"  {'UNIQUE KEY' if idx[2] else 'KEY'} `{name}` ({cols})")
    lines.extend(_foreign_key_lines(conn, table, create_sql))
    ddl = f"CREATE TABLE `{table}` (\n" + ",\n".join(lines) + "\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
    return ResultSet(_cols("Table", "Create Table"), [(table, ddl)])


_FK_NAME_RE = re.compile(
    r"CONSTRAINT\s+(`(?:[^`]|``)+`|\"(?:[^\"]|\"\")+\"|[\w$]+)\s+FOREIGN\s+KEY\s*\(([^)]*)\)", re.IGNORECASE
)
_FK_ACTIONS = {"CASCADE", "SET NULL", "SET DEFAULT"}  # RESTRICT / NO ACTION are the default: MySQL omits them


def _fk_names(create_sql: str) -> dict[tuple[str, ...], str]:
    """Constraint names written in the stored DDL, keyed by the (lower-case) child columns."""
    names: dict[tuple[str, ...], str] = {}
    for m in _FK_NAME_RE.finditer(create_sql):
        cols = tuple(c.strip().strip('`"').lower() for c in m.group(2).split(","))
        names[cols] = m.group(1).strip('`"')
    return names


def _foreign_key_lines(conn: apsw.Connection, table: str, create_sql: str) -> list[str]:
    """``CONSTRAINT ... FOREIGN KEY`` lines of SHOW CREATE TABLE (SQLAlchemy reflects foreign keys from them)."""
    groups: dict[int, list[tuple]] = {}
    for row in conn.execute(f'PRAGMA foreign_key_list("{table}")').fetchall():
        groups.setdefault(row[0], []).append(row)
    if not groups:
        return []
    names = _fk_names(create_sql)
    lines = []
    unnamed = 0
    for fk_id in sorted(groups):
        rows = sorted(groups[fk_id], key=lambda r: r[1])
        parent = rows[0][2]
        child_cols = [r[3] for r in rows]
        parent_cols = [r[4] for r in rows]
        if any(c is None for c in parent_cols):  # REFERENCES parent without columns: its primary key
            pk = [c[1] for c in sorted(conn.execute(f'PRAGMA table_info("{parent}")').fetchall(), key=lambda c: c[5])
                  if c[5]]
            parent_cols = pk or parent_cols
        name = names.get(tuple(c.lower() for c in child_cols))
        if name is None:
            unnamed += 1
            name = f"{table}_ibfk_{unnamed}"  # MySQL's name for an unnamed foreign key
        line = (f"  CONSTRAINT `{name}` FOREIGN KEY ({', '.join(f'`{c}`' for c in child_cols)}) "
                f"REFERENCES `{parent}` ({', '.join(f'`{c}`' for c in parent_cols)})")
        on_update, on_delete = rows[0][5].upper(), rows[0][6].upper()
        if on_delete in _FK_ACTIONS:
            line += f" ON DELETE {on_delete}"
        if on_update in _FK_ACTIONS:
            line += f" ON UPDATE {on_update}"
        lines.append(line)
    return lines


def _indexes(session: Session, toks: list[lexer.Token]) -> ResultSet:
    if toks and toks[0].text.upper() in ("FROM", "IN"):
        toks = toks[1:]
    db, table, _ = _table_name(session, toks)
    conn, info, _sql = _table_info(session, db, table)
    rows = []
    pk_cols = [c[1] for c in sorted(info, key=lambda c: c[5]) if c[5]]
    for seq, col in enumerate(pk_cols, 1):
        rows.append((table, 0, "PRIMARY", seq, col, "A", None, None, None, "", "BTREE", "", "", "YES", None))
    for idx in conn.execute(f'PRAGMA index_list("{table}")').fetchall():
        if idx[3] == "pk":
            continue
        name = idx[1].split("__", 1)[1] if "__" in idx[1] else idx[1]
        for c in conn.execute(f'PRAGMA index_info("{idx[1]}")').fetchall():
            rows.append((table, 0 if idx[2] else 1, name, c[0] + 1, c[2], "A", None, None, None, "YES", "BTREE",
                         "", "", "YES", None))
    cols = _cols("Table", "Non_unique", "Key_name", "Seq_in_index", "Column_name", "Collation", "Cardinality",
                 "Sub_part", "Packed", "Null", "Index_type", "Comment", "Index_comment", "Visible", "Expression",
                 types=(_TEXT, _INT, _TEXT, _INT, _TEXT, _TEXT, _INT, _INT, _TEXT, _TEXT, _TEXT, _TEXT, _TEXT,
                        _TEXT, _TEXT))
    return ResultSet(cols, rows)


def _table_status(session: Session, rest: list[lexer.Token]) -> ResultSet:
    db, rest = _db_from(session, rest)
    conn = session._conn(db)
    rows = []
    for name, kind in _user_tables(conn):
        count = conn.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0] if kind == "table" else None
        rows.append((name, "InnoDB" if kind == "table" else None, 10, "Dynamic", count, 0, 0, 0, 0, 0, None,
                     None, None, None, "utf8mb4_general_ci", None, "", "VIEW" if kind == "view" else ""))
    cols = _cols("Name", "Engine", "Version", "Row_format", "Rows", "Avg_row_length", "Data_length",
                 "Max_data_length", "Index_length", "Data_free", "Auto_increment", "Create_time", "Update_time",
                 "Check_time", "Collation", "Checksum", "Create_options", "Comment",
                 types=(_TEXT, _TEXT, _INT, _TEXT, _INT, _INT, _INT, _INT, _INT, _INT, _INT, "DATETIME",
                        "DATETIME", "DATETIME", _TEXT, _INT, _TEXT, _TEXT))
    return _filtered(ResultSet(cols, rows), rest)
