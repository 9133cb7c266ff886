"""One sink's publishing loop on one node.

Each round, per database the sink's filters admit:

1. **own**: the commit-log entries after the sink's cursor; those this node coordinated (``origin`` =
   this node) become events, in log order, published as one batch; then the cursor moves past
   everything read. The coordinator applies its own transactions locally before acknowledging them,
   so every acknowledged write of this node is in this log.
2. **takeover**: when this node is the lowest-numbered ALIVE member, the transactions of every member
   that is not ALIVE, from this node's own copy of the log, committed at or after the watermark that
   member last reported (it had published everything it coordinated before it), including ones that
   arrive later by anti-entropy. The same events may already have been published by that member: they
   carry the same ``event_id`` (``{db}:{txn}:{row}``), so a deduplicating broker (NATS ``Nats-Msg-Id``)
   or consumer drops them.

A failed publish (``SinkUnavailable``) is retried with exponential backoff (``retry_initial_ms`` times
``retry_multiplier`` up to ``retry_max_ms``), for ever: nothing moves a cursor past an unpublished event.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import apsw

from marmot.config_schema import SinkConfig
from marmot.publisher import source
from marmot.publisher.envelope import EnvelopeBuilder
from marmot.publisher.sink import OutboundMessage, Sink, SinkUnavailable
from marmot.publisher.state import PublisherState
from marmot.replication.messages import MessageError, decode_body
from marmot.storage import replication_tables as rt

log = logging.getLogger("marmot.publisher")

PERSIST_EVERY_S = 0.2  # a cursor move is written to disk at most this often (and at stop)


@dataclass
class SinkStats:
    """Running totals and the latest backlog, for /admin/publisher and the metrics."""

    published: int = 0
    takeover_published: int = 0
    snapshot_published: int = 0
    errors: int = 0
    retries: int = 0
    lost_transactions: int = 0
    connected: bool = False
    last_error: str = ""
    last_publish_ns: int = 0
    backlog: dict[str, tuple[int, float]] = field(default_factory=dict)  # db -> (transactions, seconds)
    takeovers: list[int] = field(default_factory=list)


class Cluster:
    """What the worker needs to know about the cluster (node.py adapts gossip to it)."""

    def __init__(self, node_id: int, states: Callable[[], dict[int, str]]) -> None:
        self.node_id = node_id
        self.states = states

    def self_alive(self) -> bool:
        """ALIVE: admitted and caught up with its peers (a restarted node is not, until anti-entropy says
        so), which is when a first snapshot of its copy shows what the cluster committed."""
        return self.states().get(self.node_id) == "ALIVE"

    def takeover_origins(self) -> list[int]:
        """The members whose transactions this node publishes besides its own: every member that is not
        ALIVE, when this node is the lowest-numbered ALIVE one (otherwise none)."""
        states = self.states()
        alive = [n for n, s in states.items() if s == "ALIVE"] + [self.node_id]
        if min(alive) != self.node_id:
            return []
        return sorted(n for n, s in states.items() if s != "ALIVE" and n != self.node_id)


class SinkWorker:
    def __init__(
        self,
        cfg: SinkConfig,
        sink: Sink,
        builder: EnvelopeBuilder,
        *,
        state: PublisherState,
        cluster: Cluster,
        databases: Callable[[], list[str]],
        reader: Callable[[str], apsw.Connection],
        watermark_margin_ns: int,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.cfg = cfg
        self.sink = sink
        self.builder = builder
        self.state = state
        self.cluster = cluster
        self.databases = databases
        self.reader = reader
        self.margin_ns = watermark_margin_ns
        self.clock_ns = clock_ns
        self.stats = SinkStats()
        self.cursors: dict[tuple[str, str], int] = {}  # (db, log id) -> seq published through (in memory)
        self._persisted: dict[tuple[str, str], int] = {}
        self._fresh: set[tuple[str, str]] = set()  # logs first seen without a cursor (no loss to report)
        self._last_persist = 0.0
        self._new_sink = state.since(cfg.name) is None
        self._taking_over: set[int] = set()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    # -- filters --------------------------------------------------------------------------------

    def wants_db(self, db: str) -> bool:
        return any(fnmatch.fnmatchcase(db, p) for p in self.cfg.filter_databases)

    def wants_table(self, table: str) -> bool:
        return any(fnmatch.fnmatchcase(table, p) for p in self.cfg.filter_tables)

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        if self._new_sink and self.cfg.snapshot_mode != "initial":
            # the sink starts with the node: its starting point is the end of every log now, whether
            # or not the broker is reachable yet (``_first_run`` without a snapshot does not publish)
            self._start_at_end()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"publisher-{self.cfg.name}")

    def kick(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        self._persist(force=True)
        with contextlib.suppress(Exception):
            await self.sink.close()

    async def _run(self) -> None:
        delay = self.cfg.retry_initial_ms / 1000
        poll = self.cfg.poll_interval_ms / 1000
        while True:
            try:
                if self._new_sink and not self.cluster.self_alive():
                    await asyncio.sleep(poll)  # the snapshot waits until this copy has caught up
                    continue
                if not self.stats.connected:
                    await self.sink.start()
                    self.stats.connected = True
                    log.info("publisher sink %s connected", self.cfg.name)
                if self._new_sink:
                    await self._first_run()
                moved = await self.round()
                delay = self.cfg.retry_initial_ms / 1000
                if not moved:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), poll)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # SinkUnavailable, or a bug: either way retry later, never skip
                self.stats.errors += 1
                self.stats.retries += 1
                self.stats.connected = False
                self.stats.last_error = f"{type(e).__name__}: {e}"
                if isinstance(e, SinkUnavailable):
                    log.warning("publisher sink %s: %s; retrying in %.1f s", self.cfg.name, e, delay)
                else:
                    log.exception("publisher sink %s failed; retrying in %.1f s", self.cfg.name, delay)
                with contextlib.suppress(Exception):
                    await self.sink.close()
                await asyncio.sleep(delay)
                delay = min(delay * self.cfg.retry_multiplier, self.cfg.retry_max_ms / 1000)

    # -- one round ------------------------------------------------------------------------------

    async def round(self) -> bool:
        """Publish what is pending in every database; True when anything was read."""
        moved = False
        origins = self.cluster.takeover_origins()
        for back in self._taking_over - set(origins):
            self.state.drop_takeovers(self.cfg.name, back)
        if set(origins) != self._taking_over:
            log.info("publisher sink %s: publishing for members %s (not ALIVE)", self.cfg.name, origins)
        self._taking_over = set(origins)
        self.stats.takeovers = origins
        for db in self.databases():
            if not self.wants_db(db):
                continue
            try:
                conn = self.reader(db)
            except LookupError:  # dropped since the listing
                continue
            moved |= await self._own(db, conn)
            for origin in origins:
                moved |= await self._takeover(db, conn, origin)
        self._persist()
        return moved

    def _cursor(self, db: str, lid: str, conn: apsw.Connection) -> int:
        cur = self.cursors.get((db, lid))
        if cur is None:
            stored = self.state.cursor(self.cfg.name, db, lid)
            # a database this sink has not seen: all of its log (it was created after the sink started,
            # or its file was replaced by a snapshot whose log is new here)
            cur = stored if stored is not None else 0
            if stored is None:
                self._fresh.add((db, lid))
            self.cursors[(db, lid)] = self._persisted[(db, lid)] = cur
        return cur

    def _decode(self, db: str, row: source.LogRow) -> list[OutboundMessage]:
        try:
            body = decode_body(row.payload)
        except MessageError as e:  # cannot happen for a row the applier wrote; never stop on one
            log.error("publisher: %s seq %d (txn %d) unreadable, skipped: %s", db, row.seq, row.txn_id, e)
            return []
        if not body.changes:
            return []  # DDL and database operations: later events' schemas show their effect
        return self.builder.change_messages(db, row.txn_id, row.wall, row.seq, body.changes, self.wants_table)

    async def _own(self, db: str, conn: apsw.Connection) -> bool:
        lid = rt.log_id(conn)
        cur = self._cursor(db, lid, conn)
        rows = source.entries_after(conn, cur, self.cfg.batch_size)
        if not rows:
            return False
        if rows[0].seq > cur + 1 and (db, lid) not in self._fresh:
            lost = rows[0].seq - cur - 1
            self.stats.lost_transactions += lost
            log.error(
                "publisher sink %s: %s log positions %d..%d were collected before they were published "
                "(max_backlog_transactions exceeded); those events are missing from the sink",
                self.cfg.name, db, cur + 1, rows[0].seq - 1,
            )  # fmt: skip
        me = self.cluster.node_id
        msgs: list[OutboundMessage] = []
        for row in rows:
            if row.origin == me:
                msgs.extend(self._decode(db, row))
        if msgs:
            await self.sink.publish(msgs)
            self.stats.published += len(msgs)
            self.stats.last_publish_ns = self.clock_ns()
        self.cursors[(db, lid)] = rows[-1].seq
        self._fresh.discard((db, lid))
        return True

    async def _takeover(self, db: str, conn: apsw.Connection, origin: int) -> bool:
        lid = rt.log_id(conn)
        name = self.cfg.name
        after = self.state.takeover(name, db, origin, lid) or 0
        floor = self.state.watermark(name, db, origin) or 0
        rows, reached = source.entries_of(conn, origin, after, floor, self.cfg.batch_size)
        if reached == after:
            return False
        msgs: list[OutboundMessage] = []
        for row in rows:
            msgs.extend(self._decode(db, row))
        if msgs:
            await self.sink.publish(msgs)
            self.stats.published += len(msgs)
            self.stats.takeover_published += len(msgs)
            self.stats.last_publish_ns = self.clock_ns()
        self.state.set_takeover(name, db, origin, lid, reached)
        return True

    def _start_at_end(self) -> None:
        for db in self.databases():
            if not self.wants_db(db):
                continue
            try:
                conn = self.reader(db)
            except LookupError:
                continue
            lid = rt.log_id(conn)
            end = rt.last_seq(conn)
            self.cursors[(db, lid)] = self._persisted[(db, lid)] = end
            self.state.set_cursor(self.cfg.name, db, lid, end)
        self.state.set_since(self.cfg.name, self.clock_ns())
        self._new_sink = False

    async def _first_run(self) -> None:
        """A sink new on this node starts at the end of every existing log, after emitting the rows
        those logs led to (``snapshot_mode = "initial"``): one read transaction per database, so the
        rows and the log position are the same moment and no transaction falls between them."""
        for db in self.databases():
            if not self.wants_db(db):
                continue
            try:
                conn = self.reader(db)
            except LookupError:
                continue
            with conn:  # one read transaction: rows and log end agree
                lid = rt.log_id(conn)
                end = rt.last_seq(conn)
                msgs: list[OutboundMessage] = []
                if self.cfg.snapshot_mode == "initial":
                    for table in source.user_tables(conn):
                        if not self.wants_table(table):
                            continue
                        for r in source.snapshot_rows(conn, table):
                            msgs.append(
                                self.builder.snapshot_message(db, table, r.key, r.row, r.version, end)
                            )
            for start in range(0, len(msgs), max(self.cfg.batch_size, 1)):
                await self.sink.publish(msgs[start : start + self.cfg.batch_size])
                self.stats.published += len(msgs[start : start + self.cfg.batch_size])
                self.stats.snapshot_published += len(msgs[start : start + self.cfg.batch_size])
            self.cursors[(db, lid)] = end
            self.state.set_cursor(self.cfg.name, db, lid, end)
            self._persisted[(db, lid)] = end
        self.state.set_since(self.cfg.name, self.clock_ns())
        self._new_sink = False
        if self.cfg.snapshot_mode == "initial":
            log.info("publisher sink %s: initial snapshot published", self.cfg.name)

    def _persist(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_persist < PERSIST_EVERY_S:
            return
        self._last_persist = now
        changed = [(k, v) for k, v in self.cursors.items() if self._persisted.get(k) != v]
        if not changed:
            return
        with self.state.conn:
            for (db, lid), seq in changed:
                self.state.set_cursor(self.cfg.name, db, lid, seq)
        for k, v in changed:
            self._persisted[k] = v

    # -- what peers and GC ask ------------------------------------------------------------------

    def persisted_cursor(self, db: str, lid: str) -> int | None:
        """The durable cursor (what survives a crash): GC keeps every entry after it."""
        got = self._persisted.get((db, lid))
        return got if got is not None else self.state.cursor(self.cfg.name, db, lid)

    def watermark(self, db: str, conn: apsw.Connection) -> int:
        """Commit wall ns before which every transaction this node coordinated in ``db`` is published:
        the oldest unpublished one, or (none pending) now minus a margin covering transactions still
        between their commit timestamp and their local apply."""
        floor = self.clock_ns() - self.margin_ns
        lid = rt.log_id(conn)
        cur = self.persisted_cursor(db, lid)
        if cur is None:
            return 0
        _count, oldest = source.pending_of(conn, self.cluster.node_id, cur)
        return min(floor, oldest) if oldest is not None else floor

    def refresh_backlog(self) -> dict[str, tuple[int, float]]:
        """Per database: this node's unpublished transactions and the age of the oldest (seconds)."""
        out: dict[str, tuple[int, float]] = {}
        now = self.clock_ns()
        for db in self.databases():
            if not self.wants_db(db):
                continue
            try:
                conn = self.reader(db)
            except LookupError:
                continue
            lid = rt.log_id(conn)
            cur = self.cursors.get((db, lid), self.state.cursor(self.cfg.name, db, lid) or 0)
            count, oldest = source.pending_of(conn, self.cluster.node_id, cur)
            out[db] = (count, max(0.0, (now - oldest) / 1e9) if oldest is not None else 0.0)
        self.stats.backlog = out
        return out

    def status(self) -> dict[str, Any]:
        s = self.stats
        return {
            "name": self.cfg.name,
            "type": self.cfg.type,
            "topic_prefix": self.cfg.topic_prefix,
            "connected": s.connected,
            "events_published": s.published,
            "takeover_events_published": s.takeover_published,
            "snapshot_events_published": s.snapshot_published,
            "errors": s.errors,
            "retries": s.retries,
            "lost_transactions": s.lost_transactions,
            "last_error": s.last_error,
            "publishing_for": s.takeovers,
            "backlog": {
                db: {"transactions": n, "seconds": round(sec, 3)} for db, (n, sec) in s.backlog.items()
            },
        }
