"""Replicated DDL run a second time must be harmless (replication/apply/idempotent_ddl.py).

Why: applied markers stop a node from applying one DDL transaction twice, but not a node whose schema
already shows the change (operator ran it by hand, snapshot, or the same DDL under another txn id).
Upstream broke exactly there (#158: ADD COLUMN replayed → "duplicate column name" → node diverged).
The statements tested are the shapes the transpiler emits (``sql/ddl.py``, ``sql/alter.py``: quoted
names, ``ADD COLUMN``, ``RENAME TO``, ``RENAME COLUMN``, ``CREATE UNIQUE INDEX``, triggers) plus a few
hand-written variants.
"""

from __future__ import annotations

from collections.abc import Iterator

import apsw
import pytest

from marmot.replication.apply.idempotent_ddl import already_applied, make_idempotent, run_idempotent


@pytest.fixture
def conn() -> Iterator[apsw.Connection]:
    c = apsw.Connection(":memory:")
    c.execute('CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, "Mixed Case" INT, "we""ird" INT)')
    yield c
    c.close()


def schema(conn: apsw.Connection) -> list[tuple[str, str, str]]:
    return conn.execute("SELECT type, name, sql FROM sqlite_schema ORDER BY type, name").fetchall()


def columns(conn: apsw.Connection, table: str = "t") -> list[str]:
    return [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]


# -- make_idempotent ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "want"),
    [
        ('CREATE TABLE "x" (id INT)', 'CREATE TABLE IF NOT EXISTS "x" (id INT)'),
        ("create table x(id)", "create table IF NOT EXISTS x(id)"),
        ('CREATE UNIQUE INDEX "t__u" ON "t" ("a")', 'CREATE UNIQUE INDEX IF NOT EXISTS "t__u" ON "t" ("a")'),
        ('CREATE INDEX "t__i" ON "t" ("a")', 'CREATE INDEX IF NOT EXISTS "t__i" ON "t" ("a")'),
        ("CREATE VIEW v AS SELECT 1", "CREATE VIEW IF NOT EXISTS v AS SELECT 1"),
        (
            'CREATE TRIGGER "tr" AFTER UPDATE ON "t" FOR EACH ROW BEGIN SELECT 1; END',
            'CREATE TRIGGER IF NOT EXISTS "tr" AFTER UPDATE ON "t" FOR EACH ROW BEGIN SELECT 1; END',
        ),
        ("  \nCREATE TABLE y(id)", "  \nCREATE TABLE IF NOT EXISTS y(id)"),
        ('DROP TABLE "x"', 'DROP TABLE IF EXISTS "x"'),
        ('DROP INDEX "t__i"', 'DROP INDEX IF EXISTS "t__i"'),
        ("drop view v", "drop view IF EXISTS v"),
        ("DROP TRIGGER tr", "DROP TRIGGER IF EXISTS tr"),
    ],
)
def test_make_idempotent_adds_guards(sql: str, want: str) -> None:
    assert make_idempotent(sql) == want


@pytest.mark.parametrize(
    "sql",
    [
        'CREATE TABLE IF NOT EXISTS "x" (id INT)',
        "create index if not exists i on t(a)",
        "DROP TABLE IF EXISTS x",
        "drop index if exists i",
        'ALTER TABLE "t" ADD COLUMN "c" INT',
        "INSERT INTO \"t\" (a) VALUES ('CREATE TABLE z(q)')",
        "UPDATE t SET a = 'DROP TABLE t'",
    ],
)
def test_make_idempotent_leaves_others_alone(sql: str) -> None:
    """Already guarded statements are not double-guarded (that would be a syntax error)."""
    assert make_idempotent(sql) == sql


@pytest.mark.parametrize(
    "sql",
    [
        'CREATE TABLE "x" (id INTEGER PRIMARY KEY, v TEXT)',
        'CREATE UNIQUE INDEX "t__a" ON "t" ("a")',
        "CREATE VIEW tv AS SELECT a FROM t",
        'CREATE TRIGGER "t__a__on_update" AFTER UPDATE ON "t" FOR EACH ROW WHEN NEW."a" IS OLD."a" '
        'BEGIN UPDATE "t" SET "a" = CURRENT_TIMESTAMP WHERE rowid = NEW.rowid; END',
    ],
)
def test_create_runs_twice(conn: apsw.Connection, sql: str) -> None:
    run_idempotent(conn, sql)
    once = schema(conn)
    run_idempotent(conn, sql)
    assert schema(conn) == once
    with pytest.raises(apsw.SQLError, match="already exists"):
        conn.execute(sql)  # the unguarded statement would have failed: the guard is what helps


@pytest.mark.parametrize(
    ("setup", "sql", "gone"),
    [
        ("CREATE TABLE x(id)", "DROP TABLE x", "x"),
        ("CREATE INDEX t_i ON t(a)", 'DROP INDEX "t_i"', "t_i"),
        ("CREATE VIEW tv AS SELECT 1", "DROP VIEW tv", "tv"),
        ("CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END", "DROP TRIGGER tr", "tr"),
    ],
)
def test_drop_runs_twice(conn: apsw.Connection, setup: str, sql: str, gone: str) -> None:
    conn.execute(setup)
    run_idempotent(conn, sql)
    run_idempotent(conn, sql)
    assert gone not in {r[1] for r in schema(conn)}


