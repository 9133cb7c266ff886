"""Exact DECIMAL arithmetic as SQLite user functions (the transpiler's side: ``sql/decimal_rewrites.py``).

Why: SQLite computes ``0.1 + 0.2`` in binary floating point (0.30000000000000004) and SUM of a column in
doubles; MySQL computes DECIMAL operands and exact-value literals exactly. The transpiler sends every
arithmetic operation, CAST, SUM and AVG whose operands are DECIMAL to these functions. They take any
SQLite value (a stored DECIMAL is canonical text, a bound literal an int, a float or text), compute with
Python's ``decimal`` at 100 digits (MySQL's DECIMAL has at most 65) and return the result as canonical
text, which the wire layer prints with the result column's scale.

Division follows MySQL: the quotient has the dividend's scale plus ``div_precision_increment`` (4), is
rounded half away from zero, and a zero divisor gives NULL.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Any

__all__ = ["AGGREGATES", "FUNCTIONS", "to_decimal"]

_CTX = Context(prec=100, rounding=ROUND_HALF_UP)
_NUMBER_PREFIX = re.compile(r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_ZERO = Decimal(0)


def to_decimal(v: object) -> Decimal | None:
    """A SQLite value as an exact number: a double by its shortest repr (the literal it came from),
    text by its numeric prefix (none: 0, as MySQL reads ``'abc'``), NULL as None."""
    if v is None:
        return None
    if type(v) is int:
        return Decimal(v)
    if type(v) is float:
        return Decimal(repr(v)) if v == v and abs(v) != float("inf") else _ZERO
    if type(v) is bytes and len(v) == 8 and v[0] & 0x80:
        return Decimal(int.from_bytes(v, "big"))  # a BIGINT UNSIGNED above 2**63-1 as stored
    s = v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
    m = _NUMBER_PREFIX.match(s)
    if m is None:
        return _ZERO
    try:
        return Decimal(m.group().strip())
    except InvalidOperation:
        return _ZERO


def decimal_text(d: Decimal) -> str:
    """Canonical text of a result: plain notation, no exponent, no negative zero."""
    if not d:
        d = d.copy_abs()
    return format(d, "f")


@functools.lru_cache(maxsize=256)
def decimal_bounds(precision: int, scale: int) -> tuple[Decimal, Decimal]:
    """``(quantum, top)`` of DECIMAL(precision, scale): its smallest step and its largest value, computed
    at 100 digits (the default context's 28 would round a DECIMAL(30,10)'s top up to a power of ten)."""
    quantum = Decimal(1).scaleb(-scale)
    return quantum, _CTX.subtract(Decimal(1).scaleb(precision - scale), quantum)


def _binary(op: Callable[[Decimal, Decimal], Decimal]) -> Callable[[object, object], str | None]:
    def call(a: object, b: object) -> str | None:
        x, y = to_decimal(a), to_decimal(b)
        if x is None or y is None:
            return None
        return decimal_text(op(x, y))

    return call


def _quantum(scale: object) -> Decimal:
    return Decimal(1).scaleb(-max(0, min(int(scale), 65)) if isinstance(scale, int) else 0)


def dec_div(a: object, b: object, scale: object) -> str | None:
    """``a / b`` with ``scale`` decimals (the transpiler passes the dividend's scale + 4); b = 0: NULL."""
    x, y = to_decimal(a), to_decimal(b)
    if x is None or y is None or not y:
        return None
    return decimal_text(_CTX.divide(x, y).quantize(_quantum(scale), ROUND_HALF_UP, _CTX))


def dec_cast(v: object, precision: object, scale: object) -> str | None:
    """``CAST(v AS DECIMAL(p,s))``: rounded half away from zero to ``s`` decimals, clamped to the largest
    value of ``p`` digits as MySQL does."""
    d = to_decimal(v)
    if d is None:
        return None
    p = int(precision) if isinstance(precision, int) else 10
    s = max(0, min(int(scale), 65)) if isinstance(scale, int) else 0
    q, top = decimal_bounds(p, s)
    try:
        r = d.quantize(q, ROUND_HALF_UP, _CTX)
    except InvalidOperation:
        r = top if d > 0 else -top
    if r > top:
        r = top
    elif r < -top:
        r = -top
    return decimal_text(r)


def dec_cmp(a: object, b: object) -> int | None:
    """-1, 0 or 1 as ``a`` is below, equal to or above ``b`` as numbers (NULL if either is NULL)."""
    x, y = to_decimal(a), to_decimal(b)
    if x is None or y is None:
        return None
    return -1 if x < y else (1 if x > y else 0)


def dec_neg(a: object) -> str | None:
    x = to_decimal(a)
    return None if x is None else decimal_text(-x)


class _Sum:
    """SUM of DECIMAL values, exactly; NULL when there was no non-NULL value (as SQL's SUM)."""

    def __init__(self) -> None:
        self.total: Decimal | None = None

    def step(self, v: object) -> None:
        d = to_decimal(v)
        if d is not None:
            self.total = d if self.total is None else _CTX.add(self.total, d)

    def final(self) -> str | None:
        return None if self.total is None else decimal_text(self.total)


class _Avg:
    """AVG of DECIMAL values with ``scale`` decimals (the column's scale + 4, MySQL's rule)."""

    def __init__(self) -> None:
        self.total = _ZERO
        self.count = 0
        self.scale: object = 4

    def step(self, v: object, scale: object) -> None:
        self.scale = scale
        d = to_decimal(v)
        if d is not None:
            self.total = _CTX.add(self.total, d)
            self.count += 1

    def final(self) -> str | None:
        if not self.count:
            return None
        mean = _CTX.divide(self.total, Decimal(self.count))
        return decimal_text(mean.quantize(_quantum(self.scale), ROUND_HALF_UP, _CTX))


# name -> (callable, number of args, deterministic); registered by ``marmot.sql.functions.register``
FUNCTIONS: dict[str, tuple[Callable[..., object], int, bool]] = {
    "__marmot_dec_add": (_binary(lambda x, y: _CTX.add(x, y)), 2, True),
    "__marmot_dec_sub": (_binary(lambda x, y: _CTX.subtract(x, y)), 2, True),
    "__marmot_dec_mul": (_binary(lambda x, y: _CTX.multiply(x, y)), 2, True),
    "__marmot_dec_div": (dec_div, 3, True),
    "__marmot_dec_neg": (dec_neg, 1, True),
    "__marmot_dec_cast": (dec_cast, 3, True),
    "__marmot_dec_cmp": (dec_cmp, 2, True),
}

# name -> (class with step/final, number of args)
AGGREGATES: dict[str, tuple[Callable[[], Any], int]] = {
    "__marmot_dec_sum": (_Sum, 1),
    "__marmot_dec_avg": (_Avg, 2),
}
