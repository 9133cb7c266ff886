"""Node-to-node RPC (marmot.cluster.rpc): calls, streams, deadlines, cancellation, auth, reconnect,
keepalive and TLS, all on 127.0.0.1 with real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import ipaddress
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from marmot.cluster.rpc import (
    PREAMBLE,
    STREAM_WINDOW,
    AuthError,
    CallContext,
    ClientPool,
    RpcClient,
    RpcError,
    RpcRouter,
    RpcServerProtocol,
    serve_rpc,
)
from marmot.cluster.rpc import frames as F
from marmot.cluster.rpc.frames import FrameDecoder, encode_frame
from marmot.cluster.rpc.handshake import client_mac, server_mac
from tests.support import run_async

SECRET = "s3cret"


@contextlib.asynccontextmanager
async def rpc_server(
    router: RpcRouter, *, secret: str = SECRET, node_id: int = 1, port: int = 0, **kw: Any
) -> AsyncIterator[tuple[asyncio.Server, str]]:
    server = await serve_rpc(router, "127.0.0.1", port, secret=secret, node_id=node_id, **kw)
    try:
        yield server, f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        router.close_connections()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def rpc_client(
    address: str, *, secret: str = SECRET, node_id: int = 2, **kw: Any
) -> AsyncIterator[RpcClient]:
    client = RpcClient(address, secret=secret, node_id=node_id, **kw)
    try:
        yield client
    finally:
        await client.close()


def echo_router() -> RpcRouter:
    router = RpcRouter()

    async def echo(payload: Any, ctx: CallContext) -> Any:
        return payload

    async def whoami(payload: Any, ctx: CallContext) -> Any:
        return {"peer": ctx.peer_node_id, "addr": ctx.peer_address, "remaining": ctx.remaining()}

    router.unary("Echo", echo)
    router.unary("WhoAmI", whoami)
    return router


class RawPeer:
    """A hand-driven client over asyncio streams, for protocol-level tests."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.decoder = FrameDecoder()
        self.frames: list[list[Any]] = []

    @classmethod
    async def connect(cls, address: str) -> RawPeer:
        host, port = address.rsplit(":", 1)
        return cls(*await asyncio.open_connection(host, int(port)))

    def send(self, frame: list[Any]) -> None:
        self.writer.write(encode_frame(frame))

    async def read_frame(self, timeout: float = 5.0) -> list[Any] | None:
        while not self.frames:
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
            if not data:
                return None
            self.frames += self.decoder.feed(data)
        return self.frames.pop(0)

    async def handshake(self, secret: str = SECRET, node_id: int = 9) -> list[Any] | None:
        self.writer.write(PREAMBLE)
        hello = await self.read_frame()
        assert hello is not None and hello[0] == F.HELLO
        cnonce = os.urandom(16)
        self.send([F.AUTH, 0, node_id, cnonce, client_mac(secret.encode(), hello[2], cnonce, node_id)])
        return await self.read_frame()

    async def closed(self, timeout: float = 5.0) -> bool:
        try:
            while await asyncio.wait_for(self.reader.read(65536), timeout):
                pass
        except (ConnectionError, TimeoutError):
            return False
        return True

    def close(self) -> None:
        self.writer.close()


# ------------------------------------------------------------------------------------------- basics


def test_unary_round_trip_and_identities():
    async def main() -> None:
        router = echo_router()
        async with rpc_server(router, node_id=11) as (_, addr), rpc_client(addr, node_id=22) as client:
            assert client.remote_node_id is None  # lazy: not connected yet
            payloads = [
                None,
                0,
                -5,
                2**63,
                1.25,
                "héllo",
                b"\x00\xff",
                [1, [2, [3]]],
                {"a": {1: b"x", 2: None}},
                True,
            ]
            for p in payloads:
                assert await client.call("Echo", p) == p
            assert client.remote_node_id == 11
            who = await client.call("WhoAmI", timeout=2.0)
            assert who["peer"] == 22
            assert who["addr"].startswith("127.0.0.1:")
            assert 1.0 < who["remaining"] <= 2.0
            assert (await client.call("WhoAmI", timeout=None))["remaining"] == float("inf")
            assert len(router.connections) == 1

    run_async(main())


