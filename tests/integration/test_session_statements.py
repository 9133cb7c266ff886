"""Session-level statements: transpilation toggle, statements accepted without effect, variables."""

from __future__ import annotations

import pymysql
import pytest

from tests.support import connect


def test_transpilation_toggle_gives_raw_sqlite(conn):
    cur = conn.cursor()
    cur.execute("SET marmot_transpilation = OFF")
    cur.execute("SELECT sqlite_version()")
    assert cur.fetchone()[0].startswith("3.")
    cur.execute("CREATE TABLE IF NOT EXISTS raw_t (a INTEGER PRIMARY KEY, b TEXT)")
    cur.execute("PRAGMA table_info(raw_t)")
    assert [r[1] for r in cur.fetchall()] == ["a", "b"]
    cur.execute("SET marmot_transpilation = ON")
    cur.execute("SELECT `b` FROM raw_t LIMIT 0, 1")  # MySQL syntax works again
    assert cur.fetchall() == ()


@pytest.mark.parametrize(
    "sql",
    [
        "LOCK TABLES raw_t WRITE",
        "UNLOCK TABLES",
        "XA START 'x'",
        "XA END 'x'",
        "GRANT ALL ON *.* TO 'u'@'%'",
        "REVOKE ALL ON *.* FROM 'u'@'%'",
        "CREATE USER 'u'@'%' IDENTIFIED BY 'p'",
        "ALTER USER 'u'@'%' IDENTIFIED BY 'q'",
        "DROP USER 'u'@'%'",
        "OPTIMIZE TABLE raw_t",
        "REPAIR TABLE raw_t",
        "ANALYZE TABLE raw_t",
        "FLUSH PRIVILEGES",
    ],
)
def test_statements_parsed_without_effect(conn, sql):
    conn.cursor().execute(sql)


def test_user_and_session_variables(conn):
    cur = conn.cursor()
    cur.execute("SET @a = 5, @b = 'x', @@session.wait_timeout = 100")
    cur.execute("SELECT @a, @b, @@wait_timeout, @undefined")
    assert cur.fetchone() == (5, "x", 100, None)
    cur.execute("SET @c = (SELECT 40 + 2)")
    cur.execute("SELECT @c")
    assert cur.fetchone() == (42,)
    cur.execute("SET NAMES utf8mb4 COLLATE utf8mb4_unicode_ci")
    cur.execute("SELECT @@character_set_client, @@collation_connection")
    assert cur.fetchone() == ("utf8mb4", "utf8mb4_unicode_ci")
    with pytest.raises(pymysql.err.MySQLError) as ei:
        cur.execute("SET @@no_such_variable = 1")
    assert ei.value.args[0] == 1193
    with pytest.raises(pymysql.err.MySQLError) as ei:
        cur.execute("SET autocommit = 'maybe'")
    assert ei.value.args[0] == 1231


def test_general_log(conn, tmp_path):
    cur = conn.cursor()
    path = tmp_path / "general.log"
    with pytest.raises(pymysql.err.MySQLError) as ei:
        cur.execute("SET general_log = ON")
    assert ei.value.args[0] == 1229
    cur.execute("SET GLOBAL general_log_file = %s", (str(path),))
    cur.execute("SET GLOBAL general_log = ON")
    cur.execute("SELECT 'logged me'")
    cur.execute("SET GLOBAL general_log = OFF")
    cur.execute("SELECT 'not me'")
    cur.execute("SELECT @@general_log, @@general_log_file")
    assert cur.fetchone() == (0, str(path))
    text = path.read_text()
    assert "SELECT 'logged me'" in text and "not me" not in text


def test_write_consistency_variable_reads_back_and_defaults(conn):
    """@@marmot_write_consistency is readable before any SET (the node's level), follows SET, and SET ...
    = DEFAULT returns to the node's level; an unknown variable is MySQL's 1193, not a generic error."""
    cur = conn.cursor()
    cur.execute("SELECT @@marmot_write_consistency, @@session.marmot_write_consistency")
    assert cur.fetchone() == ("QUORUM", "QUORUM")
    cur.execute("SET marmot_write_consistency = 'all'")
    cur.execute("SELECT @@marmot_write_consistency, @@global.marmot_write_consistency")
    assert cur.fetchone() == ("ALL", "QUORUM")
    cur.execute("SET marmot_write_consistency = DEFAULT")
    cur.execute("SELECT @@marmot_write_consistency")
    assert cur.fetchone() == ("QUORUM",)
    with pytest.raises(pymysql.err.OperationalError) as ei:
        cur.execute("SELECT @@no_such_variable_here")
    assert ei.value.args[0] == 1193 and "no_such_variable_here" in ei.value.args[1]


def test_global_write_consistency_is_the_nodes_until_default(node, conn):
    cur = conn.cursor()
    try:
        cur.execute("SET GLOBAL marmot_write_consistency = 'ONE'")
        other = connect(node)
        try:
            other_cur = other.cursor()
            other_cur.execute("SELECT @@marmot_write_consistency")
            assert other_cur.fetchone() == ("ONE",)
            other_cur.execute("CREATE TABLE wc_global (id INT PRIMARY KEY)")
            other_cur.execute("INSERT INTO wc_global VALUES (1)")  # a single node: ONE and QUORUM both commit
        finally:
            other.close()
    finally:
        cur.execute("SET GLOBAL marmot_write_consistency = DEFAULT")
    cur.execute("SELECT @@global.marmot_write_consistency")
    assert cur.fetchone() == ("QUORUM",)
