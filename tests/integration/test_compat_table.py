"""One test per row of the upstream README's "SQL Statement Compatibility" table (single node).

Each case runs the statement kind the row names against a real node and checks its effect (or, for rows
upstream marks "Parsed", that it is accepted and the connection stays usable). Replication of the rows
marked "Replication: Yes" is the replication issue's test.
"""

from __future__ import annotations

import pymysql
import pytest

from tests.support import connect


def q(cur, sql, args=None):
    cur.execute(sql, args)
    return cur.fetchall()


@pytest.fixture
def cur(node):
    c = connect(node)
    cur = c.cursor()
    cur.execute("DROP DATABASE IF EXISTS compat")
    cur.execute("CREATE DATABASE compat")
    cur.execute("USE compat")
    cur.execute("CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(20), n INT DEFAULT 0)")
    cur.execute("INSERT INTO t (v, n) VALUES ('a', 1), ('b', 2)")
    yield cur
    cur.execute("DROP DATABASE IF EXISTS compat")
    c.close()


def test_insert_replace(cur):
    cur.execute("INSERT INTO compat.t (v) VALUES ('c')")  # qualified name
    cur.execute("REPLACE INTO t (id, v) VALUES (%s, 'z')", (q(cur, "SELECT id FROM t WHERE v = 'a'")[0][0],))
    assert q(cur, "SELECT v FROM t ORDER BY v") == (("b",), ("c",), ("z",))


def test_update(cur):
    cur.execute("UPDATE compat.t SET n = n + 10 WHERE v = 'a'")
    assert q(cur, "SELECT n FROM t WHERE v = 'a'") == ((11,),)


def test_delete(cur):
    cur.execute("DELETE FROM compat.t WHERE v = 'b'")
    assert q(cur, "SELECT v FROM t") == (("a",),)


def test_select(cur):
    assert q(cur, "SELECT v, n FROM t WHERE n > 0 ORDER BY n DESC LIMIT 1") == (("b", 2),)


def test_load_data(cur, tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("0\tloaded\t3\n")
    cur.execute(f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE t")
    assert q(cur, "SELECT n FROM t WHERE v = 'loaded'") == ((3,),)


def test_create_alter_drop_truncate_rename_table(cur):
    cur.execute("CREATE TABLE u (id INT PRIMARY KEY)")
    cur.execute("ALTER TABLE u ADD COLUMN label VARCHAR(10) NOT NULL DEFAULT 'x'")
    cur.execute("INSERT INTO u (id) VALUES (1)")
    cur.execute("RENAME TABLE u TO u2")
    assert q(cur, "SELECT label FROM u2") == (("x",),)
    cur.execute("TRUNCATE TABLE u2")
    assert q(cur, "SELECT COUNT(*) FROM u2") == ((0,),)
    cur.execute("DROP TABLE u2")
    assert q(cur, "SHOW TABLES LIKE 'u2'") == ()


def test_create_drop_index(cur):
    cur.execute("CREATE INDEX by_v ON t (v(10))")
    assert "by_v" in [r[2] for r in q(cur, "SHOW INDEX FROM t")]
    cur.execute("DROP INDEX by_v ON t")
    assert "by_v" not in [r[2] for r in q(cur, "SHOW INDEX FROM t")]


def test_create_drop_view(cur):
    cur.execute("CREATE VIEW big AS SELECT v FROM t WHERE n > 1")
    assert q(cur, "SELECT v FROM big") == (("b",),)
    cur.execute("DROP VIEW big")


def test_create_drop_trigger(cur):
    cur.execute("CREATE TRIGGER t_bump BEFORE INSERT ON t FOR EACH ROW SET NEW.n = NEW.n + 100")
    cur.execute("INSERT INTO t (v, n) VALUES ('trig', 1)")
    assert q(cur, "SELECT n FROM t WHERE v = 'trig'") == ((101,),)
    cur.execute("DROP TRIGGER t_bump")


def test_create_drop_alter_database_show_use(cur):
    cur.execute("CREATE DATABASE compat2")
    cur.execute("ALTER DATABASE compat2 CHARACTER SET utf8mb4")
    assert ("compat2",) in q(cur, "SHOW DATABASES")
    cur.execute("USE compat2")
    assert q(cur, "SHOW TABLES") == ()
    cur.execute("DROP DATABASE compat2")
    cur.execute("USE compat")
    assert q(cur, "SHOW TABLES") == (("t",),)


def test_transactions_and_savepoints(cur):
    cur.execute("BEGIN")
    cur.execute("INSERT INTO t (v) VALUES ('tx1')")
    cur.execute("SAVEPOINT s")
    cur.execute("INSERT INTO t (v) VALUES ('tx2')")
    cur.execute("ROLLBACK TO SAVEPOINT s")
    cur.execute("COMMIT")
    cur.execute("START TRANSACTION")
    cur.execute("INSERT INTO t (v) VALUES ('tx3')")
    cur.execute("ROLLBACK")
    assert q(cur, "SELECT v FROM t WHERE v LIKE 'tx%'") == (("tx1",),)


@pytest.mark.parametrize(
    "sql",
    [
        "LOCK TABLES t WRITE",
        "UNLOCK TABLES",
        "SET @x = 1",
        "SET SESSION sql_mode = 'TRADITIONAL'",
        "SET marmot_transpilation = ON",
        "XA START 'x1'",
        "XA END 'x1'",
        "XA PREPARE 'x1'",
        "XA COMMIT 'x1'",
        "XA ROLLBACK 'x1'",
        "GRANT SELECT ON compat.* TO 'u'@'%'",
        "REVOKE SELECT ON compat.* FROM 'u'@'%'",
        "CREATE USER 'u2'@'%' IDENTIFIED BY 'p'",
        "ALTER USER 'u2'@'%' IDENTIFIED BY 'q'",
        "DROP USER 'u2'@'%'",
        "OPTIMIZE TABLE t",
        "REPAIR TABLE t",
    ],
)
def test_parsed_statements(cur, sql):
    cur.execute(sql)
    assert q(cur, "SELECT COUNT(*) FROM t") == ((2,),)


def test_load_extension_row_needs_configuration(cur):
    with pytest.raises(pymysql.err.MySQLError) as ei:
        cur.execute("LOAD EXTENSION vec0")
    assert "disabled" in ei.value.args[1]  # the tests with a configured directory: test_extensions.py
