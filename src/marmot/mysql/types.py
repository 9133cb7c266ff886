"""MySQL result-set column metadata for SQLite columns and values.

A MySQL client decides how to convert every value it receives from the column definition: the type code,
the UNSIGNED/BINARY/BLOB flags, the charset (63 = bytes, anything else = text) and the decimals. SQLite
gives us only a declared type string (in our system usually the original MySQL type text, because the DDL
layer keeps it) or, for expressions, nothing but the value. This module turns either into the metadata a
real MySQL server would have sent, so ORMs get ints, Decimals, datetimes and strings where they expect
them.

Declared types are mapped by name first (the MySQL spelling); names we do not know follow SQLite's own
affinity rules (https://sqlite.org/datatype3.html §3.1), since affinity decides what SQLite stores.
``mysql_type_for_decl`` runs for every column of every result set, so it is cached.

Two choices differ from a literal reading of MySQL and are deliberate:

* ``INTEGER`` maps to BIGINT, not INT: it is the spelling SQLite requires for a rowid alias, and our
  AUTO_INCREMENT ids are 53/64-bit. Reporting INT (4 bytes in the binary protocol) would truncate them.
* An unknown type name with NUMERIC affinity (``UUID``, ``STRING``, ``MONEY`` ...) is reported as a
  string, not DECIMAL: SQLite stores non-numeric text in such columns unchanged, and clients parse DECIMAL
  columns with a strict decimal parser that fails on text, while a number sent as text is still usable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache

from .constants import BINARY_CHARSET, UTF8MB4_GENERAL_CI, ColumnFlag, FieldType

__all__ = ["ColumnType", "mysql_type_for_decl", "mysql_type_for_value", "mysql_type_for_values"]

_MBMAXLEN = 4  # bytes per character in utf8mb4: MySQL reports string lengths in bytes
_U32_MAX = 0xFFFFFFFF
_VARCHAR_DEFAULT_BYTES = 65535
_EXPR_STRING_BYTES = 65535 * _MBMAXLEN


@dataclass(frozen=True)
class ColumnType:
    """The part of a column definition that depends on the column's type."""

    type: int
    flags: int
    length: int
    charset: int
    decimals: int

    def __post_init__(self) -> None:
        # Plain ints, not IntEnum/IntFlag members: these are combined and tested per result set, and
        # enum arithmetic costs microseconds per operation on the hot path.
        object.__setattr__(self, "type", int(self.type))
        object.__setattr__(self, "flags", int(self.flags))

    @property
    def unsigned(self) -> bool:
        return bool(self.flags & ColumnFlag.UNSIGNED)

    def with_flags(self, extra: int) -> ColumnType:
        """The same type with more flags (NOT_NULL, PRI_KEY, AUTO_INCREMENT ... from the table schema)."""
        return ColumnType(self.type, self.flags | extra, self.length, self.charset, self.decimals)


def _text(type_code: int, chars: int, flags: int = 0) -> ColumnType:
    return ColumnType(type_code, flags, min(chars * _MBMAXLEN, _U32_MAX), UTF8MB4_GENERAL_CI, 0)


def _binary(type_code: int, length: int, flags: int = 0) -> ColumnType:
    return ColumnType(type_code, flags | ColumnFlag.BINARY, length, BINARY_CHARSET, 0)


# ------------------------------------------------------------------------------- parsing a declaration


@dataclass(frozen=True)
class _Decl:
    base: str  # upper-case type name without arguments or attributes, e.g. "DOUBLE PRECISION"
    args: tuple[str, ...]  # raw arguments inside the first parentheses
    unsigned: bool
    full: str  # whole declaration, upper case (for SQLite's substring affinity rules)


def _split_parens(decl: str) -> tuple[str, str | None, str]:
    """(before, inside, after) of the first parenthesised group, honouring quotes ('a)' in ENUM)."""
    start = decl.find("(")
    if start < 0:
        return decl, None, ""
    quote = ""
    for i in range(start + 1, len(decl)):
        ch = decl[i]
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"`":
            quote = ch
        elif ch == ")":
            return decl[:start], decl[start + 1 : i], decl[i + 1 :]
    return decl[:start], decl[start + 1 :], ""  # unbalanced: take the rest as arguments


def _split_args(inside: str) -> tuple[str, ...]:
    args: list[str] = []
    current: list[str] = []
    quote = ""
    for ch in inside:
        if quote:
            current.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "'\"`":
            quote = ch
            current.append(ch)
        elif ch == ",":
            args.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    args.append("".join(current).strip())
    return tuple(args)


_ATTRIBUTE_WORDS = frozenset({"UNSIGNED", "SIGNED", "ZEROFILL"})
_CLAUSE_WORDS = frozenset({"CHARSET", "COLLATE"})


