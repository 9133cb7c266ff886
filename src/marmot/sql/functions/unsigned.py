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


_NUMBER = re.compile(r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def _number(v: object) -> int | float | None:
    if v is None or isinstance(v, (int, float)):
        return v
    if isinstance(v, bytes) and is_encoded(v):
        return int.from_bytes(v, "big")
    text = v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
    m = _NUMBER.match(text)
    if m is None:
        return 0
    t = m.group().strip()
    return int(t) if t.lstrip("+-").isdigit() else float(t)


def _arithmetic(op: Callable[[int | float, int | float], int | float]) -> Callable[[object, object], object]:
    """``+ - *`` with a BIGINT UNSIGNED column: the stored form read as its number, a result above
    2**63-1 given back in the stored form (so ``SET n = n + 1`` stays exact); beyond 64 bits: a double."""

    def call(a: object, b: object) -> object:
        x, y = _number(a), _number(b)
        if x is None or y is None:
            return None
        r = op(x, y)
        if type(r) is not int or -INT64_MAX - 1 <= r <= INT64_MAX:
            return r
        return encode(r) if 0 < r <= UINT64_MAX else float(r)

    return call


# name -> (callable, number of args, deterministic); registered by ``marmot.sql.functions.register``
FUNCTIONS: dict[str, tuple[Callable[..., object], int, bool]] = {
    "__marmot_u64": (as_stored, 1, True),
    "__marmot_u64_add": (_arithmetic(lambda x, y: x + y), 2, True),
    "__marmot_u64_sub": (_arithmetic(lambda x, y: x - y), 2, True),
    "__marmot_u64_mul": (_arithmetic(lambda x, y: x * y), 2, True),
}
