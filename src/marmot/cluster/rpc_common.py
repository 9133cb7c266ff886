"""Parts of the node-to-node RPC shared by the server and the client side.

Import from ``marmot.cluster.rpc``; this module exists only to keep each file short. It holds the public
value types (``RpcError``, ``AuthError``, ``CallContext``, ``RpcRouter``), the handshake MACs, the
flow-control windows of streams and ``_Connection``, the asyncio protocol base both sides build on
(frame decoding, writes with transport back-pressure, keepalive).

Threading: everything here runs on one event loop thread; nothing is locked.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import math
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .frames import (
    CREDIT,
    DEFAULT_MAX_FRAME,
    HANDSHAKE_MAX_FRAME,
    PING,
    FrameDecoder,
    FrameEncoder,
    ProtocolError,
)

log = logging.getLogger("marmot.cluster.rpc")

PREAMBLE = b"MARMOT-RPC/1\n"
"""First bytes a client sends on a new connection. The node's shared cluster port routes a connection to
RPC when its first bytes equal this, else to HTTP (no HTTP request can start with them)."""

NONCE_SIZE = 16
STREAM_WINDOW = 32
"""Default flow-control window of a stream, in chunks: a sender has at most this many chunks in flight
(sent, not yet consumed by the receiving application). The receiver of a client stream (the server)
grants this initial window implicitly; the receiver of a server stream states its window when opening."""

UNARY, SERVER_STREAM, CLIENT_STREAM = "unary", "server_stream", "client_stream"


class RpcError(Exception):
    """A call failed. ``code`` says how; ``message`` says why.

    Codes: ``deadline`` (the call's timeout passed), ``unavailable`` (no connection, connection lost,
    client closed), ``unknown_method``, ``handler`` (the remote handler raised), ``auth`` (cluster secret
    mismatch), ``protocol`` (the peer broke the protocol), ``cancelled``. A handler may raise
    ``RpcError`` with a code of its own; the caller receives that code and message unchanged.
    """

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message

    def copy(self) -> RpcError:
        """A fresh exception with the same code and message (raising one instance twice grows its traceback)."""
        if type(self) is AuthError:
            return AuthError(self.message)
        return RpcError(self.code, self.message)


class AuthError(RpcError):
    """The peer does not share our cluster secret (either direction of the handshake failed)."""

    def __init__(self, message: str = "invalid cluster secret") -> None:
        super().__init__("auth", message)


@dataclass(slots=True)
class CallContext:
    """What a handler knows about the call: the authenticated peer and the deadline (``loop.time()``;
    ``math.inf`` when the caller set none)."""

    peer_node_id: int
    peer_address: str
    deadline: float

    def remaining(self) -> float:
        """Seconds left before the deadline (negative once passed)."""
        return self.deadline - asyncio.get_running_loop().time()


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

    def _add(self, name: str, kind: str, fn: Callable[..., Any]) -> None:
        if name in self.methods:
            raise ValueError(f"RPC method {name!r} is already registered")
        self.methods[name] = (kind, fn)

    def unary(self, name: str, fn: UnaryHandler) -> None:
        """``await fn(payload, ctx)`` answers one request with one value."""
        self._add(name, UNARY, fn)

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


def _node_id_bytes(node_id: int) -> bytes:
    return node_id.to_bytes(8, "big", signed=False)


def client_mac(secret: bytes, server_nonce: bytes, client_nonce: bytes, client_node_id: int) -> bytes:
    """The client's proof: HMAC-SHA256(secret, server_nonce || client_nonce || client_node_id)."""
    return hmac.new(secret, server_nonce + client_nonce + _node_id_bytes(client_node_id), hashlib.sha256).digest()


def server_mac(secret: bytes, client_nonce: bytes, server_nonce: bytes, server_node_id: int) -> bytes:
    """The server's proof: HMAC-SHA256(secret, client_nonce || server_nonce || server_node_id)."""
    return hmac.new(secret, client_nonce + server_nonce + _node_id_bytes(server_node_id), hashlib.sha256).digest()


def check_node_id(node_id: int) -> int:
    if not isinstance(node_id, int) or not 0 <= node_id < 2**64:
        raise ValueError(f"node_id must be an integer in [0, 2**64), got {node_id!r}")
    return node_id


