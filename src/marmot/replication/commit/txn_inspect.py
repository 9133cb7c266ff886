"""Read-only views of this node's two-phase commit state, for the admin routes and the dashboard.

Why a module of its own: the admin API must show operators what is in flight (upstream's
``/admin/{db}/metadata/transactions/...`` and ``intents/...``) without reaching into the participant's
and the intent table's private structures from the HTTP layer. Everything here reads and returns plain
JSON-ready dicts; nothing changes state. Called on the event loop thread, like the participant itself,
so the snapshot it takes is consistent (no ``await`` while reading).

A *pending* transaction is one prepared on this node whose decision has not been applied here yet:
``prepared`` (waiting for COMMIT or ABORT) or ``committing`` (its COMMIT is being applied). Its intents
are the row keys it holds, and for a DDL the database's DDL lock.
"""

from __future__ import annotations

import time
from typing import Any

from marmot.replication.commit.coordinator import Coordinator
from marmot.replication.commit.participant import Participant, Prepared
from marmot.storage import replication_tables as rt
from marmot.storage.rowkey import RowKeyError, decode_row_key


def _kind(p: Prepared) -> str:
    return "database" if p.body.kind == "dbop" else p.body.kind


def transaction_json(p: Prepared, coordinator: Coordinator | None = None) -> dict[str, Any]:
    """One pending transaction: who coordinates it, how old it is, what it changes."""
    now = time.monotonic()
    body = p.body
    tables = sorted({c.table for c in body.changes})
    out: dict[str, Any] = {
        "txn_id": p.txn_id,
        "database": p.db,
        "coordinator": p.coordinator,
        "kind": _kind(p),
        "state": "committing" if p.committing else "prepared",
        "waiting_seconds": round(max(0.0, now - p.since), 3),
        "resolve_after_seconds": round(p.timeout, 3),
        "rows": len(body.changes),
        "tables": tables,
    }
    if body.kind == "ddl":
        out["statements"] = list(body.ddl)
    if body.dbop is not None:
        out["operation"] = {"op": body.dbop[0], "database": body.dbop[1]}
    if coordinator is not None and p.coordinator == coordinator.node_id:
        out["coordinator_state"] = coordinator.state_of(p.txn_id)[0]
    return out


def pending(
    participant: Participant, db: str, coordinator: Coordinator | None = None
) -> list[dict[str, Any]]:
    """Transactions of ``db`` prepared here and not yet applied or aborted, oldest first."""
    found = [p for p in participant.prepared.values() if p.db == db]
    found.sort(key=lambda p: p.txn_id)
    return [transaction_json(p, coordinator) for p in found]


def transaction(
    participant: Participant, db: str, txn: int, coordinator: Coordinator | None = None
) -> dict[str, Any] | None:
    """What this node knows of ``txn`` in ``db``: pending (the full object), ``committed`` (with its
    commit timestamp, from the commit log), ``aborted`` (given up here), or None (never seen, or
    forgotten: the most recent 100 000 aborts are remembered)."""
    p = participant.prepared.get(txn)
    if p is not None and p.db == db:
        return transaction_json(p, coordinator)
    cts = rt.committed_timestamp(participant.reader(db), txn)
    if cts is not None:
        return {"txn_id": txn, "database": db, "state": "committed", "commit_ts": list(cts)}
    if participant.was_aborted(txn):
        return {"txn_id": txn, "database": db, "state": "aborted"}
    return None


def committed(participant: Participant, db: str, limit: int) -> list[dict[str, Any]]:
    """The last ``limit`` entries of ``db``'s commit log here (newest first): what was applied, when
    (commit timestamp) and which node coordinated it (``origin``)."""
    rows = participant.reader(db).execute(
        f"SELECT seq, txn_id, wall, logical, node, origin FROM {rt.TXN_LOG} ORDER BY seq DESC LIMIT ?",
        (limit,),
    )
    return [
        {"seq": seq, "txn_id": txn, "commit_ts": [wall, logical, node], "origin": origin}
        for seq, txn, wall, logical, node, origin in rows
    ]


def _intent_json(db: str, key: bytes, owner: int, p: Prepared | None) -> dict[str, Any]:
    try:
        table: str | None = decode_row_key(key)[0]
    except RowKeyError:
        table = None
    out: dict[str, Any] = {"key": key.hex(), "table": table, "txn_id": owner}
    if p is not None:
        out["coordinator"] = p.coordinator
        out["waiting_seconds"] = round(max(0.0, time.monotonic() - p.since), 3)
    return out


def intents(
    participant: Participant, db: str, *, table: str | None = None, txn: int | None = None
) -> dict[str, Any]:
    """Row intents of ``db`` here (optionally of one table, compared case-insensitively, or one
    transaction), and the database's DDL lock: ``{"intents": [...], "ddl_lock": {...} | None}``."""
    view = participant.intents.view(db)
    rows: list[dict[str, Any]] = []
    want = None if table is None else table.lower()
    for key, owner in view.rows:
        if txn is not None and owner != txn:
            continue
        entry = _intent_json(db, key, owner, participant.prepared.get(owner))
        if want is not None and (entry["table"] or "").lower() != want:
            continue
        rows.append(entry)
    rows.sort(key=lambda e: (e["table"] or "", e["key"]))
    return {"intents": rows, "ddl_lock": ddl_lock(participant, db)}


def ddl_lock(participant: Participant, db: str) -> dict[str, Any] | None:
    """The DDL holding ``db``'s DDL intent, or None. ``tables`` null: it covers the whole database."""
    view = participant.intents.view(db)
    if view.ddl_owner is None:
        return None
    p = participant.prepared.get(view.ddl_owner)
    out: dict[str, Any] = {
        "txn_id": view.ddl_owner,
        "tables": None if view.ddl_tables is None else sorted(view.ddl_tables),
    }
    if p is not None:
        out["coordinator"] = p.coordinator
        out["waiting_seconds"] = round(max(0.0, time.monotonic() - p.since), 3)
        out["statements"] = list(p.body.ddl)
    return out
