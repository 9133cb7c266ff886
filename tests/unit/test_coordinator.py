"""Two-phase commit end to end (replication/commit/coordinator.py) across three real nodes in one process.

Why: the participant tests check one node's decisions in isolation; what a client relies on is the
*cluster* outcome — a QUORUM write is on a majority before the OK, a conflict anywhere leaves nothing
anywhere, a failed quorum applies nothing, the commit timestamp orders after every clock that took
part, a lagging node still ends up with the write, a COMMIT delivered twice lands once, and a
transaction whose coordinator died is settled the same way on every survivor.

Every node here is real: its own DatabaseManager (its own directory of SQLite files), HLC and
``Replication`` (coordinator, participant, apply queues). Only the transport and the membership are
in-process: the transport's ``send`` routes ``(address, method, payload, timeout)`` to the handlers the
target registered through ``Replication.register`` — the same functions the RPC router would call —
with the payload and the answer round-tripped through msgpack like a real frame. Faults are transport rules: a *down* node's
sends raise ``ConnectionError``; a *held* call waits on an ``asyncio.Event`` before the handler runs
(a slow request) or after it (a slow answer), so "late" is decided by the test, never by timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import apsw
import msgpack
import pytest

from marmot.engine.capture import ChangeCapture
from marmot.hlc import HLC, Timestamp, to_txn_id
from marmot.replication import messages as m
from marmot.replication.changes import RowChange, encode_transaction
from marmot.replication.commit.coordinator import CommitResult
from marmot.replication.commit.txn_messages import (
    Commit,
    Prepare,
    Replay,
    Settle,
    StatusAnswer,
    StatusRequest,
)
from marmot.replication.errors import CommitUnknown, QuorumNotReached, WriteConflict
from marmot.replication.service import Replication
from marmot.replication.wiring import ReplicationSettings
from marmot.storage import replication_tables as rt
from marmot.storage.databases import DatabaseManager
from marmot.storage.rowkey import encode_row_key
from tests.support import run_async

DB = "marmot"
KV = "CREATE TABLE kv(id INTEGER PRIMARY KEY, v TEXT)"
HEARTBEAT = 0.3  # [transaction] heartbeat_timeout_seconds, small so resolution tests stay fast
NOT_ANSWERED = object()

Handler = Callable[[Any, Any], Awaitable[Any]]
Rule = tuple[int | None, int | None, str | None]  # (from, to, method); None matches anything


def wire(x: Any) -> Any:
    """What the other side of a cluster frame sees (cluster/frames.py packs the same way)."""
    return msgpack.unpackb(msgpack.packb(x, use_bin_type=True), raw=False, strict_map_key=False)


def key(pk: int) -> bytes:
    """Row key of ``kv`` row ``pk`` (storage/rowkey.py), as in ``__marmot_row_version``."""
    return encode_row_key("kv", [pk])


def ts_tuple(ts: Timestamp) -> tuple[int, int, int]:
    """A timestamp as the replication tables store it."""
    return (ts.wall_ns, ts.logical, ts.node_id)


@dataclass
class Call:
    """One RPC as the transport saw it. ``answer`` is the handler's answer (or the error raised), and
    ``hlc_after`` the target's clock right after its handler returned."""

    src: int
    dst: int
    method: str
    payload: Any
    answer: Any = NOT_ANSWERED
    hlc_after: Timestamp | None = None


@dataclass
class Node:
    """One member: data directory, clock, replication service, and the RPC handlers it registered."""

    id: int
    address: str
    dbm: DatabaseManager
    hlc: HLC
    rep: Replication = field(init=False)
    handlers: dict[str, Handler] = field(default_factory=dict)
    stream_handlers: dict[str, Handler] = field(default_factory=dict)
    check: apsw.Connection = field(init=False)

    def unary(self, name: str, fn: Handler) -> None:
        """The router interface ``Replication.register`` expects."""
        self.handlers[name] = fn

    def client_stream(self, name: str, fn: Handler) -> None:
        """Streamed PREPARE/REPLAY of large transactions: not used by these small ones."""
        self.stream_handlers[name] = fn

    def server_stream(self, name: str, fn: Handler) -> None:
        self.stream_handlers[name] = fn

    def rows(self) -> list[tuple[Any, ...]]:
        return self.check.execute("SELECT id, v FROM kv ORDER BY id").fetchall()

    def has_table(self, name: str) -> bool:
        return (
            self.check.execute(
                "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?", (name,)
            ).fetchone()
            is not None
        )

    def schema_version(self) -> int:
        return rt.schema_version(self.check)

    def applied(self, txn: int) -> bool:
        return rt.is_applied(self.check, txn)

    def committed_ts(self, txn: int) -> tuple[int, int, int] | None:
        return rt.committed_timestamp(self.check, txn)

    def version(self, pk: int) -> tuple[int, int, int] | None:
        return rt.row_versions(self.check, [key(pk)]).get(key(pk))

    def log_count(self) -> int:
        return int(self.check.execute(f"SELECT COUNT(*) FROM {rt.TXN_LOG}").fetchone()[0])

    @property
    def prepared(self) -> set[int]:
        return set(self.rep.participant.prepared)

    def idle(self) -> bool:
        """No undecided transaction and no intent left on this node."""
        return not self.rep.participant.prepared and self.rep.participant.intents.count() == 0


