"""Foreign key actions on 3 nodes (issue 13 point 3). The coordinator's preupdate hook captures the rows
an ON DELETE / ON UPDATE action changes (depth > 0) and replicates them as row changes; every applier
runs with foreign key enforcement and triggers off, so a replica applies exactly those rows and never
cascades a second time. The test makes cascades and SET NULL through different nodes, in autocommit and
inside a transaction, and checks that every node holds the same rows and that ``marmot verify`` agrees."""

from __future__ import annotations

import pymysql
import pytest

from tests.support import cluster_fixture, connect, marmot_verify, wait_until_equal

cluster = cluster_fixture(3)


def test_cascade_and_set_null_replicate_identically(cluster):
    n1, n2, n3 = cluster
    c1, c2 = connect(n1), connect(n2)
    try:
        a, b = c1.cursor(), c2.cursor()
        a.execute("CREATE TABLE fp (id INT PRIMARY KEY, v INT)")
        a.execute(
            "CREATE TABLE fc (id INT PRIMARY KEY, pid INT, CONSTRAINT fk_fc FOREIGN KEY (pid) REFERENCES fp (id) "
            "ON DELETE CASCADE ON UPDATE CASCADE)"
        )
        a.execute(
            "CREATE TABLE fn (id INT PRIMARY KEY, pid INT, CONSTRAINT fk_fn FOREIGN KEY (pid) REFERENCES fp (id) "
            "ON DELETE SET NULL ON UPDATE CASCADE)"
        )
        a.execute(
            "CREATE TABLE fg (id INT PRIMARY KEY, cid INT, CONSTRAINT fk_fg FOREIGN KEY (cid) REFERENCES fc (id) "
            "ON DELETE CASCADE)"
        )
        a.execute("INSERT INTO fp VALUES (1, 1), (2, 2), (3, 3), (4, 4)")
        a.execute("INSERT INTO fc VALUES (10, 1), (11, 2), (12, 3), (13, 4)")
        a.execute("INSERT INTO fn VALUES (20, 1), (21, 2), (22, 3), (23, 4)")
        a.execute("INSERT INTO fg VALUES (100, 10), (101, 11), (102, 13)")
        wait_until_equal([n1, n2, n3], "SELECT COUNT(*) FROM fg", expected=((3,),), timeout=30)
        # through node 2: a two-level cascade and a SET NULL in one statement
        b.execute("DELETE FROM fp WHERE id = 1")
        # an ON UPDATE CASCADE of the key into both children
        b.execute("UPDATE fp SET id = 5 WHERE id = 2")
        # inside a transaction, through node 1
        a.execute("BEGIN")
        a.execute("DELETE FROM fp WHERE id = 3")
        a.execute("UPDATE fp SET id = 6 WHERE id = 4")
        a.execute("COMMIT")
        # a refused delete replicates nothing
        a.execute(
            "CREATE TABLE fr (id INT PRIMARY KEY, pid INT, CONSTRAINT fk_fr FOREIGN KEY (pid) REFERENCES fp (id))"
        )
        a.execute("INSERT INTO fr VALUES (1, 5)")
        with pytest.raises(pymysql.MySQLError) as info:
            b.execute("DELETE FROM fp WHERE id = 5")
        assert info.value.args[0] == 1451
        with pytest.raises(pymysql.MySQLError) as info:
            b.execute("DROP TABLE fp")
        assert info.value.args[0] == 3730
    finally:
        c1.close()
        c2.close()
    nodes = [n1, n2, n3]
    expected = {
        "SELECT id, v FROM fp ORDER BY id": ((5, 2), (6, 4)),
        "SELECT id, pid FROM fc ORDER BY id": ((11, 5), (13, 6)),
        "SELECT id, pid FROM fn ORDER BY id": ((20, None), (21, 5), (22, None), (23, 6)),
        "SELECT id, cid FROM fg ORDER BY id": ((101, 11), (102, 13)),
    }
    for sql, rows in expected.items():
        wait_until_equal(nodes, sql, expected=rows, timeout=30)
    result = marmot_verify(n3)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all match" in result.stdout


def test_drop_of_parent_and_child_together_replicates(cluster):
    n1, n2, n3 = cluster
    c = connect(n3)
    try:
        cur = c.cursor()
        cur.execute("CREATE TABLE dp (id INT PRIMARY KEY)")
        cur.execute("CREATE TABLE dc (id INT PRIMARY KEY, pid INT, FOREIGN KEY (pid) REFERENCES dp (id))")
        cur.execute("INSERT INTO dp VALUES (1)")
        cur.execute("INSERT INTO dc VALUES (1, 1)")
        cur.execute("DROP TABLE dp, dc")
    finally:
        c.close()
    wait_until_equal(
        [n1, n2, n3],
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'marmot' AND TABLE_NAME IN ('dp', 'dc')",
        expected=((0,),),
        timeout=30,
    )
