"""The cluster side of one node: RPC server and clients, gossip membership, the shared cluster port.

It is its own type because node.py needs one handle for "everything that talks to peers", and the
replication layer needs the same handle to send its RPCs and to ask who is alive and whether there is a
quorum. Start order: register the RPC methods, open the shared port (RPC + the admin HTTP app), then
start gossip (restore the persisted view, join through the seeds).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

from marmot.cluster.gossip import Gossip
from marmot.cluster.listener import serve_shared_port
from marmot.cluster.rpc import PREAMBLE, AuthError, ClientPool, RpcRouter, RpcServerProtocol, ServerStreamCall
from marmot.config import ClusterConfig

log = logging.getLogger("marmot.cluster")


def advertise_address(cfg: ClusterConfig) -> str:
    """``grpc_advertise_address`` if set, else bind address (or the hostname for 0.0.0.0) and port."""
    if cfg.grpc_advertise_address:
        return cfg.grpc_advertise_address
    host = cfg.grpc_bind_address
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    return f"{host}:{cfg.grpc_port}"


def tls_contexts(cfg: ClusterConfig) -> tuple[ssl.SSLContext | None, ssl.SSLContext | None]:
    """(server, client) TLS contexts for the cluster port, or (None, None) without TLS.

    Peers are addressed as host:port and their certificates often carry no IP names, so the client checks
    the chain against ``tls_ca_file`` but not the host name; without a CA the link is encrypted only.
    """
    if not (cfg.tls_cert_file and cfg.tls_key_file):
        return None, None
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.minimum_version = ssl.TLSVersion.TLSv1_2
    server.load_cert_chain(cfg.tls_cert_file, cfg.tls_key_file)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.minimum_version = ssl.TLSVersion.TLSv1_2
    client.check_hostname = False
    if cfg.tls_ca_file:
        client.load_verify_locations(cfg.tls_ca_file)
        client.verify_mode = ssl.CERT_REQUIRED
    else:
        client.verify_mode = ssl.CERT_NONE
        log.warning("cluster TLS without [cluster] tls_ca_file: peers are not verified")
    return server, client


class ClusterService:
    def __init__(
        self,
        node_id: int,
        cfg: ClusterConfig,
        data_dir: str,
        *,
        ready_check: Callable[[], Awaitable[bool]] | None = None,
        on_change: Callable[[int, str, str], None] | None = None,
    ) -> None:
        self.node_id = node_id
        self.cfg = cfg
        self.secret = cfg.cluster_secret
        self.address = advertise_address(cfg)
        self.router = RpcRouter()
        self.server_ssl, client_ssl = tls_contexts(cfg)
        self.pool = ClientPool(secret=self.secret, node_id=node_id, ssl=client_ssl)
        self.gossip = Gossip(
            node_id,
            self.address,
            send=self.send,
            seeds=list(cfg.seed_nodes),
            data_dir=data_dir,
            gossip_interval_ms=cfg.gossip_interval_ms,
            gossip_fanout=cfg.gossip_fanout,
            suspect_timeout_ms=cfg.suspect_timeout_ms,
            dead_timeout_ms=cfg.dead_timeout_ms,
            ready_check=ready_check,
            on_change=self._member_changed,
        )
        self._on_change = on_change
        self._dial = dict(p.split("=", 1) for p in cfg.dial_overrides)  # advertised -> dialled address
        for method, handler in (
            ("gossip", self.gossip.handle_gossip),
            ("ping", self.gossip.handle_ping),
            ("ping_req", self.gossip.handle_ping_req),
            ("join", self.gossip.handle_join),
        ):
            self.router.unary(method, _ignore_ctx(handler))
        self._server: asyncio.Server | None = None
        self._auth_logged: dict[str, float] = {}

    async def send_stream(self, address: str, method: str, chunks: list[Any], timeout: float) -> Any:
        """A client-streaming call (large transactions): ``chunks`` go as separate frames."""
        return await self.pool.get(self._dial.get(address, address)).client_stream(method, chunks, timeout)

    def stream(self, address: str, method: str, payload: Any, timeout: float) -> ServerStreamCall:
        """A server-streaming call (snapshots): ``async for message in cluster.stream(...)``."""
        return self.pool.get(self._dial.get(address, address)).server_stream(method, payload, timeout)

    def _member_changed(self, node_id: int, old: str, new: str) -> None:
        if new == "ALIVE":
            address = self.gossip.alive_peers().get(node_id)
            if address is not None:
                self.pool.reset_backoff(self._dial.get(address, address))
        if self._on_change is not None:
            self._on_change(node_id, old, new)

    def start_call(
        self,
        address: str,
        method: str,
        payload: Any,
        timeout: float,
        fut: asyncio.Future[Any] | None = None,
    ) -> asyncio.Future[Any] | None:
        """``send`` without a task, written and flushed now (``RpcClient.start_call``): the future of the
        answer (``fut`` if given), or None when there is no connection to ``address`` yet (use ``send``)."""
        return self.pool.get(self._dial.get(address, address)).start_call(method, payload, timeout, fut)

    async def send(self, address: str, method: str, payload: Any, timeout: float) -> Any:
        address = self._dial.get(address, address)
        try:
            return await self.pool.get(address).call(method, payload, timeout)
        except AuthError as err:
            now = time.monotonic()
            if now - self._auth_logged.get(address, -1e9) > 60:  # say it, but not on every gossip round
                self._auth_logged[address] = now
                log.warning("peer %s refused us: %s (check [cluster] cluster_secret)", address, err)
            raise

    async def start(self, http_factory: Callable[[], asyncio.Protocol] | None = None) -> None:
        if not self.secret:
            log.warning(
                "cluster authentication is disabled: set [cluster] cluster_secret or MARMOT_CLUSTER_SECRET"
            )
        self._server = await serve_shared_port(
            self.cfg.grpc_bind_address,
            self.cfg.grpc_port,
            preamble=PREAMBLE,
            rpc_factory=lambda data: RpcServerProtocol(
                self.router, secret=self.secret, node_id=self.node_id, initial_data=data
            ),
            http_factory=http_factory,
            ssl=self.server_ssl,
        )
        await self.gossip.start()

    async def stop(self) -> None:
        await self.gossip.stop(leaving=True)
        self.router.close_connections()  # Server.close() leaves open connections alone on Python 3.11
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), timeout=2)
            self._server = None
        await self.pool.close()


def _ignore_ctx(handler: Callable[[Any], Awaitable[Any]]) -> Callable[[Any, Any], Awaitable[Any]]:
    async def call(payload: Any, _ctx: Any) -> Any:
        return await handler(payload)

    return call
