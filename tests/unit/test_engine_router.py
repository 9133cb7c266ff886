"""The session's statement routing (engine/statement_router.py) and its parser of session statements
(engine/statements.py): which handler a statement reaches, and what the handler reads from its text.

The behaviour behind each handler is covered end to end by tests/integration (real clients against a
node); these pin the routing order — which is part of the meaning (``EXPLAIN t`` is DESCRIBE,
``EXPLAIN SELECT`` is a query plan (engine/explain.py); SET stays SET with transpilation OFF) — and the parsing of each form.
"""

from __future__ import annotations

import pytest

from marmot.engine import statements
from marmot.engine.errors import MySQLError
from marmot.engine.results import OkResult, Result
from marmot.engine.statement_router import Command, StatementRouter, command_of, metric_kind
from marmot.sql import lexer


def _command(sql: str, transpilation: bool = True) -> Command:
    return command_of(sql, lexer.normalize(sql), transpilation)


@pytest.mark.parametrize(
    ("sql", "command"),
    [
        ("BEGIN", Command.BEGIN),
        ("START TRANSACTION READ ONLY", Command.BEGIN),
        ("commit", Command.COMMIT),
        ("ROLLBACK TO SAVEPOINT s1", Command.ROLLBACK),
        ("SAVEPOINT s1", Command.SAVEPOINT),
        ("RELEASE SAVEPOINT s1", Command.RELEASE),
        ("SET NAMES utf8mb4", Command.SET),
        ("/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE */", Command.SET),
        ("USE `my db`", Command.USE),
        ("SHOW FULL TABLES", Command.SHOW),
        ("DESCRIBE t", Command.SHOW),
        ("DESC t", Command.SHOW),
        ("EXPLAIN t", Command.SHOW),
        ("EXPLAIN SELECT 1", Command.EXPLAIN),
        ("EXPLAIN FORMAT=JSON SELECT 1", Command.EXPLAIN),
        ("CREATE DATABASE IF NOT EXISTS d", Command.DATABASE_DDL),
        ("DROP SCHEMA d", Command.DATABASE_DDL),
        ("ALTER DATABASE d CHARACTER SET utf8mb4", Command.DATABASE_DDL),
        ("LOCK TABLES t WRITE", Command.NOOP),
        ("FLUSH PRIVILEGES", Command.NOOP),
        ("CREATE USER u IDENTIFIED BY 'p'", Command.NOOP),
        ("DROP ROLE r", Command.NOOP),
        ("ALTER TABLE t DISABLE KEYS", Command.NOOP),
        ("ALTER TABLE t ADD COLUMN c INT", Command.PLAN),
        ("LOAD EXTENSION 'vec0'", Command.LOAD_EXTENSION),
        ("LOAD DATA LOCAL INFILE 'f' INTO TABLE t", Command.LOAD_DATA),
        ("DO SLEEP(0)", Command.DO),
        ("KILL 5", Command.KILL),
        ("KILL QUERY 5", Command.KILL),
        ("KILL CONNECTION 5", Command.KILL),
        ("SELECT 1", Command.PLAN),
        ("CREATE TABLE t (id INT PRIMARY KEY)", Command.PLAN),
    ],
)
def test_command_of(sql: str, command: Command) -> None:
    assert _command(sql) is command


def test_transpilation_off_routes_only_plain_sql_to_raw() -> None:
    assert _command("SELECT 1", transpilation=False) is Command.RAW
    assert _command("INSERT INTO t VALUES (1)", transpilation=False) is Command.RAW
    # the session's own statements stay the session's: they are not SQLite SQL
    assert _command("SET marmot_transpilation = ON", transpilation=False) is Command.SET
    assert _command("BEGIN", transpilation=False) is Command.BEGIN
    assert _command("SHOW TABLES", transpilation=False) is Command.SHOW


def test_metric_kind() -> None:
    assert [
        metric_kind(k) for k in ("SELECT", "SHOW", "REPLACE", "LOAD", "UPDATE", "DELETE", "TRUNCATE", "SET")
    ] == ["select", "select", "insert", "insert", "update", "delete", "ddl", "other"]


def test_router_needs_a_handler_for_every_command() -> None:
    async def ok(sql: str, norm: lexer.Normalized, params: list[object]) -> Result:
        return OkResult()

    handlers = {c: ok for c in Command if c is not Command.DO}
    with pytest.raises(ValueError, match="no handler for DO"):
        StatementRouter(handlers)
    StatementRouter({**handlers, Command.DO: ok})


def test_session_statement_parsing() -> None:
    assert statements.use_target("USE `my db`") == "my db"
    assert statements.savepoint_name('SAVEPOINT "s 1"') == "s 1"
    assert statements.savepoint_name("RELEASE SAVEPOINT `sp`") == "sp"
    assert statements.rollback_target("ROLLBACK") is None
    assert statements.rollback_target("ROLLBACK WORK TO SAVEPOINT sp") == "sp"
    assert statements.rollback_target("rollback to sp") == "sp"
    assert statements.database_ddl("CREATE DATABASE IF NOT EXISTS `d-1`", "CREATE") == statements.DatabaseDDL(
        "CREATE", "d-1", True
    )
    assert statements.database_ddl("DROP SCHEMA d", "DROP") == statements.DatabaseDDL("DROP", "d", False)
    assert statements.extension_name("LOAD EXTENSION 'vec0'") == "vec0"
    assert statements.extension_name("LOAD EXTENSION my.ext") == "my.ext"
    assert statements.is_keys_toggle("ALTER TABLE `t` ENABLE KEYS")
    assert not statements.is_keys_toggle("ALTER TABLE t DROP KEY k")


@pytest.mark.parametrize(
    "call",
    [
        lambda: statements.use_target("USE"),
        lambda: statements.savepoint_name("SAVEPOINT"),
        lambda: statements.database_ddl("DROP DATABASE IF EXISTS", "DROP"),
        lambda: statements.check_begin("START SLAVE", ["START", "SLAVE"]),
    ],
)
def test_session_statement_syntax_errors_are_1064(call) -> None:
    with pytest.raises(MySQLError) as err:
        call()
    assert err.value.code == 1064 and err.value.sqlstate == "42000"


def test_parse_set_forms() -> None:
    names = statements.parse_set("SET NAMES 'utf8mb4' COLLATE utf8mb4_bin")
    assert [(a.kind, a.name, a.extra) for a in names] == [("names", "utf8mb4", "utf8mb4_bin")]
    charset = statements.parse_set("SET CHARACTER SET utf8")
    assert [(a.kind, a.name) for a in charset] == [("charset", "utf8")]
    txn = statements.parse_set("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
    assert [(a.kind, a.scope, a.extra) for a in txn] == [
        ("transaction", "session", "ISOLATION LEVEL READ COMMITTED")
    ]
    many = statements.parse_set(
        "SET @@global.sql_mode = 'ANSI', @`a b` := CONCAT('x', (1, 2)), LOCAL autocommit=0"
    )
    assert [(a.kind, a.name, a.scope, a.value_sql) for a in many] == [
        ("system", "sql_mode", "global", "'ANSI'"),
        ("user", "a b", "", "CONCAT('x', (1, 2))"),
        ("system", "autocommit", "session", "0"),
    ]
    with pytest.raises(ValueError, match="malformed"):
        statements.parse_set("SET x")
