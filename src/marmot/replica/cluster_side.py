"""What a cluster node offers its replicas: discovery, a registry of who follows it, cached snapshots.

Why on every member: a replica follows one node at a time but may fail over to any; each node therefore
answers discovery (``replica.cluster_nodes``: the members as its gossip sees them, with their cluster and
MySQL addresses), serves snapshots from its own cache (``snapshot_cache.py``), and keeps the heartbeats
replicas send it (a replica sends one to every node it knows each second), so ``GET
/admin/cluster/replicas`` on any node lists the replicas with their state, source and lag.

A replica is never a member: nothing here touches gossip, quorum or the GC's list of consumers (the
replica's ``log_list`` requests carry no node id, so GC never waits for a replica: one that falls behind
what GC kept re-snapshots). Replicas authenticate like members, with the cluster secret (the RPC
handshake), so every method here is reachable only by holders of it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from marmot.replica import messages as rm
from marmot.replica.snapshot_cache import SnapshotCache
from marmot.replication.catchup.sync_messages import SnapshotRequest, error
from marmot.replication.messages import MessageError
from marmot.storage.databases import DatabaseManager
from marmot.transport import Router

log = logging.getLogger("marmot.replica.cluster_side")
FORGET_AFTER_S = 300.0  # a replica silent this long is dropped from the list
STALE_AFTER_S = 10.0  # listed as "gone" (no heartbeat) after this long


class ReplicaService:
    """The replica-facing RPC methods of one cluster node and its registry of replicas."""

    def __init__(
        self,
        node_id: int,
        databases: DatabaseManager,
        members: Callable[[], list[dict[str, Any]]],
        *,
        chunk_size: int,
        cache_ttl: float,
    ) -> None:
        """``members``: the gossip member list (``NodeControl.members``: node_id, address, state,
        mysql_address)."""
        self.node_id = node_id
        self.members = members
        self.cache = SnapshotCache(databases, chunk_size, cache_ttl)
        self.replicas: dict[str, tuple[rm.Heartbeat, float]] = {}  # admin address -> (last, time.time())

    def register(self, router: Router) -> None:
        router.unary(rm.CLUSTER_NODES, self.handle_cluster_nodes)
        router.unary(rm.HEARTBEAT, self.handle_heartbeat)
        router.server_stream(rm.SNAPSHOT, self.handle_snapshot)

    async def handle_cluster_nodes(self, payload: Any, _ctx: Any) -> Any:
        nodes = []
        for m in self.members():
            state = str(getattr(m.get("state"), "name", m.get("state")))
            if state == "REMOVED" or not m.get("address"):
                continue
            nodes.append(
                rm.NodeInfo(int(m["node_id"]), str(m["address"]), str(m.get("mysql_address") or ""), state)
            )
        return rm.ClusterNodes(self.node_id, nodes).encode()

    async def handle_heartbeat(self, payload: Any, _ctx: Any) -> Any:
        try:
            hb = rm.Heartbeat.decode(payload)
        except MessageError as e:
            return error(str(e))
        if hb.address not in self.replicas:
            log.info(
                "replica %s (MySQL %s) registered, following node %d", hb.address, hb.mysql_address, hb.source
            )
        self.replicas[hb.address] = (hb, time.time())
        return {"ok": True}

    async def handle_snapshot(self, payload: Any, _ctx: Any) -> AsyncIterator[Any]:
        try:
            req = SnapshotRequest.decode(payload)
        except MessageError as e:
            yield error(str(e))
            return
        if not self.cache.databases.exists(req.db):
            yield error(f"unknown database {req.db}")
            return
        self.cache.sweep()
        async for msg in self.cache.serve(req.db):
            yield msg.encode()

    def listing(self) -> list[dict[str, Any]]:
        """``GET /admin/cluster/replicas``: every replica heard from in the last few minutes."""
        now = time.time()
        out = []
        for address, (hb, at) in sorted(self.replicas.items()):
            if now - at > FORGET_AFTER_S:
                del self.replicas[address]
                continue
            dbs = {db: p.encode() for db, p in sorted(hb.databases.items())}
            out.append(
                {
                    "address": address,
                    "mysql_address": hb.mysql_address,
                    "node_id": hb.node_id,
                    "source_node": hb.source,
                    "state": hb.state if now - at <= STALE_AFTER_S else "GONE",
                    "last_seen_ms_ago": round((now - at) * 1000),
                    "max_behind_txns": max((p.behind_txns for p in hb.databases.values()), default=0),
                    "max_lag_seconds": max((p.lag_seconds for p in hb.databases.values()), default=0.0),
                    "databases": dbs,
                }
            )
        return out

    def add_routes(self, app: web.Application) -> None:
        """``GET /admin/cluster/replicas`` on the node's admin app (behind its authentication)."""

        async def replicas(_request: web.Request) -> web.Response:
            return web.json_response({"node_id": self.node_id, "replicas": self.listing()})

        app.router.add_get("/admin/cluster/replicas", replicas)

    def collector(self) -> ReplicaCollector:
        return ReplicaCollector(self)

    def close(self) -> None:
        self.cache.close()


class ReplicaCollector:
    """Prometheus collector of the replicas this node hears from (registered on the node's registry)."""

    def __init__(self, service: ReplicaService) -> None:
        self.service = service

    def collect(self) -> Iterable[Any]:
        nid = str(self.service.node_id)
        listing = self.service.listing()
        count = GaugeMetricFamily(
            "marmot_replicas", "Replicas heard from in the last 10 s (heartbeats).", labels=["node_id"]
        )
        count.add_metric([nid], sum(1 for r in listing if r["state"] != "GONE"))
        behind = GaugeMetricFamily(
            "marmot_replica_lag_transactions",
            "Transactions of its source's log a replica had not applied at its last heartbeat.",
            labels=["node_id", "replica", "database"],
        )
        lag = GaugeMetricFamily(
            "marmot_replica_lag_seconds",
            "Seconds since a replica was last caught up with a database, at its last heartbeat.",
            labels=["node_id", "replica", "database"],
        )
        for r in listing:
            for db, p in r["databases"].items():
                behind.add_metric([nid, r["address"], db], p["behind_txns"])
                lag.add_metric([nid, r["address"], db], p["lag_seconds"])
        stats = self.service.cache.stats
        built = CounterMetricFamily(
            "marmot_replica_snapshots_built", "Snapshots exported for replicas.", labels=["node_id"]
        )
        built.add_metric([nid], stats.builds)
        served = CounterMetricFamily(
            "marmot_replica_snapshots_served",
            "Snapshot streams served to replicas (from a fresh or a cached copy).",
            labels=["node_id"],
        )
        served.add_metric([nid], stats.served)
        return [count, behind, lag, built, served]
