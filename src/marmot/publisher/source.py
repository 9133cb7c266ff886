"""What the publisher reads from a database file: commit-log entries, declared columns, existing rows.

Every read is a plain SELECT on a read connection of the file (the replication layer's
``ReadConnections``), synchronous on the event loop thread like the rest of the node, and never inside a
write transaction: the publisher does not take a database's writer lock.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import apsw
import msgpack

from marmot.publisher.envelope import Column, debezium_type
from marmot.replication.changes import OP_NAMES, RowChange
from marmot.replication.messages import decode_body
from marmot.storage import replication_tables as rt
from marmot.storage.rowkey import UnknownTableError, load_table_schema, quote_ident


class LogRow(NamedTuple):
    seq: int
    txn_id: int
    wall: int
    origin: int
    payload: bytes


_COLS = f"SELECT seq, txn_id, wall, origin, payload FROM {rt.TXN_LOG}"


def entries_after(conn: apsw.Connection, after: int, limit: int) -> list[LogRow]:
    """Log entries after ``after``, in seq order (all origins: the caller picks its own)."""
    return [LogRow(*r) for r in conn.execute(f"{_COLS} WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit))]


def entries_of(
    conn: apsw.Connection, origin: int, after: int, min_wall: int, limit: int
) -> tuple[list[LogRow], int]:
    """Entries coordinated by ``origin`` after ``after`` with a commit time of at least ``min_wall``, and
    the seq the scan reached (entries of other origins skipped over count as read)."""
    rows = list(conn.execute(f"{_COLS} WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)))
    reached = rows[-1][0] if rows else after
    return [LogRow(*r) for r in rows if r[3] == origin and r[2] >= min_wall], reached


def logged_changes(payload: bytes) -> list[RowChange]:
    """The row changes of a commit-log entry's body (``replication.messages`` body, ``changes`` rows).

    Why not ``decode_body``: that decoder checks everything a peer could have got wrong, key by key and
    value by value, and on the publish path it cost more than building the event. A log entry was
    written by this node's applier after that very check, so here the two msgpack layers are unpacked
    and the fields read as they are; anything unexpected falls back to the strict decoder, whose error
    the caller reports (``MessageError``)."""
    try:
        doc = msgpack.unpackb(payload, raw=False)
        rows = doc.get("rows")
        if rows is None:
            return []
        out = []
        for e in msgpack.unpackb(rows, raw=False)["changes"]:
            out.append(RowChange(e["t"], OP_NAMES[e["o"]], e["k"], e.get("ov"), e.get("nv")))
        return out
    except Exception:  # not what the applier writes: let the strict decoder say what is wrong
        return decode_body(payload).changes


def backlog(conn: apsw.Connection, after: int) -> tuple[int, int | None]:
    """(log entries after ``after``, commit wall ns of the first of them): what a sink with that cursor
    still has to read and what GC keeps for it. Both are primary-key lookups, whatever the backlog."""
    newest = rt.last_seq(conn)
    first = conn.execute(
        f"SELECT wall FROM {rt.TXN_LOG} WHERE seq > ? ORDER BY seq LIMIT 1", (after,)
    ).fetchone()
    return max(0, newest - after), (int(first[0]) if first is not None else None)


def count_changes(payload: bytes) -> int:
    """How many row changes a commit-log body holds, read from the msgpack headers without unpacking
    the row images (0 for a body that is not what the applier writes)."""
    try:
        outer = msgpack.Unpacker(raw=False)
        outer.feed(payload)
        rows = None
        for _ in range(outer.read_map_header()):
            if outer.unpack() == "rows":
                rows = outer.unpack()
            else:
                outer.skip()
        if not isinstance(rows, bytes):
            return 0
        inner = msgpack.Unpacker(raw=False)
        inner.feed(rows)
        for _ in range(inner.read_map_header()):
            if inner.unpack() == "changes":
                return int(inner.read_array_header())
            inner.skip()
    except Exception:
        return 0
    return 0


def backlog_events(
    conn: apsw.Connection, origin: int, after: int, total: int, sample: int
) -> tuple[int, bool]:
    """Events ``origin`` still has to publish after ``after``: its row changes in the first ``sample``
    log entries, scaled to ``total`` entries when the backlog is longer (then the bool says "estimated").
    Bounded work whatever the backlog: at most ``sample`` bodies are unpacked."""
    rows = conn.execute(
        f"SELECT origin, payload FROM {rt.TXN_LOG} WHERE seq > ? ORDER BY seq LIMIT ?", (after, sample)
    ).fetchall()
    events = 0
    for row_origin, payload in rows:
        if row_origin == origin and isinstance(payload, bytes):
            events += count_changes(payload)
    if not rows or total <= len(rows):
        return events, False
    return round(events * total / len(rows)), True


def first_wall_of(conn: apsw.Connection, origin: int, after: int) -> int | None:
    """Commit wall ns of ``origin``'s first entry after ``after`` (a scan from ``after`` to that entry)."""
    row = conn.execute(
        f"SELECT wall FROM {rt.TXN_LOG} WHERE seq > ? AND origin = ? ORDER BY seq LIMIT 1", (after, origin)
    ).fetchone()
    return int(row[0]) if row is not None else None


