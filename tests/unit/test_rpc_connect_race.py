"""A failed connect and a caller's deadline in the same loop iteration (found in a chaos run's node log:
"Future exception was never retrieved ... cannot connect to ...: Connection reset by peer").

``RpcClient._connection`` waits for the shared connect task through ``asyncio.shield``. When the
deadline fires in the very iteration the connect fails, ``asyncio.wait_for`` raises TimeoutError after
the shield's future already took the error, and nobody retrieves it. The race is made exact here by
standing in for ``wait_for`` with one that does just that.
"""

from __future__ import annotations

import asyncio
import gc

import pytest

from marmot.cluster.rpc import RpcError
from marmot.cluster.rpc import client as rpc_client
from marmot.testing import free_port
from tests.support import run_async


async def _deadline_after_failure(fut: asyncio.Future, timeout: float | None) -> None:
    """``wait_for`` losing the race: the awaited future completes with an error, then the deadline wins."""
    while not fut.done():
        await asyncio.sleep(0)
    raise TimeoutError


def test_connect_failure_racing_the_deadline_leaves_nothing_unretrieved(monkeypatch):
    unretrieved: list[dict] = []
    port = free_port()  # nothing listens there: the connect is refused at once

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: unretrieved.append(ctx))
        client = rpc_client.RpcClient(f"127.0.0.1:{port}", secret="s", node_id=1)
        monkeypatch.setattr(rpc_client.asyncio, "wait_for", _deadline_after_failure)
        with pytest.raises(RpcError, match="deadline"):
            await client._connection(0.5)
        monkeypatch.undo()
        await client.close()
        await asyncio.sleep(0)
        gc.collect()

    run_async(main())
    assert not [c for c in unretrieved if "never retrieved" in c.get("message", "")], unretrieved