def test_start_call_sends_at_once_and_resolves_the_callers_future():
    """``start_call`` (read barriers): no task and no cork on the way out; the answer resolves the future
    the caller passed (a subclass that reacts the moment it is set), a refusal and a deadline fail it,
    and an urgent method's answer (``answer_at_once``) arrives like any other."""
    seen: list[Any] = []

    class Noticing(asyncio.Future):  # type: ignore[type-arg]
        def set_result(self, result: Any, /) -> None:
            super().set_result(result)
            seen.append(result)  # synchronously, inside data_received

    async def main() -> None:
        router = echo_router()
        router.answer_at_once("Echo")

        async def slow(payload: Any, ctx: CallContext) -> Any:
            await asyncio.sleep(5)

        router.unary("Slow", slow)
        async with rpc_server(router) as (_, addr), rpc_client(addr) as client:
            assert client.start_call("Echo", 1) is None  # not connected yet: the caller uses call()
            assert await client.call("Echo", 0) == 0
            fut = Noticing()
            assert client.start_call("Echo", {"x": 1}, 2.0, fut) is fut
            assert await fut == {"x": 1} and seen == [{"x": 1}]
            plain = client.start_call("Echo", 7)
            assert plain is not None and await plain == 7
            refused = client.start_call("Nope", None, 2.0)
            assert refused is not None
            with pytest.raises(RpcError) as err:
                await refused
            assert err.value.code == "unknown_method"
            late = client.start_call("Slow", None, 0.05)
            assert late is not None
            with pytest.raises(RpcError) as err:
                await late
            assert err.value.code == "deadline"
            assert await client.call("Echo", "still fine") == "still fine"

    run_async(main())


def test_plain_function_and_awaitable_handlers():
    async def main() -> None:
        router = RpcRouter()
        loop = asyncio.get_running_loop()
        router.unary("Plain", lambda p, ctx: p * 2)

        def returns_future(p: Any, ctx: CallContext) -> asyncio.Future[Any]:
            fut = loop.create_future()
            loop.call_later(0.01, fut.set_result, p + 1)
            return fut

        router.unary("Future", returns_future)
        async with rpc_server(router) as (_, addr), rpc_client(addr) as client:
            assert await client.call("Plain", 21) == 42
            assert await client.call("Future", 1) == 2

    run_async(main())


def test_server_stream_round_trip_with_big_chunks():
    async def main() -> None:
        router = RpcRouter()

        async def numbers(n: int, ctx: CallContext) -> AsyncIterator[int]:
            for i in range(n):
                yield i

        async def blobs(spec: dict[str, int], ctx: CallContext) -> AsyncIterator[bytes]:
            for i in range(spec["count"]):
                yield bytes([i % 256]) * spec["size"]

        router.server_stream("Numbers", numbers)
        router.server_stream("Blobs", blobs)
        async with rpc_server(router) as (_, addr), rpc_client(addr) as client:
            assert [x async for x in client.server_stream("Numbers", 1000)] == list(range(1000))
            assert [x async for x in client.server_stream("Numbers", 0)] == []
            got = [b async for b in client.server_stream("Blobs", {"count": 20, "size": 512 * 1024})]
            assert len(got) == 20 and all(b == bytes([i]) * 512 * 1024 for i, b in enumerate(got))
            # the connection is still good for unary calls, and streams run concurrently with them
            s1 = client.server_stream("Numbers", 300, window=4)
            s2 = client.server_stream("Numbers", 300)
            a, b = await asyncio.gather(_collect(s1), _collect(s2))
            assert a == b == list(range(300))

    run_async(main())


async def _collect(stream: AsyncIterator[Any]) -> list[Any]:
    return [x async for x in stream]


