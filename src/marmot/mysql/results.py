"""Encoding engine results (rows / OK) as MySQL packets, text or binary protocol.

Column definitions are the expensive part of a small result set, and an application sends the same
query shapes over and over, so the encoded column-definition packets are cached per (columns, protocol
types) key.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from marmot.mysql import packets
from marmot.mysql.types import ColumnType, mysql_type_for_decl, mysql_type_for_values


def column_types(columns: Sequence[tuple[str, str | None]], rows: list[tuple]) -> tuple[ColumnType, ...]:
    """MySQL types: from the declared type when SQLite has one, else from the values themselves."""
    out = []
    for i, (_name, decl) in enumerate(columns):
        if decl:
            out.append(mysql_type_for_decl(decl))
        else:
            out.append(mysql_type_for_values(row[i] for row in rows))
    return tuple(out)


@lru_cache(maxsize=4096)
def column_definitions(names: tuple[str, ...], types: tuple[ColumnType, ...], schema: str) -> tuple[bytes, ...]:
    return tuple(
        packets.column_definition(
            name,
            ct.type,
            schema=schema,
            charset=ct.charset,
            length=ct.length,
            flags=ct.flags,
            decimals=ct.decimals,
        )
        for name, ct in zip(names, types, strict=True)
    )


def text_rows(rows: list[tuple]) -> list[bytes]:
    enc = packets.encode_text_value
    text_row = packets.text_row
    return [text_row([enc(v) for v in row]) for row in rows]


def binary_rows(rows: list[tuple], types: tuple[ColumnType, ...]) -> list[bytes]:
    codes = [t.type for t in types]
    unsigned = [bool(t.flags & 32) for t in types]
    binary_row = packets.binary_row
    return [binary_row(row, codes, unsigned) for row in rows]
