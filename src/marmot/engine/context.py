"""Node-wide state every session shares: databases, the plan cache, the id generator, global variables.

It is its own type because ``node.py`` builds exactly one and hands it to the MySQL listener, the admin API
and the tests, and because it is the seam where later layers (replication) plug into the engine.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from marmot.engine import table_description
from marmot.engine.column_checks import ColumnCheck
from marmot.engine.general_log import GeneralLog
from marmot.replication.named_locks import NamedLocks
from marmot.sql import decimal_rewrites, functions
from marmot.sql.alter import StoredTable, split_create_table
from marmot.sql.transpiler import SchemaInfo, Transpiler
from marmot.sql.value_checks import ColumnFacts
from marmot.storage.databases import DatabaseManager

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from marmot.engine.forwarding import StatementForwarder
    from marmot.engine.results import Result
    from marmot.engine.session import Session
    from marmot.replication.service import Replication
    from marmot.sql.lexer import Normalized

    # what a read-only node does with a statement that writes (``EngineContext.write_gate``)
    WriteGate = Callable[[Session, str, Normalized, list[object]], Awaitable[Result]]


class IdGenerator(Protocol):
    def next_id(self) -> int: ...


class _StorageSchema(SchemaInfo):
    """SchemaInfo backed by the live SQLite schema."""

    def __init__(self, databases: DatabaseManager) -> None:
        self._databases = databases
        databases.add_connection_setup(functions.register_stored_view_functions)
        # (database, table, schema generation) -> column types: asked on every plan miss
        self._column_types: dict[tuple[str, str, int], dict[str, str] | None] = {}

    def autoinc_column(self, database: str, table: str) -> tuple[str, int, bool] | None:
        info = self._databases.autoinc_column(database, table)
        return None if info is None else (info.column, info.position, info.zero_generates)

    def table_schema(self, database: str, table: str) -> StoredTable | None:
        found = self._databases.table_definition(database, table)
        if found is None:
            return None
        name, sql, indexes, triggers = found
        return StoredTable(name, split_create_table(name, sql), indexes, triggers)

    def column_types(self, database: str, table: str) -> dict[str, str] | None:
        key = (database, table.lower(), self._databases.generation(database))
        if key in self._column_types:
            return self._column_types[key]
        types = self._read_column_types(database, table)
        if len(self._column_types) > 4096:
            self._column_types.clear()
        self._column_types[key] = types
        return types

    def _read_column_types(self, database: str, table: str) -> dict[str, str] | None:
        conn = self._databases.schema_connection(database)
        if conn is None:
            return None
        desc = table_description.describe(conn, table)
        if desc is None:
            return None
        types = {c.name.lower(): c.type for c in desc.columns}
        if desc.is_view:
            row = conn.execute(
                "SELECT sql FROM sqlite_schema WHERE type = 'view' AND name = ?", (desc.name,)
            ).fetchone()
            if row and row[0]:
                types.update(decimal_rewrites.view_column_types(str(row[0]), database, self.column_types))
        return types

    def column_facts(self, database: str, table: str) -> tuple[ColumnFacts, ...] | None:
        """From ``describe`` (the column order the engine's checks use) and SQLite's declared types and
        DEFAULT texts (``PRAGMA table_xinfo``: cid, name, type, notnull, dflt_value, pk, hidden)."""
        conn = self._databases.schema_connection(database)
        if conn is None:
            return None
        desc = table_description.describe(conn, table)
        if desc is None or desc.is_view:
            return None
        declared: dict[str, tuple[str, str | None]] = {
            str(r[1]).lower(): (str(r[2]).upper(), None if r[4] is None else str(r[4]))
            for r in conn.execute(f'PRAGMA table_xinfo("{desc.name}")')
        }
        primary = [c.name for c in desc.columns if c.key == "PRI"]
        facts = []
        for c in desc.columns:
            decl, default = declared.get(c.name.lower(), ("", None))
            # a lone INTEGER PRIMARY KEY (a table made outside MySQL syntax) is SQLite's rowid and gets an id
            # for NULL (``autoinc_column``); MySQL's INT / BIGINT PRIMARY KEY is stored as INT / BIGINT
            rowid = primary == [c.name] and decl == "INTEGER"
            facts.append(
                ColumnFacts(
                    c.name,
                    required=not c.nullable and default is None,
                    exempt=c.auto_increment or bool(c.generated) or rowid,
                    generated=bool(c.generated),
                    default_sql=default,
                )
            )
        return tuple(facts)


@dataclass
class EngineContext:
    databases: DatabaseManager
    id_generator: IdGenerator
    global_variables: dict[str, object]
    transpiler_cache_size: int = 10000
    lock_wait_timeout_s: float = 50.0
    read_only: bool = False  # a replica: writes go to ``write_gate`` (``engine/read_only.py``)
    # On a read-only node, what a statement that writes gets: (session, sql, normalized, params) -> result.
    # None: refused with 1290 (``read_only.read_only_error``); write forwarding plugs in here.
    write_gate: WriteGate | None = None
    sessions: dict[int, Session] = field(default_factory=dict)  # connection id -> Session
    general_log: GeneralLog | None = None
    extensions_dir: str = ""  # [extensions] directory ("" = LOAD EXTENSION off)
    always_loaded: tuple[str, ...] = ()  # [extensions] always_loaded
    local_infile: bool = True  # [mysql] local_infile_enabled
    # The replication layer (None: writes commit locally only, as in unit tests of the engine alone)
    replication: Replication | None = None
    ddl_lock_lease_s: float = 30.0  # [ddl] lock_lease_seconds: how long a DDL retries a conflicting DDL
    ddl_implicit_commit: bool = True  # [transaction] ddl_implicit_commit
    # A read-only replica with [replica] forward_writes: takes the sessions' writes (engine/forwarding.py)
    forwarder: StatementForwarder | None = None
    # GET_LOCK and friends: this node alone until node.py wires it to the cluster
    named_locks: NamedLocks = field(default_factory=NamedLocks)
    transpiler: Transpiler = field(init=False)
    # (database, table lower-case, schema generation) -> its columns' checks (``column_checks.py``)
    column_checks: dict[tuple[str, str, int], tuple[ColumnCheck, ...]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.transpiler = Transpiler(self.transpiler_cache_size, _StorageSchema(self.databases))

    def next_connection_id(self) -> int:
        return next(self._ids)

    def release_database(self, name: str) -> None:
        """A database's file is being replaced (snapshot restore): sessions close their handles on it, as
        for a drop, but one that had it as its current database keeps it (it reopens on the next use)."""
        for session in list(self.sessions.values()):
            current = session.database
            session.forget_database(name)
            if current == name:
                session.database = current

    def forget_database(self, name: str) -> None:
        """A database is being dropped (here or by replication): every session lets go of it."""
        for session in list(self.sessions.values()):
            session.forget_database(name)
