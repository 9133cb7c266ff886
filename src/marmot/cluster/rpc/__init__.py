"""Node-to-node RPC: msgpack frames over asyncio connections (the public API of the cluster transport).

Why our own and not gRPC: on this machine kind gRPC-Python costs ~0.55 ms per unary call; this layer does
the same job (multiplexed calls, deadlines, streaming with flow control, keepalive, mutual
authentication, optional TLS) at a fraction of the cost (``bench/rpc.py``; DESIGN.md, decision table).
Users never see this protocol; only Marmot nodes speak it.

Layout (import the public names from this package, not from its modules):

* ``frames.py``     sans-I/O wire format: ``FrameDecoder`` / ``FrameEncoder`` (documents every frame).
* ``call.py``       one call as both sides see it: ``RpcError``, ``AuthError``, ``CallContext``.
* ``router.py``     ``RpcRouter``, the server's method table, and the handler shapes.
* ``handshake.py``  ``PREAMBLE`` and the MACs of the mutual authentication.
* ``streams.py``    flow control of streams: ``SendWindow``, ``RecvStream``, ``STREAM_WINDOW``.
* ``protocol.py``   ``Connection``, the asyncio protocol base of both sides (frame I/O, back-pressure,
  keepalive).
* ``server.py``     ``RpcServerProtocol`` (one server connection) and ``serve_rpc`` (standalone listener).
* ``client.py``     ``RpcClient`` (one peer, reconnecting) and ``ClientPool`` (all peers).

A connection, start to end::

    client                                   server
    PREAMBLE "MARMOT-RPC/1\\n"       ->
                                     <-      HELLO  server_nonce
    AUTH node_id, client_nonce,
         HMAC(secret, sn||cn||id)    ->      checks (compare_digest); on mismatch: ERROR "auth", close
                                     <-      WELCOME node_id, HMAC(secret, cn||sn||id)
    checks; on mismatch: close, AuthError
    REQUEST rid=1 ..., REQUEST rid=2 ...  -> handlers run concurrently
                                     <-      RESPONSE rid=2, RESPONSE rid=1 (completion order)

With an empty secret on both sides the MACs are keyed with the empty key: no authentication, but node
ids are still exchanged (``RpcClient.remote_node_id``, ``CallContext.peer_node_id``). A secret on one
side only is a mismatch.

Usage::

    router = RpcRouter()
    async def prepare(payload, ctx): ...; return {"ok": True}
    router.unary("Prepare", prepare)
    server = await serve_rpc(router, "127.0.0.1", 0, secret="s", node_id=1)   # or the shared port
    pool = ClientPool(secret="s", node_id=2)
    answer = await pool.get("127.0.0.1:7946").call("Prepare", {...}, timeout=2.0)
"""

from __future__ import annotations

from .call import AuthError, CallContext, RpcError
from .client import ClientPool, RpcClient, ServerStreamCall, split_address
from .frames import DEFAULT_MAX_FRAME, ProtocolError
from .handshake import PREAMBLE
from .router import RpcRouter
from .server import RpcServerProtocol, serve_rpc
from .streams import STREAM_WINDOW

__all__ = [
    "DEFAULT_MAX_FRAME",
    "PREAMBLE",
    "STREAM_WINDOW",
    "AuthError",
    "CallContext",
    "ClientPool",
    "ProtocolError",
    "RpcClient",
    "RpcError",
    "RpcRouter",
    "RpcServerProtocol",
    "ServerStreamCall",
    "serve_rpc",
    "split_address",
]
