"""Cluster membership state: the member table, its merge rules and the failure detector.

Pure: no I/O, no asyncio, no clock. Every method that depends on time takes ``now`` (seconds on any
monotonic scale, the same one for every call); randomness comes from an injected ``random.Random``.
``gossip.py`` drives it over the network; the unit tests drive it with a fake clock. Not thread-safe:
it lives on the event loop thread.

One entry per node, on the wire and on disk the same small dict::

    {"id": 3, "addr": "10.0.0.3:8080", "state": "ALIVE", "inc": 7, "gen": 0, "extra": {...}}

* ``inc`` (incarnation) is owned by the node itself. Only the node raises it: on every change of its
  own state or metadata, and to refute a claim that it is SUSPECT or DEAD (SWIM's self-refutation).
* ``gen`` (admin generation) versions administrator decisions about the node (remove / allow). It is
  raised by whichever member executes the admin command and beats any incarnation.

Merge of an incoming entry about a peer (first rule that applies):

1. unknown node: added as is;
2. an entry restored from disk (never confirmed since this start) is replaced by any entry at least
   as new (others' word is fresher than our memory);
3. higher ``gen`` wins outright (state, address, metadata; incarnation = the larger); lower is ignored;
4. same ``gen``: REMOVED is sticky (nothing overrides it) and an incoming REMOVED wins;
5. higher ``inc`` wins outright (so a DEAD node that comes back with a higher incarnation is alive);
6. equal ``inc`` only escalates ALIVE/JOINING/LEAVING -> SUSPECT -> DEAD (never resurrection).

An entry about this node itself never changes its state, except an admin decision (higher ``gen``
REMOVED, or an allow that lifts it). Any other claim at an incarnation >= our own that differs from
what we are (SUSPECT, DEAD, another state, another address) is refuted: incarnation = claimed + 1.

Failure detector (SWIM with a silence gate): every member has ``last_seen``, the local time of the
last sign of life — a message from it, a direct ping ack, or an ack relayed by a ping-req helper.
Second-hand gossip is not a sign of life. Each protocol period the driver probes one member
(:meth:`probe_target`): members silent for half of ``suspect_timeout`` first, least recently probed
first, else a shuffled round robin. A probe that fails directly and through every ping-req helper
(:meth:`probe_failed`) marks the member SUSPECT once it has been silent for ``suspect_timeout``;
SUSPECT turns DEAD after ``dead_timeout`` in that state (:meth:`tick`). The suspected node refutes as
soon as it hears the claim (ping payloads carry our entry about the target, gossip carries the view).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from marmot.hlc import NODE_BITS_MASK

log = logging.getLogger(__name__)

ALIVE = "ALIVE"
SUSPECT = "SUSPECT"
DEAD = "DEAD"
JOINING = "JOINING"
LEAVING = "LEAVING"
REMOVED = "REMOVED"
STATES = (ALIVE, SUSPECT, DEAD, JOINING, LEAVING, REMOVED)

# States the node itself asserts (rank 0); SUSPECT and DEAD are others' claims about it.
OWN_STATES = (ALIVE, JOINING, LEAVING)
_RANK = {ALIVE: 0, JOINING: 0, LEAVING: 0, SUSPECT: 1, DEAD: 2, REMOVED: 3}
PROBE_STATES = (ALIVE, JOINING, LEAVING, SUSPECT)

SNAPSHOT_FORMAT = 1
MAX_ADDRESS_LEN = 1024

OnChange = Callable[[int, str, str], None]


class MembershipError(Exception):
    """A membership decision that stops this node: join refused, unusable persisted view."""


@dataclass
class Member:
    node_id: int
    address: str
    state: str
    incarnation: int
    gen: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    last_seen: float = 0.0  # local time of the last sign of life (or when we learned of the member)
    heard: bool = False  # a sign of life since this process started
    state_since: float = 0.0
    last_probed: float = float("-inf")
    restored: bool = False  # loaded from disk and not confirmed since: local only, never gossiped

    def entry(self) -> dict[str, Any]:
        return {
            "id": self.node_id,
            "addr": self.address,
            "state": self.state,
            "inc": self.incarnation,
            "gen": self.gen,
            "extra": dict(self.extra),
        }


def decode_entry(raw: Any) -> Member | None:
    """A wire/disk entry as a Member, or None when it is malformed in any way."""
    if not isinstance(raw, dict):
        return None
    nid, addr, state = raw.get("id"), raw.get("addr"), raw.get("state")
    inc, gen, extra = raw.get("inc"), raw.get("gen", 0), raw.get("extra", {})
    if not is_int(nid) or nid <= 0 or not isinstance(addr, str) or len(addr) > MAX_ADDRESS_LEN:
        return None
    if state not in STATES or not is_int(inc) or inc < 0 or not is_int(gen) or gen < 0:
        return None
    if not isinstance(extra, dict) or not all(isinstance(k, str) for k in extra):
        return None
    return Member(nid, addr, state, inc, gen, dict(extra))


def is_int(v: object) -> TypeGuard[int]:
    """An int that is no bool (what msgpack gives for an integer on the wire)."""
    return isinstance(v, int) and not isinstance(v, bool)


def id_bits(node_id: int) -> int:
    """The part of a node id that reaches transaction ids and AUTO_INCREMENT ids."""
    return node_id & NODE_BITS_MASK


class Membership:
    def __init__(
        self,
        node_id: int,
        address: str,
        *,
        now: float,
        incarnation: int = 0,
        joining: bool = False,
        suspect_timeout: float = 5.0,
        dead_timeout: float = 10.0,
        rng: random.Random | None = None,
        on_change: OnChange | None = None,
    ) -> None:
        if not is_int(node_id) or node_id <= 0:
            raise ValueError(f"node_id must be a positive integer, got {node_id!r}")
        self.node_id = node_id
        self.address = address
        self.suspect_timeout = suspect_timeout
        self.dead_timeout = dead_timeout
        self.rng = rng or random.Random()
        self.on_change = on_change
        self.me = Member(
            node_id,
            address,
            JOINING if joining else ALIVE,
            incarnation,
            last_seen=now,
            heard=True,
            state_since=now,
        )
        self._members: dict[int, Member] = {node_id: self.me}
        self._probe_queue: list[int] = []
        self.version = 0  # raised on every change worth persisting
        self.stats = {"refutations": 0, "suspected": 0, "declared_dead": 0, "malformed": 0}
        self._conflicts_logged: set[tuple[int, int | str]] = set()

    # ---- queries -------------------------------------------------------------------------------

    @property
    def state(self) -> str:
        return self.me.state

    @property
    def incarnation(self) -> int:
        return self.me.incarnation

    def get(self, node_id: int) -> Member | None:
        return self._members.get(node_id)

    def peers(self) -> list[Member]:
        return [m for nid, m in sorted(self._members.items()) if nid != self.node_id]

    def state_of(self, node_id: int) -> str:
        m = self._members.get(node_id)
        if m is None:
            raise KeyError(f"node {node_id} is not a member")
        return m.state

    def alive_members(self) -> list[int]:
        return sorted(nid for nid, m in self._members.items() if m.state == ALIVE)

    def total_members(self) -> int:
        return sum(1 for m in self._members.values() if m.state != REMOVED)

    def alive_peers(self) -> dict[int, str]:
        """ALIVE members other than this node: {node_id: address} (who gets a PREPARE)."""
        return {
            nid: m.address for nid, m in self._members.items() if m.state == ALIVE and nid != self.node_id
        }

    def has_quorum(self) -> bool:
        """Alive members are a majority of all members. A removed node never has quorum."""
        if self.me.state == REMOVED:
            return False
        return len(self.alive_members()) >= self.total_members() // 2 + 1

    def extra(self) -> dict[int, dict[str, Any]]:
        return {nid: dict(m.extra) for nid, m in sorted(self._members.items())}

    def members(self, now: float) -> list[dict[str, Any]]:
        out = []
        for nid, m in sorted(self._members.items()):
            if nid == self.node_id:
                ago: int | None = 0
            else:
                ago = int(max(0.0, now - m.last_seen) * 1000) if m.heard else None
            out.append(
                {
                    "node_id": nid,
                    "address": m.address,
                    "state": m.state,
                    "incarnation": m.incarnation,
                    "last_seen_ms_ago": ago,
                    "extra": dict(m.extra),
                }
            )
        return out

    def view(self) -> list[dict[str, Any]]:
        """The entries we gossip: everything except entries restored from disk and not yet confirmed."""
        return [m.entry() for _, m in sorted(self._members.items()) if not m.restored]

    def piggyback_for(self, target: int) -> list[dict[str, Any]]:
        """What a ping to ``target`` carries: our own entry and our claim about the target."""
        out = [self.me.entry()]
        m = self._members.get(target)
        if m is not None and not m.restored and target != self.node_id:
            out.append(m.entry())
        return out

    # ---- merge ---------------------------------------------------------------------------------

    def merge(self, entries: Any, now: float, source: int | None = None) -> int:
        """Merge a list of entries; ``source`` is the node that sent them (a sign of life for it).

        Returns how many entries were malformed (skipped). Never raises on bad input.
        """
        if not isinstance(entries, list):
            self.stats["malformed"] += 1
            return 1
        bad = 0
        for raw in entries:
            e = decode_entry(raw)
            if e is None:
                bad += 1
                continue
            if e.node_id == self.node_id:
                self._merge_self(e)
            else:
                self._merge_peer(e, now)
        if source is not None:
            self.heard_from(source, now)
        self.stats["malformed"] += bad
        return bad

    def _merge_self(self, e: Member) -> None:
        me = self.me
        if e.gen < me.gen:
            return
        if e.gen > me.gen:
            me.gen = e.gen
            if e.state == REMOVED:
                me.incarnation = max(me.incarnation, e.incarnation)
                self._transition(me, REMOVED, None)
            else:
                me.incarnation = max(me.incarnation, e.incarnation) + 1
                if me.state == REMOVED:  # an administrator allowed us back in: catch up, then promote
                    self._transition(me, JOINING, None)
            self._changed()
            return
        if me.state == REMOVED:
            return  # sticky: we cannot refute a removal
        if e.state == REMOVED:
            me.incarnation = max(me.incarnation, e.incarnation)
            self._transition(me, REMOVED, None)
            self._changed()
            return
        if e.address and e.address != me.address and e.incarnation >= me.incarnation:
            key = (self.node_id, e.address)
            if key not in self._conflicts_logged:
                self._conflicts_logged.add(key)
                log.error(
                    "another process claims to be node %d at %s (this node is at %s): node ids "
                    "must be unique",
                    self.node_id,
                    e.address,
                    me.address,
                )
        differs = e.state != me.state or (e.address and e.address != me.address)
        if e.incarnation > me.incarnation or (e.incarnation == me.incarnation and differs):
            me.incarnation = e.incarnation + 1
            self.stats["refutations"] += 1
            log.info(
                "refuting claim that node %d is %s at incarnation %d: now %s at %d",
                self.node_id,
                e.state,
                e.incarnation,
                me.state,
                me.incarnation,
            )
            self._changed()

    def _merge_peer(self, e: Member, now: float) -> None:
        cur = self._members.get(e.node_id)
        if cur is None:
            self._check_id_bits(e)
            e.last_seen = now
            e.state_since = now
            self._members[e.node_id] = e
            self._changed()
            self._notify(e.node_id, "", e.state)
            return
        if cur.restored:
            if (e.gen, e.incarnation) >= (cur.gen, cur.incarnation):
                cur.restored = False
                if e.gen > cur.gen:
                    cur.gen, cur.address = e.gen, e.address
                self._accept(cur, e, e.incarnation, now, fresh=True)
            return
        if e.gen != cur.gen:
            if e.gen > cur.gen:
                cur.gen = e.gen
                cur.address = e.address  # an allow clears the address: the node may rejoin from anywhere
                self._accept(cur, e, max(cur.incarnation, e.incarnation), now, fresh=e.state in OWN_STATES)
            return
        if cur.state == REMOVED:
            return
        if e.state == REMOVED:
            self._accept(cur, e, max(cur.incarnation, e.incarnation), now, fresh=False)
        elif e.incarnation > cur.incarnation:
            self._accept(cur, e, e.incarnation, now, fresh=e.state in OWN_STATES)
        elif e.incarnation == cur.incarnation and _RANK[e.state] > _RANK[cur.state]:
            self._transition(cur, e.state, now)
            self._changed()

    def _accept(self, cur: Member, e: Member, incarnation: int, now: float, *, fresh: bool) -> None:
        if e.address:
            cur.address = e.address
        cur.extra = dict(e.extra)
        cur.incarnation = incarnation
        if fresh:
            cur.last_seen = now  # the node was alive recently: give it a full window before suspecting
        self._transition(cur, e.state, now)
        self._changed()

    def _check_id_bits(self, e: Member) -> None:
        for m in self._members.values():
            if m.node_id != e.node_id and m.state != REMOVED and id_bits(m.node_id) == id_bits(e.node_id):
                key = (min(m.node_id, e.node_id), max(m.node_id, e.node_id))
                if key not in self._conflicts_logged:
                    self._conflicts_logged.add(key)
                    log.error(
                        "nodes %d and %d share node id bits %d: they would mint colliding ids",
                        m.node_id,
                        e.node_id,
                        id_bits(e.node_id),
                    )

    # ---- signs of life and the failure detector ------------------------------------------------

    def heard_from(self, node_id: int, now: float) -> None:
        m = self._members.get(node_id)
        if m is not None and node_id != self.node_id:
            m.last_seen = max(m.last_seen, now)
            m.heard = True

    def probe_target(self, now: float) -> Member | None:
        cands = {m.node_id: m for m in self.peers() if m.state in PROBE_STATES and m.address}
        if not cands:
            return None
        urgent = [
            m for m in cands.values() if m.state != SUSPECT and now - m.last_seen >= self.suspect_timeout / 2
        ]
        if urgent:
            target = min(urgent, key=lambda m: (m.last_probed, m.last_seen, m.node_id))
        else:
            while self._probe_queue and self._probe_queue[-1] not in cands:
                self._probe_queue.pop()
            if not self._probe_queue:
                self._probe_queue = list(cands)
                self.rng.shuffle(self._probe_queue)
            target = cands[self._probe_queue.pop()]
        target.last_probed = now
        return target

    def probe_helpers(self, target: int, k: int) -> list[Member]:
        """Up to ``k`` random ALIVE peers (other than the target) to ask for an indirect probe."""
        cands = [m for m in self.peers() if m.node_id != target and m.state == ALIVE and m.address]
        return self.rng.sample(cands, min(k, len(cands)))

    def probe_failed(self, node_id: int, now: float) -> bool:
        """No ack, direct or indirect: SUSPECT if silent for ``suspect_timeout``. True if suspected."""
        m = self._members.get(node_id)
        if m is None or m.restored or m.state not in OWN_STATES or node_id == self.node_id:
            return False
        if now - m.last_seen < self.suspect_timeout:
            return False
        self._transition(m, SUSPECT, now)
        self.stats["suspected"] += 1
        self._changed()
        return True

    def tick(self, now: float) -> None:
        """Timers: SUSPECT for ``dead_timeout`` -> DEAD."""
        for m in self.peers():
            if m.state == SUSPECT and now - m.state_since >= self.dead_timeout:
                self._transition(m, DEAD, now)
                self.stats["declared_dead"] += 1
                self._changed()

    def gossip_targets(self, k: int) -> list[Member]:
        cands = [m for m in self.peers() if m.address and m.state not in (DEAD, REMOVED)]
        return self.rng.sample(cands, min(k, len(cands)))

    def dead_target(self) -> Member | None:
        """One DEAD member to contact anyway: how two sides that declared each other DEAD find back."""
        cands = [m for m in self.peers() if m.address and m.state == DEAD]
        return self.rng.choice(cands) if cands else None

    # ---- own state -----------------------------------------------------------------------------

    def promote(self) -> bool:
        """JOINING -> ALIVE (the driver calls it once caught up)."""
        if self.me.state != JOINING:
            return False
        self._own_state(ALIVE)
        return True

    def set_leaving(self) -> None:
        if self.me.state in (ALIVE, JOINING):
            self._own_state(LEAVING)

    def cancel_leaving(self) -> None:
        """A cancelled decommission: back to ALIVE (a fresh incarnation makes it win everywhere)."""
        if self.me.state == LEAVING:
            self._own_state(ALIVE)

    def set_metadata(self, key: str, value: Any) -> None:
        if self.me.extra.get(key, _MISSING) == value:
            return
        self.me.extra[key] = value
        self.me.incarnation += 1
        self._changed()

    def _own_state(self, state: str) -> None:
        self.me.incarnation += 1
        self._transition(self.me, state, None)
        self._changed()

    # ---- admin -----------------------------------------------------------------------------------

    def remove(self, node_id: int, now: float) -> None:
        m = self._members.get(node_id)
        if m is None:
            raise KeyError(f"node {node_id} is not a member")
        if m.state == REMOVED:
            return
        m.gen += 1
        m.restored = False
        self._transition(m, REMOVED, now)
        self._changed()

    def allow(self, node_id: int, now: float) -> None:
        """Lift REMOVED. A peer becomes DEAD with no address: it may rejoin, from any address."""
        m = self._members.get(node_id)
        if m is None:
            raise KeyError(f"node {node_id} is not a member")
        if m.state != REMOVED:
            return
        m.gen += 1
        if node_id == self.node_id:
            m.incarnation += 1
            self._transition(m, JOINING, None)
        else:
            m.address = ""
            self._transition(m, DEAD, now)
        self._changed()

    # ---- join (seed side) ----------------------------------------------------------------------

    def check_join(self, node_id: int, address: str) -> tuple[str, bool] | None:
        """Why a joiner is refused, as (message, fatal), or None when it may join.

        Fatal refusals are configuration errors the joiner must not retry elsewhere; a non-fatal one
        only says "not this seed".
        """
        if self.me.state == REMOVED:
            return f"seed node {self.node_id} was removed from the cluster and admits nobody", False
        if node_id == self.node_id:
            if address == self.address:
                return f"seed {address} is the joining node itself", False
            return (
                f"node id {node_id} is already used by the member at {self.address} "
                f"(joiner at {address}): node ids must be unique"
            ), True
        cur = self._members.get(node_id)
        if cur is not None:
            if cur.state == REMOVED:
                return (
                    f"node {node_id} was removed from the cluster by an administrator; "
                    f"allow it again (POST /admin/cluster/allow/{node_id}) before it rejoins"
                ), True
            if cur.address and cur.address != address:
                return (
                    f"node id {node_id} is already used by the member at {cur.address} (state "
                    f"{cur.state}), joiner is at {address}: node ids must be unique; to move node "
                    f"{node_id} to a new address, remove and then allow it"
                ), True
        for m in self._members.values():
            if m.node_id != node_id and m.state != REMOVED and id_bits(m.node_id) == id_bits(node_id):
                return (
                    f"node id {node_id} collides with member {m.node_id} at {m.address}: both are "
                    f"{id_bits(node_id)} modulo 64, the part of a node id that goes into transaction "
                    f"and AUTO_INCREMENT ids; choose another node_id (or remove member {m.node_id} if it is gone "
                    f"for good)"
                ), True
        return None

    def accept_join(self, node_id: int, address: str, incarnation: int, now: float) -> None:
        """Add (or re-add) a joiner as JOINING, at an incarnation above every claim we know about it."""
        cur = self._members.get(node_id)
        if cur is None:
            m = Member(node_id, address, JOINING, incarnation, last_seen=now, heard=True, state_since=now)
            self._members[node_id] = m
            self._changed()
            self._notify(node_id, "", JOINING)
            return
        cur.restored = False
        cur.address = address
        cur.incarnation = incarnation if incarnation > cur.incarnation else cur.incarnation + 1
        cur.last_seen = now
        cur.heard = True
        self._transition(cur, JOINING, now)
        self._changed()

    # ---- persistence -----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "format": SNAPSHOT_FORMAT,
            "node_id": self.node_id,
            "address": self.address,
            "members": [m.entry() for _, m in sorted(self._members.items())],
        }

    def restore(self, snap: Any, now: float) -> int:
        """Load a persisted view; returns the number of peers restored (REMOVED ones not counted).

        Our own incarnation goes above the persisted one (this run supersedes every claim made about
        the previous run). Peers come back as SUSPECT (or DEAD if they were) and flagged ``restored``:
        they count in :meth:`total_members` but not as alive, and are not gossiped, until we hear from
        them or about them. REMOVED entries are admin decisions and come back as they were.
        """
        if (
            not isinstance(snap, dict)
            or snap.get("format") != SNAPSHOT_FORMAT
            or not isinstance(snap.get("members"), list)
        ):
            raise MembershipError("persisted membership view has an unknown format")
        if snap.get("node_id") != self.node_id:
            raise MembershipError(
                f"persisted membership view belongs to node {snap.get('node_id')!r}, this is node "
                f"{self.node_id}: the data directory of another node was reused"
            )
        peers = 0
        for raw in snap["members"]:
            e = decode_entry(raw)
            if e is None:
                self.stats["malformed"] += 1
                continue
            if e.node_id == self.node_id:
                self.me.incarnation = max(self.me.incarnation, e.incarnation + 1)
                self.me.gen = max(self.me.gen, e.gen)
                continue
            if e.node_id in self._members:
                continue
            if e.state != REMOVED:
                e.state = DEAD if e.state == DEAD else SUSPECT
                e.restored = True
                peers += 1
            e.last_seen = now
            e.state_since = now
            self._members[e.node_id] = e
        if peers and self.me.state == ALIVE:
            self.me.state = JOINING  # a former member catches up before it serves (not yet gossiped)
        self._changed()
        return peers

    # ---- internals -------------------------------------------------------------------------------

    def _transition(self, m: Member, state: str, now: float | None) -> None:
        old = m.state
        if now is not None and old != state:
            m.state_since = now
        m.state = state
        if old != state:
            self._notify(m.node_id, old, state)

    def _notify(self, node_id: int, old: str, new: str) -> None:
        log.info("member %d: %s -> %s", node_id, old or "(new)", new)
        if self.on_change is not None:
            try:
                self.on_change(node_id, old, new)
            except Exception:
                log.exception("membership on_change callback failed")

    def _changed(self) -> None:
        self.version += 1


_MISSING = object()
