"""MySQL DML dialect through a real client: each expected value is what MySQL 8.0 returns."""

from __future__ import annotations

import datetime as dt

import pymysql
import pytest


@pytest.fixture
def cur(conn):
    c = conn.cursor()
    c.execute("DROP TABLE IF EXISTS opts")
    c.execute(
        "CREATE TABLE opts (option_id BIGINT(20) UNSIGNED NOT NULL AUTO_INCREMENT, "
        "option_name VARCHAR(191) NOT NULL DEFAULT '', option_value LONGTEXT NOT NULL, "
        "autoload VARCHAR(20) NOT NULL DEFAULT 'yes', PRIMARY KEY (option_id), "
        "UNIQUE KEY option_name (option_name), KEY autoload (autoload)) "
        "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci"
    )
    return c


def test_insert_on_duplicate_key_update(cur):
    cur.execute(
        "INSERT INTO opts (option_name, option_value) VALUES ('a', '1') "
        "ON DUPLICATE KEY UPDATE option_value = VALUES(option_value)"
    )
    cur.execute(
        "INSERT INTO opts (option_name, option_value) VALUES ('a', '2') "
        "ON DUPLICATE KEY UPDATE option_value = VALUES(option_value)"
    )
    cur.execute("SELECT option_value, COUNT(*) FROM opts WHERE option_name = 'a'")
    assert cur.fetchone() == ("2", 1)


def test_insert_ignore_and_replace(cur):
    cur.execute("INSERT INTO opts (option_name, option_value) VALUES ('k', 'first')")
    assert cur.execute("INSERT IGNORE INTO opts (option_name, option_value) VALUES ('k', 'second')") == 0
    cur.execute("SELECT option_value FROM opts WHERE option_name = 'k'")
    assert cur.fetchone() == ("first",)
    cur.execute("REPLACE INTO opts (option_name, option_value) VALUES ('k', 'third')")
    cur.execute("SELECT option_value, COUNT(*) FROM opts WHERE option_name = 'k'")
    assert cur.fetchone() == ("third", 1)


def test_insert_set_and_multi_row(cur):
    cur.execute("INSERT INTO opts SET option_name = 's', option_value = 'v'")
    assert (
        cur.execute("INSERT INTO opts (option_name, option_value) VALUES ('m1','x'),('m2','y'),('m3','z')")
        == 3
    )
    cur.execute("SELECT COUNT(*) FROM opts")
    assert cur.fetchone() == (4,)


def test_calc_found_rows(cur):
    for i in range(25):
        cur.execute("INSERT INTO opts (option_name, option_value) VALUES (%s, %s)", (f"n{i:02d}", str(i)))
    cur.execute(
        "SELECT SQL_CALC_FOUND_ROWS option_name FROM opts WHERE option_value > '1' "
        "ORDER BY option_name LIMIT 10, 5"
    )
    assert [r[0] for r in cur.fetchall()] == ["n12", "n13", "n14", "n15", "n16"]  # n02..n24 match
    cur.execute("SELECT FOUND_ROWS()")
    # values > '1' as strings: everything except '0', '1'
    assert cur.fetchone() == (23,)


