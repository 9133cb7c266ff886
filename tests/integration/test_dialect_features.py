"""The remaining MySQL DML dialect features of the dialect issue, each with MySQL's result."""

from __future__ import annotations

import pymysql
import pytest


@pytest.fixture
def cur(conn):
    c = conn.cursor()
    c.execute("DROP TABLE IF EXISTS feat")
    c.execute(
        "CREATE TABLE feat (id INT PRIMARY KEY, name VARCHAR(20), grp INT, data BLOB, KEY by_grp (grp))"
    )
    c.execute("INSERT INTO feat VALUES (1, 'Alpha', 1, x'00ff'), (2, 'beta', 1, NULL), (3, 'Gamma', 2, NULL)")
    return c


def one(cur, sql, args=None):
    cur.execute(sql, args)
    return cur.fetchone()


def test_index_hints_and_locking_clauses(cur):
    assert one(cur, "SELECT COUNT(*) FROM feat USE INDEX (by_grp) WHERE grp = 1") == (2,)
    assert one(
        cur, "SELECT COUNT(*) FROM feat FORCE INDEX (by_grp) IGNORE INDEX (PRIMARY) WHERE grp = 1"
    ) == (2,)
    assert one(cur, "SELECT name FROM feat WHERE id = 1 FOR UPDATE") == ("Alpha",)
    assert one(cur, "SELECT name FROM feat WHERE id = 2 LOCK IN SHARE MODE") == ("beta",)


def test_regexp_escapes_hex_bit_literals(cur):
    assert one(cur, "SELECT COUNT(*) FROM feat WHERE name REGEXP '^[ab]'") == (
        2,
    )  # case-insensitive like MySQL
    assert one(cur, "SELECT 'it\\'s', 'tab\\there', 'back\\\\slash'") == ("it's", "tab\there", "back\\slash")
    assert one(cur, "SELECT x'4D79', 0x4D79, b'1000001' + 0") == (b"My", b"My", 65)
    assert one(cur, "SELECT HEX(data) FROM feat WHERE data = x'00ff'") == ("00FF",)


def test_charset_introducers_collate_dual(cur):
    assert one(cur, "SELECT _utf8mb4'ü' = 'ü', 'A' = 'a' COLLATE utf8mb4_bin FROM DUAL") == (1, 0)
    assert one(cur, "SELECT name FROM feat WHERE name = 'alpha' COLLATE utf8mb4_general_ci") == ("Alpha",)
    # text columns compare, sort and enforce UNIQUE case-insensitively, as MySQL's default *_ci collations
    assert one(cur, "SELECT name FROM feat WHERE name = 'ALPHA'") == ("Alpha",)
    cur.execute("SELECT name FROM feat ORDER BY name")
    assert [r[0] for r in cur.fetchall()] == ["Alpha", "beta", "Gamma"]
    cur.execute(
        "CREATE TABLE IF NOT EXISTS feat_u (k VARCHAR(10) PRIMARY KEY, b VARCHAR(10) COLLATE utf8mb4_bin)"
    )
    cur.execute("DELETE FROM feat_u")
    cur.execute("INSERT INTO feat_u VALUES ('Key', 'Bin')")
    with pytest.raises(pymysql.err.IntegrityError):
        cur.execute("INSERT INTO feat_u VALUES ('KEY', 'x')")
    assert one(cur, "SELECT COUNT(*) FROM feat_u WHERE b = 'bin'") == (0,)  # a _bin column stays exact


def test_group_concat_cast_convert_binary(cur):
    assert one(cur, "SELECT GROUP_CONCAT(name ORDER BY id DESC SEPARATOR '|') FROM feat") == (
        "Gamma|beta|Alpha",
    )
    assert one(cur, "SELECT grp, GROUP_CONCAT(id) FROM feat GROUP BY grp ORDER BY grp LIMIT 1") == (1, "1,2")
    assert one(cur, "SELECT CAST('12abc' AS SIGNED), CAST(42 AS UNSIGNED), CAST(42 AS CHAR)") == (
        12,
        42,
        "42",
    )
    assert one(cur, "SELECT CONVERT('42', SIGNED), CONVERT('x' USING utf8mb4)") == (42, "x")
    assert one(cur, "SELECT BINARY name = 'ALPHA', name = 'ALPHA' FROM feat WHERE id = 1") == (0, 1)


def test_if_ifnull_nullif_and_interval_month_end(cur):
    assert one(
        cur, "SELECT IF(grp = 1, 'one', 'other'), IFNULL(data, 'none'), NULLIF(grp, 1) FROM feat WHERE id = 3"
    ) == ("other", "none", 2)
    assert (
        one(cur, "SELECT DATE_ADD('2023-01-31', INTERVAL 1 MONTH), '2024-03-31' - INTERVAL 1 MONTH")[0]
        is not None
    )
    cur.execute(
        "SELECT CAST(DATE_ADD('2023-01-31', INTERVAL 1 MONTH) AS CHAR), "
        "CAST('2024-03-31' - INTERVAL 1 MONTH AS CHAR)"
    )
    assert cur.fetchone() == ("2023-02-28", "2024-02-29")


def test_limit_offset_forms(cur):
    assert [r[0] for r in (cur.execute("SELECT id FROM feat ORDER BY id LIMIT 1, 2") and cur.fetchall())] == [
        2,
        3,
    ]
    assert [
        r[0] for r in (cur.execute("SELECT id FROM feat ORDER BY id LIMIT 2 OFFSET 1") and cur.fetchall())
    ] == [2, 3]
