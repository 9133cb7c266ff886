"""Binary row keys, and the per-table facts (primary key, columns) needed to build them.

A row key names one row of one table across the cluster. It is the unit of everything replication does
per row: write intents conflict on equal keys, the LWW applier keeps one version per key, changes of
one transaction are merged per key, and the CDC publisher uses it as the Kafka/NATS message key. So the
one property that matters is: **two values address the same row exactly when their keys are equal.**

Layout (upstream Marmot v2 ``protocol/filter/intentkey``, §4.3 of the upstream design)::

    0x01 · uvarint(len(table)) · table (utf-8) · uvarint(n) · n × (tag byte + payload)

    tag 0  NULL      no payload
    tag 1  integer   int64, 8 bytes big-endian two's complement
    tag 2  real      float64, 8 bytes big-endian IEEE 754 (-0.0 -> 0.0, every NaN -> one canonical NaN)
    tag 3  text      uvarint(len) + utf-8 bytes
    tag 4  blob      uvarint(len) + bytes

``uvarint`` is unsigned LEB128 (Go's ``binary.PutUvarint``). Two special keys live in the same key
space: ``0xFE`` + table (a table-level DDL intent) and ``0xFF`` + database (a database-op intent).

Decisions, each made so that "same row ⇔ same key" holds:

* **TEXT → tag 3, BLOB → tag 4, always** (the tag follows the SQLite *storage class* of the value, never
  the declared column type). Upstream's hook maps both to tag 4; we do not, because SQLite never treats
  a TEXT and a BLOB as equal (``'a' = x'61'`` is false, and a primary key may hold both): one shared
  tag would give two different rows one key. Distinct tags also let a decoded key be bound back into
  ``WHERE pk IS ?`` and match the row (a BLOB never matches a TEXT column value).
* **Integral reals are encoded as integers** when they fit in int64 (``1.0`` → tag 1 ``1``; ``-0.0`` →
  ``0``). SQLite compares numbers by value (``1 = 1.0`` is true, and a PRIMARY KEY/UNIQUE index rejects
  ``1.0`` next to ``1``), so they must share a key. Non-integral reals, infinities and reals beyond the
  int64 range keep tag 2; NaN (SQLite stores it as NULL, so it never reaches a key from a row) gets one
  canonical bit pattern. Consequence: ``decode`` may return ``1`` for an encoded ``1.0`` — equal in SQL.
* **Collation of the key columns** (``TableSchema.key_values``): MySQL's default collations are
  case-insensitive and our DDL declares text columns ``COLLATE NOCASE``, so ``'Bob'`` and ``'bob'`` are
  the same primary key. Key values of NOCASE columns are ASCII-lower-cased (exactly what NOCASE folds)
  and of RTRIM columns right-trimmed of spaces; BINARY and unknown collations are used as they are.
  The pure ``encode_row_key`` does no folding: it encodes what it is given.
* **Rowid tables** (no declared PRIMARY KEY, or a PRIMARY KEY that is an alias of the rowid) use the
  rowid as the single integer key value. For an INTEGER PRIMARY KEY both are the same number.

``TableSchema``/``SchemaCache`` live here (not in ``engine``) because both the capture side (engine) and
the apply side (replication) need the same answer to "which columns are the key of this table", and
``storage`` is the layer both may import.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import apsw

ROW_KEY_VERSION = 0x01
DDL_KEY_PREFIX = 0xFE
DATABASE_KEY_PREFIX = 0xFF

TAG_NULL = 0
TAG_INT = 1
TAG_FLOAT = 2
TAG_TEXT = 3
TAG_BLOB = 4

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
_TWO_63 = float(1 << 63)
_MAX_UVARINT_BYTES = 10  # a uint64 needs at most 10 LEB128 bytes

_pack_q = struct.Struct(">q").pack
_pack_d = struct.Struct(">d").pack
_unpack_q = struct.Struct(">q").unpack_from
_unpack_d = struct.Struct(">d").unpack_from
_CANONICAL_NAN = b"\x7f\xf8\x00\x00\x00\x00\x00\x00"
_INT_TAG = bytes([TAG_INT])

SqlValue = int | float | str | bytes | None


class RowKeyError(ValueError):
    """A key (or a value for a key) that is not well formed."""


class UnknownTableError(LookupError):
    """The table does not exist (or is not an ordinary table) in the schema asked about."""


# -- uvarint --------------------------------------------------------------------------------------


def uvarint(n: int) -> bytes:
    """Unsigned LEB128 encoding of ``n`` (0 <= n < 2**64)."""
    if n < 0x80:
        if n < 0:
            raise RowKeyError(f"uvarint of a negative number: {n}")
        return bytes((n,))
    if n >> 64:
        raise RowKeyError(f"uvarint out of range: {n}")
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def read_uvarint(data: bytes, pos: int) -> tuple[int, int]:
    """Decode a uvarint at ``pos``; returns (value, next position). Rejects truncated/overlong input."""
    result = 0
    shift = 0
    end = len(data)
    for i in range(_MAX_UVARINT_BYTES):
        if pos >= end:
            raise RowKeyError("truncated uvarint")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            if i and b == 0:
                raise RowKeyError("non-minimal uvarint")  # one value, one encoding: keys compare as bytes
            if result >> 64:
                raise RowKeyError("uvarint overflows 64 bits")
            return result, pos
        shift += 7
    raise RowKeyError("uvarint longer than 10 bytes")


# -- values ---------------------------------------------------------------------------------------


def _encode_value(out: bytearray, v: Any) -> None:
    t = type(v)
    if t is int:
        if v < INT64_MIN or v > INT64_MAX:
            raise RowKeyError(f"integer outside int64 range: {v}")
        out.append(TAG_INT)
        out += _pack_q(v)
    elif t is str:
        b = v.encode("utf-8")
        out.append(TAG_TEXT)
        out += uvarint(len(b))
        out += b
    elif v is None:
        out.append(TAG_NULL)
    elif t is float:
        if v.is_integer() and -_TWO_63 <= v < _TWO_63:
            out.append(TAG_INT)  # 1.0 == 1 and -0.0 == 0 in SQL: same key (module docstring)
            out += _pack_q(int(v))
        else:
            out.append(TAG_FLOAT)
            out += _CANONICAL_NAN if math.isnan(v) else _pack_d(v)
    elif t is bytes or t is bytearray or t is memoryview:
        b = bytes(v)
        out.append(TAG_BLOB)
        out += uvarint(len(b))
        out += b
    elif isinstance(v, bool):  # a bool is an int subclass; SQLite stores it as 0/1
        out.append(TAG_INT)
        out += _pack_q(int(v))
    elif isinstance(v, int):
        _encode_value(out, int(v))
    elif isinstance(v, float):
        _encode_value(out, float(v))
    elif isinstance(v, str):
        _encode_value(out, str(v))
    else:
        raise RowKeyError(f"cannot use a {t.__name__} in a row key")


def key_prefix(table: str, count: int) -> bytes:
    """The bytes every key of ``table`` with ``count`` key values starts with."""
    tb = table.encode("utf-8")
    return bytes((ROW_KEY_VERSION,)) + uvarint(len(tb)) + tb + uvarint(count)


def encode_row_key(table: str, values: Sequence[SqlValue]) -> bytes:
    """The row key of ``table`` for the primary-key ``values`` (in declared PK order, or ``[rowid]``)."""
    if not table:
        raise RowKeyError("empty table name")
    out = bytearray(key_prefix(table, len(values)))
    for v in values:
        _encode_value(out, v)
    return bytes(out)


def encode_values(prefix: bytes, values: Sequence[SqlValue]) -> bytes:
    """``encode_row_key`` with the table part precomputed (``key_prefix``): the per-row fast path."""
    out = bytearray(prefix)
    for v in values:
        _encode_value(out, v)
    return bytes(out)


def encode_rowid_key(prefix: bytes, rowid: int) -> bytes:
    """Key of a rowid table's row: ``prefix`` from ``key_prefix(table, 1)``."""
    return prefix + _INT_TAG + _pack_q(rowid)


