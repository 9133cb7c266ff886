"""The column checks of sql_mode (``engine/column_checks.py``) on tables made by the real DDL translation in
a real SQLite database: MySQL's literal forms and edge values, and the ``sql_mode`` names (``sql_mode.py``)."""

from __future__ import annotations

import apsw
import pytest
import sqlglot

from marmot.engine.column_checks import StatementChecks, check_value, missing_value, table_checks
from marmot.engine.sql_mode import InvalidMode, flags, normalize
from marmot.engine.table_description import describe
from marmot.engine.variables import DEFAULT_SQL_MODE
from marmot.sql.ddl import translate_create_table
from marmot.sql.functions.conversions import FunctionError
from marmot.storage import collations

TABLE = (
    "CREATE TABLE t (i INT, mi MEDIUMINT UNSIGNED, bi BIGINT UNSIGNED, d DATE, dt DATETIME(3), ts TIMESTAMP, "
    "tm TIME, y YEAR, e ENUM('Red','green'), s SET('a','b','c'), c CHAR(3), tx TINYTEXT, vb VARBINARY(2), "
    "f FLOAT(5,2), dc DECIMAL(4,1) UNSIGNED, n INT NOT NULL)"
)


@pytest.fixture(scope="module")
def checks():
    conn = apsw.Connection(":memory:")
    collations.register(conn)  # DECIMAL columns are declared COLLATE MARMOT_DECIMAL
    for stmt in translate_create_table(sqlglot.parse_one(TABLE, read="mysql")):
        conn.execute(stmt)
    desc = describe(conn, "t")
    assert desc is not None
    return {c.name: c for c in table_checks(desc)}


def run(checks, column, value, mode=DEFAULT_SQL_MODE, ignore=False, single_row=True):
    warnings: list = []
    st = StatementChecks(flags(normalize(mode)), ignore, single_row, warnings)
    st.row = 1
    return check_value(checks[column], value, st), warnings


@pytest.mark.parametrize(
    ("column", "given", "stored"),
    [
        ("i", " 42 ", 42),
        ("i", "1e3", 1000),
        ("i", "-2.5", -3),  # rounded half away from zero
        ("mi", 16777215, 16777215),
        ("bi", 2**63 - 1, 2**63 - 1),
        ("d", "2024-2-29", "2024-02-29"),
        ("d", "24/02/09", "2024-02-09"),
        ("d", "19990101", "1999-01-01"),
        ("d", 20240105, "2024-01-05"),
        ("dt", "2024-01-05 10:11:12.34567", "2024-01-05 10:11:12.346"),
        ("dt", "2024-12-31 23:59:59.9996", "2025-01-01 00:00:00.000"),
        ("dt", "2024-01-05T10:11", "2024-01-05 10:11:00.000"),
        ("ts", "2038-01-19 03:14:07", "2038-01-19 03:14:07"),
        ("tm", "-1 02:03:04", "-26:03:04"),
        ("tm", "838:59:59", "838:59:59"),
        ("tm", 101112, "10:11:12"),
        ("tm", "2024-01-05 07:08:09", "07:08:09"),
        ("y", 69, 2069),
        ("y", "0", 2000),
        ("y", 0, 0),
        ("e", "GREEN ", "green"),
        ("e", 1, "Red"),
        ("e", "2", "green"),
        ("s", "c,A,c", "a,c"),
        ("s", 5, "a,c"),
        ("s", "", ""),
        ("c", "é€x", "é€x"),  # characters, not bytes
        ("tx", "é" * 127, "é" * 127),  # 254 bytes
        ("f", 123.456, 123.46),
        ("dc", "12.3", "12.3"),
    ],
)
def test_valid_values_in_mysql_forms(checks, column, given, stored):
    assert run(checks, column, given) == (stored, [])


@pytest.mark.parametrize(
    ("column", "given", "code"),
    [
        ("mi", 16777216, 1264),
        ("bi", -1, 1264),
        ("i", "0x10", 1265),
        ("d", "2023-02-29", 1292),
        ("d", "2024-13-01", 1292),
        ("dt", "2024-01-01 10:60:00", 1292),
        ("ts", "1969-12-31 23:59:59", 1292),
        ("ts", "2038-01-19 03:14:08", 1292),
        ("tm", "839:00:00", 1292),
        ("tm", "12:30:61", 1292),
        ("y", 1900, 1264),
        ("y", "x", 1366),
        ("e", 0, 1265),
        ("e", 3, 1265),
        ("s", 8, 1265),
        ("tx", "é" * 128, 1406),  # 256 bytes
        ("vb", b"abc", 1406),
        ("f", 1000.0, 1264),
        ("dc", -1, 1264),
        ("dc", "", 1366),
    ],
)
def test_strict_refusals(checks, column, given, code):
    with pytest.raises(FunctionError) as info:
        run(checks, column, given)
    assert info.value.code == code


