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

Databases a peer has and this node lacks (created while it was away) are created first.

Snapshots (``catchup/snapshot.py``) replace replay when replay cannot or should not do: the peer's log no longer
holds what this node needs (GC went past the cursor: ``first > cursor + 1``), this node is more than
``delta_sync_threshold_transactions`` behind (and at least half of the first listed batch is really
missing here), or this node's copy holds no replicated transaction at all (a new node). The snapshot
is taken from that peer, installed, and the cursor on the peer's log set to the snapshot's last seq, so
delta sync continues right after it. A lag older than ``delta_sync_threshold_seconds`` (the age of the
oldest missing transaction, read from its txn id's millisecond; 0 = not used) chooses a snapshot too
(same half-missing rule); the setting also bounds GC's minimum retention (``config.py``). A file swap cannot be
merged last-writer-wins, so before a snapshot the newest ``HAVE_SAMPLE`` transactions of this node's log
are checked against the peer's (``log_have``); if the peer lacks one that is newer than the oldest entry
its log still holds, the snapshot is refused with a warning naming the database and catch-up falls back
to replay from the oldest position the peer still has (the gap is logged). Several databases of one peer
are caught up in parallel (``PARALLEL``).

Cursor validity: a cursor belongs to one peer *log* (``log_id`` of the peer's database file). If the
peer's file was replaced (data directory wiped, snapshot restore), its log restarts at seq 1 and the
cursor is reset instead of skipping everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Callable
from typing import Any, cast

from marmot import failpoints
from marmot.hlc import HLC, Timestamp
from marmot.replication import messages as m
from marmot.replication.apply.applier import ApplyItem, RepairOutcome, RepairRow, repair_rows
from marmot.replication.apply.queue import ApplyQueues
from marmot.replication.background import stop_task
from marmot.replication.catchup import digest
from marmot.replication.catchup import snapshot as snap
from marmot.replication.catchup.log_server import ReadConnections
from marmot.replication.catchup.sync_messages import (
    FETCH_BATCH,
    HAVE_SAMPLE,
    LIST_LIMIT,
    REPAIR_BATCH,
    DigestRequest,
    LogDatabases,
    LogDatabasesRequest,
    LogEntries,
    LogEntry,
    LogFetchRequest,
    LogHave,
    LogHaveRequest,
    LogList,
    LogListRequest,
    RepairKeys,
    RepairKeysRequest,
    RepairRows,
    RepairRowsRequest,
    SnapshotRequest,
)
from marmot.replication.wiring import ReplicationSettings
from marmot.storage import replication_tables as rt
from marmot.storage.databases import DatabaseManager, InvalidDatabaseName
from marmot.storage.node_state import NodeState
from marmot.transport import Transport

log = logging.getLogger("marmot.replication.catchup.log_pull")
PARALLEL = 4


class LogPull:
    """Pulls missing transactions from peers: this end of the exchange whose other end is ``LogServer``."""

    def __init__(
        self,
        node_id: int,
        hlc: HLC,
        databases: DatabaseManager,
        queues: ApplyQueues,
        transport: Transport,
        *,
        peers: Callable[[], dict[int, str]],
        readers: ReadConnections | None = None,
        state: NodeState | None = None,
        settings: ReplicationSettings | None = None,
        timeout: float = 10.0,
        max_rate: float = 5000.0,
        on_database_created: Callable[[str], None] | None = None,
        release: Callable[[str], None] | None = None,
    ) -> None:
        """``peers``: ALIVE members other than this node ({node_id: address}); ``release(db)``: every
        holder of a connection to ``db`` lets go of it before a snapshot replaces its file (this object's
        own readers are always released). ``settings``: the interval and the snapshot knobs."""
        settings = settings or ReplicationSettings()
        self.node_id = node_id
        self.hlc = hlc
        self.databases = databases
        self.queues = queues
        self.transport = transport
        self.peers = peers
        self.interval = settings.anti_entropy_interval or 30.0
        self.timeout = timeout
        self.max_rate = max_rate
        self.on_database_created = on_database_created
        self.state = state if state is not None else NodeState(databases.system)  # pull cursors
        self.readers = readers if readers is not None else ReadConnections(databases)
        self._task: asyncio.Task[None] | None = None
        self._kick = asyncio.Event()
        self._db_locks: dict[str, asyncio.Lock] = {}  # one pull per database at a time (pull_database)
        # when a round last reached every ALIVE peer and left nothing to pull (None: not yet)
        self.caught_up_at: float | None = None
        # (peer, db) -> {table: ((local digest, peer digest), since when that pair is unchanged)}
        self._digest_seen: dict[tuple[int, str], dict[str, tuple[Any, float]]] = {}
        self.divergence_grace = max(2.0, 2 * self.interval)  # how long a difference must stay put to count
        # (peer, db) -> tables whose digests differ and did not move for two rounds (silent divergence)
        self.divergent: dict[tuple[int, str], list[str]] = {}
        self.stats = {
            "divergent": 0,
            "repaired": 0,
            "rounds": 0,
            "pulled": 0,
            "applied": 0,
            "failed": 0,
            "databases_created": 0,
            "snapshots": 0,
            "snapshots_failed": 0,
            "snapshots_refused": 0,
            "pairs_ok": 0,  # (peer, database) pulls that ended normally / with an error
            "pairs_failed": 0,
            "stuck": 0,  # a gauge: listed transactions that could not be applied yet (sum of ``_stuck``)
        }
        self._stuck: dict[tuple[int, str], int] = {}
        # duck-typed admin.metrics.Metrics (``antientropy_round(seconds)``); None: none. Set by the service.
        self.metrics: Any = None
        self.release = release
        self.snapshot_threshold = (
            settings.snapshot_threshold
        )  # [replication] delta_sync_threshold_transactions
        # [replication] delta_sync_threshold_seconds (0 = not used)
        self.snapshot_threshold_seconds = settings.snapshot_threshold_seconds
        self.chunk_size = settings.stream_chunk  # [replication] stream_chunk_size_kb
        self.restore_timeout = settings.restore_timeout  # [replication] snapshot_restore_timeout_seconds
        self.progress_bar = settings.progress_bar  # draw a progress bar for restores in the first rounds
        # (peer, db) -> (behind in transactions at the last round, time of that round) for lag reporting
        self.lag: dict[tuple[int, str], tuple[int, float]] = {}

    # -- client side ----------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None

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
        round_started = time.monotonic()
        applied = 0
        clean = True
        peers = sorted(self.peers().items())
        for peer, address in peers:
            try:
                applied += await self._pull_peer(peer, address)
            except (ConnectionError, OSError, TimeoutError) as e:
                clean = False
                log.debug("anti-entropy: peer %d unreachable: %s", peer, e)
            except Exception as e:  # an RPC error from the peer: next round
                clean = False
                log.warning("anti-entropy with peer %d failed: %s", peer, e)
            if any(behind for (p, _db), (behind, _at) in self.lag.items() if p == peer):
                clean = False
        if clean:
            self.caught_up_at = time.time()
        if self.metrics is not None:
            self.metrics.antientropy_round(time.monotonic() - round_started)
        return applied

    async def _pull_peer(self, peer: int, address: str) -> int:
        try:
            dbs = LogDatabases.decode(await self._send(address, LogDatabasesRequest())).dbs
        except m.MessageError:
            return 0
        todo: list[tuple[str, str, int]] = []
        for db, (log_id, last) in sorted(dbs.items()):
            if self.ensure_database(peer, db):
                todo.append((db, log_id, last))
        limit = asyncio.Semaphore(PARALLEL)

        async def one(db: str, log_id: str, last: int) -> int:
            async with limit:
                try:
                    applied = await self.pull_database(peer, address, db, log_id, last)
                except Exception:
                    self.stats["pairs_failed"] += 1
                    raise
                self.stats["pairs_ok"] += 1
                if self.lag.get((peer, db), (1, 0.0))[0] == 0:
                    await self._compare_digests(peer, address, db)
                return applied

        return sum(await asyncio.gather(*(one(*t) for t in todo)))

    def ensure_database(self, peer: int, db: str) -> bool:
        """``db`` exists on ``peer``: create it here if it is missing (created while this node was away),
        with the replication tables. False: a name this node cannot hold."""
        if not self.databases.exists(db):
            try:
                if self.databases.create(db, if_not_exists=True):
                    log.info("anti-entropy: database %s exists on node %d, created here", db, peer)
                    self.stats["databases_created"] += 1
                    if self.on_database_created is not None:
                        self.on_database_created(db)
            except InvalidDatabaseName:
                return False
        rt.ensure_tables(self.queues.connection(db))
        return True

    async def pull_database(self, peer: int, address: str, db: str, log_id: str, last: int) -> int:
        """Pull ``db`` from ``peer`` up to at least its position ``last`` (``_pull_database``), one pull of
        a database at a time: anti-entropy and read barriers (``read_barrier.py``) both pull, and two
        pulls of one database must not both install a snapshot of it. Returns the transactions applied."""
        lock = self._db_locks.get(db)
        if lock is None:
            lock = self._db_locks[db] = asyncio.Lock()
        async with lock:
            return await self._pull_database(peer, address, db, log_id, last)

    def cursor(self, peer: int, db: str, log_id: str) -> int:
        """How far this node has consumed ``peer``'s log ``log_id`` of ``db`` (its persisted cursor)."""
        return self.state.get_int(self._cursor_key(peer, db, log_id))

    async def _compare_digests(self, peer: int, address: str, db: str) -> None:
        """Convergence check after a round that left nothing to pull: compare per-table digests with the
        peer's. A difference while writes flow is normal (transactions on their way); one that stays
        *unchanged* on both sides for ``divergence_grace`` seconds (two intervals, at least 2 s) is silent
        divergence — logged, counted
        (``stats["divergent"]``) and listed in ``divergent`` for the admin API. ``marmot verify`` names
        the keys. Each such table is then repaired from the peer, row by row (``_repair``)."""
        try:
            remote = digest.parse_document(await self._send(address, DigestRequest(db)))
        except (ValueError, ConnectionError, OSError, TimeoutError):
            return
        except Exception:  # an RPC error (e.g. an older peer without the method)
            return
        local = digest.table_digests(self.readers.get(db))
        clock = time.monotonic()
        key = (peer, db)
        before = self._digest_seen.get(key, {})
        now: dict[str, tuple[Any, float]] = {}
        for t in digest.differing_tables(local, remote):
            pair = (local.get(t), remote.get(t))
            seen = before.get(t)
            now[t] = (pair, seen[1] if seen is not None and seen[0] == pair else clock)
        # Unchanged for a while, not just for two rounds: catch-up runs rounds back to back, and a node
        # that just caught up from a peer may hold transactions that peer has yet to pull from it
        # (a chaos run's restarted node raised a false alarm 35 ms after its catch-up).
        stuck = sorted(t for t, (_, since) in now.items() if clock - since >= self.divergence_grace)
        self._digest_seen[key] = now
        if stuck:
            if self.divergent.get(key) != stuck:
                log.warning(
                    "anti-entropy: %s differs from node %d in table(s) %s although both logs are "
                    "applied (run `marmot verify` for the keys)",
                    db,
                    peer,
                    ", ".join(stuck),
                )
                self.stats["divergent"] += 1
            self.divergent[key] = stuck
            for table in stuck:
                try:
                    await self._repair(peer, address, db, table)
                except (ConnectionError, OSError, TimeoutError) as e:
                    log.debug(
                        "anti-entropy: repair of %s.%s from node %d interrupted: %s", db, table, peer, e
                    )
                except asyncio.CancelledError:
                    raise
                except Exception as e:
                    log.warning("anti-entropy: repair of %s.%s from node %d failed: %s", db, table, peer, e)
        else:
            self.divergent.pop(key, None)

    async def _repair(self, peer: int, address: str, db: str, table: str) -> int:
        """Repair ``table`` of ``db`` from ``peer``, last-writer-wins, row by row: pull the peer's key
        versions (``repair_keys``, tombstones included), keep the keys where the peer's version is newer
        than this node's (or this node has none), fetch those rows (``repair_rows``) and write them with
        ``applier.repair_rows`` under the writer lock's priority lane. Keys newer here are left alone:
        the peer repairs itself from this node in its own round. Returns the keys written.

        The table stays in ``divergent`` until a later comparison finds the digests equal (the next
        round, once both sides are repaired)."""
        remote: dict[bytes, tuple[tuple[int, int, int], bool]] = {}
        after: bytes | None = None
        while True:
            try:
                page = RepairKeys.decode(
                    await self._send(address, RepairKeysRequest(db, table, after, digest.KEYS_LIMIT))
                )
            except m.MessageError as e:
                raise RuntimeError(f"repair_keys: {e}") from None
            for kv in page.keys:
                remote[kv.key] = (kv.version, kv.deleted)
            after = page.next
            if after is None or not page.keys:
                break
        local = digest.all_table_versions(self.readers.get(db), table)
        wanted = [k for k, (v, _d) in sorted(remote.items()) if (mine := local.get(k)) is None or v > mine[0]]
        if not wanted:
            return 0
        total = RepairOutcome()
        for i in range(0, len(wanted), REPAIR_BATCH):
            chunk = wanted[i : i + REPAIR_BATCH]
            try:
                answer = RepairRows.decode(await self._send(address, RepairRowsRequest(db, table, chunk)))
            except m.MessageError as e:
                raise RuntimeError(f"repair_rows: {e}") from None
            rows: list[RepairRow] = []
            for r in answer.rows:
                if r.version is None:
                    continue  # gone on the peer since it listed it (e.g. tombstone GC)
                self.hlc.update(Timestamp(*r.version))
                rows.append((r.key, r.version, r.deleted, r.image))
            if rows:
                out = await self._write_repair(db, table, rows)
                total.repaired += out.repaired
                total.skipped += out.skipped
                total.failed += out.failed
        self.stats["repaired"] += total.repaired
        if total.repaired or total.failed:
            log.warning(
                "anti-entropy: repaired %d row(s) of %s.%s from node %d, last-writer-wins (%d already "
                "newer here, %d could not be written)",
                total.repaired,
                db,
                table,
                peer,
                total.skipped,
                total.failed,
            )
        return total.repaired

    async def _write_repair(self, db: str, table: str, rows: list[RepairRow]) -> RepairOutcome:
        """``applier.repair_rows`` in a write transaction of its own, under the writer lock's priority
        lane like the apply queue."""
        await failpoints.hit("anti_entropy_before_repair")  # tests: keep a divergence visible a while
        schema = self.queues.schema(db)
        return await self.queues.write(db, lambda conn: repair_rows(conn, schema, table, rows))

    def _cursor_key(self, peer: int, db: str, log_id: str) -> str:
        return f"pull:{peer}:{db}:{log_id}"

    async def _pull_database(self, peer: int, address: str, db: str, log_id: str, last: int) -> int:
        key = self._cursor_key(peer, db, log_id)
        cursor = self.state.get_int(key)
        applied = 0
        started = time.monotonic()
        local = self.queues.connection(db)
        first_batch = True
        while True:  # at least one list per round: it also tells the peer how far this node consumed
            try:
                listed = LogList.decode(
                    await self._send(address, LogListRequest(db, cursor, LIST_LIMIT, self.node_id, log_id))
                )
            except m.MessageError:
                break  # the peer refused (e.g. the database is gone there): next round
            entries, first = listed.entries, listed.first
            if not entries:
                break
            last = max(last, listed.last)
            have = rt.applied_of(local, [txn for _seq, txn in entries])
            missing_txns = [txn for _seq, txn in entries if txn not in have]
            missing = [seq for seq, txn in entries if txn not in have]
            if first_batch:
                first_batch = False
                # a txn id carries its millisecond (``hlc.to_txn_id``): the age of the oldest missing one
                age = time.time() - (min(missing_txns) >> 22) / 1000 if missing_txns else 0.0
                reason = self._snapshot_reason(
                    db, local, cursor, first, last, len(entries), len(missing), age
                )
                if reason is not None:
                    seq = await self._try_snapshot(peer, address, db, reason, first, cursor)
                    if seq is not None:  # installed: continue after it, on the (possibly new) log id
                        log_id, cursor = seq
                        key = self._cursor_key(peer, db, log_id)
                        local = self.queues.connection(db)
                        continue
                    if first > cursor + 1:
                        log.warning(
                            "anti-entropy: node %d already collected %s's log up to seq %d, this node "
                            "had consumed only %d: transactions in between may be missing here until "
                            "a snapshot can be installed",
                            peer,
                            db,
                            first - 1,
                            cursor,
                        )
            self.lag[(peer, db)] = (len(missing), time.time())
            for i in range(0, len(missing), FETCH_BATCH):
                chunk = missing[i : i + FETCH_BATCH]
                ok_upto = await self._fetch_and_apply(address, db, chunk)
                applied += ok_upto[1]
                if ok_upto[0] is not None:  # stopped at an entry that could not be applied yet
                    self._save(key, max(cursor, ok_upto[0] - 1))
                    self._set_stuck(peer, db, len(missing) - i - ok_upto[1])
                    return applied
                await self._pace(applied, started)
            cursor = entries[-1][0]
            self._save(key, cursor)
            if cursor >= last:
                break
        self.lag[(peer, db)] = (0, time.time())
        self._set_stuck(peer, db, 0)
        if applied:
            log.info("anti-entropy: applied %d transaction(s) of %s from node %d", applied, db, peer)
        return applied

    def _set_stuck(self, peer: int, db: str, n: int) -> None:
        """Transactions of ``db`` listed by ``peer`` that could not be applied yet (0 once they are)."""
        if n > 0:
            self._stuck[(peer, db)] = n
        else:
            self._stuck.pop((peer, db), None)
        self.stats["stuck"] = sum(self._stuck.values())

    async def _fetch_and_apply(self, address: str, db: str, seqs: list[int]) -> tuple[int | None, int]:
        """Fetch and apply ``seqs`` in order (the peer may answer with a prefix when the bodies are large:
        ask again for the rest). Returns (seq of the first entry that failed or None, applied)."""
        applied = 0
        remaining = list(seqs)
        while remaining:
            try:
                entries = LogEntries.decode(await self._send(address, LogFetchRequest(db, remaining))).entries
            except m.MessageError as e:
                log.warning("anti-entropy: log_fetch from %s: %s", address, e)
                entries = []
            if not entries:
                return (remaining[0], applied)  # gone from the peer's log meanwhile, or an error
            failed, done = await self._apply_entries(address, db, entries)
            applied += done
            if failed is not None:
                return (failed, applied)
            got = {e.seq for e in entries}
            remaining = [q for q in remaining if q not in got]
        return (None, applied)

    async def _apply_entries(self, address: str, db: str, entries: list[LogEntry]) -> tuple[int | None, int]:
        """Apply fetched log entries (queued together, so the apply queue batches them)."""
        self.stats["pulled"] += len(entries)
        applied = 0
        futures = []
        for e in entries:
            try:
                body = m.decode_body(e.body)
            except m.MessageError as err:
                log.error("anti-entropy: bad log entry from %s: %s", address, err)
                return (e.seq, applied)
            self.hlc.update(e.cts)
            item = ApplyItem(e.txn_id, e.cts, e.origin, e.body, body)
            futures.append((e.seq, asyncio.ensure_future(self.queues.apply(db, item))))
        for seq, fut in futures:  # queued together: the apply queue batches them
            try:
                outcome = await fut
            except Exception as e:
                self.stats["failed"] += 1
                log.warning(
                    "anti-entropy: transaction at seq %d of %s could not be applied yet: %s", seq, db, e
                )
                for _, other in futures:
                    if not other.done():
                        other.cancel()
                    elif not other.cancelled():
                        other.exception()  # retrieved: the first failure is the one reported
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

    # -- snapshots ------------------------------------------------------------------------------

    def _snapshot_reason(
        self,
        db: str,
        local: Any,
        cursor: int,
        first: int,
        last: int,
        listed: int,
        missing: int,
        age: float = 0.0,
    ) -> str | None:
        """Why this database should be caught up by snapshot rather than replay (None: replay)."""
        if missing == 0:
            return None  # nothing of the listed batch is missing: whatever lies in a gap came another way
        if first > cursor + 1:
            return f"node's log was collected past this node's position (first kept seq {first}, consumed {cursor})"
        if last - cursor > self.snapshot_threshold and missing * 2 >= listed:
            return f"{last - cursor} transactions behind (delta_sync_threshold_transactions = {self.snapshot_threshold})"
        if 0 < self.snapshot_threshold_seconds < age and missing * 2 >= listed:
            return (
                f"the oldest missing transaction is {age:.0f} s old (delta_sync_threshold_seconds = "
                f"{self.snapshot_threshold_seconds:g})"
            )
        if cursor == 0 and local.execute(f"SELECT 1 FROM {rt.TXN_LOG} LIMIT 1").fetchone() is None:
            return "this node's copy is empty"
        return None

    async def _peer_lacks(self, address: str, db: str) -> list[int]:
        """Transactions among the newest ``HAVE_SAMPLE`` of this node's log that the peer does not have
        (those older than the peer's oldest kept entry are assumed collected there, not missing)."""
        rows = (
            self.queues.connection(db)
            .execute(f"SELECT txn_id, wall FROM {rt.TXN_LOG} ORDER BY seq DESC LIMIT {HAVE_SAMPLE}")
            .fetchall()
        )
        if not rows:
            return []
        try:
            answer = LogHave.decode(
                await self._send(address, LogHaveRequest(db, [cast(int, r[0]) for r in rows]))
            )
        except m.MessageError as e:
            raise RuntimeError(f"log_have: {e}") from None
        have, oldest = set(answer.have), answer.oldest_wall
        # (txn_id INTEGER, wall INTEGER): the log's column types
        return [
            cast(int, t)
            for t, wall in rows
            if t not in have and oldest is not None and cast(int, wall) >= oldest
        ]

    async def _try_snapshot(
        self, peer: int, address: str, db: str, reason: str, first: int, cursor: int
    ) -> tuple[str, int] | None:
        """Install a snapshot of ``db`` from ``peer``; returns (peer log id, seq to continue after) or None
        (refused or failed: the caller replays what the log still has)."""
        try:
            lacking = await self._peer_lacks(address, db)
        except (ConnectionError, OSError, TimeoutError, RuntimeError) as e:
            log.warning(
                "anti-entropy: cannot check %s against node %d before a snapshot (%s): replaying", db, peer, e
            )
            return None
        if lacking:
            self.stats["snapshots_refused"] += 1
            log.warning(
                "anti-entropy: database %s needs a snapshot from node %d (%s) but this node has %d "
                "transaction(s) node %d lacks (e.g. txn %d): a file swap would lose them, replaying "
                "from the oldest position node %d still has instead",
                db,
                peer,
                reason,
                len(lacking),
                peer,
                lacking[0],
                peer,
            )
            return None
        log.info("anti-entropy: %s catches up from node %d by snapshot: %s", db, peer, reason)
        started = time.monotonic()
        bar = self.progress_bar and self.stats["rounds"] <= 2 and sys.stderr.isatty()
        try:
            async with asyncio.timeout(self.restore_timeout):
                req = SnapshotRequest(db)
                stream = self.transport.stream(address, req.method, req.encode(), self.restore_timeout)
                path, manifest = await snap.receive(
                    stream,
                    self.databases.data_dir,
                    db,
                    lambda man: snap.Progress(db, peer, man.size, bar=bar),
                )
                await snap.install(self.databases, db, path, self._release, self.restore_timeout)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self.stats["snapshots_failed"] += 1
            log.warning("anti-entropy: snapshot of %s from node %d failed: %s", db, peer, e)
            return None
        self.stats["snapshots"] += 1
        peer_log, seq = manifest.log_id, manifest.last_seq
        self._save(self._cursor_key(peer, db, peer_log), seq)
        rt.ensure_tables(self.queues.connection(db))
        if self.on_database_created is not None:
            self.on_database_created(db)  # schema version changed: tell the participant and gossip
        log.info(
            "anti-entropy: installed a snapshot of %s from node %d (%d bytes, up to its log seq %d) in "
            "%.2fs; delta sync continues from there",
            db,
            peer,
            manifest.size,
            seq,
            time.monotonic() - started,
        )
        return peer_log, seq

    def _release(self, db: str) -> None:
        self.readers.forget(db)
        if self.release is not None:
            self.release(db)

    async def _send(self, address: str, req: m.Request) -> Any:
        """One request to a peer (``sync_messages``), within ``timeout``; the raw answer."""
        return await self.transport.send(address, req.method, req.encode(), self.timeout)
