"""The method table of a node's RPC server (``RpcRouter``) and the shapes of the handlers it holds.

Import from ``marmot.cluster.rpc``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from .call import CallContext

UNARY, SERVER_STREAM, CLIENT_STREAM = "unary", "server_stream", "client_stream"

UnaryHandler = Callable[[Any, CallContext], Awaitable[Any]]
ServerStreamHandler = Callable[[Any, CallContext], AsyncIterator[Any]]
ClientStreamHandler = Callable[[AsyncIterator[Any], CallContext], Awaitable[Any]]


class RpcRouter:
    """Method table of a node's RPC server, and the set of its live server connections.

    One router serves every listener of the node (the shared cluster port, a test listener): a connection
    registers itself here while open, so ``close_connections`` can end them all at shutdown.
    """

    def __init__(self) -> None:
        self.methods: dict[str, tuple[str, Callable[..., Any]]] = {}
        self.connections: set[Any] = set()
        self.urgent: set[str] = set()  # unary methods whose answers are flushed at once (``answer_at_once``)

    def _add(self, name: str, kind: str, fn: Callable[..., Any]) -> None:
        if name in self.methods:
            raise ValueError(f"RPC method {name!r} is already registered")
        self.methods[name] = (kind, fn)

    def unary(self, name: str, fn: UnaryHandler) -> None:
        """``await fn(payload, ctx)`` answers one request with one value."""
        self._add(name, UNARY, fn)

    def answer_at_once(self, name: str) -> None:
        """Answers to the unary method ``name`` leave as soon as the handler returns instead of with the
        other frames of the event-loop iteration (``RpcProtocol.send`` corks a connection until the next
        iteration, which under load is milliseconds away): for a call a client is waiting on, e.g. a
        read barrier's ``log_positions``."""
        self.urgent.add(name)

    def server_stream(self, name: str, fn: ServerStreamHandler) -> None:
        """``fn(payload, ctx)`` returns an async iterator (an ``async def`` generator); each item is one chunk."""
        self._add(name, SERVER_STREAM, fn)

    def client_stream(self, name: str, fn: ClientStreamHandler) -> None:
        """``await fn(chunks, ctx)`` consumes an async iterator of the caller's chunks and returns one value."""
        self._add(name, CLIENT_STREAM, fn)

    def close_connections(self) -> None:
        """Close every open server connection of this router (their running handlers are cancelled)."""
        for conn in list(self.connections):
            conn.close()
