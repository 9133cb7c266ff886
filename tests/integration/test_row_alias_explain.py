"""MySQL 8.0.19+ row aliases in upserts and EXPLAIN in MySQL's table shape (issue 13 point 5)."""

from __future__ import annotations

import pymysql
import pytest

EXPLAIN_COLUMNS = [
    "id",
    "select_type",
    "table",
    "partitions",
    "type",
    "possible_keys",
    "key",
    "key_len",
    "ref",
    "rows",
    "filtered",
    "Extra",
]


@pytest.fixture
def cur(conn):
    cur = conn.cursor()
    cur.execute("DROP TABLE IF EXISTS ra")
    cur.execute(
        "CREATE TABLE ra (k INT PRIMARY KEY, v INT, w INT, name VARCHAR(10), KEY kv (v), UNIQUE KEY un (name))"
    )
    return cur


def _rows(cur, sql: str) -> tuple:
    cur.execute(sql)
    return cur.fetchall()


def test_row_alias_with_and_without_column_aliases(cur):
    cur.execute("INSERT INTO ra (k, v, w) VALUES (1, 10, 0) AS new ON DUPLICATE KEY UPDATE v = new.v")
    assert cur.rowcount == 1
    cur.execute("INSERT INTO ra (k, v, w) VALUES (1, 11, 0) AS new ON DUPLICATE KEY UPDATE v = new.v + ra.v")
    assert cur.rowcount == 2  # an updated row counts 2, as MySQL
    assert _rows(cur, "SELECT k, v, w FROM ra") == ((1, 21, 0),)
    cur.execute(
        "INSERT INTO ra (k, v, w) VALUES (1, 12, 5), (2, 20, 6) AS n (a, b, c) "
        "ON DUPLICATE KEY UPDATE v = b, w = n.c + 1"
    )
    assert _rows(cur, "SELECT k, v, w FROM ra ORDER BY k") == ((1, 12, 6), (2, 20, 6))
    # no INSERT column list: the column aliases map to the table's columns in order
    cur.execute(
        "INSERT INTO ra VALUES (2, 7, 8, 'x') AS r (a, b, c, d) ON DUPLICATE KEY UPDATE w = c, name = d"
    )
    assert _rows(cur, "SELECT k, v, w, name FROM ra WHERE k = 2") == ((2, 20, 8, "x"),)
    # INSERT ... SET with a row alias
    cur.execute("INSERT INTO ra SET k = 1, v = 5, w = 5 AS s ON DUPLICATE KEY UPDATE v = s.v")
    assert _rows(cur, "SELECT v FROM ra WHERE k = 1") == ((5,),)


def test_explain_select_in_mysql_shape(cur):
    cur.execute("EXPLAIN SELECT * FROM ra WHERE k = 1")
    assert [d[0] for d in cur.description] == EXPLAIN_COLUMNS
    assert cur.fetchall() == (
        (1, "SIMPLE", "ra", None, "const", "PRIMARY", "PRIMARY", None, "const", 1, 100.0, None),
    )
    row = _rows(cur, "EXPLAIN SELECT * FROM ra WHERE v = 3")[0]
    assert row[1:7] == ("SIMPLE", "ra", None, "ref", "kv", "kv") and row[11] == "Using where"
    row = _rows(cur, "EXPLAIN SELECT * FROM ra WHERE w > 3 ORDER BY w")[0]
    assert row[4] == "ALL" and row[6] is None and row[11] == "Using where; Using filesort"
    row = _rows(cur, "EXPLAIN SELECT v FROM ra WHERE v > 3")[0]
    assert (row[4], row[6], row[11]) == ("range", "kv", "Using where; Using index")
    assert _rows(cur, "EXPLAIN SELECT 1")[0][11] == "No tables used"
    rows = _rows(cur, "EXPLAIN SELECT * FROM ra WHERE k IN (SELECT w FROM ra AS r2 WHERE r2.w > 0)")
    assert [r[1] for r in rows] == ["SIMPLE", "SUBQUERY"]


def test_explain_update_delete_insert(cur):
    row = _rows(cur, "EXPLAIN UPDATE ra SET w = 1 WHERE v = 2")[0]
    assert row[1:7] == ("UPDATE", "ra", None, "ref", "kv", "kv")
    row = _rows(cur, "EXPLAIN DELETE FROM ra WHERE w = 2")[0]
    assert row[1:5] == ("DELETE", "ra", None, "ALL")
    assert _rows(cur, "EXPLAIN DELETE FROM ra")[0][1:5] == ("DELETE", "ra", None, "ALL")
    assert _rows(cur, "EXPLAIN INSERT INTO ra (k) VALUES (9)")[0][1:3] == ("INSERT", "ra")
    # nothing ran
    assert _rows(cur, "SELECT COUNT(*) FROM ra") == ((0,),)
    cur.execute("INSERT INTO ra (k, v) VALUES (1, 1)")
    cur.execute("EXPLAIN DELETE FROM ra")
    assert _rows(cur, "SELECT COUNT(*) FROM ra") == ((1,),)


def test_explain_refusals_and_describe(cur):
    with pytest.raises(pymysql.MySQLError) as info:
        cur.execute("EXPLAIN FORMAT=JSON SELECT 1")
    assert info.value.args[0] == 1235
    with pytest.raises(pymysql.MySQLError) as info:
        cur.execute("EXPLAIN SELECT * FROM no_such_table")
    assert info.value.args[0] == 1146
    assert _rows(cur, "EXPLAIN ra")[0][0] == "k"  # EXPLAIN t is still DESCRIBE t


def test_explain_as_a_prepared_statement(node, cur):
    connector = pytest.importorskip("mysql.connector", reason="mysql-connector-python is not installed")
    c = connector.connect(
        host="127.0.0.1", port=node.mysql_port, user="root", password="", database="marmot", use_pure=True
    )
    try:
        pcur = c.cursor(prepared=True)
        pcur.execute("EXPLAIN SELECT * FROM ra WHERE k = ?", (1,))
        assert list(pcur.column_names) == EXPLAIN_COLUMNS
        assert pcur.fetchall()[0][4] == "const"
    finally:
        c.close()
