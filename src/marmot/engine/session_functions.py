"""SQL functions whose value is the session's own state, installed on each of its connections.

Why per session and not node-wide like the MySQL functions (``marmot.sql.functions``): ``DATABASE()``,
``CONNECTION_ID()``, ``@@var`` (``__marmot_sysvar``), ``@var`` and ``LAST_INSERT_ID()`` answer for the
session that runs the statement, and ``__marmot_autoid`` — which the transpiler wraps around an
AUTO_INCREMENT column's value — hands out ids from the node's generator and records the first one the
statement generated, for the OK packet and ``LAST_INSERT_ID()``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, cast

import apsw

from marmot.sql.functions.conversions import FunctionError

if TYPE_CHECKING:
    from marmot.engine.session import Session


class SessionFunctions:
    """The session-bound SQL functions, and the ids the running statement generated."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self.first_generated: int | None = None  # first id __marmot_autoid generated in this statement
        self.last_explicit: int | None = None  # last explicit AUTO_INCREMENT value this statement wrote

    def start_statement(self) -> None:
        self.first_generated = None
        self.last_explicit = None

    def install(self, conn: apsw.Connection) -> None:
        s = self._session
        user_at_host: Callable[[], str] = lambda: f"{s.user}@{s.host}"  # noqa: E731
        table: tuple[tuple[str, Callable[..., object], int], ...] = (
            ("__marmot_autoid", self._autoid, 1),
            ("__marmot_autoid_null", self._autoid_null, 1),
            ("__marmot_sysvar", self._sysvar, 2),
            ("__marmot_uservar", self._uservar, 1),
            ("LAST_INSERT_ID", self._last_insert_id, -1),
            ("DATABASE", lambda: s.database, 0),
            ("SCHEMA", lambda: s.database, 0),
            ("VERSION", lambda: s.ctx.global_variables["version"], 0),
            ("CONNECTION_ID", lambda: s.connection_id, 0),
            ("USER", user_at_host, 0),
            ("SESSION_USER", user_at_host, 0),
            ("SYSTEM_USER", user_at_host, 0),
            ("CURRENT_USER", lambda: f"{s.user}@%", 0),
            ("FOUND_ROWS", lambda: s.variables.get("__found_rows", 0), 0),
            ("ROW_COUNT", lambda: s.variables.get("__row_count", -1), 0),
        )
        for name, fn, nargs in table:
            conn.create_scalar_function(name, fn, nargs, deterministic=False)

    def _autoid(self, value: apsw.SQLiteValue) -> apsw.SQLiteValue:
        if value is None or value == 0 or value == "0":
            new = self._session.ctx.id_generator.next_id()
            if self.first_generated is None:
                self.first_generated = new
            return new
        self.last_explicit = value if isinstance(value, int) else self.last_explicit
        return value

    def _autoid_null(self, value: apsw.SQLiteValue) -> apsw.SQLiteValue:
        return self._autoid(value) if value is None else value

    def _sysvar(self, name: str, scope: str) -> apsw.SQLiteValue:
        s = self._session
        key = name.lower()
        if key in ("last_insert_id", "identity"):
            return s.last_insert_id
        if key == "marmot_last_commit_ts":
            ts = s.last_commit_ts
            return "" if ts is None else f"{ts.wall_ns}.{ts.logical}.{ts.node_id}"
        if scope == "global":
            value = s.ctx.global_variables.get(key)
        else:
            value = s.variables.get(key, s.ctx.global_variables.get(key))
            if key == "autocommit":
                value = 1 if s.autocommit else 0
        if value is None and key not in s.ctx.global_variables and key not in s.variables:
            raise FunctionError(1193, "HY000", f"Unknown system variable '{name}'")
        return cast("apsw.SQLiteValue", value)  # variables hold SQL values (numbers, strings, NULL)

    def _uservar(self, name: str) -> apsw.SQLiteValue:
        return cast("apsw.SQLiteValue", self._session.user_variables.get(name.lower()))

    def _last_insert_id(self, *args: apsw.SQLiteValue) -> apsw.SQLiteValue:
        if args:
            value = args[0]
            self._session.last_insert_id = int(value) if value is not None else 0
            return value
        return self._session.last_insert_id
