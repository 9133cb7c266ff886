"""Decoding the bound parameters of COM_STMT_EXECUTE into Python values for the engine.

After the statement id, flags and iteration count, the packet carries a NULL bitmap, optionally the
parameter types (type code + unsigned flag), then each non-NULL value in its type's binary form. Why the
decoder looks like this:

* Client bytes are untrusted: every read is bounds-checked (``_need``), and an unsupported type code or a
  temporal struct of an impossible length raises ``ProtocolError`` (and only that), the signal for "close
  this connection". The fuzz tests hold us to it.
* Drivers re-execute without re-sending the types (libmysqlclient, mysqlnd), so the types of the last
  execute are kept in ``ExecuteRequest.param_types`` and handed back in by the caller.
* One decoder per type code, chosen from a table: integers, floats (FLOAT as its shortest float32
  decimal), temporals as MySQL's text form, strings as text if they are UTF-8 else the raw bytes
  (see ``_string_param``), blobs as bytes.
* Values streamed earlier with COM_STMT_SEND_LONG_DATA take their parameter's place and are absent from
  the packet.

``packets`` re-exports the public names.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from struct import Struct

from .constants import PARAM_UNSIGNED_FLAG, Command, FieldType
from .wire import ProtocolError, _need, read_lenenc_bytes

__all__ = [
    "ExecuteRequest",
    "parse_stmt_execute",
]

_U16 = Struct("<H")
_U32 = Struct("<I")
_U64 = Struct("<Q")
_I8, _U8 = Struct("<b"), Struct("<B")
_I16, _I32, _I64 = Struct("<h"), Struct("<i"), Struct("<q")
_F32, _F64 = Struct("<f"), Struct("<d")
_EXEC_HEAD = Struct("<IBI")  # statement id, flags, iteration count
_DATE = Struct("<HBB")
_TIME = Struct("<BIBBB")


@dataclass
class ExecuteRequest:
    """A decoded COM_STMT_EXECUTE. ``param_types`` are (type code, unsigned) pairs, kept for re-execute."""

    statement_id: int
    flags: int
    params: list[object]
    param_types: list[tuple[int, bool]]


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