def decode_row_key(key: bytes) -> tuple[str, list[SqlValue]]:
    """Inverse of ``encode_row_key``. Strict: anything but one well-formed row key raises RowKeyError."""
    if not isinstance(key, bytes | bytearray | memoryview):
        raise RowKeyError(f"a row key is bytes, not {type(key).__name__}")
    data = bytes(key)
    if not data:
        raise RowKeyError("empty key")
    if data[0] != ROW_KEY_VERSION:
        if data[0] in (DDL_KEY_PREFIX, DATABASE_KEY_PREFIX):
            raise RowKeyError("not a row key (a DDL or database intent key)")
        raise RowKeyError(f"unknown row key version 0x{data[0]:02x}")
    n, pos = read_uvarint(data, 1)
    if n == 0 or pos + n > len(data):
        raise RowKeyError("bad table name length")
    try:
        table = data[pos : pos + n].decode("utf-8")
    except UnicodeDecodeError as e:
        raise RowKeyError(f"table name is not utf-8: {e}") from None
    pos += n
    count, pos = read_uvarint(data, pos)
    if count > len(data):  # each value needs >= 1 byte: cheap bound before allocating anything
        raise RowKeyError("key value count exceeds key length")
    values: list[SqlValue] = []
    end = len(data)
    for _ in range(count):
        if pos >= end:
            raise RowKeyError("truncated key: missing value")
        tag = data[pos]
        pos += 1
        if tag == TAG_INT:
            if pos + 8 > end:
                raise RowKeyError("truncated integer")
            values.append(_unpack_q(data, pos)[0])
            pos += 8
        elif tag in (TAG_TEXT, TAG_BLOB):
            ln, pos = read_uvarint(data, pos)
            if pos + ln > end:
                raise RowKeyError("truncated text/blob")
            raw = data[pos : pos + ln]
            pos += ln
            if tag == TAG_TEXT:
                try:
                    values.append(raw.decode("utf-8"))
                except UnicodeDecodeError as e:
                    raise RowKeyError(f"text value is not utf-8: {e}") from None
            else:
                values.append(raw)
        elif tag == TAG_NULL:
            values.append(None)
        elif tag == TAG_FLOAT:
            if pos + 8 > end:
                raise RowKeyError("truncated real")
            f = _unpack_d(data, pos)[0]
            # One value, one encoding: the encoder never writes integral reals, -0.0 or other NaNs here.
            if (math.isnan(f) and data[pos : pos + 8] != _CANONICAL_NAN) or (
                f.is_integer() and -_TWO_63 <= f < _TWO_63
            ):
                raise RowKeyError(f"non-canonical real in key: {f!r}")
            values.append(f)
            pos += 8
        else:
            raise RowKeyError(f"unknown value tag {tag}")
    if pos != end:
        raise RowKeyError(f"{end - pos} trailing bytes after the key")
    return table, values


