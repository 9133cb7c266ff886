"""Has this replica applied the transaction a causal token names? (``marmot_wait_for_replication``)

A forwarded commit comes back with its commit timestamp (``@@marmot_last_commit_ts``). A replica applies
the cluster's transactions through the same apply path as a cluster node, which records each one, with
that timestamp, in the database's commit log (``__marmot_txn_log``): so "applied here" is a lookup in
that database's log, polled until it succeeds or the time is up — the wait of
``SET marmot_read_after`` (``replication/causal.py``), on the replica's own read connections.
"""

from __future__ import annotations

import asyncio
import time

import apsw

from marmot.hlc import Timestamp
from marmot.storage import replication_tables as rt
from marmot.storage.databases import DatabaseManager

POLL_S = 0.05  # how often the logs are looked at again while waiting

_SQL = f"SELECT 1 FROM {rt.TXN_LOG} WHERE wall = ? AND logical = ? AND node = ? LIMIT 1"


class AppliedCheck:
    """``wait(ts, db, timeout)``: True once the transaction committed at ``ts`` is in ``db``'s commit log.

    Each look opens its own connection: a snapshot restore swaps a database's file, and a kept handle
    would go on reading the old one. Only the commit's own database is looked at (the forward answer
    names it)."""

    def __init__(self, databases: DatabaseManager) -> None:
        self.databases = databases

    def applied(self, ts: Timestamp, db: str) -> bool:
        if not self.databases.exists(db):  # not discovered yet: nothing applied
            return False
        try:  # read-only: a database dropped meanwhile must not be created again by looking
            conn = apsw.Connection(str(self.databases.path(db)), flags=apsw.SQLITE_OPEN_READONLY)
        except (apsw.Error, OSError):  # being dropped or replaced right now: look again later
            return False
        try:
            return conn.execute(_SQL, (ts.wall_ns, ts.logical, ts.node_id)).fetchone() is not None
        except apsw.Error:  # no commit log yet (nothing applied to it)
            return False
        finally:
            conn.close()

    async def wait(self, ts: Timestamp, db: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.applied(ts, db):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            await asyncio.sleep(min(POLL_S, remaining))
        return True
