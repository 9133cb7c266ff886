"""MySQL listeners: TCP on ``[mysql] bind_address:port`` and, when configured, a unix socket."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
from pathlib import Path

from marmot.mysql.connection import MySQLConnection, ServerSettings
from marmot.startup import StartupError, listen_error

log = logging.getLogger("marmot.mysql")


def make_ssl_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_file, key_file)
    return ctx


def _claim_unix_path(path: Path) -> None:
    """Make way for our socket: remove a stale one, but never take over one a live server listens on."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        return
    if path.is_socket():
        with socket.socket(socket.AF_UNIX) as probe:
            probe.settimeout(1.0)
            try:
                probe.connect(str(path))
            except OSError:
                pass  # nobody listens: a leftover of a node that died
            else:
                raise StartupError(f"cannot listen on unix socket {path}: another server listens on it")
    path.unlink()


class MySQLServer:
    """Owns the listening sockets; each accepted client becomes a ``MySQLConnection``."""

    def __init__(
        self,
        settings: ServerSettings,
        host: str,
        port: int,
        unix_socket: str = "",
        unix_socket_perm: int = 0o660,
    ) -> None:
        self.settings = settings
        self.host = host
        self.port = port
        self.unix_socket = unix_socket
        self.unix_socket_perm = unix_socket_perm
        self._servers: list[asyncio.AbstractServer] = []
        self._unix_bound = False

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            tcp = await loop.create_server(
                lambda: MySQLConnection(self.settings), self.host, self.port, reuse_address=True, backlog=1024
            )
        except OSError as err:
            raise listen_error("MySQL port", self.host, self.port, err) from None
        self._servers.append(tcp)
        if self.port == 0:
            self.port = tcp.sockets[0].getsockname()[1]
        log.info("MySQL protocol listening on %s:%d", self.host, self.port)
        if self.unix_socket:
            path = Path(self.unix_socket)
            try:
                _claim_unix_path(path)
                unix = await loop.create_unix_server(
                    lambda: MySQLConnection(self.settings, is_unix=True), str(path)
                )
            except OSError as err:
                raise StartupError(f"cannot listen on unix socket {path}: {err.strerror or err}") from None
            self._unix_bound = True
            os.chmod(path, self.unix_socket_perm)
            self._servers.append(unix)
            log.info("MySQL protocol listening on unix socket %s", path)

    async def stop(self) -> None:
        """Stop accepting, close every client connection (open transactions roll back)."""
        for srv in self._servers:
            srv.close()
        for conn in list(self.settings.connections):
            conn.close()
        for srv in self._servers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(srv.wait_closed(), timeout=5)
        self._servers.clear()
        if self._unix_bound and Path(self.unix_socket).exists():  # never the socket of another server
            Path(self.unix_socket).unlink()
        self._unix_bound = False
