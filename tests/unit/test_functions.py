"""Pure-Python MySQL function implementations and the rewrite layer, without a server."""

from __future__ import annotations

import datetime as dt

import apsw
import pytest
import sqlglot

from marmot.sql import function_rewrites, functions, lexer
from marmot.sql.functions import datetime as dtf
from marmot.sql.functions import json as jf
from marmot.sql.functions import numeric as nf
from marmot.sql.functions import strings as sf
from marmot.sql.functions import temporal
from marmot.sql.functions.conversions import FunctionError, float_text, to_int, to_number
from marmot.sql.transpiler import Transpiler

# ------------------------------------------------------------------------------------ conversions


@pytest.mark.parametrize(
    ("v", "expected"),
    [
        ("12abc", 12),
        ("abc", 0),
        (" -3.5e2x", -350.0),
        (".5", 0.5),
        (b"7", 7),
        (3.25, 3.25),
        ("", 0),
    ],
)
def test_to_number_reads_a_numeric_prefix(v, expected):
    assert to_number(v) == expected and type(to_number(v)) is type(expected)


@pytest.mark.parametrize(
    ("v", "expected"), [(2.5, 3), (-2.5, -3), (2.4, 2), ("2.9", 2), ("x", 0), (1e30, 2**63 - 1)]
)
def test_to_int_rounds_doubles_and_truncates_strings(v, expected):
    assert to_int(v) == expected


@pytest.mark.parametrize(
    ("v", "expected"),
    [
        (1.0, "1"),
        (2.5, "2.5"),
        (1e20, "1e20"),
        (1e-7, "0.0000001"),
        (0.1 + 0.2, "0.30000000000000004"),
        (-1.5e-20, "-1.5e-20"),
        (123456789012345.0, "123456789012345"),
    ],
)
def test_float_text_prints_like_mysql(v, expected):
    assert float_text(v) == expected


# -------------------------------------------------------------------------------------- temporal


def test_week_mode_3_is_iso_8601_for_every_day_of_many_years():
    day = dt.date(1995, 1, 1)
    while day.year < 2031:
        d = temporal.DT(day.year, day.month, day.day)
        iso = day.isocalendar()
        assert temporal.calc_week(d, temporal.week_mode(3) | temporal.WEEK_YEAR) == (iso[1], iso[0])
        assert temporal.calc_week(d, temporal.week_mode(3))[0] == iso[1] or iso[0] != day.year
        day += dt.timedelta(days=1)


@pytest.mark.parametrize(
    ("date", "mode", "week"),
    [
        ("2008-02-20", 0, 7),
        ("2008-02-20", 1, 8),
        ("2008-12-31", 1, 53),
        ("2000-01-01", 0, 0),
        ("2000-01-01", 2, 52),
        ("2007-01-01", 0, 0),
        ("2007-01-01", 1, 1),
        ("2007-01-01", 5, 1),
        ("2006-01-01", 5, 0),
        ("2006-01-01", 7, 52),
        ("2006-01-01", 4, 1),
        ("2006-01-01", 6, 1),
    ],
)
def test_week_modes(date, mode, week):
    assert dtf.week(date, mode) == week


def test_day_numbers_match_mysql_and_round_trip():
    assert temporal.daynr(2007, 10, 7) == 733321
    assert temporal.daynr(0, 1, 1) == 1
    assert temporal.daynr(1, 1, 1) == 366
    for n in range(366, 3652424, 997):
        y, m, d = temporal.from_daynr(n)
        assert temporal.daynr(y, m, d) == n
    assert temporal.from_daynr(100) == (0, 0, 0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-05", (2024, 1, 5, 0, 0, 0, 0, False)),
        ("2024-1-5 7:08:09", (2024, 1, 5, 7, 8, 9, 0, True)),
        ("2024/01/05T10:11:12.5", (2024, 1, 5, 10, 11, 12, 500000, True)),
        ("24-01-05", (2024, 1, 5, 0, 0, 0, 0, False)),
        ("70-01-05", (1970, 1, 5, 0, 0, 0, 0, False)),
        ("20240105", (2024, 1, 5, 0, 0, 0, 0, False)),
        ("20240105101112", (2024, 1, 5, 10, 11, 12, 0, True)),
        (20240105, (2024, 1, 5, 0, 0, 0, 0, False)),
        ("0000-00-00 00:00:00", (0, 0, 0, 0, 0, 0, 0, True)),
        ("2024-02-30", None),
        ("2024-13-01", None),
        ("2024-01-01 24:00:00", None),
        ("garbage", None),
    ],
)
def test_parse_datetime(text, expected):
    got = temporal.parse_datetime(text)
    assert (got[:8] if got is not None else None) == expected


