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
"""

from __future__ import annotations

import apsw

ROW_VERSION = "__marmot_row_version"
TXN_LOG = "__marmot_txn_log"
SCHEMA_VERSION = "__marmot_schema_version"

_DDL = (
    f"CREATE TABLE IF NOT EXISTS {ROW_VERSION} (pk BLOB PRIMARY KEY, tbl TEXT NOT NULL, wall INTEGER NOT NULL,"
    " logical INTEGER NOT NULL, node INTEGER NOT NULL, deleted INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID",
    f"CREATE TABLE IF NOT EXISTS {TXN_LOG} (seq INTEGER PRIMARY KEY, txn_id INTEGER NOT NULL UNIQUE,"
    " wall INTEGER NOT NULL, logical INTEGER NOT NULL, node INTEGER NOT NULL, origin INTEGER NOT NULL,"
    " payload BLOB NOT NULL)",
    f"CREATE TABLE IF NOT EXISTS {SCHEMA_VERSION} (id INTEGER PRIMARY KEY CHECK (id = 1),"
    " version INTEGER NOT NULL, log_id TEXT NOT NULL DEFAULT (lower(hex(randomblob(8)))))",
    f"INSERT OR IGNORE INTO {SCHEMA_VERSION} (id, version) VALUES (1, 0)",
)


def ensure_tables(conn: apsw.Connection) -> None:
    """Create the replication tables of ``conn``'s main database if they are missing (idempotent)."""
    if conn.execute(f"SELECT 1 FROM sqlite_schema WHERE name = '{SCHEMA_VERSION}'").fetchone():
        cols = {r[1] for r in conn.execute(f"PRAGMA table_info({SCHEMA_VERSION})")}
        if "log_id" not in cols:  # a file made before commit logs had identities
            with conn:
                conn.execute(f"ALTER TABLE {SCHEMA_VERSION} ADD COLUMN log_id TEXT")
                conn.execute(f"UPDATE {SCHEMA_VERSION} SET log_id = lower(hex(randomblob(8)))")
        return
    with conn:
        for sql in _DDL:
            conn.execute(sql)


def log_id(conn: apsw.Connection) -> str:
    row = conn.execute(f"SELECT log_id FROM {SCHEMA_VERSION} WHERE id = 1").fetchone()
    return str(row[0]) if row else ""


def log_after(conn: apsw.Connection, after_seq: int, limit: int) -> list[tuple[int, int]]:
    """(seq, txn_id) of this node's commit log after ``after_seq``, in order, at most ``limit``."""
    return [(int(s), int(t)) for s, t in conn.execute(
        f"SELECT seq, txn_id FROM {TXN_LOG} WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit))]


def log_entries(conn: apsw.Connection, seqs: list[int]) -> list[tuple[int, int, int, int, int, int, bytes]]:
    """(seq, txn_id, wall, logical, node, origin, payload) of the given log positions, in seq order."""
    out: list[tuple[int, int, int, int, int, int, bytes]] = []
    for start in range(0, len(seqs), 500):
        chunk = seqs[start:start + 500]
        marks = ",".join("?" * len(chunk))
        out.extend(conn.execute(f"SELECT seq, txn_id, wall, logical, node, origin, payload FROM {TXN_LOG} "
                                f"WHERE seq IN ({marks}) ORDER BY seq", chunk))
    out.sort()
    return out


def applied_of(conn: apsw.Connection, txn_ids: list[int]) -> set[int]:
    """The ones among ``txn_ids`` this database has applied."""
    found: set[int] = set()
    for start in range(0, len(txn_ids), 500):
        chunk = txn_ids[start:start + 500]
        marks = ",".join("?" * len(chunk))
        found.update(r[0] for r in conn.execute(f"SELECT txn_id FROM {TXN_LOG} WHERE txn_id IN ({marks})", chunk))
    return found


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
        chunk = keys[start:start + 500]
        marks = ",".join("?" * len(chunk))
        for pk, wall, logical, node in conn.execute(
                f"SELECT pk, wall, logical, node FROM {ROW_VERSION} WHERE pk IN ({marks})", chunk):
            out[pk] = (wall, logical, node)
    return out
