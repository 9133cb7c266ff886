#!/usr/bin/env python3
"""Rebuild tables from Marmot's CDC stream on Kafka: a minimal Debezium-envelope consumer.

Each topic ``{topic_prefix}.{database}.{table}`` carries one table's row changes as Debezium JSON
envelopes; the message key identifies the row. The consumer keeps, per topic and key, the newest event
by commit time (``ts_ms``; on a tie the later one in the stream): ``c`` / ``u`` / ``r`` leave the row's
``after`` image, ``d`` removes it. Commit time and not arrival order, because every node publishes the
transactions it coordinated, so two writes of one row made through different nodes may arrive in either
order. Delivery is at least once: a message whose ``event_id`` header was already applied is skipped.
The tombstone (null value) after each ``d`` is for log compaction and changes nothing here.

    python examples/cdc-kafka-consumer.py --bootstrap localhost:9092 --topic marmot.cdc.marmot.users

It prints one line per applied event while it runs, and on exit (Ctrl-C, or ``--idle-exit`` seconds
without a new message) one JSON object: ``{topic: {key: row}}``. ``--assign`` reads every partition from
the beginning without a consumer group (for brokers whose group coordinator is slow to admit a member,
like the Tansu broker the tests use); without it the consumer joins ``--group`` and starts at the
earliest offset the group has not committed.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition


def apply(tables: dict[str, dict[str, tuple[int, Any]]], seen: set[str], msg: Any) -> str | None:
    """Apply one message to ``tables`` (topic -> key -> (ts_ms, row or None)); the line to print, or
    None for a repeat, a tombstone or an event older than what the row already has."""
    event_id = dict(msg.headers() or []).get("event_id", b"").decode()
    if event_id and event_id in seen:
        return None  # delivered again after a retried batch: already applied
    seen.add(event_id)
    if msg.value() is None:  # tombstone after a DELETE: only for log compaction
        return None
    payload = json.loads(msg.value())["payload"]
    rows = tables.setdefault(msg.topic(), {})
    key = msg.key().decode()
    if key in rows and rows[key][0] > payload["ts_ms"]:
        return None  # a newer commit of this row is already applied
    rows[key] = (payload["ts_ms"], None if payload["op"] == "d" else payload["after"])
    return f"{payload['op']} {payload['source']['db']}.{payload['source']['table']} {key} {json.dumps(payload['after'])}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers, host:port[,host:port]")
    ap.add_argument("--topic", action="append", required=True, help="a topic to read (repeatable)")
    ap.add_argument("--group", default="marmot-cdc-example", help="consumer group (ignored with --assign)")
    ap.add_argument("--assign", action="store_true", help="read all partitions from offset 0, no group")
    ap.add_argument("--idle-exit", type=float, default=0, help="exit after this many idle seconds (0: never)")
    args = ap.parse_args()

    consumer = Consumer(
        {"bootstrap.servers": args.bootstrap, "group.id": args.group, "auto.offset.reset": "earliest"}
    )
    if args.assign:
        meta = consumer.list_topics(timeout=10).topics
        consumer.assign(
            [TopicPartition(t, p, 0) for t in args.topic if t in meta for p in meta[t].partitions]
        )
    else:
        consumer.subscribe(args.topic)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    tables: dict[str, dict[str, tuple[int, Any]]] = {}
    seen: set[str] = set()
    last = time.monotonic()
    try:
        while not args.idle_exit or time.monotonic() - last < args.idle_exit:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            last = time.monotonic()
            line = apply(tables, seen, msg)
            if line:
                print(line, flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
        live = {t: {k: row for k, (_, row) in rows.items() if row is not None} for t, rows in tables.items()}
        print(json.dumps(live, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
