"""Which database a "no such table" (1146) or "unknown database" (1049) error is about, so the session
can ask replication to wait for a schema created through another node (``Replication.follow_schema``,
``replication/schema_follow.py``) and run the statement once more.

Why parse the message: the error is raised in many places (the transpiler's planner, SQLite itself,
metadata statements, USE) and every one names the table or database in it; a qualified name
(``db.table``) means that database, an unqualified one the session's current database.
"""

from __future__ import annotations

import re

from marmot.engine.errors import MySQLError

NO_SUCH_TABLE = 1146
UNKNOWN_DATABASE = 1049

_UNKNOWN_DB = re.compile(r"Unknown database '([^']+)'")
_QUALIFIED = re.compile(r"(?:Table '|no such table: )`?([^`'.\s]+)`?\.")


def missing_in(err: MySQLError, current: str | None) -> str | None:
    """The database whose schema ``err`` says lacks something, or None when ``err`` is about no schema
    (another error code, or an unqualified table with no current database)."""
    if err.code == UNKNOWN_DATABASE:
        m = _UNKNOWN_DB.search(err.message)
        return m.group(1) if m else None
    if err.code == NO_SUCH_TABLE:
        m = _QUALIFIED.search(err.message)
        return m.group(1) if m else current
    return None
