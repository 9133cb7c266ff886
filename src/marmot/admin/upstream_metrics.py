"""Upstream Marmot's metric families (``marmot_v2_*``, ``reference/upstream-design.md`` §11.3), next to ours.

Why a second set of names: dashboards and alert rules written for upstream query ``marmot_v2_*`` with
upstream's labels. Our own families (``marmot_*``, docs/metrics.md) keep their names — tests, docs and
existing dashboards use them — and where upstream's differ (name, labels, or a family we did not have),
this module exports upstream's as well, in the same registry, with the same ``node_id`` label.

``Metrics`` (``metrics.py``) owns one ``UpstreamMetrics``, so the layers that report events still know
only ``Metrics``; the label values are listed in docs/metrics.md ("Upstream names"). Two kinds:

- **mirrors** — families that are ours under another name (``query_duration_seconds``, the successes of
  ``queries_total``, ``mysql_connections``, ``twophase_*_seconds``, ``txn_total``) are copied from our
  metric objects when scraped (``_Mirror``): the statement and commit hot paths pay nothing for them;
- **their own** — families we had no equivalent of (rows per statement, transaction duration, quorum
  acks, peer requests, participant timings, DDL, anti-entropy detail) or whose labels differ, fed by
  ``Metrics``' methods and refreshes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric

ROW_BUCKETS = (0, 1, 2, 5, 10, 50, 100, 500, 1000, 10000, 100000)
ACK_BUCKETS = (1, 2, 3, 4, 5, 7, 9, 12)
ROUND_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


def conflict_type(why: str) -> str:
    """A conflict's reason (the participant's message) -> ``write_conflicts_total{type}``: ``intent`` (a
    row or table held by an undecided transaction), ``version`` (the row changed since it was read),
    ``schema`` (its table's schema changed since the statement was planned), ``database`` (CREATE/DROP
    DATABASE in progress), ``other``."""
    text = why.lower()
    if "schema" in text:
        return "schema"
    if "changed since it was read" in text:
        return "version"
    if "locked by transaction" in text:
        return "intent"
    if "database" in text and "being changed" in text:
        return "database"
    return "other"


class _Mirror:
    """Families of ours exported again under upstream's names, built at each scrape from our metric
    objects' own samples (``sources``: (our metric, upstream family name, extra labels)). ``errors``:
    upstream's ``queries_total{result="error"}`` samples, added to the mirrored successes."""

    def __init__(self, sources: list[tuple[Any, str, dict[str, str]]], errors: Counter) -> None:
        self._sources = sources
        self._errors = errors

    def describe(self) -> Iterator[Metric]:
        for metric, name, _labels in self._sources:
            for fam in metric.describe():
                yield Metric(name, fam.documentation, fam.type)

    def collect(self) -> Iterator[Metric]:
        for metric, name, labels in self._sources:
            for fam in metric.collect():
                out = Metric(name, fam.documentation, fam.type)
                for s in fam.samples:
                    out.add_sample(name + s.name[len(fam.name) :], {**s.labels, **labels}, s.value)
                if name == "marmot_v2_queries":
                    for err in self._errors.collect():
                        for s in err.samples:
                            if s.name.endswith("_total"):
                                out.add_sample(name + "_total", {**s.labels, "result": "error"}, s.value)
                yield out


