"""The replication state kept inside each user database file, next to the data it describes.

Why inside the database file and not in a separate store: the exactly-once guarantee needs the applied
marker, the row versions and the data to commit in **one** SQLite transaction. A separate meta store
(upstream: Pebble) can commit the marker without the rows or the rows without the marker when the
process dies between the two; one SQLite transaction cannot.

Tables (hidden from clients: every ``__marmot*`` name is refused by the transpiler and left out of
SHOW TABLES / INFORMATION_SCHEMA, and the capture hook ignores them):

``__marmot_row_version(pk BLOB PRIMARY KEY, tbl, wall, logical, node, deleted) WITHOUT ROWID``
    Last-writer-wins version of every row key ever written through replication: the commit HLC of the
    transaction that last changed it. ``deleted = 1`` is a tombstone, so an older INSERT arriving late
    (anti-entropy, reordering) cannot bring a deleted row back.

``__marmot_txn_log(seq INTEGER PRIMARY KEY, txn_id UNIQUE, wall, logical, node, origin, payload)``
    One row per applied transaction: the applied marker (``txn_id`` UNIQUE: a transaction is applied
    at most once per node) *and* the commit log anti-entropy reads (``seq`` is this node's local order,
    ``payload`` the encoded transaction). One table instead of two saves an insert per transaction.

``__marmot_schema_version(id INTEGER PRIMARY KEY CHECK (id = 1), version, log_id)``
    ``version`` is bumped by every replicated DDL in the same transaction as the DDL itself; a
    participant whose version is older than the one a write was planned against refuses the PREPARE.
    ``log_id`` names this file's commit log (random, made with the file): a peer's pull cursor is only
    valid for the log it was taken on — a node whose data directory was wiped starts a new log at seq 1.

``__marmot_table_digest(tbl TEXT PRIMARY KEY, digest, rows) WITHOUT ROWID``
    Per table, an order-independent digest of the rows that went through replication: ``digest`` is
    the sum mod 2^64 (stored as a signed 64-bit integer) of ``row_hash(pk, version)`` over the *live*
    rows of ``__marmot_row_version`` of that table (tombstones left out), ``rows`` how many there are.
    Kept incrementally by the applier in the same SQLite transaction as the versions it describes, so
    two nodes holding the same row versions hold the same digests whatever order they applied the
    transactions in (``replication/catchup/digest.py`` compares them). ``recompute_digests`` rebuilds it from
    ``__marmot_row_version`` (files made before the table existed, repairs, tests). A table may keep a
    row with ``rows = 0`` (only tombstones left); readers treat it as absent.
"""

from __future__ import annotations

import hashlib
import struct
from typing import cast

import apsw

from marmot.storage.rowkey import ROW_KEY_VERSION, uvarint

ROW_VERSION = "__marmot_row_version"
TXN_LOG = "__marmot_txn_log"
SCHEMA_VERSION = "__marmot_schema_version"
TABLE_DIGEST = "__marmot_table_digest"

_DIGEST_DDL = (
    f"CREATE TABLE IF NOT EXISTS {TABLE_DIGEST} (tbl TEXT PRIMARY KEY, digest INTEGER NOT NULL,"
    " rows INTEGER NOT NULL) WITHOUT ROWID"
)
_DDL = (
    f"CREATE TABLE IF NOT EXISTS {ROW_VERSION} (pk BLOB PRIMARY KEY, tbl TEXT NOT NULL, wall INTEGER NOT NULL,"
    " logical INTEGER NOT NULL, node INTEGER NOT NULL, deleted INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID",
    f"CREATE TABLE IF NOT EXISTS {TXN_LOG} (seq INTEGER PRIMARY KEY, txn_id INTEGER NOT NULL UNIQUE,"
    " wall INTEGER NOT NULL, logical INTEGER NOT NULL, node INTEGER NOT NULL, origin INTEGER NOT NULL,"
    " payload BLOB NOT NULL)",
    f"CREATE TABLE IF NOT EXISTS {SCHEMA_VERSION} (id INTEGER PRIMARY KEY CHECK (id = 1),"
    " version INTEGER NOT NULL, log_id TEXT NOT NULL DEFAULT (lower(hex(randomblob(8)))))",
    f"INSERT OR IGNORE INTO {SCHEMA_VERSION} (id, version) VALUES (1, 0)",
    _DIGEST_DDL,
)


