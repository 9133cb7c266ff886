"""Sans-I/O framing of the node-to-node RPC protocol.

Nothing here touches a socket or an event loop: the RPC connection feeds received bytes into a
``FrameDecoder`` and gets whole, validated frames out; it turns frames into wire bytes with
``encode_frame`` (or its own ``FrameEncoder``). Tests, fuzzers and benchmark tools use the same code.

Wire format (after the connection preamble ``MARMOT-RPC/1\\n``, see ``handshake.PREAMBLE``)::

    +----------------------+-----------------------------------------------+
    | length: u32 big end. | body: one msgpack array [type, request_id, ...] |
    +----------------------+-----------------------------------------------+

``length`` counts the body only. msgpack runs with ``use_bin_type=True`` / ``raw=False``: ``bytes``
stay ``bytes`` and ``str`` stay ``str``; map keys may be any hashable msgpack value (node ids are ints).

Frame types and their fields (``rid`` = request id; 0 on connection-level frames):

==============  =====================================================  =========
type            fields after ``[type, rid``                            direction
==============  =====================================================  =========
HELLO    0      ``server_nonce: bytes``                                 S -> C
AUTH     1      ``node_id: int, client_nonce: bytes, mac: bytes``       C -> S
WELCOME  2      ``node_id: int, mac: bytes``                            S -> C
REQUEST  3      ``method: str, payload, timeout: float|None``           C -> S
RESPONSE 4      ``payload``                                             S -> C
ERROR    5      ``code: str, message: str``                             S -> C
CANCEL   6      (none)                                                  C -> S
SSTREAM  7      ``method: str, payload, timeout: float|None, window``   C -> S
CSTREAM  8      ``method: str, timeout: float|None``                    C -> S
CHUNK    9      ``payload``                                             both
END      10     (none)                                                  C -> S
CREDIT   11     ``n: int``                                              both
PING     12     (rid is the ping token)                                 both
PONG     13     (rid echoes the token)                                  both
==============  =====================================================  =========

Invariants kept here (the fuzz tests hold us to them):

* ``FrameDecoder.feed`` raises ``ProtocolError`` and nothing else on bad input: a wrong length, a body
  that is not exactly one msgpack value, an unknown frame type, a wrong field count or field type. After
  the first error the decoder stays failed (the connection must be closed).
* The frame size limit is checked against the 4-byte header *before* the body is buffered, so a peer
  cannot make us hold more than ``max_frame_size`` bytes for it. Before authentication the connection
  lowers the limit to ``HANDSHAKE_MAX_FRAME`` (a stranger gets a few hundred bytes, not megabytes).
* ``timeout`` is relative (seconds); each side turns it into a deadline on its own monotonic clock, so
  node clocks never need to agree.
"""

from __future__ import annotations

from struct import Struct
from typing import Any

import msgpack

__all__ = [
    "AUTH",
    "CANCEL",
    "CHUNK",
    "CREDIT",
    "CSTREAM",
    "DEFAULT_MAX_FRAME",
    "END",
    "ERROR",
    "HANDSHAKE_MAX_FRAME",
    "HELLO",
    "PING",
    "PONG",
    "REQUEST",
    "RESPONSE",
    "SSTREAM",
    "WELCOME",
    "FrameDecoder",
    "FrameEncoder",
    "ProtocolError",
    "encode_frame",
]

HELLO = 0
AUTH = 1
WELCOME = 2
REQUEST = 3
RESPONSE = 4
ERROR = 5
CANCEL = 6
SSTREAM = 7
CSTREAM = 8
CHUNK = 9
END = 10
CREDIT = 11
PING = 12
PONG = 13

TYPE_NAMES = {
    HELLO: "HELLO",
    AUTH: "AUTH",
    WELCOME: "WELCOME",
    REQUEST: "REQUEST",
    RESPONSE: "RESPONSE",
    ERROR: "ERROR",
    CANCEL: "CANCEL",
    SSTREAM: "SSTREAM",
    CSTREAM: "CSTREAM",
    CHUNK: "CHUNK",
    END: "END",
    CREDIT: "CREDIT",
    PING: "PING",
    PONG: "PONG",
}

DEFAULT_MAX_FRAME = 64 * 1024 * 1024
"""Largest frame body accepted once authenticated. Bigger data goes as a stream of chunks."""
HANDSHAKE_MAX_FRAME = 512
"""Largest frame body accepted before the peer has authenticated."""

HEADER = Struct(">I")
_unpack_header = HEADER.unpack_from
_pack_header = HEADER.pack
MAX_LENGTH = 0xFFFFFFFF


class ProtocolError(Exception):
    """The peer sent bytes that are not a valid frame: close the connection."""


_ANY = object()  # field spec: any msgpack value (a payload)
_NUM = (int, float, type(None))  # a relative timeout, or None for "no deadline"

