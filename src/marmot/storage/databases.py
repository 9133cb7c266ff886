"""The SQLite files of one node: one file per logical database plus the system database.

Layout of ``data_dir``: ``<name>.db`` for every user database (the default one is ``marmot``) and
``__marmot_system.db`` for node-internal state. A database exists exactly when its file exists, so a
restart (or files copied in by an operator) needs no registry to rebuild.

Every connection is opened in WAL mode with ``synchronous=NORMAL`` (durable at checkpoints, never
corrupt) and ``busy_timeout=0``: waiting for SQLite's write lock must never block the asyncio loop, so the
engine retries SQLITE_BUSY itself with asyncio sleeps (see ``engine/locking.py``).

``generation(db)`` is an in-process counter bumped by every schema change made through this node; the
transpiler keys its plan cache on it so no plan outlives the schema it was built for.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import apsw

from marmot.storage import collations
from marmot.storage.write_lock import WriterLock

SYSTEM_DATABASE = "__marmot_system"
DEFAULT_DATABASE = "marmot"
_NAME_RE = re.compile(r"^[A-Za-z0-9_$\-]{1,64}$")


class DatabaseError(Exception):
    """Base of the storage errors the engine maps to MySQL codes."""


class UnknownDatabase(DatabaseError):
    """MySQL 1049."""


class DatabaseExists(DatabaseError):
    """MySQL 1007."""


class InvalidDatabaseName(DatabaseError):
    """MySQL 1102."""


@dataclass(frozen=True, slots=True)
class AutoIncInfo:
    column: str
    position: int
    zero_generates: bool


def validate_name(name: str) -> str:
    if not _NAME_RE.match(name) or name.lower().startswith("__marmot") or name in (".", ".."):
        raise InvalidDatabaseName(f"Incorrect database name '{name}'")
    if name.lower() in ("information_schema", "mysql", "performance_schema", "sys"):
        raise InvalidDatabaseName(f"Incorrect database name '{name}'")
    return name


class DatabaseManager:
    """Creates, lists, drops and opens the node's SQLite databases."""

    def __init__(self, data_dir: str | os.PathLike[str], cache_size_kib: int = 16384) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._cache_size_kib = cache_size_kib
        self._lock = threading.Lock()
        self._generations: dict[str, int] = {}
        self._autoinc: dict[tuple[str, str, int], AutoIncInfo | None] = {}
        self._flags: dict[tuple[str, str, int], dict[str, int]] = {}
        self._meta_conns: dict[str, apsw.Connection] = {}
        self._write_locks: dict[str, WriterLock] = {}
        self._existing: set[str] = set()
        # bumped whenever a database file appears, goes or is replaced: lets holders of a list of names or
        # of per-file facts (``replication/catchup/log_memory.py``) know when to look again
        self.catalog_version = 0
        self._setups: list[Callable[[apsw.Connection], None]] = []
        self.system = self.open(SYSTEM_DATABASE)
        if not self.exists(DEFAULT_DATABASE):
            self.create(DEFAULT_DATABASE)

    # -- files ----------------------------------------------------------------------------------------

    def path(self, name: str) -> Path:
        return self.data_dir / f"{name}.db"

    def exists(self, name: str) -> bool:
        """Whether the database's file exists. Positive answers are remembered (this is asked on every
        replicated write); ``create``/``drop`` keep the memory true, files removed behind the node's back
        are noticed at the next restart."""
        if name in self._existing:
            return True
        if name == SYSTEM_DATABASE or not _NAME_RE.match(name):
            return False
        if self.path(name).is_file():
            self._existing.add(name)
            return True
        return False

    def names(self) -> list[str]:
        """User databases, sorted (the system database is never listed)."""
        out = []
        for p in self.data_dir.glob("*.db"):
            name = p.stem
            if name != SYSTEM_DATABASE and _NAME_RE.match(name):
                out.append(name)
        return sorted(out)

    def create(self, name: str, if_not_exists: bool = False) -> bool:
        """Create an empty database file; False when it existed and ``if_not_exists``."""
        validate_name(name)
        with self._lock:
            if self.path(name).exists():
                if if_not_exists:
                    return False
                raise DatabaseExists(f"Can't create database '{name}'; database exists")
            conn = self.open(name)
            conn.close()
        self.catalog_version += 1
        self.bump_generation(name)
        return True

    def drop(self, name: str, if_exists: bool = False) -> bool:
        """Delete a database's files; False when it was absent and ``if_exists``."""
        with self._lock:
            if not self.exists(name):
                if if_exists:
                    return False
                raise UnknownDatabase(f"Can't drop database '{name}'; database doesn't exist")
            self._existing.discard(name)
            meta = self._meta_conns.pop(name, None)
            if meta is not None:
                meta.close()
            for suffix in ("", "-wal", "-shm", "-journal"):
                p = Path(str(self.path(name)) + suffix)
                if p.exists():
                    p.unlink()
        self.catalog_version += 1
        self.bump_generation(name)
        return True

    def replace_file(self, name: str, new_path: str | os.PathLike[str]) -> None:
        """Swap ``new_path`` (a complete database file, e.g. a restored snapshot) in as ``name``'s file.

        The caller holds the database's writer lock and has made every other holder of a connection to
        the old file close it. The old ``-wal``/``-shm``/``-journal`` files are removed *before* the new
        file takes the name: SQLite would otherwise replay a stale WAL written for the old file into the
        new one, which corrupts it. Then rename (atomic on one file system) and fsync of the directory,
        so a crash leaves either the old or the new file, never a mix."""
        validate_name(name)
        with self._lock:
            meta = self._meta_conns.pop(name, None)
            if meta is not None:
                meta.close()
            target = self.path(name)
            for suffix in ("-wal", "-shm", "-journal"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(str(target) + suffix)
            fd = os.open(str(new_path), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(new_path, target)
            dir_fd = os.open(str(self.data_dir), os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
            self._existing.add(name)
        self.catalog_version += 1
        self.bump_generation(name)

    # -- connections ----------------------------------------------------------------------------------

    def open(self, name: str) -> apsw.Connection:
        """A new connection to ``name`` with Marmot's pragmas (the caller owns and closes it)."""
        conn = apsw.Connection(str(self.path(name)))
        conn.set_busy_timeout(0)
        collations.register(conn)  # stored DECIMAL columns name MARMOT_DECIMAL
        for setup in self._setups:
            setup(conn)
        # One execute per pragma: apsw runs a multi-statement string lazily and stops at the first
        # statement that returns a row (journal_mode does), silently skipping the rest.
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "foreign_keys=ON",
            f"cache_size=-{self._cache_size_kib}",
            "temp_store=MEMORY",
        ):
            conn.execute(f"PRAGMA {pragma}").fetchall()
        return conn

    def add_connection_setup(self, setup: Callable[[apsw.Connection], None]) -> None:
        """Run ``setup`` on every connection opened from now on and on those kept open here. The engine
        installs the SQLite functions stored views may call (exact DECIMAL), which this layer cannot
        import: reading such a view's columns prepares its SELECT."""
        self._setups.append(setup)
        for conn in [self.system, *self._meta_conns.values()]:
            setup(conn)

    def checkpoint_all(self) -> None:
        """Fold every WAL back into its database file (clean shutdown)."""
        for name in [*self.names(), SYSTEM_DATABASE]:
            conn = self._meta(name) if name != SYSTEM_DATABASE else self.system
            with contextlib.suppress(apsw.Error):
                conn.wal_checkpoint(mode=apsw.SQLITE_CHECKPOINT_TRUNCATE)

    def close(self) -> None:
        self.checkpoint_all()
        for conn in self._meta_conns.values():
            conn.close()
        self._meta_conns.clear()
        self.system.close()

    # -- schema knowledge -------------------------------------------------------------------------------

    def write_lock(self, name: str) -> WriterLock:
        """The in-process writer lock of a database (``storage/write_lock.py``). Every writer of this
        node (client statements, the replication apply queue) takes it before SQLite's own write lock.
        SQLite's lock still guards against other processes."""
        lock = self._write_locks.get(name)
        if lock is None:
            lock = self._write_locks[name] = WriterLock()
        return lock

    def generation(self, name: str) -> int:
        return self._generations.get(name, 0)

    def bump_generation(self, name: str) -> None:
        """A file's schema or the file itself changed (DDL, create, drop, replace)."""
        with self._lock:
            self._generations[name] = self._generations.get(name, 0) + 1

    def _meta(self, name: str) -> apsw.Connection:
        conn = self._meta_conns.get(name)
        if conn is None:
            conn = self._meta_conns[name] = self.open(name)
        return conn

    def schema_connection(self, database: str) -> apsw.Connection | None:
        """The node's own connection of ``database`` for reading its schema (None if there is no such
        database): the transpiler reads column facts through it when it plans a write."""
        return self._meta(database) if self.exists(database) else None

    def table_count(self, database: str) -> int:
        """User tables in ``database`` (internal ``__marmot*`` and ``sqlite_*`` tables not counted)."""
        if not self.exists(database):
            return 0
        row = (
            self._meta(database)
            .execute(
                "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
                "AND name NOT LIKE '\\_\\_marmot%' ESCAPE '\\'"
            )
            .fetchone()
        )
        assert row is not None  # COUNT(*) always gives one row
        return int(row[0])

    def table_definition(self, database: str, table: str) -> tuple[str, str, list[str], list[str]] | None:
        """(stored name, CREATE TABLE sql, CREATE INDEX sqls, CREATE TRIGGER sqls) of a table, or None."""
        if not self.exists(database):
            return None
        conn = self._meta(database)
        row = conn.execute(
            "SELECT name, sql FROM sqlite_schema WHERE type='table' AND name = ? COLLATE NOCASE", (table,)
        ).fetchone()
        if row is None:
            return None
        name, sql = row
        indexes = [
            r[0]
            for r in conn.execute(
                "SELECT sql FROM sqlite_schema WHERE type='index' AND tbl_name = ? AND sql IS NOT NULL",
                (name,),
            )
        ]
        triggers = [
            r[0]
            for r in conn.execute(
                "SELECT sql FROM sqlite_schema WHERE type='trigger' AND tbl_name = ?", (name,)
            )
        ]
        return name, sql, indexes, triggers

    def column_flags(self, database: str, table: str) -> dict[str, int]:
        """Per column of ``table``: NOT_NULL 1, PRI_KEY 2, UNIQUE_KEY 4, MULTIPLE_KEY 8, AUTO_INCREMENT 512.

        These are MySQL's column-definition flags (result-set metadata that GUIs use to make rows
        editable); cached per schema generation because every result set of the table asks.
        """
        key = (database, table.lower(), self.generation(database))
        cached = self._flags.get(key)
        if cached is not None:
            return cached
        flags: dict[str, int] = {}
        if self.exists(database):
            conn = self._meta(database)
            row = conn.execute(
                "SELECT sql FROM sqlite_schema WHERE type='table' AND name = ? COLLATE NOCASE", (table,)
            ).fetchone()
            if row is not None:
                auto = "AUTOINCREMENT" in (row[0] or "").upper()
                for _cid, name, decl, notnull, _default, pk in conn.execute(f'PRAGMA table_info("{table}")'):
                    f = (1 if notnull or pk else 0) | (2 if pk else 0)
                    if pk and auto and str(decl).upper() == "INTEGER":
                        f |= 512
                    flags[name] = f
                for idx in conn.execute(f'PRAGMA index_list("{table}")').fetchall():
                    cols = [c[2] for c in conn.execute(f'PRAGMA index_info("{idx[1]}")')]
                    if cols and cols[0] in flags and idx[3] != "pk":
                        flags[cols[0]] |= 4 if (idx[2] and len(cols) == 1) else 8
        if len(self._flags) > 4096:
            self._flags.clear()
        self._flags[key] = flags
        return flags

    def autoinc_column(self, database: str, table: str) -> AutoIncInfo | None:
        """The table's AUTO_INCREMENT column, read from the SQLite schema (cached per generation).

        A column declared ``INTEGER PRIMARY KEY AUTOINCREMENT`` (our translation of MySQL AUTO_INCREMENT)
        gets an id for NULL and 0; a plain single-column ``INTEGER PRIMARY KEY`` (a table made outside
        MySQL syntax) gets one for NULL only, where SQLite would otherwise pick max(rowid)+1.
        """
        key = (database, table.lower(), self.generation(database))
        if key in self._autoinc:
            return self._autoinc[key]
        info = None
        if self.exists(database):
            conn = self._meta(database)
            row = conn.execute(
                "SELECT sql FROM sqlite_schema WHERE type='table' AND name = ? COLLATE NOCASE", (table,)
            ).fetchone()
            if row and row[0]:
                # (cid, name, type, notnull, dflt_value, pk), as SQLite documents PRAGMA table_info
                cols = cast(
                    list[tuple[int, str, str, int, Any, int]],
                    conn.execute(f'PRAGMA table_info("{table}")').fetchall(),
                )
                pks = [c for c in cols if c[5]]
                if len(pks) == 1 and str(pks[0][2]).upper() == "INTEGER":
                    pk = pks[0]
                    info = AutoIncInfo(pk[1], pk[0], "AUTOINCREMENT" in row[0].upper())
        self._autoinc[key] = info
        return info