def _parse_decl(decl: str) -> _Decl:
    before, inside, after = _split_parens(decl)
    words = f"{before} {after}".upper().split()
    base_words: list[str] = []
    unsigned = False
    i = 0
    while i < len(words):
        word = words[i]
        if word in _ATTRIBUTE_WORDS:
            unsigned = unsigned or word != "SIGNED"  # ZEROFILL implies UNSIGNED in MySQL
        elif word in _CLAUSE_WORDS or (word == "CHARACTER" and words[i + 1 : i + 2] == ["SET"]):
            i += 3 if word == "CHARACTER" else 2  # skip the clause and its value
            continue
        else:
            base_words.append(word)
        i += 1
    if len(base_words) > 1 and base_words[-1] == "BINARY":
        base_words.pop()  # "VARCHAR(10) BINARY" is a collation attribute, still text
    args = _split_args(inside) if inside is not None else ()
    return _Decl(" ".join(base_words), args, unsigned, decl.upper())


def _int_arg(args: tuple[str, ...], index: int, default: int) -> int:
    try:
        value = int(args[index])
    except (IndexError, ValueError):
        return default
    return value if value >= 0 else default


def _unquote(arg: str) -> str:
    if len(arg) >= 2 and arg[0] == arg[-1] and arg[0] in "'\"":
        return arg[1:-1].replace(arg[0] * 2, arg[0])
    return arg


# ------------------------------------------------------------------------------------ type builders

_INT_WIDTHS = {  # display width of the type (signed, unsigned)
    FieldType.TINY: (4, 3),
    FieldType.SHORT: (6, 5),
    FieldType.INT24: (9, 8),
    FieldType.LONG: (11, 10),
    FieldType.LONGLONG: (20, 20),
}


def _integer(type_code: FieldType) -> Callable[[_Decl], ColumnType]:
    def build(d: _Decl) -> ColumnType:
        width = _INT_WIDTHS[type_code][1 if d.unsigned else 0]
        flags = ColumnFlag.UNSIGNED if d.unsigned else 0
        return ColumnType(type_code, flags, _int_arg(d.args, 0, width) or width, BINARY_CHARSET, 0)

    return build


def _boolean(d: _Decl) -> ColumnType:
    return ColumnType(FieldType.TINY, 0, 1, BINARY_CHARSET, 0)


def _serial(d: _Decl) -> ColumnType:
    return ColumnType(FieldType.LONGLONG, ColumnFlag.UNSIGNED, 20, BINARY_CHARSET, 0)


def _bit(d: _Decl) -> ColumnType:
    # BIT values live in SQLite as integers; reporting them as BIGINT UNSIGNED gives clients the number.
    return ColumnType(FieldType.LONGLONG, ColumnFlag.UNSIGNED, 20, BINARY_CHARSET, 0)


def _floating(type_code: int) -> Callable[[_Decl], ColumnType]:
    default_length = 12 if type_code == FieldType.FLOAT else 22

    def build(d: _Decl) -> ColumnType:
        flags = ColumnFlag.UNSIGNED if d.unsigned else 0
        if type_code == FieldType.FLOAT and len(d.args) == 1 and _int_arg(d.args, 0, 0) > 24:
            return ColumnType(FieldType.DOUBLE, flags, 22, BINARY_CHARSET, 31)  # FLOAT(p>24) is DOUBLE
        if len(d.args) == 2:
            length, scale = _int_arg(d.args, 0, default_length), _int_arg(d.args, 1, 31)
            return ColumnType(type_code, flags, length, BINARY_CHARSET, min(scale, 31))
        return ColumnType(type_code, flags, default_length, BINARY_CHARSET, 31)

    return build


def _decimal(d: _Decl) -> ColumnType:
    precision = _int_arg(d.args, 0, 10) or 10
    scale = min(_int_arg(d.args, 1, 0), 30)
    length = precision + (1 if scale else 0) + (0 if d.unsigned else 1)
    flags = ColumnFlag.UNSIGNED if d.unsigned else 0
    return ColumnType(FieldType.NEWDECIMAL, flags, length, BINARY_CHARSET, scale)


def _char(type_code: int, default_chars: int) -> Callable[[_Decl], ColumnType]:
    def build(d: _Decl) -> ColumnType:
        return _text(type_code, _int_arg(d.args, 0, default_chars))

    return build


def _text_blob(max_bytes: int) -> Callable[[_Decl], ColumnType]:
    def build(d: _Decl) -> ColumnType:
        return _text(FieldType.BLOB, max_bytes, ColumnFlag.BLOB)

    return build


def _binary_blob(max_bytes: int) -> Callable[[_Decl], ColumnType]:
    def build(d: _Decl) -> ColumnType:
        return _binary(FieldType.BLOB, max_bytes, ColumnFlag.BLOB)

    return build


