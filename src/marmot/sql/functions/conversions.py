"""How MySQL's functions see SQLite values: as text, as numbers, as bytes.

SQLite hands a user function one of ``None | int | float | str | bytes``. MySQL functions convert their
arguments by MySQL's rules, which differ from Python's and SQLite's: a string used as a number is read up to
its first non-numeric character (``'12abc'`` is 12, ``'abc'`` is 0), a DOUBLE used as an integer is rounded
(half away from zero), a number used as a string is printed the way MySQL prints it (``1e20``, not
``1e+20``), and bytes (binary strings) stay bytes. Every function module uses these helpers so the rules
live in one place.

``FunctionError`` is what a function raises for a condition MySQL reports as an error rather than a NULL
(``DOUBLE value is out of range``, invalid JSON); it carries MySQL's code and SQLSTATE.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
UINT64_MASK = 2**64 - 1
MAX_STRING = 64 * 1024 * 1024  # max_allowed_packet: longer results are NULL in MySQL

_NUM_PREFIX_RE = re.compile(r"\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)")
_INT_PREFIX_RE = re.compile(r"\s*([+-]?\d+)")


class FunctionError(Exception):
    """An error MySQL raises from inside a function (the statement fails with this code)."""

    def __init__(self, code: int, sqlstate: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.sqlstate = sqlstate
        self.message = message


def out_of_range(kind: str, expr: str) -> FunctionError:
    return FunctionError(1690, "22003", f"{kind} value is out of range in '{expr}'")


def float_text(v: float) -> str:
    """A DOUBLE as MySQL prints it: shortest round-trip digits, integral values without '.0'."""
    if v != v:
        return "nan"
    a = abs(v)
    if a < 1e15 and v.is_integer():
        return str(int(v))
    if a == float("inf"):
        return "inf" if v > 0 else "-inf"
    if 1e-15 <= a < 1e-4:
        return format(Decimal(repr(v)), "f")
    if a >= 1e15:
        mantissa, _, exp = format(Decimal(repr(v)).normalize(), "e").partition("e")
        return f"{mantissa}e{int(exp)}"
    text = repr(v)
    if "e" in text:
        mantissa, _, exp = text.partition("e")
        text = f"{mantissa}e{int(exp)}"
    return text


def text(v: object) -> str:
    """A non-NULL value as a MySQL string (bytes decoded as UTF-8)."""
    # exact type tests, not isinstance: a bool or a str subclass is printed by str(), as before
    if type(v) is str:
        return v
    if type(v) is float:
        return float_text(v)
    if type(v) is bytes:
        return v.decode("utf-8", "replace")
    return str(v)


def to_bytes(v: object) -> bytes:
    """A non-NULL value as the bytes MySQL stores for it (UTF-8 for text)."""
    if type(v) is bytes:
        return v
    return text(v).encode("utf-8", "surrogateescape")


def to_number(v: object) -> int | float:
    """A non-NULL value in numeric context: ints stay ints, strings are read up to their first non-digit."""
    if type(v) is int or type(v) is float:
        return v
    s = v.decode("utf-8", "replace") if type(v) is bytes else str(v)
    m = _NUM_PREFIX_RE.match(s)
    if m is None:
        return 0
    num = m.group(1)
    if "." in num or "e" in num or "E" in num:
        try:
            return float(num)
        except OverflowError:
            return float("inf") if not num.startswith("-") else float("-inf")
    return int(num)


def to_float(v: object) -> float:
    return float(to_number(v))


def round_half_away(f: float) -> int:
    """MySQL's DOUBLE -> integer conversion (rint on a decimal literal's value: 2.5 -> 3, -2.5 -> -3)."""
    if f != f:
        return 0
    if f >= 0:
        n = int(f)
        return n + 1 if f - n >= 0.5 else n
    n = int(f)
    return n - 1 if n - f >= 0.5 else n


def to_int(v: object) -> int:
    """A non-NULL value in integer context: floats rounded, strings read up to the first non-digit."""
    if type(v) is int:
        return v
    if type(v) is float:
        if v != v:  # noqa: PLR0124 - NaN
            return 0
        if v >= 9.2233720368547758e18:
            return INT64_MAX
        if v <= -9.2233720368547758e18:
            return INT64_MIN
        return round_half_away(v)
    s = v.decode("utf-8", "replace") if type(v) is bytes else str(v)
    m = _INT_PREFIX_RE.match(s)
    if m is None:
        return 0
    n = int(m.group(1))
    return INT64_MAX if n > INT64_MAX else INT64_MIN if n < INT64_MIN else n


def clamp_int(n: int) -> int | float:
    """An integer result SQLite can hold (beyond 64 bits MySQL would switch to DECIMAL/DOUBLE)."""
    if INT64_MIN <= n <= INT64_MAX:
        return n
    return float(n)


class _FoldTable(dict[int, str]):
    """str.translate table: a character -> its lower-case base letter (accents dropped), filled on demand."""

    def __missing__(self, code: int) -> str:
        c = chr(code)
        low = c.lower()
        if len(low) != 1:
            low = c
        parts = unicodedata.normalize("NFD", low)
        out = parts[0] if len(parts) > 1 and all(unicodedata.combining(x) for x in parts[1:]) else low
        if len(out.lower()) == 1:
            out = out.lower()
        self[code] = out
        return out


_FOLD = _FoldTable()


def fold(s: str) -> str:
    """Text as the default collation (utf8mb4_general_ci) compares it: case and accents ignored.

    Every character maps to one character, so positions in the folded text are positions in ``s``.
    """
    if s.isascii():
        return s.lower()
    return s.translate(_FOLD)
