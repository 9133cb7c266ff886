"""Debezium JSON envelopes: one committed row change -> one ``OutboundMessage``.

The shape is upstream's (``publisher/transformer/debezium``) so that a consumer written for Debezium's
JSON converter with schemas enabled reads it unchanged::

    {"schema": {"type": "struct", "name": "{db}.{table}.Envelope", "optional": false, "fields": [
         {"field": "before", "type": "struct", "name": "{db}.{table}.Value", "optional": true,
          "fields": [{"field": col, "type": int64|string|double|bytes|boolean, "optional": bool}, ...]},
         {"field": "after", ...same...},
         {"field": "op", "type": "string", "optional": false},
         {"field": "ts_ms", "type": "int64", "optional": true},
         {"field": "source", "type": "struct", "name": "io.marmot.Source", "optional": false,
          "fields": [connector, db, table: string; txId, lsn: int64]}]},
     "payload": {"before": {...} | null, "after": {...} | null, "op": "c"|"u"|"d"|"r",
                 "ts_ms": commit time in ms, "source": {"connector": "marmot", "db", "table", "txId", "lsn"}}}

Why the value fields are taken from the row image and only their *types* from the table: an event
describes exactly the columns its row carried when it was committed, so after ``ALTER TABLE ADD COLUMN``
the new column appears in the schema of every later event, and an event published late (a backlog, a
takeover) still describes its own row. Types follow upstream's mapping of the declared type (INT ->
int64, TEXT -> string, REAL -> double, BLOB -> bytes, BOOL -> boolean, NUMERIC -> double), by SQLite's
affinity rules on our MySQL type names; a column the table no longer has is typed by its value. BLOB
values are base64 strings, as Debezium's JSON converter writes ``bytes``.

``event_id`` is ``{db}:{txn_id}:{row index}`` for a change (the same on every node: the row index is the
position in the transaction's encoded change list) and ``{db}:r:{key}:{version}`` for a snapshot row.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from marmot.publisher.sink import OutboundMessage
from marmot.replication.changes import RowChange

OP_LETTERS = {"INSERT": "c", "UPDATE": "u", "DELETE": "d"}
CONNECTOR = "marmot"

_SOURCE_SCHEMA: dict[str, Any] = {
    "type": "struct",
    "name": "io.marmot.Source",
    "optional": False,
    "field": "source",
    "fields": [
        {"type": "string", "optional": False, "field": "connector"},
        {"type": "string", "optional": False, "field": "db"},
        {"type": "string", "optional": False, "field": "table"},
        {"type": "int64", "optional": False, "field": "txId"},
        {"type": "int64", "optional": False, "field": "lsn"},
    ],
}


@dataclass(frozen=True, slots=True)
class Column:
    """What the schema says about one column: its Debezium type and whether it may be null."""

    type: str
    optional: bool


# table -> column -> Column, as the table is declared now (``TableColumns`` reads it from SQLite)
ColumnLookup = Callable[[str], dict[str, Column]]


def debezium_type(declared: str) -> str:
    """Upstream's type mapping, applied with SQLite's affinity rules to a declared (MySQL) type name."""
    t = declared.upper()
    if "BOOL" in t:
        return "boolean"
    if "INT" in t:  # INT, BIGINT, TINYINT, MEDIUMINT ... (SQLite INTEGER affinity)
        return "int64"
    if (
        "DECIMAL" in t or "NUMERIC" in t
    ):  # stored as exact text (DECIMALTEXT, docs/transpiler.md): upstream's double
        return "double"
    if any(s in t for s in ("CHAR", "CLOB", "TEXT", "ENUM", "SET", "JSON", "DATE", "TIME", "YEAR")):
        return "string"
    if "BLOB" in t or "BINARY" in t or not t:
        return "bytes"
    return "double"  # REAL, FLOAT, DOUBLE, DECIMAL, NUMERIC (upstream: NUMERIC -> double)


def _value_type(v: Any) -> str:
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "int64"
    if isinstance(v, float):
        return "double"
    if isinstance(v, bytes | bytearray | memoryview):
        return "bytes"
    return "string"


def _json_value(v: Any, typ: str) -> Any:
    """A SQLite value as Debezium's JSON converter writes a field of type ``typ``."""
    if v is None:
        return None
    if isinstance(v, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(v)).decode("ascii")
    if typ == "boolean" and isinstance(v, int | float):
        return bool(v)
    if typ == "double" and isinstance(v, int) and not isinstance(v, bool):
        return float(v)
    if typ == "double" and isinstance(v, str):  # an exact DECIMAL's text: a JSON number, as upstream sends it
        try:
            return float(v)
        except ValueError:
            return v
    return v


def _converted(image: dict[str, Any], convert: dict[str, str]) -> dict[str, Any]:
    return {k: (_json_value(v, convert[k]) if k in convert else v) for k, v in image.items()}


def _json_default(v: Any) -> Any:
    """BLOB values (in any column) as base64 strings, as Debezium's JSON converter writes ``bytes``."""
    if isinstance(v, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(v)).decode("ascii")
    raise TypeError(f"cannot encode {type(v).__name__} in a change event")


def row_key(key: bytes) -> bytes:
    """The message key: unpadded base64url of the binary row key (sink.py documents the format)."""
    return base64.urlsafe_b64encode(key).rstrip(b"=")