def test_update_delete_order_limit_and_joins(cur):
    for i in range(5):
        cur.execute(
            "INSERT INTO opts (option_name, option_value, autoload) VALUES (%s, %s, 'no')", (f"o{i}", str(i))
        )
    assert cur.execute("UPDATE opts SET autoload = 'yes' ORDER BY option_name DESC LIMIT 2") == 2
    cur.execute("SELECT option_name FROM opts WHERE autoload = 'yes' ORDER BY option_name")
    assert cur.fetchall() == (("o3",), ("o4",))
    assert cur.execute("DELETE FROM opts ORDER BY option_name LIMIT 1") == 1
    cur.execute("DROP TABLE IF EXISTS meta")
    cur.execute("CREATE TABLE meta (id INT PRIMARY KEY, name VARCHAR(20), note TEXT)")
    cur.execute("INSERT INTO meta VALUES (1, 'o1', 'one'), (2, 'o2', 'two'), (9, 'gone', 'x')")
    cur.execute(
        "UPDATE opts o JOIN meta m ON m.name = o.option_name SET o.option_value = m.note WHERE m.id < 5"
    )
    cur.execute("SELECT option_value FROM opts WHERE option_name IN ('o1','o2') ORDER BY option_name")
    assert cur.fetchall() == (("one",), ("two",))
    cur.execute("DELETE m FROM meta m LEFT JOIN opts o ON o.option_name = m.name WHERE o.option_id IS NULL")
    cur.execute("SELECT id FROM meta ORDER BY id")
    assert cur.fetchall() == ((1,), (2,))


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("DATE_ADD('2024-01-31', INTERVAL 1 MONTH)", "2024-02-29"),
        ("DATE_SUB('2024-03-31', INTERVAL 1 MONTH)", "2024-02-29"),
        ("DATE_ADD('2024-01-31 10:00:00', INTERVAL 1 DAY)", "2024-02-01 10:00:00"),
        ("DATE_ADD('2024-01-31', INTERVAL 2 HOUR)", "2024-01-31 02:00:00"),
        ("'2024-12-31' + INTERVAL 1 DAY", "2025-01-01"),
        ("'2024-02-29' - INTERVAL 1 YEAR", "2023-02-28"),
        ("DATE_FORMAT('2024-03-05 14:07:09', '%Y-%m-%d %H:%i:%s')", "2024-03-05 14:07:09"),
        ("DATE_FORMAT('2024-03-05 14:07:09', '%b %e, %Y %l:%i %p')", "Mar 5, 2024 2:07 PM"),
        ("DATE_FORMAT('2024-03-01', '%W %D %M')", "Friday 1st March"),
        ("STR_TO_DATE('05/03/2024', '%d/%m/%Y')", dt.date(2024, 3, 5)),  # a DATE column, as MySQL
        ("DATEDIFF('2024-03-01', '2024-02-01')", 29),
        ("YEAR('2024-03-05 10:00:00')", 2024),
        ("MONTH('2024-03-05')", 3),
        ("DAYOFWEEK('2024-03-03')", 1),
        ("LAST_DAY('2024-02-10')", dt.date(2024, 2, 29)),
        ("FROM_UNIXTIME(0)", dt.datetime(1970, 1, 1)),
        ("UNIX_TIMESTAMP('1970-01-02 00:00:00')", 86400),
        ("CONCAT_WS('-', 'a', NULL, 'b')", "a-b"),
        ("SUBSTRING_INDEX('www.mysql.com', '.', 2)", "www.mysql"),
        ("SUBSTRING_INDEX('www.mysql.com', '.', -2)", "mysql.com"),
        ("FIND_IN_SET('b', 'a,b,c')", 2),
        ("IF(1 > 2, 'yes', 'no')", "no"),
        ("IFNULL(NULL, 'd')", "d"),
        ("MD5('abc')", "900150983cd24fb0d6963f7d28e17f72"),
        ("'abc' REGEXP '^a'", 1),
        ("LEFT('marmot', 3)", "mar"),
    ],
)
def test_mysql_functions(conn, expr, expected):
    c = conn.cursor()
    c.execute(f"SELECT {expr}")
    assert c.fetchone()[0] == expected
    if "%" not in expr:  # the same expression with the values bound as parameters (a WHERE context)
        c.execute(f"SELECT 1 FROM DUAL WHERE {expr} = %s", (expected,))
        assert c.fetchone() == (1,)


def test_date_functions_with_bound_literals(conn):
    c = conn.cursor()
    c.execute("SELECT 1 FROM DUAL WHERE DATE_FORMAT(%s, %s) = %s", ("2024-03-05", "%d.%m.%Y", "05.03.2024"))
    assert c.fetchone() == (1,)


def test_syntax_error_points_at_the_problem(conn):
    c = conn.cursor()
    with pytest.raises(pymysql.err.ProgrammingError) as ei:
        c.execute("SELECT * FORM opts")
    assert ei.value.args[0] == 1064
    assert "near 'opts'" in ei.value.args[1]


def test_affected_rows_like_mysql(cur):
    sql = (
        "INSERT INTO opts (option_name, option_value) VALUES ('u', %s) "
        "ON DUPLICATE KEY UPDATE option_value = VALUES(option_value)"
    )
    assert cur.execute(sql, ("1",)) == 1  # inserted
    assert cur.execute(sql, ("2",)) == 2  # updated
    assert cur.execute(sql, ("2",)) == 0  # unchanged
    assert cur.execute("REPLACE INTO opts (option_name, option_value) VALUES ('r', 'a')") == 1
    assert cur.execute("REPLACE INTO opts (option_name, option_value) VALUES ('r', 'b')") == 2
