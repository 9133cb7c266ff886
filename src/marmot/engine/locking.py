"""Waiting out SQLite's lock (SQLITE_BUSY) on the event loop.

Why here and why asyncio sleeps: connections are opened with a zero busy timeout
(``storage/databases.py``), because SQLite's own busy handler sleeps in the calling thread — the one
thread that runs every session of the node. A statement that meets another writer's lock (another
process on the file, or the replication apply queue between its transactions) instead sleeps on the
event loop with a short exponential backoff and tries again, until the session's
``lock_wait_timeout_seconds`` has passed; then the client gets MySQL's 1205.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

import apsw

from marmot.engine import errors

_FIRST_SLEEP = 0.0005
_MAX_SLEEP = 0.02

T = TypeVar("T")


async def retry_busy(attempt: Callable[[], T], timeout_s: float) -> T:
    """Call ``attempt`` (whose first try just raised ``apsw.BusyError``) again after short sleeps, for up
    to ``timeout_s``; its result, or ``MySQLError`` 1205."""
    deadline = time.monotonic() + timeout_s
    delay = _FIRST_SLEEP
    while True:
        await asyncio.sleep(delay)
        try:
            return attempt()
        except apsw.BusyError:
            if time.monotonic() >= deadline:
                raise errors.lock_wait_timeout() from None
            delay = min(delay * 2, _MAX_SLEEP)
