"""MySQL errors raised by the engine, and the mapping of SQLite errors onto MySQL codes.

The engine speaks in MySQL terms (code, SQLSTATE, message) so the wire layer only has to encode them;
drivers and ORMs branch on the code (1062 duplicate key, 1146 no such table, 1213 retry ...), so the
mapping has to be right, not just present.
"""

from __future__ import annotations

import re

import apsw

from marmot.sql.functions.conversions import FunctionError


class MySQLError(Exception):
    """An error the client receives as an ERR packet; the connection stays usable."""

    def __init__(self, code: int, sqlstate: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.sqlstate = sqlstate
        self.message = message

    def __repr__(self) -> str:
        return f"MySQLError({self.code}, {self.sqlstate!r}, {self.message!r})"


def syntax_error(message: str) -> MySQLError:
    return MySQLError(1064, "42000", message)


def no_such_table(message: str) -> MySQLError:
    return MySQLError(1146, "42S02", message)


def unknown_database(name: str) -> MySQLError:
    return MySQLError(1049, "42000", f"Unknown database '{name}'")


def lock_wait_timeout() -> MySQLError:
    return MySQLError(1205, "HY000", "Lock wait timeout exceeded; try restarting transaction")


def deadlock() -> MySQLError:
    return MySQLError(1213, "40001", "Deadlock found when trying to get lock; try restarting transaction")


def internal_table_write(name: str) -> MySQLError:
    return MySQLError(1146, "42S02", f"Table '{name}' doesn't exist")


_NO_TABLE = re.compile(r"no such table: (?:(\w+)\.)?(.+)")
_NO_COLUMN = re.compile(r"no such column: (.+)")
_NO_COLUMN_NAMED = re.compile(r"table \S+ has no column named (.+)")  # INSERT's column list
_USING_COLUMN = re.compile(r"cannot join using column (\S+) - column not present")
_TABLE_EXISTS = re.compile(r"table (?:\"?(\S+?)\"?) already exists")
_INDEX_EXISTS = re.compile(r"index (\S+) already exists")
_UNIQUE = re.compile(r"UNIQUE constraint failed: (.+)")
_NOT_NULL = re.compile(r"NOT NULL constraint failed: (?:\w+\.)?(.+)")


def from_sqlite(err: Exception, database: str) -> MySQLError:
    """The MySQL error a MySQL server would have given for what SQLite reported.

    Errors raised by our MySQL functions (``FunctionError``, which carries its MySQL code) pass through.
    """
    code = getattr(err, "code", None)
    if isinstance(code, int) and hasattr(err, "sqlstate"):
        return MySQLError(code, err.sqlstate, getattr(err, "message", str(err)))
    msg = str(err)
    text = msg.split(": ", 1)[1] if msg.startswith(("SQLError", "ConstraintError")) and ": " in msg else msg
    if isinstance(err, apsw.ConstraintError):
        m = _UNIQUE.search(text)
        if m:
            key = m.group(1)
            if "PRIMARY" in text or key.endswith(".id"):
                key = "PRIMARY" if key.endswith(".id") else key
            return MySQLError(1062, "23000", f"Duplicate entry for key '{key}'")
        m = _NOT_NULL.search(text)
        if m:
            return MySQLError(1048, "23000", f"Column '{m.group(1)}' cannot be null")
        if "FOREIGN KEY" in text:
            return MySQLError(
                1452, "23000", "Cannot add or update a child row: a foreign key constraint fails"
            )
        if "CHECK constraint" in text:
            return MySQLError(3819, "HY000", f"Check constraint is violated: {text}")
        return MySQLError(1105, "HY000", text)
    if isinstance(err, apsw.SQLError):
        m = _NO_TABLE.search(text)
        if m:
            # SQLite names its own schemas (``main.p`` for a foreign key's missing parent): MySQL the database
            schema = m.group(1) if m.group(1) not in (None, "main", "temp") else database
            return no_such_table(f"Table '{schema}.{m.group(2)}' doesn't exist")
        m = _NO_COLUMN.search(text) or _NO_COLUMN_NAMED.search(text)
        if m:
            return MySQLError(1054, "42S22", f"Unknown column '{m.group(1)}' in 'field list'")
        m = _USING_COLUMN.search(text)
        if m:
            return MySQLError(1054, "42S22", f"Unknown column '{m.group(1)}' in 'from clause'")
        m = _TABLE_EXISTS.search(text)
        if m:
            return MySQLError(1050, "42S01", f"Table '{m.group(1)}' already exists")
        m = _INDEX_EXISTS.search(text)
        if m:
            return MySQLError(1061, "42000", f"Duplicate key name '{m.group(1)}'")
        if "syntax error" in text:
            return syntax_error(
                "You have an error in your SQL syntax; check the manual that corresponds to your MySQL server "
                f"version for the right syntax to use ({text})"
            )
        return MySQLError(1105, "HY000", text)
    if isinstance(err, apsw.TooBigError):
        return MySQLError(1153, "08S01", "Got a packet bigger than 'max_allowed_packet' bytes")
    if isinstance(err, apsw.ReadOnlyError):
        return MySQLError(
            1290,
            "HY000",
            "The MySQL server is running with the --read-only option so it cannot execute this statement",
        )
    if isinstance(err, apsw.FullError):
        return MySQLError(1114, "HY000", "The table is full")
    return MySQLError(1105, "HY000", text)


# What a failing statement raises: SQLite's errors, and MySQL function errors raised inside SQL functions.
STATEMENT_ERRORS = (apsw.Error, FunctionError)
