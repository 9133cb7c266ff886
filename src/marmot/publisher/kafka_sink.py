"""The Kafka sink of the CDC publisher: an idempotent confluent-kafka producer that waits for every ack.

Delivery is **at least once**. ``publish`` returns only after the broker acknowledged every message of
the batch to all in-sync replicas (``acks=all``); anything less (an error in one delivery report, a
fatal producer error, a broker that does not answer within ``delivery_timeout_s``) raises
``SinkUnavailable`` and the publisher's worker re-sends the whole batch later, without moving its
cursor. A re-sent batch may therefore repeat messages that did reach the broker the first time; every
message carries its ``event_id`` in the ``event_id`` header so consumers can drop the repeats. The
idempotent producer (``enable.idempotence``) removes the duplicates and reorderings librdkafka's own
internal retries would otherwise cause inside one attempt.

Why the producer is rebuilt after a failure: librdkafka keeps per-partition sequence numbers for its
producer id, and a broker that lost them (a restart with memory storage, a deleted topic) answers
``UNKNOWN_PRODUCER_ID``, which is fatal for that producer instance. Dropping the instance after any
failed batch (its unsent queue purged) lets the same ``KafkaSink`` object publish again as soon as the
broker is back, without the worker having to know about Kafka.

Topics: the sink creates a missing topic itself with **one partition** (the broker's default
replication factor), so all events of a table are totally ordered in commit order; automatic topic
creation by the broker is switched off for the producer because it would create the broker's default
partition count. A topic created beforehand by an operator (more partitions, log compaction) is used as
it is; messages are then partitioned by key, which keeps the order per row.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Sequence
from typing import Any

from marmot.config_schema import SinkConfig
from marmot.publisher.sink import OutboundMessage, SinkUnavailable

try:
    from confluent_kafka import KafkaError, KafkaException, Message, Producer
    from confluent_kafka.admin import AdminClient, NewTopic
except ImportError as e:  # a kafka sink in the config on an install without the client: say what is missing
    raise ImportError(
        "the kafka sink of [publisher] needs the confluent-kafka package (pip install confluent-kafka)"
    ) from e

log = logging.getLogger("marmot.publisher.kafka")

EVENT_ID_HEADER = "event_id"
# How long one batch may wait for its delivery reports (and topic creation for its metadata) before the
# batch counts as failed; the worker's own backoff then decides when to try again.
DELIVERY_TIMEOUT_S = 10.0
MAX_MESSAGE_BYTES = 16 * 1024 * 1024


class _LibrdkafkaLog:
    """librdkafka's log lines, demoted to DEBUG (critical ones to WARNING).

    A broker that is down makes librdkafka log a connection failure every backoff interval; the sink
    already reports the failure once per batch through ``SinkUnavailable`` (which the worker logs with
    its backoff), so repeating librdkafka's lines at ERROR would flood the node's log."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger

    def log(self, level: int, msg: str, *args: Any) -> None:
        self._logger.log(logging.WARNING if level >= logging.CRITICAL else logging.DEBUG, msg, *args)