class Cluster:
    """Three nodes and the in-process transport between them."""

    def __init__(self, tmp_path: Path, size: int = 3) -> None:
        self.members = {i: f"node{i}" for i in range(1, size + 1)}  # total membership
        self.by_address = {a: i for i, a in self.members.items()}
        self.alive = set(self.members)  # what the membership layer reports (peers = alive others)
        self.removed: set[int] = set()  # members removed from the cluster for good
        self.down: set[int] = set()  # counted alive or not, every send to or from it fails
        self.drops: set[Rule] = set()
        self.hold_before: dict[Rule, asyncio.Event] = {}
        self.hold_after: dict[Rule, asyncio.Event] = {}
        self.calls: list[Call] = []
        self.setup_txns: set[int] = set()  # the DDL that made the table: not what a test looks for
        self.nodes: dict[int, Node] = {}
        for i, addr in self.members.items():
            n = Node(i, addr, DatabaseManager(tmp_path / addr), HLC(i))
            n.rep = Replication(i, n.hlc, n.dbm, Transport(self, i), MemberView(self, i), settings=SETTINGS)
            n.rep.participant.conflict_wait = 0.05
            n.rep.register(n)
            n.check = n.dbm.open(DB)
            self.nodes[i] = n

    def __getitem__(self, i: int) -> Node:
        return self.nodes[i]

    def peers_of(self, i: int) -> dict[int, str]:
        return {j: a for j, a in self.members.items() if j != i and j in self.alive}

    @staticmethod
    def _match(rules: Any, call: Call) -> Any:
        for rule in rules:
            src, dst, method = rule
            if src in (None, call.src) and dst in (None, call.dst) and method in (None, call.method):
                return rule
        return None

    def hold(
        self,
        src: int | None = None,
        dst: int | None = None,
        method: str | None = None,
        *,
        answer: bool = False,
    ) -> asyncio.Event:
        """Hold matching calls until the returned event is set: before the handler (a slow request) or,
        with ``answer``, after it (the target acted, its answer is slow)."""
        gate = asyncio.Event()
        (self.hold_after if answer else self.hold_before)[(src, dst, method)] = gate
        return gate

    async def send(self, src: int, address: str, method: str, payload: Any, timeout: float) -> Any:
        call = Call(src, self.by_address[address], method, wire(payload))
        self.calls.append(call)
        return await asyncio.wait_for(self._deliver(call), timeout)

    async def _deliver(self, call: Call) -> Any:
        try:
            if call.dst in self.down or call.src in self.down or self._match(self.drops, call):
                raise ConnectionError(f"{self.members[call.dst]} unreachable")
            rule = self._match(self.hold_before, call)
            if rule is not None:
                await self.hold_before[rule].wait()
            target = self.nodes[call.dst]
            answer = wire(await target.handlers[call.method](call.payload, None))
            call.hlc_after = target.hlc.peek()
        except Exception as e:
            call.answer = e
            raise
        call.answer = answer
        rule = self._match(self.hold_after, call)
        if rule is not None:
            await self.hold_after[rule].wait()
        return answer

    def calls_of(
        self, method: str, *, src: int | None = None, dst: int | None = None, txn: int | None = None
    ) -> list[Call]:
        return [
            c
            for c in self.calls
            if c.method == method
            and src in (None, c.src)
            and dst in (None, c.dst)
            and (txn is None or (isinstance(c.payload, dict) and c.payload.get("txn") == txn))
        ]

    async def close(self) -> None:
        """Stop every node, then finish whatever is still in flight (held calls, cancelled apply workers)
        before the files close, so no task touches a closed connection or outlives the loop."""
        for n in self.nodes.values():
            await n.rep.stop()
        rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in rest:
            t.cancel()
        await asyncio.gather(*rest, return_exceptions=True)
        for n in self.nodes.values():
            for conn in n.rep.participant._readers.values():
                conn.close()
            n.check.close()
            n.dbm.close()


SETTINGS = ReplicationSettings(
    write_timeout=2.0, ddl_timeout=3.0, heartbeat_timeout=HEARTBEAT, ddl_lease=3.0, anti_entropy_interval=None
)


class Transport:
    """Node ``src``'s side of the in-process transport (``marmot.transport.Transport``); these small
    transactions never stream."""

    def __init__(self, cluster: Cluster, src: int) -> None:
        self.cluster, self.src = cluster, src

    async def send(self, address: str, method: str, payload: Any, timeout: float) -> Any:
        return await self.cluster.send(self.src, address, method, payload, timeout)

    async def send_stream(self, address: str, method: str, chunks: list[Any], timeout: float) -> Any:
        raise AssertionError(f"{method}: no transaction here is large enough to stream")

    def stream(self, address: str, method: str, payload: Any, timeout: float) -> Any:
        raise AssertionError(f"{method}: anti-entropy is off in these tests")


class MemberView:
    """Node ``me``'s view of the membership (``replication.wiring.Membership``), from the cluster's
    ``members`` (total), ``alive`` and ``removed``."""

    def __init__(self, cluster: Cluster, me: int) -> None:
        self.cluster, self.me = cluster, me

    def alive_peers(self) -> dict[int, str]:
        return self.cluster.peers_of(self.me)

    def total_members(self) -> int:
        return len(self.cluster.members)

    def members(self) -> list[int]:
        return [i for i in self.cluster.members if i != self.me and i not in self.cluster.removed]

    def leaving(self) -> bool:
        return False

    def not_joined(self) -> str | None:
        return None

    def publish_schema(self, versions: dict[str, int]) -> None:
        pass

    def peer_schema_versions(self) -> dict[int, dict[str, int]]:
        return {}


def run(tmp_path: Path, fn: Callable[[Cluster], Awaitable[None]]) -> None:
    """Each test on a fresh loop and cluster, bounded so a lost wake-up fails instead of hanging."""

    async def main() -> None:
        c = Cluster(tmp_path)
        try:
            await fn(c)
        finally:
            await c.close()

    run_async(main(), timeout=8.0)


