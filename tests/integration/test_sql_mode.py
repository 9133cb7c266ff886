"""sql_mode through a real client (issue 13 points 1 and 4): strict mode refuses bad values with MySQL's
code, SQLSTATE and message and stores nothing; non-strict mode stores MySQL's adjusted value with a
warning in SHOW WARNINGS and in the OK packet; the mode is per session and global."""

from __future__ import annotations

import re

import pymysql
import pytest

from tests.support import connect

COLUMNS = (
    "id INT PRIMARY KEY, i INT, ti TINYINT, tu TINYINT UNSIGNED, si SMALLINT, bi BIGINT, "
    "v VARCHAR(3), ch CHAR(2), tt TINYTEXT, d DATE, dt DATETIME, e ENUM('a','b'), s SET('x','y'), "
    "nn INT NOT NULL DEFAULT 7, dec2 DECIMAL(5,2), y YEAR, tm TIME"
)


@pytest.fixture
def cur(conn):
    c = conn.cursor()
    c.execute("SET SESSION sql_mode = DEFAULT")
    c.execute("DROP TABLE IF EXISTS sm")
    c.execute(f"CREATE TABLE sm ({COLUMNS})")
    c.execute("DROP TABLE IF EXISTS need")
    c.execute("CREATE TABLE need (id INT PRIMARY KEY, req VARCHAR(5) NOT NULL, opt INT)")
    return c


def refused(cur, sql, args=None):
    with pytest.raises(pymysql.MySQLError) as info:
        cur.execute(sql, args)
    return info.value.args[0], info.value.args[1], getattr(info.value, "sqlstate", None)


def count(cur, table="sm"):
    cur.execute(f"SELECT COUNT(*) FROM {table}")
    return cur.fetchone()[0]


def warnings(cur):
    cur.execute("SHOW WARNINGS")
    return [tuple(r) for r in cur.fetchall()]


STRICT_CASES = [
    ("i", "'abc'", 1366, "HY000", "Incorrect integer value: 'abc' for column 'i' at row 1"),
    ("i", "''", 1366, "HY000", "Incorrect integer value: '' for column 'i' at row 1"),
    ("i", "'12abc'", 1265, "01000", "Data truncated for column 'i' at row 1"),
    ("v", "'toolong'", 1406, "22001", "Data too long for column 'v' at row 1"),
    ("v", "'ééééé'", 1406, "22001", "Data too long for column 'v' at row 1"),
    ("ch", "'abc'", 1406, "22001", "Data too long for column 'ch' at row 1"),
    ("tt", "REPEAT('x', 256)", 1406, "22001", "Data too long for column 'tt' at row 1"),
    ("ti", "128", 1264, "22003", "Out of range value for column 'ti' at row 1"),
    ("ti", "-129", 1264, "22003", "Out of range value for column 'ti' at row 1"),
    ("tu", "-1", 1264, "22003", "Out of range value for column 'tu' at row 1"),
    ("tu", "256", 1264, "22003", "Out of range value for column 'tu' at row 1"),
    ("si", "32768", 1264, "22003", "Out of range value for column 'si' at row 1"),
    ("bi", "'9223372036854775808'", 1264, "22003", "Out of range value for column 'bi' at row 1"),
    ("dec2", "1000", 1264, "22003", "Out of range value for column 'dec2' at row 1"),
    ("dec2", "'x1'", 1366, "HY000", "Incorrect decimal value: 'x1' for column 'dec2' at row 1"),
    ("nn", "NULL", 1048, "23000", "Column 'nn' cannot be null"),
    ("d", "'2023-02-30'", 1292, "22007", "Incorrect date value: '2023-02-30' for column 'd' at row 1"),
    ("d", "'2023-00-10'", 1292, "22007", "Incorrect date value: '2023-00-10' for column 'd' at row 1"),
    ("d", "'0000-00-00'", 1292, "22007", "Incorrect date value: '0000-00-00' for column 'd' at row 1"),
    ("d", "'yesterday'", 1292, "22007", "Incorrect date value: 'yesterday' for column 'd' at row 1"),
    (
        "dt",
        "'2023-01-01 25:00:00'",
        1292,
        "22007",
        "Incorrect datetime value: '2023-01-01 25:00:00' for column 'dt' at row 1",
    ),
    ("e", "'c'", 1265, "01000", "Data truncated for column 'e' at row 1"),
    ("e", "''", 1265, "01000", "Data truncated for column 'e' at row 1"),
    ("s", "'x,z'", 1265, "01000", "Data truncated for column 's' at row 1"),
    ("y", "1900", 1264, "22003", "Out of range value for column 'y' at row 1"),
    ("tm", "'10:61:00'", 1292, "22007", "Incorrect time value: '10:61:00' for column 'tm' at row 1"),
]