def _binary_string(type_code: int, default_length: int) -> Callable[[_Decl], ColumnType]:
    def build(d: _Decl) -> ColumnType:
        return _binary(type_code, _int_arg(d.args, 0, default_length))

    return build


def _enum(d: _Decl) -> ColumnType:
    longest = max((len(_unquote(a)) for a in d.args), default=1)
    return _text(FieldType.STRING, max(longest, 1), ColumnFlag.ENUM)


def _set(d: _Decl) -> ColumnType:
    total = sum(len(_unquote(a)) for a in d.args) + max(len(d.args) - 1, 0)
    return _text(FieldType.STRING, max(total, 1), ColumnFlag.SET)


def _json(d: _Decl) -> ColumnType:
    # MySQL sends JSON with the binary charset; clients know to decode it as utf8mb4 anyway.
    return _binary(FieldType.JSON, _U32_MAX, ColumnFlag.BLOB)


def _temporal(type_code: int, base_length: int, extra_flags: int = 0) -> Callable[[_Decl], ColumnType]:
    def build(d: _Decl) -> ColumnType:
        fsp = min(_int_arg(d.args, 0, 0), 6) if type_code != FieldType.DATE else 0
        length = base_length + (fsp + 1 if fsp else 0)
        return ColumnType(type_code, ColumnFlag.BINARY | extra_flags, length, BINARY_CHARSET, fsp)

    return build


def _year(d: _Decl) -> ColumnType:
    flags = ColumnFlag.UNSIGNED | ColumnFlag.ZEROFILL
    return ColumnType(FieldType.YEAR, flags, 4, BINARY_CHARSET, 0)


def _geometry(d: _Decl) -> ColumnType:
    return _binary(FieldType.GEOMETRY, _U32_MAX, ColumnFlag.BLOB)


