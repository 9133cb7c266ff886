"""Kafka helpers for the CDC tests: a Tansu broker that skips the test only where it cannot run, and a
reader that takes a topic's messages back with ``assign()`` (Tansu holds consumer-group joins for
``max.poll.interval.ms``, so a group consumer would wait minutes)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Message, TopicPartition
from confluent_kafka.admin import AdminClient

from marmot.testing.kafka_broker import BrokerUnavailable, KafkaBroker


def start_broker(log_dir: Path) -> KafkaBroker:
    """A started broker logging to ``log_dir``; ``pytest.skip`` (with the reason) if the Tansu binary
    cannot run on this platform. Any other failure to start fails the test."""
    broker = KafkaBroker(log_path=log_dir / "tansu.log")
    try:
        return broker.start()
    except BrokerUnavailable as e:
        pytest.skip(f"the Tansu Kafka broker cannot run here: {e}")


def partitions_of(broker: KafkaBroker, topic: str) -> list[int]:
    """The partition ids of ``topic`` (KeyError if the broker does not have it)."""
    meta = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10)
    return sorted(meta.topics[topic].partitions)


def read_topic(broker: KafkaBroker, topic: str, count: int, timeout: float = 30.0) -> list[Message]:
    """Messages of every partition of ``topic`` from offset 0, until ``count`` arrived or ``timeout``
    passed (then what arrived: the caller's assertion shows what is missing). Waits for the topic."""
    deadline = time.monotonic() + timeout
    parts: list[int] = []
    while not parts and time.monotonic() < deadline:
        try:
            parts = partitions_of(broker, topic)
        except KeyError:
            time.sleep(0.2)
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "marmot-test-reader"})
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        got: list[Message] = []
        while len(got) < count and time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is not None and m.error() is None:
                got.append(m)
        return got
    finally:
        consumer.close()


def read_all(broker: KafkaBroker, topic: str, idle: float = 1.5, timeout: float = 30.0) -> list[Message]:
    """Every message of ``topic`` there is now: read from offset 0 until nothing new came for ``idle``
    seconds (or ``timeout`` passed). An absent topic reads as no messages."""
    try:
        parts = partitions_of(broker, topic)
    except KeyError:
        return []
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "marmot-test-reader"})
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        got: list[Message] = []
        deadline = time.monotonic() + timeout
        last = time.monotonic()
        while time.monotonic() - last < idle and time.monotonic() < deadline:
            m = consumer.poll(0.2)
            if m is not None and m.error() is None:
                got.append(m)
                last = time.monotonic()
        return got
    finally:
        consumer.close()