# -- already_applied ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "applied"),
    [
        ('ALTER TABLE "t" ADD COLUMN "a" TEXT', True),
        ("ALTER TABLE t ADD COLUMN a TEXT", True),
        ("ALTER TABLE t ADD a TEXT", True),  # COLUMN is optional in SQLite
        ("alter table T add column A text", True),  # identifiers are case-insensitive
        ("ALTER TABLE `t` ADD COLUMN `a` TEXT", True),
        ("ALTER TABLE [t] ADD COLUMN [a] TEXT", True),
        ('ALTER TABLE "t" ADD COLUMN "mixed case" INT', True),
        ('ALTER TABLE "t" ADD COLUMN "we""ird" INT', True),
        ("ALTER TABLE t\n  ADD COLUMN\n  a INT", True),
        ('ALTER TABLE "t" ADD COLUMN "b" TEXT', False),
        ('ALTER TABLE "missing" ADD COLUMN "a" TEXT', False),  # a real error must still surface
        ('ALTER TABLE "t" DROP COLUMN "zz"', True),
        ('ALTER TABLE "t" DROP COLUMN "a"', False),
        ("ALTER TABLE t DROP a", False),
        ('ALTER TABLE "missing" DROP COLUMN "a"', False),
        ('ALTER TABLE "t" RENAME COLUMN "old" TO "a"', True),
        ('ALTER TABLE "t" RENAME COLUMN "a" TO "new"', False),
        ('ALTER TABLE "t" RENAME "zz" TO "a"', True),
        ('ALTER TABLE "t" RENAME COLUMN "zz" TO "yy"', False),  # neither there: a genuine error
        ('ALTER TABLE "t" RENAME TO "u"', False),  # t still exists
        ('ALTER TABLE "gone" RENAME TO "t"', True),
        ('ALTER TABLE "gone" RENAME TO "also_gone"', False),
        ('CREATE TABLE "t" (id)', False),
        ("SELECT 1", False),
    ],
)
def test_already_applied(conn: apsw.Connection, sql: str, applied: bool) -> None:
    assert already_applied(conn, sql) is applied


# -- run_idempotent on ALTER replays --------------------------------------------------------------


def test_add_column_replayed_is_skipped(conn: apsw.Connection) -> None:
    """The #158 case: the second ADD COLUMN is a no-op instead of 'duplicate column name'."""
    sql = 'ALTER TABLE "t" ADD COLUMN "c" INTEGER NOT NULL DEFAULT 0'
    run_idempotent(conn, sql)
    run_idempotent(conn, sql)
    assert columns(conn) == ["id", "a", "Mixed Case", 'we"ird', "c"]
    with pytest.raises(apsw.SQLError, match="duplicate column"):
        conn.execute(sql)


def test_drop_column_replayed_is_skipped(conn: apsw.Connection) -> None:
    sql = 'ALTER TABLE "t" DROP COLUMN "a"'
    run_idempotent(conn, sql)
    run_idempotent(conn, sql)
    assert columns(conn) == ["id", "Mixed Case", 'we"ird']


def test_rename_table_replayed_is_skipped(conn: apsw.Connection) -> None:
    conn.execute("INSERT INTO t(id, a) VALUES (1, 'kept')")
    sql = 'ALTER TABLE "t" RENAME TO "u"'
    run_idempotent(conn, sql)
    run_idempotent(conn, sql)
    assert conn.execute("SELECT a FROM u").fetchall() == [("kept",)]
    assert not conn.execute("SELECT 1 FROM sqlite_schema WHERE name = 't'").fetchall()


def test_rename_column_replayed_is_skipped(conn: apsw.Connection) -> None:
    sql = 'ALTER TABLE "t" RENAME COLUMN "Mixed Case" TO "plain"'
    run_idempotent(conn, sql)
    run_idempotent(conn, sql)
    assert columns(conn) == ["id", "a", "plain", 'we"ird']


def test_quoted_names_with_embedded_quotes(conn: apsw.Connection) -> None:
    conn.execute('CREATE TABLE "odd""name" (id INTEGER PRIMARY KEY)')
    sql = 'ALTER TABLE "odd""name" ADD COLUMN "c""x" TEXT'
    run_idempotent(conn, sql)
    run_idempotent(conn, sql)
    assert columns(conn, 'odd""name') == ["id", 'c"x']


def test_genuine_errors_still_raise(conn: apsw.Connection) -> None:
    """Idempotency must not hide a statement that cannot apply: that node would diverge silently."""
    with pytest.raises(apsw.SQLError, match="no such table"):
        run_idempotent(conn, 'ALTER TABLE "missing" ADD COLUMN "c" INT')
    with pytest.raises(apsw.SQLError):
        run_idempotent(conn, 'ALTER TABLE "t" RENAME COLUMN "zz" TO "yy"')
    conn.execute("CREATE TABLE u(id)")
    with pytest.raises(apsw.SQLError, match="already"):
        run_idempotent(conn, 'ALTER TABLE "t" RENAME TO "u"')  # both exist: not a replay
