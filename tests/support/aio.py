"""``run_async``: the one way a synchronous test runs a coroutine — on a fresh event loop, bounded.

Why bounded: a lost wake-up or a deadlock in the code under test must fail the test after a while, not
hang the run until pytest-timeout kills everything. ``MARMOT_TEST_LOOP=uvloop`` runs the coroutine on
uvloop, the loop a node uses when it is installed.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
    """Run ``coro`` to completion on a new event loop, as the loop's main task; ``TimeoutError`` after
    ``timeout`` seconds (the coroutine is cancelled first, so its ``finally`` blocks run)."""

    async def bounded() -> T:
        async with asyncio.timeout(timeout):  # in the same task: a test's "cancel every other task" spares it
            return await coro

    if os.environ.get("MARMOT_TEST_LOOP") == "uvloop":
        import uvloop  # type: ignore[import-not-found]

        return uvloop.run(bounded())
    return asyncio.run(bounded())
