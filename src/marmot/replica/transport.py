"""The replica's end of the network: calls to cluster nodes, as the catch-up code expects them.

Why a transport of its own: the replica follows with the members' own log pull (``LogPull``), which
speaks ``marmot.transport.Transport``. Two of its calls must mean something else when a replica makes
them, and this is the one place that says so:

* ``log_list`` carries no node id: a cluster node records how far each *member* consumed its log for GC
  (``catchup/gc.py``); a replica must never be counted there (its node id may even equal a member's),
  so GC never waits for it.
* a snapshot request goes to ``replica.snapshot`` (served from the node's snapshot cache,
  ``snapshot_cache.py``) instead of the members' ``snapshot_stream``.

Authentication is the cluster's RPC handshake with ``[replica] secret`` (the cluster's secret).
"""

from __future__ import annotations

from typing import Any

from marmot.cluster.rpc import ClientPool, ServerStreamCall
from marmot.replica.messages import SNAPSHOT
from marmot.replication.catchup.sync_messages import LogListRequest, SnapshotRequest


class ReplicaTransport:
    """``marmot.transport.Transport`` over an RPC client pool, with the two rewrites above."""

    def __init__(self, pool: ClientPool) -> None:
        self.pool = pool

    async def send(self, address: str, method: str, payload: Any, timeout: float) -> Any:
        if method == LogListRequest.method and isinstance(payload, dict):
            payload = {k: v for k, v in payload.items() if k != "node"}
        return await self.pool.get(address).call(method, payload, timeout)

    async def send_stream(self, address: str, method: str, chunks: list[Any], timeout: float) -> Any:
        return await self.pool.get(address).client_stream(method, chunks, timeout)

    def stream(self, address: str, method: str, payload: Any, timeout: float) -> ServerStreamCall:
        if method == SnapshotRequest.method:
            method = SNAPSHOT
        return self.pool.get(address).server_stream(method, payload, timeout)

    async def close(self) -> None:
        await self.pool.close()
