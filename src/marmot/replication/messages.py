"""What a replicated transaction carries between nodes, and what every typed message shares.

A transaction's **body** is the part every node keeps (the participants until COMMIT, the commit log
for good): msgpack ``{"v": 1, "kind": "dml"|"ddl"|"dbop", "rows": <encode_transaction bytes>,
"ddl": [SQLite DDL statements], "dbop": ["create"|"drop", name]}``. Row changes stay in
``changes.encode_transaction``'s strict format; DDL travels as the SQLite statements the coordinator
validated (transpiled once, so every node runs exactly the same text against the same schema
version); database operations as an (op, name) pair.

The messages between nodes are typed: one frozen dataclass per request and answer, each with one
``encode()`` and one ``decode(payload)`` — ``commit/txn_messages.py`` (two-phase commit) and ``catchup/sync_messages.py``
(anti-entropy: log pull, repair, snapshots). This module holds what they share: ``MessageError``, the
protocol version, timestamps and the field checks. Every request map carries ``"pv": PROTOCOL_VERSION``;
a request of another version is refused with a ``MessageError`` naming both (a map without ``pv`` is read
as version 1). Answers carry no version: they answer a request of this node's own.

Everything decoded here comes off the network: malformed input raises ``MessageError`` only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import msgpack

from marmot.hlc import LOGICAL_MAX, Timestamp
from marmot.replication.changes import ChangeFormatError, RowChange, decode_transaction

BODY_VERSION = 1
PROTOCOL_VERSION = 1  # "pv" of every request map (see the module docstring)
KINDS = ("dml", "ddl", "dbop")
Version = tuple[int, int, int]


class MessageError(ValueError):
    """A malformed replication message."""


class Request(Protocol):
    """What every request message offers: the RPC method it is sent as, and its request map."""

    method: ClassVar[str]

    def encode(self) -> dict[str, Any]: ...


@dataclass(slots=True)
class Body:
    """A transaction's content, decoded."""

    kind: str
    changes: list[RowChange]
    ddl: list[str]
    dbop: tuple[str, str] | None


def encode_body(
    kind: str, rows: bytes = b"", ddl: list[str] | None = None, dbop: tuple[str, str] | None = None
) -> bytes:
    doc: dict[str, Any] = {"v": BODY_VERSION, "kind": kind}
    if rows:
        doc["rows"] = rows
    if ddl:
        doc["ddl"] = list(ddl)
    if dbop is not None:
        doc["dbop"] = list(dbop)
    packed: bytes = msgpack.packb(doc, use_bin_type=True)
    return packed


def decode_body(data: Any) -> Body:
    if not isinstance(data, bytes):
        raise MessageError("body must be bytes")
    try:
        doc = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as e:  # msgpack raises many kinds
        raise MessageError(f"body is not msgpack: {type(e).__name__}") from None
    if (
        type(doc) is not dict
        or type(doc.get("v")) is not int
        or doc["v"] != BODY_VERSION
        or doc.get("kind") not in KINDS
    ):
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
        if (
            type(dbop) is not list
            or len(dbop) != 2
            or dbop[0] not in ("create", "drop")
            or type(dbop[1]) is not str
            or not dbop[1]
        ):
            raise MessageError("body: bad dbop")
        dbop = (dbop[0], dbop[1])
    if (doc["kind"] == "dbop") != (dbop is not None):
        raise MessageError("body: a dbop body carries exactly one database operation")
    return Body(doc["kind"], changes, ddl, dbop)


def ts_out(ts: Timestamp) -> list[int]:
    return [ts.wall_ns, ts.logical, ts.node_id]


def ts_in(v: Any, what: str = "timestamp") -> Timestamp:
    if (
        type(v) is not list
        or len(v) != 3
        or not all(type(x) is int and x >= 0 for x in v)
        or v[1] > LOGICAL_MAX
        or v[0] >= 1 << 63
    ):
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


def optional(payload: dict[str, Any], name: str, typ: type) -> Any:
    """``payload[name]`` if present and not nil, checked like ``field``; None otherwise."""
    v = payload.get(name)
    if v is not None and type(v) is not typ:
        raise MessageError(f"{name} must be {typ.__name__} or nil")
    return v


def request(payload: Any) -> dict[str, Any]:
    """``payload`` as a request map of the protocol version this node speaks."""
    if type(payload) is not dict:
        raise MessageError("payload must be a map")
    pv = payload.get("pv", PROTOCOL_VERSION)
    if type(pv) is not int:
        raise MessageError("pv (protocol version) must be int")
    if pv != PROTOCOL_VERSION:
        raise MessageError(f"unsupported protocol version {pv} (this node speaks {PROTOCOL_VERSION})")
    return payload


def versioned(fields: dict[str, Any]) -> dict[str, Any]:
    """A request map: ``fields`` with the protocol version."""
    return {"pv": PROTOCOL_VERSION, **fields}


def answer(payload: Any) -> dict[str, Any]:
    """``payload`` as an answer map; an ``{"error": why}`` answer (the peer refused the request) raises
    ``MessageError`` with the peer's reason."""
    if type(payload) is not dict:
        raise MessageError("answer must be a map")
    if "error" in payload:
        raise MessageError(f"peer refused: {payload['error']}")
    return payload


def int_list(payload: dict[str, Any], name: str, limit: int) -> list[int]:
    """``payload[name]``: a list of at most ``limit`` integers."""
    values: list[Any] = field(payload, name, list)
    if len(values) > limit or not all(type(v) is int for v in values):
        raise MessageError(f"{name} must be at most {limit} integers")
    return [int(v) for v in values]


def version_out(v: Version | None) -> list[int] | None:
    return None if v is None else [v[0], v[1], v[2]]
