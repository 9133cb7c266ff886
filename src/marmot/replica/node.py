"""A replica process: the node's storage, engine and MySQL listener, following a cluster read-only.

Why a subclass of ``Node``: a replica starts like a member — data directory lock, storage, engine, MySQL
listener, the cluster port with the admin API — except for the cluster part (``_start_cluster``):
no gossip, no membership, no 2PC participant, no coordinator. In their place it builds what following
needs: the apply queues and the log pull members use (one apply path), a ``ReplicaTransport`` with
``[replica] secret``, the ``Follower`` loop, and the replica admin app (``admin.py``) on the cluster port
(which answers no RPC method: nothing calls a replica). The engine is read-only: every write and DDL gets
MySQL's 1290 (``engine/read_only.py``), or, with ``[replica] forward_writes``, runs on the cluster
(``forward_setup.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from marmot.cluster.listener import serve_shared_port
from marmot.cluster.rpc import PREAMBLE, ClientPool, RpcRouter, RpcServerProtocol
from marmot.cluster.service import advertise_address, tls_contexts
from marmot.config import Config
from marmot.node import Node, mysql_advertise_address
from marmot.replica.admin import ReplicaControl, make_replica_app
from marmot.replica.follower import Follower, FollowSettings
from marmot.replica.forward_setup import install_forwarding
from marmot.replica.transport import ReplicaTransport
from marmot.replication.apply.queue import ApplyQueues
from marmot.replication.catchup.log_pull import LogPull
from marmot.replication.catchup.log_server import ReadConnections
from marmot.replication.wiring import ReplicationSettings
from marmot.storage.node_state import NodeState

log = logging.getLogger("marmot.replica")

NO_PACING = 1e12  # a replica serves no writes: catch-up is not held back for live traffic


class ReplicaNode(Node):
    """``await start()``, then ``await stop()``, like ``Node``; ``follower.status()`` is its state."""

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        self.follower: Follower | None = None
        self.queues: ApplyQueues | None = None
        self.readers: ReadConnections | None = None
        self.transport: ReplicaTransport | None = None
        self._server: asyncio.Server | None = None
        self._router = RpcRouter()

    async def _start_cluster(self) -> None:
        """Instead of gossip and the replication layer: the follower and the replica's admin port."""
        from aiohttp import web

        cfg = self.cfg
        assert self.engine is not None and self.databases is not None
        self.engine.read_only = True
        self.engine.global_variables["read_only"] = 1  # what clients that check @@read_only see
        settings = ReplicationSettings.from_config(cfg)
        self.queues = ApplyQueues(self.databases, max_batch=settings.max_batch)
        self.readers = ReadConnections(self.databases)
        server_ssl, client_ssl = tls_contexts(cfg.cluster)
        self.transport = ReplicaTransport(
            ClientPool(secret=cfg.replica.secret, node_id=self.node_id, ssl=client_ssl)
        )
        pull = LogPull(
            self.node_id,
            self.hlc,
            self.databases,
            self.queues,
            self.transport,
            peers=dict,  # never used: the follower names the source of every pull
            readers=self.readers,
            state=NodeState(self.databases.system),
            settings=settings,
            max_rate=NO_PACING,
            release=self._release_database,
        )
        self.follower = Follower(
            FollowSettings.from_config(cfg), pull, self.transport, self.node_id, self._identity
        )
        if cfg.replica.forward_writes:  # writes go to the cluster instead of getting 1290
            metrics = self.metrics if cfg.prometheus.enabled else None
            install_forwarding(
                self.engine, cfg, self.node_id, self.transport.send, self.follower, self.databases, metrics
            )
        control = ReplicaControl(self.node_id, self.databases, self.follower)
        app = make_replica_app(
            control, secret=cfg.replica.secret, metrics=self.metrics if cfg.prometheus.enabled else None
        )
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        self._http_runner = runner
        self._server = await serve_shared_port(
            cfg.cluster.grpc_bind_address,
            cfg.cluster.grpc_port,
            preamble=PREAMBLE,
            rpc_factory=lambda data: RpcServerProtocol(
                self._router, secret=cfg.replica.secret, node_id=self.node_id, initial_data=data
            ),
            http_factory=runner.server,
            ssl=server_ssl,
        )
        self.follower.start()
        log.info(
            "replica mode: following %s (databases: %s)",
            ", ".join(cfg.replica.follow_addresses),
            ", ".join(cfg.replica.replicate_databases) or "all",
        )

    def _identity(self) -> tuple[str, str]:
        """(admin address, MySQL address) this replica registers under with the cluster."""
        mysql = mysql_advertise_address(self.cfg, self.mysql.port) if self.mysql is not None else ""
        return advertise_address(self.cfg.cluster), mysql

    def _release_database(self, name: str) -> None:
        """A snapshot replaces ``name``'s file: sessions and the apply queue let go of the old one."""
        if self.engine is not None:
            self.engine.release_database(name)
        if self.queues is not None:
            self.queues.forget(name)

    async def stop(self) -> None:
        if self.mysql is not None:
            await self.mysql.stop()
            self.mysql = None
        if self.follower is not None:
            await self.follower.stop()
            self.follower = None
        if self.queues is not None:
            await self.queues.close()
            self.queues = None
        if self.readers is not None:
            self.readers.close()
            self.readers = None
        self._router.close_connections()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), timeout=2)
            self._server = None
        if self.transport is not None:
            await self.transport.close()
            self.transport = None
        await super().stop()
