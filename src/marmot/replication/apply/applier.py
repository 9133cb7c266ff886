"""Apply committed transactions to this node's copy of a database: last-writer-wins, exactly once.

Every node applies every committed transaction through here — the coordinator too (it dry-ran the
statement, rolled it back, and applies the captured rows like everyone else), anti-entropy later.

Per transaction, inside one SAVEPOINT of the caller's SQLite write transaction:

1. **Exactly once.** If ``__marmot_txn_log`` already holds the txn id, nothing happens (a COMMIT
   retried, a transaction fetched twice).
2. **Rows, last writer wins.** For each changed row key, the stored version (commit HLC of the last
   transaction that wrote the key, tombstones included) is compared with this transaction's commit
   HLC; only strictly newer changes are applied. The HLC order is total (wall, logical, node id), so
   every node keeps the same winner whatever order transactions arrive in. Winners' versions are
   upserted (``deleted = 1`` for a DELETE: a tombstone).
   **UNIQUE collisions between different keys** (``_apply_checked``). Two transactions inserting
   ``id=1, code='X'`` and ``id=2, code='X'`` touch different keys, so neither intents nor per-key LWW
   see each other, and ``INSERT OR REPLACE`` would silently delete whichever row is already there —
   the later *arrival* wins, and nodes diverge. So, for a winning change with a new image on a table
   with UNIQUE indexes (``TableSchema.unique``: not the primary key, not partial, not on expressions),
   before writing it: for each such index whose columns are all non-NULL in the image, the rows of
   *other* keys holding equal values (compared as the index compares them: its collation, the column's
   affinity) are looked up with their stored versions (none: a row that never went through
   replication, version (0, 0, 0), older than any real one). Rule — among the rows holding one unique
   value, the newest version wins, whatever order they arrive in:

   * conflicting row with *this* version: written by this same transaction (ignored; a transaction
     that swapped unique values relies on the REPLACE-then-restore of ``apply_changes``);
   * every conflicting row older: each is deleted (by key) and tombstoned at **its own** version —
     not at the winner's, so a change to that key committed between the two (e.g. moving it off the
     contested value) still applies on every node whichever arrives first; then the change is applied;
   * some conflicting row newer: the change loses. Its new image is not written; a row at its key is
     deleted and the key tombstoned at this version (exactly the state a node reaches when the change
     arrived first and the newer row deleted it). Counted as skipped.

   Tables without UNIQUE indexes take the old path: one schema lookup per table of the transaction.
   Limit (no history of deleted images): a deleted loser cannot come back when its winner later
   leaves the value, so a node that saw the winner leave *before* the collision keeps the loser;
   likewise chains across two UNIQUE indexes (A collides with B on one index, B with C on another).
   Partial and expression UNIQUE indexes are not checked (``TableSchema.unique``): REPLACE still keeps
   the later arrival there. Concurrent collisions on one value — the common case — converge.
3. **Table digests** (``__marmot_table_digest``, see ``storage/replication_tables.py`` and
   ``replication/catchup/digest.py``) follow the row versions in the same savepoint: for every key whose
   version row this transaction changed (winners, and rows tombstoned by a UNIQUE collision), the
   contribution of its state before (if it was live) is subtracted and that of its state after (if
   live) added — one ``row_hash`` per side; ``apply_items`` sums the deltas of the batch and writes one
   upsert per table. So at every commit a table's digest equals the sum over its live versions,
   whatever order transactions were applied in; the unit tests compare it with a full recompute after
   random histories.
4. **DDL** runs the coordinator's SQLite statements, made idempotent (``ddl_idempotent``), and bumps
   the schema version; the caller bumps the in-process schema generation so plans are rebuilt. Then
   the row versions and digest of every table that no longer exists (DROP TABLE; a RENAME's old name)
   are forgotten (``replication_tables.forget_tables_gone``).
5. The txn-log row (applied marker + commit-log entry) is inserted.

A transaction that fails to apply is rolled back to its savepoint alone and reported; the others in
the batch still commit.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import apsw

from marmot.hlc import Timestamp
from marmot.replication.apply.idempotent_ddl import run_idempotent
from marmot.replication.apply.rows import ApplyError, apply_changes
from marmot.replication.changes import RowChange
from marmot.replication.messages import Body
from marmot.storage import replication_tables as rt
from marmot.storage.rowkey import (
    SchemaCache,
    SqlValue,
    TableSchema,
    UnknownTableError,
    decode_row_key,
    quote_ident,
)

_UPSERT_VERSION = (
    f"INSERT INTO {rt.ROW_VERSION} (pk, tbl, wall, logical, node, deleted) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (pk) DO UPDATE SET tbl = excluded.tbl, wall = excluded.wall, logical = excluded.logical, "
    "node = excluded.node, deleted = excluded.deleted"
)
_LOG = f"INSERT INTO {rt.TXN_LOG} (txn_id, wall, logical, node, origin, payload) VALUES (?, ?, ?, ?, ?, ?)"


@dataclass(slots=True)
class ApplyItem:
    txn_id: int
    commit_ts: Timestamp
    origin: int  # the coordinating node
    payload: bytes  # the encoded body, kept in the commit log
    body: Body


@dataclass(slots=True)
class ApplyOutcome:
    applied: bool  # False: it was applied before (marker present)
    rows: int = 0  # row changes that won last-writer-wins (and were written)
    skipped: int = 0  # row changes older than the stored version, or losing a UNIQUE collision
    ddl: bool = False
    seq: int = 0  # its position in this node's commit log (0: not applied now); ``catchup/log_memory.py``


def apply_items(
    conn: apsw.Connection, schema: SchemaCache, items: list[ApplyItem], on_ddl: Callable[[], None]
) -> list[ApplyOutcome | Exception]:
    """Apply ``items`` inside the caller's open write transaction; one outcome (or error) per item.

    The digest deltas of the items that applied are summed and written once, at the end (and before a
    DDL item, which may forget a table's digest): one upsert per table per batch, not per item. They
    are still in the caller's transaction, which commits them with the rows or not at all."""
    out: list[ApplyOutcome | Exception] = []
    pending: dict[str, list[int]] = {}
    for item in items:
        if pending and item.body.ddl:
            rt.add_digests(conn, pending)
            pending = {}
        conn.execute("SAVEPOINT __marmot_apply")
        try:
            outcome, deltas = _apply_one(conn, schema, item)
            conn.execute("RELEASE __marmot_apply")
            if outcome.ddl:
                on_ddl()
            out.append(outcome)
        except (apsw.Error, ApplyError) as e:
            conn.execute("ROLLBACK TO __marmot_apply")
            conn.execute("RELEASE __marmot_apply")
            if item.body.kind == "ddl":
                schema.invalidate()
            out.append(e)
            continue
        if deltas:  # only once the item's savepoint is released: a failed item adds nothing
            if not pending:
                pending = deltas
            else:
                for table, (d, n) in deltas.items():
                    acc = pending.get(table)
                    if acc is None:
                        pending[table] = [d, n]
                    else:
                        acc[0] += d
                        acc[1] += n
    if pending:
        rt.add_digests(conn, pending)
    return out


_NO_DELTAS: dict[str, list[int]] = {}


def _apply_one(
    conn: apsw.Connection, schema: SchemaCache, item: ApplyItem
) -> tuple[ApplyOutcome, dict[str, list[int]]]:
    """Apply one item; its outcome and its digest deltas (``_digest_deltas``; not written yet)."""
    if rt.is_applied(conn, item.txn_id):
        return ApplyOutcome(applied=False), _NO_DELTAS
    ts = item.commit_ts
    version = (ts.wall_ns, ts.logical, ts.node_id)
    body = item.body
    outcome = ApplyOutcome(applied=True)
    deltas = _NO_DELTAS
    if body.ddl:
        for sql in body.ddl:
            run_idempotent(conn, sql)
        rt.bump_schema_version(conn)
        rt.forget_tables_gone(conn)
        schema.invalidate()
        outcome.ddl = True
    changes = body.changes
    if changes:
        # (wall, logical, node, deleted): compares with ``version`` like the version alone (row_states)
        stored = rt.row_states(conn, [c.key for c in changes])
        winners = [c for c in changes if (v := stored.get(c.key)) is None or version > v]
        lost: set[bytes] = set()
        if winners:
            tombstoned: list[tuple[bytes, str, tuple[int, int, int, int] | None]] = []
            if _has_unique(conn, schema, winners):
                lost = _apply_checked(conn, schema, winners, version, tombstoned)
            else:
                apply_changes(conn, winners, schema)
            wall, logical, node = version
            conn.executemany(
                _UPSERT_VERSION,
                [
                    (c.key, c.table, wall, logical, node, 1 if c.op == "DELETE" or c.key in lost else 0)
                    for c in winners
                ],
            )
            deltas = _digest_deltas(winners, stored, version, lost, tombstoned)
        outcome.rows = len(winners) - len(lost)
        outcome.skipped = len(changes) - outcome.rows
    conn.execute(_LOG, (item.txn_id, ts.wall_ns, ts.logical, ts.node_id, item.origin, item.payload))
    outcome.seq = conn.last_insert_rowid()  # seq is the INTEGER PRIMARY KEY: the row id
    return outcome, deltas


def _digest_deltas(
    winners: list[RowChange],
    stored: dict[bytes, tuple[int, int, int, int]],
    version: tuple[int, int, int],
    lost: set[bytes],
    tombstoned: list[tuple[bytes, str, tuple[int, int, int, int] | None]],
) -> dict[str, list[int]]:
    """``{table: [digest delta, row-count delta]}`` of this transaction (module docstring, step 3).

    Before-states come from ``stored`` (read before anything was written) and, for rows a UNIQUE
    collision tombstoned, from ``tombstoned``; a key in both is a winner, and its after-state is the
    winner's (its version upsert comes last). ~0.5 µs per hash: one for an INSERT, two for an UPDATE."""
    row_hash = rt.row_hash
    hash_packed = rt.hash_packed
    packed = rt.packed_version(*version)
    out: dict[str, list[int]] = {}
    last: str | None = None
    acc: list[int] = []
    for c in winners:
        table = c.table
        if table != last:
            got = out.get(table)
            acc = out[table] = [0, 0] if got is None else got
            last = table
        key = c.key
        s = stored.get(key)
        if s is not None and not s[3]:
            acc[0] -= row_hash(key, s[0], s[1], s[2])
            acc[1] -= 1
        if c.op != "DELETE" and key not in lost:
            acc[0] += hash_packed(key, packed)
            acc[1] += 1
    if tombstoned:
        written = {c.key for c in winners}
        for key, table, s in tombstoned:
            if key not in written and s is not None and not s[3]:
                acc = out.setdefault(table, [0, 0])
                acc[0] -= row_hash(key, s[0], s[1], s[2])
                acc[1] -= 1
    return out


# -- UNIQUE collisions between different keys (module docstring, step 2) ----------------------------

_UNVERSIONED = (0, 0, 0)  # a row that never went through replication: older than any commit


def _has_unique(conn: apsw.Connection, schema: SchemaCache, winners: list[RowChange]) -> bool:
    """Whether any winner writes a new image into a table with UNIQUE indexes (the slow path).
    Unknown tables answer False: ``apply_changes`` reports them. One schema lookup per run of
    changes to one table (~0.15 µs for a one-row transaction): this runs for every replicated write."""
    last = None
    for c in winners:
        table = c.table
        if table != last and c.new is not None:
            last = table
            try:
                if schema.get(conn, table).unique:
                    return True
            except UnknownTableError:
                pass
    return False


@functools.lru_cache(maxsize=1024)
def _unique_sql(table: str, select: tuple[str, ...], index: tuple[tuple[str, str], ...]) -> str:
    # ``col = ? COLLATE <the index's collation>``: equality exactly as the UNIQUE index decides it (the
    # column's affinity still applies to the bound value), and the planner can search that index.
    cond = " AND ".join(f"{quote_ident(c)} = ? COLLATE {quote_ident(coll)}" for c, coll in index)
    return f"SELECT {', '.join(map(quote_ident, select))} FROM main.{quote_ident(table)} WHERE {cond}"


def _conflicting_keys(conn: apsw.Connection, ts: TableSchema, c: RowChange) -> list[bytes]:
    """Keys of the rows other than ``c``'s own holding one of ``c.new``'s UNIQUE values, computed as
    capture computes them (the rowid for rowid tables, ``key_of`` the stored columns otherwise)."""
    new = c.new
    assert new is not None
    if ts.rowid_key:
        if ts.rowid_name is None:
            raise ApplyError(f"{ts.name}: rowid is shadowed by columns named rowid, _rowid_ and oid")
        select: tuple[str, ...] = (ts.rowid_name,)
    else:
        select = ts.columns
    out: list[bytes] = []
    for index in ts.unique:
        values = [new.get(col) for col, _ in index]
        if any(v is None for v in values):
            continue  # NULLs never collide in a UNIQUE index
        for row in conn.execute(_unique_sql(ts.name, select, index), values):
            k = ts.rowid_key_of(row[0]) if ts.rowid_key else ts.key_of(row)
            if k != c.key and k not in out:
                out.append(k)
    return out


def _apply_checked(
    conn: apsw.Connection,
    schema: SchemaCache,
    winners: list[RowChange],
    version: tuple[int, int, int],
    tombstoned: list[tuple[bytes, str, tuple[int, int, int, int] | None]],
) -> set[bytes]:
    """``apply_changes(winners)`` with UNIQUE collisions resolved by version first; returns the keys
    of the changes that lost (not written; the caller tombstones them at ``version``). Appends to
    ``tombstoned`` each other row it deleted and tombstoned: (key, table, its version state before or
    None), for the digest.

    Changes are applied in order, in runs: each collision check must see the rows the earlier
    changes of the transaction wrote. Deletes go through ``apply_changes`` too, so they run with
    triggers and FK actions off like every replicated write.
    """
    lost: set[bytes] = set()
    tombstones: list[tuple[bytes, str, int, int, int, int]] = []
    pending: list[RowChange] = []
    for c in winners:
        if c.new is None:
            pending.append(c)
            continue
        try:
            ts = schema.get(conn, c.table)
        except UnknownTableError:
            pending.append(c)  # apply_changes raises the ApplyError
            continue
        if not ts.unique:
            pending.append(c)
            continue
        if pending:
            apply_changes(conn, pending, schema)
            pending = []
        keys = _conflicting_keys(conn, ts, c)
        if keys:
            stored = rt.row_states(conn, keys)
            older = [
                (k, v)
                for k in keys
                if (v := (s[:3] if (s := stored.get(k)) is not None else _UNVERSIONED)) != version
            ]
            if any(v > version for _, v in older):
                lost.add(c.key)
                pending.append(RowChange(c.table, "DELETE", c.key, c.old, None))
                continue
            for k, v in older:
                pending.append(RowChange(c.table, "DELETE", k, None, None))
                tombstones.append((k, c.table, *v, 1))
                tombstoned.append((k, c.table, stored.get(k)))
        pending.append(c)
    if pending:
        apply_changes(conn, pending, schema)
    if tombstones:
        # Before the caller upserts the winners' versions: a loser that this transaction also writes
        # later (a swap) ends with this transaction's version.
        conn.executemany(_UPSERT_VERSION, tombstones)
    return lost


# -- repair of silent divergence (catchup/log_pull.py, ``_repair``) -------------------------------------

RepairRow = tuple[bytes, tuple[int, int, int], bool, dict[str, SqlValue] | None]


@dataclass(slots=True)
class RepairOutcome:
    repaired: int = 0  # keys written (image upserted, or row deleted and tombstoned)
    skipped: int = 0  # keys whose stored version is as new or newer: left alone
    failed: int = 0  # keys that could not be written (bad key, image that does not fit the table)


def repair_rows(
    conn: apsw.Connection, schema: SchemaCache, table: str, rows: list[RepairRow]
) -> RepairOutcome:
    """Bring ``table``'s keys to a peer's state, last-writer-wins, inside the caller's open write
    transaction. ``rows``: ``(key, version, deleted, image)`` as the peer stores them (``image`` the
    full row when live).

    Per key, exactly what ``_apply_one`` does for one change committed at ``version``: applied only
    when strictly newer than the stored version (tombstones included) — the image upserted (an INSERT
    of it: UNIQUE collisions resolved by version like any winner) or the row deleted; the row version
    upserted; the digest delta added. No ``__marmot_txn_log`` row: a repair is not a transaction, and
    nothing of it is spread further (every node repairs itself from the newest copy). A key that fails
    is rolled back to its own savepoint and counted."""
    out = RepairOutcome()
    pending: dict[str, list[int]] = {}
    for key, version, deleted, image in rows:
        version = (int(version[0]), int(version[1]), int(version[2]))
        if deleted:
            c = RowChange(table, "DELETE", key, None, None)
        elif image:
            c = RowChange(table, "INSERT", key, None, image)
        else:
            out.failed += 1  # a live row without its image: nothing to write
            continue
        conn.execute("SAVEPOINT __marmot_repair")
        try:
            if decode_row_key(key)[0] != table:
                raise ApplyError(f"{table}: repair key of another table")
            stored = rt.row_states(conn, [key])
            s = stored.get(key)
            if s is not None and not version > s:
                conn.execute("RELEASE __marmot_repair")
                out.skipped += 1
                continue
            tombstoned: list[tuple[bytes, str, tuple[int, int, int, int] | None]] = []
            lost: set[bytes] = set()
            if _has_unique(conn, schema, [c]):
                lost = _apply_checked(conn, schema, [c], version, tombstoned)
            else:
                apply_changes(conn, [c], schema)
            conn.execute(_UPSERT_VERSION, (key, table, *version, 1 if deleted or key in lost else 0))
            deltas = _digest_deltas([c], stored, version, lost, tombstoned)
            conn.execute("RELEASE __marmot_repair")
        except (apsw.Error, ApplyError, ValueError):
            conn.execute("ROLLBACK TO __marmot_repair")
            conn.execute("RELEASE __marmot_repair")
            out.failed += 1
            continue
        out.repaired += 1
        for t, (d, n) in deltas.items():
            acc = pending.setdefault(t, [0, 0])
            acc[0] += d
            acc[1] += n
    if pending:
        rt.add_digests(conn, pending)
    return out