def test_client_stream_round_trip():
    async def main() -> None:
        router = RpcRouter()

        async def total(chunks: AsyncIterator[Any], ctx: CallContext) -> dict[str, int]:
            n = size = 0
            async for c in chunks:
                n += 1
                size += len(c)
            return {"chunks": n, "bytes": size, "peer": ctx.peer_node_id}

        router.client_stream("Total", total)
        async with rpc_server(router) as (_, addr), rpc_client(addr, node_id=5) as client:

            async def gen() -> AsyncIterator[bytes]:
                for _ in range(50):
                    yield b"y" * 100_000

            assert await client.client_stream("Total", gen()) == {"chunks": 50, "bytes": 5_000_000, "peer": 5}
            assert await client.client_stream("Total", [b"ab", b"c"]) == {"chunks": 2, "bytes": 3, "peer": 5}
            assert await client.client_stream("Total", []) == {"chunks": 0, "bytes": 0, "peer": 5}

    run_async(main())


def test_thousand_concurrent_calls_multiplexed_on_one_connection():
    async def main() -> None:
        router = RpcRouter()

        async def slow_echo(p: int, ctx: CallContext) -> int:
            await asyncio.sleep((p * 7919 % 13) / 1000)  # answers come back out of order
            return p

        router.unary("SlowEcho", slow_echo)
        async with rpc_server(router) as (_, addr), rpc_client(addr) as client:
            results = await asyncio.gather(*(client.call("SlowEcho", i) for i in range(1000)))
            assert results == list(range(1000))
            assert len(router.connections) == 1

    run_async(main())


# ------------------------------------------------------------------------------ errors and deadlines


def test_handler_error_and_unknown_method_keep_the_connection():
    async def main() -> None:
        router = echo_router()

        async def boom(p: Any, ctx: CallContext) -> None:
            raise ValueError("no such row")

        async def conflict(p: Any, ctx: CallContext) -> None:
            await asyncio.sleep(0)
            raise RpcError("conflict", "row locked by txn 7")

        async def unencodable(p: Any, ctx: CallContext) -> Any:
            return object()

        async def stream(p: Any, ctx: CallContext) -> AsyncIterator[int]:
            yield 1
            raise KeyError("half way")

        router.unary("Boom", boom)
        router.unary("Conflict", conflict)
        router.unary("Unencodable", unencodable)
        router.server_stream("Stream", stream)
        async with rpc_server(router) as (_, addr), rpc_client(addr) as client:
            with pytest.raises(RpcError) as ei:
                await client.call("Boom")
            assert ei.value.code == "handler" and "ValueError: no such row" in ei.value.message
            with pytest.raises(RpcError) as ei:
                await client.call("Conflict")
            assert (ei.value.code, ei.value.message) == ("conflict", "row locked by txn 7")
            with pytest.raises(RpcError) as ei:
                await client.call("Unencodable")
            assert ei.value.code == "handler" and "cannot be sent" in ei.value.message
            with pytest.raises(RpcError) as ei:
                await client.call("Nope")
            assert ei.value.code == "unknown_method"
            with pytest.raises(RpcError) as ei:
                await client.call("Stream")  # a stream method called as unary
            assert ei.value.code == "unknown_method"
            got = []
            with pytest.raises(RpcError) as ei:
                async for x in client.server_stream("Stream"):
                    got.append(x)
            assert got == [1] and ei.value.code == "handler" and "half way" in ei.value.message
            with pytest.raises(TypeError):
                await client.call("Echo", object())  # caller's bug: raised locally, nothing sent
            with pytest.raises(ValueError, match="exceeds the limit"):
                await client.call("Echo", b"x" * (F.DEFAULT_MAX_FRAME + 1))
            assert await client.call("Echo", "still fine") == "still fine"
            assert len(router.connections) == 1

    run_async(main())


