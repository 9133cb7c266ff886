"""Write intents: which prepared transaction owns which row key, per database, on this node.

A PREPARE takes an intent on every row key it changes; a second transaction wanting one of those keys
while the first is still undecided is a **write-write conflict** (the coordinator aborts it and the
client gets 1213 — retryable, nothing applied anywhere). Intents are released when the owner is
applied (COMMIT) or aborted. No waiting happens on the participant side (upstream §3.5): waits would
need deadlock detection across nodes; a fast retry by the client is simpler and bounded.

DDL takes a database-wide intent: it conflicts with any live DML or DDL intent of the database, and
DML conflicts with a live DDL intent. That serialises schema changes cluster-wide (with a quorum of
intents, two DDL cannot both prepare) and keeps DML from being prepared against a schema that is about
to change.

Why in memory: an intent only matters while its transaction is undecided. A participant that restarts
has lost its intents and its prepared bodies, but it had not acknowledged a COMMIT for them (COMMIT
acks are given after the durable apply), so no acknowledged write depends on them; the transaction
reaches it later through anti-entropy. Keeping intents in memory makes PREPARE cost a dict lookup per
key instead of a durable write.

Thread-safety: used from the event loop thread only.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class _DbIntents:
    rows: dict[bytes, int] = field(default_factory=dict)  # row key -> owning txn id
    by_txn: dict[int, list[bytes]] = field(default_factory=dict)  # txn id -> its row keys
    ddl_owner: int | None = None


class IntentTable:
    """Row and DDL intents of every database on this node."""

    def __init__(self) -> None:
        self._dbs: dict[str, _DbIntents] = {}

    def acquire(self, db: str, txn_id: int, keys: list[bytes], ddl: bool) -> int | None:
        """Take the intents of ``txn_id``; returns the id of a conflicting transaction (nothing is taken
        then), or None on success. Re-acquiring keys a transaction already owns is allowed."""
        d = self._dbs.get(db)
        if d is None:
            d = self._dbs[db] = _DbIntents()
        if d.ddl_owner is not None and d.ddl_owner != txn_id:
            return d.ddl_owner
        if ddl:
            for other in d.by_txn:
                if other != txn_id:
                    return other
            d.ddl_owner = txn_id
        rows = d.rows
        get = rows.get
        for k in keys:
            owner = get(k)
            if owner is not None and owner != txn_id:
                return owner
        for k in keys:
            rows[k] = txn_id
        if keys or not ddl:
            d.by_txn.setdefault(txn_id, []).extend(keys)
        return None

    def release(self, db: str, txn_id: int) -> None:
        d = self._dbs.get(db)
        if d is None:
            return
        if d.ddl_owner == txn_id:
            d.ddl_owner = None
        keys = d.by_txn.pop(txn_id, None)
        if keys:
            rows = d.rows
            for k in keys:
                if rows.get(k) == txn_id:
                    del rows[k]

    def owner(self, db: str, key: bytes) -> int | None:
        d = self._dbs.get(db)
        return None if d is None else d.rows.get(key)

    def count(self) -> int:
        """Live row intents on this node (a metric)."""
        return sum(len(d.rows) for d in self._dbs.values())