@pytest.mark.parametrize(("column", "value", "code", "state", "message"), STRICT_CASES)
def test_strict_insert_refuses_and_stores_nothing(cur, column, value, code, state, message):
    assert refused(cur, f"INSERT INTO sm (id, {column}) VALUES (1, {value})") == (code, message, state)
    assert count(cur) == 0


def test_show_warnings_lists_the_error_of_a_refused_statement(cur):
    refused(cur, "INSERT INTO sm (id, v) VALUES (1, 'toolong')")
    assert warnings(cur) == [("Error", 1406, "Data too long for column 'v' at row 1")]


def test_show_warnings_forms(cur):
    cur.execute("SET SESSION sql_mode = ''")
    cur.execute("INSERT INTO sm (id, v, i) VALUES (1, 'abcd', 'x')")
    cur.execute("SHOW COUNT(*) WARNINGS")
    assert cur.fetchall() == ((2,),)
    cur.execute("SHOW WARNINGS LIMIT 1, 1")
    assert cur.fetchall() == (("Warning", 1366, "Incorrect integer value: 'x' for column 'i' at row 1"),)
    cur.execute("SHOW ERRORS")
    assert cur.fetchall() == ()
    refused(cur, "INSERT INTO sm (id) VALUES (1)")
    cur.execute("SHOW COUNT(*) ERRORS")
    assert cur.fetchall() == ((1,),)
    cur.execute("SHOW ERRORS")
    assert cur.fetchall() == (("Error", 1062, "Duplicate entry '1' for key 'sm.PRIMARY'"),)


def test_strict_is_the_default_mode(cur):
    cur.execute("SELECT @@sql_mode, @@global.sql_mode")
    session, global_ = cur.fetchone()
    assert session == global_ and "STRICT_TRANS_TABLES" in session and "NO_ZERO_DATE" in session


def test_strict_multi_row_names_the_row_and_stores_no_row(cur):
    code, message, _ = refused(cur, "INSERT INTO sm (id, i) VALUES (1, 1), (2, 2), (3, 'x')")
    assert (code, message) == (1366, "Incorrect integer value: 'x' for column 'i' at row 3")
    code, message, _ = refused(cur, "INSERT INTO sm (id, nn) VALUES (1, 1), (2, NULL)")
    assert (code, message) == (1048, "Column 'nn' cannot be null")  # multi-row too, in strict mode
    assert count(cur) == 0


def test_strict_update_replace_and_insert_select(cur):
    cur.execute("INSERT INTO sm (id, ti, v) VALUES (1, 1, 'a'), (2, 2, 'b')")
    code, message, _ = refused(cur, "UPDATE sm SET ti = ti * 100 ORDER BY id")
    assert (code, message) == (1264, "Out of range value for column 'ti' at row 2")
    code, message, _ = refused(cur, "UPDATE sm SET v = 'long value' WHERE id = 2")
    assert (code, message) == (1406, "Data too long for column 'v' at row 1")
    cur.execute("SELECT id, ti, v FROM sm ORDER BY id")
    assert cur.fetchall() == ((1, 1, "a"), (2, 2, "b"))  # neither row changed
    code, message, _ = refused(cur, "REPLACE INTO sm (id, v) VALUES (1, 'abcd')")
    assert (code, message) == (1406, "Data too long for column 'v' at row 1")
    code, message, _ = refused(
        cur, "INSERT INTO sm (id, i) SELECT id + 10, CONCAT('n', id) FROM sm ORDER BY id"
    )
    assert (code, message) == (1366, "Incorrect integer value: 'n1' for column 'i' at row 1")
    code, message, _ = refused(cur, "INSERT INTO sm (id, ti) VALUES (1, 5) ON DUPLICATE KEY UPDATE ti = 1000")
    assert (code, message) == (1264, "Out of range value for column 'ti' at row 1")
    cur.execute("SELECT id, ti, v FROM sm ORDER BY id")
    assert cur.fetchall() == ((1, 1, "a"), (2, 2, "b"))