def ensure_tables(conn: apsw.Connection) -> None:
    """Create the replication tables of ``conn``'s main database if they are missing (idempotent)."""
    found = {
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_schema WHERE name IN (?, ?)", (SCHEMA_VERSION, TABLE_DIGEST)
        )
    }
    if SCHEMA_VERSION in found:
        cols = {r[1] for r in conn.execute(f"PRAGMA table_info({SCHEMA_VERSION})")}
        if "log_id" not in cols:  # a file made before commit logs had identities
            with conn:
                conn.execute(f"ALTER TABLE {SCHEMA_VERSION} ADD COLUMN log_id TEXT")
                conn.execute(f"UPDATE {SCHEMA_VERSION} SET log_id = lower(hex(randomblob(8)))")
        if TABLE_DIGEST not in found:  # a file made before digests: compute them once from the versions
            with conn:
                conn.execute(_DIGEST_DDL)
                recompute_digests(conn)
        return
    with conn:
        for sql in _DDL:
            conn.execute(sql)


def log_id(conn: apsw.Connection) -> str:
    row = conn.execute(f"SELECT log_id FROM {SCHEMA_VERSION} WHERE id = 1").fetchone()
    return str(row[0]) if row else ""


def log_after(conn: apsw.Connection, after_seq: int, limit: int) -> list[tuple[int, int]]:
    """(seq, txn_id) of this node's commit log after ``after_seq``, in order, at most ``limit``."""
    return [
        (int(s), int(t))
        for s, t in conn.execute(
            f"SELECT seq, txn_id FROM {TXN_LOG} WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit)
        )
    ]


def log_entries(conn: apsw.Connection, seqs: list[int]) -> list[tuple[int, int, int, int, int, int, bytes]]:
    """(seq, txn_id, wall, logical, node, origin, payload) of the given log positions, in seq order."""
    out: list[tuple[int, int, int, int, int, int, bytes]] = []
    for start in range(0, len(seqs), 500):
        chunk = seqs[start : start + 500]
        marks = ",".join("?" * len(chunk))
        out.extend(
            conn.execute(
                f"SELECT seq, txn_id, wall, logical, node, origin, payload FROM {TXN_LOG} "
                f"WHERE seq IN ({marks}) ORDER BY seq",
                chunk,
            )
        )
    out.sort()
    return out


def applied_of(conn: apsw.Connection, txn_ids: list[int]) -> set[int]:
    """The ones among ``txn_ids`` this database has applied."""
    found: set[int] = set()
    for start in range(0, len(txn_ids), 500):
        chunk = txn_ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        found.update(
            r[0] for r in conn.execute(f"SELECT txn_id FROM {TXN_LOG} WHERE txn_id IN ({marks})", chunk)
        )
    return found


def last_seq(conn: apsw.Connection) -> int:
    """The newest position of this file's commit log (0: empty)."""
    row = conn.execute(f"SELECT MAX(seq) FROM {TXN_LOG}").fetchone()
    return int(cast(int, row[0]) or 0) if row is not None else 0


def schema_version(conn: apsw.Connection) -> int:
    row = conn.execute(f"SELECT version FROM {SCHEMA_VERSION} WHERE id = 1").fetchone()
    return int(row[0]) if row else 0


def bump_schema_version(conn: apsw.Connection) -> int:
    """Increment the schema version inside the caller's transaction; returns the new version."""
    conn.execute(f"UPDATE {SCHEMA_VERSION} SET version = version + 1 WHERE id = 1")
    return schema_version(conn)


def is_applied(conn: apsw.Connection, txn_id: int) -> bool:
    return conn.execute(f"SELECT 1 FROM {TXN_LOG} WHERE txn_id = ?", (txn_id,)).fetchone() is not None


def committed_timestamp(conn: apsw.Connection, txn_id: int) -> tuple[int, int, int] | None:
    """(wall, logical, node) of an applied transaction, or None."""
    row = conn.execute(f"SELECT wall, logical, node FROM {TXN_LOG} WHERE txn_id = ?", (txn_id,)).fetchone()
    return None if row is None else (int(row[0]), int(row[1]), int(row[2]))


