"""The publisher's Prometheus metrics, in the node's registry (``admin.metrics.Metrics.registry``).

Kept here rather than in ``admin/metrics.py`` because only the publisher knows its numbers; they are
refreshed from each worker's running totals (``SinkStats``) every second, so publishing itself pays
nothing per event. docs/metrics.md lists them.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge

from marmot.publisher.worker import SinkStats


class PublisherMetrics:
    def __init__(self, registry: Any, node_id: int) -> None:
        self.nid = str(node_id)
        labels = ("node_id", "sink")

        def counter(name: str, doc: str) -> Counter:
            return Counter(name, doc, labels, namespace="marmot", registry=registry)

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, labels, namespace="marmot", registry=registry)

        self.published = counter("publisher_events_published", "CDC events a sink acknowledged")
        self.errors = counter("publisher_errors", "failed publishes and connection attempts of a sink")
        self.retries = counter("publisher_retries", "retries after a failure (with backoff)")
        self.lost = counter(
            "publisher_lost_transactions", "transactions collected by log GC before a sink published them"
        )
        self.backlog = gauge("publisher_backlog_transactions", "committed transactions not yet published")
        self.backlog_seconds = gauge("publisher_backlog_seconds", "age of the oldest unpublished transaction")
        self.backlog_limit = gauge(
            "publisher_backlog_limit_transactions", "[publisher] max_backlog_transactions"
        )
        self.connected = gauge("publisher_connected", "1 when the sink's broker connection is up")
        self._seen: dict[str, dict[str, int]] = {}

    def update(self, sink: str, stats: SinkStats, limit: int) -> None:
        seen = self._seen.setdefault(sink, {"published": 0, "errors": 0, "retries": 0, "lost": 0})
        for name, counter, value in (
            ("published", self.published, stats.published),
            ("errors", self.errors, stats.errors),
            ("retries", self.retries, stats.retries),
            ("lost", self.lost, stats.lost_transactions),
        ):
            if value > seen[name]:
                counter.labels(self.nid, sink).inc(value - seen[name])
                seen[name] = value
        self.backlog.labels(self.nid, sink).set(sum(n for n, _ in stats.backlog.values()))
        self.backlog_seconds.labels(self.nid, sink).set(
            max((s for _, s in stats.backlog.values()), default=0.0)
        )
        self.backlog_limit.labels(self.nid, sink).set(limit)
        self.connected.labels(self.nid, sink).set(1 if stats.connected else 0)
