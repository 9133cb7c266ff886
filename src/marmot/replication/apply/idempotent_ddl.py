"""Run replicated DDL so that applying it a second time is harmless.

Exactly-once markers already keep a node from applying one DDL transaction twice; this is the second
line, for the cases markers cannot see: a node whose schema already has the change (an operator ran it
by hand, a snapshot that included it, a retry after a crash between the schema change and the marker in
systems without transactional DDL). Upstream broke exactly there (its issue #158: ``ALTER TABLE … ADD
COLUMN`` replayed on a node that had the column, "duplicate column name", node diverged).

Rules, on the SQLite statements the coordinator's transpiler produced:

* ``CREATE [UNIQUE] INDEX|TABLE|VIEW|TRIGGER x`` → ``… IF NOT EXISTS x``;
  ``DROP TABLE|INDEX|VIEW|TRIGGER x`` → ``… IF EXISTS x``.
* ``ALTER TABLE t ADD COLUMN c`` when ``t`` already has ``c`` → skipped;
  ``ALTER TABLE t DROP COLUMN c`` when ``t`` has no ``c`` → skipped;
  ``ALTER TABLE t RENAME TO u`` when ``t`` is gone and ``u`` exists → skipped;
  ``ALTER TABLE t RENAME COLUMN a TO b`` when ``t`` has ``b`` and no ``a`` → skipped.
* Anything else runs as is (table rebuilds are one transaction together with their marker).
"""

from __future__ import annotations

import re

import apsw

_CREATE = re.compile(
    r"^(\s*CREATE\s+(?:UNIQUE\s+)?(?:TABLE|INDEX|VIEW|TRIGGER)\s+)(?!IF\s+NOT\s+EXISTS\b)", re.IGNORECASE
)
_DROP = re.compile(r"^(\s*DROP\s+(?:TABLE|INDEX|VIEW|TRIGGER)\s+)(?!IF\s+EXISTS\b)", re.IGNORECASE)
_NAME = r'("(?:[^"]|"")+"|`(?:[^`]|``)+`|\[[^\]]+\]|[A-Za-z_][\w$]*)'
_ALTER = re.compile(r"^\s*ALTER\s+TABLE\s+" + _NAME + r"\s+(.*)$", re.IGNORECASE | re.DOTALL)
_ADD = re.compile(r"^ADD\s+(?:COLUMN\s+)?" + _NAME, re.IGNORECASE)
_DROP_COL = re.compile(r"^DROP\s+(?:COLUMN\s+)?" + _NAME + r"\s*$", re.IGNORECASE)
_RENAME_TO = re.compile(r"^RENAME\s+TO\s+" + _NAME + r"\s*$", re.IGNORECASE)
_RENAME_COL = re.compile(r"^RENAME\s+(?:COLUMN\s+)?" + _NAME + r"\s+TO\s+" + _NAME + r"\s*$", re.IGNORECASE)


def make_idempotent(sql: str) -> str:
    """CREATE … IF NOT EXISTS / DROP … IF EXISTS versions of ``sql`` (other statements unchanged)."""
    out = _CREATE.sub(r"\1IF NOT EXISTS ", sql, count=1)
    if out is sql or out == sql:
        out = _DROP.sub(r"\1IF EXISTS ", sql, count=1)
    return out


def _unquote(name: str) -> str:
    if name[0] == '"':
        return name[1:-1].replace('""', '"')
    if name[0] == "`":
        return name[1:-1].replace("``", "`")
    if name[0] == "[":
        return name[1:-1]
    return name


def _table_exists(conn: apsw.Connection, table: str) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ? COLLATE NOCASE", (table,)
        ).fetchone()
        is not None
    )


def _columns(conn: apsw.Connection, table: str) -> set[str]:
    return {
        str(r[1]).lower()
        for r in conn.execute(f'PRAGMA main.table_xinfo("{table.replace(chr(34), chr(34) * 2)}")')
    }


def already_applied(conn: apsw.Connection, sql: str) -> bool:
    """True when ``sql`` is an ALTER TABLE whose effect the schema already shows."""
    m = _ALTER.match(sql)
    if m is None:
        return False
    table, rest = _unquote(m.group(1)), m.group(2).strip()
    if (r := _RENAME_TO.match(rest)) is not None:
        return not _table_exists(conn, table) and _table_exists(conn, _unquote(r.group(1)))
    if not _table_exists(conn, table):
        return False
    cols = _columns(conn, table)
    if (r := _ADD.match(rest)) is not None and r.group(1).upper() not in (
        "CONSTRAINT",
        "PRIMARY",
        "UNIQUE",
        "CHECK",
        "FOREIGN",
    ):
        return _unquote(r.group(1)).lower() in cols
    if (r := _DROP_COL.match(rest)) is not None:
        return _unquote(r.group(1)).lower() not in cols
    if (r := _RENAME_COL.match(rest)) is not None:
        return _unquote(r.group(1)).lower() not in cols and _unquote(r.group(2)).lower() in cols
    return False


def run_idempotent(conn: apsw.Connection, sql: str) -> None:
    """Execute one DDL statement of a replicated transaction, skipping it when already in effect."""
    if already_applied(conn, sql):
        return
    conn.execute(make_idempotent(sql))
