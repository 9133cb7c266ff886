"""What a replicated transaction carries between nodes, and the 2PC messages around it.

A transaction's **body** is the part every node keeps (the participants until COMMIT, the commit log
for good): msgpack ``{"v": 1, "kind": "dml"|"ddl"|"dbop", "rows": <encode_transaction bytes>,
"ddl": [SQLite DDL statements], "dbop": ["create"|"drop", name]}``. Row changes stay in
``changes.encode_transaction``'s strict format; DDL travels as the SQLite statements the coordinator
validated (transpiled once, so every node runs exactly the same text against the same schema
version); database operations as an (op, name) pair.

RPC payloads (msgpack maps, short keys; the RPC layer adds deadlines and authentication):

* ``txn_prepare {db, txn, ts, coord, body, bv, sv, tv?, dt?}`` → ``{ok, ts, conflict?, reject?}``.
  ``ts`` is the coordinator's HLC at the start, ``bv`` the row version the coordinator's dry run saw
  for each change (None: no version) — a participant holding a newer version for a key rejects with
  a conflict, because the coordinator computed its images from data that has been overwritten since.
  ``sv`` is the database's schema version the statement was planned against; ``tv`` (DML) maps every
  table the transaction changes (lower-cased) to its schema fingerprint as planned
  (``storage.schema_fingerprint``; None: no such table); ``dt`` (DDL) lists the tables the DDL changes.
* ``txn_commit {db, txn, cts}`` → ``{ok, err?}`` after the participant applied it durably.
* ``txn_abort {db, txn}`` → ``{ok}``.
* ``txn_status {db, txn}`` → ``{state: committed|prepared|pending|aborted|unknown, cts?}``.

Everything decoded here comes off the network: malformed input raises ``MessageError`` only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

from marmot.hlc import LOGICAL_MAX, Timestamp
from marmot.replication.changes import ChangeFormatError, RowChange, decode_transaction

BODY_VERSION = 1
KINDS = ("dml", "ddl", "dbop")
Version = tuple[int, int, int]


class MessageError(ValueError):
    """A malformed replication message."""


@dataclass(slots=True)
class Body:
    """A transaction's content, decoded."""

    kind: str
    changes: list[RowChange]
    ddl: list[str]
    dbop: tuple[str, str] | None


def encode_body(kind: str, rows: bytes = b"", ddl: list[str] | None = None,
                dbop: tuple[str, str] | None = None) -> bytes:
    doc: dict[str, Any] = {"v": BODY_VERSION, "kind": kind}
    if rows:
        doc["rows"] = rows
    if ddl:
        doc["ddl"] = list(ddl)
    if dbop is not None:
        doc["dbop"] = list(dbop)
    return msgpack.packb(doc, use_bin_type=True)


def decode_body(data: Any) -> Body:
    if not isinstance(data, bytes):
        raise MessageError("body must be bytes")
    try:
        doc = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as e:  # msgpack raises many kinds
        raise MessageError(f"body is not msgpack: {type(e).__name__}") from None
    if type(doc) is not dict or type(doc.get("v")) is not int or doc["v"] != BODY_VERSION \
            or doc.get("kind") not in KINDS:
        raise MessageError("body: bad version or kind")
    changes: list[RowChange] = []
    rows = doc.get("rows")
    if rows is not None:
        if type(rows) is not bytes:
            raise MessageError("body: rows must be bytes")
        try:
            changes = decode_transaction(rows).changes
        except ChangeFormatError as e:
            raise MessageError(f"body: {e}") from None
    ddl = doc.get("ddl", [])
    if type(ddl) is not list or not all(type(s) is str and s for s in ddl):
        raise MessageError("body: ddl must be a list of statements")
    dbop = doc.get("dbop")
    if dbop is not None:
        if (type(dbop) is not list or len(dbop) != 2 or dbop[0] not in ("create", "drop")
                or type(dbop[1]) is not str or not dbop[1]):
            raise MessageError("body: bad dbop")
        dbop = (dbop[0], dbop[1])
    if (doc["kind"] == "dbop") != (dbop is not None):
        raise MessageError("body: a dbop body carries exactly one database operation")
    return Body(doc["kind"], changes, ddl, dbop)


def ts_out(ts: Timestamp) -> list[int]:
    return [ts.wall_ns, ts.logical, ts.node_id]


def ts_in(v: Any, what: str = "timestamp") -> Timestamp:
    if (type(v) is not list or len(v) != 3 or not all(type(x) is int and x >= 0 for x in v)
            or v[1] > LOGICAL_MAX or v[0] >= 1 << 63):
        raise MessageError(f"{what} must be [wall_ns, logical, node_id]")
    return Timestamp(v[0], v[1], v[2])


def version_in(v: Any) -> Version | None:
    if v is None:
        return None
    t = ts_in(v, "base version")
    return (t.wall_ns, t.logical, t.node_id)


def field(payload: Any, name: str, typ: type) -> Any:
    """``payload[name]`` checked to be of type ``typ`` (bool is not an int here)."""
    if type(payload) is not dict:
        raise MessageError("payload must be a map")
    v = payload.get(name)
    if type(v) is not typ:
        raise MessageError(f"{name} must be {typ.__name__}")
    return v
