"""Per-table schema fingerprints: "is this table's schema here the one the write was planned against?"

A replicated write carries, for every table it changes, a fingerprint of that table's schema as the
coordinator saw it when it ran the statement; a participant compares it with its own. Only a DDL on a
table the write touches can make them differ, so a DDL on one table no longer fails writes to the others
(a database-wide schema version did: sysbench's parallel ``prepare`` lost rows and indexes to it).

The fingerprint is a hash of the table's rows in ``sqlite_schema`` (the table itself, its indexes and its
triggers: every row whose ``tbl_name`` is the table), so it needs no stored state and is the same on
every node holding the same schema: DDL travels as the exact SQLite text every node runs, and SQLite
stores that text normalised. A table that does not exist has the fingerprint ``None``.

Table names compare case-insensitively, as SQLite resolves them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import apsw

Fingerprint = bytes  # 8 bytes

_OF_TABLES = "SELECT lower(tbl_name), type, name, sql FROM sqlite_schema WHERE lower(tbl_name) IN ({}) ORDER BY 1, 2, 3"
_ALL = (
    "SELECT lower(tbl_name), type, name, sql FROM sqlite_schema "
    "WHERE tbl_name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY 1, 2, 3"
)


def _hash(rows: list[tuple[str, str, str | None]]) -> Fingerprint:
    h = hashlib.blake2b(digest_size=8)
    for kind, name, sql in rows:
        h.update(f"{kind}\x00{name}\x00{sql or ''}\x01".encode())
    return h.digest()


def _group(cursor: Iterable[tuple[str, str, str, str | None]]) -> dict[str, Fingerprint]:
    grouped: dict[str, list[tuple[str, str, str | None]]] = {}
    for table, kind, name, sql in cursor:
        grouped.setdefault(table, []).append((kind, name, sql))
    return {table: _hash(rows) for table, rows in grouped.items()}


def table_fingerprints(conn: apsw.Connection, tables: Iterable[str]) -> dict[str, Fingerprint | None]:
    """``{lower-cased table: fingerprint or None (no such table)}`` for ``tables`` in ``conn``'s main
    database."""
    names = sorted({t.lower() for t in tables})
    if not names:
        return {}
    found = _group(conn.execute(_OF_TABLES.format(",".join("?" * len(names))), names))
    return {t: found.get(t) for t in names}


def all_fingerprints(conn: apsw.Connection) -> dict[str, Fingerprint]:
    """Every table's (and view's) fingerprint: compared before and after a DDL to learn which tables
    it changes."""
    return _group(conn.execute(_ALL))


def changed_tables(before: dict[str, Fingerprint], after: dict[str, Fingerprint]) -> list[str]:
    """Tables created, dropped or altered between two ``all_fingerprints`` readings, sorted."""
    return sorted(t for t in before.keys() | after.keys() if before.get(t) != after.get(t))