class KafkaSink:
    """One ``[[publisher.sinks]]`` entry of ``type = "kafka"``: ``brokers`` is its bootstrap list."""

    def __init__(self, cfg: SinkConfig, *, delivery_timeout_s: float = DELIVERY_TIMEOUT_S) -> None:
        if not cfg.brokers:
            raise ValueError(
                f"publisher.sinks.brokers: sink {cfg.name!r} of type kafka needs at least one broker "
                '(brokers = ["host:9092"])'
            )
        self.name = cfg.name
        self._bootstrap = ",".join(cfg.brokers)
        self._timeout = delivery_timeout_s
        self._producer: Producer | None = None
        self._admin: AdminClient | None = None
        self._topics: set[str] = set()  # topics known to exist on the broker (forgotten after a failure)
        self._librdkafka_log = _LibrdkafkaLog(log.getChild("librdkafka"))

    def _common_config(self) -> dict[str, Any]:
        return {
            "bootstrap.servers": self._bootstrap,
            "client.id": f"marmot-{self.name}",
            "logger": self._librdkafka_log,
            # a topic appears only through _ensure_topics (one partition), never by a metadata request
            "allow.auto.create.topics": False,
            # librdkafka backs off reconnects up to 10 s by default: a broker back from an outage would
            # wait that long for its first batch; 1 s keeps resumption prompt at one attempt a second
            "reconnect.backoff.max.ms": 1000,
        }

    def _clients(self) -> tuple[Producer, AdminClient]:
        """The producer and admin client, built on first use and again after a failed batch."""
        if self._producer is None or self._admin is None:
            ms = int(self._timeout * 1000)
            self._producer = Producer(
                {
                    **self._common_config(),
                    "enable.idempotence": True,
                    "acks": "all",
                    "message.timeout.ms": ms,
                    "request.timeout.ms": ms,
                    # a topic missing from the broker fails the batch within the timeout (30 s by default)
                    "topic.metadata.propagation.max.ms": ms,
                    # librdkafka's own cap is 1 MB; a larger one leaves the limit to the broker and topic
                    # (message.max.bytes / max.message.bytes), which an operator can raise for big rows
                    "message.max.bytes": MAX_MESSAGE_BYTES,
                }
            )
            self._admin = AdminClient(self._common_config())
        return self._producer, self._admin

    def _discard_clients(self) -> None:
        """Drop the producer after a failure: purge what it still queues, so that nothing of the failed
        attempt is sent later, behind the retried batch; forget which topics exist (the broker may have
        come back empty)."""
        producer, self._producer, self._admin = self._producer, None, None
        self._topics.clear()
        if producer is not None:
            try:
                producer.purge(in_queue=True, in_flight=True, blocking=False)
                producer.flush(0)
            except KafkaException as e:  # a fatal producer error is raised again here; it is gone anyway
                log.debug("kafka sink %s: discarding the producer: %s", self.name, e)

    async def start(self) -> None:
        """Build the clients and ask the broker for its metadata: ``SinkUnavailable`` if it does not answer."""
        await asyncio.to_thread(self._probe)

    def _probe(self) -> None:
        _, admin = self._clients()
        try:
            admin.list_topics(timeout=self._timeout)
        except KafkaException as e:
            self._discard_clients()
            raise SinkUnavailable(
                f"kafka sink {self.name}: brokers {self._bootstrap} do not answer: {e}"
            ) from e

    async def publish(self, batch: Sequence[OutboundMessage]) -> None:
        """Send every message of ``batch`` in order and return once all were acknowledged; otherwise
        raise ``SinkUnavailable`` (the worker re-sends the whole batch: at least once, see the module)."""
        if batch:
            await asyncio.to_thread(self._publish_blocking, list(batch))

    def _publish_blocking(self, batch: list[OutboundMessage]) -> None:
        try:
            self._send(batch)
        except SinkUnavailable:
            self._discard_clients()
            raise
        except KafkaException as e:  # fatal producer state, raised by produce() or flush()
            self._discard_clients()
            raise SinkUnavailable(f"kafka sink {self.name}: {e.args[0] if e.args else e}") from e

    def _send(self, batch: list[OutboundMessage]) -> None:
        producer, admin = self._clients()
        self._ensure_topics(admin, {m.topic for m in batch})
        failures: list[KafkaError] = []
        delivered = 0

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            nonlocal delivered
            if err is None:
                delivered += 1
            else:
                failures.append(err)

        deadline = time.monotonic() + self._timeout
        for m in batch:
            headers: list[tuple[str, str | bytes | None]] = [(EVENT_ID_HEADER, m.event_id.encode())]
            while True:
                try:
                    producer.produce(
                        m.topic, value=m.value, key=m.key, headers=headers, on_delivery=on_delivery
                    )
                    break
                except BufferError:  # librdkafka's local queue is full: serve delivery reports, then retry
                    if time.monotonic() > deadline:
                        raise SinkUnavailable(
                            f"kafka sink {self.name}: the producer queue stayed full for {self._timeout:.0f} s"
                        ) from None
                    producer.poll(0.1)
        # every message has its delivery report within message.timeout.ms; the margin covers the last one
        pending = producer.flush(self._timeout + 5.0)
        if failures or pending or delivered != len(batch):
            first = failures[0].str() if failures else "no delivery report in time"
            raise SinkUnavailable(
                f"kafka sink {self.name}: {len(batch) - delivered} of {len(batch)} messages not acknowledged "
                f"by {self._bootstrap}: {first}"
            )

    def _ensure_topics(self, admin: AdminClient, topics: set[str]) -> None:
        """Create the topics of the batch that the broker does not have yet (one partition each)."""
        missing = topics - self._topics
        if not missing:
            return
        existing = set(admin.list_topics(timeout=self._timeout).topics)
        to_create = sorted(missing - existing)
        if to_create:
            futures = admin.create_topics(
                [NewTopic(t, num_partitions=1, replication_factor=-1) for t in to_create],
                request_timeout=self._timeout,
            )
            for topic, future in futures.items():
                try:
                    future.result(timeout=self._timeout)
                except KafkaException as e:
                    if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                        raise SinkUnavailable(
                            f"kafka sink {self.name}: cannot create topic {topic}: {e}"
                        ) from e
                except concurrent.futures.TimeoutError:
                    raise SinkUnavailable(
                        f"kafka sink {self.name}: creating topic {topic} got no answer in {self._timeout:.0f} s"
                    ) from None
        self._topics |= missing

    async def close(self) -> None:
        """Wait (briefly) for anything still queued, then release the clients; safe after a failed start."""
        producer, self._producer, self._admin = self._producer, None, None
        if producer is not None:
            try:
                await asyncio.to_thread(producer.flush, 5.0)
            except KafkaException as e:
                log.debug("kafka sink %s: close: %s", self.name, e)
