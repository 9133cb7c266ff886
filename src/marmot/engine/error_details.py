"""The details MySQL puts in two common errors that SQLite's messages lack (issue 13 point 7).

Why apart from ``errors.py``: ``errors.from_sqlite`` maps SQLite's error alone; these details need the
statement's context. 1062 ``Duplicate entry 'a' for key 'kv.PRIMARY'`` names the duplicate value and the
MySQL key (``table.PRIMARY`` or ``table.<key name>``), where SQLite only says ``UNIQUE constraint failed:
kv.k`` — the value is the one the statement's column checks last saw for that column (or the
AUTO_INCREMENT id it gave), the key is found among the table's keys by its columns. (An INSERT ... SELECT
that reads its own table has SQLite compute every row before storing any: the value named is then
the last row's, a duplicate too but maybe not the first one MySQL names.) 1054 ``Unknown column
'x' in 'where clause'`` names the clause, found in the statement's SQLite text. A table of a database
that does not exist is MySQL's 1146 ``Table 'db.t' doesn't exist`` (not 1049, which is for USE).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

import apsw

from marmot.engine.errors import MySQLError
from marmot.engine.table_description import describe
from marmot.sql import lexer
from marmot.sql.functions.conversions import float_text

_UNIQUE = re.compile(r"UNIQUE constraint failed: (.+)$")
_CLAUSES = {
    "SELECT": "field list",
    "SET": "field list",
    "VALUES": "field list",
    "INTO": "field list",
    "RETURNING": "field list",
    "WHERE": "where clause",
    "ON": "on clause",
    "USING": "from clause",
    "GROUP": "group statement",
    "HAVING": "having clause",
    "ORDER": "order clause",
}
_UNKNOWN_COLUMN = re.compile(r"^Unknown column '(.+)' in '[^']*'$")


def entry_text(value: object) -> str:
    """A key value as MySQL prints it in ``Duplicate entry``."""
    if isinstance(value, float):
        return float_text(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def duplicate_entry(
    err: MySQLError,
    cause: BaseException | None,
    conn: apsw.Connection,
    value_of: Callable[[int], object | None],
    auto_id: object | None,
) -> MySQLError:
    """``err`` (a 1062) with MySQL's value and key name, when the key and every value of it are known.

    ``value_of(position)`` is the value the statement's checks last stored into the column at that
    position of the table; ``auto_id`` the AUTO_INCREMENT id it last wrote."""
    m = _UNIQUE.search(str(cause or ""))
    if m is None:
        return err
    qualified = [c.strip() for c in m.group(1).split(",")]
    table = qualified[0].rsplit(".", 1)[0] if "." in qualified[0] else ""
    columns = [c.rsplit(".", 1)[-1].lower() for c in qualified]
    desc = describe(conn, table) if table else None
    if desc is None:
        return err
    key = next((ix for ix in desc.indexes if [c.lower() for c in ix.columns] == columns), None)
    if key is None:
        return err
    position = {c.name.lower(): i for i, c in enumerate(desc.columns)}
    values = []
    for name in columns:
        i = position.get(name)
        if i is None:
            return err
        value = auto_id if desc.columns[i].auto_increment else value_of(i)
        if value is None:
            return MySQLError(err.code, err.sqlstate, f"Duplicate entry for key '{desc.name}.{key.name}'")
        values.append(entry_text(value))
    return MySQLError(
        err.code, err.sqlstate, f"Duplicate entry '{'-'.join(values)}' for key '{desc.name}.{key.name}'"
    )


def unknown_column_clause(err: MySQLError, sqls: Iterable[str]) -> MySQLError:
    """``err`` (a 1054) naming the clause where the statement (its SQLite text) first uses the column."""
    m = _UNKNOWN_COLUMN.match(err.message)
    if m is None:
        return err
    wanted = m.group(1).rsplit(".", 1)[-1].lower()
    for sql in sqls:
        clause = None
        for tok in lexer.code_tokens(sql):
            text = tok.text.upper()
            if tok.kind == "word" and text in _CLAUSES:
                clause = _CLAUSES[text]
            elif clause and _identifier(tok.text) == wanted:
                return MySQLError(err.code, err.sqlstate, f"Unknown column '{m.group(1)}' in '{clause}'")
    return err


def _identifier(text: str) -> str:
    if len(text) >= 2 and text[0] in '"`[' and text[-1] in '"`]':
        text = text[1:-1]
    return text.lower()


_UNKNOWN_DATABASE = re.compile(r"^Unknown database '(.+)'$")


def missing_database_table(err: MySQLError, sqls: Iterable[str]) -> MySQLError:
    """``err`` (a 1049 for a database a statement names) as MySQL's 1146 for the first table it names in
    that database, found in the statement's SQLite text (a write whose tables all live in that database
    runs as one of its own statements, its tables unqualified: then its first table)."""
    m = _UNKNOWN_DATABASE.match(err.message) if err.code == 1049 else None
    if m is None:
        return err
    db = m.group(1).lower()
    first: str | None = None
    for sql in sqls:
        toks = lexer.code_tokens(sql)
        for i in range(len(toks) - 1):
            if _identifier(toks[i].text) == db and toks[i + 1].text == "." and i + 2 < len(toks):
                return _no_table(m.group(1), toks[i + 2].text)
            if first is None and toks[i].text.upper() in ("INTO", "UPDATE", "FROM", "JOIN"):
                first = toks[i + 1].text
    return _no_table(m.group(1), first) if first is not None else err


def _no_table(db: str, table: str) -> MySQLError:
    if len(table) >= 2 and table[0] in '"`[':
        table = table[1:-1]
    return MySQLError(1146, "42S02", f"Table '{db}.{table}' doesn't exist")
