"""The node's CDC publisher: one worker per ``[[publisher.sinks]]`` entry, the watermark exchange with
peers, the hold it puts on commit-log GC, its status and its metrics.

Why the watermark exchange: a node publishes the transactions it coordinated; when it stops being ALIVE
the lowest-numbered ALIVE member publishes them for it (``worker.py``) from the point that node last
said it had reached. Every ``WATERMARK_INTERVAL_S`` each node asks its ALIVE peers for their
watermarks and keeps them on disk, so it knows that point even after a restart of its own.

Why a GC hold: ``replication/catchup/gc.py`` may delete a log entry once every member pulled it and the
minimum retention passed, or by age. An entry a sink has not published yet must stay: GC keeps every
entry after a sink's durable cursor and, for each peer, its entries after that peer's watermark (what a
takeover would need) — until a sink's backlog passes ``[publisher] max_backlog_transactions``, when GC
stops holding for that sink (a warning is logged from 80 % of the bound, an error past it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import apsw

from marmot.config import Config
from marmot.config_schema import SinkConfig
from marmot.publisher import source
from marmot.publisher.envelope import Column, ColumnLookup, EnvelopeBuilder
from marmot.publisher.metrics import PublisherMetrics
from marmot.publisher.sink import Sink, make_sink, wants_tombstones
from marmot.publisher.state import PublisherState
from marmot.publisher.worker import Cluster, SinkWorker
from marmot.startup import StartupError
from marmot.storage import replication_tables as rt
from marmot.storage.databases import DatabaseManager
from marmot.transport import Router, Transport

log = logging.getLogger("marmot.publisher")

WATERMARK_INTERVAL_S = 1.0
WATERMARK_RPC = "publisher_watermarks"
WARN_FRACTION = 0.8


def _sink(i: int, cfg: SinkConfig) -> Sink:
    """The sink of ``[[publisher.sinks]]`` entry ``i``; a type whose module is not in this build stops
    startup naming the key (the config check cannot know which sink modules are installed)."""
    try:
        return make_sink(cfg)
    except ImportError as e:
        raise StartupError(
            f"publisher.sinks[{i}].type: the {cfg.type} sink is not available in this build ({e})"
        ) from None


class Publisher:
    def __init__(
        self,
        cfg: Config,
        *,
        node_id: int,
        databases: DatabaseManager,
        reader: Callable[[str], apsw.Connection],
        transport: Transport,
        member_states: Callable[[], dict[int, str]],
        alive_peers: Callable[[], dict[int, str]],
        registry: Any = None,
    ) -> None:
        self.node_id = node_id
        self.databases = databases
        self._reader = reader
        self.transport = transport
        self.alive_peers = alive_peers
        self.max_backlog = cfg.publisher.max_backlog_transactions
        self.min_retention_ns = int(cfg.replication.gc_min_retention_hours * 3600 * 1e9)
        self.state = PublisherState(databases.system)
        # between a commit timestamp and the local apply a transaction is bounded by the write timeout
        margin_ns = int((2 * cfg.replication.write_timeout_ms / 1000 + 10) * 1e9)
        cluster = Cluster(node_id, member_states)
        self._columns: dict[str, tuple[int, dict[str, dict[str, Column]]]] = {}
        self.workers = [
            SinkWorker(
                sink_cfg,
                _sink(i, sink_cfg),
                EnvelopeBuilder(
                    sink_cfg.topic_prefix, tombstones=wants_tombstones(sink_cfg), columns=self.columns
                ),
                state=self.state,
                cluster=cluster,
                databases=self._database_names,
                reader=self.reader,
                watermark_margin_ns=margin_ns,
            )
            for i, sink_cfg in enumerate(cfg.publisher.sinks)
        ]
        self.metrics = PublisherMetrics(registry, node_id) if registry is not None else None
        self._task: asyncio.Task[None] | None = None
        self._names: tuple[float, list[str]] | None = None
        self._warned: set[tuple[str, str]] = set()

    def reader(self, db: str) -> apsw.Connection:
        """The read connection of ``db``; ``LookupError`` when it no longer exists (opening a missing
        file would create it)."""
        if not self.databases.exists(db):
            raise LookupError(db)
        return self._reader(db)

    def _database_names(self) -> list[str]:
        """The databases, listed at most once a second (a round runs per commit; ``kick`` with a
        database not in the list refreshes it at once)."""
        now = time.monotonic()
        if self._names is None or now - self._names[0] > 1.0:
            self._names = (now, self.databases.names())
        return self._names[1]

    def columns(self, db: str) -> ColumnLookup:
        """Declared columns of ``db``'s tables, re-read after every schema change (the schema version)."""
        conn = self.reader(db)
        version = rt.schema_version(conn)
        cached = self._columns.get(db)
        if cached is None or cached[0] != version:
            cached = self._columns[db] = (version, {})
        tables = cached[1]

        def lookup(table: str) -> dict[str, Column]:
            cols = tables.get(table)
            if cols is None:
                cols = tables[table] = source.declared_columns(conn, table)
            return cols

        return lookup

    # -- lifecycle ------------------------------------------------------------------------------

    def register(self, router: Router) -> None:
        router.unary(WATERMARK_RPC, self._serve_watermarks)

    def start(self) -> None:
        for w in self.workers:
            w.start()
        self._task = asyncio.get_running_loop().create_task(self._background())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        for w in self.workers:
            await w.stop()

    def kick(self, db: str) -> None:
        """Transactions were applied to ``db`` (replication's ``applied_listeners``): wake the workers."""
        if self._names is not None and db not in self._names[1]:
            self._names = None
        for w in self.workers:
            w.kick()

    # -- watermarks -----------------------------------------------------------------------------

    def watermarks(self) -> list[list[Any]]:
        out: list[list[Any]] = []
        names = self.databases.names()
        for w in self.workers:
            for db in names:
                if w.wants_db(db):
                    with contextlib.suppress(LookupError):
                        out.append([w.cfg.name, db, w.watermark(db, self.reader(db))])
        return out

    async def _serve_watermarks(self, payload: Any, ctx: Any) -> Any:
        return {"node": self.node_id, "marks": self.watermarks()}

    async def _fetch_watermarks(self) -> None:
        names = {w.cfg.name for w in self.workers}
        peers = self.alive_peers()

        async def one(nid: int, addr: str) -> None:
            try:
                ans = await self.transport.send(addr, WATERMARK_RPC, {}, 2.0)
            except Exception:
                return  # no answer: keep the last watermark we have
            if not isinstance(ans, dict) or ans.get("node") != nid or not isinstance(ans.get("marks"), list):
                return
            marks = [
                (m[0], m[1], m[2])
                for m in ans["marks"]
                if isinstance(m, list) and len(m) == 3 and m[0] in names and isinstance(m[1], str)
                and type(m[2]) is int
            ]  # fmt: skip
            if marks:
                self.state.set_watermarks(nid, marks)

        await asyncio.gather(*(one(n, a) for n, a in peers.items()))

    async def _background(self) -> None:
        while True:
            await asyncio.sleep(WATERMARK_INTERVAL_S)
            try:
                await self._fetch_watermarks()
                self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("publisher background round failed")

    # -- backlog, GC hold, status ---------------------------------------------------------------

    def refresh(self) -> None:
        """Backlog per sink, the bound's warnings, and the metrics."""
        for w in self.workers:
            backlog = w.refresh_backlog()
            for db, (count, _age) in backlog.items():
                key = (w.cfg.name, db)
                if count >= WARN_FRACTION * self.max_backlog:
                    if key not in self._warned:
                        log.warning(
                            "publisher sink %s: %d unpublished transactions in %s, %.0f%% of "
                            "max_backlog_transactions (%d); past it, log GC no longer keeps them",
                            w.cfg.name, count, db, 100 * count / self.max_backlog, self.max_backlog,
                        )  # fmt: skip
                        self._warned.add(key)
                else:
                    self._warned.discard(key)
            if self.metrics is not None:
                self.metrics.update(w.cfg.name, w.stats, self.max_backlog)

    def gc_hold(self, db: str, conn: apsw.Connection) -> int | None:
        """The lowest log position of ``db`` that GC must keep (None: no hold). Called by the log GC
        inside its write transaction, on the apply connection."""
        if not self.workers:
            return None
        lid = rt.log_id(conn)
        newest = rt.last_seq(conn)
        at_risk = time.time_ns() - self.min_retention_ns  # GC only deletes entries older than this
        holds: list[int] = []
        for w in self.workers:
            if not w.wants_db(db):
                continue
            cur = w.persisted_cursor(db, lid) or 0  # none yet: everything is still to publish
            count = max(0, newest - cur)
            if count > self.max_backlog:
                log.error(
                    "publisher sink %s: %d unpublished transactions in %s exceed max_backlog_transactions "
                    "(%d): log GC no longer keeps them", w.cfg.name, count, db, self.max_backlog,
                )  # fmt: skip
                continue
            holds.append(cur + 1)
            for origin in self.state.watermark_origins(w.cfg.name, db):
                wm = self.state.watermark(w.cfg.name, db, origin)
                if wm is None or wm >= at_risk:
                    continue  # everything that peer may still need is younger than any GC cut
                seq = source.first_seq_of(conn, origin, wm)
                if seq is None:
                    continue
                taken = self.state.takeover(w.cfg.name, db, origin, lid)
                if taken is not None:  # published here already, while that member was not ALIVE
                    seq = max(seq, taken + 1)
                if newest - seq <= self.max_backlog:  # a member gone for good must not stop GC for ever
                    holds.append(seq)
        return min(holds) if holds else None

    def status(self) -> dict[str, Any]:
        """``GET /admin/publisher``."""
        self.refresh()
        marks: dict[str, dict[str, int]] = {}
        for name, db, wm in self.watermarks():
            marks.setdefault(name, {})[db] = wm
        return {
            "node_id": self.node_id,
            "enabled": True,
            "max_backlog_transactions": self.max_backlog,
            "sinks": [w.status() for w in self.workers],
            "watermarks": marks,
            "generated_at_ms": time.time_ns() // 1_000_000,
        }
