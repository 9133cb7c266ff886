"""The asyncio protocol base both sides of a connection build on: frame decoding, writes with transport
back-pressure and corking, keepalive.

Import from ``marmot.cluster.rpc``; ``client.py`` and ``server.py`` subclass ``Connection``.

Threading: everything here runs on one event loop thread; nothing is locked.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, cast

from .call import RpcError
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

READ_BUFFER_SIZE = 256 * 1024


class Connection(asyncio.BufferedProtocol):
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

    def __init__(
        self, *, keepalive_interval: float, keepalive_timeout: float, max_frame_size: int = DEFAULT_MAX_FRAME
    ) -> None:
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
        # a stream transport; cast, not isinstance: uvloop's transports are no asyncio.Transport subclass
        stream = cast(asyncio.Transport, transport)
        self.transport = stream
        self._write = stream.write
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
            assert self._loop is not None  # pause_writing comes after connection_made
            fut = self._loop.create_future()
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

    def feed_frames(self, data: bytes | memoryview) -> list[list[Any]] | None:
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