async def until(pred: Callable[[], bool], what: str, timeout: float = 3.0) -> None:
    """Poll for something the code does asynchronously (a late COMMIT, a spawned ABORT)."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.002)


@dataclass
class DryRun:
    """A captured write, as the engine hands it to ``commit_changes``."""

    changes: list[RowChange]
    base: list[list[int] | None]  # the row version each change's image was computed from
    schema_version: int
    epoch: int  # apply epoch the versions were read at (lets this node skip re-reading them)


def dry_run(node: Node, *statements: str) -> DryRun:
    """What the engine does before replicating: run the statements on the coordinator's copy with the
    capture hook on, read the row versions the images are based on (and the apply epoch), roll back."""
    conn = node.dbm.open(DB)
    cap = ChangeCapture()
    try:
        cap.start(conn, node.dbm.generation(DB))
        conn.execute("BEGIN")
        try:
            for s in statements:
                conn.execute(s)
            changes = cap.changes()
            seen = rt.row_versions(conn, [c.key for c in changes])
            epoch = node.rep.apply_epoch(DB)
        finally:
            conn.execute("ROLLBACK")
            cap.stop()
    finally:
        conn.close()
    assert changes, statements
    base = [list(seen[c.key]) if c.key in seen else None for c in changes]
    return DryRun(changes, base, node.rep.schema_version(DB), epoch)


async def commit(node: Node, dry: DryRun, level: str = "QUORUM") -> CommitResult:
    return await node.rep.commit_changes(
        DB, dry.changes, dry.base, dry.schema_version, level, epoch=dry.epoch
    )


async def write(node: Node, *statements: str, level: str = "QUORUM") -> CommitResult:
    """Dry run and replicate at once: an autocommit statement."""
    return await commit(node, dry_run(node, *statements), level)


async def create_kv(c: Cluster) -> None:
    """The table every test writes to, created by a replicated DDL from node 1 and present everywhere."""
    res = await c[1].rep.commit_ddl(DB, [KV], c[1].rep.schema_version(DB), "QUORUM")
    c.setup_txns.add(res.txn_id)
    await until(lambda: all(n.applied(res.txn_id) for n in c.nodes.values()), "the DDL everywhere")
    for n in c.nodes.values():
        assert n.has_table("kv") and n.schema_version() == 1 and n.rows() == []
        assert n.committed_ts(res.txn_id) == ts_tuple(res.commit_ts)
    await until(lambda: all(n.idle() for n in c.nodes.values()), "DDL intents released")


def prepare_txns(c: Cluster, src: int) -> list[int]:
    """Transaction ids ``src`` coordinated after the setup, in PREPARE order (from what it sent)."""
    txns = dict.fromkeys(call.payload["txn"] for call in c.calls_of("txn_prepare", src=src))
    return [t for t in txns if t not in c.setup_txns]


# -- commit ---------------------------------------------------------------------------------------


def test_quorum_commit_reaches_all_three_late_node_gets_commit_after(tmp_path: Path) -> None:
    """QUORUM returns once two nodes have the rows; the third, whose PREPARE answer comes after the
    decision, still gets the COMMIT (not left holding intents) and ends identical."""

    async def t(c: Cluster) -> None:
        await create_kv(c)
        slow = c.hold(dst=3)  # node 3's requests wait: its PREPARE answer is late
        res = await write(c[1], "INSERT INTO kv VALUES (1, 'a'), (2, 'b')")
        assert (res.prepared, res.committed) == (2, 2)
        assert c[1].rows() == c[2].rows() == [(1, "a"), (2, "b")]
        assert c[3].rows() == [] and not c[3].applied(res.txn_id)
        assert [call.answer for call in c.calls_of("txn_prepare", dst=3, txn=res.txn_id)] == [NOT_ANSWERED]
        slow.set()
        await until(lambda: c[3].applied(res.txn_id), "node 3 to apply the late COMMIT")
        assert [
            call.method for call in c.calls if call.dst == 3 and call.payload.get("txn") == res.txn_id
        ] == ["txn_prepare", "txn_commit"]
        for n in c.nodes.values():
            assert n.rows() == [(1, "a"), (2, "b")]
            assert n.committed_ts(res.txn_id) == ts_tuple(res.commit_ts)
            assert n.version(1) == n.version(2) == ts_tuple(res.commit_ts)
        await until(lambda: all(n.idle() for n in c.nodes.values()), "intents released everywhere")
        assert c[1].rep.coordinator.state_of(res.txn_id) == ("committed", res.commit_ts)

    run(tmp_path, t)


def test_commit_ts_is_above_a_skewed_participant_clock(tmp_path: Path) -> None:
    """A participant 1000 s ahead: the commit timestamp must still be above its clock (else a later
    write it coordinates could sort before this one), and every copy of the row carries that timestamp.
    A following write from an unskewed node still sorts after it and wins everywhere."""

    async def t(c: Cluster) -> None:
        await create_kv(c)
        c[2].hlc.offset_ns = 10**12
        slow = c.hold(dst=3)  # node 2 is then the participant the decision counts
        res = await write(c[1], "INSERT INTO kv VALUES (1, 'first')")
        (prep,) = c.calls_of("txn_prepare", dst=2, txn=res.txn_id)
        assert prep.answer["ok"] is True and prep.hlc_after is not None
        assert res.commit_ts > prep.hlc_after
        assert res.commit_ts.wall_ns > time.time_ns() + 10**12 // 2  # it carries the skew
        slow.set()
        await until(lambda: c[3].applied(res.txn_id), "node 3 to apply")
        for n in c.nodes.values():
            assert n.rows() == [(1, "first")]
            assert n.version(1) == ts_tuple(res.commit_ts)
            assert n.hlc.peek() > res.commit_ts  # merged: nothing minted here later sorts before it
        later = await write(c[3], "UPDATE kv SET v = 'second' WHERE id = 1")
        assert later.commit_ts > res.commit_ts
        await until(lambda: all(n.applied(later.txn_id) for n in c.nodes.values()), "the second write")
        for n in c.nodes.values():
            assert n.rows() == [(1, "second")] and n.version(1) == ts_tuple(later.commit_ts)

    run(tmp_path, t)


# -- conflicts ------------------------------------------------------------------------------------


def test_live_intent_of_another_txn_is_a_write_conflict(tmp_path: Path) -> None:
    """Transaction B (from node 3) is prepared on nodes 2 and 3 and waiting for its COMMIT to reach
    node 2. A (from node 1) writes a free row and B's row: 1213, nothing of A anywhere, and B commits."""

    async def t(c: Cluster) -> None:
        await create_kv(c)
        c.down.add(1)  # B's PREPARE does not reach node 1
        b_commit = c.hold(3, 2, "txn_commit")
        b_task = asyncio.create_task(write(c[3], "INSERT INTO kv VALUES (2, 'B')"))
        await until(lambda: bool(c.calls_of("txn_commit", src=3, dst=2)), "B's COMMIT to be on its way")
        (b,) = prepare_txns(c, 3)
        assert c[2].prepared == c[3].prepared == {b}
        c.down.discard(1)

        with pytest.raises(WriteConflict) as err:
            await write(c[1], "INSERT INTO kv VALUES (1, 'A'), (2, 'A')")
        assert err.value.code == 1213 and err.value.sqlstate == "40001"
        assert err.value.message.startswith(
            "Deadlock found when trying to get lock; try restarting transaction"
        )
        assert f"locked by transaction {b}" in err.value.message
        (a,) = prepare_txns(c, 1)
        assert c[1].rep.coordinator.state_of(a) == ("aborted", None)
        assert c[1].idle()  # its own intents released at once
        assert c[2].prepared == c[3].prepared == {b}
        for n in c.nodes.values():
            assert n.rows() == [] and not n.applied(a)
        assert not c.calls_of("txn_commit", txn=a) and not c.calls_of("txn_replay", txn=a)

        b_commit.set()
        b_res = await b_task
        assert b_res.txn_id == b and b_res.committed == 2
        assert c[2].rows() == c[3].rows() == [(2, "B")]
        assert c[1].rows() == []  # it missed B's PREPARE: catching it up is anti-entropy's job
        assert all(n.idle() for n in c.nodes.values())

    run(tmp_path, t)