def test_strict_multi_table_update(cur):
    cur.execute("INSERT INTO sm (id, v, i) VALUES (1, 'a', 1)")
    cur.execute("INSERT INTO need (id, req) VALUES (1, 'long')")
    code, message, _ = refused(cur, "UPDATE sm JOIN need ON need.id = sm.id SET sm.v = need.req")
    assert (code, message) == (1406, "Data too long for column 'v' at row 1")
    cur.execute("UPDATE sm s JOIN need n ON n.id = s.id SET s.i = LENGTH(n.req)")
    cur.execute("SELECT v, i FROM sm")
    assert cur.fetchall() == (("a", 4),)


def test_strict_missing_value_without_default(cur):
    assert refused(cur, "INSERT INTO need (id, opt) VALUES (1, 1)") == (
        1364,
        "Field 'req' doesn't have a default value",
        "HY000",
    )
    assert refused(cur, "INSERT INTO need (id) SELECT 5") == (
        1364,
        "Field 'req' doesn't have a default value",
        "HY000",
    )
    assert count(cur, "need") == 0


def test_strict_error_in_transaction_undoes_only_the_statement(conn, cur):
    cur.execute("BEGIN")
    cur.execute("INSERT INTO sm (id, i) VALUES (1, 1)")
    assert refused(cur, "INSERT INTO sm (id, i) VALUES (2, 3), (3, 'bad')")[0] == 1366
    cur.execute("COMMIT")
    cur.execute("SELECT id, i FROM sm")
    assert cur.fetchall() == ((1, 1),)


def test_valid_values_are_stored_as_mysql_stores_them(cur):
    cur.execute(
        "INSERT INTO sm (id, i, ti, v, ch, d, dt, e, s, dec2, y, tm) VALUES "
        "(1, '42', 1.5, 'ab ', 'x', '2024-1-5', '2024-01-05', 'B', 'y,x,y', '1.234', 24, '1:2:3')"
    )
    assert cur.warning_count == 1  # the DECIMAL lost a digit: a note, as MySQL gives
    assert warnings(cur) == [("Note", 1265, "Data truncated for column 'dec2' at row 1")]
    cur.execute(
        "SELECT i, ti, v, ch, CAST(d AS CHAR), CAST(dt AS CHAR), e, s, dec2, y, CAST(tm AS CHAR) FROM sm"
    )
    row = cur.fetchone()
    assert row[:8] == (42, 2, "ab ", "x", "2024-01-05", "2024-01-05 00:00:00", "b", "x,y")
    assert float(row[8]) == 1.23 and row[9] == 2024 and row[10] == "01:02:03"


def test_non_strict_adjusts_and_warns(cur):
    cur.execute("SET SESSION sql_mode = ''")
    affected = cur.execute(
        "INSERT INTO sm (id, i, ti, tu, v, d, e, s) VALUES (1, 'abc', 300, -5, 'toolong', '2023-02-30', 'z', 'x,q')"
    )
    assert affected == 1
    assert cur.warning_count == 7  # in the OK packet
    assert warnings(cur) == [
        ("Warning", 1366, "Incorrect integer value: 'abc' for column 'i' at row 1"),
        ("Warning", 1264, "Out of range value for column 'ti' at row 1"),
        ("Warning", 1264, "Out of range value for column 'tu' at row 1"),
        ("Warning", 1265, "Data truncated for column 'v' at row 1"),
        ("Warning", 1264, "Out of range value for column 'd' at row 1"),
        ("Warning", 1265, "Data truncated for column 'e' at row 1"),
        ("Warning", 1265, "Data truncated for column 's' at row 1"),
    ]
    cur.execute("SELECT @@warning_count")
    assert cur.fetchone() == (7,)
    cur.execute("SELECT i, ti, tu, v, CAST(d AS CHAR), e, s FROM sm WHERE id = 1")
    assert cur.fetchone() == (0, 127, 0, "too", "0000-00-00", "", "x")


def test_non_strict_warnings_follow_the_statements_column_order(cur):
    cur.execute("SET SESSION sql_mode = ''")
    cur.execute("INSERT INTO sm (s, v, id, i) VALUES ('x,q', 'toolong', 1, 'abc'), ('q', 'ok', 2, 'z')")
    assert [(w[1], re.search(r"column '(\w+)'", w[2]).group(1), w[2][-1]) for w in warnings(cur)] == [
        (1265, "s", "1"),
        (1265, "v", "1"),
        (1366, "i", "1"),
        (1265, "s", "2"),
        (1366, "i", "2"),
    ]
    cur.execute("UPDATE sm SET v = 'long again', i = 'x' WHERE id = 1")
    assert [re.search(r"column '(\w+)'", w[2]).group(1) for w in warnings(cur)] == ["v", "i"]


