"""Prometheus collectors of forwarded writes: a cluster node's forward sessions, a replica's forwarder.

Read from the counters the two halves keep (``forward_server.ForwardSessions``,
``forward_client.ForwardClient`` / ``forward_writes.WriteForwarder``) at each scrape, so the hot path
does no metric work. docs/metrics.md lists them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from marmot.replica.forward_server import ForwardSessions
from marmot.replica.forward_writes import WriteForwarder


class ForwardSessionsCollector:
    """On a cluster node: ``marmot_forward_sessions``, ``marmot_forward_statements_total``,
    ``marmot_forward_replayed_total``."""

    def __init__(self, node_id: int, sessions: ForwardSessions) -> None:
        self.node_id = str(node_id)
        self.sessions = sessions

    def collect(self) -> Iterable[Any]:
        nid = [self.node_id]
        open_ = GaugeMetricFamily(
            "marmot_forward_sessions",
            "Replica sessions this node keeps a forward session for.",
            labels=["node_id"],
        )
        open_.add_metric(nid, len(self.sessions.sessions))
        run = CounterMetricFamily(
            "marmot_forward_statements", "Forwarded requests this node ran for replicas.", labels=["node_id"]
        )
        run.add_metric(nid, self.sessions.executed)
        replayed = CounterMetricFamily(
            "marmot_forward_replayed",
            "Retried forwarded requests answered from memory instead of running again.",
            labels=["node_id"],
        )
        replayed.add_metric(nid, self.sessions.replayed)
        return [open_, run, replayed]


class ForwarderCollector:
    """On a replica: ``marmot_replica_forwarded_statements_total``, ``marmot_replica_forward_retries_total``,
    ``marmot_replica_forward_failovers_total``, ``marmot_replica_forward_failures_total``."""

    def __init__(self, node_id: int, forwarder: WriteForwarder) -> None:
        self.node_id = str(node_id)
        self.forwarder = forwarder

    def collect(self) -> Iterable[Any]:
        nid = [self.node_id]
        client = self.forwarder.client
        out = []
        for name, doc, value in (
            (
                "forwarded_statements",
                "Statements this replica sent to the cluster.",
                self.forwarder.forwarded,
            ),
            ("forward_retries", "Forwarded requests sent again after a lost answer.", client.retries),
            (
                "forward_failovers",
                "Forwarded requests that went to another node than before.",
                client.failovers,
            ),
            (
                "forward_failures",
                "Forwarded statements without an answer in time (1105).",
                self.forwarder.failed,
            ),
        ):
            family = CounterMetricFamily(f"marmot_replica_{name}", doc, labels=["node_id"])
            family.add_metric(nid, value)
            out.append(family)
        return out
