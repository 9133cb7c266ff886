"""The node's implementation of the admin API's ``ClusterControl``: membership from gossip, databases
from storage, decommission of this node or (over RPC) of another one, table digests and replication
lag (``replication/catchup/digest.py``, ``replication/catchup/log_pull.py``).

Decommission of this node: it gossips LEAVING (peers stop counting on it; its participant refuses new
PREPAREs), drains until no transaction is in flight here (``Replication.in_flight``) or
``shutdown_grace_period_ms`` has passed, whichever comes first, then gossips ``decommission = "done"`` in
its membership metadata to every peer and asks the node to stop. A cancel before the drain ends returns
it to ALIVE.

Why the metadata: once the node is gone nobody can forward a status request to it, and its membership
state alone (LEAVING, then SUSPECT/DEAD) cannot tell a finished decommission from a crash. Every member
keeps the last metadata the node gossiped, so any of them can answer ``done`` for it. A restart of that
node gossips fresh metadata (a higher incarnation), which clears the mark.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from marmot.cluster.rpc import RpcError
from marmot.cluster.service import ClusterService
from marmot.replication.catchup import digest, full_digest
from marmot.replication.catchup.snapshot import export_to
from marmot.replication.commit import operator_abort, txn_inspect
from marmot.storage.databases import DatabaseManager

log = logging.getLogger("marmot.admin")

DECOMMISSION_KEY = "decommission"  # membership metadata: "done" once the node finished its drain
MYSQL_ADDRESS_KEY = "mysql_address"  # membership metadata: where the node's MySQL listener is (host:port)
DRAIN_POLL_S = 0.05  # how often a draining node looks at its in-flight transactions
FORWARD_TIMEOUT_S = 5.0
REFUSED = "refused"  # RPC error code of a forwarded command the target node refused (-> ValueError)


class NodeControl:
    def __init__(
        self,
        node_id: int,
        cluster: ClusterService,
        databases: DatabaseManager,
        *,
        grace_s: float,
        request_stop: Callable[[], None],
        replication: Any = None,
    ) -> None:
        self.node_id = node_id
        self.cluster = cluster
        self._databases = databases
        self._grace_s = grace_s
        self._request_stop = request_stop
        self._decommission: asyncio.Task[None] | None = None
        self._phase = "none"
        # the node's replication layer (digest routes, lag and in-flight transactions; None: none)
        self.replication: Any = replication
        self._started = time.time()
        self._caught_up: dict[tuple[int, str], float] = {}  # (peer, db) -> last round that found no gap

    # -- membership ---------------------------------------------------------------------------------

    def members(self) -> list[dict[str, Any]]:
        """Gossip's member list; each node's own ``mysql_address`` metadata is lifted to a field."""
        out = []
        for m in self.cluster.gossip.members():
            mysql = (m.get("extra") or {}).get(MYSQL_ADDRESS_KEY)
            out.append({**m, MYSQL_ADDRESS_KEY: mysql} if isinstance(mysql, str) and mysql else m)
        return out

    def total_members(self) -> int:
        return self.cluster.gossip.total_members()

    def alive_members(self) -> list[int]:
        return self.cluster.gossip.alive_members()

    def has_quorum(self) -> bool:
        return self.cluster.gossip.has_quorum()

    def join_status(self) -> dict[str, Any]:
        """Member of a cluster yet, and if not, what each seed said (``cluster/join.py``)."""
        return self.cluster.gossip.join_status.as_json()

    def gossip_stats(self) -> dict[str, int]:
        """The membership driver's running totals (rounds, failures, probes), for /metrics."""
        return dict(self.cluster.gossip.stats)

    def _known(self, node_id: int) -> None:
        if node_id not in {m["node_id"] for m in self.members()}:
            raise KeyError(node_id)

    def remove(self, node_id: int) -> None:
        self._known(node_id)
        if node_id == self.node_id:
            raise ValueError("a node cannot remove itself: decommission it instead")
        self.cluster.gossip.remove(node_id)

    def allow(self, node_id: int) -> None:
        self._known(node_id)
        self.cluster.gossip.allow(node_id)

    # -- decommission -------------------------------------------------------------------------------

    async def decommission(self, node_id: int) -> dict[str, Any]:
        self._known(node_id)
        if node_id != self.node_id:
            if self._left(node_id):
                raise ValueError("it has already been decommissioned (it left the cluster)")
            return await self._forward(node_id, "admin.decommission")
        if self._decommission is not None and not self._decommission.done():
            raise ValueError("decommission already running")
        self.cluster.gossip.set_leaving()
        self._phase = "draining"
        self._decommission = asyncio.get_running_loop().create_task(self._drain_and_stop())
        return self._status()

    def active_transactions(self) -> int:
        """Transactions in flight on this node now (upstream's ``active_transactions`` gauge)."""
        return self._pending()

    def _pending(self) -> int:
        return 0 if self.replication is None else int(self.replication.in_flight())

    async def _drain_and_stop(self) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + self._grace_s
        while self._pending() > 0 and loop.time() < deadline:
            await asyncio.sleep(DRAIN_POLL_S)
        pending = self._pending()
        if pending:
            log.warning(
                "decommission: %d transaction(s) still in flight after the %.0f s grace period; "
                "stopping anyway (their participants resolve them)",
                pending,
                self._grace_s,
            )
        self._phase = "leaving"
        self.cluster.gossip.set_metadata(DECOMMISSION_KEY, "done")
        await self.cluster.gossip.announce()
        log.info("decommissioned: drained in %.2f s, stopping", loop.time() - started)
        self._phase = "done"
        self._request_stop()

    def _status(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "state": self.cluster.gossip.state,
            "decommissioning": self._phase in ("draining", "leaving"),
            "phase": self._phase,
            "pending_transactions": self._pending(),
        }

    def _left(self, node_id: int) -> bool:
        """Node ``node_id`` finished a decommission (its last gossiped metadata says so)."""
        return self.cluster.gossip.extra.get(node_id, {}).get(DECOMMISSION_KEY) == "done"

    async def decommission_status(self, node_id: int) -> dict[str, Any]:
        self._known(node_id)
        if node_id == self.node_id:
            return self._status()
        if self._left(node_id):
            return {
                "node_id": node_id,
                "state": self.cluster.gossip.state_of(node_id),
                "decommissioning": False,
                "phase": "done",
                "pending_transactions": 0,
            }
        return await self._forward(node_id, "admin.decommission_status")

    async def cancel_decommission(self, node_id: int) -> dict[str, Any]:
        self._known(node_id)
        if node_id != self.node_id:
            if self._left(node_id):
                raise ValueError("its decommission has already completed")
            return await self._forward(node_id, "admin.decommission_cancel")
        if self._phase in ("leaving", "done"):  # "done" is already gossiped (or being gossiped)
            raise ValueError("its decommission has already completed")
        if self._decommission is None or self._decommission.done():
            raise ValueError("no decommission to cancel")
        self._decommission.cancel()
        self._phase = "none"
        self.cluster.gossip.cancel_leaving()
        return self._status()

    async def _forward(self, node_id: int, method: str) -> dict[str, Any]:
        """Run a decommission command on node ``node_id``. Its refusal comes back as ``ValueError`` (409);
        not reaching it as ``ConnectionError`` (502), never as a bare ``RpcError`` (500)."""
        member = next(m for m in self.members() if m["node_id"] == node_id)
        address = member.get("address") or ""
        if not address:
            raise ConnectionError(f"no known address for node {node_id}")
        try:
            return await self.cluster.send(address, method, {"node_id": node_id}, FORWARD_TIMEOUT_S)
        except RpcError as err:
            if err.code == REFUSED:
                raise ValueError(err.message) from None
            raise ConnectionError(f"node {node_id} at {address} did not answer ({err})") from None

    def register_rpc(self) -> None:
        """Serve the forwarded decommission commands for this node."""
        router = self.cluster.router

        def handler(fn: Callable[[int], Any]) -> Callable[[Any, Any], Any]:
            async def call(payload: Any, _ctx: Any) -> Any:
                try:
                    return await fn(self.node_id)
                except ValueError as err:  # the forwarding node answers 409 with this reason
                    raise RpcError(REFUSED, str(err)) from None

            return call

        router.unary("admin.decommission", handler(self.decommission))
        router.unary("admin.decommission_status", handler(self.decommission_status))
        router.unary("admin.decommission_cancel", handler(self.cancel_decommission))

    # -- databases ----------------------------------------------------------------------------------

    def databases(self) -> list[dict[str, Any]]:
        out = []
        for name in self._databases.names():
            path = self._databases.path(name)
            size = sum(p.stat().st_size for p in path.parent.glob(f"{name}.db*") if p.is_file())
            tables = self._databases.table_count(name)
            out.append({"name": name, "size_bytes": size, "tables": tables})
        return out

    async def export_database(self, database: str) -> tuple[Path, dict[str, Any]] | None:
        """``GET /admin/databases/{db}/backup``: a consistent copy of ``database`` while it serves writes
        (``VACUUM INTO`` in one read transaction, on a worker thread: the snapshot path's ``export_to``),
        in a temporary file beside it, and its manifest (size, sha256, log_id, last_seq, schema_version,
        taken_at_unix). None for an unknown database. The caller streams the file and removes it."""
        if not self._databases.exists(database):
            return None
        tmp = self._databases.data_dir / f"{database}.db.export-{secrets.token_hex(6)}"
        taken_at = time.time()
        try:
            manifest = await asyncio.to_thread(export_to, self._databases.path(database), tmp)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        return tmp, {**manifest, "database": database, "node_id": self.node_id, "taken_at_unix": taken_at}

    # -- convergence checks -------------------------------------------------------------------------

    def digest(self, database: str, full: bool = False) -> Any:
        """``GET /admin/databases/{db}/digest``: ``digest.digest_document``; None for an unknown database.
        ``full`` (``?full=1``): ``full_digest.full_digest_document``, a scan of every table, computed in the
        full-scan thread (an awaitable) so the event loop goes on serving."""
        if full:
            return full_digest.off_loop(full_digest.database_full_digest, self._databases, database)
        return digest.database_digest(self._databases, database)

    def digest_keys(
        self, database: str, table: str, after: bytes | None, limit: int, full: bool = False
    ) -> Any:
        """``GET /admin/databases/{db}/digest/{table}/keys``: one page of ``digest.keys_document``, or with
        ``full`` of ``full_digest.full_keys_document`` (in the full-scan thread)."""
        if full:
            return full_digest.off_loop(
                full_digest.database_full_keys, self._databases, database, table, after, limit
            )
        return digest.database_keys(self._databases, database, table, after, limit)

    def table_digests(self) -> dict[str, dict[str, tuple[int, int]]]:
        """``{db: {table: (digest, rows)}}`` of every database, for the ``marmot_table_*`` metrics."""
        out = {}
        for name in self._databases.names():
            doc = digest.database_digest(self._databases, name)
            if doc is not None:
                out[name] = digest.parse_document(doc)
        return out

    def replication_status(self) -> dict[str, Any]:
        """``GET /admin/cluster/replication``: per peer and database, how far this node is behind.

        ``behind_txns`` is what anti-entropy's last round with that peer found missing here (0 once the
        round caught up); ``last_round_unix`` when that round ran. ``lag_seconds`` is the time since a
        round last found this node caught up with that peer (since this node started, if none has): an
        upper bound on how stale this node's copy of what that peer has can be. With a healthy peer it
        stays below ``[replication] anti_entropy_interval_seconds``; a dead or unreachable peer's grows.
        Rounds are observed when this is read (the route, a scrape), so between two reads a round that
        found a gap and the one that closed it may both be missed — the lag is then over-reported, never
        under-reported."""
        repl = self.replication
        ae = getattr(repl, "log_pull", None)
        now = time.time()
        entries: list[dict[str, Any]] = []
        stats: dict[str, Any] = {}
        if ae is not None:
            stats = {k: v for k, v in dict(ae.stats).items() if isinstance(v, int | float)}
            for (peer, db), (behind, at) in sorted(dict(ae.lag).items()):
                if behind == 0 and at > self._caught_up.get((peer, db), 0.0):
                    self._caught_up[(peer, db)] = at
                caught_up = self._caught_up.get((peer, db), self._started)
                entries.append(
                    {
                        "peer": peer,
                        "database": db,
                        "behind_txns": int(behind),
                        "last_round_unix": round(at, 3),
                        "lag_seconds": round(max(0.0, now - caught_up), 3),
                        "divergent_tables": list(getattr(ae, "divergent", {}).get((peer, db), [])),
                    }
                )
        interval = getattr(repl, "anti_entropy_interval", None)
        barrier = getattr(repl, "barrier", None)
        return {
            "node_id": self.node_id,
            "anti_entropy": {"enabled": interval is not None, "interval_seconds": interval, **stats},
            "lag": entries,
            # read barriers (QUORUM reads …): run, failed, peers settled without a pull / with one
            "read_barriers": {} if barrier is None else dataclasses.asdict(barrier.stats),
        }

    # -- transactions, intents, schema (upstream's /admin/{db}/metadata/...) -------------------------

    def _repl_for(self, database: str) -> Any:
        """The replication layer if ``database`` exists here, else None (the route answers 404)."""
        if self.replication is None or not self._databases.exists(database):
            return None
        return self.replication

    def pending_transactions(self, database: str) -> list[dict[str, Any]] | None:
        """Transactions of ``database`` prepared here and not yet applied or aborted."""
        repl = self._repl_for(database)
        if repl is None:
            return None
        return txn_inspect.pending(repl.participant, database, repl.coordinator)

    def transaction(self, database: str, txn: int) -> dict[str, Any] | None:
        """What this node knows of one transaction; None: unknown database or transaction."""
        repl = self._repl_for(database)
        if repl is None:
            return None
        return txn_inspect.transaction(repl.participant, database, txn, repl.coordinator)

    def committed_transactions(self, database: str, limit: int) -> list[dict[str, Any]] | None:
        """The newest ``limit`` entries of ``database``'s commit log here."""
        repl = self._repl_for(database)
        if repl is None:
            return None
        return txn_inspect.committed(repl.participant, database, limit)

    def intents(
        self, database: str, table: str | None = None, txn: int | None = None
    ) -> dict[str, Any] | None:
        """``{intents: [...], ddl_lock}`` of ``database`` here, optionally of one table or transaction."""
        repl = self._repl_for(database)
        if repl is None:
            return None
        return txn_inspect.intents(repl.participant, database, table=table, txn=txn)

    def replication_states(self, database: str) -> list[dict[str, Any]] | None:
        """The ``lag`` entries of ``replication_status`` for ``database`` (one per peer)."""
        if self._repl_for(database) is None:
            return None
        return [e for e in self.replication_status()["lag"] if e["database"] == database]

    def schema_version(self, database: str) -> dict[str, Any] | None:
        """This node's schema version of ``database`` and every alive peer's, as they gossip it."""
        repl = self._repl_for(database)
        if repl is None:
            return None
        nodes = {str(self.node_id): repl.schema_version(database)}
        for nid, versions in sorted(repl.membership.peer_schema_versions().items()):
            if database in versions:
                nodes[str(nid)] = versions[database]
        return {"database": database, "schema_version": nodes[str(self.node_id)], "nodes": nodes}

    async def abort_transaction(self, database: str, txn: int) -> dict[str, Any] | None:
        """``POST /admin/{db}/transactions/{txn}/abort`` (``replication/commit/operator_abort.py``).
        ``NotPending`` becomes ``KeyError`` (404) and ``AbortRefused`` stays a ``ValueError`` (409)."""
        repl = self._repl_for(database)
        if repl is None:
            return None
        try:
            result: dict[str, Any] = await repl.abort_stuck(database, txn)
        except operator_abort.NotPending as e:
            raise KeyError(str(e)) from None
        return {"node_id": self.node_id, **result}
