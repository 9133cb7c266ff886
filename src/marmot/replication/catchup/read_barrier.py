"""Read barriers: what makes a read at ONE, TWO, THREE, QUORUM or ALL see writes taken by other nodes.

Why it holds. A write acknowledged at level W is applied on W nodes before the client gets its OK, and
the applier writes the transaction's commit-log row (``__marmot_txn_log``) in the same SQLite
transaction as its rows. So if, after the write's OK, a read asks R nodes for the end of their commit
log of the database and pulls what it lacks from each of them up to that end, and R + W exceeds the
total membership N, at least one of the R nodes holds the write and the read has it. The barrier counts
this node among the R (its own log needs no asking); QUORUM is a majority of N like for writes, so a
QUORUM read sees every write acknowledged at QUORUM (or ALL) before the barrier began, whichever node
took it. The read then runs locally: any SQL (joins, aggregates, INFORMATION_SCHEMA) gets the guarantee,
with no result merging.

Levels, in nodes whose logs the read has caught up with (this one included): LOCAL_ONE 1 (no barrier);
ONE 2 — this node and one peer (one other node, as upstream's ONE reads from a node that need not be
this one); TWO 2; THREE 3; QUORUM ⌊N/2⌋+1; ALL N (capped at N).

Pulling reuses anti-entropy's per-peer pull (``LogPull.pull_database``: cursor, fetch of the missing
bodies, the apply queue — one apply path). An up-to-date node pays one ``log_databases`` round trip per
peer plus one ``log_list`` per database. A pull that outlives the barrier's ``read_timeout`` keeps going
in the background (it is progress, and cancelling an apply half way would gain nothing); the read gets
1105.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

from marmot.replication import messages as m
from marmot.replication.catchup.log_pull import LogPull
from marmot.replication.catchup.sync_messages import LogDatabases, LogDatabasesRequest
from marmot.replication.commit.coordinator import required_acks
from marmot.replication.errors import ReplicationError

log = logging.getLogger("marmot.replication.catchup.read_barrier")

READ_LEVELS = ("LOCAL_ONE", "ONE", "TWO", "THREE", "QUORUM", "ALL")


class ReadBarrierFailed(ReplicationError):
    """Too few nodes answered a read barrier within ``read_timeout_ms`` (MySQL 1105, HY000)."""


def nodes_required(level: str, total: int) -> int:
    """How many nodes, this one included, a read at ``level`` must have caught up with."""
    level = level.upper()
    if level == "LOCAL_ONE":
        return 1
    if level == "ONE":
        return min(2, max(total, 1))
    return required_acks(level, max(total, 1))


@dataclass(slots=True)
class BarrierStats:
    """Counters for the admin API and tests: barriers run, failed, and transactions they pulled."""

    barriers: int = 0
    failed: int = 0
    applied: int = 0


class ReadBarrier:
    """Runs read barriers for the engine (``Replication.read_barrier``)."""

    def __init__(
        self,
        pull: LogPull,
        *,
        alive_peers: Callable[[], dict[int, str]],
        members: Callable[[], list[int]],
        total_members: Callable[[], int],
        timeout: float,
    ) -> None:
        self.pull = pull
        self.alive_peers = alive_peers
        self.members = members
        self.total_members = total_members
        self.timeout = timeout  # [replication] read_timeout_ms, in seconds
        self.stats = BarrierStats()
        self._background: set[asyncio.Task[int]] = set()  # pulls that outlived their barrier

    async def wait(self, dbs: Collection[str] | None, level: str) -> int:
        """Catch ``dbs`` (None: every database) up with enough peers for ``level``; returns how many peers
        it caught up with. Raises ``ReadBarrierFailed`` when too few answered within the timeout."""
        total = self.total_members()
        need = nodes_required(level, total) - 1
        if need <= 0:
            return 0
        self.stats.barriers += 1
        started = time.monotonic()
        peers = self.alive_peers()
        if len(peers) < need:
            self.stats.failed += 1
            raise self._failure(level, need, total, set(), {}, peers)
        tasks = {asyncio.ensure_future(self._catch_up(peer, addr, dbs)): peer for peer, addr in peers.items()}
        done_peers: set[int] = set()
        why: dict[int, str] = {}
        pending = set(tasks)
        try:
            async with asyncio.timeout(self.timeout):
                while pending and len(done_peers) < need:
                    finished, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    for t in finished:
                        peer = tasks[t]
                        err = t.exception()
                        if err is None:
                            done_peers.add(peer)
                        else:
                            why[peer] = _reason(err)
                    if len(pending) + len(done_peers) < need:  # the rest cannot make up the count
                        pending_peers = {tasks[p] for p in pending}
                        raise self._failure(
                            level, need, total, done_peers, {**why, **self._quiet(pending_peers)}, peers
                        )
        except TimeoutError:
            why.update(self._quiet({tasks[t] for t in pending}))
            self.stats.failed += 1
            raise self._failure(level, need, total, done_peers, why, peers) from None
        except ReadBarrierFailed:
            self.stats.failed += 1
            raise
        finally:
            for t in pending:
                t.cancel()  # only the position request is cancelled: pulls are shielded (_catch_up)
            for peer, reason in why.items():
                log.debug("read barrier: node %d did not answer: %s", peer, reason)
        log.debug(
            "read barrier at %s: caught up with node(s) %s in %.1f ms",
            level,
            sorted(done_peers),
            (time.monotonic() - started) * 1000,
        )
        return len(done_peers)

    async def _catch_up(self, peer: int, address: str, dbs: Collection[str] | None) -> int:
        """Ask ``peer`` for its log positions and pull ``dbs`` from it up to them. Raises when the peer
        does not answer or a pull stops short of the position (an entry that cannot be applied yet)."""
        req = LogDatabasesRequest()
        answer = await self.pull.transport.send(address, req.method, req.encode(), self.timeout)
        positions = LogDatabases.decode(answer).dbs
        wanted = [
            (db, log_id, last) for db, (log_id, last) in sorted(positions.items()) if dbs is None or db in dbs
        ]
        pull = asyncio.ensure_future(self._pull(peer, address, wanted))
        self._background.add(pull)
        pull.add_done_callback(self._pull_done)
        return await asyncio.shield(pull)

    def _pull_done(self, pull: asyncio.Task[int]) -> None:
        """Forget a finished pull and retrieve its failure: a pull that outlived its barrier has nobody
        else to (asyncio would log "Task exception was never retrieved"); the next barrier or
        anti-entropy round pulls again."""
        self._background.discard(pull)
        if not pull.cancelled() and (err := pull.exception()) is not None:
            log.debug("read barrier: a pull failed: %s", _reason(err))

    async def _pull(self, peer: int, address: str, wanted: list[tuple[str, str, int]]) -> int:
        applied = 0
        for db, log_id, last in wanted:
            if not self.pull.ensure_database(peer, db):
                continue
            if self.pull.cursor(peer, db, log_id) >= last:
                continue  # already consumed up to there: nothing to ask
            applied += await self.pull.pull_database(peer, address, db, log_id, last)
            reached = self.pull.cursor(peer, db, log_id)
            if reached < last:
                raise RuntimeError(f"{db}: applied its log only up to seq {reached} of {last}")
        self.stats.applied += applied
        return applied

    def _absent(self, alive: dict[int, str]) -> list[int]:
        return sorted(p for p in self.members() if p not in alive)

    def _quiet(self, pending: set[int]) -> dict[int, str]:
        return {p: f"no answer within {self.timeout * 1000:.0f} ms" for p in pending}

    def _failure(
        self,
        level: str,
        need: int,
        total: int,
        answered: set[int],
        why: dict[int, str],
        asked: dict[int, str],
    ) -> ReadBarrierFailed:
        for p in self._absent(asked):  # members not ALIVE when the barrier began were not asked
            why.setdefault(p, "not alive")
        detail = "; ".join(f"node {p}: {r}" for p, r in sorted(why.items()))
        return ReadBarrierFailed(
            f"read consistency {level} not reached: needs {need} other node(s) of {total} to answer, "
            f"{len(answered)} did{f' (node(s) {sorted(answered)})' if answered else ''}"
            f"{f' — {detail}' if detail else ''} (read_timeout_ms = {self.timeout * 1000:.0f})"
        )

    async def stop(self) -> None:
        """Cancel pulls still running for barriers that are over (node shutdown)."""
        tasks = list(self._background)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _reason(err: BaseException) -> str:
    if isinstance(err, m.MessageError):
        return f"refused: {err}"
    if isinstance(err, (ConnectionError, OSError)):
        return f"unreachable ({err or type(err).__name__})"
    if isinstance(err, TimeoutError):
        return "timed out"
    return str(err) or type(err).__name__
