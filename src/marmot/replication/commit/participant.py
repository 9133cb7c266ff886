"""The participant side of two-phase commit: PREPARE, COMMIT, ABORT, STATUS, and stale-txn resolution.

Every node is a participant of every write, the coordinator included (it calls ``prepare`` directly).

PREPARE (synchronous on purpose: no ``await`` between the checks and taking the intents, so nothing
else on this node interleaves):
  1. merge the coordinator's HLC; refuse while this node is LEAVING;
  2. the database must exist here (else *reject*: this node does not count towards the quorum);
  3. schema: DML compares, per table it changes, the coordinator's schema fingerprint with this node's
     (``storage.schema_fingerprint``; DDL on *other* tables does not matter); DDL, serialised per
     database, compares the database's schema version. Different and this node older than the
     coordinator → *reject* (this node must catch up first); different otherwise → *conflict* (the
     coordinator planned against an old schema: retry);
  4. intents on every row key (DDL: on the tables it changes, and database-wide against other DDL) →
     another undecided txn owns one → *conflict*;
  5. row versions: a key whose version here is newer than the one the coordinator's dry run saw →
     *conflict* (the coordinator read data that has been overwritten since; applying its images would
     lose that write). Together with intents this makes a quorum write on a row impossible while
     another quorum write on it is undecided or unseen by the writer: quorums intersect.
  6. keep the body until the decision; answer with this node's HLC (the commit timestamp will be
     above it).

COMMIT applies the body through the apply queue and answers only once it is durable here (so a COMMIT
ack means "this node has it", which is what the consistency levels count). ABORT drops it.

Resolution: a prepared transaction whose decision has not arrived after ``heartbeat_timeout_seconds``
(DDL: ``[ddl] lock_lease_seconds``) is resolved by asking the other nodes: if any has it committed, it
is committed here with the same commit timestamp (never abort a transaction someone committed); if its
coordinator answers that it is still running, it waits; if the coordinator does not know it, says it
aborted, or is unreachable, it is aborted and its intents released. A transaction aborted here is
never applied here through 2PC afterwards: a late COMMIT or REPLAY of it gets a definite refusal
(``aborted``), which is what lets its coordinator, if it was only cut off, abort it too instead of
committing it alone (``Coordinator`` "unconfirmed commits"). If another node did apply it, it still
arrives here by anti-entropy, like any committed transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import apsw

from marmot import failpoints
from marmot.hlc import HLC, Timestamp
from marmot.replication import messages as m
from marmot.replication.apply.applier import ApplyItem
from marmot.replication.apply.queue import ApplyQueues
from marmot.replication.commit.intents import IntentTable
from marmot.replication.commit.txn_messages import (
    Abort,
    Ack,
    Commit,
    Prepare,
    PrepareAnswer,
    Replay,
    Settle,
    StatusAnswer,
    StatusRequest,
    read_status,
)
from marmot.storage import replication_tables as rt
from marmot.storage.databases import DatabaseManager
from marmot.storage.rowkey import database_key
from marmot.storage.schema_fingerprint import Fingerprint, table_fingerprints

log = logging.getLogger("marmot.replication")
_RECENT_ABORTS = 100_000


@dataclass(slots=True)
class Prepared:
    db: str
    txn_id: int
    coordinator: int
    payload: bytes
    body: m.Body
    since: float  # monotonic time of PREPARE (or of the last "still running" answer)
    timeout: float
    committing: bool = False


class Participant:
    """This node's 2PC participant: typed requests in, typed answers out (``commit/txn_handlers.py`` decodes
    what comes off the network). ``ask_peers(request)`` sends a request to every other alive node and
    returns {node_id: its answer as received, or the error}; ``coordinator_state(txn)`` is this node's own
    coordinator's view (for STATUS); ``apply_dbop(op, name)`` creates or drops a database file."""

    def __init__(
        self,
        node_id: int,
        hlc: HLC,
        databases: DatabaseManager,
        queues: ApplyQueues,
        *,
        heartbeat_timeout: float,
        ddl_lease: float,
        ask_peers: Callable[[StatusRequest], Awaitable[dict[int, Any]]] | None = None,
        coordinator_state: Callable[[int], tuple[str, Timestamp | None]] | None = None,
        apply_dbop: Callable[[str, str], None] | None = None,
        leaving: Callable[[], bool] | None = None,
        conflict_wait: float = 0.25,
    ) -> None:
        self.node_id = node_id
        self.hlc = hlc
        self.databases = databases
        self.queues = queues
        self.intents = IntentTable()
        self.heartbeat_timeout = heartbeat_timeout
        self.ddl_lease = ddl_lease
        self.ask_peers = ask_peers
        self.coordinator_state = coordinator_state
        self.apply_dbop = apply_dbop
        self.leaving = leaving or (lambda: False)
        self.prepared: dict[int, Prepared] = {}
        self._aborted: OrderedDict[int, None] = OrderedDict()
        self._schema_versions: dict[str, int] = {}
        self._fingerprints: dict[str, dict[str, Fingerprint | None]] = {}  # db -> table -> fingerprint
        self._readers: dict[str, apsw.Connection] = {}
        self._schema_changed = asyncio.Event()  # set (and replaced) whenever a DDL or database op lands
        self._released: dict[int, asyncio.Event] = {}  # txn id -> set when its intents are released
        self.conflict_wait = conflict_wait
        self.ready_timeout = ddl_lease
        # duck-typed admin.metrics.Metrics for the RPC handlers (txn_handlers.py: replica_*_seconds,
        # participant conflicts); None: no metrics. Set by the replication service.
        self.metrics: Any = None
        self.stats = {
            "prepared": 0,
            "committed": 0,
            "aborted": 0,
            "conflicts": 0,
            "rejected": 0,
            "resolved_commit": 0,
            "resolved_abort": 0,
            "replayed": 0,
            "operator_aborts": 0,  # POST /admin/{db}/transactions/{txn}/abort (commit/operator_abort.py)
        }

    # -- local state ----------------------------------------------------------------------------

    def reader(self, db: str) -> apsw.Connection:
        conn = self._readers.get(db)
        if conn is None:
            conn = self.queues.connection(db)  # ensures the replication tables exist
            conn = self._readers[db] = self.databases.open(db)
        return conn

    def schema_version(self, db: str) -> int:
        v = self._schema_versions.get(db)
        if v is None:
            v = self._schema_versions[db] = rt.schema_version(self.reader(db))
        return v

    def table_fingerprints(self, db: str, tables: frozenset[str]) -> dict[str, Fingerprint | None]:
        """Schema fingerprints of ``tables`` (lower-cased) here, cached until the next DDL lands."""
        cache = self._fingerprints.get(db)
        if cache is None:
            cache = self._fingerprints[db] = {}
        missing = [t for t in tables if t not in cache]
        if missing:
            cache.update(table_fingerprints(self.reader(db), missing))
        return {t: cache[t] for t in tables}

    def schema_versions(self) -> dict[str, int]:
        return dict(self._schema_versions)

    def note_applied(self, db: str, items: list[ApplyItem], outcomes: list[Any]) -> None:
        """Apply-queue callback: a DDL changed the schema version."""
        if any(i.body.ddl for i in items):
            self._schema_versions.pop(db, None)
            self._fingerprints.pop(db, None)
            self.signal_schema_change()

    def signal_schema_change(self) -> None:
        event, self._schema_changed = self._schema_changed, asyncio.Event()
        event.set()

    async def schema_changed(self) -> None:
        """Return at the next DDL or database operation landing here (or a decided PREPARE of one)."""
        await self._schema_changed.wait()

    async def wait_ready(self, db: str, sv: int, timeout: float) -> bool:
        """Wait until ``db`` exists here with at least schema version ``sv`` (a DDL or CREATE DATABASE
        this transaction depends on may still be on its way to this node)."""
        deadline = time.monotonic() + timeout
        while not (self.databases.exists(db) and self.schema_version(db) >= sv):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._schema_changed.wait(), min(remaining, 0.5))
        return True

    def forget_database(self, db: str) -> None:
        conn = self._readers.pop(db, None)
        if conn is not None:
            with contextlib.suppress(apsw.Error):
                conn.close()
        self._schema_versions.pop(db, None)
        self._fingerprints.pop(db, None)
        self.queues.forget(db)

    # -- PREPARE --------------------------------------------------------------------------------

    def prepare(self, req: Prepare, decoded: m.Body | None = None, epoch: int | None = None) -> PrepareAnswer:
        """``decoded``: the body already decoded, and ``epoch`` the apply epoch its dry run read the row
        versions at (this node's own coordinator calling: saves the decode, maybe the version check)."""
        try:
            body = decoded if decoded is not None else m.decode_body(req.body)
            if req.bv and len(req.bv) != len(body.changes):
                raise m.MessageError("bv must list one base version per change")
        except m.MessageError as e:
            return PrepareAnswer(False, reject=f"malformed PREPARE: {e}")
        db, txn, sv, coord, payload, base = req.db, req.txn, req.sv, req.coord, req.body, req.bv
        self.hlc.update(req.ts)
        if txn in self.prepared:
            return PrepareAnswer(True, self.hlc.now())
        if txn in self._aborted:  # its ABORT overtook this PREPARE: do not take intents for it
            return self._reject(f"transaction {txn} was already aborted")
        if self.leaving():
            return self._reject("node is leaving the cluster")
        if body.kind == "dbop":
            assert body.dbop is not None
            owner = self.intents.acquire("", txn, [database_key(body.dbop[1])], ddl=False)
            if owner is not None:
                return self._conflict(f"database {body.dbop[1]} is being changed by transaction {owner}")
            return self._keep(db, txn, coord, payload, body)
        if not self.databases.exists(db):
            return self._reject(f"unknown database '{db}' on node {self.node_id}")
        ddl = body.kind == "ddl"
        if ddl:
            tables = planned = None
        else:
            tables = frozenset(
                t.lower() for t in {c.table for c in body.changes}
            )  # lower() per table, not per row
            planned = _planned_fingerprints(req.tv, tables)
        if planned is None:  # DDL (serialised per database), or a coordinator that sent no fingerprints
            local_sv = self.schema_version(db)
            if local_sv < sv:
                return self._reject(f"schema of '{db}' on node {self.node_id} is behind ({local_sv} < {sv})")
            if local_sv > sv:
                return self._conflict(
                    f"schema of '{db}' changed (version {local_sv}, statement planned at {sv})"
                )
        else:
            assert tables is not None  # DML: the tables it changes
            here = self.table_fingerprints(db, tables)
            changed = sorted(t for t in tables if here[t] != planned[t])
            if changed:
                if self.schema_version(db) < sv:
                    return self._reject(
                        f"schema of {', '.join(changed)} in '{db}' on node {self.node_id} is behind"
                    )
                return self._conflict(
                    f"schema of {', '.join(changed)} in '{db}' changed since the statement was planned"
                )
        if ddl:
            tables = None if req.dt is None else frozenset(t.lower() for t in req.dt)
        keys = [c.key for c in body.changes]
        owner = self.intents.acquire(db, txn, keys, ddl=ddl, tables=tables)
        if owner is not None:
            return self._conflict(f"row or table locked by transaction {owner}", owner)
        if keys and not (decoded is not None and epoch is not None and epoch == self.queues.epoch(db)):
            # (this node's own coordinator read the versions in its dry run, and nothing has been applied
            # to the database since: they cannot have changed)
            stored = rt.row_versions(self.reader(db), keys)
            if stored:
                for c, seen in zip(body.changes, base or [None] * len(keys), strict=True):
                    v = stored.get(c.key)
                    if v is not None and (seen is None or v > seen):
                        self.intents.release(db, txn)
                        return self._conflict(f"row of {c.table} changed since it was read")
        return self._keep(db, txn, coord, payload, body)

    def _keep(self, db: str, txn: int, coord: int, payload: bytes, body: m.Body) -> PrepareAnswer:
        timeout = self.ddl_lease if body.kind != "dml" else self.heartbeat_timeout
        self.prepared[txn] = Prepared(db, txn, coord, payload, body, time.monotonic(), timeout)
        self.stats["prepared"] += 1
        return PrepareAnswer(True, self.hlc.now())

    def _reject(self, why: str) -> PrepareAnswer:
        self.stats["rejected"] += 1
        return PrepareAnswer(False, reject=why)

    def _conflict(self, why: str, owner: int | None = None) -> PrepareAnswer:
        self.stats["conflicts"] += 1
        return PrepareAnswer(False, self.hlc.now(), conflict=why, owner=owner)

    async def prepare_waiting(
        self, req: Prepare, decoded: m.Body | None = None, epoch: int | None = None
    ) -> PrepareAnswer:
        """PREPARE that waits a little (``conflict_wait``) for an intent held by another transaction
        to be released before calling it a conflict. The holder is usually already decided and only its
        COMMIT or apply is still on the way (a DDL a moment ago, a row written a moment ago on another
        node): failing at once would hand clients a 1213 for a transaction that finishes in a few ms.
        The wait is bounded, so two transactions waiting on each other on different nodes cannot
        deadlock: one of them gives up."""
        deadline = time.monotonic() + self.conflict_wait
        while True:
            ans = self.prepare(req, decoded, epoch)
            owner = ans.owner
            if ans.ok or owner is None or owner not in self.prepared:
                return dataclasses.replace(ans, owner=None)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return dataclasses.replace(ans, owner=None)
            self.stats["conflicts"] -= 1  # counted once, when it is final
            event = self._released.get(owner)
            if event is None:
                event = self._released[owner] = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)

    # -- COMMIT / ABORT -------------------------------------------------------------------------

    async def commit(self, req: Commit) -> Ack:
        await failpoints.hit("participant_before_commit")
        return await self.commit_local(req.db, req.txn, req.cts)

    async def commit_local(self, db: str, txn: int, cts: Timestamp) -> Ack:
        self.hlc.update(cts)
        p = self.prepared.get(txn)
        if p is None:
            if self.has_applied(db, txn):
                return Ack(True)
            if txn in self._aborted:
                return self._gave_up(txn)
            return Ack(False, f"transaction {txn} is not prepared on node {self.node_id}")
        p.committing = True
        try:
            if p.body.kind == "dbop":
                assert p.body.dbop is not None and self.apply_dbop is not None
                self.apply_dbop(*p.body.dbop)
                self.signal_schema_change()
            else:
                await self.queues.apply(p.db, ApplyItem(txn, cts, p.coordinator, p.payload, p.body))
        except Exception as e:
            log.error("transaction %d: commit on node %d failed: %s", txn, self.node_id, e)
            p.committing = False
            return Ack(False, f"apply failed on node {self.node_id}: {e}")
        self._forget(p)
        self.stats["committed"] += 1
        return Ack(True)

    async def replay(self, req: Replay) -> Ack:
        """A committed transaction this node did not prepare (it conflicted, was behind, or answered
        late): apply it last-writer-wins without intents — applying a *decided* transaction is safe in
        any order. Answers once it is durable here, so it counts like a COMMIT ack."""
        try:
            body = m.decode_body(req.body)
        except m.MessageError as e:
            return Ack(False, f"malformed REPLAY: {e}")
        db, txn, cts, coord, payload, sv = req.db, req.txn, req.cts, req.coord, req.body, req.sv
        self.hlc.update(cts)
        if txn in self.prepared:
            return await self.commit_local(db, txn, cts)
        if txn in self._aborted:  # prepared here once, then given up on: never apply it through 2PC
            return self._gave_up(txn)
        if body.kind == "dbop":
            assert body.dbop is not None and self.apply_dbop is not None
            self.apply_dbop(*body.dbop)
            return Ack(True)
        if not await self.wait_ready(db, sv, self.ready_timeout):
            return Ack(False, f"'{db}' on node {self.node_id} is missing or its schema is behind")
        try:
            await self.queues.apply(db, ApplyItem(txn, cts, coord, payload, body))
        except Exception as e:
            log.error("transaction %d: replay on node %d failed: %s", txn, self.node_id, e)
            return Ack(False, f"apply failed on node {self.node_id}: {e}")
        self.stats["replayed"] += 1
        return Ack(True)

    def has_applied(self, db: str, txn: int) -> bool:
        return bool(db) and self.databases.exists(db) and rt.is_applied(self.reader(db), txn)

    async def settle(self, req: Settle) -> Ack:
        """SETTLE, from a coordinator whose COMMIT no majority confirmed: commit it if it is prepared
        here, say so if it is applied here, and otherwise **give it up for good** (remember it as
        aborted, so a COMMIT or REPLAY still on its way is refused when it lands). Every answer is
        final, which is what lets the coordinator decide: committed if any node has it, aborted once
        every node gave it up."""
        db, txn, cts = req.db, req.txn, req.cts
        if txn in self.prepared:
            return await self.commit_local(db, txn, cts)
        if self.has_applied(db, txn):
            return Ack(True)
        self._remember_aborted(txn)
        return self._gave_up(txn)

    def _gave_up(self, txn: int) -> Ack:
        """The definite refusal of a decision for a transaction this node aborted: the coordinator must
        not count it, and once every participant says so, it aborts the transaction itself."""
        return Ack(
            False,
            f"transaction {txn} was aborted on node {self.node_id} (no decision reached it in time)",
            aborted=True,
        )

    def abort(self, req: Abort) -> Ack:
        self.abort_local(req.txn)
        return Ack(True)

    def abort_local(self, txn: int) -> None:
        p = self.prepared.get(txn)
        if p is not None and not p.committing:
            self._forget(p)
            self.stats["aborted"] += 1
        self._remember_aborted(txn)

    def was_aborted(self, txn: int) -> bool:
        """This node gave ``txn`` up (among the most recent ``_RECENT_ABORTS``)."""
        return txn in self._aborted

    def _remember_aborted(self, txn: int) -> None:
        """Refuse this transaction's PREPARE, COMMIT, REPLAY and SETTLE from now on (the most recent
        ``_RECENT_ABORTS`` are remembered)."""
        self._aborted[txn] = None
        if len(self._aborted) > _RECENT_ABORTS:
            self._aborted.popitem(last=False)

    def _forget(self, p: Prepared) -> None:
        self.prepared.pop(p.txn_id, None)
        self.intents.release("" if p.body.kind == "dbop" else p.db, p.txn_id)
        event = self._released.pop(p.txn_id, None)
        if event is not None:
            event.set()

    # -- STATUS and resolution ------------------------------------------------------------------

    def status(self, req: StatusRequest) -> StatusAnswer:
        db, txn = req.db, req.txn
        if db and self.databases.exists(db):
            cts = rt.committed_timestamp(self.reader(db), txn)
            if cts is not None:
                return StatusAnswer("committed", Timestamp(*cts))
        if self.coordinator_state is not None:
            state, ts = self.coordinator_state(txn)
            if state in ("committed", "committing") and ts is not None:
                return StatusAnswer("committed", ts)
            if state in ("pending", "aborted"):
                return StatusAnswer(state)
        if txn in self.prepared:
            return StatusAnswer("prepared")
        if txn in self._aborted:
            return StatusAnswer("aborted")
        return StatusAnswer("unknown")

    async def resolve_stale(self) -> None:
        """One resolution round over prepared transactions older than their timeout."""
        now = time.monotonic()
        stale = [p for p in self.prepared.values() if not p.committing and now - p.since > p.timeout]
        for p in stale:
            if p.coordinator == self.node_id and self.coordinator_state is not None:
                # our own coordinator is the authority on its transactions while it runs
                state, cts = self.coordinator_state(p.txn_id)
                if state in ("pending", "committing"):  # it decides when to apply its own transaction
                    p.since = time.monotonic()
                    continue
                if state == "committed" and cts is not None:
                    await self.commit_local(p.db, p.txn_id, cts)
                    continue
            answers = await self.ask_peers(StatusRequest(p.db, p.txn_id)) if self.ask_peers else {}
            if p.txn_id not in self.prepared or p.committing:
                continue
            try:
                states = {nid: read_status(a) for nid, a in answers.items()}
            except m.MessageError:
                continue  # "committed" with a timestamp it cannot read: never abort it, ask again
            committed = next((a for a in states.values() if a is not None and a.state == "committed"), None)
            if committed is not None and committed.cts is not None:
                log.info("transaction %d: committed elsewhere, committing here too", p.txn_id)
                self.stats["resolved_commit"] += 1
                await self.commit_local(p.db, p.txn_id, committed.cts)
                continue
            coord = states.get(p.coordinator)
            if coord is not None and coord.state in ("pending", "prepared"):
                p.since = time.monotonic()  # its coordinator is still working on it
                continue
            log.warning(
                "transaction %d: no decision from coordinator %d after %.0f s, aborting it",
                p.txn_id,
                p.coordinator,
                p.timeout,
            )
            self.stats["resolved_abort"] += 1
            self.abort_local(p.txn_id)

    async def run_resolver(self, interval: float = 1.0) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.resolve_stale()
            except Exception:
                log.exception("resolving stale transactions failed")


def _planned_fingerprints(
    tv: dict[str, Fingerprint | None] | None, tables: frozenset[str]
) -> dict[str, Fingerprint | None] | None:
    """The coordinator's ``tv`` (``{table: fingerprint or None}``) if it covers every table the
    transaction changes; None (compare the database's schema version instead) otherwise."""
    if tv is None or not all(t in tv for t in tables):
        return None
    return {t: tv[t] for t in tables}
