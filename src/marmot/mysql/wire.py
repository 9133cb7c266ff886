"""Primitive data types of the MySQL wire protocol: length-encoded integers and strings, NUL-terminated
strings, and ``ProtocolError``, the one exception the codec's parsers raise.

Shared by the packet builders and parsers (``packets``), the value codecs (``values``) and the
COM_STMT_EXECUTE parameter decoder (``stmt_params``). It imports nothing of ours, so all three can depend
on it without an import cycle; ``packets`` re-exports its public names.

Client bytes are untrusted: the readers raise ``ProtocolError`` (and only that) for truncated or malformed
input, never ``IndexError``. The ``_``-prefixed names are internal to the ``mysql`` codec modules.
"""

from __future__ import annotations

from struct import Struct

__all__ = [
    "ProtocolError",
    "lenenc_bytes",
    "lenenc_int",
    "read_lenenc_bytes",
    "read_lenenc_int",
    "read_nul_str",
]

_U16 = Struct("<H")
_U32 = Struct("<I")
_U64 = Struct("<Q")

_ONE_BYTE = tuple(bytes((i,)) for i in range(256))
_NULL_LENENC = b"\xfb"


class ProtocolError(Exception):
    """The peer sent bytes that are not a valid packet of the expected kind; close the connection."""


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