def test_non_strict_null_and_missing_values(cur):
    cur.execute("SET SESSION sql_mode = ''")
    # one-row INSERT: NULL into NOT NULL fails in any mode; several rows: the implicit default, warned
    assert refused(cur, "INSERT INTO sm (id, nn) VALUES (1, NULL)")[:2] == (
        1048,
        "Column 'nn' cannot be null",
    )
    cur.execute("INSERT INTO sm (id, nn) VALUES (1, 5), (2, NULL)")
    assert warnings(cur) == [("Warning", 1048, "Column 'nn' cannot be null")]
    cur.execute("UPDATE sm SET nn = NULL WHERE id = 1")
    assert cur.warning_count == 1
    cur.execute("SELECT id, nn FROM sm ORDER BY id")
    assert cur.fetchall() == ((1, 0), (2, 0))
    cur.execute("INSERT INTO need (id) VALUES (1)")
    assert warnings(cur) == [("Warning", 1364, "Field 'req' doesn't have a default value")]
    cur.execute("SELECT req FROM need")
    assert cur.fetchall() == (("",),)


def test_non_strict_update_and_insert_select(cur):
    cur.execute("INSERT INTO sm (id, v) VALUES (1, 'a'), (2, 'b')")
    cur.execute("SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION'")
    assert cur.execute("UPDATE sm SET v = CONCAT(v, 'long') ORDER BY id") == 2
    assert warnings(cur) == [
        ("Warning", 1265, "Data truncated for column 'v' at row 1"),
        ("Warning", 1265, "Data truncated for column 'v' at row 2"),
    ]
    cur.execute("INSERT INTO sm (id, ti) SELECT id + 10, id * 1000 FROM sm ORDER BY id")
    assert warnings(cur) == [
        ("Warning", 1264, "Out of range value for column 'ti' at row 1"),
        ("Warning", 1264, "Out of range value for column 'ti' at row 2"),
    ]
    cur.execute("SELECT id, ti, v FROM sm ORDER BY id")
    assert cur.fetchall() == ((1, None, "alo"), (2, None, "blo"), (11, 127, None), (12, 127, None))


def test_insert_ignore_warns_in_strict_mode(cur):
    cur.execute("INSERT IGNORE INTO sm (id, i, v) VALUES (1, 'abc', 'toolong')")
    assert cur.warning_count == 2
    cur.execute("SELECT i, v FROM sm")
    assert cur.fetchall() == ((0, "too"),)


def test_trailing_spaces_are_cut_with_a_note_in_strict_mode(cur):
    cur.execute("INSERT INTO sm (id, v) VALUES (1, 'abc    ')")
    assert warnings(cur) == [("Note", 1265, "Data truncated for column 'v' at row 1")]
    cur.execute("SET sql_notes = 0")  # as mysqldump sets it: notes are not recorded
    cur.execute("INSERT INTO sm (id, v) VALUES (2, 'xyz  ')")
    assert cur.warning_count == 0 and warnings(cur) == []
    cur.execute("SET sql_notes = 1")
    cur.execute("SELECT v FROM sm ORDER BY id")
    assert cur.fetchall() == (("abc",), ("xyz",))


def test_load_data_local_warns_as_mysql_does(tmp_path, conn, cur):
    data = tmp_path / "rows.tsv"
    data.write_text("1\tabc\ttoolong\n2\t5\tok\n")
    cur.execute(f"LOAD DATA LOCAL INFILE '{data}' INTO TABLE sm (id, i, v)")
    # LOCAL: MySQL turns data errors into warnings even in strict mode (it cannot stop the client's file)
    assert cur.warning_count == 2
    cur.execute("SELECT id, i, v FROM sm ORDER BY id")
    assert cur.fetchall() == ((1, 0, "too"), (2, 5, "ok"))


