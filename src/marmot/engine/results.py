"""What executing one statement yields: rows, or an OK summary. The wire layer encodes either."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

# One result column: (name, SQLite declared type or None for expressions), or, for the reads of a plan,
# (name, decltype, database, table, origin column, MySQL column flags) — ``result_columns.py``.
ColumnInfo = tuple[Any, ...]
Row = tuple[Any, ...]  # one row of values, as SQLite returned them


@dataclass(slots=True)
class ResultSet:
    """Rows of a query, and their columns (``ColumnInfo``)."""

    columns: Sequence[ColumnInfo]
    rows: list[Row]
    warnings: int = 0


@dataclass(slots=True)
class OkResult:
    """A statement without rows (MySQL OK packet)."""

    affected_rows: int = 0
    last_insert_id: int = 0
    warnings: int = 0
    info: str = ""


Result = ResultSet | OkResult


@dataclass(slots=True)
class PreparedInfo:
    """What COM_STMT_PREPARE reports: parameter count and result columns (empty for non-queries)."""

    param_count: int
    columns: Sequence[tuple[str, str | None]] = field(default_factory=tuple)