class UpstreamMetrics:
    """The ``marmot_v2_*`` families of one node; ``Metrics`` calls these methods. ``ours``: the
    ``Metrics`` whose families are mirrored (see the module docstring)."""

    def __init__(
        self, registry: CollectorRegistry, node_id: str, buckets: tuple[float, ...], ours: Any
    ) -> None:
        nid = self._nid = node_id

        def counter(name: str, doc: str, labels: Iterable[str] = ()) -> Counter:
            return Counter(name, doc, ("node_id", *labels), namespace="marmot_v2", registry=registry)

        def gauge(name: str, doc: str, labels: Iterable[str] = ()) -> Gauge:
            return Gauge(name, doc, ("node_id", *labels), namespace="marmot_v2", registry=registry)

        def histogram(name: str, doc: str, b: tuple[float, ...], labels: Iterable[str] = ()) -> Histogram:
            return Histogram(
                name, doc, ("node_id", *labels), namespace="marmot_v2", registry=registry, buckets=b
            )

        # cluster / gossip
        self.cluster_nodes = gauge(
            "cluster_nodes", "Members in each state as this node sees them.", ("status",)
        )
        self.quorum = gauge("cluster_quorum_available", "1 when this node sees a quorum alive, else 0.")
        self.gossip_rounds = counter("gossip_rounds_total", "Gossip exchanges this node started.")
        self.gossip_messages = counter(
            "gossip_messages_total", "Gossip messages sent and received.", ("direction",)
        )
        self.gossip_failures = counter("gossip_failures_total", "Gossip exchanges that failed.")
        self.transitions = counter(
            "node_state_transitions_total", "Membership state changes observed.", ("from", "to")
        )
        # statements answered with an error, by type: the mirror adds them to queries_total (unregistered)
        self.query_errors = Counter("marmot_v2_query_errors_by_type", "", ("node_id", "type"), registry=None)
        registry.register(
            _Mirror(
                [
                    (ours.queries, "marmot_v2_queries", {"result": "success"}),
                    (ours.query_duration, "marmot_v2_query_duration_seconds", {}),
                    (ours.mysql_connections, "marmot_v2_mysql_connections", {}),
                    (ours.twophase_prepare, "marmot_v2_twophase_prepare_seconds", {}),
                    (ours.twophase_commit, "marmot_v2_twophase_commit_seconds", {}),
                    (ours.txn, "marmot_v2_txn", {}),
                ],
                self.query_errors,
            )
        )
        self.joins = counter(
            "cluster_join_total", "Join requests this node answered, by result.", ("result",)
        )
        # transactions
        self.txn_duration = histogram(
            "txn_duration_seconds", "Coordinator time of a transaction, start to answer.", buckets, ("type",)
        )
        self.quorum_acks = histogram(
            "twophase_quorum_acks",
            "Acknowledgements a phase collected, this node's own included.",
            ACK_BUCKETS,
            ("phase",),
        )
        self.conflicts = counter("write_conflicts_total", "Write conflicts.", ("type", "path"))
        self.requests = counter(
            "replication_requests_total",
            "2PC requests sent to peers, by phase and result.",
            ("phase", "result"),
        )
        self.active = gauge(
            "active_transactions", "Transactions in flight on this node (prepared, undecided)."
        )
        self.replica_prepare = histogram(
            "replica_prepare_seconds", "Participant time to answer a peer's PREPARE.", buckets
        )
        self.replica_commit = histogram(
            "replica_commit_seconds", "Participant time to apply a peer's COMMIT durably.", buckets
        )
        self.replica_replay = histogram(
            "replica_replay_seconds", "Participant time to apply a peer's REPLAY durably.", buckets
        )
        # queries
        self.rows_affected = histogram("rows_affected", "Rows a write statement changed.", ROW_BUCKETS)
        self.rows_returned = histogram("rows_returned", "Rows a query returned.", ROW_BUCKETS)
        # DDL
        self.ddl = counter("ddl_operations_total", "Replicated DDL (and CREATE/DROP DATABASE).", ("result",))
        self.ddl_lock_wait = histogram(
            "ddl_lock_wait_seconds", "Time a DDL waited for its locks (intents) on this node.", buckets
        )
        # anti-entropy / log pull
        self.ae_rounds = counter("antientropy_rounds_total", "Anti-entropy rounds.")
        self.ae_syncs = counter(
            "antientropy_syncs_total", "Catch-ups of one database from one peer.", ("type", "result")
        )
        self.ae_duration = histogram(
            "antientropy_duration_seconds", "Anti-entropy round time.", ROUND_BUCKETS
        )
        self.lag_txns = gauge(
            "replication_lag_txns", "Transactions last found missing here, summed over databases.", ("peer",)
        )
        self.delta_txns = counter("delta_sync_txns_total", "Transactions applied by delta sync (log pull).")
        self.pair_results = counter(
            "log_pull_pair_results_total", "Log pulls of one (peer, database) pair, by result.", ("result",)
        )
        self.pull_applied = counter("log_pull_txns_applied_total", "Transactions log pull applied.")
        self.stuck = gauge("log_pull_stuck_txns", "Listed transactions that could not be applied yet.")

        # zero series, so every family is present (and rate() works) from the first scrape
        for g in (self.quorum, self.active, self.stuck):
            g.labels(nid).set(0)
        for c in (
            self.gossip_rounds,
            self.gossip_failures,
            self.ae_rounds,
            self.delta_txns,
            self.pull_applied,
        ):
            c.labels(nid)
        for h in (
            self.replica_prepare,
            self.replica_commit,
            self.replica_replay,
            self.rows_affected,
            self.rows_returned,
            self.ddl_lock_wait,
            self.ae_duration,
        ):
            h.labels(nid)
        for direction in ("sent", "received"):
            self.gossip_messages.labels(nid, direction)
        for result in ("accepted", "refused"):
            self.joins.labels(nid, result)
        for phase in ("prepare", "commit"):
            self.quorum_acks.labels(nid, phase)
        for result in ("success", "failure"):
            self.ddl.labels(nid, result)
        for kind in ("delta", "snapshot"):
            for result in ("success", "failure"):
                self.ae_syncs.labels(nid, kind, result)
        for result in ("success", "failure"):
            self.pair_results.labels(nid, result)
        self._affected = self.rows_affected.labels(nid)
        self._returned = self.rows_returned.labels(nid)
        self._seen: dict[str, int] = {}
        self._lag_peers: set[str] = set()
        self._children: dict[tuple[Any, ...], Any] = {}

    def child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = metric.labels(self._nid, *labels)
            if len(self._children) < 1024:
                self._children[key] = child
        return child

    def _advance(self, name: str, total: Any, child: Any) -> None:
        """Advance a counter to another component's running ``total`` (never backwards)."""
        value = int(total or 0)
        seen = self._seen.get(name, 0)
        if value > seen:
            child.inc(value - seen)
            self._seen[name] = value

    # -- events --------------------------------------------------------------------------------------------

    def rows(self, outcome: Any) -> None:
        """A statement's result: an OK packet's affected rows, or a result set's row count."""
        affected = getattr(outcome, "affected_rows", None)
        if affected is not None:
            self._affected.observe(affected)
            return
        rows = getattr(outcome, "rows", None)
        if rows is not None:
            self._returned.observe(len(rows))

    def query_error(self, kind: str) -> None:
        self.child(self.query_errors, kind).inc()

    def txn_finished(self, kind: str, result: str, seconds: float | None) -> None:
        if seconds is not None:
            self.child(self.txn_duration, kind).observe(seconds)
        if kind in ("ddl", "database"):
            self.child(self.ddl, "success" if result == "committed" else "failure").inc()

    def conflict(self, why: str, path: str) -> None:
        self.child(self.conflicts, conflict_type(why), path).inc()

    # -- state ---------------------------------------------------------------------------------------------

    def set_members(self, counts: dict[str, int], has_quorum: bool) -> None:
        for state, n in counts.items():
            self.child(self.cluster_nodes, state).set(n)
        self.child(self.quorum).set(1 if has_quorum else 0)

    def sync_gossip(self, stats: dict[str, int]) -> None:
        self._advance("gossip_sent", stats.get("gossip_sent"), self.child(self.gossip_rounds))
        self._advance("gossip_failed", stats.get("gossip_failed"), self.child(self.gossip_failures))
        self._advance("msg_sent", stats.get("gossip_sent"), self.child(self.gossip_messages, "sent"))
        self._advance("msg_recv", stats.get("gossip_received"), self.child(self.gossip_messages, "received"))
        self._advance("join_ok", stats.get("join_accepted"), self.child(self.joins, "accepted"))
        self._advance("join_no", stats.get("join_refused"), self.child(self.joins, "refused"))

    def set_replication(self, lag: list[dict[str, Any]], stats: dict[str, Any]) -> None:
        per_peer: dict[str, float] = {}
        for e in lag:
            peer = str(e.get("peer"))
            per_peer[peer] = per_peer.get(peer, 0.0) + float(e.get("behind_txns") or 0)
        for peer, behind in per_peer.items():
            self.child(self.lag_txns, peer).set(behind)
        for gone in self._lag_peers - set(per_peer):
            with contextlib.suppress(KeyError):
                self.lag_txns.remove(self._nid, gone)
            self._children.pop((id(self.lag_txns), gone), None)
        self._lag_peers = set(per_peer)
        self._advance("ae_rounds", stats.get("rounds"), self.child(self.ae_rounds))
        self._advance("ae_applied", stats.get("applied"), self.child(self.delta_txns))
        self._advance("ae_applied2", stats.get("applied"), self.child(self.pull_applied))
        self._advance("pairs_ok", stats.get("pairs_ok"), self.child(self.ae_syncs, "delta", "success"))
        self._advance("pairs_no", stats.get("pairs_failed"), self.child(self.ae_syncs, "delta", "failure"))
        self._advance("pairs_ok2", stats.get("pairs_ok"), self.child(self.pair_results, "success"))
        self._advance("pairs_no2", stats.get("pairs_failed"), self.child(self.pair_results, "failure"))
        self._advance("snap_ok", stats.get("snapshots"), self.child(self.ae_syncs, "snapshot", "success"))
        failed = int(stats.get("snapshots_failed") or 0) + int(stats.get("snapshots_refused") or 0)
        self._advance("snap_no", failed, self.child(self.ae_syncs, "snapshot", "failure"))
        self.child(self.stuck).set(float(stats.get("stuck") or 0))
