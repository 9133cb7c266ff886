"""Garbage collection of the commit log and of tombstones (anti-entropy issue, point 4).

The commit log (``__marmot_txn_log``) grows by one row per transaction and tombstones
(``__marmot_row_version`` rows with ``deleted = 1``) by one per deleted row. Every
``[replication] gc_interval_seconds``, per database:

* a log entry is deleted when **every** member (REMOVED ones aside, alive or not) has pulled past it
  *and* it is older than ``gc_min_retention_hours``, or, whatever the members consumed, when it is older
  than ``gc_max_retention_hours`` (0 = never by age). A member's consumption is the position it last
  asked this node's log for (``log_list``'s ``after``, recorded per member and database by
  ``LogPull``): nothing an alive member has not consumed goes before the minimum retention — nor
  what a dead member has not, since it will ask when it is back;
* tombstones older than ``gc_max_retention_hours`` are deleted (never, when it is 0).

Deleting a log entry also deletes its applied marker (they are one row). A transaction delivered again
after that is still harmless: its row changes carry the versions already stored, which do not win
last-writer-wins a second time, and DDL is applied idempotently. A member that comes back after entries
it had not consumed were deleted by age finds a gap (``log_list`` reports the first position still
there) and fills it with a snapshot (``catchup/snapshot.py``). The newest entry of a log is never deleted (see
``collect``).

The configuration rules that keep GC from deleting what anti-entropy still needs (min retention covers
``delta_sync_threshold_seconds``, max ≥ min, GC interval ≥ anti-entropy interval) are enforced at startup
by ``config.py``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable

import apsw

from marmot.replication.apply.queue import ApplyQueues
from marmot.replication.background import stop_task
from marmot.storage import replication_tables as rt
from marmot.storage.databases import DatabaseManager
from marmot.storage.node_state import NodeState

log = logging.getLogger("marmot.replication.catchup.gc")
NS_PER_HOUR = 3600 * 1_000_000_000


def consumed_key(db: str, member: int) -> str:
    return f"consumed:{db}:{member}"


def collect(
    conn: apsw.Connection,
    *,
    safe_seq: int,
    now_ns: int,
    min_retention_h: float,
    max_retention_h: float,
    keep_from: int | None = None,
) -> tuple[int, int]:
    """Delete what may go, inside the caller's write transaction. Returns (log entries, tombstones) deleted.
    ``keep_from``: no entry at or after this position goes, whatever its age (the CDC publisher's hold)."""
    min_cut = now_ns - int(min_retention_h * NS_PER_HOUR)
    # The newest entry always stays: ``seq`` is an INTEGER PRIMARY KEY (max + 1), so an emptied log would
    # restart at 1 under the same log id and peers' cursors would skip the new entries; it also lets a
    # peer see how far this log went (``last``) and that a gap exists (``first``).
    newest = rt.last_seq(conn)
    if keep_from is not None:
        newest = min(newest, keep_from)
    safe_seq = min(safe_seq, newest - 1)
    conn.execute(f"DELETE FROM {rt.TXN_LOG} WHERE seq <= ? AND wall < ?", (safe_seq, min_cut))
    deleted_log = conn.changes()
    deleted_tombstones = 0
    if max_retention_h > 0:
        max_cut = now_ns - int(max_retention_h * NS_PER_HOUR)
        conn.execute(f"DELETE FROM {rt.TXN_LOG} WHERE wall < ? AND seq < ?", (max_cut, newest))
        deleted_log += conn.changes()
        conn.execute(f"DELETE FROM {rt.ROW_VERSION} WHERE deleted = 1 AND wall < ?", (max_cut,))
        deleted_tombstones = conn.changes()
    return deleted_log, deleted_tombstones


class LogGC:
    """The periodic collector of one node."""

    def __init__(
        self,
        databases: DatabaseManager,
        queues: ApplyQueues,
        *,
        members: Callable[[], list[int]],
        interval: float,
        min_retention_h: float,
        max_retention_h: float,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.databases = databases
        self.queues = queues
        self.members = members  # every member but this node, REMOVED ones excluded
        self.interval = interval
        self.min_retention_h = min_retention_h
        self.max_retention_h = max_retention_h
        self.clock_ns = clock_ns
        self.state = NodeState(databases.system)
        self._task: asyncio.Task[None] | None = None
        self.stats = {"runs": 0, "log_deleted": 0, "tombstones_deleted": 0}
        # (db, conn) -> the lowest position to keep; set by node.py to the CDC publisher's ``gc_hold``
        self.hold: Callable[[str, apsw.Connection], int | None] | None = None

    def safe_seq(self, db: str) -> int:
        """The highest log position every other member has consumed (0 when one never asked)."""
        consumed = [self.state.get_int(consumed_key(db, m)) for m in self.members()]
        return min(consumed) if consumed else 1 << 62

    def _collect(self, conn: apsw.Connection, *, safe_seq: int, db: str = "") -> tuple[int, int]:
        return collect(
            conn,
            safe_seq=safe_seq,
            now_ns=self.clock_ns(),
            min_retention_h=self.min_retention_h,
            max_retention_h=self.max_retention_h,
            keep_from=self.hold(db, conn) if self.hold is not None else None,
        )

    async def run_once(self) -> tuple[int, int]:
        self.stats["runs"] += 1
        total = (0, 0)
        for db in self.databases.names():
            safe = self.safe_seq(db)
            done = await self.queues.write(db, functools.partial(self._collect, safe_seq=safe, db=db))
            if done[0] or done[1]:
                log.info("gc %s: %d log entries, %d tombstones deleted", db, *done)
            total = (total[0] + done[0], total[1] + done[1])
        self.stats["log_deleted"] += total[0]
        self.stats["tombstones_deleted"] += total[1]
        return total

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("gc round failed")