@pytest.mark.parametrize(
    ("text", "us"),
    [
        ("10:11:12", 36672_000000),
        ("-01:00:00", -3600_000000),
        ("1 02:00:00", 93600_000000),
        ("101112", 36672_000000),
        ("12", 12_000000),
        ("00:00:01.5", 1_500000),
        ("2024-01-05 10:11:12", 36672_000000),
        ("900:00:00", 838 * 3600_000000 + 59 * 60_000000 + 59_000000),
    ],
)
def test_parse_time(text, us):
    assert temporal.parse_time(text)[0] == us


# ---------------------------------------------------------------------------------------- strings


def test_binary_strings_stay_binary():
    assert sf.concat(b"a", "b", 1) == b"ab1"
    assert sf.upper(b"abc") == b"abc"
    assert sf.substring3(b"abcdef", 2, 3) == b"bcd"
    assert sf.locate(b"B", b"abc") == 0  # binary: case-sensitive
    assert sf.locate("B", "abc") == 2  # text: the ci collation


def test_locate_edges():
    assert sf.locate("", "abc") == 1
    assert sf.locate("", "abc", 3) == 3
    assert sf.locate("", "abc", 4) == 0
    assert sf.locate("b", "abc", 0) == 0
    assert sf.locate("b", "abc", None) is None


def test_char_and_ord():
    assert sf.char(1, 0x10000, None, -1) == b"\x01\x01\x00\x00\xff\xff\xff\xff"
    assert sf.char_using("utf8mb4", 0xC3) is None  # not valid UTF-8
    assert sf.ord_("€") == 0xE282AC


# ---------------------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("FF", 16, 10), "255"),
        (("-1", 10, 16), "FFFFFFFFFFFFFFFF"),
        (("18446744073709551616", 10, 10), "18446744073709551615"),
        (("1z", 36, 10), "71"),
        (("", 10, 2), "0"),
        (("12.7", 10, 2), "1100"),
        (("-255", -10, -16), "-FF"),
        (("10", 1, 10), None),
    ],
)
def test_conv(args, expected):
    assert nf.conv(*args) == expected


def test_round_and_truncate_keep_exact_decimal_semantics():
    assert nf.round_(2.675, 2) == 2.68
    assert nf.round_(-0.5) == -1
    assert nf.round_(1234567, -3) == 1235000
    assert nf.round_(1e300, 2) == 1e300
    assert nf.truncate(-1.999, 1) == -1.9
    assert nf.mod(5.5, 1.1) == 0.0
    assert nf.int_div(-7, 2) == -3


def test_format_rounds_half_away_and_groups():
    assert nf.format_(0.5, 0) == "1"
    assert nf.format_(-0.001, 2) == "0.00"
    assert nf.format_(1e20, 1) == "100,000,000,000,000,000,000.0"
    assert nf.format_("12345.678", 1, "de_DE") == "12.345,7"
    assert nf.format_(1, 40) == "1." + "0" * 30


def test_to_base64_wraps_lines_like_mysql():
    out = nf.to_base64(b"x" * 100)
    assert out.split("\n")[0] == out[:76] and len(out.split("\n")) == 2
    assert nf.from_base64(out) == b"x" * 100


# ------------------------------------------------------------------------------------------- JSON


def test_json_paths():
    doc = '{"a": [1, {"b": 2}], "a b": 3, "c": {"b": 4}}'
    assert jf.json_extract(doc, '$."a b"') == "3"
    assert jf.json_extract(doc, "$.a[1].b") == "2"
    assert jf.json_extract(doc, "$.a[last].b") == "2"
    assert jf.json_extract(doc, "$.a[last - 1]") == "1"
    assert jf.json_extract(doc, "$**.b") == "[2, 4]"
    assert jf.json_extract(doc, "$.c[0]") == '{"b": 4}'  # [0] of a non-array is the value itself
    assert jf.json_extract(doc, "$.c[1]") is None
    assert jf.json_extract(doc, "$.*") == '[[1, {"b": 2}], {"b": 4}, 3]'  # keys: shorter first
    with pytest.raises(FunctionError) as ei:
        jf.json_extract(doc, "a.b")
    assert ei.value.code == 3143
    with pytest.raises(FunctionError) as ei:
        jf.json_extract("{bad", "$")
    assert ei.value.code == 3141