def test_row_changed_since_read_is_a_write_conflict(tmp_path: Path) -> None:
    """Node 1 misses an update of row 1 (it was unreachable), then updates the row from its stale copy:
    the quorum it needs has the newer version, so the lost update is refused with 1213."""

    async def t(c: Cluster) -> None:
        await create_kv(c)
        first = await write(c[1], "INSERT INTO kv VALUES (1, 'v0')")
        await until(lambda: all(n.applied(first.txn_id) for n in c.nodes.values()), "the insert everywhere")
        c.down.add(1)
        newer = await write(c[2], "UPDATE kv SET v = 'from node 2' WHERE id = 1")
        assert newer.committed == 2
        c.down.discard(1)
        assert c[1].rows() == [(1, "v0")] and c[1].version(1) == ts_tuple(first.commit_ts)

        with pytest.raises(WriteConflict) as err:
            await write(c[1], "UPDATE kv SET v = 'lost update' WHERE id = 1")
        assert err.value.code == 1213 and "row of kv changed since it was read" in err.value.message
        a = prepare_txns(c, 1)[-1]
        answers = c.calls_of("txn_prepare", txn=a)
        await until(lambda: all(call.answer is not NOT_ANSWERED for call in answers), "both answers")
        assert [call.answer for call in answers] == [
            {"ok": False, "conflict": "row of kv changed since it was read", "ts": call.answer["ts"]}
            for call in answers
        ]
        assert c[1].rows() == [(1, "v0")]
        assert c[2].rows() == c[3].rows() == [(1, "from node 2")]
        for n in c.nodes.values():
            assert not n.applied(a) and n.idle()
        assert c[2].version(1) == c[3].version(1) == ts_tuple(newer.commit_ts)

    run(tmp_path, t)


def test_row_changed_on_the_coordinator_between_dry_run_and_commit(tmp_path: Path) -> None:
    """A client transaction read row 1, then a write from node 2 was applied on node 1 before the COMMIT.
    The coordinator's own PREPARE may skip re-reading versions only while nothing was applied since the
    dry run (the apply epoch): here something was, so it must refuse before sending anything."""

    async def t(c: Cluster) -> None:
        await create_kv(c)
        first = await write(c[1], "INSERT INTO kv VALUES (1, 'v0')")
        await until(lambda: all(n.applied(first.txn_id) for n in c.nodes.values()), "the insert everywhere")
        stale = dry_run(c[1], "UPDATE kv SET v = 'from a stale read' WHERE id = 1")
        newer = await write(c[2], "UPDATE kv SET v = 'from node 2' WHERE id = 1")
        await until(lambda: c[1].applied(newer.txn_id), "node 1 to apply node 2's write")
        assert c[1].rep.apply_epoch(DB) != stale.epoch
        sent = len(c.calls)
        with pytest.raises(WriteConflict) as err:
            await commit(c[1], stale)
        assert err.value.code == 1213 and "row of kv changed since it was read" in err.value.message
        assert len(c.calls) == sent  # refused by its own participant: no PREPARE left the node
        await until(
            lambda: all(n.applied(newer.txn_id) for n in c.nodes.values()), "node 2's write everywhere"
        )
        for n in c.nodes.values():
            assert n.rows() == [(1, "from node 2")] and n.idle()

    run(tmp_path, t)


# -- quorum and consistency levels ----------------------------------------------------------------


def test_one_of_three_alive_fails_before_any_prepare(tmp_path: Path) -> None:
    """Too few alive for the level: refused up front, so no node takes intents that would block others."""

    async def t(c: Cluster) -> None:
        await create_kv(c)
        c.alive = {1}
        sent = len(c.calls)
        with pytest.raises(QuorumNotReached) as err:
            await write(c[1], "INSERT INTO kv VALUES (1, 'x')")
        assert err.value.code == 1105
        assert err.value.message == "quorum not reached: 1 of 3 nodes alive, 2 needed for QUORUM"
        assert len(c.calls) == sent  # nothing was sent to anyone
        assert c[1].rep.participant.stats["prepared"] == 1  # the DDL's only: no local PREPARE either
        for n in c.nodes.values():
            assert n.rows() == [] and n.idle()

    run(tmp_path, t)


def test_two_nodes_down_but_counted_alive(tmp_path: Path) -> None:
    """The membership layer has not noticed yet: PREPARE is sent and fails; the 1105 says how many
    acknowledged and which nodes failed, and the coordinator's own copy is untouched."""

    async def t(c: Cluster) -> None:
        await create_kv(c)
        c.down |= {2, 3}
        log_before = c[1].log_count()
        with pytest.raises(QuorumNotReached) as err:
            await write(c[1], "INSERT INTO kv VALUES (1, 'x')")
        msg = err.value.message
        assert err.value.code == 1105
        assert msg.startswith("quorum not reached: 1 of 3 nodes acknowledged PREPARE, 2 needed for QUORUM (")
        assert "node 2: node2 unreachable" in msg and "node 3: node3 unreachable" in msg
        (a,) = prepare_txns(c, 1)
        assert c[1].rows() == [] and c[1].log_count() == log_before and c[1].idle()
        assert c[1].rep.coordinator.state_of(a) == ("aborted", None)
        assert {call.method for call in c.calls if call.payload.get("txn") == a} == {"txn_prepare"}
        c.down.clear()
        for n in c.nodes.values():
            assert n.rows() == [] and not n.applied(a) and n.idle()

    run(tmp_path, t)


