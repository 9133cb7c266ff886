"""WriterLock (storage/write_lock.py): FIFO hand-over, the apply priority lane, preemption, timeouts.

Why: every writer of a node queues on this lock before SQLite's own. A waiter that is lost (timed out,
cancelled) must never keep or swallow the lock, or the database stops taking writes on this node; an
idle client transaction must be preempted so replicated applies are not stalled, and a holder in the
middle of a statement must not be. Patience values are a few ms so the file stays fast.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from marmot.storage.write_lock import LockTimeout, WriterLock
from tests.support import run_async

PATIENT = 10.0  # patience that never expires within a test: no preemption unless asked for


async def settle() -> None:
    """Let every runnable task reach its next await (queue up behind the lock)."""
    for _ in range(5):
        await asyncio.sleep(0)


def free(lock: WriterLock) -> bool:
    """Free and with nobody queued: the fast path must grant at once."""
    return not lock.locked() and not lock._waiters and not lock._priority


async def worker(
    lock: WriterLock,
    name: str,
    order: list[str],
    *,
    priority: bool = False,
    timeout: float = 2.0,
    patience: float = PATIENT,
) -> None:
    await lock.acquire(timeout, patience=patience, priority=priority)
    order.append(name)
    await asyncio.sleep(0)  # hold it across an await: nobody else may get in meanwhile
    order.append(name + " done")
    lock.release()


def test_uncontended_acquire_release() -> None:
    async def main() -> None:
        lock = WriterLock()
        assert free(lock)
        await lock.acquire(0.0)  # free lock: granted even with no time to wait
        assert lock.locked()
        lock.release()
        assert free(lock)

    run_async(main())


def test_fifo_order_of_normal_waiters() -> None:
    async def main() -> None:
        lock = WriterLock()
        order: list[str] = []
        await lock.acquire(1.0)
        tasks = []
        for name in ("w1", "w2", "w3"):
            tasks.append(asyncio.create_task(worker(lock, name, order)))
            await settle()
        assert order == [] and len(lock._waiters) == 3
        lock.release()
        await asyncio.gather(*tasks)
        assert order == ["w1", "w1 done", "w2", "w2 done", "w3", "w3 done"]
        assert free(lock)

    run_async(main())


def test_release_hands_over_without_barging() -> None:
    """Between release and the waiter running, a newcomer must queue, not take the lock."""

    async def main() -> None:
        lock = WriterLock()
        order: list[str] = []
        await lock.acquire(1.0)
        first = asyncio.create_task(worker(lock, "queued", order))
        await settle()
        lock.release()
        assert lock.locked()  # handed to "queued", not freed
        late = asyncio.create_task(worker(lock, "late", order))
        await asyncio.gather(first, late)
        assert order == ["queued", "queued done", "late", "late done"]

    run_async(main())


def test_priority_waiter_jumps_ahead() -> None:
    async def main() -> None:
        lock = WriterLock()
        order: list[str] = []
        await lock.acquire(1.0)
        tasks = [asyncio.create_task(worker(lock, "n1", order))]
        await settle()
        tasks.append(asyncio.create_task(worker(lock, "n2", order)))
        await settle()
        tasks.append(asyncio.create_task(worker(lock, "p1", order, priority=True)))
        await settle()
        tasks.append(asyncio.create_task(worker(lock, "p2", order, priority=True)))
        await settle()
        lock.release()
        await asyncio.gather(*tasks)
        assert [x for x in order if not x.endswith("done")] == ["p1", "p2", "n1", "n2"]
        assert free(lock)

    run_async(main())


def test_idle_holder_is_preempted_after_patience() -> None:
    async def main() -> None:
        lock = WriterLock()
        calls: list[float] = []
        await lock.acquire(1.0)

        def preempt() -> None:  # what a session does: roll back, then release
            calls.append(time.monotonic())
            lock.release()

        lock.set_idle(preempt)
        start = time.monotonic()
        await lock.acquire(1.0, patience=0.002)
        waited = time.monotonic() - start
        assert len(calls) == 1
        assert calls[0] - start >= 0.0015  # not before patience ran out
        assert waited < 0.5
        assert lock.locked()  # the waiter holds it now
        lock.release()
        assert free(lock)

    run_async(main())


def test_preempt_is_called_once_for_several_waiters() -> None:
    async def main() -> None:
        lock = WriterLock()
        calls = 0
        order: list[str] = []
        await lock.acquire(1.0)

        def preempt() -> None:
            nonlocal calls
            calls += 1
            lock.release()

        lock.set_idle(preempt)
        tasks = [asyncio.create_task(worker(lock, f"w{i}", order, patience=0.001)) for i in range(3)]
        await asyncio.gather(*tasks)
        assert calls == 1
        assert [x for x in order if not x.endswith("done")] == ["w0", "w1", "w2"]
        assert free(lock)

    run_async(main())


def test_slow_preempt_is_not_called_again() -> None:
    """A holder that needs a moment to roll back (it releases later, not inside the callback) must be
    asked once, not once per patience interval of every waiter."""

    async def main() -> None:
        lock = WriterLock()
        calls = 0
        await lock.acquire(1.0)

        def preempt() -> None:
            nonlocal calls
            calls += 1
            asyncio.get_running_loop().call_later(0.02, lock.release)

        lock.set_idle(preempt)
        order: list[str] = []
        await asyncio.gather(
            worker(lock, "a", order, patience=0.001), worker(lock, "b", order, patience=0.001)
        )
        assert calls == 1
        assert order == ["a", "a done", "b", "b done"]
        assert free(lock)

    run_async(main())


def test_priority_waiter_preempts_too() -> None:
    """The apply queue's waiter must not be stalled by an idle client transaction either."""

    async def main() -> None:
        lock = WriterLock()
        preempted = []
        await lock.acquire(1.0)
        lock.set_idle(lambda: (preempted.append(True), lock.release()))
        await lock.acquire(1.0, patience=0.001, priority=True)
        assert preempted == [True]
        lock.release()
        assert free(lock)

    run_async(main())