def test_non_strict_adjustments(checks):
    assert run(checks, "mi", -5, mode="")[0] == 0
    assert run(checks, "tx", "é" * 200, mode="")[0] == "é" * 127  # cut on a character boundary
    assert run(checks, "vb", b"abc", mode="")[0] == b"ab"
    assert run(checks, "dc", "999.99", mode="")[0] == "999.9"
    assert run(checks, "ts", "2040-01-01 00:00:00", mode="")[0] == "0000-00-00 00:00:00"
    assert run(checks, "tm", "900:00:00", mode="")[0] == "838:59:59"
    assert run(checks, "s", "a,x", mode="") == (
        "a",
        [("Warning", 1265, "Data truncated for column 's' at row 1")],
    )


def test_date_modes(checks):
    # zero dates: refused under strict NO_ZERO_DATE, warned without strict, silent without the flag
    assert run(checks, "d", "0000-00-00", mode="NO_ZERO_DATE")[1][0][1] == 1264
    assert run(checks, "d", "0000-00-00", mode="STRICT_TRANS_TABLES") == ("0000-00-00", [])
    assert run(checks, "d", "2024-00-10", mode="STRICT_TRANS_TABLES") == ("2024-00-10", [])
    assert run(checks, "d", "2024-02-30", mode="ALLOW_INVALID_DATES") == ("2024-02-30", [])
    # a datetime into a DATE keeps the date, with a note when it had a time of day
    assert run(checks, "d", "2024-01-05 10:00:00") == (
        "2024-01-05",
        [("Note", 1265, "Data truncated for column 'd' at row 1")],
    )


def test_null_and_missing(checks):
    warnings: list = []
    multi = StatementChecks(flags(""), False, False, warnings)
    assert check_value(checks["n"], None, multi) == 0 and warnings[0][1] == 1048
    assert missing_value(checks["n"], multi) == 0 and warnings[1][1] == 1364
    single = StatementChecks(flags(""), False, True, [])
    with pytest.raises(FunctionError) as info:
        check_value(checks["n"], None, single)
    assert info.value.code == 1048
    assert check_value(checks["n"], None, StatementChecks(flags(""), True, True, [])) == 0  # IGNORE


def test_sql_mode_names():
    assert normalize("strict_trans_tables, no_zero_date") == "STRICT_TRANS_TABLES,NO_ZERO_DATE"
    assert normalize("ANSI,TRADITIONAL").split(",")[0] == "REAL_AS_FLOAT"
    assert normalize("NO_AUTO_CREATE_USER") == "NO_AUTO_CREATE_USER"  # MySQL 5.7 dumps set it
    assert normalize("") == ""
    with pytest.raises(InvalidMode):
        normalize("STRICT")
    assert flags(normalize("TRADITIONAL")).strict and not flags("").strict


def test_wide_decimal_bounds_and_clamped_values_are_exact_and_canonical() -> None:
    """DECIMAL(30,10)'s largest value has 20 integer digits (the default 28-digit context once rounded it
    up to 10**20), and a clamped value is stored with the column's scale, like any other."""
    conn = apsw.Connection(":memory:")
    collations.register(conn)
    create = "CREATE TABLE w (big DECIMAL(30,10), u DECIMAL(5,2) UNSIGNED)"
    for stmt in translate_create_table(sqlglot.parse_one(create, read="mysql")):
        conn.execute(stmt)
    desc = describe(conn, "w")
    assert desc is not None
    wide = {c.name: c for c in table_checks(desc)}
    stored, warnings = run(wide, "big", "100000000000000000000", mode="")
    assert stored == "99999999999999999999.9999999999" and warnings[0][1] == 1264
    assert run(wide, "big", "99999999999999999999.9999999999")[0] == "99999999999999999999.9999999999"
    assert run(wide, "u", "-1", mode="")[0] == "0.00" == run(wide, "u", 0)[0]
