"""The membership driver: asyncio loops around :class:`~marmot.cluster.membership.Membership`.

Transport-agnostic: everything it sends goes through one injected callable (``marmot.transport.Send``),
``send(address, method, payload, timeout_s) -> reply`` (payloads and replies are msgpack-able dicts;
any exception means "no answer"), and everything it receives arrives through the ``handle_*``
coroutines, which the node registers as RPC methods ``gossip``, ``ping``, ``ping_req`` and ``join``.
Tests wire N drivers together with an in-memory network instead of sockets.

Tasks while running (each survives any exception in one iteration; bad payloads are logged, dropped):

* **gossip loop**, every ``gossip_interval_ms``: runs the state timers (SUSPECT -> DEAD), sends our
  full view to ``gossip_fanout`` random non-DEAD peers and merges each reply, plus one DEAD peer so two
  sides that declared each other DEAD after a partition find back; persists the view when it changed
  (at most once a second). A failed gossip send is not evidence of anything: suspicion is the probe
  loop's job alone, so a peer one node cannot reach but others can is not suspected.
* **probe loop**, every interval: pings one member (see :meth:`Membership.probe_target`); without an
  ack within ``ping_timeout`` asks ``indirect_probes`` other ALIVE members to ping it (``ping_req``);
  without any ack the member becomes SUSPECT once it has been silent for ``suspect_timeout_ms``.
* **promotion loop**: while this node is JOINING and has joined, polls ``ready_check()`` every
  interval; True -> ALIVE.
* **join loop** (only when no seed answered at start): retries the seeds with backoff; a join request
  from another node cuts the wait short (a peer that reached us may be one of our seeds coming up).
  Every round's per-seed failures go to ``join_status`` (``join.py``), which decides whether this node
  is a member of a cluster at all and so whether it may write.

``on_change(node_id, old_state, new_state)`` is called for every state change, own state included
(``old_state`` is ``""`` for a member seen for the first time). It runs synchronously on the event
loop in the middle of a merge: keep it short (metrics, logs); exceptions from it are logged.

Message payloads (all maps; ``nodes`` are membership entries as described in ``membership.py``)::

    gossip   {from, addr, nodes}                         -> {node_id, nodes}
    ping     {from, addr, to, nodes}                     -> {node_id, nodes: [responder's own entry]}
    ping_req {from, addr, target, target_addr, timeout, nodes} -> {ok, nodes}
    join     {node_id, address, incarnation}             -> {ok: true, node_id, nodes}
                                                          | {ok: false, error, fatal}
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from marmot.cluster import membership_store as store
from marmot.cluster.join import JoinStatus, describe_failure
from marmot.cluster.membership import (
    ALIVE,
    DEAD,
    JOINING,
    LEAVING,
    REMOVED,
    SUSPECT,
    Member,
    Membership,
    MembershipError,
    is_int,
)
from marmot.transport import Send  # re-exported: what gossip needs of the transport

log = logging.getLogger(__name__)

PERSIST_MIN_INTERVAL_S = 1.0
WARN_EVERY_S = 10.0

__all__ = ["ALIVE", "DEAD", "JOINING", "LEAVING", "REMOVED", "SUSPECT", "Gossip", "MembershipError", "Send"]


class Gossip:
    def __init__(
        self,
        node_id: int,
        address: str,
        *,
        send: Send,
        seeds: list[str],
        data_dir: str,
        gossip_interval_ms: int = 1000,
        gossip_fanout: int = 3,
        suspect_timeout_ms: int = 5000,
        dead_timeout_ms: int = 10000,
        indirect_probes: int = 3,
        ready_check: Callable[[], Awaitable[bool]] | None = None,
        on_change: Callable[[int, str, str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.node_id = node_id
        self.address = address
        self._send = send
        self._seeds = [s for s in dict.fromkeys(seeds) if s and s != address]
        self.data_dir = data_dir
        self.interval = gossip_interval_ms / 1000.0
        self.fanout = gossip_fanout
        self.indirect_probes = indirect_probes
        self.ready_check = ready_check
        self._user_on_change = on_change
        self.clock = clock
        # Timeouts derived from the protocol period (SWIM: the period must hold a direct and an
        # indirect probe); gossip and join sends get upstream's 2 s / 5 s, shortened for fast timers.
        self.ping_timeout = max(0.01, self.interval * 0.4)
        self.ping_req_timeout = max(0.02, self.interval * 0.8)
        self.rpc_timeout = min(2.0, max(0.1, self.interval * 2))
        self.join_timeout = min(5.0, max(0.25, self.interval * 5))
        self.m = Membership(
            node_id,
            address,
            now=clock(),
            joining=bool(self._seeds),
            suspect_timeout=suspect_timeout_ms / 1000.0,
            dead_timeout=dead_timeout_ms / 1000.0,
            rng=rng,
            on_change=self._on_change,
        )
        self._joined = not self._seeds
        self._was_member = False
        self.join_error: str | None = None
        self.join_status = JoinStatus(node_id, self._seeds, clock=clock)
        self._join_now: asyncio.Event | None = None  # set: retry the seeds now (created on the loop)
        self._tasks: list[asyncio.Task[None]] = []
        self._inflight: dict[int, asyncio.Task[None]] = {}
        self._started = False
        self._stopped = False
        self._persist_lock = asyncio.Lock()
        self._saved_version = -1
        self._last_save = float("-inf")
        self._last_warn: dict[str, float] = {}
        self.stats = {
            "gossip_rounds": 0,
            "gossip_sent": 0,
            "gossip_failed": 0,
            "gossip_received": 0,
            "probes": 0,
            "probe_direct_failed": 0,
            "probe_indirect_ok": 0,
            "join_accepted": 0,
            "join_refused": 0,
            "transitions": 0,
        }

    # ---- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Restore the persisted view, join through the seeds, start the loops.

        Raises :class:`MembershipError` when a seed refuses this node (duplicate node id, colliding
        id bits, removed by an administrator) or the persisted view is unusable. When no seed answers
        the join is retried in the background; the node stays JOINING meanwhile.
        """
        if self._started:
            return
        snap = await asyncio.to_thread(store.load, self.data_dir)
        if snap is not None:
            restored = self.m.restore(snap, self.clock())
            self._was_member = restored > 0
            if self.m.peers():  # REMOVED peers included: it was admitted once, whatever became of them
                self.join_status.restored_member()
            log.info(
                "node %d: restored membership view with %d peers, incarnation %d",
                self.node_id,
                restored,
                self.m.incarnation,
            )
        await self._persist(force=True)
        self._join_now = asyncio.Event()
        if self._seeds and not await self._join_round():
            self._spawn(self._join_loop())
        self._started = True
        self._spawn(self._loop(self._gossip_round))
        self._spawn(self._loop(self._probe_round))
        self._spawn(self._loop(self._promote_round))

    async def stop(self, leaving: bool = True) -> None:
        """Stop the loops and persist the view; with ``leaving`` tell the peers we are LEAVING first."""
        if self._stopped:
            return
        self._stopped = True
        if leaving and self._started and self.m.state in (ALIVE, JOINING):
            self.m.set_leaving()
            await self.announce()
        tasks = self._tasks + list(self._inflight.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._inflight.clear()
        await self._persist(force=True)

    async def announce(self) -> None:
        """Gossip this node's view to every reachable peer now, not at the next round: a node about to
        stop uses it so that its last state (LEAVING) and metadata reach everyone before it goes."""
        targets = [m for m in self.m.peers() if m.address and m.state not in (DEAD, REMOVED)]
        await asyncio.gather(*(self._gossip_with(m) for m in targets), return_exceptions=True)

    # ---- queries and commands --------------------------------------------------------------------

    @property
    def membership(self) -> Membership:
        return self.m

    @property
    def state(self) -> str:
        return self.m.state

    @property
    def incarnation(self) -> int:
        return self.m.incarnation

    @property
    def extra(self) -> dict[int, dict[str, Any]]:
        """Every member's gossiped metadata: {node_id: {key: value}} (copies)."""
        return self.m.extra()

    def members(self) -> list[dict[str, Any]]:
        return self.m.members(self.clock())

    def alive_members(self) -> list[int]:
        return self.m.alive_members()

    def total_members(self) -> int:
        return self.m.total_members()

    def alive_peers(self) -> dict[int, str]:
        return self.m.alive_peers()

    def has_quorum(self) -> bool:
        return self.m.has_quorum()

    def state_of(self, node_id: int) -> str:
        return self.m.state_of(node_id)

    def remove(self, node_id: int) -> None:
        self.m.remove(node_id, self.clock())

    def allow(self, node_id: int) -> None:
        self.m.allow(node_id, self.clock())

    def set_leaving(self) -> None:
        self.m.set_leaving()

    def cancel_leaving(self) -> None:
        self.m.cancel_leaving()

    def set_metadata(self, key: str, value: Any) -> None:
        self.m.set_metadata(key, value)

    # ---- RPC handlers ----------------------------------------------------------------------------

    async def handle_gossip(self, payload: Any) -> Any:
        if (
            not isinstance(payload, dict)
            or not is_int(payload.get("from"))
            or not isinstance(payload.get("nodes"), list)
        ):
            return self._malformed("gossip", payload)
        self.stats["gossip_received"] += 1
        self._merge(payload["nodes"], payload["from"], "gossip")
        return {"node_id": self.node_id, "nodes": self.m.view()}

    async def handle_ping(self, payload: Any) -> Any:
        if not isinstance(payload, dict) or not is_int(payload.get("from")) or not is_int(payload.get("to")):
            return self._malformed("ping", payload)
        if payload["to"] != self.node_id:
            return {"error": f"this is node {self.node_id}, not node {payload['to']}"}
        self._merge(payload.get("nodes", []), payload["from"], "ping")
        return {"node_id": self.node_id, "nodes": [self.m.me.entry()]}

    async def handle_ping_req(self, payload: Any) -> Any:
        if (
            not isinstance(payload, dict)
            or not is_int(payload.get("from"))
            or not is_int(payload.get("target"))
            or not isinstance(payload.get("target_addr"), str)
            or not payload["target_addr"]
        ):
            return self._malformed("ping_req", payload)
        nodes = payload.get("nodes", [])
        self._merge(nodes, payload["from"], "ping_req")
        target = payload["target"]
        if target == self.node_id:
            return {"ok": True, "nodes": [self.m.me.entry()]}
        timeout = payload.get("timeout")
        timeout = (
            min(float(timeout), self.rpc_timeout)
            if isinstance(timeout, int | float) and timeout > 0
            else self.ping_timeout
        )
        # Forward the requester's claim about the target, so a wrongly suspected target refutes it.
        claims = (
            [e for e in nodes if isinstance(e, dict) and e.get("id") == target]
            if isinstance(nodes, list)
            else []
        )
        ping = {
            "from": self.node_id,
            "addr": self.address,
            "to": target,
            "nodes": [self.m.me.entry(), *claims],
        }
        try:
            ack = await self._send(payload["target_addr"], "ping", ping, timeout)
        except Exception:
            return {"ok": False}
        if not _valid_ack(ack, target):
            return {"ok": False}
        self._merge(ack["nodes"], target, "ping ack")
        return {"ok": True, "nodes": ack["nodes"]}

    async def handle_join(self, payload: Any) -> Any:
        if not isinstance(payload, dict):
            return {**self._malformed("join", payload), "ok": False, "fatal": False}
        nid, addr, inc = payload.get("node_id"), payload.get("address"), payload.get("incarnation", 0)
        if not is_int(nid) or nid <= 0 or not isinstance(addr, str) or not addr or not is_int(inc) or inc < 0:
            return {**self._malformed("join", payload), "ok": False, "fatal": False}
        refusal = self.m.check_join(nid, addr)
        if refusal is not None:
            msg, fatal = refusal
            self.stats["join_refused"] += 1
            log.warning("node %d: refused join of node %d at %s: %s", self.node_id, nid, addr, msg)
            return {"ok": False, "error": msg, "fatal": fatal}
        self.m.accept_join(nid, addr, inc, self.clock())
        self.stats["join_accepted"] += 1
        if not self._joined and self._join_now is not None:
            self._join_now.set()
        joined = self.m.get(nid)
        assert joined is not None  # accept_join added it
        log.info("node %d: node %d at %s joins (incarnation %d)", self.node_id, nid, addr, joined.incarnation)
        return {"ok": True, "node_id": self.node_id, "nodes": self.m.view()}

    # ---- join (joiner side) ----------------------------------------------------------------------

    async def _join_round(self) -> bool:
        """Ask every seed at once; True if at least one admitted us. A fatal refusal raises."""
        req = {"node_id": self.node_id, "address": self.address, "incarnation": self.m.incarnation}
        replies = await asyncio.gather(
            *(self._send(s, "join", req, self.join_timeout) for s in self._seeds), return_exceptions=True
        )
        admitted = False
        fatal: list[str] = []
        status = self.join_status
        for seed, reply in zip(self._seeds, replies, strict=True):
            if isinstance(reply, BaseException):
                log.debug("node %d: seed %s: join failed: %r", self.node_id, seed, reply)
                status.failed(seed, describe_failure(reply))
                continue
            if not isinstance(reply, dict):
                self._warn(
                    f"join-reply-{seed}", "node %d: seed %s sent a malformed join reply", self.node_id, seed
                )
                status.failed(seed, f"malformed join reply: {reply!r:.100}")
                continue
            if reply.get("ok") is True and isinstance(reply.get("nodes"), list):
                src = reply.get("node_id")
                self._merge(reply["nodes"], src if is_int(src) else None, "join reply")
                admitted = True
                continue
            err = str(reply.get("error", "no reason given"))
            status.failed(seed, f"refused by the cluster: {err}")
            if reply.get("fatal"):
                fatal.append(f"seed {seed}: {err}")
            else:
                log.info("node %d: seed %s did not admit us: %s", self.node_id, seed, err)
        if fatal:
            status.round_failed()  # the error below says it, every time
            self.join_error = (
                f"node {self.node_id} at {self.address} was refused by the cluster: " + "; ".join(fatal)
            )
            log.error("%s", self.join_error)
            raise MembershipError(self.join_error)
        if admitted:
            self._joined = True
            self.join_error = None
            status.admitted()
            log.info("node %d: joined the cluster (%d members known)", self.node_id, self.m.total_members())
            return True
        if status.round_failed():
            what = "writes and DDL are refused meanwhile" if not status.member else "JOINING meanwhile"
            log.warning(
                "node %d: no seed admitted this node (%s); retrying in the background, %s",
                self.node_id,
                status.summary(),
                what,
            )
        return False

    async def _join_loop(self) -> None:
        delay = self.interval
        while not self._joined and not self._stopped:
            assert self._join_now is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._join_now.wait(), delay)
            self._join_now.clear()
            if self._joined or self._stopped:
                return
            try:
                if await self._join_round():
                    return
            except MembershipError:
                pass  # logged; an administrator may still fix it (allow), so keep trying, slowly
            except Exception:
                log.exception("node %d: join attempt failed", self.node_id)
            delay = min(delay * 2, self.interval * 10)

    # ---- loops -------------------------------------------------------------------------------------

    def _spawn(self, coro: Awaitable[None]) -> None:
        self._tasks.append(asyncio.ensure_future(coro))

    async def _loop(self, round_fn: Callable[[], Awaitable[None]]) -> None:
        # The flag, not only cancel(), ends the loop: asyncio.wait_for() before Python 3.12 can swallow
        # a cancellation that races with its inner result (inside a transport's send, for instance).
        while not self._stopped:
            started = self.clock()
            try:
                await round_fn()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("node %d: %s failed", self.node_id, round_fn.__name__)
            await asyncio.sleep(max(0.0, started + self.interval - self.clock()))

    async def _gossip_round(self) -> None:
        self.stats["gossip_rounds"] += 1
        self.m.tick(self.clock())
        targets = self.m.gossip_targets(self.fanout)
        dead = self.m.dead_target()
        if dead is not None:
            targets.append(dead)
        for t in targets:
            if t.node_id not in self._inflight:
                task = asyncio.ensure_future(self._gossip_with(t))
                self._inflight[t.node_id] = task

                def forget(_task: asyncio.Future[None], nid: int = t.node_id) -> None:
                    self._inflight.pop(nid, None)

                task.add_done_callback(forget)
        await self._persist()

    async def _gossip_with(self, target: Member) -> None:
        payload = {"from": self.node_id, "addr": self.address, "nodes": self.m.view()}
        self.stats["gossip_sent"] += 1
        try:
            reply = await self._send(target.address, "gossip", payload, self.rpc_timeout)
        except Exception as e:
            self.stats["gossip_failed"] += 1
            log.debug(
                "node %d: gossip to %d at %s failed: %r", self.node_id, target.node_id, target.address, e
            )
            return
        if not isinstance(reply, dict) or not isinstance(reply.get("nodes"), list):
            self._warn(
                f"gossip-reply-{target.node_id}",
                "node %d: malformed gossip reply from %s: %.200r",
                self.node_id,
                target.address,
                reply,
            )
            return
        src = reply.get("node_id")
        self._merge(reply["nodes"], src if is_int(src) else None, "gossip reply")
        if self._was_member and src == target.node_id:
            self._joined = True  # a former member that reached a peer needs no seed to rejoin

    async def _probe_round(self) -> None:
        target = self.m.probe_target(self.clock())
        if target is None:
            return
        self.stats["probes"] += 1
        ping: dict[str, Any] = {
            "from": self.node_id,
            "addr": self.address,
            "to": target.node_id,
            "nodes": self.m.piggyback_for(target.node_id),
        }
        try:
            ack = await self._send(target.address, "ping", ping, self.ping_timeout)
            if _valid_ack(ack, target.node_id):
                self._merge(ack["nodes"], target.node_id, "ping ack")
                return
        except Exception:
            pass
        self.stats["probe_direct_failed"] += 1
        helpers = self.m.probe_helpers(target.node_id, self.indirect_probes)
        if helpers and await self._indirect_probe(target, helpers, ping["nodes"]):
            self.stats["probe_indirect_ok"] += 1
            return
        if self.m.probe_failed(target.node_id, self.clock()):
            # the transition itself is logged once by the membership table; this is only the reason
            log.debug(
                "node %d: node %d suspected: no ack directly or through %d helpers",
                self.node_id,
                target.node_id,
                len(helpers),
            )

    async def _indirect_probe(
        self, target: Member, helpers: list[Member], nodes: list[dict[str, Any]]
    ) -> bool:
        req = {
            "from": self.node_id,
            "addr": self.address,
            "target": target.node_id,
            "target_addr": target.address,
            "timeout": self.ping_timeout,
            "nodes": nodes,
        }
        tasks = [
            asyncio.ensure_future(self._send(h.address, "ping_req", req, self.ping_req_timeout))
            for h in helpers
        ]
        try:
            for fut in asyncio.as_completed(tasks):
                try:
                    reply = await fut
                except Exception:
                    continue
                if (
                    isinstance(reply, dict)
                    and reply.get("ok") is True
                    and isinstance(reply.get("nodes"), list)
                ):
                    self._merge(reply["nodes"], target.node_id, "relayed ack")
                    return True
            return False
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _promote_round(self) -> None:
        if self.m.state != JOINING or not self._joined:
            return
        if self.ready_check is not None:
            try:
                ready = bool(await self.ready_check())
            except Exception:
                log.exception("node %d: ready_check failed", self.node_id)
                return
            if not ready or self.m.state != JOINING:
                return
        if self.m.promote():
            log.debug("node %d: caught up (incarnation %d)", self.node_id, self.m.incarnation)

    # ---- helpers -----------------------------------------------------------------------------------

    def _merge(self, nodes: Any, source: int | None, what: str) -> None:
        bad = self.m.merge(nodes, self.clock(), source=source)
        if bad:
            self._warn(
                f"bad-{what}",
                "node %d: dropped %d malformed entries in a %s from node %s",
                self.node_id,
                bad,
                what,
                source,
            )

    def _malformed(self, method: str, payload: Any) -> dict[str, Any]:
        self._warn(
            f"malformed-{method}",
            "node %d: malformed %s payload dropped: %.200r",
            self.node_id,
            method,
            payload,
        )
        return {"error": f"malformed {method} payload"}

    def _warn(self, key: str, msg: str, *args: Any) -> None:
        now = self.clock()
        if now - self._last_warn.get(key, float("-inf")) >= WARN_EVERY_S:
            self._last_warn[key] = now
            log.warning(msg, *args)

    def _on_change(self, node_id: int, old: str, new: str) -> None:
        self.stats["transitions"] += 1
        if self._user_on_change is not None:
            self._user_on_change(node_id, old, new)

    async def _persist(self, force: bool = False) -> None:
        if self.m.version == self._saved_version and not force:
            return
        if not force and (
            self._persist_lock.locked() or self.clock() - self._last_save < PERSIST_MIN_INTERVAL_S
        ):
            return
        async with self._persist_lock:
            version, snap = self.m.version, self.m.snapshot()
            try:
                await asyncio.to_thread(store.save, self.data_dir, snap)
            except Exception:
                log.exception(
                    "node %d: cannot persist the membership view in %s", self.node_id, self.data_dir
                )
                return
            self._saved_version = version
            self._last_save = self.clock()


def _valid_ack(ack: Any, target: int) -> bool:
    return isinstance(ack, dict) and ack.get("node_id") == target and isinstance(ack.get("nodes"), list)
