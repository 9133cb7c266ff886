"""SQL functions whose value is the session's own state, installed on each of its connections.

Why per session and not node-wide like the MySQL functions (``marmot.sql.functions``): ``DATABASE()``,
``CONNECTION_ID()``, ``@@var`` (``__marmot_sysvar``), ``@var`` and ``LAST_INSERT_ID()`` answer for the
session that runs the statement, and ``__marmot_autoid`` — which the transpiler wraps around an
AUTO_INCREMENT column's value — hands out ids from the node's generator and records the first one the
statement generated, for the OK packet and ``LAST_INSERT_ID()``. ``__marmot_chk`` and ``__marmot_nodef``,
which the transpiler wraps around the values a write stores (``sql/value_checks.py``), apply the
statement's column checks (``column_checks.py``) under the session's ``sql_mode``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, cast

import apsw

from marmot.engine import waiting_functions
from marmot.engine.column_checks import ColumnCheck, StatementChecks, check_value, missing_value
from marmot.sql.functions.conversions import FunctionError

if TYPE_CHECKING:
    from marmot.engine.session import Session


class SessionFunctions:
    """The session-bound SQL functions, and the ids the running statement generated."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self.first_generated: int | None = None  # first id __marmot_autoid generated in this statement
        self.last_explicit: int | None = None  # last explicit AUTO_INCREMENT value this statement wrote
        # The running write's column checks: per table slot of its plan, the columns' checks
        self.checks: StatementChecks | None = None
        self.check_tables: list[tuple[ColumnCheck, ...]] = []
        self.zero_generates = True  # 0 mints an AUTO_INCREMENT id (not under NO_AUTO_VALUE_ON_ZERO)
        self.last_auto_value: object = None  # the AUTO_INCREMENT value the statement last wrote
        self.row_base = 0  # added to a VALUES row number (LOAD DATA runs one row per execution)

    def start_statement(self) -> None:
        self.first_generated = None
        self.last_explicit = None
        self.last_auto_value = None
        self.checks = None
        self.check_tables = []
        self.row_base = 0

    def begin_checks(self, tables: list[tuple[ColumnCheck, ...]], checks: StatementChecks) -> None:
        """The checks the running write's ``__marmot_chk`` calls apply (after ``start_statement``)."""
        self.check_tables = tables
        self.checks = checks
        self.zero_generates = not checks.mode.no_auto_value_on_zero

    def install(self, conn: apsw.Connection) -> None:
        s = self._session
        user_at_host: Callable[[], str] = lambda: f"{s.user}@{s.host}"  # noqa: E731
        table: tuple[tuple[str, Callable[..., object], int], ...] = (
            ("__marmot_autoid", self._autoid, 1),
            ("__marmot_autoid_null", self._autoid_null, 1),
            ("__marmot_chk", self._check, 4),
            ("__marmot_nodef", self._no_default, 3),
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
        for name in waiting_functions.NAMES:  # only the session runs them (waiting_functions.py)
            conn.create_scalar_function(name, waiting_functions.refusing(name), -1, deterministic=False)

    def _column(self, slot: int, column: int, row: int) -> tuple[ColumnCheck, StatementChecks] | None:
        """The check of (table slot, column), with the statement's row number moved on (``row``: n > 0 the
        n-th VALUES row, 0 the next row, -1 the current one)."""
        st = self.checks
        if st is None:
            return None
        if row > 0:
            st.row = row + self.row_base
        elif row == 0:
            st.row += 1
        tables = self.check_tables
        if slot >= len(tables) or column >= len(tables[slot]):
            return None  # the table changed between planning and running (or is TEMPORARY): unchecked
        st.column = column
        return tables[slot][column], st

    def _check(self, value: apsw.SQLiteValue, slot: int, column: int, row: int) -> apsw.SQLiteValue:
        found = self._column(slot, column, row)
        if found is None:
            return value
        st = found[1]
        out = st.stored[column] = check_value(found[0], value, st)
        return out

    def _no_default(self, slot: int, column: int, row: int) -> apsw.SQLiteValue:
        found = self._column(slot, column, row)
        if found is None:
            return None
        out = found[1].stored[column] = missing_value(found[0], found[1])
        return out

    def _autoid(self, value: apsw.SQLiteValue) -> apsw.SQLiteValue:
        if value is None or ((value == 0 or value == "0") and self.zero_generates):
            new = self._session.ctx.id_generator.next_id()
            if self.first_generated is None:
                self.first_generated = new
            self.last_auto_value = new
            return new
        self.last_auto_value = value
        self.last_explicit = value if isinstance(value, int) else self.last_explicit
        return value

    def _autoid_null(self, value: apsw.SQLiteValue) -> apsw.SQLiteValue:
        return self._autoid(value) if value is None else value

    def _sysvar(self, name: str, scope: str) -> apsw.SQLiteValue:
        s = self._session
        key = name.lower()
        if key in ("last_insert_id", "identity"):
            return s.last_insert_id
        if key == "warning_count":
            return len(s.warnings)
        if key == "error_count":
            return sum(1 for level, _code, _message in s.warnings if level == "Error")
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