@pytest.mark.parametrize("how", ["unreachable", "not_alive"])
def test_one_with_both_peers_down_commits_locally(tmp_path: Path, how: str) -> None:
    """ONE needs only this node: the write is acknowledged from the local copy alone, and the
    unreachable peers (counted alive or not) are left for anti-entropy, holding nothing."""

    async def t(c: Cluster) -> None:
        await create_kv(c)
        if how == "unreachable":
            c.down |= {2, 3}
        else:
            c.alive = {1}
        res = await write(c[1], "INSERT INTO kv VALUES (1, 'local')", level="ONE")
        assert (res.prepared, res.committed) == (1, 1)
        assert c[1].rows() == [(1, "local")] and c[1].committed_ts(res.txn_id) == ts_tuple(res.commit_ts)
        await until(lambda: all(call.answer is not NOT_ANSWERED for call in c.calls), "PREPAREs to fail")
        c.down.clear()
        for n in (c[2], c[3]):
            assert n.rows() == [] and not n.applied(res.txn_id)
        assert all(n.idle() for n in c.nodes.values())

    run(tmp_path, t)


@pytest.mark.parametrize("how", ["unreachable", "not_alive"])
def test_all_with_one_peer_down_is_quorum_not_reached(tmp_path: Path, how: str) -> None:
    """ALL counts the total membership: one member missing (known dead, or failing at PREPARE) is 1105,
    and a peer that did prepare is sent the ABORT."""

    async def t(c: Cluster) -> None:
        await create_kv(c)
        if how == "unreachable":
            c.down.add(3)
        else:
            c.alive.discard(3)
        with pytest.raises(QuorumNotReached) as err:
            await write(c[1], "INSERT INTO kv VALUES (1, 'x')", level="ALL")
        if how == "unreachable":
            assert err.value.message == (
                "quorum not reached: 2 of 3 nodes acknowledged PREPARE, 3 needed for "
                "ALL (node 3: node3 unreachable)"
            )
            (a,) = prepare_txns(c, 1)
            # node 2 prepared: it is sent the ABORT and lets go of its intents
            await until(lambda: bool(c.calls_of("txn_abort", dst=2, txn=a)) and c[2].idle(), "node 2's ABORT")
            assert c[2].rep.participant.status(StatusRequest(DB, a)) == StatusAnswer("aborted")
        else:
            assert err.value.message == "quorum not reached: 2 of 3 nodes alive, 3 needed for ALL"
            assert not prepare_txns(c, 1)
        c.down.clear()
        for n in c.nodes.values():
            assert n.rows() == [] and n.idle()

    run(tmp_path, t)


def test_late_prepare_after_an_abort_decision_gets_the_abort(tmp_path: Path) -> None:
    """Node 2 conflicts (another transaction, from a coordinator that is not in this test, is prepared
    there) and the coordinator aborts while node 3's PREPARE is still on its way. When node 3 prepares
    afterwards it must be told, not left holding intents until the stale-transaction timeout."""

    async def t(c: Cluster) -> None:
        await create_kv(c)
        other = dry_run(c[2], "INSERT INTO kv VALUES (1, 'other')")
        start = HLC(9).now()
        b = to_txn_id(start)
        body = m.encode_body("dml", rows=encode_transaction(DB, start, other.changes))
        assert c[2].rep.participant.prepare(Prepare(DB, b, start, 9, body, 1)).ok is True

        slow = c.hold(dst=3)
        with pytest.raises(WriteConflict) as err:
            await write(c[1], "INSERT INTO kv VALUES (1, 'A')")
        assert f"locked by transaction {b}" in err.value.message
        (a,) = prepare_txns(c, 1)
        assert c[1].idle() and c[2].prepared == {b}
        slow.set()
        await until(lambda: bool(c.calls_of("txn_abort", dst=3, txn=a)) and c[3].idle(), "node 3's ABORT")
        assert c.calls_of("txn_prepare", dst=3, txn=a)[0].answer["ok"] is True  # it did prepare, late
        assert c[3].rep.participant.status(StatusRequest(DB, a)) == StatusAnswer("aborted")
        assert not c.calls_of("txn_abort", dst=2, txn=a)  # node 2 never prepared it
        c[2].rep.participant.abort_local(b)
        for n in c.nodes.values():
            assert n.rows() == [] and not n.applied(a) and n.idle()

    run(tmp_path, t)


def test_prepare_answers_after_the_deadline_quorum_fails_leftovers_resolved(tmp_path: Path) -> None:
    """Both peers prepare but their answers miss the coordinator's deadline: 1105, nothing applied, and
    the transaction they hold is aborted by their resolvers (the coordinator reports it aborted)."""

    async def t(c: Cluster) -> None:
        await create_kv(c)
        c[1].rep.coordinator.write_timeout = 0.1
        c.hold(src=1, method="txn_prepare", answer=True)  # never released: the answers are lost
        with pytest.raises(QuorumNotReached) as err:
            await write(c[1], "INSERT INTO kv VALUES (1, 'too slow')")
        assert err.value.message.startswith(
            "quorum not reached: 1 of 3 nodes acknowledged PREPARE, 2 needed for QUORUM"
        )
        (a,) = prepare_txns(c, 1)
        assert c[1].idle() and c[1].rep.coordinator.state_of(a) == ("aborted", None)
        assert c[2].prepared == c[3].prepared == {a}  # they acted; their answers were lost to the deadline
        await asyncio.sleep(HEARTBEAT + 0.05)
        for n in (c[2], c[3]):
            await n.rep.participant.resolve_stale()
            assert n.rep.participant.stats["resolved_abort"] == 1
        for n in c.nodes.values():
            assert n.rows() == [] and not n.applied(a) and n.idle()

    run(tmp_path, t)


# -- a node behind on schema ----------------------------------------------------------------------


