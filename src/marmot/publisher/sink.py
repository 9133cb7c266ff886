"""The contract between the CDC publisher and a message broker: one message, one sink, one registry.

The publisher's workers (``marmot.publisher.worker``) turn commit-log rows into ``OutboundMessage``s and
hand them to a ``Sink`` in batches. Everything broker-specific (connections, acks, dedupe headers) lives
behind this interface, so a new broker is one module plus one line in ``make_sink``; the NATS sink
(``nats_sink``) and the Kafka sink (``kafka_sink``) are built against it independently.

Message key format (documented for consumers in docs/cdc.md): the ASCII bytes of the unpadded base64url
encoding of the row's binary row key (``marmot.storage.rowkey``: table name plus the typed primary-key
values, or the rowid for a table without a primary key). Two events carry the same key exactly when they
change the same row of the same table, which is what Kafka log compaction and per-key ordering need.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from marmot.config_schema import SinkConfig

# The name the publisher's brief uses for one ``[[publisher.sinks]]`` entry.
PublisherSinkConfig = SinkConfig


@dataclass(frozen=True)
class OutboundMessage:
    """One message for a broker, already encoded.

    ``topic`` is ``{topic_prefix}.{db}.{table}`` (a NATS subject or a Kafka topic). ``value`` is the
    Debezium JSON envelope; ``None`` is a tombstone (emitted after a DELETE, for Kafka log compaction
    only). ``event_id`` is deterministic per event: the same row change re-published by any node, at any
    time, has the same id, so brokers (NATS ``Nats-Msg-Id``) and consumers can drop duplicates.
    """

    topic: str
    key: bytes
    value: bytes | None
    event_id: str


class SinkUnavailable(Exception):
    """The broker cannot be reached or refused a publish; the worker retries the same batch later."""


@runtime_checkable
class Sink(Protocol):
    """A broker connection the publisher drives: ``start`` once, ``publish`` batches, ``close`` once."""

    name: str

    async def start(self) -> None:
        """Connect; raise ``SinkUnavailable`` when the broker is down (the worker retries)."""
        ...

    async def publish(self, batch: Sequence[OutboundMessage]) -> None:
        """Publish every message in order, or raise ``SinkUnavailable``: a batch is all-or-raise, and
        the worker re-sends the whole batch after a failure (duplicates carry the same ``event_id``)."""
        ...

    async def close(self) -> None:
        """Release the connection; safe to call after a failed ``start``."""
        ...


# sink type -> "module:ClassName"; imported lazily so a node without the Kafka client still runs NATS.
_REGISTRY: dict[str, str] = {
    "nats": "marmot.publisher.nats_sink:NatsSink",
    "kafka": "marmot.publisher.kafka_sink:KafkaSink",
}

# Sink types whose consumers want a tombstone (null value) after each DELETE (log compaction).
TOMBSTONE_TYPES: frozenset[str] = frozenset({"kafka"})


def wants_tombstones(cfg: SinkConfig) -> bool:
    """Whether the envelope builder follows each DELETE with a tombstone for this sink."""
    return cfg.type in TOMBSTONE_TYPES


def make_sink(cfg: SinkConfig) -> Sink:
    """Build the sink for one ``[[publisher.sinks]]`` entry by its ``type``."""
    target = _REGISTRY.get(cfg.type)
    if target is None:
        raise ValueError(f"publisher.sinks: unknown sink type {cfg.type!r} (sink {cfg.name!r})")
    module_name, _, class_name = target.partition(":")
    factory: Callable[[SinkConfig], Sink] = getattr(importlib.import_module(module_name), class_name)
    return factory(cfg)
