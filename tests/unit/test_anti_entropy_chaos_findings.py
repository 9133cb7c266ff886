"""Anti-entropy bugs the chaos runs (tests/chaos) found, each pinned down exactly.

1. Applying a pulled batch when the disk is full (disk-full nemesis). Every entry of a pulled batch is
   queued at once so the apply queue can batch them; when they fail together (SQLITE_FULL), the first
   failure is reported and the rest must be *retrieved*, not left for asyncio to log as "Task exception
   was never retrieved" — 5,665 such tracebacks in four chaos runs.
2. A false divergence alarm right after a restarted node's catch-up (kill nemesis).
"""

from __future__ import annotations

import asyncio
import gc
import logging

import apsw

from marmot.hlc import HLC, Timestamp
from marmot.replication import messages as m
from marmot.replication.catchup import log_pull as ae_module
from marmot.replication.catchup.log_pull import LogPull
from marmot.replication.catchup.sync_messages import LogEntry
from marmot.replication.wiring import ReplicationSettings
from marmot.storage.databases import DatabaseManager
from tests.support import run_async

SETTINGS = ReplicationSettings(anti_entropy_interval=1.0)


class Transport:
    """``marmot.transport.Transport`` answering unary calls with ``send`` (None: no network at all)."""

    def __init__(self, send=None) -> None:
        self._send = send

    async def send(self, address, method, payload, timeout):
        if self._send is None:
            raise ConnectionError("no network in this test")
        return await self._send(address, method, payload, timeout)

    async def send_stream(self, address, method, chunks, timeout):
        raise ConnectionError("no streams in this test")

    def stream(self, address, method, payload, timeout):
        raise ConnectionError("no streams in this test")


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
    """Finding 1."""
    dbs = DatabaseManager(str(tmp_path))
    queues = FullDisk(5)
    ae = LogPull(1, HLC(1), dbs, queues, Transport(), peers=dict, settings=SETTINGS)
    body = m.encode_body("dml", rows=b"")
    entries = [
        LogEntry(seq, 1000 + seq, Timestamp(1_700_000_000_000_000_000 + seq, 0, 2), 2, body)
        for seq in range(1, 6)
    ]
    unretrieved: list[dict] = []

    async def main() -> tuple[int | None, int]:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: unretrieved.append(ctx))
        result = await ae._apply_entries("127.0.0.1:1", "marmot", entries)
        await asyncio.sleep(0.01)  # let every queued apply finish failing
        gc.collect()
        return result

    # pytest's log capture would keep the warning's exception alive, and with it the failed tasks
    ae_log = logging.getLogger(ae_module.__name__)
    ae_log.disabled = True
    try:
        seq, applied = run_async(main())
    finally:
        ae_log.disabled = False
        dbs.close()
    assert (seq, applied) == (1, 0)  # resume from the first entry that could not be applied
    assert queues.calls == 5
    assert ae.stats["failed"] == 1
    assert not [c for c in unretrieved if "never retrieved" in c.get("message", "")], unretrieved


def test_digest_difference_counts_as_divergence_only_once_it_stays_put(tmp_path, monkeypatch):
    """Catch-up runs rounds back to back: two comparisons 35 ms apart that saw the same difference raised
    a false alarm in a chaos run (a restarted node held transactions its peer had yet to pull). A
    difference is divergence only once it stayed unchanged for ``divergence_grace`` seconds."""
    dbs = DatabaseManager(str(tmp_path))
    dbs.create("marmot", if_not_exists=True)
    asked: list[str] = []

    async def send(address, method, payload, timeout):
        asked.append(method)
        if method == "digest_get":  # the peer has a row this node lacks, and it does not move
            return {
                "database": "marmot",
                "schema_version": 1,
                "tables": {"t": {"digest": "00000000000000ff", "rows": 1}},
            }
        raise ConnectionError("repairs are not what this test is about")

    ae = LogPull(1, HLC(1), dbs, FullDisk(1), Transport(send), peers=dict, settings=SETTINGS)
    clock = [1000.0]
    monkeypatch.setattr(ae_module.time, "monotonic", lambda: clock[0])

    async def compare() -> None:
        await ae._compare_digests(2, "127.0.0.1:1", "marmot")

    try:
        run_async(compare())
        clock[0] += 0.035
        run_async(compare())
        assert ae.divergent == {} and ae.stats["divergent"] == 0 and "repair_keys" not in asked
        clock[0] += ae.divergence_grace
        run_async(compare())
        assert ae.divergent == {(2, "marmot"): ["t"]} and ae.stats["divergent"] == 1
        assert "repair_keys" in asked
    finally:
        ae.readers.close()
        dbs.close()
