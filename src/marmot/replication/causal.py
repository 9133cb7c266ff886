"""Causal tokens: has this node applied the transaction a ``@@marmot_last_commit_ts`` token names?

A token is the commit timestamp of one replicated transaction (``wall_ns.logical.node_id``; the node id
is its coordinator's, so the timestamp is unique cluster-wide). Every node records each transaction it
applies, with that commit timestamp, in the database's commit log (``__marmot_txn_log``), whether it
came by COMMIT, by the decision's replay or by catch-up. So "applied here" is a lookup in the logs of
this node's databases, and waiting for it is a local poll: nothing is asked of other nodes.

What it covers: the token's transaction (its rows, or newer versions of them) is visible here. What it
does not: other transactions with smaller timestamps (HLC order is not apply order across
coordinators), and a transaction whose entry this node's log GC already removed (kept at least
``gc_min_retention_hours``): such an old token is reported as not applied.
"""

from __future__ import annotations

import asyncio
import time

from marmot.hlc import Timestamp
from marmot.replication.commit.participant import Participant
from marmot.storage import replication_tables as rt
from marmot.storage.databases import DatabaseManager

POLL_S = 0.05  # how often the logs are looked at again while waiting


def applied_here(participant: Participant, databases: DatabaseManager, ts: Timestamp) -> bool:
    """The transaction committed at ``ts`` is in the commit log of one of this node's databases."""
    sql = f"SELECT 1 FROM {rt.TXN_LOG} WHERE wall = ? AND logical = ? AND node = ? LIMIT 1"
    for db in databases.names():
        if participant.reader(db).execute(sql, (ts.wall_ns, ts.logical, ts.node_id)).fetchone():
            return True
    return False


async def wait_applied(
    participant: Participant, databases: DatabaseManager, ts: Timestamp, timeout: float
) -> bool:
    """Wait (at most ``timeout`` seconds) until ``applied_here``; False when the deadline passed."""
    deadline = time.monotonic() + timeout
    while not applied_here(participant, databases, ts):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        await asyncio.sleep(min(POLL_S, remaining))
    return True
