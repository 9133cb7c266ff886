"""Byte-level tests and fuzzing of the sans-I/O RPC frame codec (marmot.cluster.rpc.frames)."""

from __future__ import annotations

import contextlib
import random
import struct

import msgpack
import pytest

from marmot.cluster.rpc import frames as F
from marmot.cluster.rpc.frames import FrameDecoder, FrameEncoder, ProtocolError, encode_frame


def raw(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


SAMPLES = [
    [F.HELLO, 0, b"n" * 16],
    [F.AUTH, 0, 7, b"c" * 16, b"m" * 32],
    [F.WELCOME, 0, 2**64 - 1, b"m" * 32],
    [F.REQUEST, 1, "Prepare", {"txn": 12, "rows": [b"\x00\x01", None, 1.5, "é"]}, 5.0],
    [F.REQUEST, 2, "Ping", None, None],
    [F.RESPONSE, 1, {1: "int keys are allowed", "k": [True, False]}],
    [F.ERROR, 3, "handler", "ValueError: boom"],
    [F.CANCEL, 4],
    [F.SSTREAM, 5, "Snapshot", {"db": "x"}, 30, 32],
    [F.CSTREAM, 6, "Commit", 2.5],
    [F.CHUNK, 6, b"x" * 1000],
    [F.END, 6],
    [F.CREDIT, 5, 16],
    [F.PING, 99],
    [F.PONG, 99],
]


def test_encoding_is_byte_exact():
    assert encode_frame([F.REQUEST, 1, "m", None, 5]) == b"\x00\x00\x00\x07\x95\x03\x01\xa1m\xc0\x05"
    assert encode_frame([F.PING, 0]) == b"\x00\x00\x00\x03\x92\x0c\x00"
    # bytes stay bin, str stays str
    assert encode_frame([F.CHUNK, 1, b"ab"]) == b"\x00\x00\x00\x07\x93\x09\x01\xc4\x02ab"
    assert encode_frame([F.CHUNK, 1, "ab"]) == b"\x00\x00\x00\x06\x93\x09\x01\xa2ab"
    assert FrameEncoder().encode([F.PING, 0]) == encode_frame([F.PING, 0])


def test_round_trip_every_frame_type():
    wire = b"".join(encode_frame(f) for f in SAMPLES)
    assert FrameDecoder().feed(wire) == SAMPLES


def test_split_at_every_position():
    wire = b"".join(encode_frame(f) for f in SAMPLES[:6])
    for cut in range(len(wire) + 1):
        d = FrameDecoder()
        got = d.feed(wire[:cut]) + d.feed(wire[cut:])
        assert got == SAMPLES[:6], cut
        assert d.buffered == 0


def test_byte_by_byte_and_buffer_types():
    wire = b"".join(encode_frame(f) for f in SAMPLES)
    d = FrameDecoder()
    got = []
    for i in range(len(wire)):
        got += d.feed(wire[i : i + 1])
    assert got == SAMPLES
    assert FrameDecoder().feed(bytearray(wire)) == SAMPLES
    assert FrameDecoder().feed(memoryview(wire)) == SAMPLES


def test_partial_frame_is_kept_until_complete():
    d = FrameDecoder()
    wire = encode_frame(SAMPLES[3])
    assert d.feed(wire[:3]) == []
    assert d.buffered == 3
    assert d.feed(wire[3:-1]) == []
    assert d.feed(wire[-1:]) == [SAMPLES[3]]
    assert d.buffered == 0


def test_max_frame_size_checked_from_the_header_before_buffering():
    d = FrameDecoder(max_frame_size=100)
    with pytest.raises(ProtocolError, match="exceeds the limit"):
        d.feed(struct.pack(">I", 101))  # header only: refused before any body byte arrives
    assert d.buffered == 0
    d = FrameDecoder(max_frame_size=100)
    d.feed(raw(msgpack.packb([F.CHUNK, 1, b"x" * 80])))  # under the limit: fine
    d.max_frame_size = 10  # lowered/raised between feeds (the handshake does this)
    with pytest.raises(ProtocolError):
        d.feed(raw(msgpack.packb([F.CHUNK, 1, b"x" * 80])))


def test_errors_are_sticky():
    d = FrameDecoder()
    with pytest.raises(ProtocolError):
        d.feed(raw(b"\xc1"))  # 0xc1 is never valid msgpack
    with pytest.raises(ProtocolError):
        d.feed(encode_frame([F.PING, 0]))


@pytest.mark.parametrize(
    "body, why",
    [
        (b"", "empty frame"),
        (b"\xc1", "undecodable"),
        (msgpack.packb(5), "not an array"),
        (msgpack.packb([F.PING]), "not an array"),
        (msgpack.packb([99, 1]), "unknown frame type"),
        (msgpack.packb(["3", 1]), "unknown frame type"),
        (msgpack.packb([F.PING, 0, 1]), "fields"),
        (msgpack.packb([F.REQUEST, 1, "m", None]), "fields"),
        (msgpack.packb([F.REQUEST, -1, "m", None, 1]), "bad request id"),
        (msgpack.packb([F.REQUEST, "1", "m", None, 1]), "bad request id"),
        (msgpack.packb([F.REQUEST, 1, b"m", None, 1]), "field 2"),
        (msgpack.packb([F.REQUEST, 1, "m", None, "soon"]), "field 4"),
        (msgpack.packb([F.HELLO, 0, "not bytes"]), "field 2"),
        (msgpack.packb([F.CREDIT, 1, 1.5]), "field 2"),
        (msgpack.packb([F.PING, 0]) + b"\x00", "undecodable"),  # trailing bytes inside a frame
        (msgpack.packb([F.CHUNK, 1, b"x" * 10])[:-3], "undecodable"),  # truncated body
        (b"\x93\x09\x01\xa2\xff\xfe", "undecodable"),  # invalid UTF-8 in a str
        (b"\x91" * 100_000, "undecodable"),  # nesting deeper than the unpacker allows
        (b"\x92\x0c\x00" + b"", None),  # control: valid
    ],
)
def test_malformed_bodies(body, why):
    d = FrameDecoder(max_frame_size=1 << 20)
    if why is None:
        assert d.feed(raw(body)) == [[F.PING, 0]]
        return
    with pytest.raises(ProtocolError, match=why):
        d.feed(raw(body))


def test_encoder_errors_leave_it_usable():
    enc = FrameEncoder(max_frame_size=64)
    with pytest.raises(TypeError):
        enc.encode([F.RESPONSE, 1, object()])
    with pytest.raises(ValueError, match="exceeds the limit"):
        enc.encode([F.CHUNK, 1, b"x" * 100])
    assert enc.encode([F.PING, 0]) == encode_frame([F.PING, 0])


def _mutations(rng: random.Random, wire: bytes) -> bytes:
    kind = rng.randrange(6)
    b = bytearray(wire)
    if kind == 0 and b:  # flip bits
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif kind == 1:  # truncate
        del b[rng.randrange(len(b) + 1) :]
    elif kind == 2:  # random garbage
        b = bytearray(rng.randbytes(rng.randint(0, 64)))
    elif kind == 3:  # garbage body with a plausible header
        body = rng.randbytes(rng.randint(1, 40))
        b = bytearray(raw(body))
    elif kind == 4 and b:  # insert random bytes
        i = rng.randrange(len(b))
        b[i:i] = rng.randbytes(rng.randint(1, 8))
    else:  # delete a slice
        if b:
            i = rng.randrange(len(b))
            del b[i : i + rng.randint(1, 8)]
    return bytes(b)


def test_fuzz_only_protocol_errors_or_valid_frames():
    rng = random.Random(20240611)
    valid_types = set(F.TYPE_NAMES)
    for _ in range(5000):
        frames = [rng.choice(SAMPLES) for _ in range(rng.randint(1, 4))]
        wire = _mutations(rng, b"".join(encode_frame(f) for f in frames))
        d = FrameDecoder(max_frame_size=rng.choice([16, 1024, 1 << 20]))
        pos = 0
        try:
            while pos < len(wire):
                step = rng.randint(1, 40)
                for f in d.feed(wire[pos : pos + step]):
                    assert type(f) is list and f[0] in valid_types and type(f[1]) is int
                pos += step
        except ProtocolError:
            pass


def test_fuzz_random_msgpack_values_as_bodies():
    rng = random.Random(7)

    def value(depth: int = 0):
        makers = [
            lambda: None,
            lambda: rng.randint(-(2**63), 2**64 - 1),
            lambda: rng.random(),
            lambda: rng.randbytes(rng.randint(0, 5)),
            lambda: "s" * rng.randint(0, 5),
            lambda: bool(rng.randrange(2)),
            lambda: [value(depth + 1) for _ in range(rng.randint(0, 5))],
            lambda: {str(i): value(depth + 1) for i in range(rng.randint(0, 3))},
            # frame-shaped: a known type, a request id, then anything
            lambda: (
                [rng.randrange(16), rng.randint(-1, 3)] + [value(depth + 1) for _ in range(rng.randint(0, 4))]
            ),
        ]
        return makers[rng.randrange(len(makers) if depth < 3 else 6)]()

    for _ in range(3000):
        body = msgpack.packb(value(), use_bin_type=True)
        with contextlib.suppress(ProtocolError):
            FrameDecoder().feed(raw(body))