def test_mode_is_per_session_and_global(node, cur):
    other = connect(node)
    try:
        cur.execute("SET sql_mode = ''")
        cur.execute("INSERT INTO sm (id, ti) VALUES (1, 1000)")  # this session: clamped
        ocur = other.cursor()
        assert refused(ocur, "INSERT INTO sm (id, ti) VALUES (2, 1000)")[0] == 1264  # the other: strict
        cur.execute("SET GLOBAL sql_mode = 'ANSI'")
        cur.execute("SELECT @@global.sql_mode")
        assert cur.fetchone() == (
            "REAL_AS_FLOAT,PIPES_AS_CONCAT,ANSI_QUOTES,IGNORE_SPACE,ONLY_FULL_GROUP_BY,ANSI",
        )
        assert refused(ocur, "INSERT INTO sm (id, ti) VALUES (2, 1000)")[0] == 1264  # kept its session value
        fresh = connect(node)
        try:
            fcur = fresh.cursor()
            fcur.execute("INSERT INTO sm (id, ti) VALUES (3, 1000)")  # a new session takes the global mode
            assert fcur.warning_count == 1
        finally:
            fresh.close()
    finally:
        cur.execute("SET GLOBAL sql_mode = DEFAULT")
        other.close()
    cur.execute("SELECT @@global.sql_mode")
    assert cur.fetchone()[0].startswith("ONLY_FULL_GROUP_BY,STRICT_TRANS_TABLES")


def test_set_sql_mode_forms(cur):
    cur.execute("SET SESSION sql_mode = 'traditional'")
    cur.execute("SELECT @@session.sql_mode")
    assert cur.fetchone() == (
        "STRICT_TRANS_TABLES,STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,"
        "TRADITIONAL,NO_ENGINE_SUBSTITUTION",
    )
    cur.execute("SET @old = @@sql_mode, sql_mode = 'no_auto_value_on_zero'")
    cur.execute("SELECT @@sql_mode")
    assert cur.fetchone() == ("NO_AUTO_VALUE_ON_ZERO",)
    cur.execute("SET sql_mode = @old")
    cur.execute("SELECT @@sql_mode")
    assert cur.fetchone()[0].startswith("STRICT_TRANS_TABLES")
    assert refused(cur, "SET sql_mode = 'STRICT_TRANS_TABLES,NOT_A_MODE'") == (
        1231,
        "Variable 'sql_mode' can't be set to the value of 'NOT_A_MODE'",
        "42000",
    )