def test_schema_behind_refuses_prepare_then_gets_replay_once_caught_up(tmp_path: Path) -> None:
    """Node 3 missed a DDL. It refuses the next PREPARE (it would apply rows against the wrong schema),
    the write commits at QUORUM without it, and the REPLAY it is sent waits until its schema catches
    up (here: the missed DDL replayed from node 1's commit log, as anti-entropy would) and then applies."""

    async def t(c: Cluster) -> None:
        await create_kv(c)
        c.down.add(3)
        ddl = await c[1].rep.commit_ddl(DB, ["CREATE TABLE other(id INTEGER PRIMARY KEY)"], 1, "QUORUM")
        c.down.discard(3)
        assert [n.schema_version() for n in c.nodes.values()] == [2, 2, 1]
        assert not c[3].has_table("other")

        res = await write(c[1], "INSERT INTO kv VALUES (1, 'after ddl')")
        assert (res.prepared, res.committed) == (2, 2)
        (refused,) = c.calls_of("txn_prepare", dst=3, txn=res.txn_id)
        await until(lambda: refused.answer is not NOT_ANSWERED, "node 3's answer")
        assert refused.answer == {"ok": False, "reject": f"schema of '{DB}' on node 3 is behind (1 < 2)"}
        await until(lambda: bool(c.calls_of("txn_replay", dst=3, txn=res.txn_id)), "the REPLAY to node 3")
        (replay,) = c.calls_of("txn_replay", dst=3, txn=res.txn_id)
        await asyncio.sleep(0.02)
        assert replay.answer is NOT_ANSWERED and c[3].rows() == []  # waiting for its schema
        assert c[3].idle()  # a replay takes no intents
        # meanwhile node 3 writes against its old schema: the others refuse (retryable), nothing lands
        with pytest.raises(WriteConflict) as err:
            await write(c[3], "INSERT INTO kv VALUES (5, 'planned on the old schema')")
        assert f"schema of '{DB}' changed (version 2, statement planned at 1)" in err.value.message
        assert c[3].idle() and all(
            n.rows() == ([(1, "after ddl")] if n.id != 3 else []) for n in c.nodes.values()
        )

        wall, logical, node, origin, body = (
            c[1]
            .check.execute(
                f"SELECT wall, logical, node, origin, payload FROM {rt.TXN_LOG} WHERE txn_id = ?",
                (ddl.txn_id,),
            )
            .fetchone()
        )
        missed = Replay(DB, ddl.txn_id, Timestamp(wall, logical, node), origin, body, 1)
        assert await c[3].handlers["txn_replay"](wire(missed.encode()), None) == {"ok": True}
        await until(lambda: replay.answer is not NOT_ANSWERED, "the REPLAY's answer")
        assert replay.answer == {"ok": True}
        assert c[3].has_table("other") and c[3].schema_version() == 2
        assert c[3].rows() == [(1, "after ddl")]
        assert c[3].committed_ts(res.txn_id) == c[1].committed_ts(res.txn_id) == ts_tuple(res.commit_ts)
        assert c[3].committed_ts(ddl.txn_id) == ts_tuple(ddl.commit_ts)
        assert c[3].version(1) == c[2].version(1) == ts_tuple(res.commit_ts)

    run(tmp_path, t)


# -- exactly once ---------------------------------------------------------------------------------


def test_commit_delivered_twice_applies_once(tmp_path: Path) -> None:
    """The coordinator's COMMIT and two duplicates racing it (all three in flight while a client holds
    node 2's writer lock, so they overlap for real), one retried after a later write, and a REPLAY of an
    applied transaction: one txn-log entry, and the newest row stays."""

    async def t(c: Cluster) -> None:
        await create_kv(c)
        held = c.hold(1, 2, "txn_commit")
        res = await write(c[1], "INSERT INTO kv VALUES (1, 'once')")  # node 3 made the quorum
        (commit,) = c.calls_of("txn_commit", dst=2, txn=res.txn_id)
        assert commit.answer is NOT_ANSWERED and res.txn_id in c[2].prepared
        handler = c[2].handlers["txn_commit"]
        lock = c[2].dbm.write_lock(DB)
        await lock.acquire(timeout=1.0)  # a client statement on node 2 is writing
        dups = [asyncio.create_task(handler(commit.payload, None)) for _ in range(2)]
        held.set()
        await asyncio.sleep(0.02)
        assert not any(d.done() for d in dups) and commit.answer is NOT_ANSWERED  # all three waiting
        assert not c[2].applied(res.txn_id)
        lock.release()
        assert await asyncio.gather(*dups) == [{"ok": True}, {"ok": True}]
        await until(lambda: commit.answer is not NOT_ANSWERED, "the coordinator's own COMMIT")
        assert commit.answer == {"ok": True}
        for n in c.nodes.values():
            await until(lambda n=n: n.applied(res.txn_id), f"node {n.id} to apply")
            assert n.rows() == [(1, "once")] and n.idle()
        logs = {i: n.log_count() for i, n in c.nodes.items()}

        later = await write(c[3], "UPDATE kv SET v = 'later' WHERE id = 1")
        await until(lambda: all(n.applied(later.txn_id) for n in c.nodes.values()), "the later write")
        assert await handler(commit.payload, None) == {
            "ok": True
        }  # after the fact: acknowledged, not applied
        body = (
            c[1]
            .check.execute(f"SELECT payload FROM {rt.TXN_LOG} WHERE txn_id = ?", (res.txn_id,))
            .fetchone()[0]
        )
        sent = Commit.decode(commit.payload)
        replay = Replay(sent.db, sent.txn, sent.cts, 1, body, 1)
        assert await c[3].handlers["txn_replay"](wire(replay.encode()), None) == {"ok": True}
        for i, n in c.nodes.items():
            assert n.log_count() == logs[i] + 1  # the later write only
            assert n.check.execute(
                f"SELECT COUNT(*) FROM {rt.TXN_LOG} WHERE txn_id = ?", (res.txn_id,)
            ).fetchone() == (1,)
            assert n.committed_ts(res.txn_id) == ts_tuple(res.commit_ts)
            assert n.rows() == [(1, "later")] and n.version(1) == ts_tuple(later.commit_ts)
            assert n.idle()

    run(tmp_path, t)


# -- a coordinator that dies ----------------------------------------------------------------------


