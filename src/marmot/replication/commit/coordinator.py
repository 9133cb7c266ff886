"""The coordinator side of two-phase commit: one replicated transaction from PREPARE to the client's OK.

``replicate(...)``:

0. **Joined?** A node with seeds that no seed has admitted yet (``cluster/join.py``) refuses every
   write, at every level, with 1105 naming the seeds and why each failed: its membership of one is
   not a cluster.
1. **Quorum check first.** Alive members (this node included) and the total membership (every member
   not REMOVED, persisted across restarts) give the acks needed: ONE/LOCAL_ONE 1, TWO 2, THREE 3,
   QUORUM ⌊total/2⌋+1, ALL total. Too few alive → 1105 before anything is sent.
2. **PREPARE** to every alive node — this node's participant directly, the others over RPC in
   parallel. A conflict anywhere → ABORT to whoever prepared, 1213 (nothing applied anywhere). Acks
   below the level within ``write_timeout_ms`` → ABORT, 1105 saying how many answered. Late answers
   are not left dangling: a node that prepares after the decision gets the decision too.
3. **Commit timestamp**: every participant's HLC is merged into ours, so the commit timestamp is above
   all of them — no participant has applied anything newer than this transaction at the time it
   prepared, which is what makes last-writer-wins agree with the order the quorum saw.
4. **COMMIT** to the remote participants first; once the level's count minus this node have applied
   it, this node applies it too and the client gets its OK. Remote-first means that whenever this node
   has the transaction, enough others have it as well, and a participant that missed the COMMIT finds
   it committed on a peer (``Participant.resolve_stale``). If fewer remote acks arrive than the level
   needs but a majority (this node included) has it, this node applies it too and the client gets a
   1105 saying on how many nodes it is — not a silent success, not a lie that nothing happened.
5. **Unconfirmed commits** (QUORUM and above): if not even a majority confirmed the COMMIT, the
   participants may have given up on this node and aborted the transaction; applying it here alone
   would let it overwrite, after anti-entropy, writes they accepted meanwhile. It stays undecided (this
   node keeps its intents) and is settled in the background with SETTLE requests (a node that prepared
   it commits it, one that has it says so, any other gives it up for good): committed once any node has
   it, aborted once all of them gave it up. The client gets 1105 "transaction outcome unknown" (or,
   when every participant had already refused, "transaction aborted"). At ONE the coordinator applies
   at once, as the level promises; last-writer-wins settles what follows.

The coordinator remembers the state of its in-flight and recent transactions for STATUS queries.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, NoReturn

from marmot import failpoints
from marmot.hlc import HLC, Timestamp, to_txn_id
from marmot.replication import messages as m
from marmot.replication.commit.participant import Participant
from marmot.replication.commit.txn_messages import (
    Abort,
    Ack,
    Commit,
    Prepare,
    PrepareAnswer,
    Replay,
    Settle,
    split_body,
)
from marmot.replication.errors import (
    CommitIncomplete,
    CommitUnknown,
    NotJoined,
    QuorumNotReached,
    Rejected,
    TransactionAborted,
    WriteConflict,
)
from marmot.replication.wiring import Membership
from marmot.transport import Transport

log = logging.getLogger("marmot.replication")
_RECENT = 100_000
BYTES_PER_SECOND = 4_000_000  # a conservative transfer + apply rate for the deadline of a large transaction
Answer = PrepareAnswer | Ack | BaseException | None  # a peer's decoded answer, or why there is none


def required_acks(level: str, total: int) -> int:
    level = level.upper()
    if level in ("ONE", "LOCAL_ONE"):
        return 1
    if level == "TWO":
        return min(2, total)
    if level == "THREE":
        return min(3, total)
    if level == "ALL":
        return total
    return total // 2 + 1


@dataclass(slots=True)
class CommitResult:
    txn_id: int
    commit_ts: Timestamp
    prepared: int  # nodes that acknowledged PREPARE (this one included)
    committed: int  # nodes that confirmed COMMIT (this one included)


class Coordinator:
    """Runs 2PC for writes that start on this node."""

    def __init__(
        self,
        node_id: int,
        hlc: HLC,
        participant: Participant,
        transport: Transport,
        membership: Membership,
        *,
        write_timeout: float,
        ddl_timeout: float,
        metrics: Any = None,
        stream_chunk: int = 1 << 20,
    ) -> None:
        self.node_id = node_id
        self.hlc = hlc
        self.participant = participant
        self.transport = transport
        self.membership = membership  # alive peers, total membership, joined or not
        self.write_timeout = write_timeout
        self.ddl_timeout = ddl_timeout
        self._states: OrderedDict[int, tuple[str, Timestamp | None]] = OrderedDict()
        self._background: set[asyncio.Task[Any]] = set()
        self.stats = {
            "committed": 0,
            "conflicts": 0,
            "quorum_failures": 0,
            "incomplete": 0,
            "unconfirmed": 0,
            "given_up": 0,
        }
        # Duck-typed metrics sink (admin.metrics.Metrics): observe_prepare/observe_commit(seconds),
        # txn_finished(kind, result), write_conflict(). None: no metrics.
        self.metrics = metrics
        self.stream_chunk = stream_chunk  # a PREPARE/REPLAY body larger than this goes as a client stream

    def _count_prepare_answers(self, answers: dict[int, Answer], unanswered: int, prepared: int) -> None:
        """Upstream's ``replication_requests_total{phase="prepare"}`` and ``twophase_quorum_acks``: each
        peer's PREPARE answer by result, those still unanswered at the decision as ``timeout``."""
        for ans in answers.values():
            if isinstance(ans, PrepareAnswer):
                result = "ok" if ans.ok else "conflict" if ans.conflict else "refused"
            else:
                result = "error"
            self.metrics.replication_request("prepare", result)
        self.metrics.replication_request("prepare", "timeout", unanswered)
        self.metrics.quorum_acks("prepare", prepared)

    def state_of(self, txn: int) -> tuple[str, Timestamp | None]:
        return self._states.get(txn, ("unknown", None))

    def sending(self) -> int:
        """Decisions (COMMIT, REPLAY, ABORT) and settlements still on their way to peers: a draining node
        waits for them before it stops (admin/control.py)."""
        return len(self._background)

    def _set_state(self, txn: int, state: str, ts: Timestamp | None = None) -> None:
        self._states[txn] = (state, ts)
        if len(self._states) > _RECENT:
            self._states.popitem(last=False)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def replicate(
        self,
        db: str,
        body: bytes,
        *,
        base: list[list[int] | None] | None = None,
        schema_version: int = 0,
        level: str = "QUORUM",
        ddl: bool = False,
        decoded: m.Body | None = None,
        epoch: int | None = None,
        table_schemas: dict[str, bytes | None] | None = None,
        ddl_tables: list[str] | None = None,
    ) -> CommitResult:
        """Run one transaction through 2PC. ``decoded`` is ``body`` already decoded, if the caller has it
        (this node's participant then skips decoding its own coordinator's message). ``table_schemas``:
        DML's schema fingerprint of every table it changes, as planned; ``ddl_tables``: the tables a DDL
        changes (participants scope its intents to them)."""
        if (why := self.membership.not_joined()) is not None:
            raise NotJoined(why)
        peers = self.membership.alive_peers()
        total = max(self.membership.total_members(), 1)
        need = required_acks(level, total)
        if len(peers) + 1 < need:
            self.stats["quorum_failures"] += 1
            raise QuorumNotReached(
                f"quorum not reached: {len(peers) + 1} of {total} nodes alive, {need} needed for {level}"
            )
        start = self.hlc.now()
        txn = to_txn_id(start)
        req = Prepare(
            db,
            txn,
            start,
            self.node_id,
            body,
            schema_version,
            tuple(None if v is None else (v[0], v[1], v[2]) for v in base or ()),
            table_schemas,
            None if ddl_tables is None else tuple(ddl_tables),
        )
        self._set_state(txn, "pending")
        # a large transaction takes longer to ship and to apply: its deadlines grow with its size
        timeout = (self.ddl_timeout if ddl else self.write_timeout) + len(body) / BYTES_PER_SECOND
        kind = "dml" if not ddl else "ddl" if db else "database"
        began = time.monotonic()
        try:
            result = await self._run(
                db, txn, req, peers, total, need, level, timeout, decoded, epoch, ddl=ddl
            )
        except BaseException as e:
            state, cts = self._states.get(txn, ("", None))
            if state == "pending" and not isinstance(e, CommitUnknown):
                self._set_state(txn, "aborted")
            elif state == "committing" and cts is not None:
                # interrupted after deciding (the node is stopping): some participant may have it, so it
                # is settled like an unconfirmed commit, never applied here alone
                self._set_state(txn, "pending")
                self._spawn(self._settle(db, txn, cts, peers, req, _Tally()))
            if self.metrics is not None:
                outcomes: dict[type[BaseException], str] = {
                    WriteConflict: "conflict",
                    QuorumNotReached: "quorum_not_reached",
                    TransactionAborted: "quorum_not_reached",
                    CommitIncomplete: "incomplete",
                    CommitUnknown: "unknown",
                    Rejected: "rejected",
                }
                outcome = outcomes.get(type(e), "error")
                self.metrics.txn_finished(kind, outcome, time.monotonic() - began)
                if outcome == "conflict":
                    self.metrics.write_conflict(str(e))
            raise
        if self.metrics is not None:
            self.metrics.txn_finished(kind, "committed", time.monotonic() - began)
        return result

    async def _run(
        self,
        db: str,
        txn: int,
        req: Prepare,
        peers: dict[int, str],
        total: int,
        need: int,
        level: str,
        timeout: float,
        decoded: m.Body | None,
        epoch: int | None,
        ddl: bool = False,
    ) -> CommitResult:
        locking = time.monotonic()
        local = await self.participant.prepare_waiting(req, decoded, epoch)
        if ddl and self.metrics is not None:  # the wait for the DDL's intents (its locks) here
            self.metrics.ddl_lock_wait(time.monotonic() - locking)
        if not local.ok:
            self._set_state(txn, "aborted")
            if local.conflict:
                self.stats["conflicts"] += 1
                raise WriteConflict(_conflict_message(local.conflict))
            raise Rejected(f"this node cannot take the write: {local.reject}")
        started = time.monotonic()
        assert local.ts is not None
        stamps = [local.ts]
        answers: dict[int, Answer] = {}  # remote node id -> its PREPARE answer or the error
        decision: dict[str, Any] = {}  # set once decided: {"commit": bool, "cts": Timestamp}
        payload = req.encode()  # once for every peer (a large transaction's bv is long)
        tasks = {
            asyncio.ensure_future(self._call(addr, req, timeout, payload)): nid for nid, addr in peers.items()
        }
        conflict: str | None = None
        pending = set(tasks)
        deadline = time.monotonic() + timeout
        prepared = 1
        while pending and prepared < need and conflict is None:
            done, pending = await asyncio.wait(
                pending, timeout=max(0.0, deadline - time.monotonic()), return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                break
            for t in done:
                ans = answers[tasks[t]] = _answer(t)
                if isinstance(ans, PrepareAnswer) and ans.ok:
                    prepared += 1
                    if ans.ts is not None:
                        stamps.append(ans.ts)
                elif isinstance(ans, PrepareAnswer) and ans.conflict:
                    conflict = ans.conflict
        if self.metrics is not None:
            self._count_prepare_answers(answers, len(pending), prepared)
        tally = _Tally()  # COMMIT/REPLAY acks, from early and late answers alike
        tally.outstanding = len(pending)
        decision["tally"] = tally
        for t in pending:  # late answers get the decision once there is one (decided below, no await)
            t.add_done_callback(
                functools.partial(self._late_answer, peers[tasks[t]], decision=decision, req=req)
            )
        if conflict is not None or prepared < need:
            decision["commit"] = False
            for addr, t in decision.pop("undecided", []):
                self._late_answer(addr, t, decision, req)
            self._set_state(txn, "aborted")
            self.participant.abort_local(txn)
            for nid, ans in answers.items():
                if _ok(ans):
                    self._spawn(self._send_quiet(peers[nid], Abort(db, txn)))
            if conflict is not None:
                self.stats["conflicts"] += 1
                raise WriteConflict(_conflict_message(conflict))
            self.stats["quorum_failures"] += 1
            refused = [
                f"node {nid}: {a.reject if isinstance(a, PrepareAnswer) else a}"
                for nid, a in answers.items()
                if not _ok(a)
            ]
            refused += [f"node {tasks[t]}: no answer within {timeout:g} s" for t in pending]
            detail = f" ({'; '.join(refused)})" if refused else ""
            raise QuorumNotReached(
                f"quorum not reached: {prepared} of {total} nodes acknowledged "
                f"PREPARE, {need} needed for {level}{detail}"
            )
        await failpoints.hit("coordinator_after_prepare")
        decided_at = time.monotonic()
        if self.metrics is not None:
            self.metrics.observe_prepare(decided_at - started)
        cts = self.hlc.update(max(stamps))
        decision.update(commit=True, cts=cts)
        for addr, t in decision.pop("undecided", []):
            self._late_answer(addr, t, decision, req)
        self._set_state(txn, "committing", cts)  # "committed" to STATUS, not yet to our own resolver
        # COMMIT to those that prepared; the committed transaction itself to those that answered but
        # could not prepare (conflict with an older undecided txn, schema behind): both count once
        # durable there.
        targets = [(nid, ans) for nid, ans in answers.items() if isinstance(ans, PrepareAnswer)]
        if failpoints.armed("coordinator_partial_commit") and targets:
            # fault tests: the decision reaches one node, then this coordinator stops (SIGKILL meanwhile)
            nid, ans = targets.pop(0)
            with contextlib.suppress(Exception):
                await self._call(peers[nid], _decision_call(ans, req, cts), timeout)
            await failpoints.hit("coordinator_partial_commit")
        for nid, ans in targets:
            self._send_counted(peers[nid], _decision_call(ans, req, cts), tally)
        deadline = time.monotonic() + timeout
        while 1 + tally.count < need and tally.outstanding > 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            tally.event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(tally.event.wait(), remaining)
        acks = tally.count
        if self.metrics is not None:
            self.metrics.observe_commit(time.monotonic() - decided_at)
            self.metrics.quorum_acks("commit", 1 + acks)
            self.metrics.replication_request("commit", "ok", acks)
            self.metrics.replication_request("commit", "no_ack", len(targets) - acks)
        await failpoints.hit("coordinator_before_local_commit")
        if level not in ("ONE", "LOCAL_ONE") and 1 + acks < total // 2 + 1:
            self._unconfirmed(db, txn, cts, peers, req, tally)
        res = await self.participant.commit_local(db, txn, cts)
        self._set_state(txn, "committed", cts)  # if the apply failed here, our resolver retries it
        if not res.ok:
            raise CommitIncomplete(
                f"transaction committed on {acks} other node(s) but could not be applied "
                f"on this one: {res.err}"
            )
        self.stats["committed"] += 1
        if 1 + acks < need:
            self.stats["incomplete"] += 1
            raise CommitIncomplete(
                f"transaction committed on {1 + acks} of {total} nodes, {need} needed for "
                f"{level}; the others will receive it through anti-entropy"
            )
        return CommitResult(txn, cts, prepared, 1 + acks)

    def _unconfirmed(
        self, db: str, txn: int, cts: Timestamp, peers: dict[int, str], req: Prepare, tally: _Tally
    ) -> NoReturn:
        """No majority confirmed the COMMIT: do not apply it here alone. The participants that could not
        reach this node for ``heartbeat_timeout_seconds`` abort it (``Participant.resolve_stale``) and
        release its rows; a write they then let through would be overwritten, row by row, by this one's
        later commit timestamp once anti-entropy spread it (a QUORUM bank transfer created money that
        way). So it stays undecided here — this node keeps its intents, STATUS says "pending" — and is
        settled with the participants in the background (``_settle``): committed as soon as any node
        confirms it applied it, aborted once every participant answers that it gave up on it."""
        if tally.outstanding == 0 and tally.refused == len(peers) and peers:
            self._set_state(txn, "aborted")
            self.participant.abort_local(txn)
            self.stats["given_up"] += 1
            raise TransactionAborted(
                f"transaction aborted: every participant gave up waiting for its COMMIT ({len(peers)} of "
                f"{len(peers)}); nothing was applied anywhere"
            )
        self._set_state(txn, "pending")
        self.stats["unconfirmed"] += 1
        self._spawn(self._settle(db, txn, cts, peers, req, tally))
        raise CommitUnknown(
            "transaction outcome unknown: no other node confirmed its COMMIT within the write timeout; "
            "it is being settled with the participants (committed if any applied it, aborted if all gave "
            "up on it)"
        )

    async def _settle(
        self, db: str, txn: int, cts: Timestamp, peers: dict[int, str], req: Prepare, tally: _Tally
    ) -> None:
        """SETTLE with every peer until one has applied the transaction (then apply it here; the round
        committed it wherever it was prepared, anti-entropy brings it to the rest) or every one gave it up
        (then abort it here). SETTLE, unlike COMMIT and REPLAY, never makes
        a node apply a transaction it did not prepare: a node that answered PREPARE late or not at all
        gives it up instead, so a REPLAY of the first round still in flight cannot make it committed
        behind the back of participants that already gave up."""
        delay = 0.25
        settle = Settle(req.db, txn, cts)
        while True:
            refused = 0
            calls = {
                nid: asyncio.ensure_future(self._call(addr, settle, self.write_timeout))
                for nid, addr in peers.items()
            }
            await asyncio.wait(calls.values())
            if self.participant.has_applied(db, txn):  # an apply interrupted by a stop may have landed
                tally.count += 1
            members = set(self.membership.members())
            for nid, task in calls.items():
                ans = _answer(task)
                if _ok(ans):
                    tally.count += 1
                elif (isinstance(ans, Ack) and ans.aborted) or nid not in members:
                    refused += 1  # gave it up, or was removed from the cluster: it will never commit it
            if tally.count > 0:  # some node has it: it is committed; apply it here too
                res = await self.participant.commit_local(db, txn, cts)
                self._set_state(txn, "committed", cts)
                log.warning(
                    "transaction %d: settled as committed after the write timeout (%s)",
                    txn,
                    "applied here" if res.ok else f"not applied here yet: {res.err}",
                )
                return
            if refused == len(peers):
                self._set_state(txn, "aborted")
                self.participant.abort_local(txn)
                log.warning("transaction %d: settled as aborted: every participant had given up on it", txn)
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _late_answer(
        self, addr: str, task: asyncio.Future[Any], decision: dict[str, Any], req: Prepare
    ) -> None:
        ans = _answer(task)
        if "commit" not in decision:  # not decided yet (only across an await, e.g. a failpoint pause)
            decision.setdefault("undecided", []).append((addr, task))
            return
        tally: _Tally | None = decision.get("tally")
        if tally is not None:
            tally.outstanding -= 1
            tally.event.set()
        if decision.get("commit"):
            if isinstance(ans, PrepareAnswer) and tally is not None:
                self._send_counted(addr, _decision_call(ans, req, decision["cts"]), tally)
        elif decision.get("commit") is False and _ok(ans):
            self._spawn(self._send_quiet(addr, Abort(req.db, req.txn)))

    async def _call(
        self,
        addr: str,
        msg: Prepare | Commit | Replay | Settle | Abort,
        timeout: float,
        payload: dict[str, Any] | None = None,
    ) -> Any:
        """One RPC (``payload``: ``msg`` already encoded), its answer decoded (a malformed answer raises
        ``MessageError``, like no answer). A PREPARE or REPLAY whose body is larger than ``stream_chunk``
        goes as a client stream (``txn_messages.split_body``)."""
        payload = payload if payload is not None else msg.encode()
        if isinstance(msg, Prepare | Replay) and len(msg.body) > self.stream_chunk:
            raw = await self.transport.send_stream(
                addr, msg.method + "_stream", split_body(payload, self.stream_chunk), timeout
            )
        else:
            raw = await self.transport.send(addr, msg.method, payload, timeout)
        return PrepareAnswer.decode(raw) if isinstance(msg, Prepare) else Ack.decode(raw)

    def _send_counted(self, addr: str, msg: Commit | Replay, tally: _Tally) -> None:
        """Send a COMMIT or REPLAY; its ack counts towards the consistency level."""
        timeout = self.ddl_timeout if isinstance(msg, Replay) else self.write_timeout
        task = asyncio.ensure_future(self._call(addr, msg, timeout))
        tally.outstanding += 1
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(tally.finish)

    async def _send_quiet(self, addr: str, msg: Abort | Replay) -> None:
        if isinstance(msg, Replay):  # a replay may wait for the schema it needs: give it the DDL timeout
            with contextlib.suppress(Exception):
                await self._call(addr, msg, self.ddl_timeout)
            return
        try:
            await self._call(addr, msg, self.write_timeout)
        except Exception as e:  # the peer resolves it itself (participant resolution)
            log.debug("%s to %s failed: %s", msg.method, addr, e)

    async def close(self) -> None:
        for t in list(self._background):
            t.cancel()


def _answer(task: asyncio.Future[Any]) -> Answer:
    if task.cancelled():
        return None
    exc = task.exception()
    return exc if exc is not None else task.result()


class _Tally:
    """Acks of one transaction's decision: how many nodes have applied it, and how many answers are
    still on their way (no point waiting once none are)."""

    __slots__ = ("count", "refused", "outstanding", "event")

    def __init__(self) -> None:
        self.count = 0
        self.refused = 0  # definite refusals: the node had given up on the transaction (aborted it)
        self.outstanding = 0
        self.event = asyncio.Event()

    def finish(self, task: asyncio.Future[Any]) -> None:
        self.outstanding -= 1
        ans = _answer(task)
        if _ok(ans):
            self.count += 1
        elif isinstance(ans, Ack) and ans.aborted:
            self.refused += 1
        self.event.set()


def _ok(ans: Answer) -> bool:
    return isinstance(ans, PrepareAnswer | Ack) and ans.ok


def _decision_call(ans: PrepareAnswer, req: Prepare, cts: Timestamp) -> Commit | Replay:
    """COMMIT for a node that prepared, the whole committed transaction (REPLAY) for one that refused."""
    if ans.ok:
        return Commit(req.db, req.txn, cts)
    return Replay(req.db, req.txn, cts, req.coord, req.body, req.sv)


def _conflict_message(detail: str) -> str:
    return f"Deadlock found when trying to get lock; try restarting transaction ({detail})"
