"""One Marmot node built from a Config: the only module that knows every part.

Start order: storage (databases open, default database created) -> engine context (ids, variables,
plan cache) -> MySQL listeners. Stop order is the reverse: stop accepting and close client connections
(their open transactions roll back), then checkpoint every WAL into its database file.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from marmot.config import Config, resolve_node_id
from marmot.engine.context import EngineContext
from marmot.engine.general_log import GeneralLog
from marmot.engine.variables import default_globals
from marmot.hlc import HLC
from marmot.id_lease import IdLease
from marmot.ids import make_id_generator
from marmot.mysql.connection import ServerSettings
from marmot.mysql.server import MySQLServer, make_ssl_context
from marmot.storage.databases import DatabaseManager
from marmot.storage.node_state import NodeState

log = logging.getLogger("marmot.node")


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
        self._lease_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        cfg = self.cfg
        self.databases = DatabaseManager(cfg.data_dir)
        mysql_cfg = cfg.mysql
        globals_ = default_globals(mysql_cfg.server_version, mysql_cfg.max_allowed_packet, mysql_cfg.max_connections)
        globals_["innodb_lock_wait_timeout"] = cfg.transaction.lock_wait_timeout_seconds
        globals_["lock_wait_timeout"] = cfg.transaction.lock_wait_timeout_seconds
        globals_["server_id"] = self.node_id
        general_log = GeneralLog(str(Path(cfg.data_dir) / "general.log"))
        globals_["general_log"] = 0
        globals_["general_log_file"] = general_log.path
        id_generator = make_id_generator(mysql_cfg.auto_id_mode, self.node_id, self.hlc)
        lease = IdLease(id_generator, NodeState(self.databases.system))
        lease.start()
        self._lease_task = asyncio.get_running_loop().create_task(lease.run())
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
        )
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
                ssl_context=ssl_ctx,
            )
            self.mysql = MySQLServer(settings, mysql_cfg.bind_address, mysql_cfg.port, mysql_cfg.unix_socket,
                                     mysql_cfg.unix_socket_perm)
            await self.mysql.start()
        log.info("node %d started (data_dir=%s)", self.node_id, cfg.data_dir)

    async def stop(self) -> None:
        if self._lease_task is not None:
            self._lease_task.cancel()
            self._lease_task = None
        if self.mysql is not None:
            await self.mysql.stop()
            self.mysql = None
        if self.databases is not None:
            self.databases.close()
            self.databases = None
        self._stopped.set()
        log.info("node %d stopped", self.node_id)

    async def run_until_signalled(self) -> None:
        """Serve until SIGTERM/SIGINT, then shut down gracefully (a second signal exits at once)."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        await stop.wait()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: (_ for _ in ()).throw(SystemExit(1)))
        log.info("shutdown requested")
        await self.stop()