def ddl_key(table: str) -> bytes:
    """Intent key of a table-level DDL. ASCII case is folded: SQLite table names are case-insensitive,
    so ``ALTER TABLE Users`` and ``alter table users`` must contend for the same intent."""
    if not table:
        raise RowKeyError("empty table name")
    return bytes((DDL_KEY_PREFIX,)) + _ascii_lower(table).encode("utf-8")


def database_key(db: str) -> bytes:
    """Intent key of a database operation (CREATE/DROP DATABASE). Database names are file names and
    case-sensitive, so they are used as given."""
    if not db:
        raise RowKeyError("empty database name")
    return bytes((DATABASE_KEY_PREFIX,)) + db.encode("utf-8")


def key_kind(key: bytes) -> str:
    """``'row'``, ``'ddl'`` or ``'database'`` by the first byte (no further validation)."""
    if not key:
        raise RowKeyError("empty key")
    first = key[0]
    if first == ROW_KEY_VERSION:
        return "row"
    if first == DDL_KEY_PREFIX:
        return "ddl"
    if first == DATABASE_KEY_PREFIX:
        return "database"
    raise RowKeyError(f"unknown key kind 0x{first:02x}")


# -- collations -----------------------------------------------------------------------------------

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _ascii_lower(s: str) -> str:
    return s.translate(_ASCII_LOWER)


def _fold_nocase(v: SqlValue) -> SqlValue:
    return v.translate(_ASCII_LOWER) if type(v) is str else v


def _fold_rtrim(v: SqlValue) -> SqlValue:
    return v.rstrip(" ") if type(v) is str else v


_FOLDS: dict[str, Callable[[SqlValue], SqlValue]] = {"NOCASE": _fold_nocase, "RTRIM": _fold_rtrim}


