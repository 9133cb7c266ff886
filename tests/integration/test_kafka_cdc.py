"""End to end: a node with a Kafka sink publishes its row changes to a real broker (Tansu, started here).

INSERT / UPDATE / DELETE through MySQL → Debezium envelopes on ``{topic_prefix}.{db}.{table}``, keyed by
the row, each DELETE followed by a tombstone; the documented consumer example rebuilds the table from
the stream; a broker outage loses nothing (the backlog is published once the broker is back).
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Message

from marmot.storage.rowkey import encode_row_key
from marmot.testing.admin import admin_json
from marmot.testing.kafka_broker import KafkaBroker
from marmot.testing.nodes import NodeProcess, make_node
from tests.support import REPO, connect, run, wait_for
from tests.support.kafka import read_topic, start_broker

PREFIX = "cdc"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    b = start_broker(tmp_path_factory.mktemp("tansu"))
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture(scope="module")
def kafka_node(broker: KafkaBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    publisher = (
        "\n[publisher]\nenabled = true\n"
        f'[[publisher.sinks]]\nname = "kafka"\ntype = "kafka"\nbrokers = ["{broker.bootstrap}"]\n'
        f'topic_prefix = "{PREFIX}"\nretry_initial_ms = 100\nretry_max_ms = 1000\n'
    )
    node = make_node(tmp_path_factory.mktemp("node"), extra_toml=publisher)
    try:
        yield node.start()
    finally:
        node.stop()


def row_key(table: str, *pk: Any) -> bytes:
    """The documented message key: unpadded base64url of the binary row key."""
    return base64.urlsafe_b64encode(encode_row_key(table, list(pk))).rstrip(b"=")


def payloads(msgs: list[Message]) -> list[dict[str, Any] | None]:
    return [None if m.value() is None else json.loads(m.value())["payload"] for m in msgs]


def test_insert_update_delete_become_debezium_events_with_a_tombstone(
    kafka_node: NodeProcess, broker: KafkaBroker
) -> None:
    c = connect(kafka_node)
    try:
        run(kafka_node, "CREATE TABLE users (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL, score DOUBLE)")
        c.cursor().execute("INSERT INTO users VALUES (1, 'ann', 1.5), (2, 'bob', NULL)")
        c.cursor().execute("UPDATE users SET name = 'bobby', score = 7 WHERE id = 2")
        c.cursor().execute("DELETE FROM users WHERE id = 1")
    finally:
        c.close()

    msgs = read_topic(broker, f"{PREFIX}.marmot.users", 5, timeout=60)
    assert [(p or {}).get("op") for p in payloads(msgs)] == ["c", "c", "u", "d", None], payloads(msgs)
    assert [m.key() for m in msgs] == [row_key("users", 1), row_key("users", 2), row_key("users", 2)] + [
        row_key("users", 1)
    ] * 2
    ins1, ins2, upd, dele, tomb = payloads(msgs)
    assert ins1 and ins1["before"] is None and ins1["after"] == {"id": 1, "name": "ann", "score": 1.5}
    assert ins2 and ins2["after"] == {"id": 2, "name": "bob", "score": None}
    assert upd and upd["before"] == {"id": 2, "name": "bob", "score": None}
    assert upd["after"] == {"id": 2, "name": "bobby", "score": 7.0}
    assert dele and dele["before"] == {"id": 1, "name": "ann", "score": 1.5} and dele["after"] is None
    assert tomb is None and msgs[4].value() is None  # the tombstone: null value, same key as the DELETE
    for p in (ins1, ins2, upd, dele):
        assert p["source"]["connector"] == "marmot" and p["source"]["db"] == "marmot"
        assert p["source"]["table"] == "users" and p["ts_ms"] > 0
    envelope = json.loads(msgs[0].value())
    assert envelope["schema"]["name"] == "marmot.users.Envelope"
    ids = [dict(m.headers() or [])["event_id"] for m in msgs]
    assert len(set(ids)) == 5 and all(ids), ids  # one distinct id per message, the tombstone included


def test_the_consumer_example_rebuilds_the_table(kafka_node: NodeProcess, broker: KafkaBroker) -> None:
    c = connect(kafka_node)
    try:
        cur = c.cursor()
        cur.execute("CREATE TABLE stock (sku VARCHAR(20) PRIMARY KEY, qty INT NOT NULL)")
        cur.execute("INSERT INTO stock VALUES ('a', 1), ('b', 2), ('c', 3), ('d', 4)")
        cur.execute("UPDATE stock SET qty = qty * 10 WHERE sku IN ('a', 'c')")
        cur.execute("DELETE FROM stock WHERE sku = 'b'")
        cur.execute("BEGIN")
        cur.execute("INSERT INTO stock VALUES ('e', 5)")
        cur.execute("UPDATE stock SET qty = 0 WHERE sku = 'd'")
        cur.execute("COMMIT")
        cur.execute("SELECT sku, qty FROM stock ORDER BY sku")
        expected = [{"sku": sku, "qty": qty} for sku, qty in cur.fetchall()]
    finally:
        c.close()
    topic = f"{PREFIX}.marmot.stock"
    published = read_topic(broker, topic, 10, timeout=60)
    assert len(published) == 10  # 4 c + 2 u + d + tombstone + c + u: all published before reading
    out = subprocess.run(
        [sys.executable, str(REPO / "examples" / "cdc-kafka-consumer.py"), "--bootstrap", broker.bootstrap,
         "--topic", topic, "--assign", "--idle-exit", "3"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    rebuilt = json.loads(out.stdout.strip().splitlines()[-1])[topic]
    assert sorted(rebuilt.values(), key=lambda r: r["sku"]) == expected
    assert set(rebuilt) == {row_key("stock", r["sku"]).decode() for r in expected}


def sink_status(node: NodeProcess) -> dict[str, Any]:
    return admin_json(node, "/admin/publisher")["sinks"][0]


def test_events_written_while_the_broker_is_down_arrive_after_it_is_back(
    kafka_node: NodeProcess, broker: KafkaBroker
) -> None:
    run(kafka_node, "CREATE TABLE outage (id INT PRIMARY KEY, v INT)")
    errors_before = sink_status(kafka_node)["errors"]
    broker.stop()
    try:
        c = connect(kafka_node)
        try:
            for i in range(20):  # acknowledged while the sink cannot publish
                c.cursor().execute(f"INSERT INTO outage VALUES ({i}, {i * i})")
        finally:
            c.close()
        # the sink's failure is seen (SinkUnavailable through the worker), the events wait in the backlog
        down = wait_for(
            lambda: (s := sink_status(kafka_node))["errors"] > errors_before and not s["connected"] and s,
            timeout=60, what="the kafka sink to report the stopped broker",
        )  # fmt: skip
        assert "kafka sink kafka" in down["last_error"], down
    finally:
        broker.start()  # same port, empty (memory storage): the backlog must come from the node
    msgs = read_topic(broker, f"{PREFIX}.marmot.outage", 20, timeout=90)
    after = [p["after"] for p in payloads(msgs) if p is not None]
    assert after == [{"id": i, "v": i * i} for i in range(20)]
    wait_for(lambda: sink_status(kafka_node)["connected"], timeout=30, what="the kafka sink to reconnect")
