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
3. **DDL** runs the coordinator's SQLite statements, made idempotent (``ddl_idempotent``), and bumps
   the schema version; the caller bumps the in-process schema generation so plans are rebuilt.
4. The txn-log row (applied marker + commit-log entry) is inserted.

A transaction that fails to apply is rolled back to its savepoint alone and reported; the others in
the batch still commit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import apsw

from marmot.hlc import Timestamp
from marmot.replication.changes import ApplyError, apply_changes
from marmot.replication.ddl_idempotent import run_idempotent
from marmot.replication.messages import Body
from marmot.storage import replication_tables as rt
from marmot.storage.rowkey import SchemaCache

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
    rows: int = 0  # row changes that won last-writer-wins
    skipped: int = 0  # row changes older than the stored version
    ddl: bool = False


def apply_items(conn: apsw.Connection, schema: SchemaCache, items: list[ApplyItem],
                on_ddl: Callable[[], None]) -> list[ApplyOutcome | Exception]:
    """Apply ``items`` inside the caller's open write transaction; one outcome (or error) per item."""
    out: list[ApplyOutcome | Exception] = []
    for item in items:
        conn.execute("SAVEPOINT __marmot_apply")
        try:
            outcome = _apply_one(conn, schema, item)
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
    return out


def _apply_one(conn: apsw.Connection, schema: SchemaCache, item: ApplyItem) -> ApplyOutcome:
    if rt.is_applied(conn, item.txn_id):
        return ApplyOutcome(applied=False)
    ts = item.commit_ts
    version = (ts.wall_ns, ts.logical, ts.node_id)
    body = item.body
    outcome = ApplyOutcome(applied=True)
    if body.ddl:
        for sql in body.ddl:
            run_idempotent(conn, sql)
        rt.bump_schema_version(conn)
        schema.invalidate()
        outcome.ddl = True
    changes = body.changes
    if changes:
        stored = rt.row_versions(conn, [c.key for c in changes])
        winners = [c for c in changes if (v := stored.get(c.key)) is None or version > v]
        if winners:
            apply_changes(conn, winners, schema)
            wall, logical, node = version
            conn.executemany(_UPSERT_VERSION, [
                (c.key, c.table, wall, logical, node, 1 if c.op == "DELETE" else 0) for c in winners])
        outcome.rows = len(winners)
        outcome.skipped = len(changes) - len(winners)
    conn.execute(_LOG, (item.txn_id, ts.wall_ns, ts.logical, ts.node_id, item.origin, item.payload))
    return outcome
