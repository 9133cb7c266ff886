"""sql_mode on 3 nodes (issue 13 point 1): the node that takes a write checks its values, and replicas
apply the checked row images — a non-strict session's adjusted values (truncated, clamped, zero, the
implicit default) arrive as those values on every node, and a strict refusal stores nothing anywhere.
Point 4's RENAME TABLE keeps MySQL's index names on every node."""

from __future__ import annotations

import pymysql
import pytest

from tests.support import cluster_fixture, connect, wait_until_equal

cluster = cluster_fixture(3)


def test_adjusted_values_replicate_as_adjusted(cluster):
    n1, n2, n3 = cluster
    c = connect(n2)
    try:
        cur = c.cursor()
        cur.execute(
            "CREATE TABLE smc (id INT PRIMARY KEY, ti TINYINT, v VARCHAR(3), d DATE, e ENUM('a','b'), "
            "nn INT NOT NULL, s SET('x','y'))"
        )
        cur.execute("SET SESSION sql_mode = ''")
        cur.execute(
            "INSERT INTO smc (id, ti, v, d, e, nn, s) VALUES "
            "(1, 1000, 'toolong', '2023-02-30', 'zzz', 1, 'y,q,x'), (2, 'abc', 'ok', '2024-1-5', 'B', NULL, '')"
        )
        assert cur.warning_count == 7
        cur.execute("UPDATE smc SET v = 'changed' WHERE id = 2")
        assert cur.warning_count == 1
        cur.execute("SET SESSION sql_mode = DEFAULT")
        with pytest.raises(pymysql.MySQLError) as info:
            cur.execute("INSERT INTO smc (id, ti, nn) VALUES (3, 1, 1), (4, 1000, 1)")
        assert info.value.args == (1264, "Out of range value for column 'ti' at row 2")
    finally:
        c.close()
    expected = (
        (1, 127, "too", "0000-00-00", "", 1, "x,y"),
        (2, 0, "cha", "2024-01-05", "b", 0, ""),
    )
    wait_until_equal(
        [n1, n2, n3],
        "SELECT id, ti, v, CAST(d AS CHAR), e, nn, s FROM smc ORDER BY id",
        timeout=30,
        expected=expected,
    )


def test_rename_keeps_index_names_on_every_node(cluster):
    n1, n2, n3 = cluster
    c = connect(n3)
    try:
        cur = c.cursor()
        cur.execute("CREATE TABLE ren1 (id INT PRIMARY KEY, a INT, b INT, KEY ka (a), UNIQUE KEY ub (b))")
        cur.execute("RENAME TABLE ren1 TO ren2")
        cur.execute("DROP INDEX ka ON ren2")
    finally:
        c.close()
    wait_until_equal(
        [n1, n2, n3],
        "SELECT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_NAME = 'ren2' ORDER BY INDEX_NAME",
        timeout=30,
        expected=(("PRIMARY",), ("ub",)),
    )
