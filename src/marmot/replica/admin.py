"""A replica's admin API and metrics, on its own cluster port.

Why not the members' app: a replica has no membership to show or change (it is no member), so it serves
the database routes ``marmot verify`` reads (``admin.http.make_database_app``: the same authentication
with the cluster secret, the same error bodies), ``GET /admin/replica/status`` (``Follower.status``),
and ``/metrics`` (the node's query metrics plus the ``marmot_replica_*`` gauges below).
Only the databases the replica follows are listed: a database left out by ``replicate_databases`` (or
the empty default database a fresh data directory has) is not part of what it replicates.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from marmot.admin.http import json_response, make_database_app
from marmot.admin.metrics import CONTENT_TYPE_LATEST, Metrics
from marmot.replica.follower import STALE, STATES, Follower, replicated
from marmot.replication.catchup import digest, full_digest
from marmot.storage.databases import DatabaseManager


class ReplicaControl:
    """The part of ``admin.http.ClusterControl`` a replica has: its followed databases and their digests."""

    def __init__(self, node_id: int, databases: DatabaseManager, follower: Follower) -> None:
        self.node_id = node_id
        self._databases = databases
        self.follower = follower

    def _followed(self, name: str) -> bool:
        return replicated(self.follower.settings.patterns, name) and name in self.follower.dbs

    def databases(self) -> list[dict[str, Any]]:
        out = []
        for name in self._databases.names():
            if not self._followed(name):
                continue
            path = self._databases.path(name)
            size = sum(p.stat().st_size for p in path.parent.glob(f"{name}.db*") if p.is_file())
            out.append({"name": name, "size_bytes": size, "tables": self._databases.table_count(name)})
        return out

    def digest(self, database: str, full: bool = False) -> Any:
        if not self._followed(database):
            return None
        if full:
            return full_digest.off_loop(full_digest.database_full_digest, self._databases, database)
        return digest.database_digest(self._databases, database)

    def digest_keys(
        self, database: str, table: str, after: bytes | None, limit: int, full: bool = False
    ) -> Any:
        if not self._followed(database):
            return None
        if full:
            return full_digest.off_loop(
                full_digest.database_full_keys, self._databases, database, table, after, limit
            )
        return digest.database_keys(self._databases, database, table, after, limit)


class ReplicaStatusCollector:
    """``marmot_replica_*`` gauges of this replica, read from the follower at each scrape."""

    def __init__(self, follower: Follower) -> None:
        self.follower = follower

    def collect(self) -> Iterable[Any]:
        status = self.follower.status()
        nid = str(self.follower.node_id)
        state = GaugeMetricFamily(
            "marmot_replica_state",
            "1 for the replica's current state, 0 for the others.",
            labels=["node_id", "state"],
        )
        for name in STATES:
            state.add_metric([nid, name], 1.0 if status["state"] == name else 0.0)
        behind = GaugeMetricFamily(
            "marmot_replica_behind_transactions",
            "Transactions of the source's log this replica had not applied at its last poll.",
            labels=["node_id", "database"],
        )
        lag = GaugeMetricFamily(
            "marmot_replica_lag_seconds_current",
            "Seconds since this replica was last found caught up with the database's source.",
            labels=["node_id", "database"],
        )
        for db in status["databases"]:
            behind.add_metric([nid, db["database"]], db["behind_txns"])
            lag.add_metric([nid, db["database"]], db["lag_seconds"])
        failovers = CounterMetricFamily(
            "marmot_replica_failovers",
            "Times this replica switched to another source node.",
            labels=["node_id"],
        )
        failovers.add_metric([nid], status["failovers"])
        applied = CounterMetricFamily(
            "marmot_replica_applied_transactions",
            "Transactions this replica applied from its sources' logs.",
            labels=["node_id"],
        )
        applied.add_metric([nid], status["pull"].get("applied", 0))
        snapshots = CounterMetricFamily(
            "marmot_replica_snapshots_installed", "Snapshots this replica installed.", labels=["node_id"]
        )
        snapshots.add_metric([nid], status["pull"].get("snapshots", 0))
        return [state, behind, lag, failovers, applied, snapshots]


def make_replica_app(control: ReplicaControl, *, secret: str, metrics: Metrics | None) -> web.Application:
    app = make_database_app(control, secret=secret)

    async def status(_request: web.Request) -> web.Response:
        body = control.follower.status()
        return json_response(body, status=200)

    app.router.add_get("/admin/replica/status", status)

    async def health(_request: web.Request) -> web.Response:
        body = control.follower.status()
        ok = body["state"] != STALE
        return json_response(
            {"node_id": control.node_id, "replica": True, "state": body["state"], "healthy": ok},
            status=200 if ok else 503,
        )

    app.router.add_get("/admin/replica/health", health)
    if metrics is not None:
        metrics.registry.register(ReplicaStatusCollector(control.follower))

        async def metrics_text(_request: web.Request) -> web.Response:
            return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

        app.router.add_get("/metrics", metrics_text)
    return app
