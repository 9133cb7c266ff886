"""Hybrid logical clock: ordering, per-ms logical counter, receive rule, overflow, txn ids."""

from __future__ import annotations

import threading

import pytest

from marmot.hlc import HLC, LOGICAL_MAX, NS_PER_MS, ZERO, Timestamp, TxnIdParts, from_txn_id, to_txn_id

T0 = 1_767_225_600_000 * NS_PER_MS  # 2026-01-01T00:00:00Z in ns


class FakeClock:
    def __init__(self, ns: int = T0) -> None:
        self.ns = ns

    def __call__(self) -> int:
        return self.ns


def test_timestamp_order_is_wall_then_logical_then_node() -> None:
    assert Timestamp(1, 9, 9) < Timestamp(2, 0, 0)
    assert Timestamp(1, 1, 9) < Timestamp(1, 2, 0)
    assert Timestamp(1, 1, 1) < Timestamp(1, 1, 2)
    assert sorted([Timestamp(2, 0, 1), Timestamp(1, 5, 1), Timestamp(1, 5, 0)]) == [
        Timestamp(1, 5, 0),
        Timestamp(1, 5, 1),
        Timestamp(2, 0, 1),
    ]
    assert Timestamp(0, 0, 1) > ZERO
    with pytest.raises(AttributeError):
        Timestamp(1, 2, 3).wall_ns = 5  # type: ignore[misc]


def test_now_follows_physical_clock() -> None:
    clock = FakeClock()
    hlc = HLC(7, clock)
    ts = hlc.now()
    assert ts == Timestamp(T0, 0, 7)
    clock.ns += 5 * NS_PER_MS
    assert hlc.now() == Timestamp(T0 + 5 * NS_PER_MS, 0, 7)


def test_logical_counts_within_a_millisecond_and_resets_on_the_next() -> None:
    clock = FakeClock()
    hlc = HLC(1, clock)
    assert [hlc.now().logical for _ in range(3)] == [0, 1, 2]
    clock.ns += 300_000  # +0.3 ms: same millisecond, wall moves but logical keeps counting
    ts = hlc.now()
    assert ts == Timestamp(T0 + 300_000, 3, 1)
    clock.ns = T0 + NS_PER_MS
    assert hlc.now() == Timestamp(T0 + NS_PER_MS, 0, 1)


def test_monotonic_when_wall_clock_goes_backwards() -> None:
    clock = FakeClock()
    hlc = HLC(1, clock)
    first = hlc.now()
    clock.ns -= 60 * 1000 * NS_PER_MS  # NTP steps back a minute
    later = [hlc.now() for _ in range(5)]
    assert all(a < b for a, b in zip([first, *later], later, strict=False))
    assert all(ts.wall_ns == first.wall_ns for ts in later)
    assert [ts.logical for ts in later] == [1, 2, 3, 4, 5]


def test_offset_ns_skews_the_physical_clock() -> None:
    clock = FakeClock()
    hlc = HLC(1, clock)
    hlc.offset_ns = 3_600 * 1000 * NS_PER_MS
    assert hlc.now().wall_ns == T0 + hlc.offset_ns
    assert hlc.physical_ns() == T0 + hlc.offset_ns
    hlc.offset_ns = 0  # going back does not make the clock go back
    assert hlc.now().wall_ns == T0 + 3_600 * 1000 * NS_PER_MS


def test_update_with_remote_ahead_adopts_remote_wall() -> None:
    clock = FakeClock()
    hlc = HLC(1, clock)
    hlc.now()
    remote = Timestamp(T0 + 10 * NS_PER_MS, 4, 2)
    merged = hlc.update(remote)
    assert merged == Timestamp(remote.wall_ns, 5, 1)
    assert merged > remote
    nxt = hlc.now()
    assert nxt == Timestamp(remote.wall_ns, 6, 1)  # physical is behind: keep counting


def test_update_with_remote_behind_keeps_local() -> None:
    clock = FakeClock()
    hlc = HLC(1, clock)
    local = hlc.now()
    merged = hlc.update(Timestamp(T0 - 50 * NS_PER_MS, 100, 2))
    assert merged == Timestamp(local.wall_ns, local.logical + 1, 1)


def test_update_physical_ahead_of_both_resets_logical() -> None:
    clock = FakeClock()
    hlc = HLC(1, clock)
    hlc.now()
    clock.ns += 20 * NS_PER_MS
    assert hlc.update(Timestamp(T0 + 1, 7, 2)) == Timestamp(clock.ns, 0, 1)


