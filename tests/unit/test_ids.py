"""AUTO_INCREMENT id generators: bit layouts, monotonicity, overflow, uniqueness, JS-safe bound."""

from __future__ import annotations

import calendar
import threading
import time

import pytest

from marmot.hlc import HLC, from_txn_id
from marmot.ids import (
    COMPACT_EPOCH_MS,
    MAX_SAFE_INTEGER,
    CompactIdGenerator,
    CompactIdParts,
    ExtendedIdGenerator,
    decode_compact_id,
    make_id_generator,
)

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


class FakeMs:
    def __init__(self, ms: int = T0_MS) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def test_epoch_is_2025_01_02_utc() -> None:
    assert calendar.timegm((2025, 1, 2, 0, 0, 0)) * 1000 == COMPACT_EPOCH_MS


def test_compact_layout_decodes_to_node_and_ms() -> None:
    clock = FakeMs()
    gen = CompactIdGenerator(37, time_ms=clock)
    first = gen.next_id()
    assert first == ((T0_MS - COMPACT_EPOCH_MS) << 12) | (37 << 6)
    assert decode_compact_id(first) == CompactIdParts(unix_ms=T0_MS, node_bits=37, seq=0)
    assert decode_compact_id(gen.next_id()) == CompactIdParts(T0_MS, 37, 1)
    clock.ms += 7
    assert decode_compact_id(gen.next_id()) == CompactIdParts(T0_MS + 7, 37, 0)


def test_compact_masks_node_id_to_six_bits() -> None:
    a = CompactIdGenerator(1, time_ms=FakeMs())
    b = CompactIdGenerator(65, time_ms=FakeMs())  # 65 & 63 == 1: the documented collision case
    assert a.next_id() == b.next_id()
    assert decode_compact_id(CompactIdGenerator(200, time_ms=FakeMs()).next_id()).node_bits == 200 & 63


def test_64_per_ms_then_overflow_moves_to_next_ms() -> None:
    gen = CompactIdGenerator(3, time_ms=FakeMs())  # frozen clock
    ids = [gen.next_id() for _ in range(64)]
    assert [decode_compact_id(i).seq for i in ids] == list(range(64))
    assert {decode_compact_id(i).unix_ms for i in ids} == {T0_MS}
    nxt = decode_compact_id(gen.next_id())
    assert nxt == CompactIdParts(T0_MS + 1, 3, 0)


def test_overflow_waits_for_a_moving_clock() -> None:
    clock = FakeMs()
    reads = 0

    def ticking() -> int:
        nonlocal reads
        reads += 1
        return clock.ms + (1 if reads > 70 else 0)  # reaches the next ms a few reads after overflow

    gen = CompactIdGenerator(3, time_ms=ticking)
    for _ in range(64):
        gen.next_id()
    assert decode_compact_id(gen.next_id()) == CompactIdParts(T0_MS + 1, 3, 0)
    assert reads > 70  # it spun on the clock rather than borrowing


def test_monotonic_when_clock_goes_backwards() -> None:
    clock = FakeMs()
    gen = CompactIdGenerator(9, time_ms=clock)
    ids = [gen.next_id() for _ in range(10)]
    clock.ms -= 60_000  # a minute back
    ids += [gen.next_id() for _ in range(200)]  # overflows several times while behind
    clock.ms += 30_000  # still behind the last id
    ids += [gen.next_id() for _ in range(10)]
    clock.ms += 60_000  # ahead again
    ids += [gen.next_id() for _ in range(10)]
    assert all(a < b for a, b in zip(ids, ids[1:], strict=False))
    assert decode_compact_id(ids[-1]).unix_ms == T0_MS + 30_000
    assert {decode_compact_id(i).node_bits for i in ids} == {9}


def test_two_nodes_never_collide_with_frozen_clock() -> None:
    a = CompactIdGenerator(1, time_ms=FakeMs())
    b = CompactIdGenerator(2, time_ms=FakeMs())
    ids_a = [a.next_id() for _ in range(100_000)]
    ids_b = [b.next_id() for _ in range(100_000)]
    assert len(set(ids_a)) == len(ids_a) and len(set(ids_b)) == len(ids_b)
    assert not set(ids_a) & set(ids_b)
    assert ids_a == sorted(ids_a)


