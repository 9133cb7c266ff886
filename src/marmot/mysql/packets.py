"""Sans-I/O codec of the MySQL client/server protocol: framing, packet builders and parsers.

Nothing here touches a socket or an event loop. The connection loop feeds received bytes into a
``PacketFramer`` and gets whole logical packets out; it hands payloads to the ``parse_*`` functions and
turns replies built by the builder functions into wire bytes with ``frame``. Keeping the protocol pure
makes it testable byte for byte, fuzzable, and reusable by bench and test tools (see DESIGN.md, "Sans-I/O
protocol cores").

The codec is four modules; this one is the entry point and re-exports the public names of the others, so
callers import from ``packets`` only:

* ``wire`` -- length-encoded integers and strings, NUL-terminated strings, ``ProtocolError``;
* ``packets`` (this module) -- framing, packet builders, and the parsers of the handshake and of every
  command packet but COM_STMT_EXECUTE's parameters;
* ``values`` -- SQLite values as text- and binary-protocol row values (the coercion rules live there);
* ``stmt_params`` -- ``parse_stmt_execute``: the bound parameters of COM_STMT_EXECUTE.

Rules every function of the codec keeps:

* Parsers raise ``ProtocolError`` (and only that) for malformed input. Client bytes are untrusted: an
  ``IndexError`` or ``struct.error`` escaping from here would be a crash path, while a ``ProtocolError`` is
  the documented signal for "close this connection". The fuzz tests hold us to it.
* Builders return payloads *without* the 4-byte packet header; ``frame`` adds headers and sequence ids,
  so the caller controls sequencing in one place.
* This code runs per packet and per row, so it uses precompiled ``struct.Struct`` objects, avoids
  intermediate copies, and keeps per-column work (choosing an encoder) out of the per-row loop
  (``values.BinaryRowEncoder``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from struct import Struct
from typing import Literal

from .constants import (
    MAX_PACKET_PAYLOAD,
    Capability,
    Command,
)
from .stmt_params import ExecuteRequest, parse_stmt_execute
from .values import BinaryRowEncoder, binary_row, encode_text_value, text_row, text_row_values
from .wire import (
    _NULL_LENENC,
    _ONE_BYTE,
    ProtocolError,
    _need,
    _read_nul_or_eof_str,
    lenenc_bytes,
    lenenc_int,
    read_lenenc_bytes,
    read_lenenc_int,
    read_nul_str,
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
_HH = Struct("<HH")
_PREPARE_OK = Struct("<BIHHBH")
_COLDEF_TAIL = Struct("<BHIBHBH")  # 0x0c, charset, length, type, flags, decimals, filler


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


def execute_statement_id(payload: bytes) -> int:
    """Statement id of a COM_STMT_EXECUTE, needed to look up ``num_params`` before the full parse."""
    return _stmt_id(payload, Command.COM_STMT_EXECUTE)


def _stmt_id(payload: bytes, command: int) -> int:
    if len(payload) < 5 or payload[0] != command:
        raise ProtocolError(f"malformed {Command(command).name} packet")
    stmt_id: int = _U32.unpack_from(payload, 1)[0]
    return stmt_id


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
    option: int = _U16.unpack_from(payload, 1)[0]
    return option


def parse_field_list(payload: bytes) -> tuple[str, str]:
    """COM_FIELD_LIST -> (table, column wildcard)."""
    if not payload or payload[0] != Command.COM_FIELD_LIST:
        raise ProtocolError("malformed COM_FIELD_LIST packet")
    table, pos = _read_nul_or_eof_str(payload, 1)
    return table.decode("utf-8", "replace"), bytes(payload[pos:]).decode("utf-8", "replace")