def test_deadline_on_the_client_cancels_the_server_handler():
    async def main() -> None:
        router = RpcRouter()
        cancelled = asyncio.Event()

        async def hang(p: Any, ctx: CallContext) -> None:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        router.unary("Hang", hang)
        async with rpc_server(router) as (_, addr), rpc_client(addr) as client:
            t0 = time.monotonic()
            with pytest.raises(RpcError) as ei:
                await client.call("Hang", timeout=0.2)
            assert ei.value.code == "deadline"
            assert 0.15 < time.monotonic() - t0 < 1.0
            await asyncio.wait_for(cancelled.wait(), 2)

    run_async(main())


def test_deadline_enforced_by_the_server_on_its_own():
    """A client that never sends CANCEL still gets ERROR "deadline", and the handler is cancelled."""

    async def main() -> None:
        router = RpcRouter()
        cancelled = asyncio.Event()

        async def hang(p: Any, ctx: CallContext) -> None:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        async def hang_stream(p: Any, ctx: CallContext) -> AsyncIterator[int]:
            yield 1
            await asyncio.sleep(30)
            yield 2

        router.unary("Hang", hang)
        router.server_stream("HangStream", hang_stream)
        async with rpc_server(router) as (_, addr):
            peer = await RawPeer.connect(addr)
            welcome = await peer.handshake()
            assert welcome is not None and welcome[0] == F.WELCOME
            t0 = time.monotonic()
            peer.send([F.REQUEST, 1, "Hang", None, 0.2])
            assert await peer.read_frame() == [F.ERROR, 1, "deadline", "deadline passed on the server"]
            assert 0.15 < time.monotonic() - t0 < 1.0
            assert cancelled.is_set()
            peer.send([F.SSTREAM, 2, "HangStream", None, 0.2, 8])
            assert await peer.read_frame() == [F.CHUNK, 2, 1]
            assert (await peer.read_frame())[:3] == [F.ERROR, 2, "deadline"]
            peer.close()

    run_async(main())


def test_stream_deadlines_on_the_client():
    async def main() -> None:
        router = RpcRouter()

        async def slow(p: Any, ctx: CallContext) -> AsyncIterator[int]:
            for i in range(100):
                await asyncio.sleep(0.05)
                yield i

        async def slow_sink(chunks: AsyncIterator[Any], ctx: CallContext) -> int:
            n = 0
            async for _ in chunks:
                await asyncio.sleep(0.05)
                n += 1
            return n

        router.server_stream("Slow", slow)
        router.client_stream("SlowSink", slow_sink)
        async with rpc_server(router) as (_, addr), rpc_client(addr) as client:
            got = []
            with pytest.raises(RpcError) as ei:
                async for x in client.server_stream("Slow", timeout=0.3):
                    got.append(x)
            assert ei.value.code == "deadline" and 2 <= len(got) < 10
            with pytest.raises(RpcError) as ei:
                await client.client_stream("SlowSink", [b"x"] * 100, timeout=0.3)
            assert ei.value.code == "deadline"
            async with client.server_stream("Slow", timeout=5) as stream:  # the connection still works
                assert [await stream.__anext__() for _ in range(3)] == [0, 1, 2]

    run_async(main())


