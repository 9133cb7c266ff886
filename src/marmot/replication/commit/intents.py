"""Write intents: which prepared transaction owns which row key, per database, on this node.

A PREPARE takes an intent on every row key it changes; a second transaction wanting one of those keys
while the first is still undecided is a **write-write conflict** (the coordinator aborts it and the
client gets 1213 — retryable, nothing applied anywhere). Intents are released when the owner is
applied (COMMIT) or aborted. No waiting happens on the participant side (upstream §3.5): waits would
need deadlock detection across nodes; a fast retry by the client is simpler and bounded.

DDL takes a database-wide DDL intent, so two DDL of one database conflict (with a quorum of intents,
two DDL cannot both prepare: schema changes stay serialised cluster-wide and every node applies them in
one order). Against DML it is scoped to the tables the DDL changes (``tables``; the coordinator learns
them by running the DDL in a rolled-back transaction): it conflicts with a live DML intent on one of
those tables, and DML touching one of them conflicts with it. DML on other tables goes on: a CREATE
INDEX on one table must not fail the inserts into the next (sysbench's parallel ``prepare``). A DDL
whose tables are unknown (``tables=None``) covers the whole database, as every DDL once did.

Why in memory: an intent only matters while its transaction is undecided. A participant that restarts
has lost its intents and its prepared bodies, but it had not acknowledged a COMMIT for them (COMMIT
acks are given after the durable apply), so no acknowledged write depends on them; the transaction
reaches it later through anti-entropy. Keeping intents in memory makes PREPARE cost a dict lookup per
key instead of a durable write.

Thread-safety: used from the event loop thread only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


class IntentView(NamedTuple):
    """A copy of one database's intents, for inspection (``txn_inspect.py``): (key, owner) pairs and
    the DDL lock."""

    rows: list[tuple[bytes, int]]
    ddl_owner: int | None
    ddl_tables: frozenset[str] | None


@dataclass(slots=True)
class _DbIntents:
    rows: dict[bytes, int] = field(default_factory=dict)  # row key -> owning txn id
    by_txn: dict[int, list[bytes]] = field(default_factory=dict)  # txn id -> its row keys
    tables: dict[int, frozenset[str]] = field(default_factory=dict)  # txn id -> tables of its row intents
    ddl_owner: int | None = None
    ddl_tables: frozenset[str] | None = None  # the tables the live DDL changes (None: every table)


class IntentTable:
    """Row and DDL intents of every database on this node."""

    def __init__(self) -> None:
        self._dbs: dict[str, _DbIntents] = {}

    def acquire(
        self, db: str, txn_id: int, keys: list[bytes], ddl: bool, tables: frozenset[str] | None = None
    ) -> int | None:
        """Take the intents of ``txn_id``; returns the id of a conflicting transaction (nothing is taken
        then), or None on success. Re-acquiring keys a transaction already owns is allowed.

        ``tables`` (lower-cased): for DML, the tables its keys belong to (None: unknown, so it conflicts
        with any live DDL); for DDL, the tables it changes (None: the whole database)."""
        d = self._dbs.get(db)
        if d is None:
            d = self._dbs[db] = _DbIntents()
        owner = d.ddl_owner
        if (
            owner is not None
            and owner != txn_id
            and (ddl or tables is None or d.ddl_tables is None or not tables.isdisjoint(d.ddl_tables))
        ):
            return owner
        if ddl:
            for other, other_tables in d.tables.items():
                if other != txn_id and (tables is None or not tables.isdisjoint(other_tables)):
                    return other
            for other in d.by_txn:  # DML that registered no tables: conflicts with any DDL
                if other != txn_id and other not in d.tables:
                    return other
        rows = d.rows
        get = rows.get
        for k in keys:
            owner = get(k)
            if owner is not None and owner != txn_id:
                return owner
        if ddl:
            d.ddl_owner = txn_id
            d.ddl_tables = tables
        for k in keys:
            rows[k] = txn_id
        if keys or not ddl:
            d.by_txn.setdefault(txn_id, []).extend(keys)
            if tables is not None and not ddl:
                d.tables[txn_id] = d.tables.get(txn_id, frozenset()) | tables
        return None

    def release(self, db: str, txn_id: int) -> None:
        d = self._dbs.get(db)
        if d is None:
            return
        if d.ddl_owner == txn_id:
            d.ddl_owner = None
            d.ddl_tables = None
        d.tables.pop(txn_id, None)
        keys = d.by_txn.pop(txn_id, None)
        if keys:
            rows = d.rows
            for k in keys:
                if rows.get(k) == txn_id:
                    del rows[k]

    def owner(self, db: str, key: bytes) -> int | None:
        d = self._dbs.get(db)
        return None if d is None else d.rows.get(key)

    def view(self, db: str) -> IntentView:
        """The intents of ``db`` as they are now (a copy: the caller may keep it across an ``await``)."""
        d = self._dbs.get(db)
        if d is None:
            return IntentView([], None, None)
        return IntentView(list(d.rows.items()), d.ddl_owner, d.ddl_tables)

    def count(self) -> int:
        """Live row intents on this node (a metric)."""
        return sum(len(d.rows) for d in self._dbs.values())
