"""Metadata a GUI or ORM reads: SHOW statements and INFORMATION_SCHEMA, with MySQL's column names."""

from __future__ import annotations


def test_information_schema_tables_columns_keys(conn):
    cur = conn.cursor()
    cur.execute("DROP TABLE IF EXISTS child")
    cur.execute("DROP TABLE IF EXISTS parent")
    cur.execute(
        "CREATE TABLE parent (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(30) NOT NULL, "
        "UNIQUE KEY uname (name))"
    )
    cur.execute(
        "CREATE TABLE child (id INT PRIMARY KEY, pid INT, price DECIMAL(10,2), KEY by_parent (pid), "
        "FOREIGN KEY (pid) REFERENCES parent(id) ON DELETE CASCADE)"
    )
    cur.execute(
        "SELECT TABLE_NAME, TABLE_TYPE, ENGINE FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ('parent', 'child') ORDER BY TABLE_NAME"
    )
    assert cur.fetchall() == (("child", "BASE TABLE", "InnoDB"), ("parent", "BASE TABLE", "InnoDB"))
    assert [d[0] for d in cur.description] == ["TABLE_NAME", "TABLE_TYPE", "ENGINE"]
    cur.execute(
        "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, COLUMN_KEY, EXTRA, NUMERIC_PRECISION, "
        "NUMERIC_SCALE FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = 'marmot' "
        "AND TABLE_NAME = 'child' ORDER BY ORDINAL_POSITION"
    )
    assert cur.fetchall() == (
        ("id", "int", "int", "NO", "PRI", "", 10, 0),
        ("pid", "int", "int", "YES", "MUL", "", 10, 0),
        ("price", "decimal", "decimal(10,2)", "YES", "", "", 10, 2),
    )
    cur.execute(
        "SELECT COLUMN_TYPE, EXTRA FROM information_schema.columns WHERE table_name = 'parent' "
        "AND column_name = 'id'"
    )
    assert cur.fetchone() == ("bigint", "auto_increment")  # INT AUTO_INCREMENT is widened to BIGINT
    cur.execute(
        "SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME FROM information_schema.STATISTICS "
        "WHERE TABLE_NAME = 'parent' ORDER BY INDEX_NAME"
    )
    assert cur.fetchall() == (("PRIMARY", 0, "id"), ("uname", 0, "name"))
    cur.execute(
        "SELECT COLUMN_NAME, REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME FROM "
        "information_schema.KEY_COLUMN_USAGE WHERE TABLE_NAME = 'child' AND REFERENCED_TABLE_NAME IS NOT NULL"
    )
    assert cur.fetchall() == (("pid", "parent", "id"),)
    cur.execute(
        "SELECT DELETE_RULE FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE TABLE_NAME = 'child'"
    )
    assert cur.fetchone() == ("CASCADE",)
    cur.execute("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'marmot'")
    assert cur.fetchone() == (1,)


def test_information_schema_follows_ddl(conn):
    cur = conn.cursor()
    cur.execute("CREATE TABLE IF NOT EXISTS appears_later (a INT)")
    cur.execute("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_NAME = 'appears_later'")
    assert cur.fetchone() == (1,)
    cur.execute("DROP TABLE appears_later")
    cur.execute("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_NAME = 'appears_later'")
    assert cur.fetchone() == (0,)


def test_show_statements(conn):
    cur = conn.cursor()
    cur.execute(
        "CREATE TABLE IF NOT EXISTS shown (id INT AUTO_INCREMENT PRIMARY KEY, label VARCHAR(20) DEFAULT 'x')"
    )
    cur.execute("SHOW FULL TABLES WHERE Table_type = 'BASE TABLE'")
    assert ("shown", "BASE TABLE") in cur.fetchall()
    cur.execute("SHOW COLUMNS FROM shown")
    assert cur.fetchall() == (
        ("id", "bigint", "NO", "PRI", None, "auto_increment"),
        ("label", "varchar(20)", "YES", "", "x", ""),
    )
    cur.execute("DESCRIBE shown")
    assert [r[0] for r in cur.fetchall()] == ["id", "label"]
    cur.execute("SHOW VARIABLES LIKE 'version%'")
    names = [r[0] for r in cur.fetchall()]
    assert "version" in names and "version_comment" in names
    cur.execute("SELECT @@version, @@session.autocommit, @@global.max_allowed_packet, @@sql_mode")
    version, autocommit, packet, mode = cur.fetchone()
    assert (
        version.startswith("8.0") and autocommit == 1 and packet == 67108864 and "STRICT_TRANS_TABLES" in mode
    )
    cur.execute("SET SESSION sql_mode = 'TRADITIONAL'")
    cur.execute("SELECT @@sql_mode, @@global.sql_mode")
    session_mode, global_mode = cur.fetchone()
    # as MySQL shows it: the combination mode expanded, in MySQL's order
    assert session_mode == (
        "STRICT_TRANS_TABLES,STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,"
        "TRADITIONAL,NO_ENGINE_SUBSTITUTION"
    )
    assert "TRADITIONAL" not in global_mode
    cur.execute("SHOW ENGINES")
    assert cur.fetchone()[0] == "InnoDB"
    cur.execute("SHOW PROCESSLIST")
    assert len(cur.fetchall()) >= 1
