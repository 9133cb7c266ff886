"""Sans-I/O codec of the MySQL client/server protocol: framing, packet builders and parsers.

Nothing here touches a socket or an event loop. The connection loop feeds received bytes into a
``PacketFramer`` and gets whole logical packets out; it hands payloads to the ``parse_*`` functions and
turns replies built by the builder functions into wire bytes with ``frame``. Keeping the protocol pure
makes it testable byte for byte, fuzzable, and reusable by bench and test tools (see DESIGN.md, "Sans-I/O
protocol cores").

Rules every function here keeps:

* Parsers raise ``ProtocolError`` (and only that) for malformed input. Client bytes are untrusted: an
  ``IndexError`` or ``struct.error`` escaping from here would be a crash path, while a ``ProtocolError`` is
  the documented signal for "close this connection". The fuzz tests hold us to it.
* Builders return payloads *without* the 4-byte packet header; ``frame`` adds headers and sequence ids,
  so the caller controls sequencing in one place.
* This code runs per packet and per row, so it uses precompiled ``struct.Struct`` objects, avoids
  intermediate copies, and keeps per-column work (choosing an encoder) out of the per-row loop
  (``BinaryRowEncoder``).

Binary-protocol values come out of SQLite, which is dynamically typed: a column declared ``BIGINT`` can
hold ``'12'`` or ``1.5``. The binary encoders therefore coerce instead of failing, the way SQLite's own
``CAST`` does (see ``BinaryRowEncoder``); a wrong-typed value never breaks the row stream.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from struct import Struct
from typing import Literal

from .constants import (
    MAX_PACKET_PAYLOAD,
    PARAM_UNSIGNED_FLAG,
    Capability,
    Command,
    FieldType,
)

__all__ = [
    "BinaryRowEncoder",
    "ExecuteRequest",
    "HandshakeResponse",
    "PacketFramer",
    "PacketTooLarge",
    "ProtocolError",
    "auth_more_data",
    "auth_switch_request",
    "binary_row",
    "column_count",
    "column_definition",
    "encode_text_value",
    "eof_packet",
    "err_packet",
    "execute_statement_id",
    "frame",
    "frame_many",
    "handshake_v10",
    "lenenc_bytes",
    "lenenc_int",
    "local_infile_request",
    "ok_packet",
    "parse_change_user",
    "parse_field_list",
    "parse_handshake_response",
    "parse_send_long_data",
    "parse_set_option",
    "parse_stmt_close",
    "parse_stmt_execute",
    "parse_stmt_fetch",
    "parse_stmt_reset",
    "read_lenenc_bytes",
    "read_lenenc_int",
    "read_nul_str",
    "stmt_prepare_ok",
    "text_row",
    "text_row_values",
]

_U16 = Struct("<H")
_U32 = Struct("<I")
_U64 = Struct("<Q")
_HH = Struct("<HH")
_I8, _U8 = Struct("<b"), Struct("<B")
_I16, _I32, _I64 = Struct("<h"), Struct("<i"), Struct("<q")
_F32, _F64 = Struct("<f"), Struct("<d")
_EXEC_HEAD = Struct("<IBI")  # statement id, flags, iteration count
_PREPARE_OK = Struct("<BIHHBH")
_COLDEF_TAIL = Struct("<BHIBHBH")  # 0x0c, charset, length, type, flags, decimals, filler
_DATE = Struct("<HBB")
_DATETIME = Struct("<HBBBBB")
_DATETIME_US = Struct("<HBBBBBI")
_TIME = Struct("<BIBBB")
_TIME_US = Struct("<BIBBBI")

_ONE_BYTE = tuple(bytes((i,)) for i in range(256))
_NULL_LENENC = b"\xfb"


class ProtocolError(Exception):
    """The peer sent bytes that are not a valid packet of the expected kind; close the connection."""


class PacketTooLarge(ProtocolError):
    """A logical packet announced a payload larger than the configured maximum."""


# --------------------------------------------------------------------------------------------- framing


class PacketFramer:
    """Reassembles logical packets from a byte stream.

    The size limit is checked against each *announced* fragment length as soon as its 4-byte header has
    arrived, before the payload is buffered: a hostile or broken client cannot make us allocate up to
    the announced size (16 MiB per fragment, unbounded with continuation fragments) before we say no.

    Bytes are appended to one ``bytearray`` and consumed by advancing an offset; the consumed prefix is
    dropped only when everything is consumed or it grows large, so a stream of many small packets costs
    O(total bytes), not O(n^2) copies.
    """

    __slots__ = ("_buf", "_pos", "_max", "_parts", "_parts_len")

    _COMPACT_AT = 64 * 1024

    def __init__(self, max_payload: int = 64 * 1024 * 1024) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._max = max_payload
        self._parts: list[bytes] = []  # complete 0xFFFFFF fragments of the packet being joined
        self._parts_len = 0

    @property
    def pending(self) -> int:
        """Bytes received but not yet returned as part of a packet."""
        return len(self._buf) - self._pos + self._parts_len

    def take_unconsumed(self) -> bytes:
        """Hand back the raw bytes after the last returned packet (the start of a TLS handshake)."""
        data = b"".join(self._parts) + bytes(self._buf[self._pos :])
        self._buf.clear()
        self._pos = 0
        self._parts = []
        self._parts_len = 0
        return data

    def feed(self, data: bytes) -> None:
        """Append received bytes; call ``next_packet`` until it returns None."""
        if data:
            self._buf += data

    def next_packet(self) -> tuple[int, bytes] | None:
        """Return ``(sequence id of the last fragment, payload)`` or None if no whole packet is buffered.

        Raises ``PacketTooLarge`` when the packet being assembled would exceed ``max_payload``.
        """
        buf = self._buf
        while True:
            pos = self._pos
            end = len(buf)
            if end - pos < 4:
                self._compact()
                return None
            length = buf[pos] | (buf[pos + 1] << 8) | (buf[pos + 2] << 16)
            total = self._parts_len + length
            if total > self._max:
                raise PacketTooLarge(f"packet of at least {total} bytes exceeds the limit of {self._max}")
            stop = pos + 4 + length
            if stop > end:
                self._compact()
                return None
            seq = buf[pos + 3]
            with memoryview(buf) as view:
                chunk = bytes(view[pos + 4 : stop])
            self._pos = stop
            if length == MAX_PACKET_PAYLOAD:
                self._parts.append(chunk)
                self._parts_len = total
                continue
            if self._parts:
                self._parts.append(chunk)
                chunk = b"".join(self._parts)
                self._parts = []
                self._parts_len = 0
            if self._pos == len(buf):
                buf.clear()
                self._pos = 0
            return seq, chunk

    def _compact(self) -> None:
        pos = self._pos
        if pos == len(self._buf):
            self._buf.clear()
            self._pos = 0
        elif pos >= self._COMPACT_AT and pos * 2 >= len(self._buf):
            del self._buf[:pos]
            self._pos = 0


def _header(length: int, seq: int) -> bytes:
    return _U32.pack(length | (seq << 24))


def frame(payload: bytes, seq: int) -> tuple[bytes, int]:
    """Wire bytes for one logical packet starting at ``seq``, and the next sequence id.

    Payloads of 0xFFFFFF bytes or more are split into 0xFFFFFF-byte fragments; a payload whose length is
    an exact multiple gets an empty final fragment so the reader knows it has ended.
    """
    seq &= 0xFF
    n = len(payload)
    if n < MAX_PACKET_PAYLOAD:
        return _header(n, seq) + payload, (seq + 1) & 0xFF
    parts: list[bytes] = []
    pos = 0
    while True:
        chunk = payload[pos : pos + MAX_PACKET_PAYLOAD]
        parts.append(_header(len(chunk), seq))
        parts.append(chunk)
        seq = (seq + 1) & 0xFF
        pos += MAX_PACKET_PAYLOAD
        if len(chunk) < MAX_PACKET_PAYLOAD:
            return b"".join(parts), seq


def frame_many(payloads: Iterable[bytes], seq: int) -> tuple[bytes, int]:
    """Frame consecutive packets (e.g. a whole result set) into one buffer for a single write."""
    parts: list[bytes] = []
    for payload in payloads:
        wire, seq = frame(payload, seq)
        parts.append(wire)
    return b"".join(parts), seq


# --------------------------------------------------------------------------------- length-encoded data


def lenenc_int(n: int) -> bytes:
    """Length-encoded integer (1, 3, 4 or 9 bytes)."""
    if 0 <= n < 251:
        return _ONE_BYTE[n]
    if 251 <= n < 0x10000:
        return b"\xfc" + _U16.pack(n)
    if 0x10000 <= n < 0x1000000:
        return b"\xfd" + _U32.pack(n)[:3]
    if 0x1000000 <= n < 1 << 64:
        return b"\xfe" + _U64.pack(n)
    raise ValueError(f"length-encoded integer out of range: {n}")


def lenenc_bytes(b: bytes) -> bytes:
    """Length-encoded string."""
    n = len(b)
    if n < 251:
        return _ONE_BYTE[n] + b
    return lenenc_int(n) + b


def read_lenenc_int(buf: bytes, pos: int) -> tuple[int | None, int]:
    """Read a length-encoded integer at ``pos``; 0xFB (NULL) gives None. Returns (value, next pos)."""
    if pos >= len(buf):
        raise ProtocolError("truncated length-encoded integer")
    first = buf[pos]
    if first < 0xFB:
        return first, pos + 1
    if first == 0xFB:
        return None, pos + 1
    if first == 0xFC:
        end = pos + 3
    elif first == 0xFD:
        end = pos + 4
    elif first == 0xFE:
        end = pos + 9
    else:
        raise ProtocolError("invalid length-encoded integer prefix 0xff")
    if end > len(buf):
        raise ProtocolError("truncated length-encoded integer")
    return int.from_bytes(buf[pos + 1 : end], "little"), end


def read_lenenc_bytes(buf: bytes, pos: int) -> tuple[bytes | None, int]:
    """Read a length-encoded string at ``pos`` (None for NULL). Returns (value, next pos)."""
    n, pos = read_lenenc_int(buf, pos)
    if n is None:
        return None, pos
    end = pos + n
    if end > len(buf):
        raise ProtocolError("truncated length-encoded string")
    return bytes(buf[pos:end]), end


def read_nul_str(buf: bytes, pos: int) -> tuple[bytes, int]:
    """Read a NUL-terminated string at ``pos``. Returns (value without the NUL, next pos)."""
    if pos > len(buf):
        raise ProtocolError("truncated NUL-terminated string")
    nul = buf.find(b"\x00", pos)
    if nul < 0:
        raise ProtocolError("NUL-terminated string without terminator")
    return bytes(buf[pos:nul]), nul + 1


def _read_nul_or_eof_str(buf: bytes, pos: int) -> tuple[bytes, int]:
    """A trailing string that some clients leave unterminated at the end of the packet."""
    nul = buf.find(b"\x00", pos)
    if nul < 0:
        return bytes(buf[pos:]), len(buf)
    return bytes(buf[pos:nul]), nul + 1


def _need(buf: bytes, end: int, what: str) -> None:
    if end > len(buf):
        raise ProtocolError(f"truncated {what}")


# --------------------------------------------------------------------------------------------- builders


def ok_packet(
    affected_rows: int = 0,
    last_insert_id: int = 0,
    status: int = 0,
    warnings: int = 0,
    info: bytes = b"",
    header: int = 0x00,
    *,
    session_track: bool = False,
) -> bytes:
    """OK packet. ``header=0xFE`` gives the OK that ends a result set under CLIENT_DEPRECATE_EOF.

    ``info`` is written as the rest of the packet, the form for clients without CLIENT_SESSION_TRACK;
    pass ``session_track=True`` if that capability was negotiated (info becomes length-encoded).
    """
    out = (
        _ONE_BYTE[header]
        + lenenc_int(affected_rows)
        + lenenc_int(last_insert_id)
        + _HH.pack(status & 0xFFFF, min(warnings, 0xFFFF))
    )
    if session_track:
        return out + lenenc_bytes(info)
    return out + info if info else out


def err_packet(code: int, sqlstate: str, message: str) -> bytes:
    """ERR packet, protocol-4.1 form (``#`` + 5-character SQLSTATE); message cut to 512 bytes of UTF-8."""
    state = sqlstate.encode("ascii", "replace")
    if len(state) != 5:
        state = b"HY000"
    msg = message.encode("utf-8", "replace")
    if len(msg) > 512:
        msg = msg[:512].decode("utf-8", "ignore").encode("utf-8")  # never cut a character in half
    return b"\xff" + _U16.pack(code & 0xFFFF) + b"#" + state + msg


def eof_packet(warnings: int = 0, status: int = 0) -> bytes:
    """Classic EOF packet (clients without CLIENT_DEPRECATE_EOF)."""
    return b"\xfe" + _HH.pack(min(warnings, 0xFFFF), status & 0xFFFF)


def handshake_v10(
    connection_id: int,
    server_version: str,
    salt: bytes,
    capabilities: int,
    charset: int,
    status: int,
    auth_plugin: str,
) -> bytes:
    """Initial handshake (protocol version 10). ``salt`` is the 20-byte auth nonce."""
    if len(salt) != 20:
        raise ValueError("the handshake salt must be 20 bytes")
    plugin_auth = bool(capabilities & Capability.CLIENT_PLUGIN_AUTH)
    parts = [
        b"\x0a",
        server_version.encode("utf-8"),
        b"\x00",
        _U32.pack(connection_id & 0xFFFFFFFF),
        salt[:8],
        b"\x00",
        _U16.pack(capabilities & 0xFFFF),
        _ONE_BYTE[charset & 0xFF],
        _U16.pack(status & 0xFFFF),
        _U16.pack((capabilities >> 16) & 0xFFFF),
        _ONE_BYTE[21 if plugin_auth else 0],
        bytes(10),
    ]
    if capabilities & Capability.CLIENT_SECURE_CONNECTION:
        parts += (salt[8:], b"\x00")
    if plugin_auth:
        parts += (auth_plugin.encode("ascii"), b"\x00")
    return b"".join(parts)


def auth_switch_request(plugin: str, salt: bytes) -> bytes:
    """Ask the client to re-authenticate with ``plugin`` using nonce ``salt``."""
    return b"\xfe" + plugin.encode("ascii") + b"\x00" + salt + b"\x00"


def auth_more_data(data: bytes) -> bytes:
    """Extra authentication data (e.g. caching_sha2 fast-auth result or a public key)."""
    return b"\x01" + data


def column_count(n: int) -> bytes:
    """First packet of a result set."""
    return lenenc_int(n)


_DEF = lenenc_bytes(b"def")


def column_definition(
    name: str,
    type: int,
    *,
    schema: str = "",
    table: str = "",
    org_table: str = "",
    org_name: str = "",
    charset: int = 45,
    length: int = 0,
    flags: int = 0,
    decimals: int = 0,
    field_list_default: bytes | None | Literal[False] = False,
) -> bytes:
    """Column definition (ColumnDefinition41).

    For COM_FIELD_LIST replies pass ``field_list_default`` (the default value as bytes, or None for
    NULL); the default of False omits that trailing field, as every other result set requires.
    """
    out = b"".join(
        (
            _DEF,
            lenenc_bytes(schema.encode("utf-8")),
            lenenc_bytes(table.encode("utf-8")),
            lenenc_bytes(org_table.encode("utf-8")),
            lenenc_bytes(name.encode("utf-8")),
            lenenc_bytes(org_name.encode("utf-8")),
            _COLDEF_TAIL.pack(
                0x0C,
                charset & 0xFFFF,
                min(max(length, 0), 0xFFFFFFFF),
                type & 0xFF,
                flags & 0xFFFF,
                decimals & 0xFF,
                0,
            ),
        )
    )
    if field_list_default is False:
        return out
    if field_list_default is None:
        return out + _NULL_LENENC
    return out + lenenc_bytes(field_list_default)


def stmt_prepare_ok(statement_id: int, num_columns: int, num_params: int, warnings: int = 0) -> bytes:
    """COM_STMT_PREPARE OK response (followed by parameter and column definitions)."""
    return _PREPARE_OK.pack(0, statement_id & 0xFFFFFFFF, num_columns, num_params, 0, min(warnings, 0xFFFF))


def local_infile_request(filename: str) -> bytes:
    """Ask the client to send the contents of ``filename`` (LOAD DATA LOCAL INFILE)."""
    return b"\xfb" + filename.encode("utf-8")


# --------------------------------------------------------------------------------------------- text rows

_INF = float("inf")


def _float_text(v: float) -> bytes | None:
    """A float the way MySQL prints a DOUBLE: shortest round-trip digits, no '.0' on integral values.

    NaN becomes NULL (SQLite itself stores NaN as NULL); infinities, which MySQL cannot produce but
    SQLite can, are sent as ``inf``/``-inf``, which every float parser we know accepts.
    """
    if v != v:
        return None
    if v == _INF:
        return b"inf"
    if v == -_INF:
        return b"-inf"
    a = abs(v)
    if a < 1e15 and v.is_integer():
        return b"%d" % int(v)
    if 1e-15 <= a < 1e-4:
        return format(Decimal(repr(v)), "f").encode("ascii")
    if a >= 1e15:
        text = format(Decimal(repr(v)).normalize(), "e")
        mantissa, _, exp = text.partition("e")
        return f"{mantissa}e{int(exp)}".encode("ascii")
    text = repr(v)
    if "e" in text:
        mantissa, _, exp = text.partition("e")
        text = f"{mantissa}e{int(exp)}"
    return text.encode("ascii")


def _encode_str(v: str) -> bytes:
    try:
        return v.encode("utf-8")
    except UnicodeEncodeError:
        try:
            return v.encode("utf-8", "surrogateescape")  # text that was decoded with surrogateescape
        except UnicodeEncodeError:
            return v.encode("utf-8", "replace")


def encode_text_value(v: object) -> bytes | None:
    """Text-protocol form of a SQLite (or Python) value; None means SQL NULL."""
    t = type(v)
    if t is str:
        return _encode_str(v)  # type: ignore[arg-type]
    if t is int:
        return b"%d" % v  # type: ignore[str-format]
    if v is None:
        return None
    if t is bytes:
        return v  # type: ignore[return-value]
    if t is float:
        return _float_text(v)  # type: ignore[arg-type]
    return _encode_text_other(v)


def _encode_text_other(v: object) -> bytes | None:
    if isinstance(v, bool):
        return b"1" if v else b"0"
    if isinstance(v, int):
        return b"%d" % int(v)
    if isinstance(v, float):
        return _float_text(float(v))
    if isinstance(v, str):
        return _encode_str(str(v))
    if isinstance(v, bytes | bytearray | memoryview):
        return bytes(v)
    if isinstance(v, _dt.datetime):
        return v.isoformat(" ").encode("ascii")
    if isinstance(v, _dt.date | _dt.time):
        return v.isoformat().encode("ascii")
    if isinstance(v, _dt.timedelta):
        return _timedelta_text(v).encode("ascii")
    return _encode_str(str(v))


def _timedelta_text(td: _dt.timedelta) -> str:
    us_total = (td.days * 86400 + td.seconds) * 1_000_000 + td.microseconds
    sign = "-" if us_total < 0 else ""
    secs, us = divmod(abs(us_total), 1_000_000)
    text = f"{sign}{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}"
    return f"{text}.{us:06d}" if us else text


def text_row(values: Sequence[bytes | None]) -> bytes:
    """Text-protocol row from already-encoded values (None is NULL)."""
    out = bytearray()
    for v in values:
        if v is None:
            out += _NULL_LENENC
        else:
            n = len(v)
            if n < 251:
                out.append(n)
            else:
                out += lenenc_int(n)
            out += v
    return bytes(out)


def text_row_values(values: Sequence[object]) -> bytes:
    """Text-protocol row straight from SQLite values (``encode_text_value`` + ``text_row`` in one pass)."""
    out = bytearray()
    for v in values:
        b = encode_text_value(v)
        if b is None:
            out += _NULL_LENENC
        else:
            n = len(b)
            if n < 251:
                out.append(n)
            else:
                out += lenenc_int(n)
            out += b
    return bytes(out)


# ------------------------------------------------------------------------------------------ binary rows

_NUM_PREFIX = re.compile(rb"\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_INT_OVERFLOW = 1 << 64


def _coerce_number(v: object) -> int | float:
    """Numeric value of anything, like SQLite's CAST: leading numeric prefix of text, else 0."""
    if isinstance(v, int | float):
        return v
    if isinstance(v, str):
        v = _encode_str(v)
    if isinstance(v, bytes | bytearray | memoryview):
        m = _NUM_PREFIX.match(bytes(v))
        if m is None:
            return 0
        text = m.group().strip()
        try:
            return int(text)
        except ValueError:
            return float(text)
    if isinstance(v, Decimal):
        return float(v)
    return 0


def _coerce_int(v: object) -> int:
    """Integer value for an integer column (floats rounded, non-numeric text 0, inf saturates)."""
    n = _coerce_number(v)
    if isinstance(n, int):
        return int(n)
    if n != n:
        return 0
    if n in (_INF, -_INF):
        return _INT_OVERFLOW if n > 0 else -_INT_OVERFLOW
    return round(n)


def _coerce_float(v: object) -> float:
    n = _coerce_number(v)
    try:
        return float(n)
    except OverflowError:  # an int beyond the double range
        return _INF if n > 0 else -_INF


_Encoder = Callable[[object], "bytes | None"]


def _int_encoder(packer: Struct, lo: int, hi: int) -> _Encoder:
    pack = packer.pack

    def encode(v: object) -> bytes:
        n = v if type(v) is int else _coerce_int(v)
        if n < lo:
            n = lo
        elif n > hi:
            n = hi
        return pack(n)

    return encode


def _encode_double(v: object) -> bytes:
    return _F64.pack(v if type(v) is float else _coerce_float(v))


def _encode_float(v: object) -> bytes:
    f = v if type(v) is float else _coerce_float(v)
    try:
        return _F32.pack(f)
    except OverflowError:  # beyond the float32 range: MySQL would have stored +-inf-ish
        return _F32.pack(math.copysign(_INF, f))  # type: ignore[arg-type]


_DATETIME_RE = re.compile(
    r"\s*(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:[ T](\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d{1,9}))?)?)?"
    r"\s*(?:Z|[+-]\d{2}:?\d{2})?\s*"
)
_TIME_RE = re.compile(r"\s*(-)?(?:(\d{1,2})\s+)?(\d{1,3}):(\d{1,2})(?::(\d{1,2})(?:\.(\d{1,9}))?)?\s*")

_DateParts = tuple[int, int, int, int, int, int, int]


def _fraction_us(text: str | None) -> int:
    return int(text[:6].ljust(6, "0")) if text else 0


def _as_text(v: object) -> str | None:
    if isinstance(v, str):
        return v
    if isinstance(v, bytes | bytearray | memoryview):
        return bytes(v).decode("ascii", "replace")
    return None


def _datetime_parts(v: object) -> _DateParts | None:
    """(year, month, day, hour, minute, second, microsecond) of a temporal value, or None (zero date)."""
    if isinstance(v, _dt.datetime):
        return (v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond)
    if isinstance(v, _dt.date):
        return (v.year, v.month, v.day, 0, 0, 0, 0)
    text = _as_text(v)
    if text is None:
        return None
    m = _DATETIME_RE.fullmatch(text)
    if m is None:
        return None
    y, mo, d, h, mi, s, frac = m.groups()
    parts = (int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0), _fraction_us(frac))
    if parts[1] > 12 or parts[2] > 31 or parts[3] > 23 or parts[4] > 59 or parts[5] > 59:
        return None
    return parts


def _datetime_struct(p: _DateParts | None, date_only: bool) -> bytes:
    if p is None:
        return b"\x00"
    y, mo, d, h, mi, s, us = p
    if date_only:
        h = mi = s = us = 0
    if us:
        return b"\x0b" + _DATETIME_US.pack(y, mo, d, h, mi, s, us)
    if h or mi or s:
        return b"\x07" + _DATETIME.pack(y, mo, d, h, mi, s)
    if y or mo or d:
        return b"\x04" + _DATE.pack(y, mo, d)
    return b"\x00"


def _encode_datetime(v: object) -> bytes:
    return _datetime_struct(_datetime_parts(v), False)


def _encode_date(v: object) -> bytes:
    return _datetime_struct(_datetime_parts(v), True)


def _time_parts(v: object) -> tuple[bool, int, int, int, int] | None:
    """(negative, total hours, minutes, seconds, microseconds) of a TIME value, or None (zero)."""
    if isinstance(v, _dt.timedelta):
        total = (v.days * 86400 + v.seconds) * 1_000_000 + v.microseconds
        secs, us = divmod(abs(total), 1_000_000)
        return (total < 0, secs // 3600, secs // 60 % 60, secs % 60, us)
    if isinstance(v, _dt.time):
        return (False, v.hour, v.minute, v.second, v.microsecond)
    if isinstance(v, _dt.datetime):
        return (False, v.hour, v.minute, v.second, v.microsecond)
    text = _as_text(v)
    if text is None:
        return None
    m = _TIME_RE.fullmatch(text)
    if m is None:
        p = _datetime_parts(text)  # a full datetime in a TIME column: use its time of day
        return None if p is None else (False, p[3], p[4], p[5], p[6])
    neg, days, h, mi, s, frac = m.groups()
    minutes, seconds = int(mi), int(s or 0)
    if minutes > 59 or seconds > 59:
        return None
    return (bool(neg), int(days or 0) * 24 + int(h), minutes, seconds, _fraction_us(frac))


def _encode_time(v: object) -> bytes:
    p = _time_parts(v)
    if p is None:
        return b"\x00"
    neg, hours, mi, s, us = p
    days, h = divmod(hours, 24)
    if not (days or h or mi or s or us):
        return b"\x00"
    days = min(days, 0xFFFFFFFF)
    if us:
        return b"\x0c" + _TIME_US.pack(neg, days, h, mi, s, us)
    return b"\x08" + _TIME.pack(neg, days, h, mi, s)


def _encode_lenenc(v: object) -> bytes | None:
    b = encode_text_value(v)
    return None if b is None else lenenc_bytes(b)


def _encode_bit(v: object) -> bytes | None:
    if isinstance(v, int) and not isinstance(v, bool):
        if v < 0:
            v &= (1 << 64) - 1
        return lenenc_bytes(v.to_bytes(max(1, (v.bit_length() + 7) // 8), "big"))
    return _encode_lenenc(v)


def _encode_null(v: object) -> None:
    return None  # a NULL-typed column has no wire form for a value: send NULL, never corrupt the row


_INT_LAYOUT: dict[int, tuple[Struct, Struct, int]] = {
    FieldType.TINY: (_I8, _U8, 8),
    FieldType.SHORT: (_I16, _U16, 16),
    FieldType.YEAR: (_I16, _U16, 16),
    FieldType.LONG: (_I32, _U32, 32),
    FieldType.INT24: (_I32, _U32, 32),
    FieldType.LONGLONG: (_I64, _U64, 64),
}

_FIXED_ENCODERS: dict[int, _Encoder] = {
    FieldType.DOUBLE: _encode_double,
    FieldType.FLOAT: _encode_float,
    FieldType.DATE: _encode_date,
    FieldType.DATETIME: _encode_datetime,
    FieldType.TIMESTAMP: _encode_datetime,
    FieldType.TIME: _encode_time,
    FieldType.BIT: _encode_bit,
    FieldType.NULL: _encode_null,
}


@lru_cache(maxsize=64)
def _binary_encoder(type_code: int, unsigned: bool) -> _Encoder:
    layout = _INT_LAYOUT.get(type_code)
    if layout is not None:
        signed_struct, unsigned_struct, bits = layout
        if unsigned:
            return _int_encoder(unsigned_struct, 0, (1 << bits) - 1)
        return _int_encoder(signed_struct, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    return _FIXED_ENCODERS.get(type_code, _encode_lenenc)


class BinaryRowEncoder:
    """Encodes binary-protocol rows for one result set; the per-column encoders are chosen once.

    Coercion rules (SQLite columns can hold any type): integer columns take ints as is, round floats,
    read text like ``CAST(x AS INTEGER)`` (leading numeric prefix, anything else is 0) and saturate at
    the type's range; FLOAT/DOUBLE columns convert the same way to float; DATE/DATETIME/TIMESTAMP parse
    ``YYYY-MM-DD[ HH:MM:SS[.ffffff]]`` text (or Python date/datetime), anything else is the zero date;
    TIME parses ``[-][D ]HHH:MM:SS[.ffffff]``; every other type is sent as a length-encoded string of the
    value's text form. A non-NULL value in a NULL-typed column is sent as NULL.
    """

    __slots__ = ("_encoders", "_bitmap_len")

    def __init__(self, types: Sequence[int], unsigned: Sequence[bool] | None = None) -> None:
        flags = unsigned if unsigned is not None else (False,) * len(types)
        if len(flags) != len(types):
            raise ValueError("types and unsigned differ in length")
        self._encoders = tuple(_binary_encoder(int(t), bool(u)) for t, u in zip(types, flags, strict=True))
        self._bitmap_len = (len(types) + 9) >> 3

    def encode(self, values: Sequence[object]) -> bytes:
        """One row: 0x00 header, NULL bitmap (bit offset 2), then the non-NULL values."""
        encoders = self._encoders
        if len(values) != len(encoders):
            raise ValueError(f"row has {len(values)} values for {len(encoders)} columns")
        bitmap = bytearray(self._bitmap_len)
        parts: list[bytes] = [b"\x00", b""]
        for i, v in enumerate(values):
            if v is not None:
                b = encoders[i](v)
                if b is not None:
                    parts.append(b)
                    continue
            bit = i + 2
            bitmap[bit >> 3] |= 1 << (bit & 7)
        parts[1] = bytes(bitmap)
        return b"".join(parts)


@lru_cache(maxsize=256)
def _row_encoder(types: tuple[int, ...], unsigned: tuple[bool, ...] | None) -> BinaryRowEncoder:
    return BinaryRowEncoder(types, unsigned)


def binary_row(
    values: Sequence[object], types: Sequence[int], unsigned: Sequence[bool] | None = None
) -> bytes:
    """Binary-protocol row (COM_STMT_EXECUTE results); see ``BinaryRowEncoder`` for the coercion rules.

    Prefer one ``BinaryRowEncoder`` per result set on hot paths; this wrapper looks one up per call.
    """
    return _row_encoder(tuple(types), None if unsigned is None else tuple(unsigned)).encode(values)


# ------------------------------------------------------------------------------------------- handshake


@dataclass
class HandshakeResponse:
    """What the client answered to the initial handshake (or an SSLRequest, before TLS starts)."""

    capabilities: int
    max_packet: int
    charset: int
    username: str
    auth_response: bytes
    database: str | None
    auth_plugin: str | None
    attributes: dict[str, str] = field(default_factory=dict)
    is_ssl_request: bool = False


_RESPONSE_HEAD = Struct("<IIB23x")


def _read_auth_data(payload: bytes, pos: int, caps: int) -> tuple[bytes, int]:
    if caps & Capability.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA:
        data, pos = read_lenenc_bytes(payload, pos)
        return data or b"", pos
    if caps & Capability.CLIENT_SECURE_CONNECTION:
        _need(payload, pos + 1, "auth response length")
        end = pos + 1 + payload[pos]
        _need(payload, end, "auth response")
        return bytes(payload[pos + 1 : end]), end
    return _read_nul_or_eof_str(payload, pos)


def _read_attributes(payload: bytes, pos: int) -> dict[str, str]:
    blob, _ = read_lenenc_bytes(payload, pos)
    attrs: dict[str, str] = {}
    if not blob:
        return attrs
    p = 0
    while p < len(blob):
        key, p = read_lenenc_bytes(blob, p)
        value, p = read_lenenc_bytes(blob, p)
        if key is None:
            raise ProtocolError("NULL connection attribute name")
        attrs[key.decode("utf-8", "replace")] = (value or b"").decode("utf-8", "replace")
    return attrs


def parse_handshake_response(payload: bytes) -> HandshakeResponse:
    """Parse HandshakeResponse41, or the 32-byte SSLRequest a client sends before starting TLS."""
    if len(payload) < 32:
        raise ProtocolError("handshake response shorter than 32 bytes")
    caps, max_packet, charset = _RESPONSE_HEAD.unpack_from(payload, 0)
    if not caps & Capability.CLIENT_PROTOCOL_41:
        raise ProtocolError("client does not speak protocol 4.1")
    if len(payload) == 32:
        if not caps & Capability.CLIENT_SSL:
            raise ProtocolError("handshake response without a user name")
        return HandshakeResponse(caps, max_packet, charset, "", b"", None, None, {}, True)
    user, pos = read_nul_str(payload, 32)
    auth, pos = _read_auth_data(payload, pos, caps)
    database = plugin = None
    if caps & Capability.CLIENT_CONNECT_WITH_DB and pos < len(payload):
        db, pos = _read_nul_or_eof_str(payload, pos)
        database = db.decode("utf-8", "replace") or None
    if caps & Capability.CLIENT_PLUGIN_AUTH and pos < len(payload):
        name, pos = _read_nul_or_eof_str(payload, pos)
        plugin = name.decode("ascii", "replace") or None
    attrs: dict[str, str] = {}
    if caps & Capability.CLIENT_CONNECT_ATTRS and pos < len(payload):
        attrs = _read_attributes(payload, pos)
    return HandshakeResponse(
        caps, max_packet, charset, user.decode("utf-8", "replace"), auth, database, plugin, attrs, False
    )


def parse_change_user(
    payload: bytes, capabilities: int
) -> tuple[str, bytes, str | None, int | None, str | None]:
    """COM_CHANGE_USER -> (user, auth_response, database, charset, auth plugin)."""
    if not payload or payload[0] != Command.COM_CHANGE_USER:
        raise ProtocolError("not a COM_CHANGE_USER packet")
    user, pos = read_nul_str(payload, 1)
    if capabilities & Capability.CLIENT_SECURE_CONNECTION:
        _need(payload, pos + 1, "auth response length")
        end = pos + 1 + payload[pos]
        _need(payload, end, "auth response")
        auth = bytes(payload[pos + 1 : end])
        pos = end
    else:
        auth, pos = read_nul_str(payload, pos)
    db, pos = _read_nul_or_eof_str(payload, pos)
    charset = plugin = None
    if pos + 2 <= len(payload):
        charset = _U16.unpack_from(payload, pos)[0]
        pos += 2
        if capabilities & Capability.CLIENT_PLUGIN_AUTH and pos < len(payload):
            name, pos = _read_nul_or_eof_str(payload, pos)
            plugin = name.decode("ascii", "replace") or None
    elif pos < len(payload):
        raise ProtocolError("truncated COM_CHANGE_USER charset")
    return user.decode("utf-8", "replace"), auth, db.decode("utf-8", "replace") or None, charset, plugin


# ---------------------------------------------------------------------------------- prepared statements


@dataclass
class ExecuteRequest:
    """A decoded COM_STMT_EXECUTE. ``param_types`` are (type code, unsigned) pairs, kept for re-execute."""

    statement_id: int
    flags: int
    params: list[object]
    param_types: list[tuple[int, bool]]


def execute_statement_id(payload: bytes) -> int:
    """Statement id of a COM_STMT_EXECUTE, needed to look up ``num_params`` before the full parse."""
    return _stmt_id(payload, Command.COM_STMT_EXECUTE)


def _stmt_id(payload: bytes, command: int) -> int:
    if len(payload) < 5 or payload[0] != command:
        raise ProtocolError(f"malformed {Command(command).name} packet")
    return _U32.unpack_from(payload, 1)[0]


_ParamDecoder = Callable[[bytes, int, bool], tuple[object, int]]


def _int_decoder(signed: Struct, unsigned_: Struct) -> _ParamDecoder:
    size = signed.size

    def decode(buf: bytes, pos: int, unsigned: bool) -> tuple[object, int]:
        end = pos + size
        _need(buf, end, "integer parameter")
        return (unsigned_ if unsigned else signed).unpack_from(buf, pos)[0], end

    return decode


def _decode_double(buf: bytes, pos: int, unsigned: bool) -> tuple[object, int]:
    _need(buf, pos + 8, "DOUBLE parameter")
    return _F64.unpack_from(buf, pos)[0], pos + 8


def _decode_float(buf: bytes, pos: int, unsigned: bool) -> tuple[object, int]:
    _need(buf, pos + 4, "FLOAT parameter")
    raw = _F32.unpack_from(buf, pos)[0]
    return _shortest_float32(raw), pos + 4


def _shortest_float32(x: float) -> float:
    """The shortest decimal that is the same float32 (so a client's 0.1f arrives as 0.1, not 0.100000001)."""
    if not math.isfinite(x):
        return x
    for digits in range(6, 10):
        candidate = float(f"{x:.{digits}g}")
        if _F32.unpack(_F32.pack(candidate))[0] == x:
            return candidate
    return x


def _string_param(b: bytes) -> str | bytes:
    """A string-typed parameter: text if it is UTF-8, else the raw bytes.

    Drivers send Python ``bytes`` / PHP binary strings with a string type code (mysql-connector uses
    MYSQL_TYPE_STRING, mysqlnd VAR_STRING), so a BLOB value arrives here. Replacing invalid sequences
    with U+FFFD would silently corrupt it; MySQL stores the bytes as sent, and so do we (as a BLOB).
    """
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b


def _decode_text(buf: bytes, pos: int, unsigned: bool) -> tuple[object, int]:
    b, pos = read_lenenc_bytes(buf, pos)
    return (None if b is None else _string_param(b)), pos


def _decode_bytes(buf: bytes, pos: int, unsigned: bool) -> tuple[object, int]:
    return read_lenenc_bytes(buf, pos)


def _temporal_struct(buf: bytes, pos: int, allowed: tuple[int, ...]) -> tuple[int, int]:
    _need(buf, pos + 1, "temporal parameter")
    n = buf[pos]
    if n not in allowed:
        raise ProtocolError(f"invalid temporal parameter length {n}")
    _need(buf, pos + 1 + n, "temporal parameter")
    return n, pos + 1


def _decode_datetime_as(date_only: bool) -> _ParamDecoder:
    def decode(buf: bytes, pos: int, unsigned: bool) -> tuple[object, int]:
        n, pos = _temporal_struct(buf, pos, (0, 4, 7, 11))
        y = mo = d = h = mi = s = us = 0
        if n >= 4:
            y, mo, d = _DATE.unpack_from(buf, pos)
        if n >= 7:
            h, mi, s = buf[pos + 4], buf[pos + 5], buf[pos + 6]
        if n == 11:
            us = _U32.unpack_from(buf, pos + 7)[0]
        text = f"{y:04d}-{mo:02d}-{d:02d}"
        if not date_only and n != 4:
            text += f" {h:02d}:{mi:02d}:{s:02d}"
            if us:
                text += f".{us:06d}"
        return text, pos + n

    return decode


def _decode_time(buf: bytes, pos: int, unsigned: bool) -> tuple[object, int]:
    n, pos = _temporal_struct(buf, pos, (0, 8, 12))
    if n == 0:
        return "00:00:00", pos
    neg, days, h, mi, s = _TIME.unpack_from(buf, pos)
    text = f"{'-' if neg else ''}{days * 24 + h:02d}:{mi:02d}:{s:02d}"
    if n == 12:
        us = _U32.unpack_from(buf, pos + 8)[0]
        if us:
            text += f".{us:06d}"
    return text, pos + n


def _decode_null(buf: bytes, pos: int, unsigned: bool) -> tuple[object, int]:
    return None, pos


_TEXT_PARAM_TYPES = frozenset(
    {
        FieldType.DECIMAL,
        FieldType.NEWDECIMAL,
        FieldType.VARCHAR,
        FieldType.VAR_STRING,
        FieldType.STRING,
        FieldType.ENUM,
        FieldType.SET,
        FieldType.JSON,
    }
)
_BYTES_PARAM_TYPES = frozenset(
    {
        FieldType.TINY_BLOB,
        FieldType.MEDIUM_BLOB,
        FieldType.LONG_BLOB,
        FieldType.BLOB,
        FieldType.GEOMETRY,
        FieldType.BIT,
        FieldType.VECTOR,
    }
)

_PARAM_DECODERS: dict[int, _ParamDecoder] = {
    FieldType.TINY: _int_decoder(_I8, _U8),
    FieldType.SHORT: _int_decoder(_I16, _U16),
    FieldType.YEAR: _int_decoder(_I16, _U16),
    FieldType.LONG: _int_decoder(_I32, _U32),
    FieldType.INT24: _int_decoder(_I32, _U32),
    FieldType.LONGLONG: _int_decoder(_I64, _U64),
    FieldType.FLOAT: _decode_float,
    FieldType.DOUBLE: _decode_double,
    FieldType.DATE: _decode_datetime_as(True),
    FieldType.DATETIME: _decode_datetime_as(False),
    FieldType.TIMESTAMP: _decode_datetime_as(False),
    FieldType.TIME: _decode_time,
    FieldType.NULL: _decode_null,
    **dict.fromkeys(_TEXT_PARAM_TYPES, _decode_text),
    **dict.fromkeys(_BYTES_PARAM_TYPES, _decode_bytes),
}


def _read_param_types(payload: bytes, pos: int, num_params: int) -> tuple[list[tuple[int, bool]], int]:
    end = pos + 2 * num_params
    _need(payload, end, "parameter types")
    types = [(payload[p], bool(payload[p + 1] & PARAM_UNSIGNED_FLAG)) for p in range(pos, end, 2)]
    for type_code, _ in types:
        if type_code not in _PARAM_DECODERS:
            raise ProtocolError(f"unsupported parameter type {type_code}")
    return types, end


def parse_stmt_execute(
    payload: bytes,
    num_params: int,
    previous_types: list[tuple[int, bool]] | None,
    long_data: dict[int, bytes],
) -> ExecuteRequest:
    """Decode COM_STMT_EXECUTE (``payload[0]`` is 0x17) for a statement with ``num_params`` markers.

    When the client does not re-send parameter types (new-params-bound flag 0, as libmysqlclient and
    mysqlnd do on re-execute), ``previous_types`` (those of the last execute) are used. Parameters in
    ``long_data`` (sent with COM_STMT_SEND_LONG_DATA) take that value and are absent from the packet.
    """
    if len(payload) < 10 or payload[0] != Command.COM_STMT_EXECUTE:
        raise ProtocolError("malformed COM_STMT_EXECUTE packet")
    stmt_id, flags, _iterations = _EXEC_HEAD.unpack_from(payload, 1)
    if num_params <= 0:
        return ExecuteRequest(stmt_id, flags, [], [])
    bitmap_end = 10 + ((num_params + 7) >> 3)
    _need(payload, bitmap_end + 1, "parameter NULL bitmap")
    null_bitmap = payload[10:bitmap_end]
    pos = bitmap_end + 1
    if payload[bitmap_end]:
        types, pos = _read_param_types(payload, pos, num_params)
    elif previous_types and len(previous_types) == num_params:
        types = list(previous_types)
    else:
        raise ProtocolError("execute without parameter types, and none bound before")
    params: list[object] = []
    for i, (type_code, unsigned) in enumerate(types):
        if long_data and i in long_data:
            params.append(_long_data_value(long_data[i], type_code))
        elif null_bitmap[i >> 3] & (1 << (i & 7)):
            params.append(None)
        else:
            value, pos = _PARAM_DECODERS[type_code](payload, pos, unsigned)
            params.append(value)
    return ExecuteRequest(stmt_id, flags, params, types)


def _long_data_value(data: bytes, type_code: int) -> object:
    if type_code in _TEXT_PARAM_TYPES:
        return _string_param(data)
    return data


def parse_send_long_data(payload: bytes) -> tuple[int, int, bytes]:
    """COM_STMT_SEND_LONG_DATA -> (statement id, parameter index, data chunk)."""
    if len(payload) < 7 or payload[0] != Command.COM_STMT_SEND_LONG_DATA:
        raise ProtocolError("malformed COM_STMT_SEND_LONG_DATA packet")
    return _U32.unpack_from(payload, 1)[0], _U16.unpack_from(payload, 5)[0], bytes(payload[7:])


def parse_stmt_close(payload: bytes) -> int:
    """COM_STMT_CLOSE -> statement id."""
    return _stmt_id(payload, Command.COM_STMT_CLOSE)


def parse_stmt_reset(payload: bytes) -> int:
    """COM_STMT_RESET -> statement id."""
    return _stmt_id(payload, Command.COM_STMT_RESET)


def parse_stmt_fetch(payload: bytes) -> tuple[int, int]:
    """COM_STMT_FETCH -> (statement id, number of rows)."""
    if len(payload) < 9 or payload[0] != Command.COM_STMT_FETCH:
        raise ProtocolError("malformed COM_STMT_FETCH packet")
    return _U32.unpack_from(payload, 1)[0], _U32.unpack_from(payload, 5)[0]


def parse_set_option(payload: bytes) -> int:
    """COM_SET_OPTION -> option (see ``constants.SetOption``)."""
    if len(payload) < 3 or payload[0] != Command.COM_SET_OPTION:
        raise ProtocolError("malformed COM_SET_OPTION packet")
    return _U16.unpack_from(payload, 1)[0]


def parse_field_list(payload: bytes) -> tuple[str, str]:
    """COM_FIELD_LIST -> (table, column wildcard)."""
    if not payload or payload[0] != Command.COM_FIELD_LIST:
        raise ProtocolError("malformed COM_FIELD_LIST packet")
    table, pos = _read_nul_or_eof_str(payload, 1)
    return table.decode("utf-8", "replace"), bytes(payload[pos:]).decode("utf-8", "replace")