# type -> expected field types after [type, rid]; a tuple entry is an isinstance() check.
_SPECS: dict[int, tuple[Any, ...]] = {
    HELLO: (bytes,),
    AUTH: (int, bytes, bytes),
    WELCOME: (int, bytes),
    REQUEST: (str, _ANY, _NUM),
    RESPONSE: (_ANY,),
    ERROR: (str, str),
    CANCEL: (),
    SSTREAM: (str, _ANY, _NUM, int),
    CSTREAM: (str, _NUM),
    CHUNK: (_ANY,),
    END: (),
    CREDIT: (int,),
    PING: (),
    PONG: (),
}
# Fields per type, precomputed as (arity, [(index, types), ...]) so the check loops only over typed fields.
_CHECKS: dict[int, tuple[int, tuple[tuple[int, Any], ...]]] = {
    t: (len(spec) + 2, tuple((i + 2, s) for i, s in enumerate(spec) if s is not _ANY))
    for t, spec in _SPECS.items()
}


def _validate(frame: Any) -> None:
    if type(frame) is not list or len(frame) < 2:
        raise ProtocolError("frame is not an array [type, request_id, ...]")
    ftype = frame[0]
    check = _CHECKS.get(ftype) if type(ftype) is int else None
    if check is None:
        raise ProtocolError(f"unknown frame type {ftype!r}")
    arity, typed = check
    if len(frame) != arity:
        raise ProtocolError(f"{TYPE_NAMES[ftype]} frame has {len(frame)} fields, expected {arity}")
    if type(frame[1]) is not int or frame[1] < 0:
        raise ProtocolError(f"bad request id {frame[1]!r}")
    for i, types in typed:
        if not isinstance(frame[i], types):
            raise ProtocolError(f"{TYPE_NAMES[ftype]} field {i} has type {type(frame[i]).__name__}")


def _unpack(body: Any) -> Any:
    return msgpack.unpackb(body, raw=False, strict_map_key=False)


class FrameDecoder:
    """Bytes in, frames out. ``feed`` returns the list of frames completed by ``data`` (maybe empty).

    ``max_frame_size`` may be changed between feeds (the connection raises it after the handshake).
    """

    __slots__ = ("_buf", "_error", "max_frame_size")

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame_size = max_frame_size
        self._buf = bytearray()
        self._error: str | None = None

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete frame."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[list[Any]]:
        if self._error is not None:
            raise ProtocolError(self._error)
        if not self._buf and len(data) > 4:
            # Fast path: exactly one whole frame, the common case for request/response traffic.
            size = _unpack_header(data)[0]
            if size + 4 == len(data) and size <= self.max_frame_size:
                try:
                    frame = _unpack(data[4:])
                except Exception as exc:
                    self._error = f"undecodable frame body: {type(exc).__name__}: {exc}"
                    raise ProtocolError(self._error) from None
                try:
                    _validate(frame)
                except ProtocolError as exc:
                    self._error = str(exc)
                    raise
                return [frame]
        if self._buf:
            self._buf += data
            buf: Any = self._buf
        else:
            buf = data
        frames: list[list[Any]] = []
        end = len(buf)
        pos = 0
        try:
            with memoryview(buf) as view:
                while end - pos >= 4:
                    size = _unpack_header(view, pos)[0]
                    if size > self.max_frame_size:
                        raise ProtocolError(
                            f"frame of {size} bytes exceeds the limit of {self.max_frame_size}"
                        )
                    if size == 0:
                        raise ProtocolError("empty frame")
                    stop = pos + 4 + size
                    if stop > end:
                        break
                    try:
                        frame = _unpack(view[pos + 4 : stop])
                    except Exception as exc:  # msgpack raises many kinds: ExtraData, ValueError, ...
                        raise ProtocolError(f"undecodable frame body: {type(exc).__name__}: {exc}") from None
                    _validate(frame)
                    frames.append(frame)
                    pos = stop
        except ProtocolError as exc:
            self._error = str(exc)
            self._buf = bytearray()
            raise
        if buf is self._buf:
            if pos:
                del self._buf[:pos]
        elif pos < end:
            self._buf = bytearray(buf[pos:])
        return frames


class FrameEncoder:
    """Frames to wire bytes, with a reusable msgpack packer. One per connection (not thread-safe)."""

    __slots__ = ("_pack", "max_frame_size")

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME) -> None:
        self._pack = msgpack.Packer(use_bin_type=True).pack
        self.max_frame_size = min(max_frame_size, MAX_LENGTH)

    def encode(self, frame: list[Any]) -> bytes:
        """Raises ``TypeError`` for a value msgpack cannot encode and ``ValueError`` for a frame above
        ``max_frame_size`` (the peer would drop the connection on it; send big data as a stream)."""
        body: bytes = self._pack(frame)
        if len(body) > self.max_frame_size:
            raise ValueError(f"frame of {len(body)} bytes exceeds the limit of {self.max_frame_size}")
        return _pack_header(len(body)) + body


def encode_frame(frame: list[Any]) -> bytes:
    """Wire bytes of one frame (thread-safe, a little slower than ``FrameEncoder.encode``)."""
    body: bytes = msgpack.packb(frame, use_bin_type=True)
    if len(body) > MAX_LENGTH:
        raise ValueError("frame too large for the 4-byte length header")
    return _pack_header(len(body)) + body
