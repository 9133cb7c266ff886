"""A replica following a cluster: choose a source node, bootstrap each database, stream, fail over.

Why this shape: a replica applies exactly what members apply, the same way — it pulls a cluster node's
commit log with the members' ``LogPull`` (``replication/catchup/log_pull.py``) and applies through the
same ``ApplyQueues``; what is new here is only *whom* it pulls from and *how often*:

* **Source.** One cluster node at a time. ``replica.cluster_nodes`` on a follow address (or on a node
  learnt from one) says who answers and lists the members; the list is refreshed every
  ``discovery_interval_seconds`` and is the failover order.
* **Bootstrap and streaming are one loop.** Every ``poll_interval`` (50 ms) the replica asks its source for its log
  positions (``log_databases``, one small RPC) and pulls each followed database whose source log moved
  past the replica's cursor. ``LogPull`` decides per database between a snapshot and replay, as it does
  for members: no local data, the source's log collected past the cursor, or more than
  ``delta_sync_threshold_transactions`` behind -> snapshot (from the node's snapshot cache); else
  replay. At most ``snapshot_concurrency`` databases bootstrap at once.
* **New databases** are taken up every ``database_discovery_interval_seconds`` (filtered by
  ``replicate_databases`` glob patterns; ``__marmot_system`` never).
* **Failover.** A failed call to the source (refused, timed out, lost) drops it at once and the next
  candidate is tried; when no known node answers, attempts back off from ``reconnect_interval_seconds``
  doubling to ``reconnect_max_backoff_seconds``. Past ``failover_timeout_seconds`` without a source the
  replica reports STALE (and keeps trying).
* **No gap, no duplicate after a failover.** Cursors are per source log (``pull:<node>:<db>:<log id>``
  in the replica's node state). On a node it never followed the cursor is 0, so the replica lists that
  node's whole retained log and fetches only the transactions it has not applied (the applied markers
  of ``__marmot_txn_log`` say which): nothing is applied twice, and nothing is skipped because the
  listing starts at the beginning. Should that node have collected part of its log already and the
  replica lack something in what is left, ``LogPull`` takes a snapshot instead (the gap rule above).
  A restarted replica resumes from its persisted cursor on the same source: no snapshot while the
  source's log still holds that position.
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

from marmot import failpoints
from marmot.config import Config
from marmot.replica import messages as rm
from marmot.replica.transport import ReplicaTransport
from marmot.replication.background import stop_task
from marmot.replication.catchup.log_pull import LogPull
from marmot.replication.catchup.sync_messages import LogDatabases, LogDatabasesRequest
from marmot.replication.messages import versioned
from marmot.storage.databases import SYSTEM_DATABASE

log = logging.getLogger("marmot.replica")

INITIALIZING = "INITIALIZING"
BOOTSTRAPPING = "BOOTSTRAPPING"
STREAMING = "STREAMING"
RECONNECTING = "RECONNECTING"
STALE = "STALE"
LAST_SOURCE_KEY = "replica:last_source"  # node state: the address of the node followed last
STATES = (INITIALIZING, BOOTSTRAPPING, STREAMING, RECONNECTING, STALE)


@dataclass(frozen=True)
class FollowSettings:
    """``[replica]`` as the follower uses it (seconds), plus the loop's own timings."""

    follow_addresses: tuple[str, ...]
    patterns: tuple[str, ...] = ()
    discovery_interval: float = 30.0
    failover_timeout: float = 60.0
    reconnect_interval: float = 5.0
    reconnect_max_backoff: float = 30.0
    initial_sync_timeout: float = 1800.0
    database_discovery_interval: float = 10.0
    snapshot_concurrency: int = 3
    poll_interval: float = 0.05  # how often the source's log positions are asked for
    call_timeout: float = 3.0  # one discovery / positions call; a source silent this long is failed over
    heartbeat_interval: float = 1.0

    @classmethod
    def from_config(cls, cfg: Config) -> FollowSettings:
        rcfg = cfg.replica
        return cls(
            follow_addresses=tuple(rcfg.follow_addresses),
            patterns=tuple(rcfg.replicate_databases),
            discovery_interval=float(rcfg.discovery_interval_seconds),
            failover_timeout=float(rcfg.failover_timeout_seconds),
            reconnect_interval=float(rcfg.reconnect_interval_seconds),
            reconnect_max_backoff=float(rcfg.reconnect_max_backoff_seconds),
            initial_sync_timeout=float(rcfg.initial_sync_timeout_minutes) * 60,
            database_discovery_interval=float(rcfg.database_discovery_interval_seconds),
            snapshot_concurrency=rcfg.snapshot_concurrency,
        )