def test_update_same_millisecond_never_reuses_a_txn_id() -> None:
    # Local minted (ms, logical 0..3); a remote in the same ms but a later ns with a small logical
    # must not pull the logical counter back (that would repeat txn ids).
    clock = FakeClock()
    hlc = HLC(1, clock)
    minted = {hlc.next_txn_id() for _ in range(4)}
    merged = hlc.update(Timestamp(T0 + 500_000, 0, 2))
    assert merged.logical == 4 and merged.wall_ns == T0 + 500_000
    assert to_txn_id(merged) not in minted
    minted.add(to_txn_id(merged))
    for _ in range(10):
        tid = hlc.next_txn_id()
        assert tid not in minted
        minted.add(tid)


def test_logical_overflow_moves_to_next_ms_with_frozen_clock() -> None:
    clock = FakeClock()
    hlc = HLC(1, clock)
    for _ in range(LOGICAL_MAX + 1):
        last = hlc.now()
    assert last == Timestamp(T0, LOGICAL_MAX, 1)
    nxt = hlc.now()  # frozen clock: spins briefly, then borrows the next millisecond
    assert nxt == Timestamp(T0 + NS_PER_MS, 0, 1)
    assert nxt > last


def test_logical_overflow_waits_for_a_moving_clock() -> None:
    clock = FakeClock()
    hlc = HLC(1, clock)
    for _ in range(LOGICAL_MAX + 1):
        hlc.now()
    calls = 0

    def ticking() -> int:
        nonlocal calls
        calls += 1
        if calls > 3:  # the clock reaches the next ms after a few reads
            return T0 + NS_PER_MS + 123
        return T0 + 999_999

    hlc._time_source = ticking
    assert hlc.now() == Timestamp(T0 + NS_PER_MS + 123, 0, 1)
    assert calls > 3


def test_update_overflow_with_remote_at_logical_max() -> None:
    clock = FakeClock()
    hlc = HLC(1, clock)
    remote = Timestamp(T0 + 5 * NS_PER_MS, LOGICAL_MAX, 2)
    merged = hlc.update(remote)
    assert merged > remote
    assert merged == Timestamp(T0 + 6 * NS_PER_MS, 0, 1)


def test_txn_id_layout_round_trip() -> None:
    ts = Timestamp(T0 + 123_456_789, 0x1234, 0x1FF)  # node id wider than 6 bits
    tid = to_txn_id(ts)
    assert tid == ts.to_txn_id()
    assert tid == ((T0 + 123_456_789) // NS_PER_MS) << 22 | (0x3F << 16) | 0x1234
    assert from_txn_id(tid) == TxnIdParts(wall_ms=ts.wall_ms, node_bits=0x3F, logical=0x1234)
    assert tid < 2**63  # fits a signed 64-bit column until 2109


def test_next_txn_id_equals_txn_id_of_now() -> None:
    a, b = HLC(5, FakeClock()), HLC(5, FakeClock())
    for _ in range(100):
        assert a.next_txn_id() == to_txn_id(b.now())


def test_txn_ids_strictly_increase_and_differ_across_nodes() -> None:
    clock = FakeClock()
    h1, h2 = HLC(1, clock), HLC(2, clock)
    ids1 = [h1.next_txn_id() for _ in range(70_000)]  # crosses a logical overflow
    ids2 = [h2.next_txn_id() for _ in range(1000)]
    assert all(a < b for a, b in zip(ids1, ids1[1:], strict=False))
    assert not set(ids1) & set(ids2)
    assert {from_txn_id(i).node_bits for i in ids2} == {2}


def test_peek_does_not_advance() -> None:
    hlc = HLC(3, FakeClock())
    ts = hlc.now()
    assert hlc.peek() == ts == hlc.peek()


def test_thread_safety_unique_timestamps() -> None:
    hlc = HLC(1)
    out: list[list[int]] = [[] for _ in range(8)]

    def worker(bucket: list[int]) -> None:
        for _ in range(5000):
            bucket.append(hlc.next_txn_id())

    threads = [threading.Thread(target=worker, args=(b,)) for b in out]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [i for b in out for i in b]
    assert len(set(flat)) == len(flat) == 40_000
    for bucket in out:
        assert bucket == sorted(bucket)


def test_rejects_negative_node_id() -> None:
    with pytest.raises(ValueError):
        HLC(-1)
