"""The collations Marmot's stored schemas name, registered on every connection that opens a database.

Why a collation: exact DECIMAL values are stored as canonical text (``'2.50'``, see docs/transpiler.md
"Exact DECIMAL"), in columns declared ``COLLATE MARMOT_DECIMAL``. SQLite compares two texts with the
column's collation, so this one makes ``'10.0'`` sort after ``'9.5'`` and ``'2.50'`` equal ``'2.5'`` for
ORDER BY, indexes, UNIQUE, MIN/MAX and comparisons with literals (a number compared with a TEXT-affinity
column becomes text first, then meets this collation). A connection that lacks it cannot use such an
index ("no such collation sequence"), hence one registration point for all of them: ``register``.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import apsw

DECIMAL_COLLATION = "MARMOT_DECIMAL"

_ZERO = Decimal(0)


def decimal_key(text: str) -> Decimal:
    """The number a stored DECIMAL text stands for; text that is no number counts as 0, as in MySQL."""
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        return _ZERO
    return number if number.is_finite() else _ZERO


def compare_decimals(a: str, b: str) -> int:
    """SQLite collation callback: negative, zero or positive as the number ``a`` is below, equal or above
    ``b``. Byte-equal texts (the common case for canonical values) skip the parsing."""
    if a == b:
        return 0
    x, y = decimal_key(a), decimal_key(b)
    return -1 if x < y else (1 if x > y else 0)


def register(conn: apsw.Connection) -> None:
    """Install Marmot's collations on ``conn``."""
    conn.create_collation(DECIMAL_COLLATION, compare_decimals)
