"""Stopping the replication layer's background loops (anti-entropy, GC, the stale-transaction resolver).

Each loop is one asyncio task started at node start; stopping means cancelling it and waiting until it
has really finished, so it never touches a database connection the caller closes next.
"""

from __future__ import annotations

import asyncio
import contextlib


async def stop_task(task: asyncio.Task[None] | None) -> None:
    """Cancel ``task`` (if any) and wait for it to end; its cancellation is not an error."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
