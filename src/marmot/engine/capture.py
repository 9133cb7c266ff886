"""Capture the row changes a statement or transaction makes, with SQLite's preupdate hook.

Why the preupdate hook (upstream §4.1): it fires for every row SQLite writes — direct SQL, trigger
bodies, foreign-key actions, REPLACE deletions — with the full old and new row, before the write, on
the connection that makes it. Triggers writing change tables cost ~2× more and miss nothing the hook
does not; the session extension gives only changed columns (no full images for the CDC publisher) and
must never share a connection with a preupdate hook (APSW: "will CRASH THE PROCESS"). So: **never
attach an ``apsw.Session`` to a connection a ``ChangeCapture`` is started on.**

How it is used (the engine, upstream §3.2/§3.12): ``start(conn, generation)`` before the statement (or
at the first write of a transaction); run the SQL; ``changes()`` while the SQLite transaction is still
open; then roll it back or commit, and ``stop()``. A statement that fails after touching rows (SQLite
rolls back its statement journal, but the hook already fired) must be undone here too: take
``m = mark()`` before each statement and ``rollback_to(m)`` when it fails or its SAVEPOINT is rolled
back.

What comes out: one ``RowChange`` per touched row key, in first-touch order, already merged per key
over the whole capture (old image from the first change, new image from the last):

    INSERT … UPDATE     → INSERT (last image)        UPDATE … UPDATE → UPDATE
    INSERT … DELETE     → nothing                    UPDATE … DELETE → DELETE (first old image)
    DELETE … INSERT     → UPDATE (REPLACE, upserts)  primary-key change → DELETE old key + INSERT new key

Per-row cost is kept in the hook minimal: it copies the op, table, rowids and the two value tuples
into a list and returns; schema lookups, key encoding, merging and building the dicts happen once in
``changes()``. Measured figures are in tests/unit/test_capture.py (``test_overhead_100k_inserts``).

Scope of the hook, on purpose:

* ``main`` only. ``temp`` (session-local temporary tables, never replicated) and the session's
  ``information_schema`` scratch database are ignored; a write to any other ATTACHed database is an
  error at ``changes()`` — it belongs to another database's replication stream, and silently dropping
  it would lose the write on every other node.
* Tables whose name starts with ``__marmot`` (internal state) are ignored.
* Rows written at any depth (triggers, FK cascades) are captured: they are real row changes, and the
  applier runs with triggers and FK actions off precisely because they are in the change set.
* Failure inside the hook never raises into SQLite (an exception there would fail the statement
  *after* SQLite made the change); it is recorded and ``changes()`` raises ``CaptureError``, so the
  caller fails the statement and rolls back. Recorded errors: writes to a virtual table's shadow
  tables (FTS, vec0: not replicable row by row), incremental BLOB writes, a WITHOUT ROWID table with
  VIRTUAL generated columns, images that do not match the schema.

VIRTUAL generated columns: SQLite's ``sqlite3_preupdate_old/new`` cannot read them, and APSW then
fails the whole ``old``/``new`` tuple (RangeError). For such a (rowid) table the hook falls back to a
``SELECT`` of the stored columns by rowid: the old row before UPDATE/DELETE (it still exists during the
preupdate callback), and the new row at ``changes()`` time — the row as it stands then is exactly the
merged "last" image. Slower, only for those tables.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Collection
from typing import Any

import apsw

from marmot.replication.changes import RowChange
from marmot.storage.rowkey import TAG_INT, SchemaCache, SqlValue, TableSchema, UnknownTableError, quote_ident

_INSERT = apsw.SQLITE_INSERT
_UPDATE = apsw.SQLITE_UPDATE
_DELETE = apsw.SQLITE_DELETE
_MAIN = "main"
_INT_TAG = bytes((TAG_INT,))
_pack_q = struct.Struct(">q").pack
_INDEX_MASK = (1 << 32) - 1
_KEEP_FIRST = ~((_INDEX_MASK << 2) | 1)  # clears "last event" and "exists after" in a packed net entry
DEFAULT_IGNORED_SCHEMAS = frozenset({"temp", "information_schema"})


class CaptureError(Exception):
    """The captured changes cannot be trusted or replicated; fail the statement and roll back."""


class _ReadLater:
    """Placeholder for a new image the hook could not read (VIRTUAL generated columns)."""

    __slots__ = ("rowid",)

    def __init__(self, rowid: int) -> None:
        self.rowid = rowid


# A raw record, as appended by the hook: (opcode, table, old rowid, new rowid, old values, new values).
_Raw = tuple[int, str, int | None, int | None, Any, Any]


class ChangeCapture:
    """Collects the row changes made on one connection between ``start`` and ``stop``.

    One instance per capture connection; reuse it across transactions with ``reset()``. The schema
    cache may be shared with other captures and appliers of the same database.
    """

    __slots__ = ("schema", "ignored_schemas", "_conn", "_active", "_raw", "_errors", "_hook")

    def __init__(
        self, schema: SchemaCache | None = None, *, ignored_schemas: Collection[str] = DEFAULT_IGNORED_SCHEMAS
    ) -> None:
        self.schema = schema if schema is not None else SchemaCache()
        self.ignored_schemas = frozenset(ignored_schemas)
        self._conn: apsw.Connection | None = None
        self._active = False
        self._raw: list[_Raw] = []
        self._errors: list[tuple[int, str]] = []  # (raw position when recorded, message)
        self._hook: Callable[[apsw.PreUpdate], None] | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, conn: apsw.Connection, generation: int | None = None) -> None:
        """Install the hook on ``conn``. ``generation`` is the database's schema generation
        (``DatabaseManager.generation(db)``); a change empties the schema cache."""
        if self._active:
            raise RuntimeError("ChangeCapture already started")
        if generation is not None:
            self.schema.check_generation(generation)
        self._conn = conn
        self._hook = self._make_hook()
        conn.preupdate_hook(self._hook)
        self._active = True

    def set_observer(self, observer: Callable[[apsw.PreUpdate], None] | None) -> None:
        """Also call ``observer`` for every row (SQLite allows one preupdate hook per connection; the
        engine counts MySQL's affected rows with one). ``None`` removes it."""
        if not self._active or self._conn is None or self._hook is None:
            return
        hook = self._hook
        if observer is None:
            self._conn.preupdate_hook(hook)
            return

        def both(u: apsw.PreUpdate) -> None:
            hook(u)
            observer(u)

        self._conn.preupdate_hook(both)

    def stop(self) -> None:
        """Remove the hook. Captured changes stay until ``reset()``; ``changes()`` still needs the
        connection's open transaction if a table had VIRTUAL generated columns."""
        if self._active and self._conn is not None:
            self._conn.preupdate_hook(None)
        self._active = False

    @property
    def active(self) -> bool:
        return self._active

    def reset(self) -> None:
        """Forget everything captured (next transaction). The hook stays installed if started."""
        self._raw.clear()  # in place: the hook closure holds ``self._raw.append``
        self._errors = []

    def mark(self) -> int:
        """A position to roll back to (take it before each statement)."""
        return len(self._raw)

    def rollback_to(self, mark: int) -> None:
        """Drop what was captured after ``mark``: the statement (or savepoint) was rolled back."""
        del self._raw[mark:]
        self._errors = [e for e in self._errors if e[0] < mark]

    def __len__(self) -> int:
        """Raw row events captured (before merging)."""
        return len(self._raw)

    # -- the hook (hot path: keep it minimal) ---------------------------------------------------

    def _make_hook(self) -> Callable[[apsw.PreUpdate], None]:
        """The preupdate callback: a closure over locals (``append`` bound once), because attribute
        lookups on ``self`` per row were a measurable share of its cost. ``self._raw`` is only ever
        mutated in place (never rebound), so the bound ``append`` stays valid."""
        append = self._raw.append
        fallback = self._read_fallback
        other_schema = self._other_schema
        error = self._error
        range_error = apsw.RangeError

        def hook(u: apsw.PreUpdate) -> None:
            table = "?"
            try:
                table = u.table_name
                if table.startswith("__") and table[:8].lower() == "__marmot":
                    return
                if u.database_name != _MAIN:
                    other_schema(u.database_name, table)
                    return
                op = u.opcode
                try:
                    if op == _INSERT:
                        append((_INSERT, table, None, u.rowid_new, None, u.new))
                    elif op == _UPDATE:
                        append((_UPDATE, table, u.rowid, u.rowid_new, u.old, u.new))
                    elif u.blob_write >= 0:
                        error(f"incremental BLOB write to {table} cannot be captured")
                    else:
                        append((_DELETE, table, u.rowid, None, u.old, None))
                except range_error:
                    fallback(u, op, table)
            except Exception as e:  # never raise into SQLite: the row is written anyway (module docstring)
                error(f"capture failed on {table}: {type(e).__name__}: {e}")

        return hook

    def _error(self, msg: str) -> None:
        self._errors.append((len(self._raw), msg))

    def _other_schema(self, schema: str, table: str) -> None:
        if schema not in self.ignored_schemas:
            self._error(f"write to {schema}.{table}: rows of another database cannot be captured here")

    def _read_fallback(self, u: apsw.PreUpdate, op: int, table: str) -> None:
        """Old/new tuples unreadable (VIRTUAL generated columns): read stored columns by rowid."""
        ts = self.schema.get(u.connection, table)
        if not ts.has_virtual or not ts.rowid_key or ts.rowid_name is None:
            self._error(
                f"cannot read rows of {table} in the preupdate hook "
                "(WITHOUT ROWID or shadowed rowid with VIRTUAL generated columns)"
            )
            return
        if op == _INSERT:
            self._raw.append((_INSERT, table, None, u.rowid_new, None, _ReadLater(u.rowid_new)))
            return
        old = _read_row(u.connection, ts, u.rowid)
        if old is None:
            self._error(f"{table}: row {u.rowid} vanished before its preupdate callback")
        elif op == _UPDATE:
            self._raw.append((_UPDATE, table, u.rowid, u.rowid_new, old, _ReadLater(u.rowid_new)))
        else:
            self._raw.append((_DELETE, table, u.rowid, None, old, None))

    # -- merging ------------------------------------------------------------------------------

    def changes(self) -> list[RowChange]:
        """The net change per row key, in first-touch order (see the module docstring).

        Call it while the captured SQLite transaction is still open. Raises ``CaptureError`` if any
        row could not be captured faithfully.
        """
        if self._errors:
            raise CaptureError(self._errors[0][1])
        conn = self._conn
        if conn is None:
            return []
        raw = self._raw
        # key -> packed int (first event << 34 | last event << 2 | existed before << 1 | exists after);
        # dict order = first touch. Plain ints, not per-key lists: 100k tracked containers made the
        # cyclic GC cost as much as the merge itself.
        net: dict[bytes, int] = {}
        get = net.get
        schemas: dict[str, TableSchema] = {}
        last_table = None
        ts: TableSchema | None = None
        rowid_prefix: bytes | None = None
        for i, (op, table, rid_old, rid_new, old, new) in enumerate(raw):
            if table != last_table:
                ts = schemas.get(table)
                if ts is None:
                    ts = schemas[table] = self._table(conn, table)
                rowid_prefix = ts.prefix + _INT_TAG if ts.rowid_key else None
                last_table = table
            assert ts is not None
            if rowid_prefix is not None:
                if op == _INSERT:  # the hot case, merged inline
                    key = rowid_prefix + _pack_q(rid_new)
                    v = get(key)
                    net[key] = (i << 34 | i << 2 | 1) if v is None else (v & _KEEP_FIRST) | (i << 2) | 1
                    continue
                old_key: bytes | None = rowid_prefix + _pack_q(rid_old)
                new_key: bytes | None = (
                    None
                    if new is None
                    else old_key
                    if rid_new == rid_old
                    else rowid_prefix + _pack_q(rid_new)
                )
            else:
                old_key = ts.key_of(old) if old is not None else None
                new_key = ts.key_of(new) if new is not None else None
            if old_key is not None and old_key == new_key:
                _merge(net, old_key, i, True, True)
            else:
                if old_key is not None:
                    _merge(net, old_key, i, True, False)
                if new_key is not None:
                    _merge(net, new_key, i, False, True)
        out: list[RowChange] = []
        append = out.append
        new_tuple = tuple.__new__  # RowChange(...) minus the argument parsing: ~40% cheaper per row
        for key, v in net.items():
            first = raw[v >> 34]
            t = schemas[first[1]]
            cols = t.columns
            ncol = len(cols)
            old = first[4] if v & 2 else None
            new = raw[(v >> 2) & _INDEX_MASK][5] if v & 1 else None
            if type(new) is _ReadLater:
                new = _read_row(conn, t, new.rowid)
                if new is None:
                    raise CaptureError(f"{t.name}: row {key!r} missing when reading its new image")
            if (old is not None and len(old) != ncol) or (new is not None and len(new) != ncol):
                raise CaptureError(
                    f"{t.name}: a row image does not match the cached table schema "
                    "(stale schema generation, or DDL inside the capture)"
                )
            # lengths checked just above, so zip needs no strict=True (which costs ~30% of the dict)
            if old is None:
                append(
                    new_tuple(RowChange, (t.name, "INSERT", key, None, dict(zip(cols, new, strict=False))))
                )
            elif new is not None:
                append(
                    new_tuple(
                        RowChange,
                        (
                            t.name,
                            "UPDATE",
                            key,
                            dict(zip(cols, old, strict=False)),
                            dict(zip(cols, new, strict=False)),
                        ),
                    )
                )
            else:
                append(
                    new_tuple(RowChange, (t.name, "DELETE", key, dict(zip(cols, old, strict=False)), None))
                )
        return out

    def _table(self, conn: apsw.Connection, table: str) -> TableSchema:
        try:
            ts = self.schema.get(conn, table)
        except UnknownTableError as e:
            raise CaptureError(f"captured a write to {table}, which is not a table: {e}") from None
        if ts.kind != "table":
            raise CaptureError(
                f"{table} is a {ts.kind} table (storage of a virtual table): its writes "
                "cannot be replicated row by row"
            )
        return ts


def _merge(net: dict[bytes, int], key: bytes, i: int, existed: bool, exists: bool) -> None:
    """Fold event ``i`` into the net change of ``key``: keep the first event (its old image and
    whether the row existed before), take the last one (its new image and whether the row exists)."""
    v = net.get(key)
    if v is None:
        net[key] = i << 34 | i << 2 | existed << 1 | exists
    elif not v & 2 and not exists:
        del net[key]  # inserted and deleted within the capture: nothing happened
    else:
        net[key] = (v & _KEEP_FIRST) | i << 2 | exists


def _read_row(conn: apsw.Connection, ts: TableSchema, rowid: int) -> tuple[SqlValue, ...] | None:
    cols = ", ".join(map(quote_ident, ts.columns))
    sql = f"SELECT {cols} FROM main.{quote_ident(ts.name)} WHERE {quote_ident(ts.rowid_name or 'rowid')} = ?"
    for row in conn.execute(sql, (rowid,)):
        return tuple(row)
    return None
