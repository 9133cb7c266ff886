"""Convergence checks: per-table digests, how they are read, served and compared.

Why: last-writer-wins plus anti-entropy make nodes converge *if* every transaction reaches every node
and is applied correctly. When that silently fails (a log entry collected before a peer pulled it, a
bug, a file edited by hand) nothing else notices: reads are local, so each node happily answers with
its own copy. A digest per table makes divergence visible and cheap to look for: two nodes compare a
handful of numbers instead of every row.

What a digest is (kept by the applier in ``__marmot_table_digest``, defined in
``storage/replication_tables.py``): per table, the sum mod 2^64 of ``row_hash(row key, version)`` over
the live rows of ``__marmot_row_version`` (rows that went through replication; tombstones excluded),
plus the count of those rows. A sum is order-independent, so nodes that applied the same transactions
in any order hold the same digest; a row missing, extra, or at another version on one node changes it.
It covers keys and versions, not row contents: a row edited outside replication keeps its version and
is not seen (its version is what last-writer-wins trusts anyway); ``catchup/full_digest.py`` recomputes digests
from the contents, on demand (``marmot verify --full``).

Who uses it:

* the admin API: ``GET /admin/databases/{db}/digest`` and ``…/digest/{table}/keys`` (``admin/http.py``,
  through ``NodeControl``), and the ``marmot_table_rows`` / ``marmot_table_digest_info`` metrics;
* the ``digest_get {db}`` RPC (``sync_messages.DigestRequest``, registered by ``LogServer``) —
  anti-entropy compares its peers' answers with ``table_digests`` of its own copy;
* ``marmot verify`` (``admin/commands.py``): every node's digests side by side, then ``diff_keys`` over
  the key lists of the tables that differ.

Reads open a short-lived connection per call (``database_digest``): they run on the event loop, touch
one small table, and hold nothing a DROP DATABASE would have to close.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any, cast

import apsw

from marmot.replication.apply.rows import ApplyError, where_clause
from marmot.replication.catchup.sync_messages import DigestRequest, error
from marmot.replication.messages import MessageError
from marmot.storage import replication_tables as rt
from marmot.storage.databases import DatabaseManager
from marmot.storage.rowkey import UnknownTableError, decode_row_key, load_table_schema, quote_ident

KEYS_LIMIT = 5000  # most keys one ``table_keys`` page returns

# (wall, logical, node) of a live row version
Version = tuple[int, int, int]


def table_digests(conn: apsw.Connection) -> dict[str, tuple[int, int]]:
    """``{table: (digest as an unsigned 64-bit int, live rows)}`` of ``conn``'s database, as stored.

    Tables without live replicated rows are left out (a table whose rows were all deleted keeps a
    ``(0, 0)`` row locally, and tombstone GC may have removed it elsewhere): equal states give equal
    dicts. A file without the digest table (never opened by the replication layer) has none."""
    try:
        rows = conn.execute(f"SELECT tbl, digest, rows FROM {rt.TABLE_DIGEST} ORDER BY tbl").fetchall()
    except apsw.SQLError:
        return {}
    # (tbl TEXT, digest INTEGER, rows INTEGER): the column types of the table
    return {cast(str, t): (rt.to_unsigned(cast(int, d)), cast(int, n)) for t, d, n in rows if n or d}


def recompute_digests(conn: apsw.Connection, tables: list[str] | None = None) -> dict[str, tuple[int, int]]:
    """Rebuild the stored digests of ``tables`` (all: None) from ``__marmot_row_version`` in one
    transaction of its own (or inside the caller's); returns ``table_digests``' view of them.

    The repair of a digest table that no longer matches its versions (``verify_digests`` tells), and
    the reference the unit tests hold the incremental digests to."""
    with conn:
        written = rt.recompute_digests(conn, tables)
    return {t: v for t, v in sorted(written.items()) if v[1] or v[0]}


def verify_digests(conn: apsw.Connection) -> dict[str, tuple[tuple[int, int], tuple[int, int]]]:
    """Tables whose stored digest differs from one computed from the row versions: ``{table: (stored,
    computed)}``, empty when the incremental bookkeeping is right. Reads only, in one read transaction
    (a full scan of the row versions)."""
    with conn:
        stored = table_digests(conn)
        fresh = {t: v for t, v in rt.compute_digests(conn).items() if v[1] or v[0]}
    return {
        t: (stored.get(t, (0, 0)), fresh.get(t, (0, 0)))
        for t in sorted(stored.keys() | fresh.keys())
        if stored.get(t) != fresh.get(t)
    }


def table_keys(
    conn: apsw.Connection, table: str, after: bytes | None = None, limit: int = KEYS_LIMIT
) -> list[tuple[bytes, Version]]:
    """The live row keys of ``table`` with their versions, in key order, after ``after`` (exclusive),
    at most ``limit``: what ``table``'s digest sums, paginated for ``marmot verify``. A range scan of
    the row-version primary key (keys start with the table name)."""
    return [(k, v) for k, v, _ in _version_page(conn, table, after, limit, live_only=True)]


def diff_keys(
    local_keys: Iterable[tuple[bytes, Version]], remote_keys: Iterable[tuple[bytes, Version]]
) -> list[tuple[bytes, Version | None, Version | None]]:
    """The keys where two key lists differ: ``(key, local version or None, remote version or None)``,
    sorted by key. None means the key has no live row on that side."""
    local = dict(local_keys)
    remote = dict(remote_keys)
    out = []
    for k in sorted(local.keys() | remote.keys()):
        a, b = local.get(k), remote.get(k)
        if a != b:
            out.append((k, a, b))
    return out


# -- the shape served over HTTP and RPC ------------------------------------------------------------


def digest_document(conn: apsw.Connection, db: str) -> dict[str, Any]:
    """``{"database", "tables": {table: {"digest": 16 hex digits, "rows"}}, "schema_version"}``: what
    ``GET /admin/databases/{db}/digest`` and the ``digest_get`` RPC answer. Digest and schema version
    are read in one read transaction, so they describe the same state."""
    with conn:
        digests = table_digests(conn)
        try:
            version = rt.schema_version(conn)
        except apsw.SQLError:
            version = 0
    return {
        "database": db,
        "schema_version": version,
        "tables": {t: {"digest": f"{d:016x}", "rows": n} for t, (d, n) in digests.items()},
    }


def keys_document(
    conn: apsw.Connection, db: str, table: str, after: bytes | None, limit: int
) -> dict[str, Any]:
    """``{"database", "table", "keys": [[hex key, [wall, logical, node]], ...], "next": hex or null}``;
    ``next`` is the ``after`` of the following page (null on the last page)."""
    limit = max(1, min(int(limit), KEYS_LIMIT))
    keys = table_keys(conn, table, after, limit)
    return {
        "database": db,
        "table": table,
        "keys": [[k.hex(), list(v)] for k, v in keys],
        "next": keys[-1][0].hex() if len(keys) == limit else None,
    }


def database_digest(databases: DatabaseManager, db: str) -> dict[str, Any] | None:
    """``digest_document`` of ``db`` on a short-lived connection; None when there is no such database."""
    if not databases.exists(db):
        return None
    conn = databases.open(db)
    try:
        return digest_document(conn, db)
    finally:
        with contextlib.suppress(apsw.Error):
            conn.close()


def database_keys(
    databases: DatabaseManager, db: str, table: str, after: bytes | None, limit: int
) -> dict[str, Any] | None:
    """``keys_document`` on a short-lived connection; None when there is no such database."""
    if not databases.exists(db):
        return None
    conn = databases.open(db)
    try:
        return keys_document(conn, db, table, after, limit)
    finally:
        with contextlib.suppress(apsw.Error):
            conn.close()


def make_rpc_handler(databases: DatabaseManager) -> Any:
    """The ``digest_get {db}`` RPC handler: ``digest_document`` of ``db``, or ``{"error"}``."""

    async def digest_get(payload: Any, _ctx: Any) -> Any:
        try:
            db = DigestRequest.decode(payload).db
        except MessageError as e:
            return error(str(e))
        doc = database_digest(databases, db)
        return error(f"unknown database {db}") if doc is None else doc

    return digest_get


def parse_document(doc: Any) -> dict[str, tuple[int, int]]:
    """``{table: (digest, rows)}`` out of a ``digest_document`` received from a peer (HTTP or RPC).
    Raises ``ValueError`` on anything malformed."""
    if not isinstance(doc, dict) or not isinstance(doc.get("tables"), dict):
        raise ValueError("not a digest document")
    out: dict[str, tuple[int, int]] = {}
    for t, v in doc["tables"].items():
        if not isinstance(t, str) or not isinstance(v, dict):
            raise ValueError(f"bad digest entry for {t!r}")
        digest, rows = v.get("digest"), v.get("rows")
        if not isinstance(digest, str) or type(rows) is not int:
            raise ValueError(f"bad digest entry for {t!r}")
        out[t] = (int(digest, 16), rows)
    return out


def differing_tables(a: dict[str, tuple[int, int]], b: dict[str, tuple[int, int]]) -> list[str]:
    """Tables whose (digest, rows) differ between two ``table_digests`` results (absent = (0, 0))."""
    return sorted(t for t in a.keys() | b.keys() if a.get(t, (0, 0)) != b.get(t, (0, 0)))


# -- repair: what a peer serves so a divergent table can be pulled back row by row ------------------


def table_versions(
    conn: apsw.Connection, table: str, after: bytes | None = None, limit: int = KEYS_LIMIT
) -> list[tuple[bytes, Version, bool]]:
    """Like ``table_keys`` but with tombstones: ``(key, version, deleted)`` of every key of ``table``
    in ``__marmot_row_version``, in key order, after ``after`` (exclusive), at most ``limit``. What
    repair compares: a newer tombstone on the peer must win over an older live row here."""
    return _version_page(conn, table, after, limit, live_only=False)


def _version_page(
    conn: apsw.Connection, table: str, after: bytes | None, limit: int, *, live_only: bool
) -> list[tuple[bytes, Version, bool]]:
    """One page of ``table``'s row versions (a range scan of the row-version primary key, whose keys
    start with the table name), tombstones left out when ``live_only``; [] while the table is absent."""
    low, high = rt.key_range(table)
    start = low if after is None or after < low else after
    op = ">=" if after is None or after < low else ">"
    limit = max(1, min(int(limit), KEYS_LIMIT))
    live = "AND deleted = 0 " if live_only else ""
    try:
        rows = conn.execute(
            f"SELECT pk, wall, logical, node, deleted FROM {rt.ROW_VERSION} WHERE pk {op} ? "
            f"AND pk < ? {live}AND tbl = ? ORDER BY pk LIMIT ?",
            (start, high, table, limit),
        )
        return [(bytes(pk), (int(w), int(lg), int(n)), bool(d)) for pk, w, lg, n, d in rows]
    except apsw.SQLError:
        return []


def all_table_versions(conn: apsw.Connection, table: str) -> dict[bytes, tuple[Version, bool]]:
    """Every ``table_versions`` page of ``table`` as ``{key: (version, deleted)}`` (this node's side of
    a repair)."""
    out: dict[bytes, tuple[Version, bool]] = {}
    after: bytes | None = None
    while True:
        page = table_versions(conn, table, after, KEYS_LIMIT)
        out.update((k, (v, d)) for k, v, d in page)
        if len(page) < KEYS_LIMIT:
            return out
        after = page[-1][0]


def read_rows(
    conn: apsw.Connection, table: str, keys: list[bytes]
) -> list[tuple[bytes, Version | None, bool, dict[str, Any] | None]]:
    """For each key: ``(key, stored version or None, deleted, row image or None)``. The image is the
    row as stored, every column of ``TableSchema.columns``, addressed like the applier addresses it
    (``apply.rows.where_clause``); a table without a declared primary key needs no rowid column in it, the key
    carries the rowid and ``changes._upsert`` writes it from there. A live version whose row is missing (or a key of another table) answers no
    image: nothing to repair from. Reads in one read transaction."""
    out: list[tuple[bytes, Version | None, bool, dict[str, Any] | None]] = []
    with conn:
        try:
            ts = load_table_schema(conn, table)
        except UnknownTableError:
            return [(k, None, False, None) for k in keys]
        states = rt.row_states(conn, keys)
        cols = list(ts.columns)
        select = ", ".join(map(quote_ident, cols))
        for k in keys:
            s = states.get(k)
            if s is None:
                out.append((k, None, False, None))
                continue
            version, deleted = (int(s[0]), int(s[1]), int(s[2])), bool(s[3])
            image = None
            if not deleted:
                try:
                    if decode_row_key(k)[0] != table:
                        raise ApplyError("key of another table")
                    where, values = where_clause(ts, k)
                except (ApplyError, ValueError):
                    out.append((k, version, deleted, None))
                    continue
                cond = " AND ".join(f"{quote_ident(c)} IS ?" for c in where)
                row = conn.execute(
                    f"SELECT {select} FROM main.{quote_ident(table)} WHERE {cond}", values
                ).fetchone()
                if row is not None:
                    image = dict(zip(cols, row, strict=True))
            out.append((k, version, deleted, image))
    return out