class SendWindow:
    """Sender side of a stream's flow control: chunks may be sent while ``credits`` > 0."""

    __slots__ = ("_waiter", "aborted", "credits")

    def __init__(self, credits: int) -> None:
        self.credits = credits
        self.aborted = False
        self._waiter: asyncio.Future[None] | None = None

    def grant(self, n: int) -> None:
        self.credits += n
        self._wake()

    def abort(self) -> None:
        """Stop the sender (the call ended): a pending ``wait`` returns and ``aborted`` is set."""
        self.aborted = True
        self._wake()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def wait(self) -> None:
        """Return once a chunk may be sent or the stream was aborted."""
        while self.credits <= 0 and not self.aborted:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None


class RecvStream:
    """Receiver side of a stream: a bounded buffer of chunks consumed as an async iterator.

    At most ``window`` chunks are ever buffered: the receiver returns credits (``CREDIT`` frames, batched
    by half a window) only as the application consumes chunks. A sender that overruns the window broke
    the protocol; ``push`` then returns False and the stream fails.
    """

    __slots__ = ("_buf", "_conn", "_consumed", "_error", "_ended", "_waiter", "rid", "window")

    def __init__(self, conn: _Connection, rid: int, window: int) -> None:
        self._conn = conn
        self.rid = rid
        self.window = window
        self._buf: deque[Any] = deque()
        self._consumed = 0
        self._ended = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None

    @property
    def finished(self) -> bool:
        return self._ended or self._error is not None

    def push(self, item: Any) -> bool:
        if self.finished:
            return True
        if len(self._buf) >= self.window:
            self.fail(RpcError("protocol", "peer sent more chunks than the flow-control window allows"))
            return False
        self._buf.append(item)
        self._wake()
        return True

    def end(self) -> None:
        self._ended = True
        self._wake()

    def fail(self, exc: BaseException) -> None:
        """End the stream with ``exc``; chunks already buffered are still delivered first."""
        if not self.finished:
            self._error = exc
            self._wake()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def __aiter__(self) -> RecvStream:
        return self

    async def __anext__(self) -> Any:
        while True:
            if self._buf:
                item = self._buf.popleft()
                if not self.finished:
                    self._consumed += 1
                    if self._consumed * 2 >= self.window:
                        self._conn.send_credit(self.rid, self._consumed)
                        self._consumed = 0
                return item
            if self._error is not None:
                err = self._error
                raise err.copy() if isinstance(err, RpcError) else err
            if self._ended:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None


READ_BUFFER_SIZE = 256 * 1024