# -- table schema ---------------------------------------------------------------------------------


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True, slots=True)
class TableSchema:
    """What capture and apply need to know about one table, read from SQLite itself.

    ``columns`` are the columns a row image carries, in table order: ordinary columns and STORED
    generated columns (the preupdate hook reports exactly these). VIRTUAL generated columns are never
    in an image (SQLite computes them; the hook cannot read them). ``writable`` are the columns an
    applier may write (ordinary columns only).

    ``unique`` lists the UNIQUE indexes other than the primary key that can make two rows with
    *different* keys collide, each as its key columns with the collation the index compares them by
    (upper-cased). The LWW applier resolves such collisions by row version (replication/apply/applier.py):
    ``INSERT OR REPLACE`` alone would silently delete the other row. Left out: indexes covering the
    whole key (two different keys can never share their values), and — a known limit, where REPLACE
    still keeps the later arrival — partial indexes (membership is the index's WHERE clause, which
    the applier does not evaluate), expression indexes and indexes on VIRTUAL generated columns (the
    indexed value is not in a row image). Empty for most tables, so the applier's check costs nothing
    there.
    """

    name: str
    columns: tuple[str, ...]
    writable: frozenset[str]
    pk: tuple[str, ...]  # declared PRIMARY KEY columns in PK order; () when there is none
    pk_index: tuple[int, ...]  # positions of ``pk`` in ``columns``
    rowid_key: bool  # the key is the rowid (no declared PK, or the PK aliases the rowid)
    rowid_alias: str | None  # the INTEGER PRIMARY KEY column, when there is one
    rowid_name: str | None  # how to address the rowid in SQL (None: shadowed by columns, or WITHOUT ROWID)
    without_rowid: bool
    has_virtual: bool  # has VIRTUAL generated columns (the hook cannot read its rows)
    kind: str  # pragma table_list type: 'table', 'shadow' (a virtual table's storage), ...
    prefix: bytes = field(repr=False)  # key_prefix(name, number of key values)
    folds: tuple[Callable[[SqlValue], SqlValue] | None, ...] | None = field(repr=False, default=None)
    unique: tuple[tuple[tuple[str, str], ...], ...] = ()  # per UNIQUE index: ((column, collation), ...)

    def key_values(self, values: Sequence[SqlValue]) -> list[SqlValue]:
        """The key values of a full row image (``columns`` order), collation-folded."""
        vals = [values[i] for i in self.pk_index]
        folds = self.folds
        if folds is not None:
            vals = [f(v) if f is not None else v for f, v in zip(folds, vals, strict=True)]
        return vals

    def key_of(self, values: Sequence[SqlValue]) -> bytes:
        """Row key of a full row image of a table with a declared, non-rowid primary key."""
        return encode_values(self.prefix, self.key_values(values))

    def rowid_key_of(self, rowid: int) -> bytes:
        return encode_rowid_key(self.prefix, rowid)


# Rows of the PRAGMAs read below, as SQLite documents them (apsw types each value as any SQLite value).
_TableListRow = tuple[str, str, str, int, int, int]  # schema, name, type, ncol, wr (WITHOUT ROWID), strict
_TableXInfoRow = tuple[int, str, str, int, Any, int, int]  # cid, name, type, notnull, dflt_value, pk, hidden


