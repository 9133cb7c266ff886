"""Property-based fuzzing of the node-to-node RPC frames in-process (Hypothesis).

Two levels: the sans-I/O ``FrameDecoder`` fed random and mutated bytes in random chunks (it returns
frames or raises ``ProtocolError``, nothing else, and stays failed after the first error); and a real
``serve_rpc`` server on 127.0.0.1 fed mutated handshakes and frames over TCP, including the PSK step
(``AUTH`` with the right proof, then garbage) — after which a real ``RpcClient`` still gets its answer
and the loop saw no unretrieved task or future. The node-level twin is tests/integration/test_fuzz_node.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import os
import struct
from typing import Any

import msgpack
from hypothesis import example, given
from hypothesis import strategies as st

from marmot.cluster.rpc import RpcClient, RpcRouter, serve_rpc
from marmot.cluster.rpc import frames as F
from marmot.cluster.rpc.frames import FrameDecoder, ProtocolError, encode_frame
from marmot.cluster.rpc.handshake import NONCE_SIZE, PREAMBLE, client_mac
from tests.support import run_async
from tests.support.fuzzing import mutated, node_examples

payloads = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.integers(0, 9) | st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
rids = st.integers(0, 2**64 - 1)
timeouts = st.none() | st.floats() | st.integers(-(2**63), 2**63)
methods = st.sampled_from(("echo", "slow", "nope")) | st.text(max_size=6)

# One strategy per frame type, with fields of the right types (so the frame is valid).
VALID_FRAMES = st.one_of(
    st.builds(lambda r, b: [F.HELLO, r, b], rids, st.binary(max_size=20)),
    st.builds(
        lambda r, n, c, m: [F.AUTH, r, n, c, m],
        rids,
        st.integers(-(2**63), 2**64 - 1),
        st.binary(max_size=20),
        st.binary(max_size=40),
    ),
    st.builds(lambda r, n, m: [F.WELCOME, r, n, m], rids, st.integers(0, 2**64 - 1), st.binary(max_size=40)),
    st.builds(lambda r, m, p, t: [F.REQUEST, r, m, p, t], rids, methods, payloads, timeouts),
    st.builds(lambda r, p: [F.RESPONSE, r, p], rids, payloads),
    st.builds(lambda r, c, m: [F.ERROR, r, c, m], rids, st.text(max_size=8), st.text(max_size=8)),
    st.builds(lambda r: [F.CANCEL, r], rids),
    st.builds(
        lambda r, m, p, t, w: [F.SSTREAM, r, m, p, t, w],
        rids,
        methods,
        payloads,
        timeouts,
        st.integers(-5, 2**32),
    ),
    st.builds(lambda r, m, t: [F.CSTREAM, r, m, t], rids, methods, timeouts),
    st.builds(lambda r, p: [F.CHUNK, r, p], rids, payloads),
    st.builds(lambda r: [F.END, r], rids),
    st.builds(lambda r, n: [F.CREDIT, r, n], rids, st.integers(-(2**63), 2**63)),
    st.builds(lambda r: [F.PING, r], rids),
    st.builds(lambda r: [F.PONG, r], rids),
)


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    out, pos, i = [], 0, 0
    while pos < len(data):
        step = cuts[i % len(cuts)] if cuts else len(data)
        out.append(data[pos : pos + step])
        pos += step
        i += 1
    return out


def _same(a: Any, b: Any) -> bool:
    """Equality that counts NaN equal to NaN (a NaN payload must come back as NaN)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


@given(st.lists(VALID_FRAMES, min_size=1, max_size=6), st.lists(st.integers(1, 40), max_size=8))
def test_valid_frames_decode_to_themselves_in_any_chunking(frames: list[list[Any]], cuts: list[int]) -> None:
    wire = b"".join(encode_frame(f) for f in frames)
    dec = FrameDecoder()
    got: list[list[Any]] = []
    for chunk in _chunks(wire, cuts):
        got.extend(dec.feed(chunk))
    assert _same(got, frames) and dec.buffered == 0