@pytest.mark.parametrize("coordinator", ["unreachable", "reachable"])
def test_stale_prepared_txn_is_aborted_when_its_coordinator_never_decided(
    tmp_path: Path, coordinator: str
) -> None:
    """The coordinator dies after every node prepared and before it decided (node 3's PREPARE answer
    never reached it). After the heartbeat timeout each survivor asks around: nobody committed it and
    the coordinator is gone (or says aborted) → abort, intents released, nothing applied."""

    async def t(c: Cluster) -> None:
        await create_kv(c)
        c.hold(1, 3, "txn_prepare", answer=True)
        task = asyncio.create_task(write(c[1], "INSERT INTO kv VALUES (1, 'undecided')", level="ALL"))
        await until(lambda: len(prepare_txns(c, 1)) == 1, "the PREPAREs")
        (a,) = prepare_txns(c, 1)
        await until(lambda: all(a in n.prepared for n in c.nodes.values()), "PREPARE everywhere")
        for n in (c[2], c[3]):  # fresh: nobody is asked yet
            await n.rep.participant.resolve_stale()
        assert all(a in n.prepared for n in c.nodes.values()) and not c.calls_of("txn_status")

        task.cancel()  # the coordinator dies before deciding
        with pytest.raises(asyncio.CancelledError):
            await task
        survivors = [c[2], c[3]]
        if coordinator == "unreachable":
            c.down.add(1)
        else:
            assert c[1].rep.coordinator.state_of(a) == ("aborted", None)
            survivors.insert(0, c[1])  # its own participant resolves its leftover too
        await asyncio.sleep(HEARTBEAT + 0.05)
        for n in survivors:
            await n.rep.participant.resolve_stale()
            assert n.rep.participant.stats["resolved_abort"] == 1
            assert n.rep.participant.status(StatusRequest(DB, a)) == StatusAnswer("aborted")
        assert c.calls_of("txn_status", dst=2, txn=a)
        for n in survivors:
            assert n.idle() and n.rows() == [] and not n.applied(a)
        status_to_1 = c.calls_of("txn_status", dst=1, txn=a)
        if coordinator == "unreachable":
            assert status_to_1 and all(isinstance(s.answer, ConnectionError) for s in status_to_1)
        else:
            assert status_to_1 and all(s.answer == {"state": "aborted"} for s in status_to_1)

    run(tmp_path, t)


@pytest.mark.parametrize("coordinator", ["dead", "partitioned"])
def test_stale_prepared_txn_is_committed_when_a_peer_has_it(tmp_path: Path, coordinator: str) -> None:
    """The coordinator decided, its COMMIT reached node 2 but not node 3, and it stopped before applying
    the transaction itself. Node 3 must not abort what node 2 committed: it commits it with the same
    commit timestamp. A coordinator that was only cut off (its process kept its state) later settles
    its own leftover the same way, so all three copies end identical."""

    async def t(c: Cluster) -> None:
        await create_kv(c)
        c.drops.add((1, 3, "txn_commit"))
        c.hold(1, 2, "txn_commit", answer=True)  # node 2 applies; its ack never gets back
        task = asyncio.create_task(write(c[1], "INSERT INTO kv VALUES (1, 'decided')"))
        await until(lambda: len(prepare_txns(c, 1)) == 1, "the PREPAREs")
        (a,) = prepare_txns(c, 1)
        await until(
            lambda: c[2].applied(a) and bool(c.calls_of("txn_commit", dst=3, txn=a)),
            "node 2 to apply and node 3's COMMIT to be lost",
        )
        assert a in c[3].prepared and not c[3].applied(a)
        await c[3].rep.participant.resolve_stale()  # fresh: left alone
        assert a in c[3].prepared

        task.cancel()  # the coordinator stops before its own apply
        with pytest.raises(asyncio.CancelledError):
            await task
        c.down.add(1)
        await asyncio.sleep(HEARTBEAT + 0.05)
        await c[3].rep.participant.resolve_stale()
        assert c[3].rep.participant.stats["resolved_commit"] == 1
        assert c[3].idle() and c[2].idle()
        assert c[3].rows() == c[2].rows() == [(1, "decided")]
        cts = c[2].committed_ts(a)
        assert cts is not None and c[3].committed_ts(a) == cts
        assert c[3].version(1) == c[2].version(1) == cts
        assert c[1].rows() == [] and not c[1].applied(a) and a in c[1].prepared
        if coordinator == "dead":
            return  # its copy catches up through anti-entropy
        c.down.discard(1)
        # interrupted after its decision, it settles the transaction with the others: node 2 has it
        await until(lambda: c[1].applied(a), "the coordinator to settle its leftover", 6.0)
        assert c[1].rep.coordinator.state_of(a)[0] == "committed"
        assert c[1].idle() and c[1].rows() == [(1, "decided")]
        assert c[1].committed_ts(a) == cts and c[1].version(1) == cts

    run(tmp_path, t)


# -- a coordinator cut off between its decision and the COMMIT acks (found by tests/chaos) ------


def test_unconfirmed_commit_is_aborted_when_every_participant_gave_up(tmp_path: Path) -> None:
    """Both participants prepared, the coordinator decided, and its COMMITs were lost; after the
    heartbeat timeout both participants, unable to reach it, aborted the transaction and released its
    rows. The coordinator must not apply it alone (its image, with the later commit timestamp, would
    overwrite whatever they accepted meanwhile): the client hears "outcome unknown", the transaction
    stays undecided on the coordinator (its intent held), and once the participants answer that they
    aborted it, it is aborted there too. Nothing is applied anywhere."""

    async def t(c: Cluster) -> None:
        await create_kv(c)
        gate = c.hold(1, None, "txn_commit")  # the COMMITs of the first round hang
        task = asyncio.create_task(write(c[1], "INSERT INTO kv VALUES (1, 'orphan')"))
        await until(lambda: len(prepare_txns(c, 1)) == 1, "the PREPAREs")
        (a,) = prepare_txns(c, 1)
        await until(lambda: len(c.calls_of("txn_commit", src=1, txn=a)) == 2, "the COMMITs")
        c.down.add(1)  # cut off: the participants' status questions fail
        await asyncio.sleep(HEARTBEAT + 0.05)
        for n in (c[2], c[3]):
            await n.rep.participant.resolve_stale()
            assert n.rep.participant.stats["resolved_abort"] == 1 and n.idle()
        with pytest.raises(CommitUnknown, match="outcome unknown"):
            await task  # the write timeout passes without an ack
        assert a in c[1].prepared and not c[1].applied(a)  # undecided, intent held
        assert c[1].rep.coordinator.state_of(a)[0] == "pending"
        assert c[1].rep.participant.status(StatusRequest(DB, a)) == StatusAnswer("pending")
        c.down.discard(1)
        gate.set()  # the held COMMITs arrive late: both refuse them as aborted
        await until(lambda: c[1].rep.coordinator.state_of(a)[0] == "aborted", "the settlement", 6.0)
        assert c[1].idle() and not c[1].applied(a)
        for n in c.nodes.values():
            assert n.rows() == [] and not n.applied(a)
        refusals = [x.answer for x in c.calls_of("txn_settle", src=1, txn=a) if isinstance(x.answer, dict)]
        assert refusals and all(r.get("aborted") and not r.get("ok") for r in refusals)

    run(tmp_path, t)