def test_no_auto_value_on_zero_keeps_a_zero_id(cur):
    cur.execute("DROP TABLE IF EXISTS autoz")
    cur.execute("CREATE TABLE autoz (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
    cur.execute("SET sql_mode = 'NO_AUTO_VALUE_ON_ZERO'")
    cur.execute("INSERT INTO autoz VALUES (0, 1)")  # as a dump restores a row whose id is 0
    cur.execute("SET sql_mode = DEFAULT")
    cur.execute("INSERT INTO autoz VALUES (0, 2)")
    cur.execute("SELECT id = 0, v FROM autoz ORDER BY v")
    assert cur.fetchall() == ((1, 1), (0, 2))


# -- point 4: primary keys ----------------------------------------------------------------------------


@pytest.mark.parametrize("pk_type", ["INT", "INTEGER", "BIGINT", "BIGINT UNSIGNED"])
def test_integer_primary_key_never_stores_null(cur, pk_type):
    cur.execute("DROP TABLE IF EXISTS pk")
    cur.execute(f"CREATE TABLE pk (id {pk_type} PRIMARY KEY, v INT)")
    assert refused(cur, "INSERT INTO pk (v) VALUES (1)") == (
        1364,
        "Field 'id' doesn't have a default value",
        "HY000",
    )
    assert refused(cur, "INSERT INTO pk VALUES (NULL, 1)") == (1048, "Column 'id' cannot be null", "23000")
    assert refused(cur, "INSERT INTO pk (id, v) VALUES (1, 1), (NULL, 2)")[0] == 1048
    cur.execute("SET sql_mode = ''")
    assert refused(cur, "INSERT INTO pk VALUES (NULL, 1)")[0] == 1048  # one row: an error in any mode
    cur.execute("INSERT INTO pk (v) VALUES (1)")
    assert warnings(cur) == [("Warning", 1364, "Field 'id' doesn't have a default value")]
    cur.execute("SELECT id, v FROM pk")
    assert cur.fetchall() == ((0, 1),)  # MySQL's implicit default, never NULL


def test_table_level_primary_key_columns_are_not_null(cur):
    cur.execute("DROP TABLE IF EXISTS pk2")
    cur.execute("CREATE TABLE pk2 (a INT, b VARCHAR(5), v INT, PRIMARY KEY (a, b))")
    assert refused(cur, "INSERT INTO pk2 (a, v) VALUES (1, 1)")[:2] == (
        1364,
        "Field 'b' doesn't have a default value",
    )
    assert refused(cur, "INSERT INTO pk2 VALUES (1, NULL, 1)")[:2] == (1048, "Column 'b' cannot be null")
    assert count(cur, "pk2") == 0


def test_rename_table_keeps_mysql_index_names(cur):
    for t in ("ren_a", "ren_b", "ren_c"):
        cur.execute(f"DROP TABLE IF EXISTS {t}")
    cur.execute(
        "CREATE TABLE ren_a (id INT PRIMARY KEY, a INT, b VARCHAR(10), KEY ka (a), UNIQUE KEY ub (b))"
    )
    cur.execute("RENAME TABLE ren_a TO ren_b")
    cur.execute("SHOW INDEX FROM ren_b")
    assert [r[2] for r in cur.fetchall()] == ["PRIMARY", "ub", "ka"]
    cur.execute("DROP INDEX ka ON ren_b")
    cur.execute("ALTER TABLE ren_b RENAME TO ren_c")
    cur.execute("SHOW INDEX FROM ren_c")
    assert [r[2] for r in cur.fetchall()] == ["PRIMARY", "ub"]
    cur.execute("ALTER TABLE ren_c DROP INDEX ub")
    cur.execute("SHOW CREATE TABLE ren_c")
    assert "KEY" not in cur.fetchone()[1].replace("PRIMARY KEY", "")
    cur.execute("INSERT INTO ren_c VALUES (1, 1, 'x'), (2, 1, 'x')")  # the unique key is really gone


def test_enum_beside_unsigned_display_width_is_checked_and_shown(cur):
    # ``bigint(20) unsigned`` is stored as ``BIGINT UNSIGNED(20)``, which the schema reader used to fail
    # on, losing the table's ENUM/SET types (and CHECKs) for SHOW CREATE TABLE and the checks alike
    cur.execute("DROP TABLE IF EXISTS wide")
    cur.execute(
        "CREATE TABLE wide (id BIGINT(20) UNSIGNED NOT NULL, st ENUM('draft','publish') NOT NULL DEFAULT 'draft', "
        "PRIMARY KEY (id))"
    )
    assert refused(cur, "INSERT INTO wide (id, st) VALUES (1, 'trash')")[:2] == (
        1265,
        "Data truncated for column 'st' at row 1",
    )
    cur.execute("SHOW CREATE TABLE wide")
    assert "`st` enum('draft','publish') NOT NULL DEFAULT 'draft'" in cur.fetchone()[1]


def test_warning_count_counts_beyond_the_kept_1024(cur):
    cur.execute("SET SESSION sql_mode = ''")
    rows = ", ".join(f"({i}, 1000)" for i in range(1, 1101))
    assert cur.execute(f"INSERT INTO sm (id, ti) VALUES {rows}") == 1100
    assert cur.warning_count == 1100  # the OK packet counts every adjustment
    kept = warnings(cur)
    assert len(kept) == 1024 and kept[-1] == (
        "Warning",
        1264,
        "Out of range value for column 'ti' at row 1024",
    )


def test_default_keyword_and_empty_values(cur):
    cur.execute("DROP TABLE IF EXISTS dflt")
    cur.execute(
        "CREATE TABLE dflt (id INT AUTO_INCREMENT PRIMARY KEY, a INT DEFAULT 3, b VARCHAR(4) DEFAULT 'x')"
    )
    cur.execute("INSERT INTO dflt VALUES ()")
    cur.execute("INSERT INTO dflt () VALUES ()")
    cur.execute("INSERT INTO dflt VALUES (DEFAULT, DEFAULT, 'q')")
    cur.execute("INSERT INTO dflt (a, b) VALUES (DEFAULT, DEFAULT)")
    cur.execute("SELECT COUNT(DISTINCT id), SUM(id IS NULL) FROM dflt")
    assert cur.fetchone() == (4, 0)
    cur.execute("SELECT a, b FROM dflt ORDER BY b, id")
    assert cur.fetchall() == ((3, "q"), (3, "x"), (3, "x"), (3, "x"))
    # no DEFAULT: MySQL's 1364 for DEFAULT, an omitted column and an empty VALUES alike
    assert refused(cur, "INSERT INTO need VALUES ()")[:2] == (1364, "Field 'id' doesn't have a default value")
    assert refused(cur, "INSERT INTO need VALUES (1, DEFAULT, 1)")[:2] == (
        1364,
        "Field 'req' doesn't have a default value",
    )
    cur.execute("UPDATE dflt SET a = 9")
    cur.execute("UPDATE dflt SET a = DEFAULT")
    cur.execute("SELECT DISTINCT a FROM dflt")
    assert cur.fetchall() == ((3,),)
