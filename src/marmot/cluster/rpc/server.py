"""Server side of the node-to-node RPC: ``RpcServerProtocol`` and ``serve_rpc``.

Import from ``marmot.cluster.rpc``. The path of a request: bytes arrive in ``data_received`` → the
``FrameDecoder`` yields frames → a REQUEST frame starts a task running the handler under the request's
deadline (``asyncio.timeout_at``) → the task writes RESPONSE or ERROR with the same request id. Requests
of one connection run concurrently; their answers go out in completion order.

Invariants:

* Nothing but the handshake is processed before the peer proved it knows the cluster secret; until then
  frames are limited to ``HANDSHAKE_MAX_FRAME`` bytes and the handshake must finish within
  ``handshake_timeout``.
* A handler's failure is that call's failure (``ERROR`` frame); the connection stays up. A protocol
  violation by the peer closes the connection (and cancels its handlers).
* Every running handler is in ``_tasks`` under its request id, so CANCEL, the deadline and connection
  loss all reach it.
"""

from __future__ import annotations

import asyncio
import contextvars
import hmac
import os
import ssl as _ssl
import types
from asyncio.tasks import _enter_task, _leave_task  # see _on_request
from typing import Any

from .call import INF, CallContext, RpcError
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
from .protocol import Connection, log
from .router import CLIENT_STREAM, SERVER_STREAM, UNARY, RpcRouter
from .streams import STREAM_WINDOW, RecvStream, SendWindow

_PREAMBLE_WAIT, _AUTH_WAIT, _READY, _REFUSED = range(4)
_ENCODE_ERRORS = (TypeError, ValueError, OverflowError)


