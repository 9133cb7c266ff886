"""The Debezium envelope builder (publisher/envelope.py): type mapping, event ids, keys, tombstones."""

from __future__ import annotations

import base64
import json

import pytest

from marmot.config_schema import SinkConfig
from marmot.publisher.envelope import Column, EnvelopeBuilder, debezium_type, row_key
from marmot.publisher.sink import wants_tombstones
from marmot.replication.changes import RowChange
from marmot.storage.rowkey import encode_row_key


@pytest.mark.parametrize(
    ("declared", "expected"),
    [
        ("INT", "int64"),
        ("BIGINT UNSIGNED", "int64"),
        ("TINYINT", "int64"),
        ("BOOLEAN", "boolean"),
        ("VARCHAR(64)", "string"),
        ("TEXT", "string"),
        ("DATETIME", "string"),
        ("ENUM('a','b')", "string"),
        ("DOUBLE", "double"),
        ("DECIMAL(10,2)", "double"),
        ("NUMERIC", "double"),
        ("BLOB", "bytes"),
        ("VARBINARY(16)", "bytes"),
        ("", "bytes"),
    ],
)
def test_declared_types_map_as_upstream(declared: str, expected: str) -> None:
    assert debezium_type(declared) == expected


COLUMNS = {"id": Column("int64", False), "name": Column("string", True), "ok": Column("boolean", True)}


def builder(tombstones: bool) -> EnvelopeBuilder:
    return EnvelopeBuilder("cdc", tombstones=tombstones, columns=lambda db: lambda table: COLUMNS)


def changes() -> list[RowChange]:
    key = encode_row_key("t", [1])
    return [
        RowChange("t", "INSERT", key, None, {"id": 1, "name": "a", "ok": 1}),
        RowChange("t", "UPDATE", key, {"id": 1, "name": "a", "ok": 1}, {"id": 1, "name": "b", "ok": 0}),
        RowChange("t", "DELETE", key, {"id": 1, "name": "b", "ok": 0}, None),
        RowChange("other", "INSERT", encode_row_key("other", [2]), None, {"id": 2}),
    ]


def test_events_ids_keys_and_payloads() -> None:
    msgs = builder(False).change_messages(
        "db", 77, 1_700_000_000_123_456_789, 5, changes(), lambda t: t == "t"
    )
    assert [m.event_id for m in msgs] == ["db:77:0", "db:77:1", "db:77:2"]  # "other" filtered out
    assert {m.topic for m in msgs} == {"cdc.db.t"}
    assert msgs[0].key == base64.urlsafe_b64encode(encode_row_key("t", [1])).rstrip(b"=")
    assert msgs[0].key == row_key(encode_row_key("t", [1]))
    docs = [json.loads(m.value or b"") for m in msgs]
    assert [d["payload"]["op"] for d in docs] == ["c", "u", "d"]
    assert docs[1]["payload"]["before"] == {"id": 1, "name": "a", "ok": True}
    assert docs[1]["payload"]["after"] == {"id": 1, "name": "b", "ok": False}
    assert docs[2]["payload"]["after"] is None
    assert docs[0]["payload"]["ts_ms"] == 1_700_000_000_123
    assert docs[0]["payload"]["source"] == {
        "connector": "marmot",
        "db": "db",
        "table": "t",
        "txId": 77,
        "lsn": 5,
    }
    fields = docs[0]["schema"]["fields"][1]["fields"]
    assert fields == [
        {"type": "int64", "optional": False, "field": "id"},
        {"type": "string", "optional": True, "field": "name"},
        {"type": "boolean", "optional": True, "field": "ok"},
    ]


def test_a_delete_is_followed_by_a_tombstone_only_for_kafka() -> None:
    assert wants_tombstones(SinkConfig(name="k", type="kafka", brokers=["b:1"]))
    assert not wants_tombstones(SinkConfig(name="n", type="nats", nats_url="nats://x"))
    msgs = builder(True).change_messages("db", 9, 0, 1, changes()[:3], lambda t: True)
    assert [(m.event_id, m.value is None) for m in msgs] == [
        ("db:9:0", False),
        ("db:9:1", False),
        ("db:9:2", False),
        ("db:9:2:t", True),
    ]
    assert msgs[3].key == msgs[2].key and msgs[3].topic == msgs[2].topic


def test_blob_values_are_base64_and_undeclared_columns_typed_by_value() -> None:
    b = EnvelopeBuilder(
        "cdc", tombstones=False, columns=lambda db: lambda table: {"id": Column("int64", False)}
    )
    value = b.envelope(
        "db", "t", "c", None, {"id": 1, "raw": b"\x00\xff", "gone": 2.5}, ts_ms=1, txn_id=2, lsn=3
    )
    doc = json.loads(value)
    assert doc["payload"]["after"] == {"id": 1, "raw": "AP8=", "gone": 2.5}
    types = {f["field"]: f["type"] for f in doc["schema"]["fields"][1]["fields"]}
    assert types == {"id": "int64", "raw": "bytes", "gone": "double"}


def test_snapshot_rows_are_op_r_with_an_id_naming_the_version() -> None:
    key = encode_row_key("t", [1])
    m = builder(False).snapshot_message(
        "db", "t", key, {"id": 1, "name": "a", "ok": 1}, (5_000_000, 2, 3), 10
    )
    doc = json.loads(m.value or b"")
    assert doc["payload"]["op"] == "r" and doc["payload"]["before"] is None and doc["payload"]["ts_ms"] == 5
    assert m.event_id == f"db:r:{row_key(key).decode()}:5000000.2.3"
