"""How the layers above the network reach other nodes: the transport interface, declared once.

Why a leaf module: ``replication/`` must never import ``cluster/`` (arrows point down, docs/DESIGN.md),
yet both speak of the same thing — ``cluster/`` provides it (``ClusterService``), gossip and replication
use it. Declaring it here, importing nothing of ours, lets every side name it without a cycle.

Payloads and answers are msgpack-able values (maps, lists, bytes, str, int, bool, None); the RPC layer
adds deadlines and authentication. An exception from a call means "no answer" (unreachable, timed out,
refused, or the handler failed): callers treat it as such, never as a value.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

# ``send(address, method, payload, timeout_s) -> answer``: one unary call (what gossip needs)
Send = Callable[[str, str, Any, float], Awaitable[Any]]
UnaryHandler = Callable[[Any, Any], Awaitable[Any]]  # (payload, call context) -> answer
ServerStreamHandler = Callable[[Any, Any], AsyncIterator[Any]]  # (payload, call context) -> messages
ClientStreamHandler = Callable[[AsyncIterator[Any], Any], Awaitable[Any]]  # (chunks, call context) -> answer


class Transport(Protocol):
    """Calls to other nodes, addressed as ``host:port``."""

    async def send(self, address: str, method: str, payload: Any, timeout: float) -> Any:
        """One request, one answer."""
        ...

    async def send_stream(self, address: str, method: str, chunks: list[Any], timeout: float) -> Any:
        """A client-streaming call: ``chunks`` go as separate frames (a large transaction), one answer."""
        ...

    def stream(self, address: str, method: str, payload: Any, timeout: float) -> AsyncIterator[Any]:
        """A server-streaming call: one request, then ``async for`` over the answers (a snapshot)."""
        ...


class Router(Protocol):
    """Where a layer registers the methods other nodes call on this one."""

    def unary(self, name: str, fn: UnaryHandler) -> None: ...

    def client_stream(self, name: str, fn: ClientStreamHandler) -> None: ...

    def server_stream(self, name: str, fn: ServerStreamHandler) -> None: ...
