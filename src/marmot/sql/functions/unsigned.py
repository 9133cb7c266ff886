"""BIGINT UNSIGNED above 2**63-1: how such a value is stored, and the function that finds it.

Why: a SQLite INTEGER is a signed 64-bit number, and a larger integer given to an INTEGER-affinity column
becomes a lossy REAL (18446744073709551615 -> 1.8446744073709552e19). MySQL's BIGINT UNSIGNED reaches
2**64-1. So the column keeps its INTEGER affinity (values up to 2**63-1 stay plain integers: indexes,
joins with INTEGER keys and integer arithmetic are unchanged for them) and a value above 2**63-1 is stored
as an 8-byte big-endian BLOB: SQLite sorts every BLOB after every number, and BLOBs of one length in byte
order, which is numeric order here, so ORDER BY, indexes and UNIQUE stay right. The column check
(``engine/column_checks.py``) stores values this way; the wire layer (``mysql/result_packets.py``) turns
them back into numbers for columns typed BIGINT UNSIGNED; the transpiler wraps the other side of a
comparison with such a column in ``__marmot_u64`` so a literal or parameter finds the stored form.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["FUNCTIONS", "INT64_MAX", "UINT64_MAX", "decode", "encode"]

INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1
_INTEGER_TEXT = re.compile(r"\s*\+?\d+\s*$")


def encode(n: int) -> int | bytes:
    """The stored form of an integer of a BIGINT UNSIGNED column."""
    return n if n <= INT64_MAX else n.to_bytes(8, "big")


def decode(v: object) -> object:
    """A stored BIGINT UNSIGNED value as the number it stands for (other values unchanged)."""
    if type(v) is bytes and len(v) == 8 and v[0] & 0x80:
        return int.from_bytes(v, "big")
    return v


def is_encoded(v: object) -> bool:
    return type(v) is bytes and len(v) == 8 and bool(v[0] & 0x80)


def as_stored(v: object) -> object:
    """``__marmot_u64(v)``: a value compared with a BIGINT UNSIGNED column, in the column's stored form
    when it is an integer above 2**63-1 (given as a number or as text); anything else unchanged."""
    if type(v) is int:
        return encode(v) if INT64_MAX < v <= UINT64_MAX else v
    if type(v) is str and len(v) >= 19 and _INTEGER_TEXT.match(v):
        n = int(v)
        return encode(n) if INT64_MAX < n <= UINT64_MAX else v
    if type(v) is float and v.is_integer() and 2.0**63 <= v < 2.0**64:
        return encode(int(v))
    return v


# name -> (callable, number of args, deterministic); registered by ``marmot.sql.functions.register``
FUNCTIONS: dict[str, tuple[Callable[..., object], int, bool]] = {
    "__marmot_u64": (as_stored, 1, True),
}
