"""Hybrid logical clock (HLC) and transaction ids.

Why an HLC: last-writer-wins conflict resolution needs timestamps that (a) follow real time closely
enough that "later" means what a user expects, (b) never go backwards on one node even when NTP steps
the wall clock back, and (c) respect causality across nodes: a node that has seen a remote timestamp
must never mint a smaller one afterwards. A pure wall clock fails (b) and (c); a pure Lamport counter
fails (a). The HLC gives all three (Kulkarni et al., "Logical Physical Clocks", 2014).

Layout (upstream Marmot v2 ``hlc/clock.go``, kept bit-compatible so ids mean the same thing):

* ``Timestamp(wall_ns, logical, node_id)`` ordered by wall, then logical, then node id (the node id
  breaks exact ties deterministically, so LWW is a total order).
* The logical counter is scoped to a **millisecond**, not to a nanosecond wall value: it resets when
  the millisecond changes and increments otherwise. That is what makes transaction ids unique:
* ``to_txn_id(ts) = (wall_ms << 22) | ((node_id & 0x3F) << 16) | (logical & 0xFFFF)`` — 42 bits of
  Unix ms, 6 bits of node id, 16 bits of logical. Per node, the ``(wall_ms, logical)`` pair strictly
  increases, so ids never repeat on one node; across nodes they differ in the 6 node bits as long as
  no two members share ``node_id & 0x3F`` (the cluster layer rejects such peers).

Differences from upstream, on purpose:

* ``update()`` applies the same per-millisecond logical rule as ``now()``. A textbook HLC receive
  compares exact wall values; mixed with a per-ms counter that can hand out an ``(ms, logical)`` pair
  already used by an earlier ``now()`` in the same ms (a duplicate txn id). Here it cannot.
* Logical overflow (more than 65536 events in one ms): upstream spins until the next millisecond.
  We spin only while the physical clock still reads the saturated millisecond (at most ~1 ms), and
  then only for a bounded time; if the clock is behind (we already run ahead after a remote update
  or a clock step backwards) or does not move (a frozen test clock), we move the wall to the start
  of the next millisecond instead. Waiting for a clock that went back by minutes would stall every
  writer for minutes, and buys nothing: uniqueness comes from the stored last value, not the clock.

Fault tests skew one node's clock by setting ``HLC.offset_ns`` (added to every physical reading).

Thread safety: one ``threading.Lock`` per clock guards the last (wall, logical) pair; every method
that reads or advances it holds the lock. The critical section is a few integer operations.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

NODE_BITS = 6
NODE_BITS_MASK = (1 << NODE_BITS) - 1  # 0x3F: only these bits of a node id reach txn / row ids
LOGICAL_BITS = 16
LOGICAL_MAX = (1 << LOGICAL_BITS) - 1  # 0xFFFF
NS_PER_MS = 1_000_000

# Longest we busy-wait for the physical clock to leave a saturated millisecond before advancing the
# wall logically. Real clocks move on within 1 ms; the bound only matters for stuck/frozen clocks.
_MAX_SPIN_NS = 2 * NS_PER_MS


@dataclass(frozen=True, order=True, slots=True)
class Timestamp:
    """One HLC reading. Field order is the comparison order: wall, logical, node id."""

    wall_ns: int
    logical: int
    node_id: int

    @property
    def wall_ms(self) -> int:
        return self.wall_ns // NS_PER_MS

    def to_txn_id(self) -> int:
        return to_txn_id(self)


ZERO = Timestamp(0, 0, 0)


class TxnIdParts(NamedTuple):
    """A transaction id taken apart. ``node_bits`` is only ``node_id & 0x3F``: the rest is lost."""

    wall_ms: int
    node_bits: int
    logical: int


def to_txn_id(ts: Timestamp) -> int:
    """Pack a timestamp into upstream's 64-bit transaction id (42 bit ms | 6 bit node | 16 bit logical)."""
    return (
        ((ts.wall_ns // NS_PER_MS) << 22)
        | ((ts.node_id & NODE_BITS_MASK) << LOGICAL_BITS)
        | (ts.logical & LOGICAL_MAX)
    )


def from_txn_id(txn_id: int) -> TxnIdParts:
    """Inverse of :func:`to_txn_id`, for logs, admin output and tests."""
    return TxnIdParts(txn_id >> 22, (txn_id >> LOGICAL_BITS) & NODE_BITS_MASK, txn_id & LOGICAL_MAX)


class HLC:
    """A hybrid logical clock for one node.

    ``time_source`` returns nanoseconds since the Unix epoch (default ``time.time_ns``); tests inject
    a fake. ``offset_ns`` is added to every physical reading (clock-skew fault injection); it may be
    changed at any time.
    """

    __slots__ = ("node_id", "offset_ns", "_time_source", "_lock", "_wall", "_logical", "_node_bits")

    def __init__(self, node_id: int, time_source: Callable[[], int] = time.time_ns, *, offset_ns: int = 0):
        if node_id < 0:
            raise ValueError(f"node_id must be >= 0, got {node_id}")
        self.node_id = node_id
        self.offset_ns = offset_ns
        self._time_source = time_source
        self._lock = threading.Lock()
        self._wall = 0
        self._logical = 0
        self._node_bits = (node_id & NODE_BITS_MASK) << LOGICAL_BITS

    # -- reading the clock -------------------------------------------------------------------

    def physical_ns(self) -> int:
        """The (possibly skewed) physical clock, without advancing the HLC."""
        return self._time_source() + self.offset_ns

    def peek(self) -> Timestamp:
        """The last timestamp handed out (or merged), without advancing the clock."""
        with self._lock:
            return Timestamp(self._wall, self._logical, self.node_id)

    def now(self) -> Timestamp:
        """A new timestamp, strictly greater than every earlier one from this clock."""
        with self._lock:
            wall, logical = self._tick_locked()
            return Timestamp(wall, logical, self.node_id)

    def next_txn_id(self) -> int:
        """``to_txn_id(self.now())`` without building a Timestamp (hot path for row ids)."""
        with self._lock:
            wall, logical = self._tick_locked()
            return ((wall // NS_PER_MS) << 22) | self._node_bits | logical

    def update(self, remote: Timestamp) -> Timestamp:
        """Merge a timestamp received from another node (HLC receive event).

        The result is strictly greater than both the previous local value and ``remote``, and is
        at least the local physical time.
        """
        with self._lock:
            phys = self._time_source() + self.offset_ns
            wall = self._wall
            new_wall = max(wall, remote.wall_ns, phys)
            new_ms = new_wall // NS_PER_MS
            logical = -1
            if wall // NS_PER_MS == new_ms:
                logical = self._logical
            if remote.wall_ns // NS_PER_MS == new_ms and remote.logical > logical:
                logical = remote.logical
            logical += 1
            if logical > LOGICAL_MAX:
                new_wall = self._after_ms_locked(new_wall)
                logical = 0
            self._wall = new_wall
            self._logical = logical
            return Timestamp(new_wall, logical, self.node_id)

    # -- internals (caller holds self._lock) -------------------------------------------------

    def _tick_locked(self) -> tuple[int, int]:
        phys = self._time_source() + self.offset_ns
        wall = self._wall
        if phys > wall:
            if phys // NS_PER_MS != wall // NS_PER_MS:
                # A new millisecond: the common case, logical restarts.
                self._wall = phys
                self._logical = 0
                return phys, 0
            wall = phys  # same millisecond, a few ns later: keep counting within the ms
        logical = self._logical + 1
        if logical > LOGICAL_MAX:
            wall = self._after_ms_locked(wall)
            logical = 0
        self._wall = wall
        self._logical = logical
        return wall, logical

    def _after_ms_locked(self, wall: int) -> int:
        """A wall value in a later millisecond than ``wall`` (logical counter exhausted)."""
        cur_ms = wall // NS_PER_MS
        phys = self._time_source() + self.offset_ns
        if phys // NS_PER_MS == cur_ms:
            deadline = time.monotonic_ns() + _MAX_SPIN_NS
            while phys // NS_PER_MS == cur_ms and time.monotonic_ns() < deadline:
                phys = self._time_source() + self.offset_ns
        if phys // NS_PER_MS > cur_ms:
            return phys
        return (cur_ms + 1) * NS_PER_MS
