"""Digests recomputed from what the tables hold: ``marmot verify --full``.

Why a second kind of digest: the incremental digests (``catchup/digest.py``) are kept by the applier and sum
``(row key, version)`` of the rows that went through replication. They cannot see a row whose *content*
changed without a new version — a file edited by hand or by another program, a restored backup, a
bug that writes past the applier. Such a node answers reads with its own copy forever: anti-entropy
compares incremental digests, finds them equal and repairs nothing. A full digest reads every row.

What it is: per user table, the sum mod 2^64 of ``content_hash(key, state, row)`` over the rows the table
holds, and their count. ``key`` is the row key computed from the row (``TableSchema``: rowid, or the
collation-folded primary key); ``state`` is the key's row-version entry (wall, logical, node, deleted) or
none; ``row`` is every stored column in table order, ``repr``-encoded so the storage class counts
(``1`` ≠ ``1.0`` ≠ ``'1'``). Nodes holding the same rows at the same versions give the same digest; a
row changed, missing, extra or at another version on one node changes it. Internal ``__marmot*``
tables and SQLite's ``sqlite_*`` are left out; virtual tables and their storage tables are listed as
``skipped`` (a module's storage may legitimately differ between nodes, and it is not replicated row by
row), as is a rowid table whose rowid is hidden behind columns named ``rowid``, ``_rowid_`` and ``oid``.

Cost and where it runs: a full scan of every table, on a connection of its own in a worker thread of
its own (``off_loop``: one scan at a time per node, others queue; the event loop keeps serving clients
and replication, and the pool other code shares is not taken); one read transaction per document, so
the tables are read at one point in time and writers are not blocked (WAL). Rows are read a page at a
time (``PAGE`` rows, in key order), never all at once, and a scan whose request went away (the node
stopping, the handler cancelled) ends at the next page. Because of that cost it is run on demand
only: anti-entropy keeps comparing the incremental digests, which cost nothing to read.

Who uses it: ``GET /admin/databases/{db}/digest?full=1`` and ``…/digest/{table}/keys?full=1``
(``admin/http.py``), and ``marmot verify --full`` (``admin/commands.py``), which compares the documents of
every node and lists the keys whose ``[version, content hash]`` differ.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import struct
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import apsw

from marmot.storage import replication_tables as rt
from marmot.storage.databases import DatabaseManager
from marmot.storage.rowkey import (
    RowKeyError,
    TableSchema,
    UnknownTableError,
    decode_row_key,
    load_table_schema,
    quote_ident,
)

PAGE = 1000  # rows read per query
KEYS_LIMIT = 5000  # most keys one ``full_keys_document`` page returns (as ``digest.KEYS_LIMIT``)

State = tuple[int, int, int, int]  # (wall, logical, node, deleted) of a key's row-version entry
_STATE = struct.Struct(">QHQB")
_NO_STATE = b"-"
_blake2b = hashlib.blake2b
_SCANS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="marmot-full-digest")


class ScanStopped(Exception):
    """The request behind a scan went away; the scan stopped between two pages."""


async def off_loop(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args, stop=event)`` in the full-scan thread; ``event`` is set once this coroutine ends in any
    way (also cancelled), so a scan nobody waits for stops at its next page."""
    stop = threading.Event()
    try:
        return await asyncio.get_running_loop().run_in_executor(
            _SCANS, functools.partial(fn, *args, stop=stop)
        )
    finally:
        stop.set()


def content_hash(key: bytes, state: State | None, row: tuple[Any, ...]) -> int:
    """A row's contribution to its table's full digest (module docstring): the first 8 bytes of
    blake2b(key, state, repr(row)), as an unsigned integer."""
    packed = _NO_STATE if state is None else _STATE.pack(state[0], state[1], state[2], 1 if state[3] else 0)
    h = _blake2b(digest_size=8)
    h.update(len(key).to_bytes(4, "big"))
    h.update(key)
    h.update(packed)
    h.update(repr(row).encode("utf-8"))
    return int.from_bytes(h.digest(), "big")


def user_tables(conn: apsw.Connection) -> tuple[list[str], dict[str, str]]:
    """The tables a full digest covers, sorted, and ``{table: why it is not covered}`` for the rest."""
    covered: list[str] = []
    skipped: dict[str, str] = {}
    for name, kind in conn.execute("SELECT name, type FROM pragma_table_list WHERE schema = 'main'"):
        lower = str(name).lower()
        if lower.startswith(("sqlite_", "__marmot")):
            continue
        if kind == "table":
            covered.append(name)
        elif kind == "virtual":
            skipped[name] = "virtual table: its contents are the module's, not compared"
        elif kind == "shadow":
            skipped[name] = "storage table of a virtual table: not compared"
    return sorted(covered), skipped


def _order(ts: TableSchema) -> tuple[list[str], str] | None:
    """The columns a page is ordered and continued by (the key's), and what to select before the row;
    None when the table's rows cannot be addressed (hidden rowid)."""
    if ts.rowid_key:
        if ts.rowid_name is None:
            return None
        return [ts.rowid_name], quote_ident(ts.rowid_name) + ", "
    return list(ts.pk), ""