_NAMED: dict[str, Callable[[_Decl], ColumnType]] = {
    **dict.fromkeys(("TINYINT", "INT1"), _integer(FieldType.TINY)),
    **dict.fromkeys(("BOOL", "BOOLEAN"), _boolean),
    **dict.fromkeys(("SMALLINT", "INT2"), _integer(FieldType.SHORT)),
    **dict.fromkeys(("MEDIUMINT", "MIDDLEINT", "INT3"), _integer(FieldType.INT24)),
    **dict.fromkeys(("INT", "INT4"), _integer(FieldType.LONG)),
    **dict.fromkeys(("INTEGER", "BIGINT", "INT8", "BIG INT"), _integer(FieldType.LONGLONG)),
    "SERIAL": _serial,
    "BIT": _bit,
    **dict.fromkeys(("FLOAT", "FLOAT4"), _floating(FieldType.FLOAT)),
    **dict.fromkeys(("DOUBLE", "DOUBLE PRECISION", "REAL", "FLOAT8"), _floating(FieldType.DOUBLE)),
    # DECIMALTEXT: how sql/ddl.py spells an exact DECIMAL for SQLite (TEXT affinity)
    **dict.fromkeys(("DECIMAL", "DEC", "NUMERIC", "FIXED", "DECIMALTEXT"), _decimal),
    **dict.fromkeys(
        ("CHAR", "CHARACTER", "NCHAR", "NATIONAL CHAR", "NATIONAL CHARACTER"), _char(FieldType.STRING, 1)
    ),
    **dict.fromkeys(
        (
            "VARCHAR",
            "VARCHARACTER",
            "NVARCHAR",
            "CHAR VARYING",
            "CHARACTER VARYING",
            "VARYING CHARACTER",
            "NATIONAL VARCHAR",
            "NATIONAL CHAR VARYING",
            "NATIONAL CHARACTER VARYING",
            "NATIVE CHARACTER",
        ),
        _char(FieldType.VAR_STRING, _VARCHAR_DEFAULT_BYTES // _MBMAXLEN),
    ),
    "TINYTEXT": _text_blob(255),
    "TEXT": _text_blob(65535),
    **dict.fromkeys(("MEDIUMTEXT", "LONG", "LONG VARCHAR"), _text_blob(16777215)),
    **dict.fromkeys(("LONGTEXT", "CLOB"), _text_blob(_U32_MAX)),
    "TINYBLOB": _binary_blob(255),
    "BLOB": _binary_blob(65535),
    **dict.fromkeys(("MEDIUMBLOB", "LONG VARBINARY"), _binary_blob(16777215)),
    "LONGBLOB": _binary_blob(_U32_MAX),
    "BINARY": _binary_string(FieldType.STRING, 1),
    "VARBINARY": _binary_string(FieldType.VAR_STRING, _VARCHAR_DEFAULT_BYTES),
    "ENUM": _enum,
    "SET": _set,
    "JSON": _json,
    "DATE": _temporal(FieldType.DATE, 10),
    "DATETIME": _temporal(FieldType.DATETIME, 19),
    "TIMESTAMP": _temporal(FieldType.TIMESTAMP, 19, ColumnFlag.TIMESTAMP),
    "TIME": _temporal(FieldType.TIME, 10),
    "YEAR": _year,
    **dict.fromkeys(
        (
            "GEOMETRY",
            "POINT",
            "LINESTRING",
            "POLYGON",
            "MULTIPOINT",
            "MULTILINESTRING",
            "MULTIPOLYGON",
            "GEOMETRYCOLLECTION",
            "GEOMCOLLECTION",
        ),
        _geometry,
    ),
}

# A column with no declared type (or an expression): SQLite stores anything; a string is the safe guess.
_UNTYPED = ColumnType(FieldType.VAR_STRING, 0, _EXPR_STRING_BYTES, UTF8MB4_GENERAL_CI, 0)


def _by_affinity(d: _Decl) -> ColumnType:
    """SQLite's affinity rules, in SQLite's order, for a type name we do not know."""
    full = d.full
    if "INT" in full:
        return _integer(FieldType.LONGLONG)(_Decl(d.base, (), d.unsigned, full))
    if "CHAR" in full or "CLOB" in full or "TEXT" in full:
        return _text(FieldType.VAR_STRING, _int_arg(d.args, 0, _EXPR_STRING_BYTES // _MBMAXLEN))
    if "BLOB" in full:
        return _binary(FieldType.BLOB, 65535, ColumnFlag.BLOB)
    if "REAL" in full or "FLOA" in full or "DOUB" in full:
        return _floating(FieldType.DOUBLE)(_Decl(d.base, (), d.unsigned, full))
    return _UNTYPED  # NUMERIC affinity: see the module docstring for why this is a string


@lru_cache(maxsize=4096)
def mysql_type_for_decl(decltype: str | None) -> ColumnType:
    """Column metadata for a SQLite declared type (usually the original MySQL type text)."""
    if not decltype or not decltype.strip():
        return _UNTYPED
    decl = _parse_decl(decltype.strip())
    builder = _NAMED.get(decl.base)
    return builder(decl) if builder is not None else _by_affinity(decl)


# ------------------------------------------------------------------------------------ from values

_NULL_TYPE = ColumnType(FieldType.NULL, ColumnFlag.BINARY, 0, BINARY_CHARSET, 0)
_INT_EXPR = ColumnType(FieldType.LONGLONG, ColumnFlag.BINARY, 21, BINARY_CHARSET, 0)
_DOUBLE_EXPR = ColumnType(FieldType.DOUBLE, ColumnFlag.BINARY, 23, BINARY_CHARSET, 31)
_BLOB_EXPR = ColumnType(FieldType.BLOB, ColumnFlag.BINARY | ColumnFlag.BLOB, 65535, BINARY_CHARSET, 0)
_DECIMAL_EXPR = ColumnType(FieldType.NEWDECIMAL, ColumnFlag.BINARY, 67, BINARY_CHARSET, 30)
_DATETIME_EXPR = ColumnType(FieldType.DATETIME, ColumnFlag.BINARY, 26, BINARY_CHARSET, 6)
_DATE_EXPR = ColumnType(FieldType.DATE, ColumnFlag.BINARY, 10, BINARY_CHARSET, 0)
_TIME_EXPR = ColumnType(FieldType.TIME, ColumnFlag.BINARY, 17, BINARY_CHARSET, 6)


def mysql_type_for_value(v: object) -> ColumnType:
    """Column metadata for an expression column, guessed from one value.

    None gives MySQL's own answer for ``SELECT NULL`` (type NULL). Use ``mysql_type_for_values`` when
    more rows are available, so a column that starts with NULL is typed by its first real value.
    """
    if v is None:
        return _NULL_TYPE
    if isinstance(v, int):
        return _INT_EXPR
    if isinstance(v, float):
        return _DOUBLE_EXPR
    if isinstance(v, bytes | bytearray | memoryview):
        return _BLOB_EXPR
    if isinstance(v, Decimal):
        return _DECIMAL_EXPR
    if isinstance(v, datetime):
        return _DATETIME_EXPR
    if isinstance(v, date):
        return _DATE_EXPR
    if isinstance(v, time | timedelta):
        return _TIME_EXPR
    return _UNTYPED


def mysql_type_for_values(values: Iterable[object]) -> ColumnType:
    """Column metadata from the first non-NULL value; type NULL only if every value is NULL.

    Pass the whole column: a NULL-typed column cannot carry values in the binary protocol (the row
    encoder sends NULL for them), so a caller that sees only a prefix of the rows should fall back to
    ``mysql_type_for_decl(None)`` (a string column) instead of trusting an all-NULL prefix.
    """
    for v in values:
        if v is not None:
            return mysql_type_for_value(v)
    return _NULL_TYPE