def load_table_schema(conn: apsw.Connection, table: str, schema: str = "main") -> TableSchema:
    """Read ``table``'s schema from ``conn`` (PRAGMA table_list / table_xinfo / index_list / index_xinfo)."""
    sch = quote_ident(schema)
    listing = cast(
        list[_TableListRow], conn.execute(f"PRAGMA {sch}.table_list({quote_ident(table)})").fetchall()
    )
    if not listing:
        raise UnknownTableError(f"no such table: {schema}.{table}")
    _schema, name, kind, _ncol, wr, _strict = listing[0]
    if kind not in ("table", "shadow"):
        raise UnknownTableError(f"{schema}.{table} is a {kind}, not a table")
    xinfo = cast(
        list[_TableXInfoRow], conn.execute(f"PRAGMA {sch}.table_xinfo({quote_ident(name)})").fetchall()
    )
    columns: list[str] = []
    writable: set[str] = set()
    pk_pos: list[tuple[int, str]] = []
    has_virtual = False
    for _cid, col, _type, _notnull, _dflt, pk, hidden in xinfo:
        if hidden == 2:  # VIRTUAL generated: not stored, never in an image
            has_virtual = True
            continue
        if hidden == 1:  # hidden column of a virtual table
            continue
        columns.append(col)
        if hidden == 0:
            writable.add(col)
        if pk:
            pk_pos.append((pk, col))
    pk_cols = tuple(c for _, c in sorted(pk_pos))
    pk_index_name = None
    unique_names: list[str] = []
    for _seq, idx_name, is_unique, origin, partial in conn.execute(
        f"PRAGMA {sch}.index_list({quote_ident(name)})"
    ):
        if origin == "pk":
            pk_index_name = idx_name
        elif is_unique and not partial:
            unique_names.append(idx_name)
    without_rowid = bool(wr)
    rowid_alias = pk_cols[0] if len(pk_cols) == 1 and not without_rowid and pk_index_name is None else None
    rowid_key = not without_rowid and (not pk_cols or rowid_alias is not None)
    lower_cols = {row[1].lower() for row in xinfo}  # any column, generated ones too, shadows a rowid name
    rowid_name = None
    if not without_rowid:
        rowid_name = rowid_alias or next(
            (n for n in ("rowid", "_rowid_", "oid") if n not in lower_cols), None
        )
    folds = None
    key_cols: frozenset[tuple[str, str]] | None = (
        None  # (column, collation) pairs a unique index must not cover
    )
    if not rowid_key and pk_index_name is not None:
        colls = dict(_index_key_columns(conn, sch, pk_index_name) or ())
        fl = tuple(_FOLDS.get(colls.get(c, "BINARY")) for c in pk_cols)
        folds = fl if any(f is not None for f in fl) else None
        key_cols = frozenset((c, colls.get(c, "BINARY")) for c in pk_cols)
    stored = set(columns)
    unique: dict[tuple[tuple[str, str], ...], None] = {}  # insertion-ordered set: equal indexes once
    for idx_name in unique_names:
        cols = _index_key_columns(conn, sch, idx_name)
        if not cols or any(c not in stored for c, _ in cols):
            continue  # expression index, or a VIRTUAL generated column: not in a row image
        if rowid_alias is not None and any(c == rowid_alias for c, _ in cols):
            continue  # contains the rowid: two rows never share its values
        if key_cols is not None and key_cols <= set(cols):
            continue  # contains the primary key under the same collations: likewise
        unique[cols] = None
    col_index = {c: i for i, c in enumerate(columns)}
    return TableSchema(
        name=name,
        columns=tuple(columns),
        writable=frozenset(writable),
        pk=pk_cols,
        pk_index=tuple(col_index[c] for c in pk_cols),
        rowid_key=rowid_key,
        rowid_alias=rowid_alias,
        rowid_name=rowid_name,
        without_rowid=without_rowid,
        has_virtual=has_virtual,
        kind=kind,
        prefix=key_prefix(name, 1 if rowid_key else len(pk_cols)),
        folds=folds,
        unique=tuple(unique),
    )


def _index_key_columns(conn: apsw.Connection, sch: str, index: str) -> tuple[tuple[str, str], ...] | None:
    """(column, collation upper-cased) of each key column of ``index``; None if one is an expression."""
    cols: list[tuple[str, str]] = []
    for _seqno, _cid, col, _desc, coll, is_key in conn.execute(
        f"PRAGMA {sch}.index_xinfo({quote_ident(index)})"
    ):
        if is_key:
            if col is None:
                return None
            cols.append((col, (coll or "BINARY").upper()))
    return tuple(cols)


class SchemaCache:
    """``TableSchema`` per table of one database, valid for one schema generation.

    The owner passes the database's current schema generation (``DatabaseManager.generation(db)``,
    bumped by every DDL this node runs) to ``check_generation``; a different number empties the cache,
    so no entry outlives the schema it was read from. Entries are loaded lazily from whichever
    connection asks. Thread safety: dict reads/writes are atomic under the GIL; two threads missing at
    once both load and one result wins, which is harmless (both read the same schema).
    """

    __slots__ = ("generation", "_tables")

    def __init__(self, generation: int = 0) -> None:
        self.generation = generation
        self._tables: dict[str, TableSchema] = {}

    def check_generation(self, generation: int) -> None:
        if generation != self.generation:
            self._tables = {}
            self.generation = generation

    def get(self, conn: apsw.Connection, table: str) -> TableSchema:
        """The schema of ``main.table`` (raises UnknownTableError)."""
        ts = self._tables.get(table)
        if ts is None:
            ts = load_table_schema(conn, table)
            self._tables[table] = ts
        return ts

    def invalidate(self, table: str | None = None) -> None:
        if table is None:
            self._tables = {}
        else:
            self._tables.pop(table, None)
