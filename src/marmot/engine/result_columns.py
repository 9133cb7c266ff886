"""The columns of a read's result, as MySQL clients need them, and their caches.

Why this is work: apsw exposes a statement's column metadata (declared type, database, table, origin
column) only while the statement runs, through an exec trace, and asking for it costs on every statement.
So a plan's columns are traced on its first run and kept per plan and schema generation; later runs use
an untraced cursor. Where a column comes from a table, clients learn its table and its key / NOT NULL /
AUTO_INCREMENT flags (GUIs need them to edit result rows).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import apsw

from marmot.sql.transpiler import Plan

if TYPE_CHECKING:
    from marmot.engine.session import Session

# (name, decltype, database, table, origin column, flags): what the wire layer encodes
Column = tuple[str, str | None, str | None, str | None, str | None, int]
Description = tuple[tuple[str, str, str, str, str], ...]  # apsw's description_full


class ResultColumns:
    """Result columns of the reads of one session's plans."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self.description: Description | None = None  # of the statement last traced
        self._by_description: dict[tuple[object, ...], list[Column]] = {}
        self._by_plan: dict[
            int, tuple[Plan, tuple[object, ...], list[Column]]
        ] = {}  # id(plan) -> (plan, stamp, columns)
        self._stamp: tuple[object, ...] = ()

    def trace(self, cursor: apsw.Cursor, sql: str, bindings: object) -> bool:
        """exec_trace hook: apsw only exposes column metadata while a statement is active."""
        self.description = cursor.description_full
        return True

    def known(self, plan: Plan) -> list[Column] | None:
        """The columns of ``plan`` if an earlier run traced them under the current schemas."""
        s = self._session
        generation = s.ctx.databases.generation
        self._stamp = (s.database, generation(s.database or ""), *[generation(db) for db in plan.attach])
        known = self._by_plan.get(id(plan))
        if known is None or known[0] is not plan or known[1] != self._stamp:
            return None
        return known[2]

    def of_plan(self, plan: Plan) -> list[Column]:
        """The columns of the run of ``plan`` just traced (after ``known`` said None), kept for later runs."""
        description = self.of_description(self.description) if self.description else []
        if plan.result_types and len(plan.result_types) == len(description):
            description = [
                (c[0], c[1] or rt, *c[2:]) for c, rt in zip(description, plan.result_types, strict=True)
            ]
        if self.description is not None:
            if len(self._by_plan) > 1024:
                self._by_plan.clear()
            self._by_plan[id(plan)] = (plan, self._stamp, description)
        return description

    def of_description(self, description: Description) -> list[Column]:
        """Result columns as (name, decltype, database, table, origin column, flags). Cached per
        description and schema generation."""
        s = self._session
        databases = s.ctx.databases
        key = (description, s.database, databases.generation(s.database or ""))
        cols = self._by_description.get(key)
        if cols is None:
            cols = []
            for name, decl, schema, table, origin in description:
                db = s.database if schema == "main" else schema
                flags = 0
                if table and origin and db and db not in ("temp", "information_schema"):
                    flags = databases.column_flags(db, table).get(origin, 0)
                cols.append((name, decl, db if table else None, table, origin, flags))
            if len(self._by_description) > 256:
                self._by_description.clear()
            self._by_description[key] = cols
        return cols
