"""Row changes of one transaction: the in-memory type and the wire format.

Path: ``engine.capture.ChangeCapture`` produces ``RowChange``s on the coordinator → ``encode_transaction``
puts them in the 2PC PREPARE (and later the commit log) → each participant ``decode_transaction``s →
at COMMIT ``apply.rows.apply_changes`` writes them into its copy of the database (the LWW applier wraps
it with row versions; see README.md in this folder).

``RowChange`` is defined here, not next to the capture, because the replication layer is its real
consumer (wire format, intents, apply, publisher) and the layering is ``engine -> replication``: the
engine imports this type, the replication layer never imports the engine.

Wire format (msgpack; short entry keys as upstream §4.2, values msgpack-native)::

    {"v": 1, "txn_id": int, "db": str, "hlc": [wall_ns, logical, node_id],
     "changes": [{"t": table, "o": op, "k": row key, "ov": {col: value}, "nv": {col: value}}, ...]}

``o`` is 1 INSERT, 2 UPDATE, 3 DELETE. ``ov`` is present exactly for UPDATE/DELETE and ``nv`` for
INSERT/UPDATE. Values are int (int64), float, str, bytes or nil — the storage classes of SQLite, so
TEXT and BLOB stay apart and a float stays a float. Unlike upstream, a value is not msgpack-encoded a
second time inside the map (that only cost bytes and a second decode per value).

Decoding is strict: anything malformed — wrong types, a key that is not a row key of the entry's table,
images that do not match the op, trailing bytes, ext types — raises ``ChangeFormatError`` and never
anything else, because the input comes from the network.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import msgpack

from marmot.hlc import LOGICAL_MAX, Timestamp, to_txn_id
from marmot.storage.rowkey import (
    INT64_MAX,
    INT64_MIN,
    RowKeyError,
    SqlValue,
    decode_row_key,
)

Op = Literal["INSERT", "UPDATE", "DELETE"]
FORMAT_VERSION = 1
OP_CODES: dict[str, int] = {"INSERT": 1, "UPDATE": 2, "DELETE": 3}
OP_NAMES: dict[int, Op] = {1: "INSERT", 2: "UPDATE", 3: "DELETE"}
_UINT64_MAX = (1 << 64) - 1
_WALL_MAX = INT64_MAX


class RowChange(NamedTuple):
    """The net change of one row in one transaction.

    ``old`` is the row before the transaction (None for INSERT), ``new`` the row after it (None for
    DELETE); both map column name → value for every stored column. ``key`` is the row key
    (``storage.rowkey``); for UPDATE the old and the new key are the same (a primary-key change is a
    DELETE of the old key plus an INSERT of the new one). A NamedTuple: cheap to build by the thousand
    and immutable (the images are plain dicts: do not mutate them).
    """

    table: str
    op: Op
    key: bytes
    old: dict[str, SqlValue] | None
    new: dict[str, SqlValue] | None


@dataclass(frozen=True, slots=True)
class TransactionChanges:
    """One transaction's changes as they travel between nodes."""

    txn_id: int
    db: str
    hlc: Timestamp
    changes: list[RowChange]


class ChangeFormatError(ValueError):
    """Bytes that are not a well-formed encoded transaction."""


# -- encode ---------------------------------------------------------------------------------------


def _entry(c: RowChange) -> dict[str, Any]:
    e: dict[str, Any] = {"t": c.table, "o": OP_CODES[c.op], "k": c.key}
    if c.old is not None:
        e["ov"] = c.old
    if c.new is not None:
        e["nv"] = c.new
    return e


def encode_transaction(
    db: str, hlc: Timestamp, changes: Iterable[RowChange], txn_id: int | None = None
) -> bytes:
    """msgpack bytes of one transaction. ``txn_id`` defaults to ``to_txn_id(hlc)`` (the coordinator
    may pass the id it minted at BEGIN with a later commit timestamp)."""
    if txn_id is None:
        txn_id = to_txn_id(hlc)
    doc = {
        "v": FORMAT_VERSION,
        "txn_id": txn_id,
        "db": db,
        "hlc": [hlc.wall_ns, hlc.logical, hlc.node_id],
        "changes": [_entry(c) for c in changes],
    }
    try:
        packed: bytes = msgpack.packb(doc, use_bin_type=True, strict_types=True)
        return packed
    except (TypeError, ValueError, OverflowError) as e:
        raise ChangeFormatError(f"cannot encode transaction: {e}") from e