def row_versions(conn: apsw.Connection, keys: list[bytes]) -> dict[bytes, tuple[int, int, int]]:
    """The stored version (wall, logical, node) of each key that has one (tombstones included)."""
    out: dict[bytes, tuple[int, int, int]] = {}
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for pk, wall, logical, node in conn.execute(
            f"SELECT pk, wall, logical, node FROM {ROW_VERSION} WHERE pk IN ({marks})", chunk
        ):
            out[pk] = (wall, logical, node)
    return out


def row_states(conn: apsw.Connection, keys: list[bytes]) -> dict[bytes, tuple[int, int, int, int]]:
    """``row_versions`` plus the tombstone flag: (wall, logical, node, deleted) per key that has one.

    The applier's read: it needs ``deleted`` to know whether the row counted in its table's digest.
    A 4-tuple compares with a (wall, logical, node) version exactly as its first three fields do
    (``v3 > s4`` iff ``v3 > s4[:3]``), so last-writer-wins needs no slicing."""
    out: dict[bytes, tuple[int, int, int, int]] = {}
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for pk, wall, logical, node, deleted in conn.execute(
            f"SELECT pk, wall, logical, node, deleted FROM {ROW_VERSION} WHERE pk IN ({marks})", chunk
        ):
            out[pk] = (wall, logical, node, deleted)
    return out


# -- table digests ----------------------------------------------------------------------------------

MASK64 = (1 << 64) - 1
_VERSION = struct.Struct(">QHQ")  # 8-byte wall, 2-byte logical (HLC: at most 0xFFFF), 8-byte node
pack_version = _VERSION.pack
_blake2b = hashlib.blake2b
_from_bytes = int.from_bytes


def packed_version(wall: int, logical: int, node: int) -> bytes:
    """The version as hashed: ``>QHQ``. Out-of-range fields (never from an HLC; a malformed log entry
    could carry them) are wrapped rather than refused: still deterministic, and an apply never fails
    because of its digest."""
    try:
        return pack_version(wall, logical, node)
    except struct.error:
        return pack_version(wall & MASK64, logical & 0xFFFF, node & MASK64)


def hash_packed(key: bytes, packed: bytes) -> int:
    """``row_hash`` with the version already packed (the applier packs its commit version once)."""
    return _from_bytes(_blake2b(key + packed).digest()[:8], "big")


def row_hash(key: bytes, wall: int, logical: int, node: int) -> int:
    """A live row's contribution to its table's digest: the first 8 bytes (big-endian) of
    blake2b(key · wall · logical · node), the version packed as ``>QHQ``. Every node computes the same
    number for the same (key, version), which is what makes digests comparable across nodes."""
    return _from_bytes(_blake2b(key + packed_version(wall, logical, node)).digest()[:8], "big")


def to_signed(value: int) -> int:
    """An unsigned 64-bit digest as the signed integer SQLite stores."""
    value &= MASK64
    return value - (1 << 64) if value >> 63 else value


def to_unsigned(value: int) -> int:
    return value & MASK64


_I64_MAX = "9223372036854775807"
# digest + delta mod 2^64 on signed 64-bit values, in SQL: SQLite turns an overflowing integer sum into
# a REAL, so the wrap is spelled out (each branch only adds values whose exact sum is in range). One
# statement per table per apply batch, no read back into Python.
_WRAPPED_SUM = (
    f"CASE WHEN excluded.digest > 0 AND digest > {_I64_MAX} - excluded.digest "
    f"THEN (digest - {_I64_MAX} - 1) + (excluded.digest - {_I64_MAX} - 1) "
    f"WHEN excluded.digest < 0 AND digest < (-{_I64_MAX} - 1) - excluded.digest "
    f"THEN (digest + {_I64_MAX} + 1) + (excluded.digest + {_I64_MAX} + 1) "
    "ELSE digest + excluded.digest END"
)
ADD_DIGEST = (
    f"INSERT INTO {TABLE_DIGEST} (tbl, digest, rows) VALUES (?, ?, ?) ON CONFLICT (tbl) DO UPDATE "
    f"SET digest = {_WRAPPED_SUM}, rows = rows + excluded.rows"
)


