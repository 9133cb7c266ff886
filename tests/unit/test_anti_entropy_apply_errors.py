"""Anti-entropy applying a pulled batch when the disk is full (found by tests/chaos, disk-full nemesis).

Every entry of a pulled batch is queued at once so the apply queue can batch them; when they fail
together (SQLITE_FULL), the first failure is reported and the rest must be *retrieved*, not left for
asyncio to log as "Task exception was never retrieved" — 5,665 such tracebacks in four chaos runs.
"""

from __future__ import annotations

import asyncio
import gc
import logging

import apsw

from marmot.hlc import HLC
from marmot.replication import anti_entropy as ae_module
from marmot.replication import messages as m
from marmot.replication.anti_entropy import AntiEntropy
from marmot.storage.databases import DatabaseManager


class FullDisk:
    """An apply queue that batches ``size`` applies and fails them together, as SQLite's COMMIT of one
    batch does on a full disk."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.calls = 0
        self.batch: asyncio.Future[None] | None = None

    async def apply(self, db, item):
        if self.batch is None:
            self.batch = asyncio.get_running_loop().create_future()
        self.calls += 1
        if self.calls == self.size:
            self.batch.set_result(None)
        await asyncio.shield(self.batch)
        raise apsw.FullError("database or disk is full")


def test_failed_batch_retrieves_every_failure(tmp_path):
    dbs = DatabaseManager(str(tmp_path))
    queues = FullDisk(5)
    ae = AntiEntropy(1, HLC(1), dbs, queues, send=None, peers=dict, interval=1.0)
    body = m.encode_body("dml", rows=b"")
    rows = [[seq, 1000 + seq, 1_700_000_000_000_000_000 + seq, 0, 2, 2, body] for seq in range(1, 6)]
    unretrieved: list[dict] = []

    async def main() -> tuple[int | None, int]:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: unretrieved.append(ctx))
        result = await ae._apply_rows("127.0.0.1:1", "marmot", rows, 1)
        await asyncio.sleep(0.01)  # let every queued apply finish failing
        gc.collect()
        return result

    # pytest's log capture would keep the warning's exception alive, and with it the failed tasks
    ae_log = logging.getLogger(ae_module.__name__)
    ae_log.disabled = True
    try:
        seq, applied = asyncio.run(main())
    finally:
        ae_log.disabled = False
        dbs.close()
    assert (seq, applied) == (1, 0)  # resume from the first entry that could not be applied
    assert queues.calls == 5
    assert ae.stats["failed"] == 1
    assert not [c for c in unretrieved if "never retrieved" in c.get("message", "")], unretrieved