def first_seq_of(conn: apsw.Connection, origin: int, min_wall: int) -> int | None:
    """The oldest entry of ``origin`` committed at or after ``min_wall`` (what a takeover would need).
    A scan of the whole log: only asked when that entry could be old enough for GC."""
    row = conn.execute(
        f"SELECT MIN(seq) FROM {rt.TXN_LOG} WHERE origin = ? AND wall >= ?", (origin, min_wall)
    ).fetchone()
    return int(row[0]) if row is not None and row[0] is not None else None


def declared_columns(conn: apsw.Connection, table: str) -> dict[str, Column]:
    """The table's columns as declared now: Debezium type and nullability (empty: no such table)."""
    out: dict[str, Column] = {}
    for _cid, name, typ, notnull, _dflt, pk, hidden in conn.execute(
        f"PRAGMA table_xinfo({quote_ident(table)})"
    ):
        if hidden in (0, 3):  # ordinary and STORED generated columns are in row images
            out[name] = Column(debezium_type(str(typ or "")), not (notnull or pk))
    return out


def user_tables(conn: apsw.Connection) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
            "AND name NOT LIKE '\\_\\_marmot%' ESCAPE '\\' ORDER BY name"
        )
    ]


class SnapshotRow(NamedTuple):
    table: str
    key: bytes
    row: dict[str, Any]
    version: tuple[int, int, int]


def snapshot_rows(conn: apsw.Connection, table: str) -> Iterator[SnapshotRow]:
    """Every row of ``table`` with its row key and its last-writer-wins version ((0, 0, 0): none)."""
    try:
        schema = load_table_schema(conn, table)
    except UnknownTableError:
        return
    if schema.kind != "table":
        return
    cols = ", ".join(quote_ident(c) for c in schema.columns)
    rowid = schema.rowid_name if schema.rowid_key else None
    select = f"SELECT {rowid + ', ' if rowid else ''}{cols} FROM {quote_ident(table)}"
    for r in conn.execute(select):
        values = list(r[1:]) if rowid else list(r)
        key = schema.rowid_key_of(int(r[0])) if rowid else schema.key_of(values)
        ver = conn.execute(
            f"SELECT wall, logical, node FROM {rt.ROW_VERSION} WHERE pk = ? AND deleted = 0", (key,)
        ).fetchone()
        version = (int(ver[0]), int(ver[1]), int(ver[2])) if ver is not None else (0, 0, 0)
        yield SnapshotRow(table, key, dict(zip(schema.columns, values, strict=True)), version)