def content_pages(
    conn: apsw.Connection,
    ts: TableSchema,
    after: bytes | None = None,
    page: int = PAGE,
    stop: threading.Event | None = None,
) -> Iterator[list[tuple[bytes, State | None, int]]]:
    """``[(key, state, content hash), ...]`` of ``ts``'s rows in key order, page by page, starting after
    the row whose key is ``after`` (exclusive). Raises ``ValueError`` when ``after`` is not a key of
    this table, ``LookupError`` when the table's rows cannot be addressed, ``ScanStopped`` when
    ``stop`` is set before a page."""
    order = _order(ts)
    if order is None:
        raise LookupError(f"{ts.name}: its rowid is hidden by columns named rowid, _rowid_ and oid")
    key_cols, rowid_select = order
    cols = ", ".join(map(quote_ident, ts.columns))
    ordered = ", ".join(map(quote_ident, key_cols))
    base = f"SELECT {rowid_select}{cols} FROM main.{quote_ident(ts.name)}"
    position: list[Any] | None = None
    if after is not None:
        try:
            table, values = decode_row_key(after)
        except RowKeyError as e:
            raise ValueError(f"'after' is not a row key: {e}") from None
        if table != ts.name or len(values) != len(key_cols):
            raise ValueError(f"'after' is not a row key of table {ts.name}")
        position = values
    while True:
        if stop is not None and stop.is_set():
            raise ScanStopped(f"scan of {ts.name} stopped: nobody waits for it")
        if position is None:
            rows = conn.execute(f"{base} ORDER BY {ordered} LIMIT ?", (page,)).fetchall()
        else:
            marks = ", ".join("?" * len(position))
            rows = conn.execute(
                f"{base} WHERE ({ordered}) > ({marks}) ORDER BY {ordered} LIMIT ?", (*position, page)
            ).fetchall()
        if not rows:
            return
        out: list[tuple[bytes, tuple[Any, ...]]] = []
        if rowid_select:
            for r in rows:
                out.append((ts.rowid_key_of(cast(int, r[0])), tuple(r[1:])))  # a rowid is an integer
            position = [rows[-1][0]]
        else:
            for r in rows:
                out.append((ts.key_of(r), tuple(r)))
            position = [rows[-1][i] for i in ts.pk_index]
        states = rt.row_states(conn, [k for k, _ in out])
        yield [(k, s, content_hash(k, s, row)) for k, row in out for s in (states.get(k),)]
        if len(rows) < page:
            return


def table_full_digest(
    conn: apsw.Connection, ts: TableSchema, stop: threading.Event | None = None
) -> tuple[int, int]:
    """``(digest, rows)`` of one table from its contents (inside the caller's read transaction)."""
    total = 0
    count = 0
    for chunk in content_pages(conn, ts, stop=stop):
        for _key, _state, h in chunk:
            total += h
        count += len(chunk)
    return total & rt.MASK64, count


def full_digest_document(
    conn: apsw.Connection, db: str, stop: threading.Event | None = None
) -> dict[str, Any]:
    """``{"database", "schema_version", "full": true, "tables": {table: {"digest", "rows"}}, "skipped":
    {table: reason}}`` — the shape of ``digest.digest_document`` (empty tables left out the same way),
    computed from the tables' contents in one read transaction."""
    tables: dict[str, dict[str, Any]] = {}
    with conn:
        try:
            version = rt.schema_version(conn)
        except apsw.SQLError:
            version = 0
        names, skipped = user_tables(conn)
        for name in names:
            try:
                ts = load_table_schema(conn, name)
                digest, rows = table_full_digest(conn, ts, stop)
            except (LookupError, UnknownTableError) as e:
                skipped[name] = str(e)
                continue
            if rows:
                tables[name] = {"digest": f"{digest:016x}", "rows": rows}
    return {
        "database": db,
        "schema_version": version,
        "full": True,
        "tables": tables,
        "skipped": dict(sorted(skipped.items())),
    }


def full_keys_document(
    conn: apsw.Connection,
    db: str,
    table: str,
    after: bytes | None,
    limit: int,
    stop: threading.Event | None = None,
) -> dict[str, Any]:
    """``{"database", "table", "full": true, "keys": [[hex key, [wall, logical, node] or null, content
    hash hex], ...], "next"}``: one page of the rows ``table`` holds, in key order (``next`` as in
    ``digest.keys_document``). A table absent here has no keys. Raises ``ValueError`` for a bad
    ``after``."""
    limit = max(1, min(int(limit), KEYS_LIMIT))
    keys: list[list[Any]] = []
    with conn:
        try:
            ts = load_table_schema(conn, table)
        except UnknownTableError:
            ts = None
        if ts is not None and ts.kind == "table":
            try:
                for chunk in content_pages(conn, ts, after, page=min(PAGE, limit), stop=stop):
                    for k, s, h in chunk:
                        keys.append([k.hex(), None if s is None else [s[0], s[1], s[2]], f"{h:016x}"])
                        if len(keys) == limit:
                            break
                    if len(keys) == limit:
                        break
            except LookupError:
                keys = []
    return {
        "database": db,
        "table": table,
        "full": True,
        "keys": keys,
        "next": keys[-1][0] if len(keys) == limit else None,
    }


def _on_own_connection(databases: DatabaseManager, db: str, fn: Any) -> Any:
    if not databases.exists(db):
        return None
    conn = databases.open(db)
    try:
        return fn(conn)
    finally:
        with contextlib.suppress(apsw.Error):
            conn.close()


def database_full_digest(
    databases: DatabaseManager, db: str, stop: threading.Event | None = None
) -> dict[str, Any] | None:
    """``full_digest_document`` on a connection of its own; None when there is no such database. Blocks
    for a full scan: run it with ``off_loop``."""
    doc: dict[str, Any] | None = _on_own_connection(
        databases, db, lambda conn: full_digest_document(conn, db, stop)
    )
    return doc


def database_full_keys(
    databases: DatabaseManager,
    db: str,
    table: str,
    after: bytes | None,
    limit: int,
    stop: threading.Event | None = None,
) -> dict[str, Any] | None:
    """``full_keys_document`` on a connection of its own; None when there is no such database."""
    doc: dict[str, Any] | None = _on_own_connection(
        databases, db, lambda conn: full_keys_document(conn, db, table, after, limit, stop)
    )
    return doc