def test_unconfirmed_commit_is_committed_when_one_participant_applied_it(tmp_path: Path) -> None:
    """Same cut, but node 2 had applied the COMMIT (only its ack was lost) while node 3 gave up. The
    transaction is committed — node 2 has it — so the coordinator, asking again, learns it and applies
    it; node 3's late refusal does not matter and node 3 gets the rows by anti-entropy."""

    async def t(c: Cluster) -> None:
        await create_kv(c)
        c.hold(1, 2, "txn_commit", answer=True)  # node 2 applies, the ack is held
        c.drops.add((1, 3, "txn_commit"))
        task = asyncio.create_task(write(c[1], "INSERT INTO kv VALUES (1, 'kept')"))
        await until(lambda: len(prepare_txns(c, 1)) == 1, "the PREPAREs")
        (a,) = prepare_txns(c, 1)
        await until(lambda: c[2].applied(a), "node 2 to apply")
        with pytest.raises(CommitUnknown):
            await task
        assert not c[1].applied(a)
        c.hold_after.clear()  # from now on node 2 answers: the retry finds it applied
        await until(lambda: c[1].applied(a), "the coordinator to settle it as committed", 6.0)
        assert c[1].rep.coordinator.state_of(a)[0] == "committed"
        assert c[1].rows() == c[2].rows() == [(1, "kept")]
        assert c[1].committed_ts(a) == c[2].committed_ts(a)

    run(tmp_path, t)


def test_commit_or_replay_after_giving_up_is_refused_as_aborted(tmp_path: Path) -> None:
    """A participant that aborted a prepared transaction never applies it through 2PC afterwards."""

    async def t(c: Cluster) -> None:
        await create_kv(c)
        c.drops.add((1, 2, "txn_commit"))
        c.drops.add((1, 3, "txn_commit"))
        c.drops.add((1, None, "txn_settle"))
        task = asyncio.create_task(write(c[1], "INSERT INTO kv VALUES (1, 'late')"))
        await until(lambda: len(prepare_txns(c, 1)) == 1, "the PREPAREs")
        (a,) = prepare_txns(c, 1)
        c[2].rep.participant.abort_local(a)
        cts = c[1].hlc.now()
        commit_ans = await c[2].handlers["txn_commit"](Commit(DB, a, cts).encode(), None)
        assert commit_ans["aborted"] and not commit_ans["ok"], commit_ans
        body = m.encode_body(
            "dml",
            rows=encode_transaction(
                DB, c[1].hlc.peek(), [RowChange("kv", "INSERT", key(1), None, {"id": 1, "v": "late"})]
            ),
        )
        replay_ans = await c[2].handlers["txn_replay"](Replay(DB, a, cts, 1, body, 1).encode(), None)
        assert replay_ans["aborted"] and not replay_ans["ok"], replay_ans
        assert c[2].rows() == [] and not c[2].applied(a)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    run(tmp_path, t)


def test_settle_makes_a_node_that_never_prepared_give_the_transaction_up(tmp_path: Path) -> None:
    """SETTLE never applies what a node did not prepare: it gives it up for good, so a REPLAY or a
    PREPARE of that transaction still on its way is refused when it lands."""

    async def t(c: Cluster) -> None:
        await create_kv(c)
        txn = to_txn_id(c[1].hlc.now())
        cts = c[1].hlc.now()
        ans = await c[3].handlers["txn_settle"](Settle(DB, txn, cts).encode(), None)
        assert ans["aborted"] and not ans["ok"], ans
        body = m.encode_body(
            "dml",
            rows=encode_transaction(
                DB, c[1].hlc.peek(), [RowChange("kv", "INSERT", key(1), None, {"id": 1, "v": "late"})]
            ),
        )
        replay = await c[3].handlers["txn_replay"](Replay(DB, txn, cts, 1, body, 1).encode(), None)
        assert replay["aborted"] and not replay["ok"], replay
        prep = await c[3].handlers["txn_prepare"](Prepare(DB, txn, cts, 1, body, 1).encode(), None)
        assert not prep.get("ok"), prep
        assert c[3].rows() == [] and not c[3].applied(txn) and c[3].idle()

    run(tmp_path, t)


def test_settle_counts_a_removed_member_as_having_given_up(tmp_path: Path) -> None:
    """An unconfirmed commit whose one reachable participant gave it up and whose other participant was
    removed from the cluster for good is aborted: the removed node will never commit it, and without
    this its coordinator would hold the transaction's intents until restart."""

    async def t(c: Cluster) -> None:
        await create_kv(c)
        c.drops.add((1, None, "txn_commit"))
        c.drops.add((1, None, "txn_settle"))  # nobody hears the settlement yet
        task = asyncio.create_task(write(c[1], "INSERT INTO kv VALUES (1, 'orphan')"))
        await until(lambda: len(prepare_txns(c, 1)) == 1, "the PREPAREs")
        (a,) = prepare_txns(c, 1)
        with pytest.raises(CommitUnknown):
            await task
        c[2].rep.participant.abort_local(a)  # node 2 gave up on it
        c.down.add(3)  # node 3 is gone...
        await asyncio.sleep(0.6)
        assert c[1].rep.coordinator.state_of(a)[0] == "pending"  # ...but still a member: keep asking
        c.removed.add(3)  # ...and now removed from the cluster
        c.drops.discard((1, None, "txn_settle"))
        await until(lambda: c[1].rep.coordinator.state_of(a)[0] == "aborted", "the settlement", 7.0)
        assert c[1].idle() and not c[1].applied(a) and c[1].rows() == []

    run(tmp_path, t)
