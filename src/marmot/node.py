"""One Marmot node built from a Config: the only module that knows every part.

Start order: the data directory lock (``marmot.startup``: one process per data directory) -> storage
(databases open, default database created) -> engine context (ids, variables, plan cache) -> cluster
(shared RPC + HTTP port with the admin API and /metrics, gossip membership) -> MySQL listeners. Stop
order is the reverse: stop accepting and close client connections (their open transactions roll back),
leave the cluster, then checkpoint every WAL into its database file, then release the lock.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from pathlib import Path

from marmot import __version__, failpoints
from marmot.admin.control import MYSQL_ADDRESS_KEY, NodeControl
from marmot.admin.http import make_app
from marmot.admin.metrics import Metrics
from marmot.cluster.gossip import Gossip
from marmot.cluster.service import ClusterService, advertise_address
from marmot.config import Config, resolve_node_id
from marmot.engine.context import EngineContext
from marmot.engine.general_log import GeneralLog
from marmot.engine.variables import default_globals
from marmot.hlc import HLC
from marmot.id_lease import IdLease
from marmot.ids import make_id_generator
from marmot.mysql.connection import ServerSettings
from marmot.mysql.server import MySQLServer, make_ssl_context
from marmot.publisher.service import Publisher
from marmot.replica.cluster_side import ReplicaService
from marmot.replica.forward_metrics import ForwardSessionsCollector
from marmot.replica.forward_server import ForwardSessions
from marmot.replication.service import Replication
from marmot.startup import DataDirLock
from marmot.storage.databases import DatabaseManager
from marmot.storage.node_state import NodeState

log = logging.getLogger("marmot.node")


class GossipMembership:
    """Gossip membership as the replication layer sees it (``replication.wiring.Membership``)."""

    def __init__(self, gossip: Gossip) -> None:
        self.gossip = gossip

    def alive_peers(self) -> dict[int, str]:
        return self.gossip.alive_peers()

    def total_members(self) -> int:
        return self.gossip.total_members()

    def members(self) -> list[int]:
        return [
            mb["node_id"]
            for mb in self.gossip.members()
            if mb["state"] != "REMOVED" and mb["node_id"] != self.gossip.node_id
        ]

    def leaving(self) -> bool:
        return self.gossip.state == "LEAVING"

    def not_joined(self) -> str | None:
        return self.gossip.join_status.refusal()

    def publish_schema(self, versions: dict[str, int]) -> None:
        self.gossip.set_metadata("schema_versions", versions)

    def peer_schema_versions(self) -> dict[int, dict[str, int]]:
        alive = self.gossip.alive_peers()
        out: dict[int, dict[str, int]] = {}
        for nid, extra in self.gossip.extra.items():
            versions = extra.get("schema_versions")
            if nid in alive and isinstance(versions, dict):
                out[nid] = {db: v for db, v in versions.items() if isinstance(db, str) and isinstance(v, int)}
        return out


def mysql_advertise_address(cfg: Config, port: int) -> str:
    """Where clients reach this node's MySQL listener, as gossiped to peers (``marmot members``): the
    MySQL bind address, or, when it binds every interface (0.0.0.0 / ::), the host this node advertises
    to the cluster (it is reachable there)."""
    host = cfg.mysql.bind_address
    if host in ("0.0.0.0", "::", ""):
        host = advertise_address(cfg.cluster).rsplit(":", 1)[0]
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal: host:port stays parseable
    return f"{host}:{port}"


class Node:
    """A running node; ``await start()``, then ``await stop()``."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.node_id = resolve_node_id(cfg)
        self.hlc = HLC(self.node_id)
        self.databases: DatabaseManager | None = None
        self.engine: EngineContext | None = None
        self.mysql: MySQLServer | None = None
        self._stopped = asyncio.Event()
        self._stop_requested = asyncio.Event()
        self._lease_task: asyncio.Task[None] | None = None
        self._test_hooks: list[asyncio.Task[None]] = []  # MARMOT_CLOCK_OFFSET_FILE, MARMOT_FAILPOINTS_FILE
        self.metrics = Metrics(self.node_id, version=__version__)
        self.cluster: ClusterService | None = None
        self.replication: Replication | None = None
        self.forward_sessions: ForwardSessions | None = None  # writes forwarded by read-only replicas
        self.publisher: Publisher | None = None
        self._http_runner: object | None = None
        self._dir_lock: DataDirLock | None = None
        self.replicas: ReplicaService | None = None

    async def start(self) -> None:
        cfg = self.cfg
        self._dir_lock = DataDirLock.acquire(cfg.data_dir)  # before any SQLite file is opened
        self.databases = DatabaseManager(cfg.data_dir)
        mysql_cfg = cfg.mysql
        globals_ = default_globals(
            mysql_cfg.server_version, mysql_cfg.max_allowed_packet, mysql_cfg.max_connections
        )
        globals_["innodb_lock_wait_timeout"] = cfg.transaction.lock_wait_timeout_seconds
        globals_["lock_wait_timeout"] = cfg.transaction.lock_wait_timeout_seconds
        globals_["server_id"] = self.node_id
        globals_["marmot_read_consistency"] = cfg.replication.default_read_consistency.upper()
        globals_["marmot_write_consistency"] = cfg.replication.default_write_consistency.upper()
        general_log = GeneralLog(str(Path(cfg.data_dir) / "general.log"))
        globals_["general_log"] = 0
        globals_["general_log_file"] = general_log.path
        id_generator = make_id_generator(mysql_cfg.auto_id_mode, self.node_id, self.hlc)
        lease = IdLease(id_generator, NodeState(self.databases.system))
        lease.start()
        self._lease_task = asyncio.get_running_loop().create_task(lease.run())
        loop = asyncio.get_running_loop()
        if (offset_file := failpoints.clock_offset_file()) is not None:
            self._test_hooks.append(loop.create_task(failpoints.follow_clock_offset(self.hlc, offset_file)))
        if (fp_file := failpoints.failpoints_file()) is not None:
            self._test_hooks.append(loop.create_task(failpoints.follow_failpoints(fp_file)))
        self.engine = EngineContext(
            databases=self.databases,
            id_generator=id_generator,
            global_variables=globals_,
            transpiler_cache_size=cfg.query_pipeline.transpiler_cache_size,
            lock_wait_timeout_s=float(cfg.transaction.lock_wait_timeout_seconds),
            general_log=general_log,
            extensions_dir=cfg.extensions.directory,
            always_loaded=tuple(cfg.extensions.always_loaded),
            local_infile=mysql_cfg.local_infile_enabled,
            ddl_lock_lease_s=float(cfg.ddl.lock_lease_seconds),
            ddl_implicit_commit=cfg.transaction.ddl_implicit_commit,
        )
        await self._start_cluster()
        if mysql_cfg.enabled:
            ssl_ctx = None
            if mysql_cfg.tls_cert_file and mysql_cfg.tls_key_file:
                ssl_ctx = make_ssl_context(mysql_cfg.tls_cert_file, mysql_cfg.tls_key_file)
                globals_["have_ssl"] = "YES"
            settings = ServerSettings(
                engine=self.engine,
                users={u.name: u.password for u in mysql_cfg.users},
                server_version=mysql_cfg.server_version,
                auth_plugin=mysql_cfg.auth_plugin,
                max_allowed_packet=mysql_cfg.max_allowed_packet,
                max_connections=mysql_cfg.max_connections,
                connect_timeout=mysql_cfg.connect_timeout_seconds,
                ssl_context=ssl_ctx,
                metrics=self.metrics,
            )
            self.mysql = MySQLServer(
                settings,
                mysql_cfg.bind_address,
                mysql_cfg.port,
                mysql_cfg.unix_socket,
                mysql_cfg.unix_socket_perm,
            )
            await self.mysql.start()
            if self.cluster is not None:  # peers learn where this node's MySQL listener is
                self.cluster.gossip.set_metadata(
                    MYSQL_ADDRESS_KEY, mysql_advertise_address(cfg, self.mysql.port)
                )
        log.info("node %d started (data_dir=%s)", self.node_id, cfg.data_dir)

    async def _start_cluster(self) -> None:
        """The cluster port (RPC + admin HTTP + /metrics) and gossip membership."""
        from aiohttp import web

        cfg = self.cfg
        assert self.engine is not None and self.databases is not None
        self.cluster = ClusterService(
            self.node_id,
            cfg.cluster,
            cfg.data_dir,
            on_change=self._on_member_change,
            ready_check=self._ready_check,
        )
        self.replication = Replication.from_config(
            cfg,
            node_id=self.node_id,
            hlc=self.hlc,
            databases=self.databases,
            transport=self.cluster,
            membership=GossipMembership(self.cluster.gossip),
            metrics=self.metrics,
            before_drop=self.engine.forget_database,
            before_replace=self.engine.release_database,
        )
        control = NodeControl(
            self.node_id,
            self.cluster,
            self.databases,
            grace_s=cfg.cluster.shutdown_grace_period_ms / 1000,
            request_stop=self._stop_requested.set,
            replication=self.replication,
        )
        control.register_rpc()
        # what replicas call: discovery, heartbeats, cached snapshots (src/marmot/replica/cluster_side.py)
        self.replicas = ReplicaService(
            self.node_id,
            self.databases,
            control.members,
            chunk_size=cfg.replication.stream_chunk_size_kb * 1024,
            cache_ttl=float(cfg.replica.snapshot_cache_ttl_seconds),
        )
        self.replicas.register(self.cluster.router)
        self.replication.register(self.cluster.router)
        self.replication.start()
        self.forward_sessions = ForwardSessions(self.engine)  # replicas' forwarded writes (replica/)
        self.forward_sessions.register(self.cluster.router)
        self.forward_sessions.start()
        if cfg.prometheus.enabled:
            self.metrics.registry.register(ForwardSessionsCollector(self.node_id, self.forward_sessions))
        if cfg.publisher.enabled and cfg.publisher.sinks:  # the CDC publisher (docs/cdc.md)
            gossip = self.cluster.gossip
            self.publisher = Publisher(
                cfg,
                node_id=self.node_id,
                databases=self.databases,
                reader=self.replication.readers.get,
                transport=self.cluster,
                member_states=lambda: {m["node_id"]: m["state"] for m in gossip.members()},
                alive_peers=gossip.alive_peers,
                registry=self.metrics.registry,
            )
            self.publisher.register(self.cluster.router)
            self.replication.gc.hold = self.publisher.gc_hold
            self.replication.applied_listeners.append(self.publisher.kick)
        # The engine hands replication its writes and replication asks the engine's sessions to let go of
        # a database file: the engine is built first, without one, and plugs into it here.
        self.engine.replication = self.replication
        # GET_LOCK & co. held cluster-wide: a quorum of grants (replication/named_locks.py)
        locks = self.engine.named_locks
        locks.node_id, locks.transport = self.node_id, self.cluster
        locks.membership = self.replication.membership  # the one adapter over gossip
        locks.register(self.cluster.router)
        locks.start()
        app = make_app(
            control,
            secret=cfg.cluster.cluster_secret,
            metrics=self.metrics if cfg.prometheus.enabled else None,
            publisher_status=self.publisher.status if self.publisher is not None else None,
        )
        self.replicas.add_routes(app)
        if cfg.prometheus.enabled:
            self.metrics.registry.register(self.replicas.collector())
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        self._http_runner = runner
        await self.cluster.start(http_factory=runner.server)
        if self.publisher is not None:
            self.publisher.start()

    async def _ready_check(self) -> bool:
        """A joining node turns ALIVE once replication says it has caught up with its peers."""
        return True if self.replication is None else await self.replication.ready()

    def _on_member_change(self, node_id: int, old: str, new: str) -> None:
        self.metrics.state_transition(old, new)  # the membership table logs the change itself
        if new in ("DEAD", "REMOVED") and self.engine is not None:
            self.engine.named_locks.node_gone(node_id)  # its sessions' GET_LOCK locks are free

    async def stop(self) -> None:
        if self._lease_task is not None:
            self._lease_task.cancel()
            self._lease_task = None
        for task in self._test_hooks:
            task.cancel()
        self._test_hooks = []
        if self.mysql is not None:
            await self.mysql.stop()
            self.mysql = None
        if self.forward_sessions is not None:
            await self.forward_sessions.stop()  # their open transactions roll back
            self.forward_sessions = None
        if self.publisher is not None:
            await self.publisher.stop()
            self.publisher = None
        if self.engine is not None:
            await self.engine.named_locks.stop()
        if self.replication is not None:
            await self.replication.stop()
            self.replication = None
        if self.cluster is not None:
            await self.cluster.stop()
            self.cluster = None
        if self.replicas is not None:
            self.replicas.close()
            self.replicas = None
        if self._http_runner is not None:
            await self._http_runner.cleanup()  # type: ignore[attr-defined]
            self._http_runner = None
        if self.databases is not None:
            self.databases.close()
            self.databases = None
        if self._dir_lock is not None:
            self._dir_lock.release()
            self._dir_lock = None
        self._stopped.set()
        log.info("node %d stopped", self.node_id)

    async def run_until_signalled(self, on_serving: Callable[[], None] | None = None) -> None:
        """Serve until SIGTERM/SIGINT, then shut down gracefully (a second signal exits at once).

        ``on_serving`` runs once every listener is bound (the CLI writes the PID file and tells a
        ``-daemon`` launcher there). When starting fails, or ``on_serving`` raises, what did start is
        stopped (the cluster is told we leave, files are closed) before the error propagates.
        """
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await self.start()
            if on_serving is not None:
                on_serving()
        except BaseException:
            if self._dir_lock is None:
                raise  # nothing started (the data directory is unusable or held by another process)
            try:
                await self.stop()
            except Exception:
                log.exception("cleaning up after a failed start")
            raise
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._stop_requested.wait())]
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for w in waiters:
            w.cancel()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: (_ for _ in ()).throw(SystemExit(1)))
        log.info("shutdown requested")
        await self.stop()