def test_compact_ids_are_js_safe_until_2094() -> None:
    end_2093 = calendar.timegm((2094, 1, 1, 0, 0, 0)) * 1000 - 1
    gen = CompactIdGenerator(63, time_ms=FakeMs(end_2093))
    last = max(gen.next_id() for _ in range(64))  # highest node bits and sequence
    assert last <= MAX_SAFE_INTEGER
    assert decode_compact_id(last) == CompactIdParts(end_2093, 63, 63)
    # The 41-bit field runs out later in 2094; then the generator refuses instead of wrapping.
    exhausted = COMPACT_EPOCH_MS + (1 << 41)
    with pytest.raises(OverflowError):
        CompactIdGenerator(1, time_ms=FakeMs(exhausted)).next_id()


def test_real_clock_ids_are_current_and_js_safe() -> None:
    gen = CompactIdGenerator(5)
    before = time.time_ns() // 1_000_000
    ids = [gen.next_id() for _ in range(1000)]
    after = time.time_ns() // 1_000_000
    assert ids == sorted(set(ids))
    assert before <= decode_compact_id(ids[0]).unix_ms <= after + 1
    assert max(ids) <= MAX_SAFE_INTEGER


def test_clock_before_epoch_starts_at_zero() -> None:
    gen = CompactIdGenerator(4, time_ms=FakeMs(COMPACT_EPOCH_MS - 10_000))
    assert [decode_compact_id(gen.next_id()) for _ in range(2)] == [
        CompactIdParts(COMPACT_EPOCH_MS, 4, 0),
        CompactIdParts(COMPACT_EPOCH_MS, 4, 1),
    ]


def test_compact_thread_safety() -> None:
    gen = CompactIdGenerator(11)
    buckets: list[list[int]] = [[] for _ in range(4)]

    def worker(bucket: list[int]) -> None:
        for _ in range(5000):
            bucket.append(gen.next_id())

    threads = [threading.Thread(target=worker, args=(b,)) for b in buckets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [i for b in buckets for i in b]
    assert len(set(flat)) == len(flat) == 20_000
    assert all(b == sorted(b) for b in buckets)


def test_extended_ids_are_hlc_txn_ids() -> None:
    ns = T0_MS * 1_000_000
    hlc = HLC(42, lambda: ns)
    gen = ExtendedIdGenerator(hlc)
    ids = [gen.next_id() for _ in range(3)]
    assert [from_txn_id(i) for i in ids] == [(T0_MS, 42, 0), (T0_MS, 42, 1), (T0_MS, 42, 2)]
    assert ids[0] > MAX_SAFE_INTEGER  # why compact mode exists
    # Shares the clock with transaction ids: never the same value.
    assert hlc.next_txn_id() not in ids


def test_make_id_generator() -> None:
    hlc = HLC(7)
    compact = make_id_generator("compact", 7, hlc)
    assert isinstance(compact, CompactIdGenerator)
    assert decode_compact_id(compact.next_id()).node_bits == 7
    ext = make_id_generator("EXTENDED", 7, hlc)
    assert isinstance(ext, ExtendedIdGenerator) and ext.hlc is hlc
    assert isinstance(make_id_generator("extended", 7, None), ExtendedIdGenerator)
    with pytest.raises(ValueError, match="auto_id_mode"):
        make_id_generator("snowflake", 7, hlc)


def test_id_lease_survives_a_clock_step_back(tmp_path):
    """Ids minted after a restart with the clock set back stay above every id of the previous run."""
    import apsw

    from marmot.id_lease import LEASE_AHEAD_MS, IdLease
    from marmot.storage.node_state import NodeState

    now = [1_800_000_000_000]
    db = str(tmp_path / "sys.db")
    first = CompactIdGenerator(5, time_ms=lambda: now[0])
    lease = IdLease(first, NodeState(apsw.Connection(db)), clock_ms=lambda: now[0])
    lease.start()
    before = [first.next_id() for _ in range(100)]
    lease.maybe_renew()  # what the node's background task does every second
    now[0] -= 60_000  # restart one minute in the past
    second = CompactIdGenerator(5, time_ms=lambda: now[0])
    IdLease(second, NodeState(apsw.Connection(db)), clock_ms=lambda: now[0]).start()
    after = second.next_id()
    assert after > max(before)
    assert decode_compact_id(after).unix_ms > now[0] + 60_000 + LEASE_AHEAD_MS - 1000
