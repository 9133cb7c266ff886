"""``sql_mode``: the names MySQL 8.0 knows, their canonical order, and the flags a write's checks read.

Why its own module: ``SET [GLOBAL|SESSION] sql_mode`` must store the value the way MySQL shows it back
(upper case, combination modes expanded, MySQL's order, unknown names refused with 1231), and every
write statement needs the mode's flags — parsed once per distinct mode string, not per statement.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

# MySQL 8.0's modes in the order it lists them (the order of their bits)
_ORDER = (
    "REAL_AS_FLOAT",
    "PIPES_AS_CONCAT",
    "ANSI_QUOTES",
    "IGNORE_SPACE",
    "ONLY_FULL_GROUP_BY",
    "NO_UNSIGNED_SUBTRACTION",
    "NO_DIR_IN_CREATE",
    "ANSI",
    "NO_AUTO_VALUE_ON_ZERO",
    "NO_BACKSLASH_ESCAPES",
    "STRICT_TRANS_TABLES",
    "STRICT_ALL_TABLES",
    "NO_ZERO_IN_DATE",
    "NO_ZERO_DATE",
    "ALLOW_INVALID_DATES",
    "ERROR_FOR_DIVISION_BY_ZERO",
    "TRADITIONAL",
    "HIGH_NOT_PRECEDENCE",
    "NO_ENGINE_SUBSTITUTION",
    "PAD_CHAR_TO_FULL_LENGTH",
    "TIME_TRUNCATE_FRACTIONAL",
)
# Names MySQL 5.7 and MariaDB know: accepted (dumps made there set them) and kept, with no effect
_LEGACY = (
    "NO_AUTO_CREATE_USER",
    "NO_FIELD_OPTIONS",
    "NO_KEY_OPTIONS",
    "NO_TABLE_OPTIONS",
    "MYSQL323",
    "MYSQL40",
    "POSTGRESQL",
    "ORACLE",
    "MSSQL",
    "DB2",
    "MAXDB",
    "EMPTY_STRING_IS_NULL",
    "SIMULTANEOUS_ASSIGNMENT",
    "TIME_ROUND_FRACTIONAL",
)
_COMBINATIONS = {
    "ANSI": ("REAL_AS_FLOAT", "PIPES_AS_CONCAT", "ANSI_QUOTES", "IGNORE_SPACE", "ONLY_FULL_GROUP_BY"),
    "TRADITIONAL": (
        "STRICT_TRANS_TABLES",
        "STRICT_ALL_TABLES",
        "NO_ZERO_IN_DATE",
        "NO_ZERO_DATE",
        "ERROR_FOR_DIVISION_BY_ZERO",
        "NO_ENGINE_SUBSTITUTION",
    ),
}
_RANK = {name: i for i, name in enumerate(_ORDER + _LEGACY)}


class InvalidMode(ValueError):
    """A name that is no sql_mode (MySQL: 1231)."""


def normalize(value: object) -> str:
    """``value`` as MySQL stores and shows it: ``'traditional'`` -> ``STRICT_TRANS_TABLES,...,TRADITIONAL,...``."""
    text = "" if value is None else str(value)
    names: set[str] = set()
    for part in text.split(","):
        name = part.strip().upper()
        if not name:
            continue
        if name not in _RANK:
            raise InvalidMode(f"Variable 'sql_mode' can't be set to the value of '{part.strip()}'")
        names.add(name)
        names.update(_COMBINATIONS.get(name, ()))
    return ",".join(sorted(names, key=_RANK.__getitem__))


@dataclass(frozen=True, slots=True)
class ModeFlags:
    """What the column checks of a write read from the mode."""

    strict: bool  # STRICT_TRANS_TABLES or STRICT_ALL_TABLES (every Marmot table is transactional)
    no_zero_date: bool
    no_zero_in_date: bool
    allow_invalid_dates: bool
    no_auto_value_on_zero: bool


@functools.lru_cache(maxsize=64)
def flags(mode: str) -> ModeFlags:
    """The flags of a stored (normalized) mode string; cached, since sessions share a handful of modes."""
    names = {n.strip().upper() for n in mode.split(",")}
    return ModeFlags(
        strict=bool(names & {"STRICT_TRANS_TABLES", "STRICT_ALL_TABLES"}),
        no_zero_date="NO_ZERO_DATE" in names,
        no_zero_in_date="NO_ZERO_IN_DATE" in names,
        allow_invalid_dates="ALLOW_INVALID_DATES" in names,
        no_auto_value_on_zero="NO_AUTO_VALUE_ON_ZERO" in names,
    )
