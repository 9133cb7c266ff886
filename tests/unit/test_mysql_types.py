"""SQLite declared types and values -> MySQL column metadata."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from marmot.mysql.constants import BINARY_CHARSET as BIN
from marmot.mysql.constants import UTF8MB4_GENERAL_CI as U8
from marmot.mysql.constants import ColumnFlag as F
from marmot.mysql.constants import FieldType as T
from marmot.mysql.types import ColumnType, mysql_type_for_decl, mysql_type_for_value, mysql_type_for_values

U32 = 0xFFFFFFFF

DECL_CASES: list[tuple[str | None, ColumnType]] = [
    # integers: display width from the declaration, else MySQL's default width
    ("TINYINT(1)", ColumnType(T.TINY, 0, 1, BIN, 0)),
    ("tinyint", ColumnType(T.TINY, 0, 4, BIN, 0)),
    ("TINYINT UNSIGNED", ColumnType(T.TINY, F.UNSIGNED, 3, BIN, 0)),
    ("BOOLEAN", ColumnType(T.TINY, 0, 1, BIN, 0)),
    ("bool", ColumnType(T.TINY, 0, 1, BIN, 0)),
    ("SMALLINT", ColumnType(T.SHORT, 0, 6, BIN, 0)),
    ("MEDIUMINT(8) UNSIGNED", ColumnType(T.INT24, F.UNSIGNED, 8, BIN, 0)),
    ("INT", ColumnType(T.LONG, 0, 11, BIN, 0)),
    ("int(10) unsigned zerofill", ColumnType(T.LONG, F.UNSIGNED, 10, BIN, 0)),
    ("INT ZEROFILL", ColumnType(T.LONG, F.UNSIGNED, 10, BIN, 0)),
    ("INTEGER", ColumnType(T.LONGLONG, 0, 20, BIN, 0)),  # rowid alias: 64-bit values
    ("bigint(20) unsigned", ColumnType(T.LONGLONG, F.UNSIGNED, 20, BIN, 0)),
    ("BIGINT", ColumnType(T.LONGLONG, 0, 20, BIN, 0)),
    ("UNSIGNED BIG INT", ColumnType(T.LONGLONG, F.UNSIGNED, 20, BIN, 0)),
    ("SERIAL", ColumnType(T.LONGLONG, F.UNSIGNED, 20, BIN, 0)),
    ("BIT(1)", ColumnType(T.LONGLONG, F.UNSIGNED, 20, BIN, 0)),
    # floating point and decimals
    ("DOUBLE", ColumnType(T.DOUBLE, 0, 22, BIN, 31)),
    ("double precision", ColumnType(T.DOUBLE, 0, 22, BIN, 31)),
    ("REAL", ColumnType(T.DOUBLE, 0, 22, BIN, 31)),
    ("DOUBLE(10,3)", ColumnType(T.DOUBLE, 0, 10, BIN, 3)),
    ("FLOAT", ColumnType(T.FLOAT, 0, 12, BIN, 31)),
    ("FLOAT(7,2) UNSIGNED", ColumnType(T.FLOAT, F.UNSIGNED, 7, BIN, 2)),
    ("FLOAT(53)", ColumnType(T.DOUBLE, 0, 22, BIN, 31)),
    ("DECIMAL(10,2)", ColumnType(T.NEWDECIMAL, 0, 12, BIN, 2)),
    ("decimal(5,0) unsigned", ColumnType(T.NEWDECIMAL, F.UNSIGNED, 5, BIN, 0)),
    ("DECIMAL", ColumnType(T.NEWDECIMAL, 0, 11, BIN, 0)),
    ("NUMERIC", ColumnType(T.NEWDECIMAL, 0, 11, BIN, 0)),
    ("NUMERIC(8, 4)", ColumnType(T.NEWDECIMAL, 0, 10, BIN, 4)),
    # strings: lengths in bytes of utf8mb4
    ("VARCHAR(191)", ColumnType(T.VAR_STRING, 0, 764, U8, 0)),
    (
        "varchar(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
        ColumnType(T.VAR_STRING, 0, 1020, U8, 0),
    ),
    ("VARCHAR(10) BINARY", ColumnType(T.VAR_STRING, 0, 40, U8, 0)),
    ("CHAR(36)", ColumnType(T.STRING, 0, 144, U8, 0)),
    ("CHAR", ColumnType(T.STRING, 0, 4, U8, 0)),
    ("NATIONAL CHARACTER VARYING(5)", ColumnType(T.VAR_STRING, 0, 20, U8, 0)),
    ("NVARCHAR(5)", ColumnType(T.VAR_STRING, 0, 20, U8, 0)),
    ("TINYTEXT", ColumnType(T.BLOB, F.BLOB, 1020, U8, 0)),
    ("TEXT", ColumnType(T.BLOB, F.BLOB, 262140, U8, 0)),
    ("MEDIUMTEXT", ColumnType(T.BLOB, F.BLOB, 67108860, U8, 0)),
    ("LONGTEXT", ColumnType(T.BLOB, F.BLOB, U32, U8, 0)),
    ("CLOB", ColumnType(T.BLOB, F.BLOB, U32, U8, 0)),
    ("ENUM('a','bbb')", ColumnType(T.STRING, F.ENUM, 12, U8, 0)),
    ("enum('x)y','z')", ColumnType(T.STRING, F.ENUM, 12, U8, 0)),
    ("ENUM", ColumnType(T.STRING, F.ENUM, 4, U8, 0)),
    ("SET('a','b','cc')", ColumnType(T.STRING, F.SET, 24, U8, 0)),
    # binary
    ("BLOB", ColumnType(T.BLOB, F.BLOB | F.BINARY, 65535, BIN, 0)),
    ("TINYBLOB", ColumnType(T.BLOB, F.BLOB | F.BINARY, 255, BIN, 0)),
    ("MEDIUMBLOB", ColumnType(T.BLOB, F.BLOB | F.BINARY, 16777215, BIN, 0)),
    ("LONGBLOB", ColumnType(T.BLOB, F.BLOB | F.BINARY, U32, BIN, 0)),
    ("VARBINARY(16)", ColumnType(T.VAR_STRING, F.BINARY, 16, BIN, 0)),
    ("BINARY(16)", ColumnType(T.STRING, F.BINARY, 16, BIN, 0)),
    ("JSON", ColumnType(T.JSON, F.BLOB | F.BINARY, U32, BIN, 0)),
    ("GEOMETRY", ColumnType(T.GEOMETRY, F.BLOB | F.BINARY, U32, BIN, 0)),
    ("POINT", ColumnType(T.GEOMETRY, F.BLOB | F.BINARY, U32, BIN, 0)),
    # temporal
    ("DATE", ColumnType(T.DATE, F.BINARY, 10, BIN, 0)),
    ("datetime", ColumnType(T.DATETIME, F.BINARY, 19, BIN, 0)),
    ("DATETIME(6)", ColumnType(T.DATETIME, F.BINARY, 26, BIN, 6)),
    ("DATETIME(3)", ColumnType(T.DATETIME, F.BINARY, 23, BIN, 3)),
    ("TIMESTAMP", ColumnType(T.TIMESTAMP, F.BINARY | F.TIMESTAMP, 19, BIN, 0)),
    ("TIME", ColumnType(T.TIME, F.BINARY, 10, BIN, 0)),
    ("TIME(6)", ColumnType(T.TIME, F.BINARY, 17, BIN, 6)),
    ("YEAR", ColumnType(T.YEAR, F.UNSIGNED | F.ZEROFILL, 4, BIN, 0)),
    ("YEAR(4)", ColumnType(T.YEAR, F.UNSIGNED | F.ZEROFILL, 4, BIN, 0)),
    # no declared type: a string (expression columns should use mysql_type_for_values)
    ("", ColumnType(T.VAR_STRING, 0, 262140, U8, 0)),
    ("   ", ColumnType(T.VAR_STRING, 0, 262140, U8, 0)),
    (None, ColumnType(T.VAR_STRING, 0, 262140, U8, 0)),
    # unknown names follow SQLite's affinity rules, in SQLite's order
    ("MYINTEGERISH", ColumnType(T.LONGLONG, 0, 20, BIN, 0)),
    ("CHARINT", ColumnType(T.LONGLONG, 0, 20, BIN, 0)),  # INT wins over CHAR, as in SQLite
    ("VARYING TEXTS(30)", ColumnType(T.VAR_STRING, 0, 120, U8, 0)),
    ("SUPERBLOB", ColumnType(T.BLOB, F.BLOB | F.BINARY, 65535, BIN, 0)),
    ("FLOATY", ColumnType(T.DOUBLE, 0, 22, BIN, 31)),
    ("UUID", ColumnType(T.VAR_STRING, 0, 262140, U8, 0)),  # NUMERIC affinity: a string, see module doc
    ("STRING", ColumnType(T.VAR_STRING, 0, 262140, U8, 0)),
]


@pytest.mark.parametrize(("decl", "expected"), DECL_CASES)
def test_mysql_type_for_decl(decl: str | None, expected: ColumnType) -> None:
    assert mysql_type_for_decl(decl) == expected


@pytest.mark.parametrize(
    "decl",
    ["VARCHAR(abc)", "DECIMAL(10,", "ENUM('a", "INT((", ")(", "VARCHAR(-5)", "DATETIME(99)", "CHARACTER SET"],
)
def test_garbage_declarations_never_raise(decl: str) -> None:
    ct = mysql_type_for_decl(decl)
    assert isinstance(ct, ColumnType) and 0 <= ct.length <= 0xFFFFFFFF and 0 <= ct.decimals <= 31


def test_decl_mapping_is_cached() -> None:
    assert mysql_type_for_decl("VARCHAR(77)") is mysql_type_for_decl("VARCHAR(77)")


def test_column_type_helpers() -> None:
    ct = mysql_type_for_decl("bigint unsigned")
    assert ct.unsigned and not mysql_type_for_decl("bigint").unsigned
    keyed = ct.with_flags(F.NOT_NULL | F.PRI_KEY)
    assert keyed.flags == F.UNSIGNED | F.NOT_NULL | F.PRI_KEY and keyed.type == ct.type


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ColumnType(T.NULL, F.BINARY, 0, BIN, 0)),
        (1, ColumnType(T.LONGLONG, F.BINARY, 21, BIN, 0)),
        (True, ColumnType(T.LONGLONG, F.BINARY, 21, BIN, 0)),
        (1.5, ColumnType(T.DOUBLE, F.BINARY, 23, BIN, 31)),
        ("x", ColumnType(T.VAR_STRING, 0, 262140, U8, 0)),
        (b"x", ColumnType(T.BLOB, F.BINARY | F.BLOB, 65535, BIN, 0)),
        (Decimal("1.5"), ColumnType(T.NEWDECIMAL, F.BINARY, 67, BIN, 30)),
        (dt.datetime(2024, 1, 1), ColumnType(T.DATETIME, F.BINARY, 26, BIN, 6)),
        (dt.date(2024, 1, 1), ColumnType(T.DATE, F.BINARY, 10, BIN, 0)),
        (dt.timedelta(1), ColumnType(T.TIME, F.BINARY, 17, BIN, 6)),
        (object(), ColumnType(T.VAR_STRING, 0, 262140, U8, 0)),
    ],
)
def test_mysql_type_for_value(value: object, expected: ColumnType) -> None:
    assert mysql_type_for_value(value) == expected


def test_mysql_type_for_values_uses_first_non_null() -> None:
    assert mysql_type_for_values([None, None, 3, "x"]).type == T.LONGLONG
    assert mysql_type_for_values(iter([None, "x"])).type == T.VAR_STRING
    assert mysql_type_for_values([None, None]).type == T.NULL  # MySQL's answer for SELECT NULL
    assert mysql_type_for_values([]).type == T.NULL
