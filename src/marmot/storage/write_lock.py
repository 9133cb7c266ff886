"""The in-process writer lock of one database, with preemption of idle holders.

SQLite allows one writer per database file. On one node the writers are client sessions and the
replication apply queue; they queue here (FIFO on the event loop) before taking SQLite's own lock, so
the lock passes from one writer to the next without SQLITE_BUSY polling.

Why preemption: a client transaction keeps its SQLite transaction open between its statements (its own
writes stay in place, reads see them, nothing is re-done per statement) — but a client that pauses
inside a transaction must not stall every other writer and the applying of replicated transactions on
this node. So a holder that is *idle* (between statements, waiting for its client) registers a
``preempt`` callback; a writer that has waited ``patience`` seconds calls it, which rolls the idle
holder's SQLite transaction back and releases the lock. The preempted session keeps its captured
changes and puts them back the next time it runs a statement (engine/replicated_write.py). A holder in
the middle of a statement is never preempted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable

DEFAULT_PATIENCE = 0.005


class LockTimeout(Exception):
    """The lock was not obtained within the timeout."""


class WriterLock:
    """FIFO writer lock with a priority lane and preemption of idle holders (see the module docstring).

    The replication apply queue takes the priority lane: a COMMIT is acknowledged only once applied, so
    every transaction's latency — on every node — waits on applies; a client statement waiting a moment
    longer delays only its own session."""

    __slots__ = ("_locked", "_waiters", "_priority", "_preempt")

    def __init__(self) -> None:
        self._locked = False
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._priority: deque[asyncio.Future[None]] = deque()
        self._preempt: Callable[[], None] | None = None

    def locked(self) -> bool:
        return self._locked

    async def acquire(
        self, timeout: float, patience: float = DEFAULT_PATIENCE, priority: bool = False
    ) -> None:
        """Take the lock; preempt an idle holder after ``patience`` s; ``LockTimeout`` after ``timeout``."""
        if not self._locked and not self._waiters and not self._priority:
            self._locked = True
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._priority if priority else self._waiters
        queue.append(fut)
        deadline = time.monotonic() + timeout
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise LockTimeout()
                done, _ = await asyncio.wait((fut,), timeout=min(patience, remaining))
                if done:
                    return
                preempt = self._preempt
                if preempt is not None:
                    self._preempt = None
                    preempt()  # the idle holder rolls back and releases
        except BaseException:
            if fut.done() and not fut.cancelled():
                self.release()  # handed to us just as we gave up: pass it on
            else:
                fut.cancel()
                with contextlib.suppress(ValueError):
                    queue.remove(fut)
            raise

    def release(self) -> None:
        """Hand the lock to the next waiter (priority lane first), or free it."""
        self._preempt = None
        for queue in (self._priority, self._waiters):
            while queue:
                fut = queue.popleft()
                if not fut.done():
                    fut.set_result(None)
                    return
        self._locked = False

    def set_idle(self, preempt: Callable[[], None]) -> None:
        """The holder waits for its client: others may take the lock by calling ``preempt``."""
        self._preempt = preempt

    def set_busy(self) -> None:
        """The holder runs a statement again: not preemptible."""
        self._preempt = None