def add_digests(conn: apsw.Connection, deltas: dict[str, list[int]]) -> None:
    """Add ``{table: [digest delta (any int), row-count delta]}`` to the stored digests, inside the
    caller's transaction. A table with no row yet gets one (also with zero deltas: every table that
    has row versions has a digest row, which is how a DROP finds the versions to forget)."""
    if len(deltas) == 1:  # the common case: a transaction writes one table
        for t, (d, n) in deltas.items():
            conn.execute(ADD_DIGEST, (t, to_signed(d), n))
    else:
        conn.executemany(ADD_DIGEST, [(t, to_signed(d), n) for t, (d, n) in deltas.items()])


def key_range(table: str) -> tuple[bytes, bytes]:
    """[low, high) of the row keys of ``table``: every key starts with 0x01 · uvarint(len) · name, and
    UTF-8 never contains 0xFF, so bumping the last byte of that prefix bounds it."""
    name = table.encode("utf-8")
    low = bytes((ROW_KEY_VERSION,)) + uvarint(len(name)) + name
    return low, low[:-1] + bytes((low[-1] + 1,))


def compute_digests(conn: apsw.Connection, tables: list[str] | None = None) -> dict[str, tuple[int, int]]:
    """``{table: (unsigned digest, live rows)}`` computed from ``__marmot_row_version`` (reads only):
    the reference the stored digests must equal. Every table with row versions is in it, tombstone-only
    ones with (0, 0). A full scan of the versions (of ``tables``' keys only, when given)."""
    sums: dict[str, list[int]] = {}
    if tables is None:
        rows: list[tuple[str, bytes, int, int, int, int]] = list(
            conn.execute(f"SELECT tbl, pk, wall, logical, node, deleted FROM {ROW_VERSION}")
        )
    else:
        rows = []
        for t in tables:
            low, high = key_range(t)
            rows.extend(
                conn.execute(
                    f"SELECT tbl, pk, wall, logical, node, deleted FROM {ROW_VERSION} "
                    "WHERE pk >= ? AND pk < ?",
                    (low, high),
                )
            )
    for tbl, pk, wall, logical, node, deleted in rows:
        acc = sums.get(tbl)
        if acc is None:
            acc = sums[tbl] = [0, 0]
        if not deleted:
            acc[0] += row_hash(pk, wall, logical, node)
            acc[1] += 1
    return {t: (d & MASK64, n) for t, (d, n) in sums.items()}


def recompute_digests(conn: apsw.Connection, tables: list[str] | None = None) -> dict[str, tuple[int, int]]:
    """Replace the stored digests of ``tables`` (all: None) with ``compute_digests``, inside the
    caller's transaction (or autocommit); returns what was written."""
    fresh = compute_digests(conn, tables)
    if tables is None:
        conn.execute(f"DELETE FROM {TABLE_DIGEST}")
    else:
        conn.executemany(f"DELETE FROM {TABLE_DIGEST} WHERE tbl = ?", [(t,) for t in tables])
    conn.executemany(
        f"INSERT OR REPLACE INTO {TABLE_DIGEST} (tbl, digest, rows) VALUES (?, ?, ?)",
        [(t, to_signed(d), n) for t, (d, n) in fresh.items()],
    )
    return fresh


def forget_tables_gone(conn: apsw.Connection) -> list[str]:
    """After a DDL: drop the row versions and digest of every table that has a digest row but no longer
    exists (DROP TABLE, or the old name of a RENAME); returns their names.

    A renamed table's rows keep existing without versions, like rows that never went through
    replication: their keys embed the old name, so the versions could not be found again anyway. Every
    node applies the same DDL, so every node forgets the same versions and digests stay comparable."""
    existing = {r[0].lower() for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
    gone = [t for (t,) in conn.execute(f"SELECT tbl FROM {TABLE_DIGEST}") if t.lower() not in existing]
    for t in gone:
        low, high = key_range(t)
        conn.execute(f"DELETE FROM {ROW_VERSION} WHERE pk >= ? AND pk < ?", (low, high))
        conn.execute(f"DELETE FROM {TABLE_DIGEST} WHERE tbl = ?", (t,))
    return gone
