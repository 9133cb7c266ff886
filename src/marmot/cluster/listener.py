"""One TCP port for node-to-node RPC and HTTP (admin API, /metrics), as upstream serves both on 8080.

Each accepted connection starts with a small sniffing protocol that reads the first bytes: a connection
that opens with the RPC preamble is handed to the RPC server protocol, anything else to aiohttp's
low-level HTTP server, with ``transport.set_protocol()`` and the bytes already read passed on. Nothing
is parsed twice and neither side knows the other exists.
"""

from __future__ import annotations

import asyncio
import logging
import ssl as ssl_module
from collections.abc import Callable
from typing import cast

from marmot.startup import listen_error

log = logging.getLogger("marmot.cluster")

SNIFF_LIMIT = 64  # bytes; an HTTP request line always differs from the preamble well before this


class _Sniffer(asyncio.Protocol):
    def __init__(
        self,
        preamble: bytes,
        rpc_factory: Callable[[bytes], asyncio.BaseProtocol],
        http_factory: Callable[[], asyncio.Protocol] | None,
    ) -> None:
        self.preamble = preamble
        self.rpc_factory = rpc_factory
        self.http_factory = http_factory
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport; cast, not isinstance: uvloop's transports are no asyncio.Transport subclass
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        n = min(len(self.buf), len(self.preamble))
        if self.buf[:n] == self.preamble[:n] and len(self.buf) < len(self.preamble):
            return  # could still be RPC: wait for more
        assert self.transport is not None
        if self.buf.startswith(self.preamble):
            rpc = self.rpc_factory(self.buf)
            self.transport.set_protocol(rpc)
            rpc.connection_made(self.transport)
            return
        if self.http_factory is None:
            self.transport.close()
            return
        http = self.http_factory()
        self.transport.set_protocol(http)
        http.connection_made(self.transport)
        http.data_received(self.buf)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve_shared_port(
    host: str,
    port: int,
    *,
    preamble: bytes,
    rpc_factory: Callable[[bytes], asyncio.BaseProtocol],
    http_factory: Callable[[], asyncio.Protocol] | None,
    ssl: ssl_module.SSLContext | None = None,
) -> asyncio.Server:
    """Listen on host:port; route each connection to RPC or HTTP by its first bytes (inside TLS when
    ``ssl`` is given: the whole port is then TLS, RPC and HTTPS alike)."""
    loop = asyncio.get_running_loop()
    try:
        server = await loop.create_server(
            lambda: _Sniffer(preamble, rpc_factory, http_factory),
            host,
            port,
            reuse_address=True,
            backlog=1024,
            ssl=ssl,
        )
    except OSError as err:
        raise listen_error("cluster port", host, port, err) from None
    log.info("cluster port listening on %s:%d (RPC and HTTP)", host, port)
    return server