class _Connection(asyncio.BufferedProtocol):
    """Frame I/O, write back-pressure and keepalive; subclasses implement ``data_received``.

    A ``BufferedProtocol``: the transport reads into one buffer per connection (``recv_into``) and we
    decode from a view of it. With a plain ``Protocol`` asyncio allocates a fresh 256 KiB ``bytes`` per
    read, which costs an mmap, an mremap and a munmap syscall per message: as much as the send and the
    receive together. ``data_received`` gets a memoryview that is only valid during the call; the
    decoder copies what it keeps.

    Keepalive: when nothing has been received for ``keepalive_interval`` s, send a PING; when still nothing
    has been received ``keepalive_timeout`` s after it, the peer is dead: abort the connection (pending
    calls fail with ``unavailable``). Any received byte counts as a sign of life, so a busy connection never
    pings. The timer is a single rescheduled ``call_at`` per connection.
    """

    def __init__(self, *, keepalive_interval: float, keepalive_timeout: float,
                 max_frame_size: int = DEFAULT_MAX_FRAME) -> None:
        self.keepalive_interval = keepalive_interval
        self.keepalive_timeout = keepalive_timeout
        self.max_frame_size = max_frame_size
        self.transport: asyncio.Transport | None = None
        self.decoder = FrameDecoder(HANDSHAKE_MAX_FRAME)
        self._encode = FrameEncoder(max_frame_size).encode
        self._write: Callable[[bytes], None] = _closed_write
        self._wbuf: list[bytes] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closed = False
        self._paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._last_rx = 0.0
        self._ping_at: float | None = None
        self._ka_handle: asyncio.TimerHandle | None = None
        self.peer_address = ""
        self._rbuf = bytearray(READ_BUFFER_SIZE)
        self._rview = memoryview(self._rbuf)

    # -- asyncio.Protocol -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are no asyncio.Transport
        self._write = transport.write
        self._loop = asyncio.get_running_loop()
        self._last_rx = self._loop.time()
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.peer_address = f"{peer[0]}:{peer[1]}"
        elif peer:
            self.peer_address = str(peer)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._rview

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self._rview[:nbytes])

    def data_received(self, data: bytes | memoryview) -> None:
        raise NotImplementedError

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._write = _closed_write
        if self._ka_handle is not None:
            self._ka_handle.cancel()
            self._ka_handle = None
        self._wake_drainers(exc or ConnectionResetError("connection lost"))

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._wake_drainers(None)

    def eof_received(self) -> bool:
        return False  # close our side too

    # -- sending ----------------------------------------------------------------------------------

    def send(self, frame: list[Any]) -> None:
        """Encode and write one frame (raises TypeError/ValueError for a payload msgpack cannot encode).

        Frames sent during one event-loop iteration leave in one write: the first one corks the
        connection and schedules the uncork. Under load many transactions talk to the same peer at once
        (PREPAREs, COMMITs, their answers); a syscall per frame was a sixth of a node's CPU."""
        data = self._encode(frame)
        if self._wbuf is None and not self.closed and self._loop is not None:
            self._wbuf = [data]
            self._write = self._wbuf.append
            self._loop.call_soon(self.uncork)
        else:
            self._write(data)

    def send_credit(self, rid: int, n: int) -> None:
        self._write(self._encode([CREDIT, rid, n]))

    async def drain(self) -> None:
        """Wait while the transport's write buffer is above its high-water mark."""
        if self._paused and not self.closed:
            fut = self._loop.create_future()  # type: ignore[union-attr]
            self._drain_waiters.append(fut)
            await fut

    def _wake_drainers(self, exc: BaseException | None) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for w in waiters:
            if not w.done():
                if exc is None:
                    w.set_result(None)
                else:
                    w.set_exception(RpcError("unavailable", f"connection lost: {exc}"))

    def cork(self) -> None:
        """Collect writes until ``uncork`` (one syscall for the answers to a batch of requests)."""
        if self._wbuf is None and not self.closed:
            self._wbuf = []
            self._write = self._wbuf.append

    def uncork(self) -> None:
        buf, self._wbuf = self._wbuf, None
        if buf is None or self.closed or self.transport is None:
            return
        self._write = self.transport.write
        if buf:
            self.transport.write(buf[0] if len(buf) == 1 else b"".join(buf))

    def close(self) -> None:
        """Flush what is buffered and close."""
        if self.transport is not None and not self.closed:
            self.uncork()
            self.transport.close()

    def abort(self, reason: str = "") -> None:
        if reason:
            log.warning("rpc connection to %s aborted: %s", self.peer_address or "?", reason)
        if self.transport is not None and not self.closed:
            self.transport.abort()

    # -- receiving --------------------------------------------------------------------------------

    def feed_frames(self, data: bytes) -> list[list[Any]] | None:
        """Decode ``data``; on a protocol error abort the connection and return None."""
        try:
            return self.decoder.feed(data)
        except ProtocolError as exc:
            self.abort(f"protocol error: {exc}")
            return None

    # -- keepalive --------------------------------------------------------------------------------

    def start_keepalive(self) -> None:
        if self.keepalive_interval > 0 and self._loop is not None and not self.closed:
            self._ka_handle = self._loop.call_at(self._last_rx + self.keepalive_interval, self._keepalive)

    def _keepalive(self) -> None:
        self._ka_handle = None
        if self.closed:
            return
        loop = self._loop
        assert loop is not None
        now = loop.time()
        if self._ping_at is not None:
            if self._last_rx >= self._ping_at:
                self._ping_at = None  # answered (any traffic counts)
            elif now - self._ping_at >= self.keepalive_timeout:
                self.abort(f"no answer to keepalive ping within {self.keepalive_timeout}s")
                self.on_dead()
                return
            else:
                self._ka_handle = loop.call_at(self._ping_at + self.keepalive_timeout, self._keepalive)
                return
        if now - self._last_rx >= self.keepalive_interval:
            self._ping_at = now
            self._write(self._encode([PING, 0]))
            self._ka_handle = loop.call_at(now + self.keepalive_timeout, self._keepalive)
        else:
            self._ka_handle = loop.call_at(self._last_rx + self.keepalive_interval, self._keepalive)

    def on_dead(self) -> None:
        """Hook: the keepalive declared the peer dead (the transport is already aborted)."""


def _closed_write(data: bytes) -> None:
    """Writes after the connection is gone are dropped (the calls they belong to fail on their own)."""


INF = math.inf
