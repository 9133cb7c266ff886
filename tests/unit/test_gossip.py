"""Membership drivers wired by an in-memory network: join and convergence, failure detection, restart,
ping-req through an asymmetric partition, remove/allow, refused joins, persisted view and quorum,
promotion gated by ready_check, message loss, malformed traffic.

Real (short) timers: interval 50 ms, suspect 300 ms, dead 500 ms; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest

from marmot.cluster import gossip as gossip_mod
from marmot.cluster.gossip import Gossip, Send
from marmot.cluster.membership import ALIVE, DEAD, JOINING, LEAVING, REMOVED, SUSPECT, MembershipError
from tests.support import run_async

INTERVAL_MS = 50
SUSPECT_MS = 300
DEAD_MS = 500


def roundtrip(obj: Any) -> Any:
    """What a msgpack transport does to a payload (and a check that it is msgpack-able)."""
    return msgpack.unpackb(msgpack.packb(obj, use_bin_type=True), raw=False, strict_map_key=False)


class Net:
    """Directed links between addresses. A blocked link or a lost message behaves like a black hole
    (the caller waits out its timeout); an address nobody listens on refuses at once."""

    def __init__(self, seed: int = 1) -> None:
        self.nodes: dict[str, Any] = {}
        self.blocked: set[tuple[str, str]] = set()
        self.loss = 0.0
        self.rng = random.Random(seed)

    def _lost(self, src: str, dst: str) -> bool:
        return (src, dst) in self.blocked or (self.loss > 0 and self.rng.random() < self.loss)

    def send_for(self, src: str) -> Send:
        async def send(addr: str, method: str, payload: Any, timeout: float) -> Any:
            payload = roundtrip(payload)
            await asyncio.sleep(0)
            if self._lost(src, addr):
                await asyncio.sleep(timeout)
                raise TimeoutError(f"{src} -> {addr} lost")
            node = self.nodes.get(addr)
            if node is None:
                raise ConnectionRefusedError(addr)
            reply = await asyncio.wait_for(getattr(node, f"handle_{method}")(payload), timeout)
            if self._lost(addr, src):
                raise TimeoutError(f"{addr} -> {src} reply lost")
            return roundtrip(reply)

        return send

    def partition(self, a: str, b: str) -> None:
        self.blocked |= {(a, b), (b, a)}


def addr(nid: int) -> str:
    return f"n{nid}:7946"


class Cluster:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.net = Net()
        self.nodes: dict[int, Gossip] = {}
        self.events: dict[int, list[tuple[float, int, str, str]]] = {}

    def make(
        self,
        nid: int,
        seeds: list[int] | None = None,
        *,
        address: str | None = None,
        data: str | None = None,
        **kw: Any,
    ) -> Gossip:
        a = address or addr(nid)
        log = self.events.setdefault(nid, [])
        g = Gossip(
            nid,
            a,
            send=self.net.send_for(a),
            seeds=[addr(s) for s in (seeds or [])],
            data_dir=str(self.tmp / (data or f"n{nid}")),
            gossip_interval_ms=INTERVAL_MS,
            suspect_timeout_ms=SUSPECT_MS,
            dead_timeout_ms=DEAD_MS,
            rng=random.Random(nid),
            on_change=lambda n, old, new: log.append((time.monotonic(), n, old, new)),
            **kw,
        )
        return g

    async def start(self, nid: int, seeds: list[int] | None = None, **kw: Any) -> Gossip:
        g = self.make(nid, seeds, **kw)
        self.net.nodes[g.address] = g
        try:
            await g.start()
        except BaseException:
            del self.net.nodes[g.address]
            raise
        self.nodes[nid] = g
        return g

    async def crash(self, nid: int) -> None:
        g = self.nodes.pop(nid)
        del self.net.nodes[g.address]
        await g.stop(leaving=False)

    async def stop_all(self) -> None:
        for nid in list(self.nodes):
            await self.crash(nid)

    def transitions(self, observer: int, about: int) -> list[tuple[str, str]]:
        return [(old, new) for _, n, old, new in self.events.get(observer, []) if n == about]


def run(test: Callable[[Cluster], Awaitable[None]], tmp: Path) -> None:
    async def main() -> None:
        c = Cluster(tmp)
        try:
            await test(c)
        finally:
            await c.stop_all()

    run_async(main(), timeout=30)


# Waits are bounds, not expectations: on a loaded 2-core CI machine the event loop can lag, so every
# bound gets this much slack (a passing run is as fast as the condition).
WAIT_SLACK = 2.0


async def wait_until(cond: Callable[[], bool], timeout: float, what: str = "condition") -> float:
    timeout *= WAIT_SLACK
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)
    return time.monotonic() - start


def view(g: Gossip) -> list[tuple[int, str, int]]:
    return [(m["node_id"], m["state"], m["incarnation"]) for m in g.members()]


def converged(nodes: list[Gossip], n: int) -> bool:
    views = [view(g) for g in nodes]
    return (
        all(v == views[0] for v in views) and len(views[0]) == n and all(s == ALIVE for _, s, _ in views[0])
    )


async def boot(c: Cluster, n: int, **kw: Any) -> list[Gossip]:
    nodes = [await c.start(1, **kw)]
    for nid in range(2, n + 1):
        nodes.append(await c.start(nid, [1], **kw))
    await wait_until(lambda: converged(nodes, n), 5, f"{n} nodes to converge")
    return nodes


# ---- join and convergence ------------------------------------------------------------------------


def test_views_converge_after_join(tmp_path: Path) -> None:
    async def t(c: Cluster) -> None:
        nodes = await boot(c, 5)
        for g in nodes:
            assert g.alive_members() == [1, 2, 3, 4, 5] and g.total_members() == 5 and g.has_quorum()
        assert nodes[0].state == ALIVE and nodes[0].incarnation == 0  # no seeds: ALIVE from the start
        assert all(g.incarnation == 1 for g in nodes[1:])  # JOINING -> ALIVE bumped it once
        m = {d["node_id"]: d for d in nodes[2].members()}
        assert m[1]["address"] == addr(1) and m[3]["last_seen_ms_ago"] == 0
        assert 0 <= m[1]["last_seen_ms_ago"] < 1000

    run(t, tmp_path)


def test_metadata_is_gossiped(tmp_path: Path) -> None:
    async def t(c: Cluster) -> None:
        nodes = await boot(c, 3)
        nodes[1].set_metadata("schema_versions", {"app": 7})
        await wait_until(
            lambda: all(g.extra[2] == {"schema_versions": {"app": 7}} for g in nodes), 2, "metadata to spread"
        )

    run(t, tmp_path)


def test_all_seeds_down_joins_later_in_the_background(tmp_path: Path) -> None:
    async def t(c: Cluster) -> None:
        g2 = await c.start(2, [1])  # the seed is not up yet
        assert g2.state == JOINING
        await asyncio.sleep(0.2)
        assert g2.state == JOINING and g2.total_members() == 1 and not g2.has_quorum()
        g1 = await c.start(1)
        await wait_until(lambda: converged([g1, g2], 2), 5, "late join")

    run(t, tmp_path)


def test_unjoined_node_is_no_member_until_a_seed_admits_it(tmp_path: Path) -> None:
    async def t(c: Cluster) -> None:
        g2 = await c.start(2, [1, 9])  # neither seed is up
        status = g2.join_status
        assert not status.member and status.attempts >= 1
        why = status.refusal()
        assert why is not None and "node 2 has not joined a cluster" in why
        assert f"seed {addr(1)}: connection refused" in why and f"seed {addr(9)}: connection refused" in why
        assert g2.join_status.as_json()["failures"] == {
            addr(1): "connection refused",
            addr(9): "connection refused",
        }
        await wait_until(lambda: status.attempts >= 3, 5, "the join to be retried")
        g1 = await c.start(1)
        await wait_until(lambda: status.member, 5, "a seed to admit node 2")
        assert status.refusal() is None and status.as_json() == {"joined": True, "seeds": [addr(1), addr(9)]}
        await wait_until(lambda: converged([g1, g2], 2), 5, "late join")

    run(t, tmp_path)


def test_mutual_seeds_bootstrap_into_one_cluster(tmp_path: Path) -> None:
    async def t(c: Cluster) -> None:
        g1 = await c.start(1, [2])  # every node lists the other: nobody is a deliberate cluster of one
        assert not g1.join_status.member
        g2 = await c.start(2, [1])  # admitted by node 1, which then retries node 2 and is admitted too
        assert g2.join_status.member
        await wait_until(lambda: g1.join_status.member, 5, "node 1 to join through node 2")
        await wait_until(lambda: converged([g1, g2], 2), 5, "convergence")

    run(t, tmp_path)


def test_no_seeds_and_former_members_are_members(tmp_path: Path) -> None:
    async def t(c: Cluster) -> None:
        g1 = await c.start(1)
        assert g1.join_status.member and g1.join_status.refusal() is None
        await c.start(2, [1])
        await wait_until(lambda: converged([g1, c.nodes[2]], 2), 5, "join")
        await c.crash(1)
        await c.crash(2)
        g2 = await c.start(2, [1])  # the seed is down, but node 2 remembers its cluster
        assert g2.join_status.member and g2.join_status.refusal() is None
        assert g2.state == JOINING and g2.total_members() == 2 and not g2.has_quorum()
        await c.crash(2)
        g3 = await c.start(3, [1])  # never admitted anywhere ...
        assert not g3.join_status.member
        await c.crash(3)
        g3 = await c.start(3, [1])  # ... and not after a restart either (its view holds only itself)
        assert not g3.join_status.member

    run(t, tmp_path)


# ---- failure detection and restart ---------------------------------------------------------------


def test_stopped_node_suspect_then_dead_everywhere_then_alive_after_restart(tmp_path: Path) -> None:
    async def t(c: Cluster) -> None:
        nodes = await boot(c, 5)
        survivors = nodes[:4]
        old_inc = nodes[4].incarnation
        await c.crash(5)
        took = await wait_until(
            lambda: all(g.state_of(5) == DEAD for g in survivors),
            (SUSPECT_MS + DEAD_MS) / 1000 + 0.5,
            "node 5 DEAD on every survivor",
        )
        assert (
            took >= DEAD_MS / 1000 - 0.02
        )  # suspicion needs a failed probe (after the crash) + dead_timeout
        for g in survivors:
            seen = c.transitions(g.node_id, 5)
            assert seen[-2:] == [(ALIVE, SUSPECT), (SUSPECT, DEAD)], (g.node_id, seen)
            assert g.total_members() == 5 and g.alive_members() == [1, 2, 3, 4] and g.has_quorum()
        g5 = await c.start(5, [1])
        assert g5.incarnation > old_inc  # restored from its data dir, then raised
        await wait_until(lambda: converged(list(c.nodes.values()), 5), 3, "node 5 ALIVE again")
        assert all(g.alive_members() == [1, 2, 3, 4, 5] for g in c.nodes.values())

    run(t, tmp_path)


def test_asymmetric_partition_is_bridged_by_ping_req(tmp_path: Path) -> None:
    async def t(c: Cluster) -> None:
        nodes = await boot(c, 3)
        c.net.partition(addr(1), addr(3))  # A and C cannot talk; B reaches both
        await asyncio.sleep((SUSPECT_MS + DEAD_MS) / 1000 + 0.5)
        assert c.transitions(1, 3)[-1:] == [(JOINING, ALIVE)]  # nothing since the join
        assert not [t for t in c.transitions(3, 1) if SUSPECT in t]
        assert all(g.alive_members() == [1, 2, 3] for g in nodes)
        assert nodes[0].stats["probe_indirect_ok"] > 0

    run(t, tmp_path)


def test_without_ping_req_the_same_partition_causes_suspicion(tmp_path: Path) -> None:
    """Control for the test above: it really exercises the indirect path."""

    async def t(c: Cluster) -> None:
        await boot(c, 3, indirect_probes=0)
        c.net.partition(addr(1), addr(3))
        await wait_until(lambda: (ALIVE, SUSPECT) in c.transitions(1, 3), 2, "A to suspect C")

    run(t, tmp_path)


def test_partition_heal_after_both_sides_declared_dead(tmp_path: Path) -> None:
    async def t(c: Cluster) -> None:
        nodes = await boot(c, 3)
        for other in (1, 2):
            c.net.partition(addr(3), addr(other))
        await wait_until(lambda: nodes[0].state_of(3) == DEAD and nodes[2].state_of(1) == DEAD, 3, "split")
        assert not nodes[2].has_quorum() and nodes[0].has_quorum()
        c.net.blocked.clear()
        await wait_until(lambda: converged(nodes, 3), 3, "views to merge after the heal")

    run(t, tmp_path)


def test_graceful_stop_announces_leaving(tmp_path: Path) -> None:
    async def t(c: Cluster) -> None:
        nodes = await boot(c, 3)
        g3 = c.nodes.pop(3)
        await g3.stop(leaving=True)
        del c.net.nodes[g3.address]
        for g in nodes[:2]:
            assert g.state_of(3) == LEAVING  # told before the node went away
            assert g.alive_members() == [1, 2] and g.total_members() == 3

    run(t, tmp_path)


# ---- admin: remove / allow -----------------------------------------------------------------------


def test_remove_then_allow(tmp_path: Path) -> None:
    async def t(c: Cluster) -> None:
        nodes = await boot(c, 3)
        nodes[0].remove(3)
        await wait_until(lambda: all(g.state_of(3) == REMOVED for g in nodes), 2, "REMOVED everywhere")
        assert nodes[2].state == REMOVED and not nodes[2].has_quorum()
        for g in nodes[:2]:
            assert g.total_members() == 2 and g.alive_members() == [1, 2] and g.has_quorum()
        await c.crash(3)
        with pytest.raises(MembershipError, match="removed from the cluster by an administrator"):
            await c.start(3, [1, 2])
        await asyncio.sleep(0.2)
        assert nodes[1].state_of(3) == REMOVED  # the refused restart did not resurrect it
        nodes[1].allow(3)
        await wait_until(lambda: nodes[0].state_of(3) == DEAD, 2, "allow to spread")
        await c.start(3, [1])
        await wait_until(lambda: converged(list(c.nodes.values()), 3), 3, "node 3 back")

    run(t, tmp_path)


# ---- refused joins -------------------------------------------------------------------------------


def test_duplicate_node_id_at_another_address_is_refused(tmp_path: Path) -> None:
    async def t(c: Cluster) -> None:
        nodes = await boot(c, 2)
        with pytest.raises(MembershipError) as exc:
            await c.start(2, [1], address="intruder:7946", data="intruder")
        assert "node id 2 is already used by the member at n2:7946" in str(exc.value)
        assert "joiner is at intruder:7946" in str(exc.value)
        await asyncio.sleep(0.1)
        assert [m["address"] for m in nodes[0].members()] == [addr(1), addr(2)]

    run(t, tmp_path)


def test_node_id_bits_collision_is_refused(tmp_path: Path) -> None:
    async def t(c: Cluster) -> None:
        nodes = await boot(c, 2)
        with pytest.raises(MembershipError, match=r"node id 66 collides with member 2 .*modulo 64"):
            await c.start(66, [1])
        assert nodes[0].total_members() == 2

    run(t, tmp_path)


# ---- persisted view and quorum -------------------------------------------------------------------


def test_lone_restarted_node_has_no_quorum(tmp_path: Path) -> None:
    async def t(c: Cluster) -> None:
        await boot(c, 3)
        for nid in (1, 2, 3):
            await c.crash(nid)
        g1 = await c.start(1)  # no seeds, but it remembers two peers
        assert g1.total_members() == 3 and not g1.has_quorum()
        deadline = time.monotonic() + (SUSPECT_MS + DEAD_MS) / 1000 + 0.5
        while time.monotonic() < deadline:
            assert not g1.has_quorum() and g1.total_members() == 3
            await asyncio.sleep(0.02)
        assert g1.state == ALIVE and g1.alive_members() == [1]  # caught up, but never a cluster of one
        g2 = await c.start(2, [1])
        await wait_until(lambda: g1.has_quorum() and g2.has_quorum(), 3, "quorum with 2 of 3")
        assert g1.state_of(3) in (SUSPECT, DEAD) and g1.total_members() == 3

    run(t, tmp_path)


def test_restarted_node_with_unreachable_seeds_stays_joining(tmp_path: Path) -> None:
    async def t(c: Cluster) -> None:
        await boot(c, 3)
        for nid in (1, 2, 3):
            await c.crash(nid)
        g3 = await c.start(3, [1, 2])
        await asyncio.sleep(0.4)
        assert g3.state == JOINING and g3.total_members() == 3 and not g3.has_quorum()

    run(t, tmp_path)


def test_view_is_persisted_debounced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    saves: dict[str, list[float]] = {}
    real_save = gossip_mod.store.save

    def counting_save(data_dir: str, snap: dict) -> None:
        saves.setdefault(data_dir, []).append(time.monotonic())
        real_save(data_dir, snap)

    monkeypatch.setattr(gossip_mod.store, "save", counting_save)

    async def t(c: Cluster) -> None:
        t0 = time.monotonic()
        nodes = await boot(c, 4)
        for g in nodes:
            g.set_metadata("k", 1)
        await wait_until(lambda: all(g.extra[1] == {"k": 1} for g in nodes), 2, "metadata")
        await asyncio.sleep(1.2)  # let the debounced save catch up
        elapsed = time.monotonic() - t0
        for g in nodes:
            times = saves[g.data_dir]
            assert len(times) <= 1 + math.ceil(elapsed) + 1, times  # start + at most one per second
            snap = gossip_mod.store.load(g.data_dir)
            assert [(e["id"], e["state"]) for e in snap["members"]] == [(i, ALIVE) for i in (1, 2, 3, 4)]
            assert snap["members"][0]["extra"] == {"k": 1}

    run(t, tmp_path)


# ---- promotion -----------------------------------------------------------------------------------


def test_joining_until_ready_check_says_so(tmp_path: Path) -> None:
    ready = {"value": False, "calls": 0, "boom": True}

    async def ready_check() -> bool:
        ready["calls"] += 1
        if ready["boom"]:
            ready["boom"] = False
            raise RuntimeError("catch-up status unavailable")
        return ready["value"]

    async def t(c: Cluster) -> None:
        g1 = await c.start(1)
        g2 = await c.start(2, [1], ready_check=ready_check)
        await asyncio.sleep(0.4)
        assert g2.state == JOINING and g1.state_of(2) == JOINING and ready["calls"] >= 3
        assert g1.alive_members() == [1] and g1.total_members() == 2 and not g1.has_quorum()
        ready["value"] = True
        await wait_until(lambda: converged([g1, g2], 2), 2, "promotion")
        assert (JOINING, ALIVE) in c.transitions(1, 2)

    run(t, tmp_path)


# ---- bad networks and bad input ------------------------------------------------------------------


def test_converges_and_nobody_dies_with_message_loss(tmp_path: Path) -> None:
    async def t(c: Cluster) -> None:
        c.net.loss = 0.2
        nodes = [await c.start(1)]
        for nid in range(2, 6):  # a lost join is retried by the background join loop
            nodes.append(await c.start(nid, [1]))
        await wait_until(lambda: converged(nodes, 5), 8, "convergence under 20% loss")
        await asyncio.sleep(1.5)
        for g in nodes:
            assert not [e for e in c.events[g.node_id] if e[3] == DEAD]

    run(t, tmp_path)


class Garbage:
    """A peer that answers everything with nonsense or raises."""

    def __init__(self) -> None:
        self.calls = 0

    async def _junk(self, payload: Any) -> Any:
        self.calls += 1
        return [None, {"nodes": "x"}, {"node_id": 8, "nodes": [1, {"id": "x"}]}, 42][self.calls % 4]

    handle_gossip = handle_ping = handle_join = _junk

    async def handle_ping_req(self, payload: Any) -> Any:
        raise ValueError("boom")


def test_handlers_drop_malformed_payloads(tmp_path: Path) -> None:
    async def t(c: Cluster) -> None:
        g = (await boot(c, 1))[0]
        for bad in (
            None,
            1,
            "x",
            [],
            {},
            {"from": "1", "nodes": []},
            {"from": 1, "nodes": "x"},
            {"from": True, "to": 1},
            {"node_id": 0, "address": "a"},
            {"node_id": 2, "address": ""},
            {"from": 2, "target": 3},
            {"from": 2, "target": 3, "target_addr": ""},
        ):
            for h in (g.handle_gossip, g.handle_ping, g.handle_ping_req, g.handle_join):
                reply = await h(bad)
                assert isinstance(reply, dict) and ("error" in reply or reply.get("ok") is False), (h, bad)
        reply = await g.handle_ping({"from": 2, "to": 5, "nodes": []})
        assert "not node 5" in reply["error"]
        reply = await g.handle_gossip({"from": 2, "nodes": [{"id": "junk"}, 3]})
        assert reply["node_id"] == 1 and g.total_members() == 1

    run(t, tmp_path)


def test_loops_survive_a_peer_that_sends_garbage(tmp_path: Path) -> None:
    async def t(c: Cluster) -> None:
        nodes = await boot(c, 3)
        junk = Garbage()
        c.net.nodes["junk:1"] = junk
        nodes[0].membership.merge([{"id": 9, "addr": "junk:1", "state": ALIVE, "inc": 0}], time.monotonic())
        await wait_until(lambda: junk.calls > 10, 5, "garbage peer to be contacted")
        await wait_until(lambda: all(g.state_of(9) == DEAD for g in nodes), 5, "garbage peer DEAD")
        assert all(not t.done() for g in nodes for t in g._tasks)
        assert all(g.alive_members() == [1, 2, 3] for g in nodes)

    run(t, tmp_path)
