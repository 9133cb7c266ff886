"""MySQL's wording of common errors through a real client (issue 13 point 7): the duplicate value and the
key (``table.PRIMARY`` / ``table.key``) in 1062, the clause of an unknown column in 1054, 1064 for a
negative LIMIT."""

from __future__ import annotations

import pymysql
import pytest


@pytest.fixture
def cur(conn):
    c = conn.cursor()
    for t in ("kv", "pair", "ids"):
        c.execute(f"DROP TABLE IF EXISTS {t}")
    c.execute("CREATE TABLE kv (k VARCHAR(10) PRIMARY KEY, v INT, w DOUBLE, UNIQUE KEY uv (v))")
    c.execute("CREATE TABLE pair (a INT, b VARCHAR(5), n INT, PRIMARY KEY (a, b), UNIQUE KEY (n))")
    c.execute("CREATE TABLE ids (id BIGINT AUTO_INCREMENT PRIMARY KEY, n INT)")
    c.execute("INSERT INTO kv VALUES ('a', 1, 1.5), ('b', 2, 2.5)")
    c.execute("INSERT INTO pair VALUES (1, 'x', 10)")
    c.execute("INSERT INTO kv (k, v) VALUES ('x1', 3)")
    return c


def error(cur, sql):
    with pytest.raises(pymysql.MySQLError) as info:
        cur.execute(sql)
    return info.value.args


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("INSERT INTO kv VALUES ('a', 9, 0)", "Duplicate entry 'a' for key 'kv.PRIMARY'"),
        ("INSERT INTO kv VALUES ('A', 9, 0)", "Duplicate entry 'A' for key 'kv.PRIMARY'"),
        ("INSERT INTO kv VALUES ('c', 2, 0)", "Duplicate entry '2' for key 'kv.uv'"),
        ("UPDATE kv SET v = 1 WHERE k = 'b'", "Duplicate entry '1' for key 'kv.uv'"),
        ("INSERT INTO kv (k, v) VALUES ('c', 5), ('d', 5)", "Duplicate entry '5' for key 'kv.uv'"),
        ("INSERT INTO pair VALUES (1, 'x', 11)", "Duplicate entry '1-x' for key 'pair.PRIMARY'"),
        ("INSERT INTO pair VALUES (2, 'y', 10)", "Duplicate entry '10' for key 'pair.n'"),
        (
            "INSERT INTO kv (k, v) SELECT CONCAT(b, a), n FROM pair",
            "Duplicate entry 'x1' for key 'kv.PRIMARY'",
        ),
    ],
)
def test_duplicate_entry_names_value_and_key(cur, sql, message):
    assert error(cur, sql) == (1062, message)


def test_duplicate_auto_increment_id(cur):
    cur.execute("INSERT INTO ids VALUES (5, 1)")
    assert error(cur, "INSERT INTO ids VALUES (5, 2)") == (1062, "Duplicate entry '5' for key 'ids.PRIMARY'")


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("INSERT INTO kv (k, nope) VALUES ('c', 1)", "Unknown column 'nope' in 'field list'"),
        ("UPDATE kv SET nope = 1", "Unknown column 'nope' in 'field list'"),
        ("SELECT nope FROM kv", "Unknown column 'nope' in 'field list'"),
        ("SELECT k FROM kv WHERE nope = 1", "Unknown column 'nope' in 'where clause'"),
        ("UPDATE kv SET v = 3 WHERE nope = 1", "Unknown column 'nope' in 'where clause'"),
        ("SELECT * FROM kv JOIN pair ON kv.nope = pair.a", "Unknown column 'kv.nope' in 'on clause'"),
        ("SELECT * FROM kv JOIN pair USING (nope)", "Unknown column 'nope' in 'from clause'"),
        ("SELECT k FROM kv ORDER BY nope", "Unknown column 'nope' in 'order clause'"),
        ("SELECT k FROM kv GROUP BY nope", "Unknown column 'nope' in 'group statement'"),
    ],
)
def test_unknown_column_names_the_clause(cur, sql, message):
    assert error(cur, sql) == (1054, message)


def test_negative_limit_is_a_syntax_error(cur):
    code, message = error(cur, "SELECT k FROM kv LIMIT -1")
    assert code == 1064 and message.endswith("to use near '-1' at line 1")
    assert error(cur, "SELECT k FROM kv LIMIT 1, -5")[0] == 1064
    cur.execute("SELECT k FROM kv ORDER BY k LIMIT 1")
    assert cur.fetchall() == (("a",),)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM nodb.t1",
        "INSERT INTO nodb.t1 VALUES (1)",
        "UPDATE nodb.t1 SET a = 1",
        "DELETE FROM nodb.t1",
        "SELECT * FROM kv JOIN nodb.t1 ON t1.a = kv.v",
    ],
)
def test_table_of_a_missing_database_is_1146_with_db_and_table(cur, sql):
    assert error(cur, sql) == (1146, "Table 'nodb.t1' doesn't exist")


def test_missing_table_names_database_and_table(cur):
    assert error(cur, "SELECT * FROM nosuch") == (1146, "Table 'marmot.nosuch' doesn't exist")
    assert error(cur, "SELECT * FROM marmot.nosuch") == (1146, "Table 'marmot.nosuch' doesn't exist")
    with pytest.raises(pymysql.MySQLError) as info:
        cur.execute("USE nodb")
    assert info.value.args[0] == 1049  # USE keeps MySQL's unknown-database error