class RpcServerProtocol(Connection):
    """One server connection. Created per connection by ``serve_rpc``, or by the shared cluster port.

    Shared-port use: the listener reads the first bytes of a connection, sees ``PREAMBLE``, creates
    ``RpcServerProtocol(router, secret=..., node_id=..., initial_data=bytes_read)``, calls
    ``transport.set_protocol(proto)`` and then ``proto.connection_made(transport)``. ``initial_data`` is
    processed inside ``connection_made``; do not feed it again through ``data_received``.
    """

    def __init__(
        self,
        router: RpcRouter,
        *,
        secret: str,
        node_id: int,
        initial_data: bytes = b"",
        keepalive_interval: float = 10.0,
        keepalive_timeout: float = 3.0,
        handshake_timeout: float = 5.0,
        max_frame_size: int = DEFAULT_MAX_FRAME,
    ) -> None:
        super().__init__(
            keepalive_interval=keepalive_interval,
            keepalive_timeout=keepalive_timeout,
            max_frame_size=max_frame_size,
        )
        self.router = router
        self._methods = router.methods
        self._urgent = router.urgent
        self._secret = secret.encode()
        self.node_id = check_node_id(node_id)
        self.peer_node_id: int | None = None
        self.handshake_timeout = handshake_timeout
        self._initial = bytes(initial_data)
        self._state = _PREAMBLE_WAIT
        self._pre = b""
        self._nonce = b""
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._spare: _Spare | None = None
        self._recv: dict[int, RecvStream] = {}
        self._windows: dict[int, SendWindow] = {}
        self._hs_handle: asyncio.TimerHandle | None = None

    # -- connection life --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.router.connections.add(self)
        assert self._loop is not None
        self._hs_handle = self._loop.call_later(self.handshake_timeout, self._handshake_expired)
        if self._initial:
            data, self._initial = self._initial, b""
            self.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.router.connections.discard(self)
        if self._hs_handle is not None:
            self._hs_handle.cancel()
            self._hs_handle = None
        for task in self._tasks.values():
            task.cancel()
        if self._spare is not None:
            self._spare.wake.cancel()
        for sw in self._windows.values():
            sw.abort()

    def _handshake_expired(self) -> None:
        self._hs_handle = None
        if self._state != _READY:
            self.abort(f"no RPC handshake within {self.handshake_timeout}s")

    # -- receiving --------------------------------------------------------------------------------

    def data_received(self, data: bytes | memoryview) -> None:
        assert self._loop is not None  # data arrives only after connection_made
        self._last_rx = self._loop.time()
        if self._state != _READY:
            self._handshake_data(data)
            return
        frames = self.feed_frames(data)
        if not frames:
            return
        if len(frames) == 1:
            f = frames[0]
            if f[0] == REQUEST:
                self._on_request(f[1], f[2], f[3], f[4])
            else:
                self._on_other(f)
            return
        self.cork()
        try:
            for f in frames:
                if f[0] == REQUEST:
                    self._on_request(f[1], f[2], f[3], f[4])
                else:
                    self._on_other(f)
        finally:
            self.uncork()

    def _handshake_data(self, data: bytes | memoryview) -> None:
        if self._state == _REFUSED:
            return
        if self._state == _PREAMBLE_WAIT:
            pre = self._pre + bytes(data)
            n = len(PREAMBLE)
            if len(pre) < n:
                if not PREAMBLE.startswith(pre):
                    self.abort("not an RPC connection (bad preamble)")
                self._pre = pre
                return
            if pre[:n] != PREAMBLE:
                self.abort("not an RPC connection (bad preamble)")
                return
            data, self._pre = pre[n:], b""
            self._nonce = os.urandom(NONCE_SIZE)
            self.send([HELLO, 0, self._nonce])
            self._state = _AUTH_WAIT
            if not data:
                return
        frames = self.feed_frames(data)
        if not frames:
            return
        for i, f in enumerate(frames):
            if f[0] != AUTH:
                self.abort(f"expected AUTH frame, got type {f[0]}")
                return
            if not self._authenticate(f[2], f[3], f[4]):
                return
            for g in frames[i + 1 :]:
                if g[0] == REQUEST:
                    self._on_request(g[1], g[2], g[3], g[4])
                else:
                    self._on_other(g)
            return

    def _authenticate(self, peer_id: int, cnonce: bytes, mac: bytes) -> bool:
        if not (NONCE_SIZE <= len(cnonce) <= 64 and 0 <= peer_id < 2**64):
            self.abort("malformed AUTH frame")
            return False
        if not hmac.compare_digest(mac, client_mac(self._secret, self._nonce, cnonce, peer_id)):
            log.warning(
                "rpc: refused connection from %s (claims node %d): invalid cluster secret",
                self.peer_address,
                peer_id,
            )
            self.send([ERROR, 0, "auth", "invalid cluster secret"])
            self._state = _REFUSED
            self.close()
            return False
        self.peer_node_id = peer_id
        self.send([WELCOME, 0, self.node_id, server_mac(self._secret, cnonce, self._nonce, self.node_id)])
        self._state = _READY
        self.decoder.max_frame_size = self.max_frame_size
        if self._hs_handle is not None:
            self._hs_handle.cancel()
            self._hs_handle = None
        self.start_keepalive()
        return True

    def _on_other(self, f: list[Any]) -> None:
        t, rid = f[0], f[1]
        if t == CHUNK:
            rs = self._recv.get(rid)
            if rs is not None and not rs.push(f[2]):
                self._fail_call(rid, "protocol", "more chunks than the flow-control window allows")
        elif t == END:
            rs = self._recv.get(rid)
            if rs is not None:
                rs.end()
        elif t == CREDIT:
            sw = self._windows.get(rid)
            if f[2] <= 0:
                self.abort("CREDIT frame with a non-positive count")
            elif sw is not None:
                sw.grant(f[2])
        elif t == CANCEL:
            task = self._tasks.get(rid)
            if task is not None:
                task.cancel()
        elif t == SSTREAM:
            self._on_server_stream(rid, f[2], f[3], f[4], f[5])
        elif t == CSTREAM:
            self._on_client_stream(rid, f[2], f[3])
        elif t == PING:
            self.send([PONG, rid])
        elif t == PONG:
            pass
        else:
            self.abort(f"unexpected frame type {t} from a client")

    # -- calls ------------------------------------------------------------------------------------

    def _lookup(self, rid: int, method: str, kind: str) -> Any:
        entry = self._methods.get(method)
        if entry is None:
            self.send([ERROR, rid, "unknown_method", f"no RPC method {method!r}"])
            return None
        if entry[0] != kind:
            self.send([ERROR, rid, "unknown_method", f"{method!r} is a {entry[0]} method, not {kind}"])
            return None
        if rid in self._tasks or rid == 0:
            self.abort(f"request id {rid} reused while in use")
            return None
        return entry[1]

    def _context(self, timeout: float | None) -> CallContext:
        # requests are read only once the handshake is done: the loop and the peer's id are known
        assert self._loop is not None and self.peer_node_id is not None
        deadline = INF if timeout is None else self._loop.time() + timeout
        return CallContext(self.peer_node_id, self.peer_address, deadline)

    def _on_request(self, rid: int, method: str, payload: Any, timeout: float | None) -> None:
        fn = self._lookup(rid, method, UNARY)
        if fn is None:
            return
        ctx = self._context(timeout)
        loop = self._loop
        assert loop is not None  # (_context checked it)
        try:
            coro = fn(payload, ctx)
        except Exception as exc:
            self._reply_exception(rid, exc)
            return
        if type(coro) is not types.CoroutineType:
            if not hasattr(coro, "__await__"):
                self._reply(rid, coro)  # a plain function answered inline
                if method in self._urgent:
                    self.uncork()
                return
            coro = _await(coro)
        if asyncio.current_task(loop) is not None:  # fed from inside a task (tests): no eager start
            self._tasks[rid] = loop.create_task(self._run_unary(rid, coro, ctx))
            return
        # Eager start: take the handler's first step right here, with the connection's spare task marked as
        # the current task. Most handlers finish in that step: no task was created and no loop iteration
        # passed. A handler that suspends is handed to the spare, which drives it from then on.
        sp = self._spare
        if sp is None or sp.wake.done() or sp.task.cancelling():
            sp = self._new_spare()
        task = sp.task
        cvars = contextvars.copy_context()
        outcome: BaseException | None = None
        _enter_task(loop, task)
        try:
            yielded = cvars.run(coro.send, None)
        except BaseException as exc:  # StopIteration: it returned
            outcome = exc
        finally:
            _leave_task(loop, task)
        if outcome is not None:
            self._finish_unary(rid, outcome, False)
            if method in self._urgent:
                self.uncork()  # the answer leaves now, not at the next loop iteration
            return
        if sp.wake.done() or task.cancelling():
            # The handler cancelled its own (spare) task in its first step: a fresh spare delivers
            # that cancellation at the handler's first await, as a task would have.
            sp = self._new_spare()
            sp.exc = asyncio.CancelledError()
        sp.job = (rid, coro, yielded, cvars)
        self._spare = None
        sp.wake.set_result(None)
        self._tasks[rid] = task
        if timeout is not None:
            sp.timer = loop.call_at(ctx.deadline, _expire_spare, sp)

    def _new_spare(self) -> _Spare:
        assert self._loop is not None  # made for a request, after connection_made
        sp = _Spare(self._loop)
        sp.task = self._loop.create_task(self._spare_main(sp))
        sp.task.add_done_callback(lambda _t: self._spare_done(sp))
        self._spare = sp
        return sp

    async def _spare_main(self, sp: _Spare) -> None:
        """Body of a spare task: wait for a suspended handler, drive it to its end, answer, exit.

        Why a spare instead of a task per call: the handler must see the task that will drive it as the
        current task from its first step on (``asyncio.timeout`` and ``TaskGroup`` capture it), but
        creating a task per call costs more than everything else the server does for a call.
        """
        exc = sp.exc
        try:
            await sp.wake
        except asyncio.CancelledError:
            if sp.job is None:
                return  # idle spare of a closed connection
            exc = asyncio.CancelledError()  # cancelled between hand-over and its first step
        assert sp.job is not None  # the job is handed over before wake is set
        rid, coro, yielded, cvars = sp.job
        outcome = await _drive(coro, yielded, cvars, exc)
        sp.job = None
        self._end_spare_call(sp, rid)
        self._finish_unary(rid, outcome, sp.deadline_hit)

    def _end_spare_call(self, sp: _Spare, rid: int) -> None:
        if self._tasks.get(rid) is sp.task:
            del self._tasks[rid]
        if sp.timer is not None:
            sp.timer.cancel()
            sp.timer = None

    def _spare_done(self, sp: _Spare) -> None:
        if self._spare is sp:
            self._spare = None
        if sp.job is not None:  # cancelled before its first step: the handler never resumed
            rid, coro, _, _ = sp.job
            sp.job = None
            coro.close()
            self._end_spare_call(sp, rid)
            self._finish_unary(rid, asyncio.CancelledError(), sp.deadline_hit)

    def _on_server_stream(
        self, rid: int, method: str, payload: Any, timeout: float | None, window: int
    ) -> None:
        fn = self._lookup(rid, method, SERVER_STREAM)
        if fn is None:
            return
        if window <= 0:
            self.abort("SSTREAM frame with a non-positive window")
            return
        sw = SendWindow(window)
        self._windows[rid] = sw
        ctx = self._context(timeout)
        assert self._loop is not None  # (_context checked it)
        self._tasks[rid] = self._loop.create_task(self._run_server_stream(rid, fn, payload, ctx, sw))

    def _on_client_stream(self, rid: int, method: str, timeout: float | None) -> None:
        fn = self._lookup(rid, method, CLIENT_STREAM)
        if fn is None:
            return
        rs = RecvStream(self, rid, STREAM_WINDOW)
        self._recv[rid] = rs
        ctx = self._context(timeout)
        assert self._loop is not None  # (_context checked it)
        self._tasks[rid] = self._loop.create_task(self._run_client_stream(rid, fn, rs, ctx))

    def _fail_call(self, rid: int, code: str, message: str) -> None:
        task = self._tasks.get(rid)
        if task is not None:
            task.cancel()
        self.send([ERROR, rid, code, message])

    def _reply(self, rid: int, result: Any) -> None:
        try:
            self.send([RESPONSE, rid, result])
        except _ENCODE_ERRORS as exc:
            self.send([ERROR, rid, "handler", f"result cannot be sent: {type(exc).__name__}: {exc}"])

    def _reply_exception(self, rid: int, exc: BaseException) -> None:
        if isinstance(exc, RpcError):
            self.send([ERROR, rid, exc.code, exc.message])
        else:
            log.debug("rpc handler failed (request %d)", rid, exc_info=exc)
            self.send([ERROR, rid, "handler", f"{type(exc).__name__}: {exc}"])

    def _finish_unary(self, rid: int, outcome: BaseException, deadline_hit: bool) -> None:
        """Answer a unary call from how its handler coroutine ended (StopIteration = returned)."""
        if type(outcome) is StopIteration:
            self._reply(rid, outcome.value)
        elif isinstance(outcome, asyncio.CancelledError):
            # After a CANCEL frame or with the connection gone nobody reads this; a handler that
            # cancelled itself gets its caller an answer instead of a wait until the deadline.
            if deadline_hit:
                self.send([ERROR, rid, "deadline", "deadline passed on the server"])
            else:
                self.send([ERROR, rid, "cancelled", "the handler was cancelled"])
        elif isinstance(outcome, Exception):
            self._reply_exception(rid, outcome)
        else:
            raise outcome  # KeyboardInterrupt, SystemExit: not ours to swallow

    async def _answer(self, rid: int, awaitable: Any, deadline: float) -> None:
        """Await a unary or client-stream handler under its deadline; send its result or its error."""
        try:
            if deadline == INF:
                result = await awaitable
            else:
                cm = asyncio.timeout_at(deadline)
                try:
                    async with cm:
                        result = await awaitable
                except TimeoutError:
                    if cm.expired():
                        self.send([ERROR, rid, "deadline", "deadline passed on the server"])
                        return
                    raise
        except asyncio.CancelledError:
            self.send([ERROR, rid, "cancelled", "the handler was cancelled"])
            return
        except Exception as exc:
            self._reply_exception(rid, exc)
            return
        self._reply(rid, result)

    async def _run_unary(self, rid: int, coro: Any, ctx: CallContext) -> None:
        try:
            await self._answer(rid, coro, ctx.deadline)
        finally:
            self._tasks.pop(rid, None)

    async def _run_server_stream(
        self, rid: int, fn: Any, payload: Any, ctx: CallContext, sw: SendWindow
    ) -> None:
        agen: Any = None
        cm = asyncio.timeout_at(ctx.deadline if ctx.deadline != INF else None)
        try:
            async with cm:
                agen = fn(payload, ctx)
                it = agen.__aiter__()
                while True:
                    if sw.credits <= 0:
                        await sw.wait()
                        if sw.aborted:
                            return
                    try:
                        item = await it.__anext__()
                    except StopAsyncIteration:
                        break
                    sw.credits -= 1
                    if self._paused:
                        await self.drain()
                    try:
                        self.send([CHUNK, rid, item])
                    except _ENCODE_ERRORS as exc:
                        self.send(
                            [ERROR, rid, "handler", f"chunk cannot be sent: {type(exc).__name__}: {exc}"]
                        )
                        return
            self.send([END, rid])
        except TimeoutError as exc:
            if cm.expired():
                self.send([ERROR, rid, "deadline", "deadline passed on the server"])
            else:
                self._reply_exception(rid, exc)
        except asyncio.CancelledError:
            self.send([ERROR, rid, "cancelled", "the handler was cancelled"])
        except Exception as exc:
            self._reply_exception(rid, exc)
        finally:
            self._tasks.pop(rid, None)
            self._windows.pop(rid, None)
            aclose = getattr(agen, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception:
                    log.debug("rpc: closing a server-stream generator failed", exc_info=True)

    async def _run_client_stream(self, rid: int, fn: Any, rs: RecvStream, ctx: CallContext) -> None:
        try:
            try:
                awaitable = fn(rs, ctx)
            except Exception as exc:  # a handler that fails before it returns its coroutine
                self._reply_exception(rid, exc)
                return
            await self._answer(rid, awaitable, ctx.deadline)
        finally:
            self._tasks.pop(rid, None)
            self._recv.pop(rid, None)


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _expire_spare(sp: _Spare) -> None:
    sp.timer = None
    if sp.job is not None:
        sp.deadline_hit = True
        sp.task.cancel()


class _Spare:
    """A task waiting to take over a unary handler that suspends (see ``RpcServerProtocol._on_request``)."""

    __slots__ = ("deadline_hit", "exc", "job", "task", "timer", "wake")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.wake: asyncio.Future[None] = loop.create_future()
        self.job: tuple[int, Any, Any, contextvars.Context] | None = None
        self.task: asyncio.Task[None]  # set by RpcServerProtocol._new_spare right after construction
        self.timer: asyncio.TimerHandle | None = None
        self.deadline_hit = False
        self.exc: BaseException | None = None  # to throw into the handler first


@types.coroutine
def _drive(coro: Any, yielded: Any, cvars: contextvars.Context, exc: BaseException | None) -> Any:
    """Continue a started coroutine inside the current task: re-yield the future it is blocked on, then
    pass results and exceptions (cancellation) through, each step in the call's own context. Returns
    how the coroutine ended: ``StopIteration(value)`` or the exception it raised."""
    run = cvars.run
    if exc is not None:
        try:
            yielded = run(coro.throw, exc)
        except BaseException as e:
            return e
    while True:
        try:
            value = yield yielded
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as e:
            try:
                yielded = run(coro.throw, e)
            except BaseException as e2:
                return e2
        else:
            try:
                yielded = run(coro.send, value)
            except BaseException as e2:
                return e2


async def serve_rpc(
    router: RpcRouter,
    host: str,
    port: int,
    *,
    secret: str,
    node_id: int,
    ssl: _ssl.SSLContext | None = None,
    server_ssl: _ssl.SSLContext | None = None,
    **protocol_options: Any,
) -> asyncio.Server:
    """A standalone RPC listener (tests, benchmarks; a node serves RPC on its shared cluster port).

    ``ssl`` (alias ``server_ssl``) is a server-side ``SSLContext``: TLS is terminated by the listener and
    the RPC protocol runs inside it. ``protocol_options`` go to ``RpcServerProtocol`` (keepalive_interval,
    keepalive_timeout, handshake_timeout, max_frame_size). Stop with ``server.close()`` and
    ``router.close_connections()``.
    """
    check_node_id(node_id)
    ctx = ssl if ssl is not None else server_ssl
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: RpcServerProtocol(router, secret=secret, node_id=node_id, **protocol_options),
        host,
        port,
        ssl=ctx,
    )