@given(
    st.lists(VALID_FRAMES, max_size=4).flatmap(
        lambda fs: mutated(b"".join(encode_frame(f) for f in fs), max_ops=6)
    ),
    st.lists(st.integers(1, 40), max_size=8),
    st.sampled_from((F.HANDSHAKE_MAX_FRAME, F.DEFAULT_MAX_FRAME)),
)
@example(b"\x00\x00\x00\x00", [], F.DEFAULT_MAX_FRAME)  # an empty frame
@example(b"\x00\x00\x00\x02\x91\x00", [], F.DEFAULT_MAX_FRAME)  # a one-element array
@example(b"\x00\x00\x00\x01\xc1", [], F.DEFAULT_MAX_FRAME)  # msgpack's reserved byte
def test_mutated_streams_raise_only_protocol_error_and_stay_failed(
    data: bytes, cuts: list[int], limit: int
) -> None:
    dec = FrameDecoder(limit)
    failed = False
    for chunk in _chunks(data, cuts):
        try:
            dec.feed(chunk)
        except ProtocolError:
            failed = True
            break
    if failed:
        try:
            dec.feed(b"\x00\x00\x00\x01\xc0")
        except ProtocolError:
            pass
        else:  # pragma: no cover - the failure message is the point
            raise AssertionError("a failed decoder accepted more bytes")


@given(st.lists(st.integers(0, 20) | payloads, max_size=7))
def test_any_msgpack_array_is_a_frame_or_a_protocol_error(fields: list[Any]) -> None:
    body = msgpack.packb(fields, use_bin_type=True)
    with contextlib.suppress(ProtocolError):
        FrameDecoder().feed(struct.pack(">I", len(body)) + body)


# ---------------------------------------------------------------------------------- a real server

SECRET = "fuzz"


def _router() -> RpcRouter:
    router = RpcRouter()

    async def echo(payload: Any, ctx: Any) -> Any:
        return payload

    async def slow(payload: Any, ctx: Any) -> Any:
        await asyncio.sleep(0.01)
        return payload

    async def stream(payload: Any, ctx: Any) -> Any:
        for i in range(3):
            yield i

    async def collect(chunks: Any, ctx: Any) -> Any:
        return [c async for c in chunks]

    router.unary("echo", echo)
    router.unary("slow", slow)
    router.server_stream("stream", stream)
    router.client_stream("collect", collect)
    return router


async def _send_raw(port: int, head: bytes, tail: bytes, authenticate: bool) -> None:
    """PREAMBLE-prefixed ``head``; with ``authenticate``, a correct AUTH first; then ``tail``; EOF; drain."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        if authenticate:
            size = struct.unpack(">I", await reader.readexactly(4))[0]
            hello = msgpack.unpackb(await reader.readexactly(size), raw=False)
            cnonce = os.urandom(NONCE_SIZE)
            writer.write(
                encode_frame([F.AUTH, 0, 7, cnonce, client_mac(SECRET.encode(), hello[2], cnonce, 7)])
            )
        writer.write(tail)
        await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        async with asyncio.timeout(10):
            while await reader.read(65536):
                pass
    except (OSError, asyncio.IncompleteReadError):
        pass  # the server closed on garbage: what it should do
    finally:
        writer.close()


def _fuzz_server(streams: list[tuple[bytes, bytes, bool]]) -> None:
    problems: list[dict[str, Any]] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: problems.append(ctx))
        router = _router()
        server = await serve_rpc(router, "127.0.0.1", 0, secret=SECRET, node_id=1, handshake_timeout=2.0)
        port = server.sockets[0].getsockname()[1]
        try:
            for head, tail, auth in streams:
                await _send_raw(port, head, tail, auth)
            client = RpcClient(f"127.0.0.1:{port}", secret=SECRET, node_id=2)
            assert await client.call("echo", {"still": "served"}, timeout=10) == {"still": "served"}
            await client.close()
        finally:
            server.close()
            router.close_connections()
            await asyncio.sleep(0.05)
        gc.collect()
        await asyncio.sleep(0)

    run_async(main(), 60)
    assert not problems, problems


@node_examples(ci=15, fuzz=1_000)
@given(
    st.lists(
        st.tuples(
            st.binary(max_size=40).flatmap(lambda b: mutated(PREAMBLE + b) | st.just(PREAMBLE + b)),
            st.lists(VALID_FRAMES, max_size=4).flatmap(
                lambda fs: (
                    mutated(b"".join(encode_frame(f) for f in fs))
                    | st.just(b"".join(encode_frame(f) for f in fs))
                )
            ),
            st.booleans(),
        ),
        min_size=1,
        max_size=4,
    )
)
@example([(PREAMBLE, encode_frame([F.REQUEST, 1, "slow", None, float("nan")]), True)])  # NaN deadline
@example([(PREAMBLE, encode_frame([F.REQUEST, 1, "slow", None, 1e308]), True)])  # a deadline past float range
@example([(PREAMBLE, encode_frame([F.SSTREAM, 1, "stream", None, float("-inf"), 2]), True)])
def test_server_survives_mutated_connections(streams: list[tuple[bytes, bytes, bool]]) -> None:
    _fuzz_server(streams)
