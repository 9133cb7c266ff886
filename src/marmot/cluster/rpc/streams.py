"""Flow control of streams: the sender's credit window and the receiver's bounded buffer.

Threading: everything here runs on the connection's event loop thread; nothing is locked.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any

from .call import RpcError

if TYPE_CHECKING:
    from .protocol import Connection

STREAM_WINDOW = 32
"""Default flow-control window of a stream, in chunks: a sender has at most this many chunks in flight
(sent, not yet consumed by the receiving application). The receiver of a client stream (the server)
grants this initial window implicitly; the receiver of a server stream states its window when opening."""


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

    def __init__(self, conn: Connection, rid: int, window: int) -> None:
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
