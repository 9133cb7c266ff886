"""Which handler runs a statement: a table from the statement's command to the session's handler.

Why a table: the routing used to be one chain of ``if kw == ...`` in the session, where the order of the
tests was part of the meaning and nothing said which statements exist. ``command_of`` names the command
of a statement from its leading words (``lexer.normalize`` gives them, so routing tokenizes nothing
again), in one documented order; ``StatementRouter`` holds one handler per ``Command`` and refuses to be
built with one missing. Statements the engine does not answer itself are ``PLAN`` (the transpiler's
plan: SELECT, INSERT, CREATE TABLE …) or, with ``SET marmot_transpilation = OFF``, ``RAW`` (SQLite SQL).
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping

from marmot.engine import read_only
from marmot.engine.results import Result
from marmot.engine.statements import is_keys_toggle
from marmot.sql import lexer


class Command(enum.Enum):
    BEGIN = "begin"  # BEGIN, START TRANSACTION
    COMMIT = "commit"
    ROLLBACK = "rollback"  # ROLLBACK [TO SAVEPOINT x]
    SAVEPOINT = "savepoint"
    RELEASE = "release"  # RELEASE SAVEPOINT x
    SET = "set"
    USE = "use"
    SHOW = "show"  # SHOW …, DESCRIBE/DESC t, EXPLAIN t (not EXPLAIN SELECT)
    DATABASE_DDL = "database_ddl"  # CREATE/DROP/ALTER DATABASE|SCHEMA
    NOOP = "noop"  # accepted, meaningless for SQLite (LOCK TABLES, GRANT, CREATE USER, DISABLE KEYS …)
    LOAD_EXTENSION = "load_extension"
    LOAD_DATA = "load_data"
    DO = "do"
    KILL = "kill"  # KILL [CONNECTION | QUERY] id
    EXPLAIN = "explain"  # EXPLAIN SELECT / UPDATE / DELETE / INSERT ... (a query plan, MySQL's shape)
    RAW = "raw"  # any other statement of a marmot_transpilation = OFF session
    PLAN = "plan"  # any other statement: transpiled


# Statements a MySQL server accepts that have no meaning for a SQLite node (upstream: "Parsed").
ACCEPTED_NOOPS = frozenset(
    {
        "LOCK",
        "UNLOCK",
        "XA",
        "GRANT",
        "REVOKE",
        "FLUSH",
        "OPTIMIZE",
        "REPAIR",
        "ANALYZE",
        "CHECK",
        "CHECKSUM",
        "RESET",
        "PURGE",
        "INSTALL",
        "UNINSTALL",
        "HANDLER",
        "CACHE",
        "LOAD_INDEX",
    }
)
_USER_DDL = frozenset({"USER", "ROLE"})
_SIMPLE = {
    "BEGIN": Command.BEGIN,
    "START": Command.BEGIN,
    "COMMIT": Command.COMMIT,
    "ROLLBACK": Command.ROLLBACK,
    "SAVEPOINT": Command.SAVEPOINT,
    "RELEASE": Command.RELEASE,
    "SET": Command.SET,
    "USE": Command.USE,
}
# First words of statements that are never one of the session's own (the hot path: no further test)
_ALWAYS_SQL = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE", "REPLACE", "WITH"})
# EXPLAIN followed by one of these is a query plan (transpiled); otherwise EXPLAIN t is DESCRIBE t
_EXPLAIN_QUERY = frozenset(
    {"SELECT", "UPDATE", "DELETE", "INSERT", "REPLACE", "WITH", "FORMAT", "ANALYZE", "EXTENDED"}
)
# First words of the statements this server knows (others are a syntax error already at PREPARE)
KNOWN_KEYWORDS = frozenset(
    {
        "SELECT",
        "WITH",
        "(",
        "INSERT",
        "REPLACE",
        "UPDATE",
        "DELETE",
        "CREATE",
        "ALTER",
        "DROP",
        "RENAME",
        "TRUNCATE",
        "SET",
        "SHOW",
        "DESCRIBE",
        "DESC",
        "EXPLAIN",
        "USE",
        "BEGIN",
        "START",
        "COMMIT",
        "ROLLBACK",
        "SAVEPOINT",
        "RELEASE",
        "LOAD",
        "DO",
        "VALUES",
        "TABLE",
        "CALL",
        "KILL",
    }
    | ACCEPTED_NOOPS
)
# The kind a statement counts as in the query metrics (``statement_kind``)
_METRIC_KINDS = {
    "SELECT": "select",
    "WITH": "select",
    "SHOW": "select",
    "DESCRIBE": "select",
    "DESC": "select",
    "INSERT": "insert",
    "REPLACE": "insert",
    "LOAD": "insert",
    "UPDATE": "update",
    "DELETE": "delete",
    "CREATE": "ddl",
    "ALTER": "ddl",
    "DROP": "ddl",
    "RENAME": "ddl",
    "TRUNCATE": "ddl",
}


def metric_kind(keyword: str) -> str:
    """select/insert/update/delete/ddl/other, for the query metrics."""
    return _METRIC_KINDS.get(keyword, "other")


def command_of(sql: str, norm: lexer.Normalized, transpilation: bool) -> Command:
    """The command of one statement (``norm`` is its ``lexer.normalize``; its keyword is not empty)."""
    kw = norm.keyword
    if kw in _ALWAYS_SQL:
        return Command.PLAN if transpilation else Command.RAW
    words = norm.words
    simple = _SIMPLE.get(kw)
    if simple is not None:
        return simple
    if kw in ("SHOW", "DESCRIBE", "DESC") or (
        kw == "EXPLAIN" and len(words) > 1 and words[1] not in _EXPLAIN_QUERY
    ):
        return Command.SHOW
    if kw in ("CREATE", "DROP", "ALTER") and len(words) > 1 and words[1] in ("DATABASE", "SCHEMA"):
        return Command.DATABASE_DDL
    if kw in ACCEPTED_NOOPS or (
        kw in ("CREATE", "DROP", "ALTER", "RENAME") and words[1:2] and words[1] in _USER_DDL
    ):
        return Command.NOOP
    if kw == "ALTER" and is_keys_toggle(sql):
        return Command.NOOP
    if kw == "LOAD" and words[1:2] == ["EXTENSION"]:
        return Command.LOAD_EXTENSION
    if kw == "LOAD" and words[1:2] == ["DATA"]:
        return Command.LOAD_DATA
    if kw == "DO":
        return Command.DO
    if kw == "KILL":
        return Command.KILL
    if kw == "EXPLAIN" and transpilation:
        return Command.EXPLAIN
    return Command.PLAN if transpilation else Command.RAW


Handler = Callable[[str, lexer.Normalized, list[object]], Awaitable[Result]]


class StatementRouter:
    """One handler per ``Command``; ``route`` runs a statement's."""

    def __init__(self, handlers: Mapping[Command, Handler], write_gate: Handler | None = None) -> None:
        """``write_gate``: on a read-only node (a replica), the handler of every statement that writes
        (``read_only.writes``) instead of its own: the one seam where a replica refuses (1290) or forwards."""
        missing = [c.name for c in Command if c not in handlers]
        if missing:
            raise ValueError(f"no handler for {', '.join(missing)}")
        self._handlers = dict(handlers)
        self._write_gate = write_gate

    async def route(
        self, sql: str, norm: lexer.Normalized, params: list[object], transpilation: bool
    ) -> Result:
        command = command_of(sql, norm, transpilation)
        if self._write_gate is not None and read_only.writes(command.value, norm):
            return await self._write_gate(sql, norm, params)
        return await self._handlers[command](sql, norm, params)
