"""The 2PC participant's decisions (replication/commit/participant.py), its RPC handlers (commit/txn_handlers.py) and
the body codec it trusts (replication/messages.py), with a real DatabaseManager, HLC and ApplyQueues in
a temporary directory. The typed messages themselves: test_replication_messages.py.

Why: PREPARE is where a node decides whether a write may go ahead — a wrong "ok" loses a concurrent
write, a wrong "conflict"/"reject" blocks clients — and resolution is where an undecided transaction
is committed or aborted without its coordinator. Every input comes off the network, so malformed
messages must be answered, not crash the handler.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest

from marmot.hlc import HLC, Timestamp
from marmot.replication import messages as m
from marmot.replication.apply.queue import ApplyQueues
from marmot.replication.changes import RowChange, encode_transaction
from marmot.replication.commit.participant import Participant
from marmot.replication.commit.txn_handlers import handlers
from marmot.replication.commit.txn_messages import (
    Abort,
    Ack,
    Commit,
    Prepare,
    PrepareAnswer,
    Replay,
    StatusAnswer,
    StatusRequest,
)
from marmot.storage import replication_tables as rt
from marmot.storage.databases import DatabaseManager
from marmot.storage.rowkey import encode_row_key
from tests.support import run_async

DB = "marmot"
COORD = 2


def ins(pk: int, v: str = "x") -> RowChange:
    return RowChange("kv", "INSERT", encode_row_key("kv", [pk]), None, {"id": pk, "v": v})


class Env:
    """One node: data directory, apply queues and participant wired as ReplicationService wires them."""

    def __init__(self, tmp_path: Path, **kw: Any) -> None:
        self.dbm = DatabaseManager(tmp_path / "data")
        self.queues = ApplyQueues(self.dbm)
        self.p = Participant(1, HLC(1), self.dbm, self.queues, heartbeat_timeout=10.0, ddl_lease=30.0, **kw)
        self.queues.on_applied = self.p.note_applied
        self.coord = HLC(COORD)
        self.check = self.dbm.open(DB)
        self.check.execute("CREATE TABLE kv(id INTEGER PRIMARY KEY, v TEXT)")

    def req(
        self,
        txn: int,
        changes: list[RowChange] | None = None,
        *,
        sv: int = 0,
        bv: list[Any] | None = None,
        ddl: list[str] | None = None,
        db: str = DB,
    ) -> Prepare:
        """A PREPARE from coordinator ``COORD``; ``bv`` as on the wire (``[wall, logical, node]`` or None)."""
        start = self.coord.now()
        if ddl is not None:
            body = m.encode_body("ddl", ddl=ddl)
        else:
            body = m.encode_body("dml", rows=encode_transaction(db, start, changes or [], txn))
        return Prepare(db, txn, start, COORD, body, sv, tuple(m.version_in(v) for v in bv or ()))

    async def rpc(self, method: str, payload: Any) -> Any:
        """``method`` as a peer calls it: the payload off the network, the answer as sent back."""
        return await handlers(self.p)[method](payload, None)

    def rows(self) -> list[tuple[Any, ...]]:
        return self.check.execute("SELECT id, v FROM kv ORDER BY id").fetchall()

    def stale(self, txn: int) -> None:
        """Make a prepared transaction look older than its timeout (instead of sleeping)."""
        self.p.prepared[txn].since -= 1000.0

    async def close(self) -> None:
        await self.queues.close()
        for conn in self.p._readers.values():
            conn.close()
        self.check.close()
        self.dbm.close()


def run(tmp_path: Path, fn: Callable[[Env], Awaitable[None]], **kw: Any) -> None:
    async def main() -> None:
        env = Env(tmp_path, **kw)
        try:
            await fn(env)
        finally:
            await env.close()

    run_async(main(), timeout=60)


def is_conflict(ans: PrepareAnswer) -> bool:
    return ans.ok is False and ans.conflict is not None and ans.reject is None


def is_reject(ans: PrepareAnswer | dict[str, Any]) -> bool:
    if isinstance(ans, dict):  # an answer as sent back
        ans = PrepareAnswer.decode(ans)
    return ans.ok is False and ans.reject is not None and ans.conflict is None


def replay_of(req: Prepare, cts: Timestamp) -> Replay:
    """The committed transaction ``req`` prepared, as a REPLAY with commit timestamp ``cts``."""
    return Replay(req.db, req.txn, cts, req.coord, req.body, req.sv)


# -- PREPARE --------------------------------------------------------------------------------------


def test_prepare_takes_intents_and_answers_a_later_ts(tmp_path: Path) -> None:
    async def t(env: Env) -> None:
        req = env.req(101, [ins(1), ins(2)])
        ans = env.p.prepare(req)
        assert ans.ok is True
        assert ans.ts is not None and ans.ts > req.ts  # the commit ts will be above both clocks
        assert env.p.intents.owner(DB, encode_row_key("kv", [1])) == 101
        assert 101 in env.p.prepared and env.p.prepared[101].timeout == 10.0
        assert env.p.prepare(req).ok is True  # a retried PREPARE is answered the same
        assert env.p.stats["prepared"] == 1
        assert env.rows() == []  # nothing applied before COMMIT

    run(tmp_path, t)


def test_conflict_on_live_intent_of_another_txn(tmp_path: Path) -> None:
    async def t(env: Env) -> None:
        assert env.p.prepare(env.req(101, [ins(1)])).ok
        ans = env.p.prepare(env.req(102, [ins(2), ins(1)]))
        assert is_conflict(ans) and ans.owner == 101
        assert 102 not in env.p.prepared
        assert env.p.intents.owner(DB, encode_row_key("kv", [2])) is None  # took nothing
        assert env.p.stats["conflicts"] == 1
        assert env.p.prepare(env.req(103, [ins(2)])).ok  # other rows are fine

    run(tmp_path, t)


def test_reject_when_schema_behind_conflict_when_ahead(tmp_path: Path) -> None:
    async def t(env: Env) -> None:
        ans = env.p.prepare(env.req(101, [ins(1)], sv=1))
        assert is_reject(ans) and "behind" in str(ans.reject)
        assert env.p.intents.count() == 0 and not env.p.prepared
        assert env.p.stats["rejected"] == 1
        # land a DDL: local version 1; a statement planned at 0 is now a retryable conflict
        assert env.p.prepare(env.req(200, ddl=["CREATE TABLE extra(id INTEGER PRIMARY KEY)"])).ok
        assert (await env.p.commit_local(DB, 200, env.coord.now())).ok
        assert env.p.schema_version(DB) == 1
        ans = env.p.prepare(env.req(102, [ins(1)], sv=0))
        assert is_conflict(ans) and "schema" in str(ans.conflict)
        assert env.p.prepare(env.req(103, [ins(1)], sv=1)).ok

    run(tmp_path, t)


def test_unknown_database_and_leaving_are_rejected(tmp_path: Path) -> None:
    leaving = [False]

    async def t(env: Env) -> None:
        assert is_reject(env.p.prepare(env.req(101, [ins(1)], db="nosuchdb")))
        leaving[0] = True
        ans = env.p.prepare(env.req(102, [ins(1)]))
        assert is_reject(ans) and "leaving" in str(ans.reject)
        assert env.p.intents.count() == 0 and not env.p.prepared

    run(tmp_path, t, leaving=lambda: leaving[0])


MALFORMED: dict[str, Callable[[dict[str, Any]], Any]] = {  # from a valid PREPARE's map
    "not_a_map": lambda r: [r],
    "no_db": lambda r: {k: v for k, v in r.items() if k != "db"},
    "txn_str": lambda r: {**r, "txn": "101"},
    "txn_bool": lambda r: {**r, "txn": True},
    "ts_short": lambda r: {**r, "ts": r["ts"][:2]},
    "ts_negative": lambda r: {**r, "ts": [-1, 0, 2]},
    "body_str": lambda r: {**r, "body": "x"},
    "body_garbage": lambda r: {**r, "body": b"\xc1\xc1"},
    "sv_missing": lambda r: {k: v for k, v in r.items() if k != "sv"},
    "bv_wrong_length": lambda r: {**r, "bv": [None, None]},
    "bv_not_list": lambda r: {**r, "bv": {"a": 1}},
    "bv_bad_entry": lambda r: {**r, "bv": [[1, 2]]},
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_prepare_is_rejected(tmp_path: Path, case: str) -> None:
    async def t(env: Env) -> None:
        ans = await env.rpc("txn_prepare", MALFORMED[case](env.req(101, [ins(1)]).encode()))
        assert is_reject(ans) and ans["reject"].startswith("malformed PREPARE")
        assert env.p.intents.count() == 0 and not env.p.prepared

    run(tmp_path, t)


def test_dbop_body_without_pair_is_rejected(tmp_path: Path) -> None:
    async def t(env: Env) -> None:
        req = dataclasses.replace(env.req(101), body=m.encode_body("dbop"))
        assert is_reject(env.p.prepare(req))
        assert is_reject(await env.rpc("txn_prepare", req.encode()))

    run(tmp_path, t)


def test_stored_row_version_newer_than_base_conflicts(tmp_path: Path) -> None:
    async def t(env: Env) -> None:
        assert env.p.prepare(env.req(101, [ins(1, "first")])).ok
        cts = env.coord.now()
        assert (await env.p.commit_local(DB, 101, cts)).ok
        k = encode_row_key("kv", [1])
        older = [cts.wall_ns - 1, 0, COORD]
        for txn, bv in ((102, None), (103, [None]), (104, [older])):
            ans = env.p.prepare(env.req(txn, [ins(1, "lost update")], bv=bv))
            assert is_conflict(ans) and "changed since" in str(ans.conflict), bv
            assert env.p.intents.owner(DB, k) is None  # the intent taken for the check is released
            assert txn not in env.p.prepared
        assert env.p.prepare(env.req(105, [ins(1, "based on it")], bv=[m.ts_out(cts)])).ok
        assert env.p.intents.owner(DB, k) == 105

    run(tmp_path, t)


def test_ddl_intent_is_database_wide(tmp_path: Path) -> None:
    async def t(env: Env) -> None:
        assert env.p.prepare(env.req(101, [ins(1)])).ok
        ddl = ["CREATE TABLE extra(id INTEGER PRIMARY KEY)"]
        ans = env.p.prepare(env.req(200, ddl=ddl))
        assert is_conflict(ans) and ans.owner == 101
        env.p.abort_local(101)
        assert env.p.prepare(env.req(200, ddl=ddl)).ok
        assert env.p.prepared[200].timeout == 30.0  # DDL uses the lease, not the heartbeat timeout
        ans = env.p.prepare(env.req(102, [ins(5)]))
        assert is_conflict(ans) and ans.owner == 200

    run(tmp_path, t)


def test_dbop_intent_conflicts_per_database_name(tmp_path: Path) -> None:
    applied: list[tuple[str, str]] = []

    async def t(env: Env) -> None:
        def dbop(txn: int, op: str, name: str) -> Prepare:
            return dataclasses.replace(env.req(txn), db="", body=m.encode_body("dbop", dbop=(op, name)))

        assert env.p.prepare(dbop(301, "create", "newdb")).ok
        assert is_conflict(env.p.prepare(dbop(302, "drop", "newdb")))
        assert env.p.prepare(dbop(303, "create", "otherdb")).ok
        assert (await env.p.commit_local("", 301, env.coord.now())).ok
        assert applied == [("create", "newdb")]
        assert env.p.prepare(dbop(302, "drop", "newdb")).ok

    run(tmp_path, t, apply_dbop=lambda op, name: applied.append((op, name)))


async def _conflict_wait_case(env: Env, release: bool) -> tuple[PrepareAnswer, float]:
    assert env.p.prepare(env.req(101, [ins(1)])).ok
    waiting = asyncio.create_task(env.p.prepare_waiting(env.req(102, [ins(1)])))
    await asyncio.sleep(0.005)
    assert not waiting.done()
    start = time.monotonic()
    if release:
        env.p.abort_local(101)
    ans = await waiting
    return ans, time.monotonic() - start


def test_prepare_waiting_succeeds_when_owner_releases(tmp_path: Path) -> None:
    async def t(env: Env) -> None:
        ans, waited = await _conflict_wait_case(env, release=True)
        assert ans.ok is True and ans.owner is None
        assert waited < 0.5  # woken by the release, not by the 2 s bound
        assert env.p.stats["conflicts"] == 0

    run(tmp_path, t, conflict_wait=2.0)


def test_prepare_waiting_gives_up_after_conflict_wait(tmp_path: Path) -> None:
    async def t(env: Env) -> None:
        ans, _ = await _conflict_wait_case(env, release=False)
        assert is_conflict(ans) and ans.owner is None  # owner is internal to the waiting loop
        assert env.p.stats["conflicts"] == 1  # counted once, not once per retry

    run(tmp_path, t, conflict_wait=0.03)


# -- COMMIT / ABORT / STATUS ----------------------------------------------------------------------


def test_commit_local_applies_and_releases(tmp_path: Path) -> None:
    async def t(env: Env) -> None:
        assert env.p.prepare(env.req(101, [ins(1, "a"), ins(2, "b")])).ok
        cts = env.coord.now()
        assert await env.p.commit(Commit(DB, 101, cts)) == Ack(True)
        assert env.rows() == [(1, "a"), (2, "b")]
        assert env.p.intents.count() == 0 and 101 not in env.p.prepared
        assert rt.committed_timestamp(env.check, 101) == (cts.wall_ns, cts.logical, cts.node_id)
        assert env.p.hlc.peek() > cts  # the commit timestamp was merged into this node's clock
        assert env.p.status(StatusRequest(DB, 101)) == StatusAnswer("committed", cts)
        # a COMMIT retried after it was applied is acknowledged again; an unknown txn is not
        assert (await env.p.commit_local(DB, 101, cts)).ok is True
        ans = await env.p.commit_local(DB, 999, cts)
        assert ans.ok is False and "not prepared" in str(ans.err)
        assert env.p.stats["committed"] == 1

    run(tmp_path, t)


def test_replay_applies_a_decided_txn_once_without_intents(tmp_path: Path) -> None:
    """A node that did not prepare a committed txn gets it by REPLAY: applied LWW, exactly once."""

    async def t(env: Env) -> None:
        cts = env.coord.now()
        req = replay_of(env.req(101, [ins(1, "replayed")]), cts)
        assert await env.p.replay(req) == Ack(True)
        assert await env.rpc("txn_replay", req.encode()) == {"ok": True}
        assert env.rows() == [(1, "replayed")]
        assert env.check.execute(f"SELECT COUNT(*) FROM {rt.TXN_LOG}").fetchone() == (1,)
        assert env.p.intents.count() == 0
        env.p.ready_timeout = 0.01  # schema never catches up here: answered with an error, not applied
        ans = await env.p.replay(replay_of(env.req(102, [ins(2)], sv=5), env.coord.now()))
        assert ans.ok is False and ans.err is not None and "behind" in ans.err
        assert env.rows() == [(1, "replayed")]
        ans = await env.rpc("txn_replay", {**req.encode(), "cts": "now"})
        assert ans["ok"] is False and ans["err"].startswith("malformed REPLAY")
        ans = await env.p.replay(dataclasses.replace(req, body=b"\xc1"))
        assert ans.ok is False and ans.err is not None and ans.err.startswith("malformed REPLAY")

    run(tmp_path, t)


def test_malformed_commit_and_abort(tmp_path: Path) -> None:
    async def t(env: Env) -> None:
        ans = await env.rpc("txn_commit", {"db": DB, "txn": 1, "cts": [1, 2]})
        assert ans["ok"] is False and ans["err"].startswith("malformed COMMIT")
        ans = await env.rpc("txn_settle", {"db": DB, "txn": 1, "cts": [1, 2, 3], "pv": 2})
        assert ans["ok"] is False and ans["err"].startswith(
            "malformed SETTLE: unsupported protocol version 2"
        )
        ans = await env.rpc("txn_abort", {"txn": "1"})
        assert ans["ok"] is False and ans["err"].startswith("malformed ABORT")

    run(tmp_path, t)


def test_abort_releases_and_forbids_a_late_commit(tmp_path: Path) -> None:
    async def t(env: Env) -> None:
        assert env.p.prepare(env.req(101, [ins(1, "aborted")])).ok
        assert await env.rpc("txn_abort", Abort(DB, 101).encode()) == {"ok": True}
        assert env.p.intents.count() == 0 and not env.p.prepared
        assert env.p.status(StatusRequest(DB, 101)) == StatusAnswer("aborted")
        assert env.p.stats["aborted"] == 1
        ans = await env.p.commit_local(DB, 101, env.coord.now())
        assert ans.ok is False
        assert env.rows() == []
        assert env.p.prepare(env.req(102, [ins(1, "next")])).ok  # the row is free again
        assert env.p.abort(Abort(DB, 555)) == Ack(True)  # unknown txn: harmless

    run(tmp_path, t)


def test_status_answers(tmp_path: Path) -> None:
    states: dict[int, tuple[str, Timestamp | None]] = {
        7: ("pending", None),
        8: ("aborted", None),
        9: ("committed", Timestamp(5, 6, 2)),
    }

    async def t(env: Env) -> None:
        assert env.p.status(StatusRequest(DB, 1)) == StatusAnswer("unknown")
        assert await env.rpc("txn_status", {"txn": 1}) == {"state": "unknown"}  # malformed: no db
        assert await env.rpc("txn_status", "nonsense") == {"state": "unknown"}
        assert env.p.prepare(env.req(101, [ins(1)])).ok
        assert await env.rpc("txn_status", {"db": DB, "txn": 101}) == {"state": "prepared"}
        assert env.p.status(StatusRequest(DB, 7)) == StatusAnswer("pending")
        assert env.p.status(StatusRequest(DB, 8)) == StatusAnswer("aborted")
        assert await env.rpc("txn_status", {"db": DB, "txn": 9}) == {"state": "committed", "cts": [5, 6, 2]}

    run(tmp_path, t, coordinator_state=lambda txn: states.get(txn, ("unknown", None)))


# -- resolution of stale prepared transactions ----------------------------------------------------


class Peers:
    """Canned answers to txn_status, as they come off the network, recording what was asked."""

    def __init__(self, answers: dict[int, Any]) -> None:
        self.answers = answers
        self.calls: list[StatusRequest] = []

    async def __call__(self, req: StatusRequest) -> dict[int, Any]:
        self.calls.append(req)
        return dict(self.answers)


def test_resolve_commits_what_a_peer_committed(tmp_path: Path) -> None:
    cts = Timestamp(time.time_ns(), 3, COORD)
    peers = Peers({COORD: None, 3: {"state": "prepared"}, 4: {"state": "committed", "cts": m.ts_out(cts)}})

    async def t(env: Env) -> None:
        assert env.p.prepare(env.req(101, [ins(1, "decided elsewhere")])).ok
        env.stale(101)
        await env.p.resolve_stale()
        assert peers.calls == [StatusRequest(DB, 101)]
        assert env.rows() == [(1, "decided elsewhere")]
        assert rt.committed_timestamp(env.check, 101) == (cts.wall_ns, 3, COORD)  # the same commit ts
        assert not env.p.prepared and env.p.intents.count() == 0
        assert env.p.stats["resolved_commit"] == 1 and env.p.stats["resolved_abort"] == 0

    run(tmp_path, t, ask_peers=peers)


@pytest.mark.parametrize("coord_answer", [{"state": "unknown"}, {"state": "aborted"}, None, "garbage"])
def test_resolve_aborts_when_coordinator_does_not_have_it(tmp_path: Path, coord_answer: Any) -> None:
    peers = Peers({COORD: coord_answer, 3: {"state": "prepared"}})

    async def t(env: Env) -> None:
        assert env.p.prepare(env.req(101, [ins(1)])).ok
        env.stale(101)
        await env.p.resolve_stale()
        assert not env.p.prepared and env.p.intents.count() == 0
        assert env.rows() == []
        assert env.p.status(StatusRequest(DB, 101)) == StatusAnswer("aborted")
        assert env.p.stats["resolved_abort"] == 1

    run(tmp_path, t, ask_peers=peers)


def test_resolve_waits_while_coordinator_is_working(tmp_path: Path) -> None:
    peers = Peers({COORD: {"state": "pending"}})

    async def t(env: Env) -> None:
        assert env.p.prepare(env.req(101, [ins(1)])).ok
        env.stale(101)
        before = env.p.prepared[101].since
        await env.p.resolve_stale()
        assert 101 in env.p.prepared and env.p.prepared[101].since > before  # clock restarted
        assert env.p.intents.count() == 1
        await env.p.resolve_stale()  # no longer stale: not asked again
        assert len(peers.calls) == 1

    run(tmp_path, t, ask_peers=peers)


def test_resolve_leaves_fresh_transactions_alone(tmp_path: Path) -> None:
    peers = Peers({COORD: {"state": "unknown"}})

    async def t(env: Env) -> None:
        assert env.p.prepare(env.req(101, [ins(1)])).ok
        await env.p.resolve_stale()
        assert peers.calls == [] and 101 in env.p.prepared

    run(tmp_path, t, ask_peers=peers)


def test_resolve_never_aborts_on_a_committed_answer_it_cannot_read(tmp_path: Path) -> None:
    """'committed' with a malformed cts: someone committed it, so aborting would diverge; it waits."""
    peers = Peers({COORD: {"state": "unknown"}, 3: {"state": "committed", "cts": "soon"}})

    async def t(env: Env) -> None:
        assert env.p.prepare(env.req(101, [ins(1)])).ok
        env.stale(101)
        await env.p.resolve_stale()
        assert 101 in env.p.prepared and env.p.stats["resolved_abort"] == 0

    run(tmp_path, t, ask_peers=peers)


# -- messages -------------------------------------------------------------------------------------

ROWS = encode_transaction(
    DB,
    Timestamp(10**18, 1, 2),
    [ins(1, "a"), RowChange("kv", "DELETE", encode_row_key("kv", [2]), {"id": 2, "v": "b"}, None)],
    77,
)
VALID = [
    m.encode_body("dml", rows=ROWS),
    m.encode_body("ddl", ddl=["CREATE TABLE x(a)", "DROP TABLE y"]),
    m.encode_body("dbop", dbop=("create", "db2")),
]


def test_body_round_trip() -> None:
    dml, ddl, dbop = (m.decode_body(b) for b in VALID)
    assert (dml.kind, [c.op for c in dml.changes], dml.ddl, dml.dbop) == (
        "dml",
        ["INSERT", "DELETE"],
        [],
        None,
    )
    assert dml.changes[0] == ins(1, "a")
    assert (ddl.kind, ddl.changes, ddl.ddl) == ("ddl", [], ["CREATE TABLE x(a)", "DROP TABLE y"])
    assert (dbop.kind, dbop.dbop) == ("dbop", ("create", "db2"))


def pack(doc: Any) -> bytes:
    return msgpack.packb(doc, use_bin_type=True)


@pytest.mark.parametrize(
    "data",
    [
        "not bytes",
        bytearray(VALID[0]),
        None,
        b"",
        b"\xc1",
        VALID[0] + b"\x00",
        pack([1, "dml"]),
        pack({"v": 2, "kind": "dml"}),
        pack({"v": 1, "kind": "DML"}),
        pack({"v": 1}),
        pack({1: 1, "kind": "dml"}),
        pack({"v": 1, "kind": "dml", "rows": "text"}),
        pack({"v": 1, "kind": "dml", "rows": b"\x80"}),
        pack({"v": 1, "kind": "dml", "rows": ROWS[:-1]}),
        pack({"v": 1, "kind": "ddl", "ddl": "CREATE TABLE x(a)"}),
        pack({"v": 1, "kind": "ddl", "ddl": [""]}),
        pack({"v": 1, "kind": "ddl", "ddl": ["ok", 5]}),
        pack({"v": 1, "kind": "dbop", "dbop": ["rename", "x"]}),
        pack({"v": 1, "kind": "dbop", "dbop": ["create"]}),
        pack({"v": 1, "kind": "dbop", "dbop": ["create", ""]}),
        pack({"v": 1, "kind": "dbop", "dbop": "create x"}),
    ],
    ids=lambda d: repr(d)[:40],
)
def test_malformed_bodies_raise_message_error(data: Any) -> None:
    with pytest.raises(m.MessageError):
        m.decode_body(data)


@pytest.mark.parametrize(
    "doc",
    [
        {"v": True, "kind": "dml"},
        {"v": 1.0, "kind": "dml"},
        {"v": 1, "kind": "ddl", "ddl": False},
        {"v": 1, "kind": "ddl", "ddl": {}},
    ],
    ids=["v_true", "v_float", "ddl_false", "ddl_empty_map"],
)
def test_wrongly_typed_version_and_ddl_are_rejected(doc: dict[str, Any]) -> None:
    with pytest.raises(m.MessageError):
        m.decode_body(pack(doc))


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    r = rng.random()
    if depth < 3 and r < 0.25:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if depth < 3 and r < 0.45:
        names = ["v", "kind", "rows", "ddl", "dbop", "zz"]
        return {rng.choice(names): _random_value(rng, depth + 1) for _ in range(rng.randint(0, 5))}
    return rng.choice(
        [
            None,
            True,
            False,
            0,
            1,
            2,
            -1,
            (1 << 64) - 1,
            1.0,
            0.5,
            "",
            "dml",
            "ddl",
            "dbop",
            "create",
            "drop",
            "x",
            b"",
            b"\x01",
            ROWS,
            msgpack.ExtType(1, b"x"),
        ]
    )


def _mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        op = rng.random()
        if op < 0.5 and b:
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        elif op < 0.75:
            del b[rng.randrange(len(b) + 1) :]
        else:
            b.insert(rng.randrange(len(b) + 1), rng.randrange(256))
    return bytes(b)


def test_fuzzed_bodies_raise_message_error_only() -> None:
    """Random bytes, random msgpack documents shaped like bodies, and mutated valid bodies: each either
    decodes to a well-typed Body or raises MessageError — never anything else."""
    rng = random.Random(20260101)
    inputs: list[bytes] = [bytes(rng.randrange(256) for _ in range(rng.randint(0, 48))) for _ in range(300)]
    for _ in range(300):
        doc = _random_value(rng)
        if isinstance(doc, dict) and rng.random() < 0.7:
            doc.setdefault("v", 1)
            doc.setdefault("kind", rng.choice(m.KINDS))
        inputs.append(msgpack.packb(doc, use_bin_type=rng.random() < 0.5))
    inputs += [_mutate(rng, rng.choice(VALID)) for _ in range(300)]
    decoded = errors = 0
    for data in inputs:
        try:
            body = m.decode_body(data)
        except m.MessageError:
            errors += 1
            continue
        decoded += 1
        assert body.kind in m.KINDS
        assert all(isinstance(c, RowChange) for c in body.changes)
        assert all(type(s) is str and s for s in body.ddl)
        assert body.dbop is None or (body.dbop[0] in ("create", "drop") and type(body.dbop[1]) is str)
    assert decoded > 20 and errors > 300  # both outcomes were really exercised


@pytest.mark.parametrize(
    "v",
    [
        None,
        [1, 2],
        [1, 2, 3, 4],
        (1, 2, 3),
        [1, -2, 3],
        [True, 0, 1],
        [1.0, 0, 1],
        [1 << 63, 0, 1],
        [1, 1 << 16, 1],
        "1,2,3",
    ],
)
def test_ts_in_rejects(v: Any) -> None:
    with pytest.raises(m.MessageError):
        m.ts_in(v)


def test_ts_in_version_in_and_field() -> None:
    assert m.ts_in([(1 << 63) - 1, 0xFFFF, 9]) == Timestamp((1 << 63) - 1, 0xFFFF, 9)
    assert m.ts_in(m.ts_out(Timestamp(5, 6, 7))) == Timestamp(5, 6, 7)
    assert m.version_in(None) is None
    assert m.version_in([5, 6, 7]) == (5, 6, 7)
    with pytest.raises(m.MessageError, match="base version"):
        m.version_in([5, 6])
    assert m.field({"n": 3}, "n", int) == 3
    for payload in ({"n": True}, {"n": "3"}, {}, [("n", 3)], None):
        with pytest.raises(m.MessageError):
            m.field(payload, "n", int)