def test_cancellation_reaches_the_server():
    async def main() -> None:
        router = RpcRouter()
        started = asyncio.Event()
        unary_cancelled = asyncio.Event()
        stream_closed = asyncio.Event()
        sink_cancelled = asyncio.Event()

        async def hang(p: Any, ctx: CallContext) -> None:
            started.set()
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                unary_cancelled.set()
                raise

        async def endless(p: Any, ctx: CallContext) -> AsyncIterator[int]:
            try:
                i = 0
                while True:
                    yield i
                    i += 1
            finally:
                stream_closed.set()

        async def sink(chunks: AsyncIterator[Any], ctx: CallContext) -> None:
            try:
                async for _ in chunks:
                    pass
            except asyncio.CancelledError:
                sink_cancelled.set()
                raise

        router.unary("Hang", hang)
        router.server_stream("Endless", endless)
        router.client_stream("Sink", sink)
        async with rpc_server(router) as (_, addr), rpc_client(addr) as client:
            task = asyncio.create_task(client.call("Hang", timeout=30))
            await asyncio.wait_for(started.wait(), 2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.wait_for(unary_cancelled.wait(), 2)

            async for x in client.server_stream("Endless"):
                if x == 50:
                    break  # leaving the loop cancels the call on the server
            await asyncio.wait_for(stream_closed.wait(), 2)

            async def forever() -> AsyncIterator[bytes]:
                while True:
                    yield b"z"
                    await asyncio.sleep(0.001)

            task = asyncio.create_task(client.client_stream("Sink", forever(), timeout=30))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.wait_for(sink_cancelled.wait(), 2)
            assert not router.connections or all(not c._tasks for c in router.connections)

    run_async(main())


def test_flow_control_bounds_what_is_in_flight():
    async def main() -> None:
        router = RpcRouter()
        produced = 0
        consumed_by_server = 0
        max_ahead = 0

        async def firehose(n: int, ctx: CallContext) -> AsyncIterator[bytes]:
            nonlocal produced
            for _ in range(n):
                produced += 1
                yield b"f" * 1000

        async def slow_sink(chunks: AsyncIterator[Any], ctx: CallContext) -> int:
            nonlocal consumed_by_server
            async for _ in chunks:
                consumed_by_server += 1
                await asyncio.sleep(0.002)
            return consumed_by_server

        router.server_stream("Firehose", firehose)
        router.client_stream("SlowSink", slow_sink)
        async with rpc_server(router) as (_, addr), rpc_client(addr) as client:
            consumed = 0
            async for _ in client.server_stream("Firehose", 300, window=8):
                consumed += 1
                max_ahead = max(max_ahead, produced - consumed)
                await asyncio.sleep(0.002)
            assert consumed == 300
            assert max_ahead <= 8 + 1, max_ahead  # window + the item the generator holds

            sent = 0
            max_ahead = 0

            async def fast_producer() -> AsyncIterator[bytes]:
                nonlocal sent, max_ahead
                for _ in range(200):
                    sent += 1
                    max_ahead = max(max_ahead, sent - consumed_by_server)
                    yield b"p" * 1000

            assert await client.client_stream("SlowSink", fast_producer()) == 200
            assert max_ahead <= STREAM_WINDOW + 2, max_ahead

    run_async(main())


def test_eager_handlers_behave_like_tasks():
    """The first step of a unary handler runs inline, yet it sees a current task of its own, can use
    asyncio.timeout / TaskGroup before its first await, and context variables stay per call."""
    var: contextvars.ContextVar[int] = contextvars.ContextVar("var", default=0)

    async def main() -> None:
        router = RpcRouter()

        async def tasky(p: int, ctx: CallContext) -> list[Any]:
            me = asyncio.current_task()
            assert me is not None
            seen_before = var.get()
            var.set(p)
            async with asyncio.timeout(5):
                async with asyncio.TaskGroup() as tg:
                    t = tg.create_task(asyncio.sleep(0.01, result=p))
            assert asyncio.current_task() is me
            return [seen_before, t.result(), var.get()]

        router.unary("Tasky", tasky)
        async with rpc_server(router) as (_, addr), rpc_client(addr) as client:
            results = await asyncio.gather(*(client.call("Tasky", i) for i in range(1, 50)))
            assert results == [[0, i, i] for i in range(1, 50)]

    run_async(main())


def test_handler_that_cancels_itself_and_server_deadline_inside_asyncio_timeout():
    async def main() -> None:
        router = RpcRouter()

        async def self_cancel(p: Any, ctx: CallContext) -> None:
            asyncio.current_task().cancel()  # type: ignore[union-attr]
            await asyncio.sleep(5)

        async def inner_timeout(p: Any, ctx: CallContext) -> str:
            async with asyncio.timeout(p):  # the server's deadline (0.2 s) or this one, whichever first
                await asyncio.sleep(5)
            return "unreachable"

        async def self_cancel_then_return(p: Any, ctx: CallContext) -> str:
            asyncio.current_task().cancel()  # type: ignore[union-attr]
            return "done"  # finished before any await: the cancel request hits nothing

        router.unary("SelfCancel", self_cancel)
        router.unary("SelfCancelThenReturn", self_cancel_then_return)
        router.unary("InnerTimeout", inner_timeout)

        async def echo_after_a_pause(p: Any, ctx: CallContext) -> Any:
            await asyncio.sleep(0.01)
            return p

        router.unary("Echo2", echo_after_a_pause)
        async with rpc_server(router) as (_, addr):
            async with rpc_client(addr) as client:
                for _ in range(
                    3
                ):  # the first call meets a spare task not started yet, later ones an idle one
                    with pytest.raises(RpcError) as ei:
                        await client.call("SelfCancel", timeout=5)
                    assert ei.value.code == "cancelled"
                    # a spare that got a stray cancel request is never used again
                    assert await asyncio.gather(
                        client.call("SelfCancelThenReturn"), client.call("Echo2", 1), return_exceptions=True
                    ) == ["done", 1]
                with pytest.raises(RpcError) as ei:
                    await client.call("InnerTimeout", 0.05, timeout=5)  # the handler's own timeout fires
                assert ei.value.code == "handler" and "TimeoutError" in ei.value.message
            peer = await RawPeer.connect(addr)
            await peer.handshake()
            peer.send([F.REQUEST, 1, "InnerTimeout", 10, 0.2])  # no CANCEL will come: the server decides
            assert await peer.read_frame() == [F.ERROR, 1, "deadline", "deadline passed on the server"]
            peer.close()

    run_async(main())


# ------------------------------------------------------------------------------------ authentication


def test_wrong_secret_is_refused_by_the_server():
    async def main() -> None:
        router = echo_router()
        async with rpc_server(router) as (_, addr):
            async with rpc_client(addr, secret="wrong") as client:
                with pytest.raises(AuthError, match="invalid cluster secret") as ei:
                    await client.call("Echo", 1)
                assert ei.value.code == "auth"
                # during the backoff the same error comes back at once
                with pytest.raises(AuthError, match="invalid cluster secret"):
                    await client.call("Echo", 1)
            async with rpc_client(addr, secret="") as client:  # a secret on one side only
                with pytest.raises(AuthError, match="invalid cluster secret"):
                    await client.call("Echo", 1)
            # nothing of a refused client reaches a handler, and the server keeps serving
            async with rpc_client(addr) as client:
                assert await client.call("Echo", 1) == 1

    run_async(main())


def test_server_without_the_secret_is_refused_by_the_client():
    """An impostor server that accepts any client still cannot prove it knows the secret."""

    async def main() -> None:
        async def impostor(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            assert await reader.readexactly(len(PREAMBLE)) == PREAMBLE
            snonce = os.urandom(16)
            writer.write(encode_frame([F.HELLO, 0, snonce]))
            dec = FrameDecoder()
            frames: list[list[Any]] = []
            while not frames:
                frames = dec.feed(await reader.read(4096))
            auth = frames[0]
            writer.write(encode_frame([F.WELCOME, 0, 1, server_mac(b"other", auth[3], snonce, 1)]))
            with contextlib.suppress(ConnectionError):
                await reader.read()
            writer.close()

        server = await asyncio.start_server(impostor, "127.0.0.1", 0)
        addr = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
        async with rpc_client(addr) as client:
            with pytest.raises(AuthError, match="invalid cluster secret"):
                await client.call("Echo", 1)
        # the other direction of "secret on one side only"
        router = echo_router()
        async with rpc_server(router, secret="") as (_, addr2), rpc_client(addr2) as client:
            with pytest.raises(AuthError, match="invalid cluster secret"):
                await client.call("Echo", 1)
        server.close()

    run_async(main())


def test_empty_secret_on_both_sides_still_exchanges_node_ids():
    async def main() -> None:
        router = echo_router()
        async with (
            rpc_server(router, secret="", node_id=3) as (_, addr),
            rpc_client(addr, secret="", node_id=4) as client,
        ):
            assert (await client.call("WhoAmI"))["peer"] == 4
            assert client.remote_node_id == 3

    run_async(main())


def test_bad_preamble_garbage_and_silence_close_only_that_connection():
    async def main() -> None:
        router = echo_router()
        async with rpc_server(router, handshake_timeout=0.3) as (_, addr), rpc_client(addr) as good:
            assert await good.call("Echo", 1) == 1
            http = await RawPeer.connect(addr)
            http.writer.write(b"GET / HTTP/1.1\r\n\r\n")
            assert await http.closed()
            junk = await RawPeer.connect(addr)
            welcome = await junk.handshake()
            assert welcome is not None and welcome[0] == F.WELCOME
            junk.writer.write(b"\x00\x00\x00\x02\xc1\xc1")
            assert await junk.closed()
            big = await RawPeer.connect(addr)  # an oversized frame before authentication
            big.writer.write(PREAMBLE + b"\x00\x10\x00\x00")
            assert await big.closed()
            silent = await RawPeer.connect(addr)
            t0 = time.monotonic()
            assert await silent.closed()
            assert time.monotonic() - t0 < 2
            assert await good.call("Echo", 2) == 2

    run_async(main())


def test_shared_port_hand_over_with_initial_data():
    """The node's shared port reads the first bytes, then hands the transport to RpcServerProtocol."""

    async def main() -> None:
        router = echo_router()

        class Sniffer(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport
                self.buf = b""

            def data_received(self, data: bytes) -> None:
                self.buf += data
                if len(self.buf) >= len(PREAMBLE):
                    proto = RpcServerProtocol(router, secret=SECRET, node_id=8, initial_data=self.buf)
                    self.transport.set_protocol(proto)
                    proto.connection_made(self.transport)

        loop = asyncio.get_running_loop()
        server = await loop.create_server(Sniffer, "127.0.0.1", 0)
        addr = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
        async with rpc_client(addr) as client:
            assert await client.call("Echo", "via sniffer") == "via sniffer"
            assert client.remote_node_id == 8
        server.close()
        router.close_connections()

    run_async(main())


# ------------------------------------------------------------------ reconnect, keepalive, TLS, pool


def test_server_restart_client_reconnects_with_backoff():
    async def main() -> None:
        router = echo_router()
        async with rpc_server(router) as (_, addr):
            port = int(addr.rsplit(":", 1)[1])
            client = RpcClient(
                addr, secret=SECRET, node_id=2, initial_backoff=0.05, max_backoff=0.4, connect_timeout=1.0
            )
            assert await client.call("Echo", 1) == 1
        # server and its connections are gone
        with pytest.raises(RpcError) as ei:
            await client.call("Echo", 2)
        assert ei.value.code == "unavailable"
        t0 = time.monotonic()
        fast_fails = 0
        while time.monotonic() - t0 < 1.5:  # keep calling: connect attempts back off up to max_backoff
            t1 = time.monotonic()
            with pytest.raises(RpcError) as ei:
                await client.call("Echo", 3)
            assert ei.value.code == "unavailable"
            fast_fails += time.monotonic() - t1 < 0.005  # inside a backoff: refused without connecting
            await asyncio.sleep(0.01)
        assert fast_fails > 50
        assert client._backoff == 0.4  # 0.05 → 0.1 → 0.2 → 0.4 (capped at max_backoff)
        async with rpc_server(router, port=port):
            deadline = time.monotonic() + 3
            while True:
                try:
                    assert await client.call("Echo", 4) == 4
                    break
                except RpcError as exc:
                    assert exc.code == "unavailable"
                    assert time.monotonic() < deadline, "client did not reconnect"
                    await asyncio.sleep(0.02)
            assert client._backoff == 0.0  # reset by the successful handshake
            # a restart under an established connection: the next call after the loss reconnects
            router.close_connections()
            await asyncio.sleep(0.05)
            assert await client.call("Echo", 5) == 5
        await client.close()
        with pytest.raises(RpcError, match="closed"):
            await client.call("Echo", 6)

    run_async(main())


SERVER_SCRIPT = """
import asyncio, sys
from marmot.cluster.rpc import RpcRouter, serve_rpc

async def main():
    router = RpcRouter()
    async def echo(p, ctx):
        return p
    router.unary("Echo", echo)
    server = await serve_rpc(router, "127.0.0.1", 0, secret="s3cret", node_id=1)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def test_keepalive_detects_a_stopped_peer():
    proc = subprocess.Popen([sys.executable, "-c", SERVER_SCRIPT], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())

        async def main() -> None:
            async with rpc_client(
                f"127.0.0.1:{port}", keepalive_interval=0.2, keepalive_timeout=0.3, connect_timeout=0.5
            ) as client:
                assert await client.call("Echo", 1) == 1
                await asyncio.sleep(0.5)  # idle, pings answered: still the same connection
                conn = client._conn
                assert await client.call("Echo", 2) == 2 and client._conn is conn
                os.kill(proc.pid, signal.SIGSTOP)
                t0 = time.monotonic()
                with pytest.raises(RpcError) as ei:
                    await client.call("Echo", 3, timeout=10)  # the peer's kernel still ACKs: only pings tell
                assert ei.value.code == "unavailable"
                assert time.monotonic() - t0 < 0.2 + 0.3 + 0.5
                assert not client.connected

        run_async(main())
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
        proc.wait()


def test_keepalive_of_the_server_drops_a_silent_client():
    async def main() -> None:
        router = echo_router()
        async with rpc_server(router, keepalive_interval=0.1, keepalive_timeout=0.2) as (_, addr):
            peer = await RawPeer.connect(addr)
            await peer.handshake()
            assert await peer.read_frame() == [F.PING, 0]  # idle: the server pings...
            t0 = time.monotonic()
            assert await peer.closed()  # ...and hangs up when we do not answer
            assert time.monotonic() - t0 < 1

    run_async(main())


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "marmot-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def test_tls_round_trip(tmp_path: Path):
    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))

    async def main() -> None:
        router = echo_router()

        async def numbers(n: int, ctx: CallContext) -> AsyncIterator[int]:
            for i in range(n):
                yield i

        router.server_stream("Numbers", numbers)
        async with rpc_server(router, ssl=server_ctx) as (_, addr):
            async with rpc_client(addr, ssl=client_ctx) as client:
                assert await client.call("Echo", {"tls": True}) == {"tls": True}
                assert [x async for x in client.server_stream("Numbers", 100)] == list(range(100))
                assert client._conn is not None
                assert client._conn.transport.get_extra_info("ssl_object") is not None
            async with rpc_client(addr, connect_timeout=0.5) as plain:  # plaintext client: no handshake
                with pytest.raises(RpcError) as ei:
                    await plain.call("Echo", 1)
                assert ei.value.code == "unavailable"

    run_async(main())


def test_client_pool():
    async def main() -> None:
        r1, r2 = echo_router(), echo_router()
        async with rpc_server(r1, node_id=1) as (_, a1), rpc_server(r2, node_id=2) as (_, a2):
            pool = ClientPool(secret=SECRET, node_id=9)
            assert pool.get(a1) is pool.get(a1)
            assert pool.get(a1) is not pool.get(a2)
            assert await pool.get(a1).call("Echo", "one") == "one"
            assert (await pool.get(a2).call("WhoAmI"))["peer"] == 9
            assert pool.get(a2).remote_node_id == 2
            await pool.close()
            assert not pool.get(a1).connected  # a fresh client after close

    run_async(main())
