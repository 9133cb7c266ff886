"""MySQL's user-level locks (``GET_LOCK`` and friends) held cluster-wide: a lock is a quorum of grants.

Why: migration tools (Rails, Flyway, golang-migrate, Laravel ...) serialise migrations across
application servers with ``GET_LOCK('name', timeout)``. Behind Marmot those servers talk to different
nodes, so a lock only one node knows would let two migrations run at once. So a lock is taken the way a
write is: the node of the asking session asks every ALIVE member (itself included) to *grant* the name to
``(node id, connection id)``; a member grants when nobody else holds the name in its table. With grants
from a majority of the whole membership (the same count the 2PC coordinator uses: DEAD members count,
REMOVED ones do not) the lock is taken; otherwise the grants are handed back and the session retries until
its timeout. Two majorities always share a member, so two sessions never hold a name at once while the
membership agrees.

Freed: by ``RELEASE_LOCK`` / ``RELEASE_ALL_LOCKS`` and when the session ends (its node tells every
member); when the holder's node is declared DEAD (or REMOVED) by membership, every member drops its
grants; and a sweep every second asks each holder node whether its grants are still held (a release lost
to a cut link, a holder node that restarted), dropping the ones it no longer holds. The same sweep has
each node re-assert its own sessions' locks with every ALIVE peer: a DEAD verdict that was false (a
partition healing spreads the minority's view of the majority for a moment) drops grants of a live
holder, and the holder grants them back within a second unless another session took the name meanwhile.

Under a partition the minority side cannot take a lock (GET_LOCK waits and returns 0). A holder cut off
on the minority side keeps its lock until the majority declares its node DEAD (``[cluster]
dead_timeout_ms``); from then on the majority may grant the name to another session while the cut-off
session still believes it holds it. Like MySQL's own locks, they are advisory, with no fencing token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

from marmot.replication.wiring import Membership
from marmot.transport import Router, Transport

log = logging.getLogger("marmot.named_locks")

RPC_TIMEOUT_S = 1.0
SWEEP_INTERVAL_S = 1.0
_FIRST_RETRY_S = 0.02
_MAX_RETRY_S = 0.25

Holder = tuple[int, int]  # (node id, connection id on that node)


class Interrupted(Exception):
    """KILL QUERY interrupted a wait for a lock."""


@dataclass(slots=True)
class _Held:
    """A lock a session of this node holds: MySQL counts re-entrant GET_LOCKs (released as often)."""

    session: int
    name: str  # as the session first wrote it
    count: int = 1


@dataclass
class NamedLocks:
    """This node's part of the cluster's user-level locks: its grant table and its sessions' locks.

    Without a transport (the engine alone, unit tests) it is a lock table of one node."""

    node_id: int = 0
    transport: Transport | None = None
    membership: Membership | None = None
    _grants: dict[str, Holder] = field(default_factory=dict)  # name (lower case) -> holder it granted
    _held: dict[str, _Held] = field(default_factory=dict)  # name (lower case) -> this node's holder
    _pending: set[tuple[str, int]] = field(default_factory=set)  # acquisitions under way
    _sweeper: asyncio.Task[None] | None = None
    _released: asyncio.Event = field(default_factory=asyncio.Event)

    # -- wiring ---------------------------------------------------------------------------------------

    def register(self, router: Router) -> None:
        router.unary("lock_grant", self._on_grant)
        router.unary("lock_ungrant", self._on_ungrant)
        router.unary("lock_query", self._on_query)
        router.unary("lock_held", self._on_held)
        router.unary("lock_regrant", self._on_regrant)

    def start(self) -> None:
        if self.transport is not None and self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_loop())

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._sweeper
            self._sweeper = None

    def node_gone(self, node_id: int) -> None:
        """Membership declared ``node_id`` DEAD or REMOVED: its sessions' locks are free."""
        dropped = [n for n, h in self._grants.items() if h[0] == node_id and node_id != self.node_id]
        for name in dropped:
            del self._grants[name]
        if dropped:
            log.info("node %d is gone: released its user locks %s", node_id, ", ".join(sorted(dropped)))
            self._wake()

    # -- the SQL functions ------------------------------------------------------------------------------

    async def get_lock(self, name: str, session: int, timeout_s: float, interrupt: asyncio.Event) -> int:
        """GET_LOCK: 1 once held (again, if the session holds it already), 0 after ``timeout_s`` (< 0:
        no limit). Raises ``Interrupted`` when ``interrupt`` is set while waiting."""
        key = name.lower()
        held = self._held.get(key)
        if held is not None and held.session == session:
            held.count += 1
            return 1
        deadline = None if timeout_s < 0 else time.monotonic() + timeout_s
        delay = _FIRST_RETRY_S
        while True:
            if interrupt.is_set():
                raise Interrupted
            if key not in self._held and await self._try(key, session):
                self._held[key] = _Held(session, name)
                return 1
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return 0
            wait = delay * random.uniform(0.5, 1.0)  # jitter: two askers that split the grants part
            wait = wait if remaining is None else min(wait, remaining)
            self._released.clear()
            waiter = asyncio.ensure_future(self._released.wait())
            stopper = asyncio.ensure_future(interrupt.wait())
            try:
                await asyncio.wait({waiter, stopper}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
                stopper.cancel()
            delay = min(delay * 2, _MAX_RETRY_S)

    async def release_lock(self, name: str, session: int) -> int | None:
        """RELEASE_LOCK: 1 released by its holder, 0 held by another session, None when nobody holds it."""
        key = name.lower()
        held = self._held.get(key)
        if held is not None and held.session == session:
            held.count -= 1
            if held.count == 0:
                del self._held[key]
                await self._ungrant_everywhere(key, (self.node_id, session))
            return 1
        return 0 if await self.holder(name) is not None else None

    async def release_all(self, session: int) -> int:
        """RELEASE_ALL_LOCKS (and the end of a session): how many locks (re-entrant counts included)."""
        mine = [(k, h) for k, h in self._held.items() if h.session == session]
        total = 0
        for key, held in mine:
            total += held.count
            del self._held[key]
        await asyncio.gather(*(self._ungrant_everywhere(k, (self.node_id, session)) for k, _ in mine))
        return total

    async def holder(self, name: str) -> Holder | None:
        """Who holds ``name`` cluster-wide: the holder a majority of the members granted it to."""
        key = name.lower()
        held = self._held.get(key)
        if held is not None:
            return (self.node_id, held.session)
        answers: list[Any] = [self._grants.get(key)]
        answers.extend(await self._ask_peers("lock_query", {"name": key}))
        counts: dict[Holder, int] = {}
        for answer in answers:
            if isinstance(answer, (list, tuple)) and len(answer) == 2:
                h = (int(answer[0]), int(answer[1]))
                counts[h] = counts.get(h, 0) + 1
        need = self._need()
        for h, n in counts.items():
            if n >= need:
                return h
        return None

    def held_by(self, session: int) -> list[str]:
        """The names a session of this node holds (as it wrote them)."""
        return [h.name for h in self._held.values() if h.session == session]

    # -- quorum of grants -------------------------------------------------------------------------------

    def _need(self) -> int:
        total = self.membership.total_members() if self.membership is not None else 1
        return max(1, total) // 2 + 1

    async def _try(self, key: str, session: int) -> bool:
        holder = (self.node_id, session)
        self._pending.add((key, session))
        try:
            local = self._grant(key, holder)
            if not local and self._grants.get(key, (None,))[0] == self.node_id:
                return False  # a session of this node holds it: no need to ask anyone
            peers = self._alive_peers()
            answers = await asyncio.gather(
                *(
                    self._call(addr, "lock_grant", {"name": key, "holder": list(holder)})
                    for addr in peers.values()
                ),
            )
            granted = [addr for addr, ok in zip(peers.values(), answers, strict=True) if ok is True]
            if int(local) + len(granted) >= self._need():
                return True
            if local:
                self._ungrant(key, holder)
            payload = {"name": key, "holder": list(holder)}
            await asyncio.gather(*(self._call(addr, "lock_ungrant", payload) for addr in granted))
            return False
        finally:
            self._pending.discard((key, session))

    def _grant(self, key: str, holder: Holder) -> bool:
        current = self._grants.get(key)
        if current is not None and current != holder and not self._stale_local(key, current):
            return False
        self._grants[key] = holder
        return True

    def _stale_local(self, key: str, holder: Holder) -> bool:
        """A grant to a session of this node that neither holds nor is acquiring the name (its release
        was lost to a crash of this node's earlier run, or a failed acquisition)."""
        return holder[0] == self.node_id and not self._holds(key, holder[1])

    def _holds(self, key: str, session: int) -> bool:
        held = self._held.get(key)
        return (held is not None and held.session == session) or (key, session) in self._pending

    def _ungrant(self, key: str, holder: Holder) -> None:
        if self._grants.get(key) == holder:
            del self._grants[key]
            self._wake()

    async def _ungrant_everywhere(self, key: str, holder: Holder) -> None:
        self._ungrant(key, holder)
        payload = {"name": key, "holder": list(holder)}
        await asyncio.gather(*(self._call(a, "lock_ungrant", payload) for a in self._alive_peers().values()))

    def _wake(self) -> None:
        self._released.set()

    # -- RPC ----------------------------------------------------------------------------------------

    def _alive_peers(self) -> dict[int, str]:
        if self.transport is None or self.membership is None:
            return {}
        return self.membership.alive_peers()

    async def _call(self, address: str, method: str, payload: Any) -> Any:
        assert self.transport is not None
        try:
            return await self.transport.send(address, method, payload, RPC_TIMEOUT_S)
        except Exception:  # unreachable, timed out: no answer (it neither granted nor holds)
            return None

    async def _ask_peers(self, method: str, payload: Any) -> list[Any]:
        peers = self._alive_peers()
        return list(await asyncio.gather(*(self._call(a, method, payload) for a in peers.values())))

    async def _on_grant(self, payload: Any, _ctx: Any) -> bool:
        holder = (int(payload["holder"][0]), int(payload["holder"][1]))
        return self._grant(str(payload["name"]), holder)

    async def _on_ungrant(self, payload: Any, _ctx: Any) -> bool:
        self._ungrant(str(payload["name"]), (int(payload["holder"][0]), int(payload["holder"][1])))
        return True

    async def _on_query(self, payload: Any, _ctx: Any) -> list[int] | None:
        holder = self._grants.get(str(payload["name"]))
        return list(holder) if holder is not None else None

    async def _on_held(self, payload: Any, _ctx: Any) -> list[bool]:
        """Which of ``[[name, session], ...]`` a session of this node still holds or is acquiring."""
        return [self._holds(str(name), int(session)) for name, session in payload["locks"]]

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            try:
                await self._sweep()
            except Exception:  # a sweep that fails is retried next round
                log.exception("user lock sweep failed")

    async def _on_regrant(self, payload: Any, _ctx: Any) -> list[bool]:
        """A holder node re-asserts its locks: grant each ``[name, node, session]`` unless another holds it."""
        return [self._grant(str(name), (int(node), int(session))) for name, node, session in payload["locks"]]

    async def _reassert(self, peers: dict[int, str]) -> None:
        """Ask every ALIVE peer to grant again the locks this node's sessions hold: a member that dropped
        a grant because a false DEAD rumour about this node reached it (after a partition heals) grants
        it back, so the lock keeps its majority."""
        locks = [[key, self.node_id, held.session] for key, held in self._held.items()]
        if not locks:
            return
        answers = await asyncio.gather(
            *(self._call(a, "lock_regrant", {"locks": locks}) for a in peers.values())
        )
        for node, answer in zip(peers, answers, strict=True):
            if isinstance(answer, list):
                lost = [lock[0] for lock, ok in zip(locks, answer, strict=False) if ok is False]
                if lost:
                    log.warning(
                        "node %d granted user lock(s) %s to another session",
                        node,
                        ", ".join(str(x) for x in lost),
                    )

    async def _sweep(self) -> None:
        """Drop grants whose holder node says it no longer holds them (releases lost, node restarted), and
        re-assert this node's own locks."""
        peers = self._alive_peers()
        await self._reassert(peers)
        by_node: dict[int, list[tuple[str, int]]] = {}
        for key, (node, session) in self._grants.items():
            if node == self.node_id:
                if not self._holds(key, session):
                    by_node.setdefault(node, []).append((key, session))
            elif node in peers:
                by_node.setdefault(node, []).append((key, session))
        for key, session in by_node.pop(self.node_id, []):
            self._ungrant(key, (self.node_id, session))
        for node, locks in by_node.items():
            answer = await self._call(peers[node], "lock_held", {"locks": [list(x) for x in locks]})
            if not isinstance(answer, list) or len(answer) != len(locks):
                continue
            for (key, session), still in zip(locks, answer, strict=True):
                if still is False:
                    self._ungrant(key, (node, session))