def replicated(patterns: tuple[str, ...], db: str) -> bool:
    """Whether database ``db`` is followed: it matches a glob pattern (or there are none); never the
    system database."""
    if db == SYSTEM_DATABASE:
        return False
    return not patterns or any(fnmatch.fnmatchcase(db, p) for p in patterns)


@dataclass
class DbFollow:
    """One followed database: its position on the current source's log and how fresh it is."""

    name: str
    log_id: str = ""
    position: int = 0  # the source log's seq the replica consumed up to
    # (source node, log id) ``position`` was read for: the persisted cursor moves only in ``_pull``, so
    # the 50 ms poll reads it from the node state only when this changes (None: read it again)
    position_of: tuple[int, str] | None = None
    source_last: int = 0  # the source log's last seq at the last poll
    bootstrapped: bool = False  # caught up with a source at least once since this process started
    caught_up_at: float | None = None  # time.time() of the last poll that found it caught up
    pull: asyncio.Task[None] | None = None


@dataclass
class Follower:
    """The follow loop and its state (``status()`` is ``/admin/replica/status``)."""

    settings: FollowSettings
    pull: LogPull
    transport: ReplicaTransport
    node_id: int
    identity: Callable[[], tuple[str, str]]  # (admin address, MySQL address) of this replica
    state: str = INITIALIZING
    source: rm.NodeInfo | None = None
    nodes: dict[int, rm.NodeInfo] = field(default_factory=dict)  # the cluster, as last discovered
    dbs: dict[str, DbFollow] = field(default_factory=dict)
    failovers: int = 0
    started: float = field(default_factory=time.monotonic)
    started_wall: float = field(default_factory=time.time)
    lost_at: float | None = None  # monotonic time the source was lost (None: connected, or never was)
    last_contact: float | None = None  # monotonic time of the last answered poll
    _failure: tuple[int, BaseException] | None = None
    _failed_source: int | None = None
    _next_discovery: float = 0.0
    _next_db_discovery: float = 0.0
    _unholdable: set[str] = field(default_factory=set)  # names this replica cannot hold (logged once)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _bootstrap_limit: asyncio.Semaphore | None = None
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def start(self) -> None:
        self._bootstrap_limit = asyncio.Semaphore(max(1, self.settings.snapshot_concurrency))
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run()), loop.create_task(self._heartbeats())]

    async def stop(self) -> None:
        for f in self.dbs.values():
            await stop_task(f.pull)
            f.pull = None
        for task in self._tasks:
            await stop_task(task)
        self._tasks = []

    # -- the loop -------------------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = self.settings.reconnect_interval
        while True:
            try:
                if self.source is None:
                    if not await self._connect():
                        self._update_state()
                        log.info("replica: no cluster node answered; next attempt in %.1fs", backoff)
                        await asyncio.sleep(backoff)
                        backoff = min(backoff * 2, self.settings.reconnect_max_backoff)
                        continue
                    backoff = self.settings.reconnect_interval
                await self._poll()
                self._update_state()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the source failed (refused, timed out, lost): fail over
                self._lose_source(e)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_interval)
            self._wake.clear()

    def _candidates(self) -> list[str]:
        """Addresses to try, in order: the source this replica followed last (persisted: a restarted
        replica resumes on the log its cursors belong to), live known nodes (the failed source last),
        then the configured follow addresses, then the other known nodes."""
        alive = sorted((n for n in self.nodes.values() if n.state == "ALIVE"), key=lambda n: n.node_id)
        alive.sort(key=lambda n: n.node_id == self._failed_source)
        last = self.pull.state.get(LAST_SOURCE_KEY)
        order = [last] if isinstance(last, str) and last and self._failed_source is None else []
        order += [n.address for n in alive if n.address not in order]
        order += [a for a in self.settings.follow_addresses if a not in order]
        order += [n.address for n in self.nodes.values() if n.address not in order]
        return order

    async def _connect(self) -> bool:
        """Find a source: the first candidate that answers and calls itself ALIVE (a node still joining
        or catching up says JOINING); one that answers otherwise is taken only when none is ALIVE."""
        fallback: tuple[str, rm.ClusterNodes] | None = None
        for address in self._candidates():
            try:
                answer = rm.ClusterNodes.decode(
                    await self.transport.send(
                        address, rm.CLUSTER_NODES, versioned({}), self.settings.call_timeout
                    )
                )
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.debug("replica: %s did not answer: %s", address, e)
                continue
            me = next((n for n in answer.nodes if n.node_id == answer.node_id), None)
            if me is not None and me.state != "ALIVE":
                fallback = fallback or (address, answer)
                continue
            self._follow(address, answer)
            return True
        if fallback is not None:
            self._follow(*fallback)
            return True
        if self.lost_at is None:
            self.lost_at = time.monotonic()
        return False

    def _follow(self, address: str, answer: rm.ClusterNodes) -> None:
        """Make the node that gave ``answer`` at ``address`` the source."""
        self._learn(answer)
        me = self.nodes.get(answer.node_id)
        self.source = rm.NodeInfo(
            answer.node_id, address, me.mysql_address if me else "", me.state if me else "ALIVE"
        )
        now = time.monotonic()
        if self._failed_source is not None and self._failed_source != answer.node_id:
            self.failovers += 1
        if self.lost_at is not None:
            log.warning(
                "replica: now following node %d at %s (%.2fs after the previous source was lost)",
                answer.node_id,
                address,
                now - self.lost_at,
            )
        else:
            log.info("replica: following node %d at %s", answer.node_id, address)
        self.lost_at = None
        self._failure = None
        self._failed_source = None
        self.pull.state.set(LAST_SOURCE_KEY, address)
        self._next_discovery = now + self.settings.discovery_interval
        self._next_db_discovery = now  # take up every database at once

    def _learn(self, answer: rm.ClusterNodes) -> None:
        self.nodes = {n.node_id: n for n in answer.nodes}

    def _lose_source(self, err: BaseException) -> None:
        src = self.source
        if src is None:
            return
        log.warning(
            "replica: source node %d (%s) failed: %s; failing over",
            src.node_id,
            src.address,
            err or type(err).__name__,
        )
        self._failed_source = src.node_id
        self.source = None
        self.lost_at = time.monotonic()
        for f in self.dbs.values():
            if f.pull is not None and not f.pull.done():
                f.pull.cancel()
            f.pull = None
            f.position_of = None  # a pull may have moved the cursor before it was cancelled
        self._update_state()

    async def _poll(self) -> None:
        """One round with the source: refresh the node list when due, list its log positions, start a
        pull of each followed database that is behind (at most one per database at a time)."""
        src = self.source
        assert src is not None
        if self._failure is not None and self._failure[0] == src.node_id:
            raise self._failure[1]
        now = time.monotonic()
        if now >= self._next_discovery:
            self._learn(
                rm.ClusterNodes.decode(
                    await self.transport.send(
                        src.address, rm.CLUSTER_NODES, versioned({}), self.settings.call_timeout
                    )
                )
            )
            self._next_discovery = now + self.settings.discovery_interval
        req = LogDatabasesRequest()
        listing = LogDatabases.decode(
            await self.transport.send(src.address, req.method, req.encode(), self.settings.call_timeout)
        )
        self.last_contact = time.monotonic()
        discover = now >= self._next_db_discovery
        if discover:
            self._next_db_discovery = now + self.settings.database_discovery_interval
        for db, (log_id, last) in sorted(listing.dbs.items()):
            if not replicated(self.settings.patterns, db) or db in self._unholdable:
                continue
            f = self.dbs.get(db)
            if f is None:
                if not discover:
                    continue  # a new database: taken up at the next discovery
                f = self.dbs[db] = DbFollow(db)
                log.info("replica: following database %s", db)
            if f.pull is not None and not f.pull.done():
                continue
            f.log_id, f.source_last = log_id, last
            if f.position_of != (src.node_id, log_id):
                f.position = self.pull.cursor(src.node_id, db, log_id)
                f.position_of = (src.node_id, log_id)
            if f.position >= last and f.bootstrapped:
                f.caught_up_at = time.time()
                continue
            f.pull = asyncio.get_running_loop().create_task(self._pull(src, f))

    async def _pull(self, src: rm.NodeInfo, f: DbFollow) -> None:
        try:
            await failpoints.hit("replica_before_pull")  # tests: hold a replica's lag (forwarded writes)
            if not self.pull.ensure_database(src.node_id, f.name):
                log.warning(
                    "replica: database %s of node %d is a name this replica cannot hold: not followed",
                    f.name,
                    src.node_id,
                )
                self._unholdable.add(f.name)
                self.dbs.pop(f.name, None)
                return
            if f.bootstrapped:
                await self.pull.pull_database(src.node_id, src.address, f.name, f.log_id, f.source_last)
            else:
                assert self._bootstrap_limit is not None
                async with self._bootstrap_limit:
                    await self.pull.pull_database(src.node_id, src.address, f.name, f.log_id, f.source_last)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._failure = (src.node_id, e)
            f.position_of = None  # it may have moved part of the way
            self._wake.set()
            return
        f.position = self.pull.cursor(src.node_id, f.name, f.log_id)
        f.position_of = (src.node_id, f.log_id)
        if f.position >= f.source_last:
            if not f.bootstrapped:
                log.info(
                    "replica: database %s caught up with node %d (log seq %d)",
                    f.name,
                    src.node_id,
                    f.position,
                )
            f.bootstrapped = True
            f.caught_up_at = time.time()
            self._wake.set()  # more may have arrived meanwhile: look again now

    def _update_state(self) -> None:
        now = time.monotonic()
        if self.source is None:
            never = self.last_contact is None
            lost_for = now - (self.lost_at if self.lost_at is not None else self.started)
            if lost_for > self.settings.failover_timeout:
                self.state = STALE
            else:
                self.state = INITIALIZING if never else RECONNECTING
            return
        if any(not f.bootstrapped for f in self.dbs.values()) or self.last_contact is None:
            late = now - self.started > self.settings.initial_sync_timeout
            self.state = STALE if late else BOOTSTRAPPING
            return
        self.state = STREAMING

    # -- registration with the cluster ----------------------------------------------------------

    def heartbeat(self) -> rm.Heartbeat:
        address, mysql = self.identity()
        return rm.Heartbeat(
            address,
            mysql,
            self.node_id,
            self.source.node_id if self.source is not None else 0,
            self.state,
            {
                f.name: rm.DatabasePosition(f.position, max(0, f.source_last - f.position), self._lag(f))
                for f in self.dbs.values()
            },
        )

    async def _heartbeats(self) -> None:
        """Every ``heartbeat_interval``, tell every known node (and the source) where this replica is."""
        while True:
            await asyncio.sleep(self.settings.heartbeat_interval)
            self._update_state()
            payload = self.heartbeat().encode()
            addresses = {n.address for n in self.nodes.values() if n.state == "ALIVE"}
            if self.source is not None:
                addresses.add(self.source.address)

            await asyncio.gather(*(self._send_heartbeat(a, payload) for a in sorted(addresses)))

    async def _send_heartbeat(self, address: str, payload: Any) -> None:
        with contextlib.suppress(Exception):
            await self.transport.send(address, rm.HEARTBEAT, payload, self.settings.heartbeat_interval)

    # -- what the admin API shows ---------------------------------------------------------------

    def _lag(self, f: DbFollow) -> float:
        """Seconds since a poll last found the replica caught up with ``f`` (since it started, if none
        has): about one poll interval while streaming; it grows while the source is lost or far ahead."""
        since = f.caught_up_at if f.caught_up_at is not None else self.started_wall
        return round(max(0.0, time.time() - since), 3)

    def status(self) -> dict[str, Any]:
        self._update_state()
        src = self.source
        now = time.monotonic()
        return {
            "node_id": self.node_id,
            "state": self.state,
            "source": None if src is None else {"node_id": src.node_id, "address": src.address},
            "failovers": self.failovers,
            "seconds_since_contact": None if self.last_contact is None else round(now - self.last_contact, 3),
            "cluster_nodes": [n.encode() for n in sorted(self.nodes.values(), key=lambda n: n.node_id)],
            "replicate_databases": list(self.settings.patterns),
            "databases": [
                {
                    "database": f.name,
                    "state": STREAMING if f.bootstrapped else BOOTSTRAPPING,
                    "position": f.position,
                    "source_last_seq": f.source_last,
                    "behind_txns": max(0, f.source_last - f.position),
                    "lag_seconds": self._lag(f),
                }
                for f in sorted(self.dbs.values(), key=lambda f: f.name)
            ],
            "pull": {
                k: v
                for k, v in self.pull.stats.items()
                if k in ("applied", "pulled", "snapshots", "snapshots_failed")
            },
        }