# -- decode ---------------------------------------------------------------------------------------


def _fail(msg: str) -> ChangeFormatError:
    return ChangeFormatError(msg)


def _check_int(v: Any, lo: int, hi: int, what: str) -> int:
    if type(v) is not int or not lo <= v <= hi:
        raise _fail(f"{what} must be an integer in [{lo}, {hi}], got {v!r}")
    return v


def _check_image(img: Any, what: str) -> dict[str, SqlValue]:
    if type(img) is not dict or not img:
        raise _fail(f"{what} must be a non-empty map")
    for col, v in img.items():
        if type(col) is not str or not col:
            raise _fail(f"{what}: column names must be non-empty strings, got {col!r}")
        t = type(v)
        if t is int:
            if not INT64_MIN <= v <= INT64_MAX:
                raise _fail(f"{what}.{col}: integer outside int64")
        elif not (v is None or t is str or t is bytes or t is float):
            raise _fail(f"{what}.{col}: unsupported value type {t.__name__}")
    return img


def _decode_entry(e: Any, i: int) -> RowChange:
    if type(e) is not dict:
        raise _fail(f"change {i}: not a map")
    extra = e.keys() - {"t", "o", "k", "ov", "nv"}
    if extra:
        raise _fail(f"change {i}: unknown fields {sorted(map(str, extra))}")
    table = e.get("t")
    if type(table) is not str or not table:
        raise _fail(f"change {i}: 't' must be a non-empty string")
    code = e.get("o")
    op = OP_NAMES.get(code) if type(code) is int else None
    if op is None:
        raise _fail(f"change {i}: 'o' must be 1, 2 or 3, got {e.get('o')!r}")
    key = e.get("k")
    if type(key) is not bytes:
        raise _fail(f"change {i}: 'k' must be bytes")
    try:
        key_table, _values = decode_row_key(key)
    except RowKeyError as err:
        raise _fail(f"change {i}: bad row key: {err}") from None
    if key_table != table:
        raise _fail(f"change {i}: key is for table {key_table!r}, entry for {table!r}")
    has_old, has_new = "ov" in e, "nv" in e
    if has_old != (op != "INSERT") or has_new != (op != "DELETE"):
        want = {"INSERT": "'nv' only", "UPDATE": "'ov' and 'nv'", "DELETE": "'ov' only"}[op]
        raise _fail(f"change {i}: {op} must carry {want}")
    old = _check_image(e["ov"], f"change {i} ov") if has_old else None
    new = _check_image(e["nv"], f"change {i} nv") if has_new else None
    return RowChange(table, op, key, old, new)


def decode_transaction(data: bytes) -> TransactionChanges:
    """Inverse of ``encode_transaction``. Raises ``ChangeFormatError`` (only) on malformed input."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise _fail(f"expected bytes, got {type(data).__name__}")
    try:
        doc = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True, timestamp=0)
    except Exception as e:  # msgpack raises many kinds (ExtraData, FormatError, StackError, Unicode...)
        raise _fail(f"not a msgpack document: {type(e).__name__}: {e}") from None
    if type(doc) is not dict:
        raise _fail("transaction must be a map")
    if doc.keys() != {"v", "txn_id", "db", "hlc", "changes"}:
        raise _fail(f"transaction fields {sorted(map(str, doc.keys()))} != v, txn_id, db, hlc, changes")
    if doc["v"] != FORMAT_VERSION or type(doc["v"]) is not int:
        raise _fail(f"unsupported format version {doc['v']!r}")
    txn_id = _check_int(doc["txn_id"], 0, _UINT64_MAX, "txn_id")
    db = doc["db"]
    if type(db) is not str or not db:
        raise _fail("db must be a non-empty string")
    hlc = doc["hlc"]
    if type(hlc) is not list or len(hlc) != 3:
        raise _fail("hlc must be [wall_ns, logical, node_id]")
    ts = Timestamp(
        _check_int(hlc[0], 0, _WALL_MAX, "hlc wall_ns"),
        _check_int(hlc[1], 0, LOGICAL_MAX, "hlc logical"),
        _check_int(hlc[2], 0, _UINT64_MAX, "hlc node_id"),
    )
    changes = doc["changes"]
    if type(changes) is not list:
        raise _fail("changes must be a list")
    return TransactionChanges(txn_id, db, ts, [_decode_entry(e, i) for i, e in enumerate(changes)])
