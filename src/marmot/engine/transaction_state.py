"""The state of a session's transaction: what is open, what it wrote, what its savepoints are.

Why its own object: four parts of the engine read and change it — the transaction statements
(``transaction_control.py``), the replicated writer (``replicated_write.py``), the runners of plans and
raw SQL, and the session's status flags the wire layer reports — and each of them used to re-declare
these fields on the ``Session`` it was mixed into. Here they are declared once, with their types, and
every object that needs them holds a reference to the same ``TransactionState``.

Two kinds of open write transaction exist (the session has at most one of them):

* ``replicated`` — with replication (every real node): the net row changes of the transaction's
  statements, kept here and handed to the replication layer at COMMIT (``replicated_write.py``);
* ``local_conn`` — without replication (the engine alone), and for the DDL that stays local: the
  connection whose own SQLite write transaction (``BEGIN IMMEDIATE``) the session holds until COMMIT.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import apsw

from marmot.replication.changes import Op, RowChange


class PendingTransaction:
    """The writes of an open transaction: each statement's net row changes, in order, and the version
    of every touched key as first seen (for the conflict check at PREPARE)."""

    __slots__ = ("db", "statements", "base", "epoch", "schema_version", "table_schemas", "_merged")

    def __init__(self, db: str) -> None:
        self.db = db
        self.statements: list[list[RowChange]] = []
        self.base: dict[bytes, list[int] | None] = {}
        # the apply epoch the versions in ``base`` were read at (-1: applies happened in between)
        self.epoch: int | None = None
        self.schema_version: int | None = None  # of the database when the first statement ran
        # schema fingerprint of every table it changed, when its first statement changing it ran: only
        # a DDL on one of these tables invalidates the transaction's images
        self.table_schemas: dict[str, bytes | None] = {}
        self._merged: list[RowChange] | None = None

    def add(self, changes: list[RowChange]) -> None:
        if changes:
            self.statements.append(changes)
            self._merged = None

    def truncate(self, count: int) -> None:
        """ROLLBACK TO SAVEPOINT: forget the statements after the first ``count``."""
        if count < len(self.statements):
            del self.statements[count:]
            self._merged = None

    def merged(self) -> list[RowChange]:
        """One change per row key over the whole transaction: the old image of its first change, the new
        image of its last; a row inserted and deleted again is gone. First-touch order."""
        if self._merged is None:
            if len(self.statements) == 1:
                self._merged = self.statements[0]
            else:
                net: dict[bytes, list[Any]] = {}
                for stmt in self.statements:
                    for c in stmt:
                        e = net.get(c.key)
                        if e is None:
                            net[c.key] = [c.table, c.old, c.new]
                        else:
                            e[2] = c.new
                out: list[RowChange] = []
                for key, (table, old, new) in net.items():
                    if old is None and new is None:
                        continue
                    op: Op = "INSERT" if old is None else "DELETE" if new is None else "UPDATE"
                    out.append(RowChange(table, op, key, old, new))
                self._merged = out
        return self._merged


@dataclass(eq=False)
class TransactionState:
    """One session's transaction (module docstring)."""

    autocommit: bool = True
    # MySQL-level: BEGIN seen, or autocommit=0 and a statement ran
    in_transaction: bool = False
    # the connection holding this session's own SQLite write transaction (BEGIN IMMEDIATE), and its database
    local_conn: apsw.Connection | None = None
    local_db: str | None = None
    # the replicated transaction's kept changes (None until its first write)
    replicated: PendingTransaction | None = None
    # consistency level named by a hint comment for this transaction (``replicated_write.consistency_hint``)
    level: str | None = None
    # a read barrier ran in this transaction (``read_consistency.py``: the read level applies at its first read)
    read_barrier_done: bool = False
    # SAVEPOINTs taken before the transaction's first write (created in SQLite once it holds the lock),
    # and each savepoint's position in ``replicated.statements``
    pending_savepoints: list[str] = field(default_factory=list)
    savepoint_marks: dict[str, int] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        """Is a transaction open (the SERVER_STATUS_IN_TRANS flag the client sees)?"""
        return self.in_transaction or self.local_conn is not None or self.replicated is not None

    def forget_savepoints(self) -> None:
        self.pending_savepoints.clear()
        self.savepoint_marks.clear()
