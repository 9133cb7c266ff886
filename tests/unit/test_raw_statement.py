"""``raw_statement.classify``: what a raw SQLite statement (transpilation OFF) would do, found out by
preparing it on a real SQLite connection — and that preparing it runs nothing."""

from __future__ import annotations

import apsw
import pytest

from marmot.engine import raw_statement as rs
from marmot.engine.errors import MySQLError


@pytest.fixture
def conn() -> apsw.Connection:
    c = apsw.Connection(":memory:")
    c.execute("""
        CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT UNIQUE);
        CREATE TABLE log (a);
        CREATE TRIGGER t_del AFTER DELETE ON t BEGIN INSERT INTO log VALUES (old.a); END;
        CREATE VIEW v AS SELECT * FROM t;
        CREATE TRIGGER v_ins INSTEAD OF INSERT ON v BEGIN INSERT INTO t VALUES (new.a, new.b); END;
        CREATE VIRTUAL TABLE f USING fts5(x);
        CREATE TABLE __marmot_x (a);
        CREATE TABLE ai (id INTEGER PRIMARY KEY AUTOINCREMENT);
        CREATE TEMP TABLE tt (x);
        ATTACH ':memory:' AS side;
        CREATE TABLE side.o (a);
    """)
    return c


@pytest.mark.parametrize(
    ("sql", "kind", "tables"),
    [
        ("SELECT * FROM t", rs.READ, set()),
        ("PRAGMA table_info(t)", rs.READ, set()),
        ("PRAGMA foreign_keys = OFF", rs.READ, set()),
        ("PRAGMA user_version", rs.READ, set()),
        ("ATTACH ':memory:' AS x2", rs.READ, set()),
        ("INSERT INTO t (b) VALUES ('x')", rs.WRITE, {"t"}),
        (
            "INSERT INTO t VALUES (1, 'x') ON CONFLICT(a) DO UPDATE SET b = excluded.b RETURNING a",
            rs.WRITE,
            {"t"},
        ),
        ("WITH s AS (SELECT 5 AS a) UPDATE t SET b = 'y' FROM s WHERE t.a = s.a", rs.WRITE, {"t"}),
        ("DELETE FROM t", rs.WRITE, {"t", "log"}),  # the trigger's write is seen too
        ("INSERT INTO v VALUES (9, 'v')", rs.WRITE, {"v", "t"}),
        ("INSERT INTO tt VALUES (1)", rs.TEMP_WRITE, set()),
        ("CREATE TABLE u (a)", rs.DDL, {"u"}),
        ("CREATE INDEX t_b ON t (b)", rs.DDL, {"t"}),
        ("ALTER TABLE t ADD COLUMN c", rs.DDL, {"t"}),
        ("ALTER TABLE tt ADD COLUMN c", rs.TEMP_DDL, set()),
        ("DROP TABLE t", rs.DDL, {"t"}),
        ("CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN INSERT INTO log VALUES (new.a); END", rs.DDL, {"t"}),
        ("CREATE VIRTUAL TABLE g USING fts5(y)", rs.DDL, {"g"}),
        ("CREATE VIRTUAL TABLE IF NOT EXISTS f USING fts5(x)", rs.DDL, set()),  # an existing one: a no-op
        ("CREATE TEMP TABLE t2 (a)", rs.TEMP_DDL, set()),
        ("CREATE VIRTUAL TABLE temp.g2 USING fts5(y)", rs.TEMP_DDL, set()),
        ("DROP TABLE tt", rs.TEMP_DDL, set()),
        ("REINDEX", rs.MAINTENANCE, set()),
        ("VACUUM INTO '/nonexistent/never-written.db'", rs.MAINTENANCE, set()),
        ("PRAGMA wal_checkpoint(TRUNCATE)", rs.MAINTENANCE, set()),
    ],
)
def test_kinds(conn, sql, kind, tables):
    stmt = rs.classify(conn, sql, "db")
    assert stmt is not None
    assert (stmt.kind, set(stmt.tables)) == (kind, tables)
    assert stmt.rest is None


@pytest.mark.parametrize(
    ("sql", "code", "words"),
    [
        ("INSERT INTO __marmot_x VALUES (1)", 1146, "__marmot_x"),
        ("DELETE FROM sqlite_sequence", 1105, "SQLite's own table sqlite_sequence"),
        ("INSERT INTO f VALUES ('a')", 1105, "virtual table"),
        ("INSERT INTO f_data VALUES (99, x'00')", 1105, "storage table of a virtual table"),
        ("INSERT INTO side.o VALUES (1)", 1105, "attached database 'side'"),
        ("CREATE TABLE side.p (a)", 1105, "attached database 'side'"),
        ("ALTER TABLE side.o ADD COLUMN b", 1105, "attached database 'side'"),
        ("CREATE INDEX side.o_a ON o (a)", 1105, "attached database 'side'"),
        ("PRAGMA user_version = 3", 1105, "user_version"),
        ("PRAGMA journal_mode = DELETE", 1105, "journal_mode"),
        ("PRAGMA writable_schema = ON", 1105, "writable_schema"),
        ("PRAGMA ignore_check_constraints = 1", 1105, "ignore_check_constraints"),
        ("VACUUM", 1105, "renumber"),
        ("END", 1105, "transaction control"),
        ("SAVEPOINT s", 1105, "transaction control"),
        ("INSERT INTO nosuch VALUES (1)", 1146, "nosuch"),
        ("SELEC 1", 1064, "syntax"),
    ],
)
def test_refused(conn, sql, code, words):
    with pytest.raises(MySQLError) as ei:
        rs.classify(conn, sql, "db")
    assert ei.value.code == code and words in ei.value.message, ei.value


class _EmptyTable:
    """A virtual table with no rows (a module the connection has but plain connections lack)."""

    def BestIndex(self, *args):  # noqa: N802 - apsw's names
        return None

    def Open(self):  # noqa: N802
        return _EmptyCursor()

    def Disconnect(self):  # noqa: N802
        pass

    Destroy = Disconnect


class _EmptyCursor:
    def Filter(self, *args):  # noqa: N802
        pass

    def Eof(self):  # noqa: N802
        return True

    def Close(self):  # noqa: N802
        pass


class _Module:
    def Create(self, conn, modulename, dbname, tablename, *args):  # noqa: N802
        return "CREATE TABLE x(a)", _EmptyTable()

    Connect = Create


def test_session_module_refused_builtin_accepted(conn):
    conn.create_module("session_only", _Module())
    with pytest.raises(MySQLError) as ei:
        rs.classify(conn, "CREATE VIRTUAL TABLE vv USING session_only()", "db")
    assert ei.value.code == 1105 and "session_only" in ei.value.message
    temp = rs.classify(conn, "CREATE VIRTUAL TABLE temp.vv USING session_only()", "db")
    assert temp is not None and temp.kind == rs.TEMP_DDL
    builtin = rs.classify(conn, "CREATE VIRTUAL TABLE r USING rtree(id, x0, x1)", "db")
    assert builtin is not None and builtin.kind == rs.DDL


def test_nothing_runs_and_the_rest_is_returned(conn):
    stmt = rs.classify(conn, "INSERT INTO t VALUES (1, 'a'); DELETE FROM t; -- done", "db")
    assert stmt is not None and stmt.kind == rs.WRITE and stmt.inserts
    assert stmt.rest is not None and stmt.rest.lstrip().startswith("DELETE")
    assert conn.execute("SELECT COUNT(*) FROM t").fetchone() == (0,)
    assert rs.classify(conn, "  -- only a comment\n", "db") is None
