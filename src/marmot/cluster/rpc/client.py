"""Client side of the node-to-node RPC: ``RpcClient`` (one peer) and ``ClientPool`` (all peers).

Import from ``marmot.cluster.rpc``. The path of a unary call: ``RpcClient.call`` takes the ready
connection (or connects: TCP, optional TLS, preamble, mutual HMAC handshake), picks the next request id,
writes one REQUEST frame, parks a future in ``_pending`` under that id and waits; ``data_received``
resolves the future when the RESPONSE or ERROR with that id arrives. Many calls share one connection.

Connection management: the first call connects (lazily); a lost connection fails the calls in flight
with ``unavailable`` and the next call reconnects at once. A failed connect attempt starts an exponential
backoff (``initial_backoff`` doubling up to ``max_backoff``, with jitter): calls made during the backoff
fail immediately with the error of the last attempt instead of piling up (gRPC's "fail fast"); the first
call after it tries again. A successful handshake resets the backoff.

Deadlines: each call's ``timeout`` travels in the request (the server cancels the handler when it
passes) and is enforced here by one sweeper timer per connection (every ``DEADLINE_GRANULARITY``), which
fails overdue calls with ``deadline`` and sends CANCEL. A caller task cancelled while waiting sends CANCEL
as well. Streams have one timer per stream.

An ``RpcClient`` belongs to the event loop it first connected on.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
import random
import ssl as _ssl
import weakref
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any

from .call import AuthError, RpcError
from .frames import (
    AUTH,
    CANCEL,
    CHUNK,
    CREDIT,
    CSTREAM,
    DEFAULT_MAX_FRAME,
    END,
    ERROR,
    HELLO,
    PING,
    PONG,
    REQUEST,
    RESPONSE,
    SSTREAM,
    WELCOME,
)
from .handshake import NONCE_SIZE, PREAMBLE, check_node_id, client_mac, server_mac
from .protocol import Connection
from .streams import STREAM_WINDOW, RecvStream, SendWindow

_HELLO_WAIT, _WELCOME_WAIT, _READY = range(3)
DEADLINE_GRANULARITY = 0.01
"""Seconds between two checks of a connection's unary deadlines (the server checks each one exactly)."""


