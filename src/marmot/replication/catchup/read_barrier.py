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
from typing import Any

from marmot.replication import messages as m
from marmot.replication.catchup.log_memory import LogMemory
from marmot.replication.catchup.log_pull import LogPull
from marmot.replication.catchup.sync_messages import (
    LogDatabases,
    LogDatabasesRequest,
    LogPosition,
    LogPositions,
    LogPositionsRequest,
)
from marmot.replication.commit.coordinator import required_acks
from marmot.replication.errors import ReplicationError
from marmot.storage import replication_tables as rt

log = logging.getLogger("marmot.replication.catchup.read_barrier")

HEDGE = 0.05  # seconds before the peers not asked first are asked too (``ReadBarrier.hedge``)
SPARE = 1  # peers asked at once beyond what the level needs (``ReadBarrier.spare``)
COMMIT_WAIT = 0.1  # seconds to wait for this node's own apply of transactions prepared here, then pull
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
    fast: int = 0  # peers' answers that needed no pull (everything up to their position applied here)
    waited: int = 0  # … once this node's own 2PC applied the few it had prepared but not applied yet
    pulls: int = 0  # peers' answers that needed one (log_list, maybe fetch and apply, cursor write)


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
        memory: LogMemory | None = None,
        hedge: float = HEDGE,
        spare: int = SPARE,
        prepared: Callable[[int], int | None] | None = None,
        node_id: int | None = None,
    ) -> None:
        """``memory``: this node's commit logs in memory (``log_memory.py``), to tell from memory that a
        peer's recent transactions are applied here. Asked at once: as many peers as the level needs
        plus ``spare`` (measured: on a loaded 3-node cluster the faster of two peers answers a QUORUM
        barrier in about two thirds of the time one peer takes, docs/benchmarks.md), in turn; the others
        when one fails, or after ``hedge`` seconds without enough answers (0: ask every ALIVE peer at
        once). ``prepared(txn)``: the node coordinating a transaction PREPAREd here (None: not
        prepared here) — its COMMIT is on its way, so a peer that already applied it need not be pulled
        from: this node waits (``COMMIT_WAIT`` at most) for its own apply instead; and when this node
        (``node_id``) coordinates it, not even that: a coordinator applies a transaction before it
        acknowledges it (``Coordinator.replicate``), so one not applied here is not acknowledged yet,
        and a read need not see it."""
        self.pull = pull
        self.alive_peers = alive_peers
        self.members = members
        self.total_members = total_members
        self.timeout = timeout  # [replication] read_timeout_ms, in seconds
        self.memory = memory
        self.hedge = hedge
        self.spare = spare
        self.prepared = prepared
        self.node_id = node_id
        self.stats = BarrierStats()
        self._background: set[asyncio.Task[int]] = set()  # pulls that outlived their barrier
        # peer -> db -> how far this node has applied that peer's log: (log id, seq, this file's generation)
        self._marks: dict[int, dict[str, tuple[str, int, int]]] = {}
        self._turn = 0  # which peers are asked first, in turn (spreads the questions over the peers)

    async def wait(self, dbs: Collection[str] | None, level: str) -> int:
        """Catch ``dbs`` (None: every database) up with enough peers for ``level``; returns how many peers
        it caught up with. Raises ``ReadBarrierFailed`` when too few answered within the timeout.

        The questions are sent from this (the reading session's) task and their answers handled here as
        they come: an answer that shows everything up to the peer's position applied here settles that
        peer at once; only a peer whose entries are missing here gets a pull (a task of its own)."""
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
        order = sorted(peers)
        self._turn = (self._turn + 1) % len(order)
        order = order[self._turn :] + order[: self._turn]
        asked: list[int] = []
        # what each outstanding future is: (peer, the positions this node sent — for a question, or for a
        # wait for this node's own commits: then also the answer —, or None for a pull)
        pending: dict[asyncio.Future[Any], tuple[int, _Sent | None]] = {}
        waiter = _Waiter()

        def ask(n: int) -> None:
            for peer in order[len(asked) : len(asked) + n]:
                asked.append(peer)
                fut, known = self._ask(peer, peers[peer], dbs, waiter.wake)
                pending[fut] = (peer, _Sent(known))

        ask(len(order) if self.hedge <= 0 else need + self.spare)
        done_peers: set[int] = set()
        why: dict[int, str] = {}
        try:
            async with asyncio.timeout(self.timeout):
                while len(done_peers) < need:
                    if len(order) - len(asked) + len(pending) + len(done_peers) < need:
                        raise self._failure(  # the rest cannot make up the count
                            level,
                            need,
                            total,
                            done_peers,
                            {**why, **self._quiet({p for p, _ in pending.values()})},
                            peers,
                        )
                    finished = [f for f in pending if f.done()]
                    if not finished:
                        await waiter.sleep(self.hedge if len(asked) < len(order) else None)
                        finished = [f for f in pending if f.done()]
                        if not finished:  # the first asked are slow: ask the others too
                            ask(len(order))
                            continue
                    for fut in finished:
                        peer, sent = pending.pop(fut)
                        try:
                            outcome = fut.result()
                            if sent is not None:  # an answer to log_positions, or the wait that followed it
                                if sent.answer is None:
                                    sent.answer = LogPositions.decode(outcome)
                                more = self._answered(peer, peers[peer], sent, waiter.wake)
                                if more is not None:
                                    if not isinstance(more, _Answer):  # a pull
                                        more.add_done_callback(waiter.wake)
                                        sent = None
                                    pending[more] = (peer, sent)
                                    continue
                            done_peers.add(peer)
                        except Exception as err:
                            if sent is not None and getattr(err, "code", None) == "unknown_method":
                                # a peer without log_positions (an older version): list and pull
                                listing = asyncio.ensure_future(
                                    self._catch_up_listing(peer, peers[peer], dbs)
                                )
                                listing.add_done_callback(waiter.wake)
                                pending[listing] = (peer, None)
                                continue
                            why[peer] = _reason(err)
                            ask(1)  # this one failed: ask the next one now
        except TimeoutError:
            why.update(self._quiet({p for p, _ in pending.values()}))
            self.stats.failed += 1
            raise self._failure(level, need, total, done_peers, why, peers) from None
        except ReadBarrierFailed:
            self.stats.failed += 1
            raise
        finally:
            for fut in pending:  # left to finish (pulls are progress; a late answer costs nothing)
                fut.add_done_callback(_retrieve)
            for peer, reason in why.items():
                log.debug("read barrier: node %d did not answer: %s", peer, reason)
        log.debug(
            "read barrier at %s: caught up with node(s) %s in %.1f ms",
            level,
            sorted(done_peers),
            (time.monotonic() - started) * 1000,
        )
        return len(done_peers)

    def _ask(
        self, peer: int, address: str, dbs: Collection[str] | None, wake: Callable[..., None]
    ) -> tuple[asyncio.Future[Any], dict[str, tuple[str, int]]]:
        """Send ``peer`` the barrier's one question (``log_positions``) now: the future of its answer
        (which calls ``wake`` as soon as it is set), and the positions this node told the peer it holds
        (the answer lists the entries after them)."""
        marks = self._marks.setdefault(peer, {})
        known = {db: (mark[0], mark[1]) for db, mark in marks.items() if dbs is None or db in dbs}
        req = LogPositionsRequest(None if dbs is None else sorted(dbs), known)
        transport = self.pull.transport
        start = getattr(transport, "start_call", None)  # written and flushed at once, no task
        if start is not None:
            fut = start(address, req.method, req.encode(), self.timeout, _Answer(wake))
            if fut is not None:
                return fut, known
        # not connected yet (or a transport without start_call): a task connects and sends
        task = asyncio.ensure_future(transport.send(address, req.method, req.encode(), self.timeout))
        task.add_done_callback(wake)
        return task, known

    def _answered(
        self, peer: int, address: str, sent: _Sent, wake: Callable[..., None]
    ) -> asyncio.Future[Any] | None:
        """Handle ``peer``'s answer: None when everything up to its positions is applied here; else, when
        the only entries missing are transactions PREPAREd here whose COMMIT is on its way (under load:
        committed on the peer a moment before here), a future that is set once they are applied here or
        after ``COMMIT_WAIT`` (then the answer is looked at again, ``sent.waited``); else the (shielded)
        pull that catches the rest up."""
        assert sent.answer is not None
        wanted: list[tuple[str, str, int]] = []
        waits: dict[str, list[int]] = {}
        for db, pos in sorted(sent.answer.dbs.items()):
            missing = self._missing(peer, db, pos, sent.known.get(db))
            if missing == []:
                continue
            wanted.append((db, pos.log_id, pos.last))
            if missing is not None:
                waits[db] = missing
        if not wanted:
            if sent.waited:
                self.stats.waited += 1
            else:
                self.stats.fast += 1
            return None
        prepared, memory = self.prepared, self.memory
        if (
            sent.waited
            or prepared is None
            or memory is None
            or len(waits) < len(wanted)
            or not all(prepared(t) is not None for txns in waits.values() for t in txns)
        ):
            return self._pull_shielded(peer, address, wanted)
        sent.waited = True
        fut = _Answer(wake)
        loop = asyncio.get_running_loop()
        left = [len(waits)]

        def one_db_applied() -> None:
            left[0] -= 1
            if not left[0] and not fut.done():
                fut.set_result(True)

        forget = [memory.when_applied(db, txns, one_db_applied) for db, txns in waits.items()]
        if not fut.done():

            def give_up() -> None:
                if not fut.done():
                    fut.set_result(False)

            timer = loop.call_later(COMMIT_WAIT, give_up)

            def stop_waiting(_f: asyncio.Future[Any]) -> None:
                timer.cancel()
                for f in forget:
                    f()

            fut.add_done_callback(stop_waiting)
        return fut

    def _missing(
        self, peer: int, db: str, pos: LogPosition, sent: tuple[str, int] | None
    ) -> list[int] | None:
        """What keeps ``peer``'s log of ``db`` up to ``pos.last`` from being all applied here, known
        without asking the peer again: [] — nothing (this node's mark on that log is there already, or
        the peer listed the entries after the position this node sent, ``sent``, and each is applied
        here: the mark moves to ``pos.last``); the listed transactions not applied here yet; None — it
        cannot tell (no list, another log, a mark that moved back): pull."""
        if not self.pull.databases.exists(db):
            return None
        generation = self.pull.databases.generation(db)
        marks = self._marks.setdefault(peer, {})
        mark = marks.get(db)
        if mark is None or mark[0] != pos.log_id or mark[2] != generation:
            # first use, the peer's log was replaced, or this file changed (DDL, snapshot): from the
            # persisted cursor, which only pulls advance (``LogPull``)
            mark = marks[db] = (pos.log_id, self.pull.cursor(peer, db, pos.log_id), generation)
        seq = mark[1]
        if seq >= pos.last:
            return []
        if pos.tail is None or sent is None or sent[0] != pos.log_id or sent[1] > seq:
            return None
        txns = [txn for s, txn in pos.tail if seq < s <= pos.last]
        applied = (
            self.memory.applied(db, txns)
            if self.memory is not None
            else rt.applied_of(self.pull.readers.get(db), txns)
        )
        missing = [t for t in txns if t not in applied and not self._own_unacknowledged(t)]
        if missing:
            return missing
        if marks[db][1] < pos.last:  # (a concurrent barrier may have got further already)
            marks[db] = (pos.log_id, pos.last, generation)
        return []

    def _own_unacknowledged(self, txn: int) -> bool:
        """``txn`` is coordinated by this node and not applied here yet, hence not acknowledged to its
        client yet (the coordinator applies before it answers): a read that begins now need not see it,
        and a later one will, since it will be applied here before its acknowledgement."""
        return self.node_id is not None and self.prepared is not None and self.prepared(txn) == self.node_id

    async def _catch_up_listing(self, peer: int, address: str, dbs: Collection[str] | None) -> int:
        """The barrier as peers without ``log_positions`` serve it: their log ends, then pulls."""
        req = LogDatabasesRequest()
        answer = await self.pull.transport.send(address, req.method, req.encode(), self.timeout)
        positions = LogDatabases.decode(answer).dbs
        wanted = [
            (db, log_id, last) for db, (log_id, last) in sorted(positions.items()) if dbs is None or db in dbs
        ]
        return await self._pull_shielded(peer, address, wanted)

    def _pull_shielded(
        self, peer: int, address: str, wanted: list[tuple[str, str, int]]
    ) -> asyncio.Future[int]:
        """Pull ``wanted`` from ``peer`` in a task of its own that outlives the barrier if it must (it
        is progress); the barrier waits on a shield of it."""
        pull = asyncio.ensure_future(self._pull(peer, address, wanted))
        self._background.add(pull)
        pull.add_done_callback(self._pull_done)
        return asyncio.shield(pull)

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
            if self.pull.cursor(peer, db, log_id) < last:  # else already consumed up to there
                applied += await self.pull.pull_database(peer, address, db, log_id, last)
            reached = self.pull.cursor(peer, db, log_id)
            if reached < last:
                raise RuntimeError(f"{db}: applied its log only up to seq {reached} of {last}")
            mark = self._marks.setdefault(peer, {}).get(db)
            if mark is None or mark[0] != log_id or mark[1] < reached:
                self._marks[peer][db] = (log_id, reached, self.pull.databases.generation(db))
        self.stats.pulls += 1
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


