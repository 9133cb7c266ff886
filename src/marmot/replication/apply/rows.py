"""The SQL that writes row changes into a database: the one module that does (the LWW applier, repairs and
the engine's transaction view all call it).

``apply_changes`` turns each ``RowChange`` into an upsert (``INSERT OR REPLACE`` with every column of the
new image), an ``UPDATE`` of the image's columns, or a ``DELETE``, addressing the row by its key
(``storage.rowkey``: the primary key's columns, or the rowid). Statements are cached per table and
column set. The caller owns the SQLite transaction.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import apsw

from marmot.replication.changes import RowChange
from marmot.storage.rowkey import (
    RowKeyError,
    SchemaCache,
    SqlValue,
    TableSchema,
    UnknownTableError,
    decode_row_key,
    quote_ident,
)


class ApplyError(Exception):
    """A change does not fit the target database (unknown table or column, missing row id)."""


@functools.lru_cache(maxsize=4096)
def _upsert_sql(table: str, cols: tuple[str, ...]) -> str:
    names = ", ".join(map(quote_ident, cols))
    marks = ", ".join("?" * len(cols))
    return f"INSERT OR REPLACE INTO main.{quote_ident(table)} ({names}) VALUES ({marks})"


@functools.lru_cache(maxsize=4096)
def _update_sql(table: str, cols: tuple[str, ...], where: tuple[str, ...]) -> str:
    sets = ", ".join(f"{quote_ident(c)} = ?" for c in cols)
    cond = " AND ".join(f"{quote_ident(c)} IS ?" for c in where)
    return f"UPDATE OR REPLACE main.{quote_ident(table)} SET {sets} WHERE {cond}"


@functools.lru_cache(maxsize=4096)
def _delete_sql(table: str, where: tuple[str, ...]) -> str:
    cond = " AND ".join(f"{quote_ident(c)} IS ?" for c in where)
    return f"DELETE FROM main.{quote_ident(table)} WHERE {cond}"


def where_clause(ts: TableSchema, key: bytes) -> tuple[tuple[str, ...], list[SqlValue]]:
    """Columns and values addressing the row of ``key`` in ``ts`` (the rowid, or the declared PK)."""
    try:
        key_table, values = decode_row_key(key)
    except RowKeyError as e:
        raise ApplyError(f"{ts.name}: bad row key: {e}") from None
    if ts.rowid_key:
        if ts.rowid_name is None:
            raise ApplyError(f"{ts.name}: rowid is shadowed by columns named rowid, _rowid_ and oid")
        if len(values) != 1 or type(values[0]) is not int:
            raise ApplyError(f"{ts.name}: a rowid table's key must be one integer")
        return (ts.rowid_name,), values
    if len(values) != len(ts.pk):
        raise ApplyError(f"{ts.name}: key has {len(values)} values, primary key {len(ts.pk)} columns")
    return ts.pk, values


def _image_row(ts: TableSchema, img: dict[str, SqlValue]) -> tuple[tuple[str, ...], list[SqlValue]]:
    """The writable columns of an image, sorted (one SQL text per column set), and their values."""
    cols = tuple(sorted(c for c in img if c in ts.writable))
    if len(cols) != len(img):
        unknown = [c for c in img if c not in ts.columns]
        if unknown:
            raise ApplyError(f"{ts.name}: no such column(s) {unknown}")
    return cols, [img[c] for c in cols]


def _upsert(conn: apsw.Connection, ts: TableSchema, key: bytes, img: dict[str, SqlValue]) -> None:
    cols, vals = _image_row(ts, img)
    if ts.rowid_key and ts.rowid_alias is None:
        # A table without a declared primary key: the row's identity is its rowid, carried in the key.
        (rid_col,), rid = where_clause(ts, key)
        cols, vals = (rid_col, *cols), [*rid, *vals]
    if not cols:
        raise ApplyError(f"{ts.name}: empty row image")
    conn.execute(_upsert_sql(ts.name, cols), vals)


def apply_changes(conn: apsw.Connection, changes: Sequence[RowChange], schema: SchemaCache) -> int:
    """Apply ``changes`` to ``conn``'s main database inside the caller's transaction; returns the count.

    INSERT → ``INSERT OR REPLACE`` of the new image (columns sorted). UPDATE → ``UPDATE … WHERE key``,
    and an upsert of the new image when that row is missing. DELETE → ``DELETE … WHERE key``. Rows are
    addressed by the *key* (rowid or declared primary key, ``IS`` so NULL works, the column's own
    collation deciding equality — the key is collation-folded), so apply does not depend on old images.

    Why these knobs, all restored on return:

    * Triggers are off (``SQLITE_DBCONFIG_ENABLE_TRIGGER``): rows a trigger wrote on the origin are
      already in ``changes`` (the hook sees every depth). Firing them again would write those rows
      twice and give ``ON UPDATE CURRENT_TIMESTAMP`` columns this node's clock.
    * Foreign keys are off (``SQLITE_DBCONFIG_ENABLE_FKEY``): cascaded rows are in ``changes`` too, and
      an action fired here would be wrong — a primary-key change arrives as DELETE + INSERT, and an
      ``ON DELETE CASCADE`` fired by that DELETE would remove rows the origin only updated (or not at
      all, e.g. grandchildren). The origin already enforced the constraints.
    * ``OR REPLACE`` on UPDATE too: changes are merged per key and listed in first-touch order, so a
      transaction that swapped a UNIQUE value between two rows arrives with one row's final image
      before the other's. REPLACE removes the row in the way; that row always comes later in the same
      change set (its final image cannot conflict with a final image), where the missing-row upsert
      restores it.
    """
    prev_trig = conn.config(apsw.SQLITE_DBCONFIG_ENABLE_TRIGGER, -1)
    prev_fk = conn.config(apsw.SQLITE_DBCONFIG_ENABLE_FKEY, -1)
    conn.config(apsw.SQLITE_DBCONFIG_ENABLE_TRIGGER, 0)
    conn.config(apsw.SQLITE_DBCONFIG_ENABLE_FKEY, 0)
    try:
        for c in changes:
            try:
                ts = schema.get(conn, c.table)
            except UnknownTableError as e:
                raise ApplyError(str(e)) from None
            if c.op == "INSERT":
                if c.new is None:
                    raise ApplyError(f"{c.table}: INSERT without a new image")
                _upsert(conn, ts, c.key, c.new)
            elif c.op == "UPDATE":
                if c.new is None:
                    raise ApplyError(f"{c.table}: UPDATE without a new image")
                where, wvals = where_clause(ts, c.key)
                cols, vals = _image_row(ts, c.new)
                if cols:
                    conn.execute(_update_sql(ts.name, cols, where), [*vals, *wvals])
                if not cols or conn.changes() == 0:
                    _upsert(conn, ts, c.key, c.new)
            elif c.op == "DELETE":
                where, wvals = where_clause(ts, c.key)
                conn.execute(_delete_sql(ts.name, where), wvals)
            else:
                raise ApplyError(f"{c.table}: unknown op {c.op!r}")
        return len(changes)
    finally:
        conn.config(apsw.SQLITE_DBCONFIG_ENABLE_FKEY, prev_fk)
        conn.config(apsw.SQLITE_DBCONFIG_ENABLE_TRIGGER, prev_trig)
