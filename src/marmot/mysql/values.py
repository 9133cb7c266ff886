"""Value codecs of the MySQL protocol: SQLite values as text-protocol and binary-protocol row values.

Text-protocol rows (COM_QUERY results) carry every value as a length-encoded string: ``encode_text_value``
gives MySQL's spelling of a value (a float the way MySQL prints a DOUBLE, dates in ISO form), and
``text_row`` / ``text_row_values`` lay out one row. Binary-protocol rows (COM_STMT_EXECUTE results) carry
each value in its column type's binary form: ``BinaryRowEncoder`` / ``binary_row``.

Binary-protocol values come out of SQLite, which is dynamically typed: a column declared ``BIGINT`` can
hold ``'12'`` or ``1.5``. The binary encoders therefore coerce instead of failing, the way SQLite's own
``CAST`` does (see ``BinaryRowEncoder``); a wrong-typed value never breaks the row stream.

This code runs per row and per value, so it uses precompiled ``struct.Struct`` objects and keeps
per-column work (choosing an encoder) out of the per-row loop (``BinaryRowEncoder``). ``packets``
re-exports the public names.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Callable, Sequence
from decimal import Decimal
from functools import lru_cache
from struct import Struct

from .constants import FieldType
from .wire import _NULL_LENENC, lenenc_bytes, lenenc_int

__all__ = [
    "BinaryRowEncoder",
    "binary_row",
    "encode_text_value",
    "text_row",
    "text_row_values",
]

_U16 = Struct("<H")
_U32 = Struct("<I")
_U64 = Struct("<Q")
_I8, _U8 = Struct("<b"), Struct("<B")
_I16, _I32, _I64 = Struct("<h"), Struct("<i"), Struct("<q")
_F32, _F64 = Struct("<f"), Struct("<d")
_DATE = Struct("<HBB")
_DATETIME = Struct("<HBBBBB")
_DATETIME_US = Struct("<HBBBBBI")
_TIME = Struct("<BIBBB")
_TIME_US = Struct("<BIBBBI")


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
    # exact type tests (a bool or a subclass takes the slow path); type() twice costs no more than a local
    if type(v) is str:
        return _encode_str(v)
    if type(v) is int:
        return b"%d" % v
    if v is None:
        return None
    if type(v) is bytes:
        return v
    if type(v) is float:
        return _float_text(v)
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
        return _F32.pack(math.copysign(_INF, f))


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
