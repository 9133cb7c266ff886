"""Encoding engine results (rows / OK) as MySQL packets, text or binary protocol.

Column definitions are the expensive part of a small result set, and an application sends the same
query shapes over and over, so the encoded column-definition packets are cached per (columns, protocol
types) key.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from marmot.mysql import packets
from marmot.mysql.constants import ColumnFlag, FieldType
from marmot.mysql.types import ColumnType, mysql_type_for_decl, mysql_type_for_values

Row = tuple[Any, ...]
"""One result row: SQLite values (None, int, float, str, bytes)."""
Column = tuple[Any, ...]
"""A result column: ``(name, decltype)`` or ``(name, decltype, database, table, origin column, flags)``."""
Origin = tuple[str | None, str, str, int]
"""Where a column was read from: (database, table, origin column, column flags)."""


def column_types(columns: Sequence[Column], rows: list[Row]) -> tuple[ColumnType, ...]:
    """MySQL types: from the declared type when SQLite has one, else from the values themselves.

    A column is ``(name, decltype)`` or ``(name, decltype, database, table, origin column, flags)``.
    """
    out = []
    for i, col in enumerate(columns):
        decl = col[1]
        if decl:
            out.append(mysql_type_for_decl(decl))
        else:
            out.append(mysql_type_for_values(row[i] for row in rows))
    return tuple(out)


_DECIMAL_CONTEXT = Context(prec=100, rounding=ROUND_HALF_UP)


def fixed_decimals(rows: list[Row], columns: Sequence[Column], types: tuple[ColumnType, ...]) -> list[Row]:
    """Values of declared ``DECIMAL(p,s)`` columns as text with exactly ``s`` digits after the point.

    SQLite keeps a DECIMAL as an INTEGER or REAL (NUMERIC affinity), so ``1.10`` comes back as the float
    1.1. MySQL always prints a DECIMAL with its scale (``1.10``, ``-5.00``, ``0.0000000001``, never
    ``1E-10``); clients that keep decimals as strings (PHP, the ``mysql`` CLI) see exactly that. Costs
    nothing for result sets without a DECIMAL column.
    """
    scales = [
        (i, t.decimals)
        for i, t in enumerate(types)
        if t.type == FieldType.NEWDECIMAL and columns[i][1] and t.decimals <= 30
    ]
    if not scales or not rows:
        return rows
    out = []
    for row in rows:
        values = list(row)
        for i, scale in scales:
            if values[i] is not None:
                values[i] = decimal_text(values[i], scale)
        out.append(tuple(values))
    return out


def unsigned_bigints(rows: list[Row], types: tuple[ColumnType, ...]) -> list[Row]:
    """BIGINT UNSIGNED values above 2**63-1 back to numbers: SQLite holds them as 8-byte big-endian BLOBs
    (``sql/functions/unsigned.py``). Costs nothing for result sets without a BIGINT UNSIGNED column."""
    wide = [i for i, t in enumerate(types) if t.type == FieldType.LONGLONG and t.flags & ColumnFlag.UNSIGNED]
    if not wide or not rows:
        return rows
    out = rows
    for r, row in enumerate(rows):
        for i in wide:
            v = row[i]
            if type(v) is bytes and len(v) == 8 and v[0] & 0x80:
                if out is rows:
                    out = list(rows)
                values = list(out[r])
                values[i] = int.from_bytes(v, "big")
                out[r] = row = tuple(values)
    return out


def decimal_text(v: object, scale: int) -> object:
    """``v`` printed as MySQL prints a DECIMAL with ``scale`` decimals; ``v`` itself if not a number."""
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        return v
    try:
        if isinstance(v, float):
            d = Decimal(repr(v))
        elif isinstance(v, str):
            d = Decimal(v.strip())
        else:
            d = Decimal(v)
        if not d.is_finite():
            return v
        q = d.quantize(Decimal(1).scaleb(-scale), context=_DECIMAL_CONTEXT)
    except (InvalidOperation, ValueError):
        return v
    if q.is_zero():
        q = q.copy_abs()  # MySQL has no negative zero
    return format(q, "f")


@lru_cache(maxsize=4096)
def column_definitions(
    names: tuple[str, ...],
    types: tuple[ColumnType, ...],
    schema: str,
    origins: tuple[Origin | None, ...] | None = None,
) -> tuple[bytes, ...]:
    """Column-definition packets; ``origins`` gives per column (database, table, origin column, flags)
    for columns read from a table (None entries for expressions)."""
    if origins is None:
        origins = (None,) * len(names)
    return tuple(
        packets.column_definition(
            name,
            ct.type,
            schema=(o[0] or schema) if o else schema,
            table=o[1] if o else "",
            org_table=o[1] if o else "",
            org_name=o[2] if o else "",
            charset=ct.charset,
            length=ct.length,
            flags=ct.flags | (o[3] if o else 0),
            decimals=ct.decimals,
        )
        for name, ct, o in zip(names, types, origins, strict=True)
    )


def origins_of(columns: Sequence[Column]) -> tuple[Origin | None, ...] | None:
    """The (database, table, origin, flags) part of described columns, or None when there is none."""
    if not columns or len(columns[0]) < 6:
        return None
    return tuple((c[2], c[3], c[4], c[5]) if c[3] else None for c in columns)


def text_rows(rows: list[Row]) -> list[bytes]:
    enc = packets.encode_text_value
    text_row = packets.text_row
    return [text_row([enc(v) for v in row]) for row in rows]


def binary_rows(rows: list[Row], types: tuple[ColumnType, ...]) -> list[bytes]:
    codes = [t.type for t in types]
    unsigned = [bool(t.flags & 32) for t in types]
    binary_row = packets.binary_row
    return [binary_row(row, codes, unsigned) for row in rows]