def test_json_output_format():
    assert (
        jf.json_extract('{"x": [1.0, 2.5, 1e2, true, null, "é\\n"]}', "$.x")
        == '[1.0, 2.5, 100.0, true, null, "é\\n"]'
    )


# ---------------------------------------------------------------------------------- rewrite layer


def _sqlite(sql: str) -> str:
    norm = lexer.normalize(sql)
    return Transpiler().plan(norm, "db", 0, sql).steps[-1].sql


def test_rewrites_reach_nested_calls():
    out = _sqlite("SELECT UPPER(SUBSTRING(CONCAT(a, b), 2)) FROM t")
    assert out.startswith("SELECT __MYSQL_UPPER(__MYSQL_SUBSTRING(__MYSQL_CONCAT(a, b), 2))")
    out = _sqlite("SELECT DATE_ADD(DATE_ADD(d, INTERVAL 1 DAY), INTERVAL 1 MONTH) FROM t")
    assert "__MYSQL_DATE_ADD(__MYSQL_DATE_ADD(d, '1', 'DAY'), '1', 'MONTH')" in out


def test_rewrites_keep_bound_arguments_as_parameters():
    out = _sqlite("SELECT id FROM t WHERE LENGTH(name) > 3 AND LOCATE('x', name, 2) = 0")
    assert "OCTET_LENGTH(name) > ?" in out and "__MYSQL_LOCATE(?, name, ?) = ?" in out


def test_rewrite_is_idempotent():
    tree = sqlglot.parse_one(
        "SELECT YEAR(DATE(d)), LENGTH(x), NOW(), TRIM(LEADING 'x' FROM y) FROM t", read="mysql"
    )
    once = function_rewrites.rewrite_tree(tree).sql("sqlite")
    twice = function_rewrites.rewrite_tree(sqlglot.parse_one(once, read="sqlite")).sql("sqlite")
    assert "YEAR(__MYSQL_DATE(d))" in once and once.replace("CURRENT_TIMESTAMP", "") == twice.replace(
        "CURRENT_TIMESTAMP()", ""
    ).replace("CURRENT_TIMESTAMP", "")


def test_every_registered_function_loads():
    conn = apsw.Connection(":memory:")
    functions.register(conn)
    for name, (fn, nargs, det) in dtf.FUNCTIONS.items():
        conn.create_scalar_function(name, fn, nargs, deterministic=det)
    assert conn.execute(
        "SELECT __mysql_concat('a', 1), FIND_IN_SET('b', 'a,b'), YEAR('2024-01-01')"
    ).fetchall() == [("a1", 2, 2024)]


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("NOW()", "DATETIME"),
        ("NOW(3)", "DATETIME"),
        ("CURDATE()", "DATE"),
        ("CURTIME()", "TIME"),
        ("DATE(x)", "DATE"),
        ("CAST(x AS DATETIME)", "DATETIME"),
        ("TIMEDIFF(a, b)", "TIME"),
        ("FROM_UNIXTIME(1)", "DATETIME"),
        ("FROM_UNIXTIME(1, '%Y')", None),
        ("STR_TO_DATE(x, '%d/%m/%Y')", "DATE"),
        ("STR_TO_DATE(x, '%d/%m/%Y %H:%i:%s.%f')", "DATETIME(6)"),
        ("STR_TO_DATE(x, '%H:%i')", "TIME"),
        ("DATE_ADD(x, INTERVAL 1 DAY)", None),
        ("UPPER(x)", None),
    ],
)
def test_result_type_of_temporal_functions(expr, expected):
    tree = function_rewrites.rewrite_tree(sqlglot.parse_one(f"SELECT {expr} AS c", read="mysql"))
    assert function_rewrites.result_type(tree.expressions[0]) == expected


def test_collation_folding_ignores_case_and_accents_and_keeps_positions():
    assert sf.locate("E", "café") == 4
    assert sf.field("CAFE", "x", "Café") == 2
    assert sf.find_in_set("école", "a,Ecole") == 2
    assert sf.strcmp("é", "E") == 0 and sf.strcmp("a", "B") == -1
    assert sf.locate("x", "İİx") == 3
