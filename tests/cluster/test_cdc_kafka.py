"""The CDC publisher of a 3-node cluster into a real Kafka-protocol broker (Tansu, started here).

* the broker hangs (SIGSTOP) for longer than the sink's delivery timeout under a write load: every
  acknowledged write is in the topic afterwards, each node's writes in its commit order;
* a coordinator is SIGKILLed during a write load: every write it acknowledged is in the topic (published
  for it by the lowest-numbered ALIVE survivor through that node's Kafka sink).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Message

from marmot.testing import LocalCluster, admin_json
from marmot.testing.kafka_broker import KafkaBroker
from marmot.testing.nodes import NodeProcess
from tests.support import connect, wait_for
from tests.support.kafka import read_all, start_broker


def publisher_toml(broker: KafkaBroker, prefix: str, extra: str = "") -> str:
    return (
        "\n[publisher]\nenabled = true\n"
        f'[[publisher.sinks]]\nname = "kafka"\ntype = "kafka"\nbrokers = ["{broker.bootstrap}"]\n'
        f'topic_prefix = "{prefix}"\nretry_initial_ms = 50\nretry_max_ms = 1000\n{extra}'
    )


class Writer(threading.Thread):
    """Inserts rows ``base + i`` through one node until ``halt`` is set; ``acked`` are the ids the node
    acknowledged (a failed insert is never retried with the same id)."""

    def __init__(self, node: NodeProcess, table: str, base: int) -> None:
        super().__init__(daemon=True)
        self.node, self.table, self.base = node, table, base
        self.acked: list[int] = []
        self.halt = threading.Event()

    def run(self) -> None:
        conn = None
        i = 0
        while not self.halt.is_set():
            try:
                if conn is None:
                    conn = connect(self.node, connect_timeout=3, read_timeout=10, write_timeout=10)
                conn.cursor().execute(f"INSERT INTO {self.table} VALUES (%s, %s)", (self.base + i, i))
                self.acked.append(self.base + i)
            except Exception:  # node killed or busy: not acknowledged
                conn = None
                time.sleep(0.05)
            i += 1
            time.sleep(0.005)


def ids_in_order(msgs: list[Message]) -> list[int]:
    """Inserted ids as a deduplicating consumer sees them (first message of each event_id, in order)."""
    seen: set[bytes] = set()
    out = []
    for m in msgs:
        event_id = dict(m.headers() or [])["event_id"]
        if m.value() is None or event_id in seen:
            continue
        seen.add(event_id)
        out.append(json.loads(m.value())["payload"]["after"]["id"])
    return out


def wait_all_published(
    broker: KafkaBroker, topic: str, writers: list[Writer], timeout: float = 90
) -> list[int]:
    got: dict[str, Any] = {}

    def complete() -> bool:
        got["ids"] = ids_in_order(read_all(broker, topic))
        have = set(got["ids"])
        got["missing"] = [sorted(set(w.acked) - have)[:10] for w in writers]
        return all(set(w.acked) <= have for w in writers)

    try:
        wait_for(complete, timeout, f"every acknowledged write in {topic}", interval=1.0)
    except AssertionError:
        raise AssertionError(f"acknowledged but not in {topic}: {got.get('missing')}") from None
    ids: list[int] = got["ids"]
    return ids


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    b = start_broker(tmp_path_factory.mktemp("tansu"))
    try:
        yield b
    finally:
        b.stop()


def test_broker_hung_under_load_loses_nothing_and_keeps_each_nodes_order(
    broker: KafkaBroker, tmp_path: Path
) -> None:
    with LocalCluster(3, tmp_path, extra_toml=publisher_toml(broker, "hang")) as c:
        n1, n2, _ = c.nodes
        connect(n1).cursor().execute("CREATE TABLE load (id INT PRIMARY KEY, i INT)")
        writers = [Writer(n1, "load", 1_000_000), Writer(n2, "load", 2_000_000)]
        for w in writers:
            w.start()
        try:
            time.sleep(1.5)
            broker.pause()
            try:  # longer than the sink's 10 s delivery timeout: batches fail and are retried
                wait_for(
                    lambda: admin_json(n1, "/admin/publisher")["sinks"][0]["errors"] > 0,
                    timeout=60, what="node 1's kafka sink to fail while the broker hangs", interval=0.5,
                )  # fmt: skip
            finally:
                broker.resume()
            time.sleep(1.5)
        finally:
            for w in writers:
                w.halt.set()
            for w in writers:
                w.join(30)
        assert all(len(w.acked) > 20 for w in writers), [len(w.acked) for w in writers]
        ids = wait_all_published(broker, "hang.marmot.load", writers)
        for w in writers:
            mine = [i for i in ids if w.base <= i < w.base + 1_000_000]
            assert mine == sorted(mine), "a node's writes reach the topic in its commit order"
        status = admin_json(n1, "/admin/publisher")["sinks"][0]
        assert status["connected"] and status["retries"] > 0, status


def test_every_acknowledged_write_of_a_killed_coordinator_is_in_the_topic(
    broker: KafkaBroker, tmp_path: Path
) -> None:
    # the nodes poll their log every 1.5 s, so the victim dies with acknowledged, unpublished writes
    toml = publisher_toml(broker, "kill", extra="poll_interval_ms = 1500\n")
    with LocalCluster(3, tmp_path, extra_toml=toml) as c:
        n1, n2, n3 = c.nodes
        connect(n1).cursor().execute("CREATE TABLE acked (id INT PRIMARY KEY, i INT)")
        writers = [Writer(n2, "acked", 2_000_000), Writer(n3, "acked", 3_000_000)]
        for w in writers:
            w.start()
        try:
            time.sleep(2.2)
            c.kill(2)  # SIGKILL mid-load
            time.sleep(1)
        finally:
            for w in writers:
                w.halt.set()
            for w in writers:
                w.join(30)
        assert writers[0].acked, "node 2 acknowledged writes before it was killed"
        wait_all_published(broker, "kill.marmot.acked", writers)
        status = admin_json(n1, "/admin/publisher")["sinks"][0]
        assert 2 in status["publishing_for"] and status["takeover_events_published"] > 0, status