@pytest.mark.parametrize("how", ["set_busy", "never_idle"])
def test_busy_holder_is_not_preempted(how: str) -> None:
    async def main() -> None:
        lock = WriterLock()
        calls: list[int] = []
        await lock.acquire(1.0)
        if how == "set_busy":
            lock.set_idle(lambda: calls.append(1))
            lock.set_busy()  # the holder runs a statement again
        with pytest.raises(LockTimeout):
            await lock.acquire(0.03, patience=0.001)
        assert calls == []
        assert lock.locked()  # still the holder's
        assert not lock._waiters  # the timed-out waiter left the queue
        lock.release()
        assert free(lock)

    run_async(main())


def test_timeout_leaves_lock_consistent() -> None:
    async def main() -> None:
        lock = WriterLock()
        order: list[str] = []
        await lock.acquire(1.0)
        loser = asyncio.create_task(lock.acquire(0.01, patience=PATIENT))
        await settle()
        later = asyncio.create_task(worker(lock, "later", order))
        await settle()
        with pytest.raises(LockTimeout):
            await loser
        assert lock.locked() and len(lock._waiters) == 1  # only "later" still queued
        lock.release()
        await later
        assert order == ["later", "later done"]
        assert free(lock)

    run_async(main())


def test_zero_timeout_on_held_lock_times_out_at_once() -> None:
    async def main() -> None:
        lock = WriterLock()
        await lock.acquire(1.0)
        start = time.monotonic()
        with pytest.raises(LockTimeout):
            await lock.acquire(0.0)
        assert time.monotonic() - start < 0.1
        lock.release()
        assert free(lock)

    run_async(main())


def test_cancelled_waiter_does_not_leak_the_lock() -> None:
    async def main() -> None:
        lock = WriterLock()
        await lock.acquire(1.0)
        waiter = asyncio.create_task(lock.acquire(5.0, patience=PATIENT))
        await settle()
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert not lock._waiters
        lock.release()  # must free it, not hand it to the cancelled waiter
        assert free(lock)
        await asyncio.wait_for(lock.acquire(0.0), 1.0)

    run_async(main())


def test_waiter_cancelled_just_after_handover_passes_the_lock_on() -> None:
    """The lock was handed to a waiter whose task is cancelled before it runs: the next waiter
    must get it (the cancelled one may not keep it, and it must not be lost)."""

    async def main() -> None:
        lock = WriterLock()
        order: list[str] = []
        await lock.acquire(1.0)
        doomed = asyncio.create_task(worker(lock, "doomed", order))
        await settle()
        nxt = asyncio.create_task(worker(lock, "next", order))
        await settle()
        lock.release()  # resolves doomed's future...
        doomed.cancel()  # ...and it is cancelled before it can resume
        with pytest.raises(asyncio.CancelledError):
            await doomed
        await asyncio.wait_for(nxt, 1.0)
        assert order == ["next", "next done"]
        assert free(lock)

    run_async(main())


def test_timeout_when_preempt_hands_over_at_the_deadline() -> None:
    """patience > timeout: the waiter preempts at its deadline and then gives up; the lock it was
    handed at that instant is passed on, not leaked."""

    async def main() -> None:
        lock = WriterLock()
        await lock.acquire(1.0)
        lock.set_idle(lock.release)
        with pytest.raises(LockTimeout):
            await lock.acquire(0.01, patience=PATIENT)
        assert free(lock)

    run_async(main())
