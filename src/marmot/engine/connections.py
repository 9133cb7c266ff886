"""The SQLite connections of one session: one per database it uses, opened lazily, with ATTACH and the
session's SQL functions installed.

Why one object owns them: a connection is more than a handle — it carries the MySQL functions, the
session's own functions (``session_functions.py``), the extensions ``LOAD EXTENSION`` loaded, the
``foreign_keys`` pragma ``SET foreign_key_checks`` chose, and the databases ATTACHed to it for
``otherdb.table`` (and the in-memory ``information_schema``). Everything that needs a connection —
the plan and raw-SQL runners, SHOW (``metadata.py``), INFORMATION_SCHEMA, LOAD DATA — asks this object,
so a connection is never used before it is set up, and dropping a database closes every handle on it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import apsw

from marmot.engine import errors, extensions, information_schema
from marmot.engine.errors import MySQLError
from marmot.sql import functions
from marmot.sql.functions import datetime as datetime_functions
from marmot.storage import collations

if TYPE_CHECKING:
    from marmot.engine.context import EngineContext


class SessionConnections:
    """Opens, sets up and closes the per-database connections of one session (module docstring)."""

    def __init__(
        self, ctx: EngineContext, install_session_functions: Callable[[apsw.Connection], None]
    ) -> None:
        self.ctx = ctx
        self._install_session_functions = install_session_functions
        self.foreign_keys = True  # SET foreign_key_checks: applied to connections opened later too
        self._extensions: list[Path] = []  # files loaded by LOAD EXTENSION, for connections opened later too
        self._conns: dict[str, apsw.Connection] = {}  # database ("" = no database) -> connection
        self._attached: dict[apsw.Connection, set[str]] = {}  # connection -> databases ATTACHed to it
        # per connection: (cursor with the result-column trace, plain cursor), for reads of plans
        self._read_cursors: dict[apsw.Connection, tuple[apsw.Cursor, apsw.Cursor]] = {}

    def get(self, database: str | None) -> apsw.Connection:
        """The connection of ``database``, opened and set up at first use (1049 if it does not exist).
        ``None`` (no database selected) gives an in-memory connection: expressions (``SELECT 1``,
        ``@@version``) work there, tables do not."""
        if database is None:
            conn = self._conns.get("")
            if conn is None:
                conn = self._conns[""] = apsw.Connection(":memory:")
                self._install(conn)
            return conn
        conn = self._conns.get(database)
        if conn is None:
            if not self.ctx.databases.exists(database):
                raise errors.unknown_database(database)
            conn = self.ctx.databases.open(database)
            if not self.foreign_keys:
                conn.execute("PRAGMA foreign_keys=OFF").fetchall()
            self._install(conn)
            self._conns[database] = conn
        return conn

    def opened(self, database: str) -> apsw.Connection | None:
        """The connection of ``database`` if this session has opened it."""
        return self._conns.get(database)

    def _install(self, conn: apsw.Connection) -> None:
        for name in self.ctx.always_loaded:
            extensions.load(conn, extensions.resolve(self.ctx.extensions_dir, name))
        for path in self._extensions:
            extensions.load(conn, path)
        functions.register(conn)
        collations.register(conn)  # DECIMAL results carry MARMOT_DECIMAL, also without a database
        for name, (fn, nargs, deterministic) in datetime_functions.FUNCTIONS.items():
            conn.create_scalar_function(name, fn, nargs, deterministic=deterministic)
        self._install_session_functions(conn)

    def attach_all(self, conn: apsw.Connection, databases: Iterable[str]) -> apsw.Connection:
        """``conn`` with every one of ``databases`` ATTACHed (a plan names them in ``plan.attach``)."""
        for db in databases:
            self.attach(conn, db)
        return conn

    def attach(self, conn: apsw.Connection, db: str) -> None:
        """ATTACH ``db`` to ``conn`` under its own name, once; ``information_schema`` is an in-memory
        database rebuilt here whenever a schema changed (``information_schema.refresh``)."""
        attached = self._attached.setdefault(conn, set())
        if db == information_schema.SCHEMA_NAME:
            if db not in attached:
                conn.execute("ATTACH DATABASE ':memory:' AS information_schema")
                attached.add(db)
            information_schema.refresh(self, conn)
            return
        if db in attached:
            return
        if not self.ctx.databases.exists(db):
            raise errors.unknown_database(db)
        if not conn.get_autocommit():
            raise MySQLError(1105, "HY000", f"database '{db}' must be used once outside a transaction first")
        conn.execute("ATTACH DATABASE ? AS ?", (str(self.ctx.databases.path(db)), db))
        attached.add(db)

    def read_cursors(self, conn: apsw.Connection, trace: apsw.ExecTracer) -> tuple[apsw.Cursor, apsw.Cursor]:
        """(cursor traced by ``trace``, plain cursor) of ``conn``, kept for the reads of plans."""
        cursors = self._read_cursors.get(conn)
        if cursors is None:
            traced = conn.cursor()
            traced.exec_trace = trace
            cursors = self._read_cursors[conn] = (traced, conn.cursor())
        return cursors

    def load_extension(self, path: Path, current: str | None) -> None:
        """LOAD EXTENSION: into every open connection (that of ``current``, the session's database, is
        opened if none is) and every connection opened later."""
        for conn in self._conns.values():
            extensions.load(conn, path)
        if not self._conns:
            extensions.load(self.get(current), path)
        if path not in self._extensions:
            self._extensions.append(path)

    def set_foreign_keys(self, on: bool) -> None:
        """SET foreign_key_checks: SQLite changes the pragma only outside a transaction; a connection in
        one keeps its setting, connections opened later take the new one."""
        self.foreign_keys = on
        for conn in self._conns.values():
            if conn.get_autocommit():
                conn.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}").fetchall()

    def forget(self, name: str) -> None:
        """``name`` is being dropped or replaced: DETACH it everywhere and close its connection."""
        for holder, dbs in self._attached.items():
            if name in dbs:
                dbs.discard(name)
                with contextlib.suppress(apsw.Error):
                    holder.execute("DETACH DATABASE ?", (name,))
        conn = self._conns.pop(name, None)
        if conn is not None:
            self._attached.pop(conn, None)
            self._read_cursors.pop(conn, None)
            conn.close()

    def close(self) -> None:
        """Close every connection (the client is gone)."""
        for conn in self._conns.values():
            with contextlib.suppress(apsw.Error):
                conn.close()
        self._conns.clear()
        self._attached.clear()
        self._read_cursors.clear()