def _retrieve(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


def split_address(address: str) -> tuple[str, int]:
    """``"host:port"`` or ``"[v6]:port"`` → (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"RPC address must be host:port, got {address!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


class _ClientConnection(Connection):
    def __init__(self, client: RpcClient) -> None:
        super().__init__(
            keepalive_interval=client.keepalive_interval,
            keepalive_timeout=client.keepalive_timeout,
            max_frame_size=client.max_frame_size,
        )
        self._client = client
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[None] = loop.create_future()
        self.ready.add_done_callback(_retrieve)
        self.lost: asyncio.Future[None] = loop.create_future()
        self._state = _HELLO_WAIT
        self._cnonce = b""
        self._snonce = b""
        self.remote_node_id: int | None = None
        self._next_rid = 1
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._deadlines: dict[int, tuple[float, str, float]] = {}  # rid -> (deadline, method, timeout)
        self._sweeper: asyncio.TimerHandle | None = None
        self._recv: dict[int, RecvStream] = {}
        self._windows: dict[int, SendWindow] = {}

    # -- connection life --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._write(PREAMBLE)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        reason = f"connection to {self._client.address} lost" + (f": {exc}" if exc else "")
        if not self.ready.done():
            self.ready.set_exception(RpcError("unavailable", reason))
        err = RpcError("unavailable", reason)
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(err.copy())
        recv, self._recv = self._recv, {}
        for rs in recv.values():
            rs.fail(err)
        windows, self._windows = self._windows, {}
        for sw in windows.values():
            sw.abort()
        if not self.lost.done():
            self.lost.set_result(None)
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        self._client._connection_lost(self)

    def on_dead(self) -> None:
        self._client._connection_lost(self)

    # -- receiving --------------------------------------------------------------------------------

    def data_received(self, data: bytes | memoryview) -> None:
        assert self._loop is not None  # data arrives only after connection_made
        self._last_rx = self._loop.time()
        frames = self.feed_frames(data)
        if not frames:
            return
        if self._state != _READY:
            frames = self._handshake(frames)
        pending = self._pending
        for f in frames:
            t = f[0]
            if t == RESPONSE:
                fut = pending.pop(f[1], None)
                if fut is not None and not fut.done():
                    fut.set_result(f[2])
                if self._windows:
                    sw = self._windows.pop(f[1], None)
                    if sw is not None:
                        sw.abort()
            else:
                self._on_other(f)

    def _on_other(self, f: list[Any]) -> None:
        t, rid = f[0], f[1]
        if t == CHUNK:
            rs = self._recv.get(rid)
            if rs is not None and not rs.push(f[2]):
                self.cancel(rid)
        elif t == END:
            rs = self._recv.pop(rid, None)
            if rs is not None:
                rs.end()
        elif t == ERROR:
            err = AuthError(f[3]) if f[2] == "auth" else RpcError(f[2], f[3])
            fut = self._pending.pop(rid, None)
            if fut is not None and not fut.done():
                fut.set_exception(err)
            rs = self._recv.pop(rid, None)
            if rs is not None:
                rs.fail(err)
            sw = self._windows.pop(rid, None)
            if sw is not None:
                sw.abort()
        elif t == CREDIT:
            sw = self._windows.get(rid)
            if f[2] <= 0:
                self.abort("CREDIT frame with a non-positive count")
            elif sw is not None:
                sw.grant(f[2])
        elif t == PING:
            self.send([PONG, rid])
        elif t == PONG:
            pass
        else:
            self.abort(f"unexpected frame type {t} from a server")

    def _handshake(self, frames: list[list[Any]]) -> list[list[Any]]:
        """Consume handshake frames; return the frames that follow the handshake."""
        client = self._client
        for i, f in enumerate(frames):
            t = f[0]
            if t == HELLO and self._state == _HELLO_WAIT:
                self._snonce = f[2]
                if not NONCE_SIZE <= len(self._snonce) <= 64:
                    self._refuse(RpcError("protocol", "malformed HELLO frame"))
                    return []
                self._cnonce = os.urandom(NONCE_SIZE)
                mac = client_mac(client._secret, self._snonce, self._cnonce, client.node_id)
                self.send([AUTH, 0, client.node_id, self._cnonce, mac])
                self._state = _WELCOME_WAIT
            elif t == WELCOME and self._state == _WELCOME_WAIT:
                node_id, mac = f[2], f[3]
                if not (0 <= node_id < 2**64) or not hmac.compare_digest(
                    mac, server_mac(client._secret, self._cnonce, self._snonce, node_id)
                ):
                    self._refuse(AuthError("invalid cluster secret (the server could not prove it knows it)"))
                    return []
                self.remote_node_id = node_id
                self._state = _READY
                self.decoder.max_frame_size = self.max_frame_size
                self.start_keepalive()
                self.ready.set_result(None)
                return frames[i + 1 :]
            elif t == ERROR and f[1] == 0:
                self._refuse(AuthError(f[3]) if f[2] == "auth" else RpcError(f[2], f[3]))
                return []
            else:
                self._refuse(RpcError("protocol", f"unexpected frame type {t} during the handshake"))
                return []
        return []

    def _refuse(self, err: RpcError) -> None:
        if not self.ready.done():
            self.ready.set_exception(err)
        self.abort()

    # -- calls ------------------------------------------------------------------------------------

    def cancel(self, rid: int) -> None:
        """Tell the server to stop working on ``rid`` and forget the call locally."""
        self._pending.pop(rid, None)
        self._recv.pop(rid, None)
        sw = self._windows.pop(rid, None)
        if sw is not None:
            sw.abort()
        self._write(self._encode([CANCEL, rid]))

    def _expire(self, rid: int, method: str, timeout: float) -> None:
        self._deadlines.pop(rid, None)
        fut = self._pending.pop(rid, None)
        if fut is not None and not fut.done():
            fut.set_exception(RpcError("deadline", f"{method}: no answer within {timeout}s"))
            self._write(self._encode([CANCEL, rid]))

    def start_sweeper(self) -> None:
        assert self._loop is not None  # calls are made on connected connections only
        self._sweeper = self._loop.call_later(DEADLINE_GRANULARITY, self._sweep)

    def _sweep(self) -> None:
        """Fail the unary calls whose deadline passed. One timer per connection, not one per call: a
        per-call ``call_later`` costs more than the rest of the client's work on a call."""
        self._sweeper = None
        deadlines = self._deadlines
        if not deadlines or self.closed:
            return
        assert self._loop is not None  # the sweeper was scheduled on it
        now = self._loop.time()
        expired = [(rid, d) for rid, d in deadlines.items() if d[0] <= now]
        for rid, (_, method, timeout) in expired:
            self._expire(rid, method, timeout)
        self.start_sweeper()

    def open_server_stream(self, method: str, payload: Any, timeout: float | None, window: int) -> RecvStream:
        rid = self._next_rid
        self._next_rid = rid + 1
        data = self._encode([SSTREAM, rid, method, payload, timeout, window])
        rs = RecvStream(self, rid, window)
        self._recv[rid] = rs
        self._write(data)
        return rs

    async def client_stream(
        self, method: str, chunks: AsyncIterable[Any] | Iterable[Any], timeout: float | None
    ) -> Any:
        rid = self._next_rid
        self._next_rid = rid + 1
        assert self._loop is not None  # calls are made on connected connections only
        fut = self._loop.create_future()
        fut.add_done_callback(_retrieve)
        sw = SendWindow(STREAM_WINDOW)
        self._pending[rid] = fut
        self._windows[rid] = sw
        self._write(self._encode([CSTREAM, rid, method, timeout]))
        cm = asyncio.timeout(timeout)
        try:
            async with cm:
                await self._send_chunks(rid, chunks, sw, fut)
                return await fut
        except TimeoutError:
            if cm.expired():
                self.cancel(rid)
                raise RpcError("deadline", f"{method}: not finished within {timeout}s") from None
            raise
        except BaseException:
            if not fut.done():
                self.cancel(rid)
            raise
        finally:
            self._pending.pop(rid, None)
            self._windows.pop(rid, None)

    async def _send_chunks(
        self, rid: int, chunks: AsyncIterable[Any] | Iterable[Any], sw: SendWindow, fut: asyncio.Future[Any]
    ) -> None:
        async def from_sync(it: Iterable[Any]) -> AsyncIterator[Any]:
            for x in it:
                yield x

        source = chunks if hasattr(chunks, "__aiter__") else from_sync(chunks)
        async for chunk in source:
            if sw.credits <= 0:
                await sw.wait()
            if sw.aborted or fut.done() or self.closed:
                return
            sw.credits -= 1
            if self._paused:
                await self.drain()
            self._write(self._encode([CHUNK, rid, chunk]))
        if not fut.done():
            self._write(self._encode([END, rid]))


class ServerStreamCall:
    """The async iterator returned by ``RpcClient.server_stream``: one chunk per item.

    It opens the call on first iteration. Leaving the loop early (``break``) or ``aclose()`` cancels the
    call on the server; so does ``async with client.server_stream(...) as s``. The timeout covers the
    whole stream: past it, iteration raises ``RpcError("deadline")``.
    """

    def __init__(
        self, client: RpcClient, method: str, payload: Any, timeout: float | None, window: int
    ) -> None:
        self._client = client
        self._method = method
        self._payload = payload
        self._timeout = timeout
        self._window = window
        self._conn: _ClientConnection | None = None
        self._stream: RecvStream | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._done = False

    def __aiter__(self) -> ServerStreamCall:
        return self

    async def __aenter__(self) -> ServerStreamCall:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def __anext__(self) -> Any:
        if self._stream is None:
            if self._done:
                raise StopAsyncIteration
            await self._open()
        assert self._stream is not None
        try:
            return await self._stream.__anext__()
        except (StopAsyncIteration, RpcError):
            self._finish(cancel=False)
            raise

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        conn = await self._client._connection(self._timeout)
        timeout = None if self._timeout is None else max(0.0, self._timeout - (loop.time() - start))
        self._conn = conn
        self._stream = conn.open_server_stream(self._method, self._payload, timeout, self._window)
        if timeout is not None:
            # a weak reference: the timer must not keep an abandoned iterator alive (its __del__ cancels)
            self._timer = loop.call_later(timeout, _expire_stream, weakref.ref(self))

    def _expire(self) -> None:
        self._timer = None
        if self._stream is not None and not self._stream.finished:
            self._stream.fail(
                RpcError("deadline", f"{self._method}: stream not finished within {self._timeout}s")
            )
            if self._conn is not None:
                self._conn.cancel(self._stream.rid)

    def _finish(self, cancel: bool) -> None:
        if self._done:
            return
        self._done = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._stream is not None and self._conn is not None:
            if cancel and not self._stream.finished:
                self._conn.cancel(self._stream.rid)
            else:
                self._conn._recv.pop(self._stream.rid, None)

    async def aclose(self) -> None:
        self._finish(cancel=True)

    def __del__(self) -> None:
        if not self._done and self._stream is not None:
            with contextlib.suppress(Exception):  # interpreter shutdown, loop closed
                self._finish(cancel=True)


def _expire_stream(ref: weakref.ref[ServerStreamCall]) -> None:
    call = ref()
    if call is not None:
        call._expire()


class RpcClient:
    """Calls to one peer node over one multiplexed connection (see the module docstring)."""

    def __init__(
        self,
        address: str,
        *,
        secret: str,
        node_id: int,
        ssl: _ssl.SSLContext | None = None,
        connect_timeout: float = 3.0,
        keepalive_interval: float = 10.0,
        keepalive_timeout: float = 3.0,
        max_backoff: float = 5.0,
        initial_backoff: float = 0.05,
        max_frame_size: int = DEFAULT_MAX_FRAME,
        stream_window: int = STREAM_WINDOW,
    ) -> None:
        self.address = address
        self.host, self.port = split_address(address)
        self._secret = secret.encode()
        self.node_id = check_node_id(node_id)
        self.ssl = ssl
        self.connect_timeout = connect_timeout
        self.keepalive_interval = keepalive_interval
        self.keepalive_timeout = keepalive_timeout
        self.max_backoff = max_backoff
        self.initial_backoff = initial_backoff
        self.max_frame_size = max_frame_size
        self.stream_window = stream_window
        self.remote_node_id: int | None = None
        self._conn: _ClientConnection | None = None
        self._connecting: asyncio.Task[_ClientConnection] | None = None
        self._backoff = 0.0
        self._retry_at = 0.0
        self._last_error: RpcError | None = None
        self._closed = False

    def reset_backoff(self) -> None:
        """Forget the reconnect backoff (see ``ClientPool.reset_backoff``)."""
        self._backoff = 0.0
        self._retry_at = 0.0

    def __repr__(self) -> str:
        return f"<RpcClient {self.address} node={self.remote_node_id} connected={self.connected}>"

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.closed

    # -- calls ------------------------------------------------------------------------------------

    async def call(self, method: str, payload: Any = None, timeout: float | None = 5.0) -> Any:
        """One request, one answer. Raises ``RpcError`` (``.code`` says why), ``TypeError``/``ValueError``
        when ``payload`` cannot be encoded or exceeds the frame size limit. The timeout is enforced here
        with a granularity of ``DEADLINE_GRANULARITY`` (10 ms) and exactly by the server."""
        conn = self._conn
        if conn is None or conn.closed:
            running = asyncio.get_running_loop()
            start = running.time()
            conn = await self._connection(timeout)
            if timeout is not None:
                timeout = max(0.0, timeout - (running.time() - start))
        # The body of a unary call, kept in this one coroutine: it is the hot path of 2PC.
        rid = conn._next_rid
        conn._next_rid = rid + 1
        data = conn._encode([REQUEST, rid, method, payload, timeout])
        loop = conn._loop
        assert loop is not None  # _connection() hands out connected connections only
        fut = loop.create_future()
        pending = conn._pending
        pending[rid] = fut
        if timeout is not None:
            conn._deadlines[rid] = (loop.time() + timeout, method, timeout)
            if conn._sweeper is None:
                conn.start_sweeper()
        conn._write(data)
        try:
            return await fut
        except asyncio.CancelledError:
            if pending.pop(rid, None) is not None:
                conn._write(conn._encode([CANCEL, rid]))
            raise
        finally:
            if timeout is not None:
                conn._deadlines.pop(rid, None)

    def start_call(
        self,
        method: str,
        payload: Any = None,
        timeout: float = 5.0,
        fut: asyncio.Future[Any] | None = None,
    ) -> asyncio.Future[Any] | None:
        """``call`` for a caller that waits on several peers at once without a task per call (a read
        barrier): the request is written *and flushed* now, and the future that ``data_received``
        resolves is returned (a task's first step and the connection's cork would each cost an
        event-loop iteration, milliseconds under load). None when not connected: use ``call``. Cancelling
        the future sends CANCEL; its deadline is enforced like ``call``'s. ``fut``: the caller's own future
        to resolve (e.g. a subclass that tells its waiter at once), else a new one."""
        conn = self._conn
        if conn is None or conn.closed or conn._loop is None:
            return None
        rid = conn._next_rid
        conn._next_rid = rid + 1
        data = conn._encode([REQUEST, rid, method, payload, timeout])
        loop = conn._loop
        if fut is None:
            fut = loop.create_future()
        pending = conn._pending
        pending[rid] = fut
        conn._deadlines[rid] = (loop.time() + timeout, method, timeout)
        if conn._sweeper is None:
            conn.start_sweeper()
        conn._write(data)
        conn.uncork()

        def done(f: asyncio.Future[Any]) -> None:
            conn._deadlines.pop(rid, None)
            if f.cancelled() and pending.pop(rid, None) is not None and not conn.closed:
                conn._write(conn._encode([CANCEL, rid]))

        fut.add_done_callback(done)
        return fut

    def server_stream(
        self, method: str, payload: Any = None, timeout: float | None = 30.0, window: int | None = None
    ) -> ServerStreamCall:
        """``async for chunk in client.server_stream(...)``; at most ``window`` chunks in flight."""
        return ServerStreamCall(self, method, payload, timeout, window or self.stream_window)

    async def client_stream(
        self, method: str, chunks: AsyncIterable[Any] | Iterable[Any], timeout: float | None = 30.0
    ) -> Any:
        """Send ``chunks`` (an async or plain iterable) as one call; return the handler's answer. The
        sender waits for flow-control credit, so a fast producer never runs ahead of the server."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        conn = await self._connection(timeout)
        if timeout is not None:
            timeout = max(0.0, timeout - (loop.time() - start))
        return await conn.client_stream(method, chunks, timeout)

    async def close(self) -> None:
        """Close the connection; calls in flight fail with ``unavailable``. Further calls fail too."""
        self._closed = True
        if self._connecting is not None:
            self._connecting.cancel()
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            conn.abort()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(conn.lost), 1.0)

    # -- connection management --------------------------------------------------------------------

    async def _connection(self, timeout: float | None) -> _ClientConnection:
        conn = self._conn
        if conn is not None and not conn.closed:
            return conn
        if self._closed:
            raise RpcError("unavailable", f"client for {self.address} is closed")
        task = self._connecting
        if task is None:
            loop = asyncio.get_running_loop()
            if self._last_error is not None and loop.time() < self._retry_at:
                raise self._last_error.copy()
            task = self._connecting = loop.create_task(self._connect())
            task.add_done_callback(_retrieve)
        waiter = asyncio.shield(task)
        # if the deadline and a failed connect land in the same loop iteration, wait_for gives up on
        # ``waiter`` after it took the error: mark it retrieved (seen once in a chaos run's node log)
        waiter.add_done_callback(_retrieve)
        try:
            return await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            raise RpcError("deadline", f"not connected to {self.address} within {timeout}s") from None

    async def _connect(self) -> _ClientConnection:
        loop = asyncio.get_running_loop()
        conn: _ClientConnection | None = None
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: _ClientConnection(self),
                    self.host,
                    self.port,
                    ssl=self.ssl,
                    server_hostname=self.host if self.ssl is not None else None,
                )
                await conn.ready
        except BaseException as exc:
            if conn is not None:
                conn.abort()
            if isinstance(exc, asyncio.CancelledError):
                self._connecting = None
                raise
            if isinstance(exc, RpcError) and exc.code in ("auth", "protocol"):
                err = exc
            elif isinstance(exc, TimeoutError):
                err = RpcError(
                    "unavailable",
                    f"cannot connect to {self.address}: no handshake within {self.connect_timeout}s",
                )
            elif isinstance(exc, ConnectionRefusedError):  # asyncio says "Connect call failed (host, port)"
                err = RpcError("unavailable", f"cannot connect to {self.address}: connection refused")
            else:
                err = RpcError("unavailable", f"cannot connect to {self.address}: {exc}")
            self._backoff = min(
                self.max_backoff, self._backoff * 2 if self._backoff else self.initial_backoff
            )
            self._retry_at = loop.time() + self._backoff * random.uniform(0.8, 1.0)
            self._last_error = err
            self._connecting = None
            raise err from None
        self._backoff = 0.0
        self._last_error = None
        self._connecting = None
        if self._closed:
            conn.abort()
            raise RpcError("unavailable", f"client for {self.address} is closed")
        self._conn = conn
        self.remote_node_id = conn.remote_node_id
        return conn

    def _connection_lost(self, conn: _ClientConnection) -> None:
        if self._conn is conn:
            self._conn = None


class ClientPool:
    """One ``RpcClient`` per peer address, created on first use; all share our identity and TLS context.
    Extra keyword arguments go to every ``RpcClient``."""

    def __init__(
        self, *, secret: str, node_id: int, ssl: _ssl.SSLContext | None = None, **client_options: Any
    ) -> None:
        self.secret = secret
        self.node_id = check_node_id(node_id)
        self.ssl = ssl
        self.client_options = client_options
        self._clients: dict[str, RpcClient] = {}

    def get(self, address: str) -> RpcClient:
        client = self._clients.get(address)
        if client is None:
            client = self._clients[address] = RpcClient(
                address, secret=self.secret, node_id=self.node_id, ssl=self.ssl, **self.client_options
            )
        return client

    def reset_backoff(self, address: str) -> None:
        """The peer at ``address`` showed a sign of life (it gossiped to us): the next call connects at
        once instead of waiting out a reconnect backoff from when it was down."""
        client = self._clients.get(address)
        if client is not None:
            client.reset_backoff()

    async def discard(self, address: str) -> None:
        """Close and forget the client of ``address`` (a node left the cluster)."""
        client = self._clients.pop(address, None)
        if client is not None:
            await client.close()

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
