"""What executing one statement yields: rows, or an OK summary. The wire layer encodes either."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(slots=True)
class ResultSet:
    """Rows of a query. ``columns`` are (name, SQLite declared type or None for expressions)."""

    columns: Sequence[tuple[str, str | None]]
    rows: list[tuple]
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
