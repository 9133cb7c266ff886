"""Anti-entropy, first part: catch-up by pulling peers' commit logs (delta sync).

Why pull: a node that was down, partitioned or simply not in a write's quorum misses transactions; the
nodes that applied them have them in their commit log (``__marmot_txn_log``: seq, txn id, commit
timestamp, origin, encoded body). Every ``[replication] anti_entropy_interval_seconds`` each node asks
each ALIVE peer, per database, for the log after the position it reached last time (its *cursor*,
persisted per peer, database and peer log id), keeps the transactions it has not applied, fetches
their bodies and applies them through the normal apply queue — last-writer-wins with applied markers,
so a transaction fetched from two peers, or already applied by 2PC, is applied once, and order across
peers does not matter. Within one peer's log, order is that peer's apply order, so a DDL comes before
the rows that need it.

Listing is cheap (seq and txn id, about 20 bytes per transaction); bodies are only fetched for what is
missing, in batches of ``FETCH_BATCH``. Catch-up is rate-limited to ``max_rate`` transactions per
second per database so a recovering node keeps serving live traffic; the apply queue interleaves live
commits with catch-up batches (live commits take the writer lock's priority lane like any apply).

Databases a peer has and this node lacks (created while it was away) are created first. Not here yet
(later parts of the anti-entropy issue): snapshots for lags beyond the log, GC of the log, digests.

Cursor validity: a cursor belongs to one peer *log* (``log_id`` of the peer's database file). If the
peer's file was replaced (data directory wiped, snapshot restore), its log restarts at seq 1 and the
cursor is reset instead of skipping everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from marmot.hlc import HLC, Timestamp
from marmot.replication import messages as m
from marmot.replication.applier import ApplyItem
from marmot.replication.apply_queue import ApplyQueues
from marmot.replication.gc import consumed_key
from marmot.storage import replication_tables as rt
from marmot.storage.databases import DatabaseManager, InvalidDatabaseName
from marmot.storage.node_state import NodeState

log = logging.getLogger("marmot.replication.anti_entropy")
LIST_LIMIT = 5000
FETCH_BATCH = 200
Send = Callable[[str, str, Any, float], Awaitable[Any]]


class AntiEntropy:
    """Pulls missing transactions from peers (client side) and serves this node's log (server side)."""

    def __init__(self, node_id: int, hlc: HLC, databases: DatabaseManager, queues: ApplyQueues, send: Send,
                 *, peers: Callable[[], dict[int, str]], interval: float, timeout: float = 10.0,
                 max_rate: float = 5000.0, on_database_created: Callable[[str], None] | None = None) -> None:
        self.node_id = node_id
        self.hlc = hlc
        self.databases = databases
        self.queues = queues
        self.send = send
        self.peers = peers
        self.interval = interval
        self.timeout = timeout
        self.max_rate = max_rate
        self.on_database_created = on_database_created
        self.state = NodeState(databases.system)
        self._readers: dict[str, Any] = {}
        self._task: asyncio.Task[None] | None = None
        self._kick = asyncio.Event()
        self.stats = {"rounds": 0, "pulled": 0, "applied": 0, "failed": 0, "databases_created": 0}
        # (peer, db) -> (behind in transactions at the last round, time of that round) for lag reporting
        self.lag: dict[tuple[int, str], tuple[int, float]] = {}

    # -- server side ----------------------------------------------------------------------------

    def _reader(self, db: str) -> Any:
        conn = self._readers.get(db)
        if conn is None:
            conn = self._readers[db] = self.databases.open(db)
        return conn

    def forget_database(self, db: str) -> None:
        conn = self._readers.pop(db, None)
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    async def handle_databases(self, payload: Any, _ctx: Any) -> Any:
        """``log_databases {}`` → ``{dbs: {name: [log_id, last_seq]}}``."""
        out: dict[str, list[Any]] = {}
        for db in self.databases.names():
            conn = self._reader(db)
            self.queues.connection(db)  # makes sure the replication tables exist
            row = conn.execute(f"SELECT MAX(seq) FROM {rt.TXN_LOG}").fetchone()
            out[db] = [rt.log_id(conn), int(row[0] or 0)]
        return {"dbs": out}

    async def handle_list(self, payload: Any, _ctx: Any) -> Any:
        """``log_list {db, after, limit, node, log_id}`` → ``{log_id, entries: [[seq, txn_id], ...], last,
        first}``. ``after`` is how far ``node`` has consumed this log (recorded for GC, when the caller's
        ``log_id`` is this log's); ``first`` is the oldest position still kept (GC)."""
        try:
            db = m.field(payload, "db", str)
            after = m.field(payload, "after", int)
            limit = max(1, min(m.field(payload, "limit", int), LIST_LIMIT))
        except m.MessageError as e:
            return {"error": str(e)}
        if not self.databases.exists(db):
            return {"error": f"unknown database {db}"}
        conn = self._reader(db)
        this_log = rt.log_id(conn)
        node = payload.get("node")
        if type(node) is int and payload.get("log_id") == this_log:
            self.state.set(consumed_key(db, node), after)
        entries = rt.log_after(conn, after, limit)
        first, last = conn.execute(f"SELECT MIN(seq), MAX(seq) FROM {rt.TXN_LOG}").fetchone()
        return {"log_id": this_log, "entries": [list(e) for e in entries], "last": int(last or 0),
                "first": int(first or 0)}

    async def handle_fetch(self, payload: Any, _ctx: Any) -> Any:
        """``log_fetch {db, seqs}`` → ``{entries: [[seq, txn_id, wall, logical, node, origin, body], ...]}``."""
        try:
            db = m.field(payload, "db", str)
            seqs = m.field(payload, "seqs", list)
            if len(seqs) > FETCH_BATCH or not all(type(s) is int for s in seqs):
                raise m.MessageError(f"seqs must be at most {FETCH_BATCH} integers")
        except m.MessageError as e:
            return {"error": str(e)}
        if not self.databases.exists(db):
            return {"error": f"unknown database {db}"}
        return {"entries": [list(e) for e in rt.log_entries(self._reader(db), seqs)]}

    def register(self, router: Any) -> None:
        router.unary("log_databases", self.handle_databases)
        router.unary("log_list", self.handle_list)
        router.unary("log_fetch", self.handle_fetch)

    # -- client side ----------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for db in list(self._readers):
            self.forget_database(db)

    def kick(self) -> None:
        """Run a round now (a peer came back, tests)."""
        self._kick.set()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), self.interval)
            self._kick.clear()
            try:
                await self.round()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("anti-entropy round failed")

    async def round(self) -> int:
        """Pull from every ALIVE peer; returns the number of transactions applied."""
        self.stats["rounds"] += 1
        applied = 0
        for peer, address in sorted(self.peers().items()):
            try:
                applied += await self._pull_peer(peer, address)
            except (ConnectionError, OSError, TimeoutError) as e:
                log.debug("anti-entropy: peer %d unreachable: %s", peer, e)
            except Exception as e:  # an RPC error from the peer: next round
                log.warning("anti-entropy with peer %d failed: %s", peer, e)
        return applied

    async def _pull_peer(self, peer: int, address: str) -> int:
        answer = await self.send(address, "log_databases", {}, self.timeout)
        dbs = answer.get("dbs") if isinstance(answer, dict) else None
        if not isinstance(dbs, dict):
            return 0
        applied = 0
        for db, info in sorted(dbs.items()):
            if type(db) is not str or not isinstance(info, list) or len(info) != 2:
                continue
            if not self.databases.exists(db):
                try:
                    if self.databases.create(db, if_not_exists=True):
                        log.info("anti-entropy: database %s exists on node %d, created here", db, peer)
                        self.stats["databases_created"] += 1
                        if self.on_database_created is not None:
                            self.on_database_created(db)
                except InvalidDatabaseName:
                    continue
            rt.ensure_tables(self.queues.connection(db))
            applied += await self._pull_database(peer, address, db, str(info[0]), int(info[1]))
        return applied

    def _cursor_key(self, peer: int, db: str, log_id: str) -> str:
        return f"pull:{peer}:{db}:{log_id}"

    async def _pull_database(self, peer: int, address: str, db: str, log_id: str, last: int) -> int:
        key = self._cursor_key(peer, db, log_id)
        cursor = int(self.state.get(key, 0) or 0)
        applied = 0
        started = time.monotonic()
        local = self.queues.connection(db)
        while True:  # at least one list per round: it also tells the peer how far this node consumed
            ans = await self.send(address, "log_list", {"db": db, "after": cursor, "limit": LIST_LIMIT,
                                                        "node": self.node_id, "log_id": log_id}, self.timeout)
            entries = ans.get("entries") if isinstance(ans, dict) else None
            first = int(ans.get("first", 0) or 0) if isinstance(ans, dict) else 0
            if first > cursor + 1 and entries:
                log.warning("anti-entropy: node %d already collected %s's log up to seq %d, this node had "
                            "consumed only %d: the transactions in between need a snapshot", peer, db,
                            first - 1, cursor)
            if not entries:
                break
            last = max(last, int(ans.get("last", 0) or 0))
            have = rt.applied_of(local, [int(e[1]) for e in entries])
            missing = [int(e[0]) for e in entries if int(e[1]) not in have]
            self.lag[(peer, db)] = (len(missing), time.time())
            for i in range(0, len(missing), FETCH_BATCH):
                chunk = missing[i:i + FETCH_BATCH]
                ok_upto = await self._fetch_and_apply(address, db, chunk)
                applied += ok_upto[1]
                if ok_upto[0] is not None:  # stopped at an entry that could not be applied yet
                    self._save(key, max(cursor, ok_upto[0] - 1))
                    return applied
                await self._pace(applied, started)
            cursor = int(entries[-1][0])
            self._save(key, cursor)
            if cursor >= last:
                break
        self.lag[(peer, db)] = (0, time.time())
        if applied:
            log.info("anti-entropy: applied %d transaction(s) of %s from node %d", applied, db, peer)
        return applied

    async def _fetch_and_apply(self, address: str, db: str, seqs: list[int]) -> tuple[int | None, int]:
        """Fetch and apply ``seqs`` in order. Returns (seq of the first entry that failed or None, applied)."""
        ans = await self.send(address, "log_fetch", {"db": db, "seqs": seqs}, self.timeout)
        rows = ans.get("entries") if isinstance(ans, dict) else None
        if not isinstance(rows, list):
            return (seqs[0], 0)
        self.stats["pulled"] += len(rows)
        applied = 0
        futures = []
        for row in rows:
            try:
                seq, txn, wall, logical, node, origin, payload = row
                ts = Timestamp(int(wall), int(logical), int(node))
                body = m.decode_body(payload)
            except (ValueError, TypeError, m.MessageError) as e:
                log.error("anti-entropy: bad log entry from %s: %s", address, e)
                return (int(row[0]) if row else seqs[0], applied)
            self.hlc.update(ts)
            item = ApplyItem(int(txn), ts, int(origin), payload, body)
            futures.append((int(seq), asyncio.ensure_future(self.queues.apply(db, item))))
        for seq, fut in futures:  # queued together: the apply queue batches them
            try:
                outcome = await fut
            except Exception as e:
                self.stats["failed"] += 1
                log.warning("anti-entropy: transaction at seq %d of %s could not be applied yet: %s", seq, db, e)
                for _, other in futures:
                    if not other.done():
                        other.cancel()
                return (seq, applied)
            if outcome.applied:
                applied += 1
                self.stats["applied"] += 1
        return (None, applied)

    async def _pace(self, applied: int, started: float) -> None:
        """Stay under ``max_rate`` transactions per second (live traffic comes first)."""
        ahead = applied / self.max_rate - (time.monotonic() - started)
        await asyncio.sleep(max(0.0, ahead))

    def _save(self, key: str, seq: int) -> None:
        self.state.set(key, seq)
