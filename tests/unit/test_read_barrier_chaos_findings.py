"""A read-barrier bug the chaos runs (tests/chaos, workload ``register_quorum``) found.

A barrier returns as soon as enough peers are caught up (or gives up at ``read_timeout_ms``); the pulls
from the other peers go on in the background, shielded, so a retry is cheaper. When such a pull then
failed (its peer reset the connection, the disk was full), nobody retrieved the failure and asyncio
logged "Task exception was never retrieved" — 23 tracebacks in one 40 s chaos schedule, which fails
the run's ``unhandled-exception`` check. A background pull's failure is now retrieved and logged.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from marmot.replication.catchup.read_barrier import ReadBarrier
from marmot.replication.catchup.sync_messages import LogPosition, LogPositions
from tests.support import run_async


class Transport:
    """Answers ``log_positions`` for every peer: one database whose log ends at seq 5, entries not listed
    (so the barrier pulls)."""

    async def send(self, address: str, method: str, payload: Any, timeout: float) -> Any:
        assert method == "log_positions"
        return LogPositions({"app": LogPosition("log-" + address, 5, None)}).encode()


class Databases:
    """The part of ``DatabaseManager`` a barrier reads: the database exists, its file never changes."""

    def exists(self, db: str) -> bool:
        return True

    def generation(self, db: str) -> int:
        return 0


class Pull:
    """The part of ``LogPull`` a barrier uses: node 2's pull succeeds at once, node 3's fails after
    ``slow`` seconds (its connection reset mid-pull), long after the barrier returned."""

    def __init__(self, slow: float) -> None:
        self.transport = Transport()
        self.databases = Databases()
        self.slow = slow
        self.cursors: dict[int, int] = {}

    def ensure_database(self, peer: int, db: str) -> bool:
        return True

    def cursor(self, peer: int, db: str, log_id: str) -> int:
        return self.cursors.get(peer, 0)

    async def pull_database(self, peer: int, address: str, db: str, log_id: str, last: int) -> int:
        if peer == 3:
            await asyncio.sleep(self.slow)
            raise ConnectionResetError("connection to node 3 lost")
        self.cursors[peer] = last
        return last


def test_background_pull_failure_is_retrieved() -> None:
    unretrieved: list[dict[str, Any]] = []

    async def main() -> int:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: unretrieved.append(ctx))
        barrier = ReadBarrier(
            Pull(slow=0.2),  # type: ignore[arg-type]
            alive_peers=lambda: {2: "n2", 3: "n3"},
            members=lambda: [1, 2, 3],
            total_members=lambda: 3,
            timeout=2.0,
            hedge=0,  # both peers asked at once: node 2 answers, node 3's pull outlives the barrier
        )
        caught_up = await barrier.wait({"app"}, "QUORUM")  # node 2 suffices; node 3's pull goes on
        await asyncio.sleep(0.5)  # node 3's pull fails meanwhile
        gc.collect()  # a dropped task reports an unretrieved exception when it is collected
        await asyncio.sleep(0)
        assert not barrier._background  # the failed pull is no longer tracked
        return caught_up

    assert run_async(main()) == 1
    gc.collect()
    assert unretrieved == [], [c.get("message") for c in unretrieved]