class _Sent:
    """A question to one peer as the barrier keeps it: the positions it told the peer it holds, the
    peer's answer once there, and whether this node already waited for its own commits once."""

    __slots__ = ("answer", "known", "waited")

    def __init__(self, known: dict[str, tuple[str, int]]) -> None:
        self.known = known
        self.answer: LogPositions | None = None
        self.waited = False


class _Answer(asyncio.Future[Any]):
    """The future of a barrier's question that wakes the barrier the moment the answer is set: a plain
    future's done callbacks run one event-loop iteration later, and under load an iteration of a busy
    node is milliseconds."""

    def __init__(self, wake: Callable[[], None]) -> None:
        super().__init__()
        self._wake = wake

    def set_result(self, result: Any, /) -> None:
        super().set_result(result)
        self._wake()

    def set_exception(self, exception: BaseException | type[BaseException], /) -> None:
        super().set_exception(exception)
        self._wake()


class _Waiter:
    """What a barrier sleeps on until an answer (``wake``) or the hedge delay."""

    def __init__(self) -> None:
        self._fut: asyncio.Future[None] | None = None

    def wake(self, *_: Any) -> None:
        if self._fut is not None and not self._fut.done():
            self._fut.set_result(None)

    async def sleep(self, timeout: float | None) -> None:
        loop = asyncio.get_running_loop()
        self._fut = loop.create_future()
        timer = None if timeout is None else loop.call_later(timeout, self.wake)
        try:
            await self._fut
        finally:
            self._fut = None
            if timer is not None:
                timer.cancel()


def _retrieve(fut: asyncio.Future[Any]) -> None:
    """Retrieve a dropped future's outcome (asyncio logs an exception nobody retrieved)."""
    if not fut.cancelled():
        fut.exception()


def _reason(err: BaseException) -> str:
    if isinstance(err, m.MessageError):
        return f"refused: {err}"
    if isinstance(err, (ConnectionError, OSError)):
        return f"unreachable ({err or type(err).__name__})"
    if isinstance(err, TimeoutError):
        return "timed out"
    return str(err) or type(err).__name__