class EnvelopeBuilder:
    """Builds the messages of one sink; ``columns(db)`` gives the declared columns of that database."""

    def __init__(
        self, topic_prefix: str, *, tombstones: bool, columns: Callable[[str], ColumnLookup]
    ) -> None:
        self.topic_prefix = topic_prefix
        self.tombstones = tombstones
        self.columns = columns
        # (db, table, image columns) -> (declared columns it was built from, schema JSON, columns to convert)
        self._schemas: dict[
            tuple[str, str, tuple[str, ...]], tuple[dict[str, Column], bytes, dict[str, str]]
        ] = {}

    def topic(self, db: str, table: str) -> str:
        return f"{self.topic_prefix}.{db}.{table}"

    def _fields(
        self, image_cols: Iterable[str], declared: dict[str, Column], sample: dict[str, Any]
    ) -> list[Any]:
        out: list[dict[str, Any]] = []
        for col in image_cols:
            c = declared.get(col)
            typ = c.type if c is not None else _value_type(sample.get(col))
            out.append({"type": typ, "optional": True if c is None else c.optional, "field": col})
        return out

    def _schema(
        self, db: str, table: str, image: dict[str, Any], lookup: ColumnLookup
    ) -> tuple[bytes, dict[str, str]]:
        """The envelope's ``schema`` as JSON bytes and the columns whose values need converting (boolean,
        double), cached per table and column list while the table's declared columns stay the same."""
        declared = lookup(table)
        key = (db, table, tuple(image))
        hit = self._schemas.get(key)
        if hit is not None and hit[0] is declared:
            return hit[1], hit[2]
        fields = self._fields(image.keys(), declared, image)
        value_schema = {"type": "struct", "name": f"{db}.{table}.Value", "optional": True, "fields": fields}
        schema = {
            "type": "struct",
            "name": f"{db}.{table}.Envelope",
            "optional": False,
            "fields": [
                {**value_schema, "field": "before"},
                {**value_schema, "field": "after"},
                {"type": "string", "optional": False, "field": "op"},
                {"type": "int64", "optional": True, "field": "ts_ms"},
                _SOURCE_SCHEMA,
            ],
        }
        encoded = json.dumps(schema, separators=(",", ":"), ensure_ascii=False).encode()
        convert = {f["field"]: f["type"] for f in fields if f["type"] in ("boolean", "double")}
        if all(col in declared for col in image):  # typed by the table alone: safe to reuse
            self._schemas[key] = (declared, encoded, convert)
        return encoded, convert

    def envelope(
        self,
        db: str,
        table: str,
        op: str,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        *,
        ts_ms: int,
        txn_id: int,
        lsn: int,
        lookup: ColumnLookup | None = None,
    ) -> bytes:
        """The JSON bytes of one event (``lookup``: the database's declared columns, when the caller
        already has them)."""
        image = after if after is not None else before
        assert image is not None
        schema, convert = self._schema(db, table, image, lookup or self.columns(db))
        if convert:
            before = None if before is None else _converted(before, convert)
            after = None if after is None else _converted(after, convert)
        payload = {
            "before": before,
            "after": after,
            "op": op,
            "ts_ms": ts_ms,
            "source": {"connector": CONNECTOR, "db": db, "table": table, "txId": txn_id, "lsn": lsn},
        }
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=_json_default)
        return b'{"schema":' + schema + b',"payload":' + body.encode() + b"}"

    def change_messages(
        self,
        db: str,
        txn_id: int,
        commit_wall_ns: int,
        lsn: int,
        changes: Sequence[RowChange],
        keep: Callable[[str], bool],
        lookup: ColumnLookup | None = None,
    ) -> list[OutboundMessage]:
        """The messages of one committed transaction, in its row order (tables ``keep`` refuses left out).
        ``lookup``: the database's declared columns, when the caller read them once for many transactions."""
        out: list[OutboundMessage] = []
        ts_ms = commit_wall_ns // 1_000_000
        if lookup is None:
            lookup = self.columns(db)
        for i, ch in enumerate(changes):
            if not keep(ch.table):
                continue
            op = OP_LETTERS[ch.op]
            topic = self.topic(db, ch.table)
            key = row_key(ch.key)
            event_id = f"{db}:{txn_id}:{i}"
            value = self.envelope(
                db, ch.table, op, ch.old, ch.new, ts_ms=ts_ms, txn_id=txn_id, lsn=lsn, lookup=lookup
            )
            out.append(OutboundMessage(topic, key, value, event_id))
            if op == "d" and self.tombstones:
                out.append(OutboundMessage(topic, key, None, event_id + ":t"))
        return out

    def snapshot_message(
        self, db: str, table: str, key: bytes, row: dict[str, Any], version: tuple[int, int, int], lsn: int
    ) -> OutboundMessage:
        """An ``op: "r"`` event for an existing row; its id names the row's version, so the same row read
        by several nodes is one event for a deduplicating broker."""
        wall, logical, node = version
        value = self.envelope(db, table, "r", None, row, ts_ms=wall // 1_000_000, txn_id=0, lsn=lsn)
        rk = row_key(key)
        return OutboundMessage(
            self.topic(db, table), rk, value, f"{db}:r:{rk.decode('ascii')}:{wall}.{logical}.{node}"
        )
