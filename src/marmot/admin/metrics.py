"""Prometheus metrics of one node (``prometheus_client``; served at ``/metrics`` by ``admin.http``).

Each ``Metrics`` owns a private ``CollectorRegistry`` -- never the process-global one -- so several nodes
in one process (tests, benches) never clash. Every metric carries the constant label ``node_id``; since
``prometheus_client`` has no constant labels, ``node_id`` is an ordinary label bound once here and the
bound children are cached, so hot-path calls are a dict lookup plus a locked add (~0.3 µs per counter,
~0.8 µs per histogram observation on this machine kind; ``tests/unit/test_metrics.py`` prints them).

Names follow upstream's list (``reference/upstream-design.md`` §11.3) with ``marmot_v2_`` shortened to
``marmot_``; docs/metrics.md is the user-facing list and must stay in step with ``Metrics.__init__``.

Two kinds of metric:

- **events** -- counters and histograms bumped by the layer where the event happens, through the cheap
  methods below (``observe_query``, ``query_error``, ``connection_opened`` ...);
- **state** -- gauges derived from membership and storage (members per state, quorum, database sizes,
  table digests, replication lag), set by ``refresh(control)``, which ``admin.http`` calls right before
  every scrape. Counters owned by another component (gossip, anti-entropy) are advanced to its running
  totals at the same time.
"""

from __future__ import annotations

import contextlib
import enum
import inspect
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from marmot.admin.upstream_metrics import UpstreamMetrics

if TYPE_CHECKING:  # pragma: no cover
    from marmot.admin.http import ClusterControl

__all__ = ["CONTENT_TYPE_LATEST", "MEMBER_STATES", "QUERY_TYPES", "Metrics", "state_name"]

log = logging.getLogger("marmot.admin")

#: Membership states (SWIM registry); ``cluster_members{state}`` is exported for each, zeros included.
MEMBER_STATES = ("JOINING", "ALIVE", "SUSPECT", "DEAD", "LEAVING", "REMOVED")
#: Values of ``queries_total{type}`` and ``query_duration_seconds{type}``.
QUERY_TYPES = ("select", "insert", "update", "delete", "ddl", "other")

# Statement kinds other layers may pass, folded onto QUERY_TYPES (anything unknown is "other").
_QUERY_ALIASES = {
    "replace": "insert",
    "upsert": "insert",
    "load": "insert",
    "create": "ddl",
    "alter": "ddl",
    "drop": "ddl",
    "truncate": "ddl",
    "rename": "ddl",
}
# Latency buckets: a cached read on a local SQLite is ~50 µs, a QUORUM write a few ms, a snapshot seconds.
QUERY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
TWOPHASE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_CACHE_LIMIT = 512  # bound on lazily cached label children fed by free-form input (codes, states, kinds)


def state_name(state: Any) -> str:
    """``NodeState.ALIVE`` / ``"alive"`` / ``"ALIVE"`` -> ``"ALIVE"`` (membership may use enums or strings)."""
    if isinstance(state, enum.Enum):
        return state.name.upper()
    return str(state).upper()


class Metrics:
    """The metric objects of one node, their cached label children, and the hot-path methods."""

    def __init__(self, node_id: int, *, version: str = "") -> None:
        self.node_id = int(node_id)
        self.registry = CollectorRegistry(auto_describe=True)
        nid = str(self.node_id)
        self._nid = nid
        reg = self.registry

        def counter(name: str, doc: str, labels: Iterable[str] = ()) -> Counter:
            return Counter(name, doc, ("node_id", *labels), namespace="marmot", registry=reg)

        def gauge(name: str, doc: str, labels: Iterable[str] = ()) -> Gauge:
            return Gauge(name, doc, ("node_id", *labels), namespace="marmot", registry=reg)

        def histogram(
            name: str, doc: str, buckets: tuple[float, ...], labels: Iterable[str] = ()
        ) -> Histogram:
            return Histogram(
                name, doc, ("node_id", *labels), namespace="marmot", registry=reg, buckets=buckets
            )

        # -- build ------------------------------------------------------------------------------------------
        self.build_info = gauge("build_info", "Always 1; labels carry the Marmot version.", ("version",))
        self.build_info.labels(nid, version or "unknown").set(1)

        # -- membership / gossip ----------------------------------------------------------------------------
        self.cluster_members = gauge(
            "cluster_members",
            "Members of the cluster in each state, as this node sees them (self included).",
            ("state",),
        )
        self.cluster_quorum_available = gauge(
            "cluster_quorum_available",
            "1 when this node sees a quorum of the total membership alive (writes possible), else 0.",
        )
        self.node_state_transitions = counter(
            "node_state_transitions_total",
            "Membership state changes of any node observed by this node.",
            ("from", "to"),
        )
        self.gossip_rounds = counter("gossip_rounds_total", "Gossip rounds (one message to one peer).")
        self.gossip_failures = counter(
            "gossip_failures_total", "Gossip rounds that failed (peer did not answer in time)."
        )
        self.ping_req = counter(
            "ping_req_total", "Indirect probes (SWIM ping-req) sent on behalf of a failing direct probe."
        )

        # -- MySQL -----------------------------------------------------------------------------------------
        self.mysql_connections = gauge("mysql_connections", "MySQL client connections open now.")
        # Not "mysql_connections_total": a counter's family name drops "_total", which would clash with
        # the gauge above (prometheus_client refuses it; Prometheus/OpenMetrics treat them as one family).
        self.mysql_connections_total = counter(
            "mysql_connections_accepted_total", "MySQL client connections accepted since start."
        )
        self.queries = counter("queries_total", "Statements executed, by type.", ("type",))
        self.query_errors = counter(
            "query_errors_total", "Statements answered with a MySQL error, by error code.", ("code",)
        )
        self.query_duration = histogram(
            "query_duration_seconds", "Statement execution time, by type.", QUERY_BUCKETS, ("type",)
        )

        # -- transactions / replication ---------------------------------------------------------------------
        self.txn = counter(
            "txn_total", "Transactions coordinated by this node, by type and result.", ("type", "result")
        )
        self.twophase_prepare = histogram(
            "twophase_prepare_seconds",
            "Coordinator time of the 2PC PREPARE phase (send to quorum acks).",
            TWOPHASE_BUCKETS,
        )
        self.twophase_commit = histogram(
            "twophase_commit_seconds", "Coordinator time of the 2PC COMMIT phase.", TWOPHASE_BUCKETS
        )
        self.write_conflicts = counter(
            "write_conflicts_total",
            "Writes rejected because another transaction held a write intent on the same row (MySQL 1213).",
        )

        # -- storage --------------------------------------------------------------------------------------
        self.database_size_bytes = gauge(
            "database_size_bytes", "Size of each database's SQLite file(s).", ("database",)
        )
        self.databases = gauge("databases", "Number of user databases on this node.")

        # -- convergence / anti-entropy ------------------------------------------------------------------
        self.table_rows = gauge(
            "table_rows",
            "Live rows of each table that went through replication (the row count of its digest).",
            ("database", "table"),
        )
        self.table_digest_info = gauge(
            "table_digest_info",
            "Always 1; the digest label is the table's "
            "order-independent digest (16 hex digits): equal on every node when "
            "they hold the same rows.",
            ("database", "table", "digest"),
        )
        self.replication_lag_transactions = gauge(
            "replication_lag_transactions",
            "Transactions the last anti-entropy round found missing here, per peer and database.",
            ("peer", "database"),
        )
        self.replication_lag_seconds = gauge(
            "replication_lag_seconds",
            "Seconds since an anti-entropy round last found this node caught up with the peer's database.",
            ("peer", "database"),
        )
        self.divergent_tables = gauge(
            "replication_divergent_tables",
            "Tables whose digests differ from the peer's and did not move for two anti-entropy rounds.",
            ("peer", "database"),
        )
        self.antientropy_rounds = counter("antientropy_rounds_total", "Anti-entropy rounds run by this node.")
        self.antientropy_applied = counter(
            "antientropy_applied_total", "Transactions anti-entropy pulled from peers and applied here."
        )

        # -- bound children (the hot path never calls .labels()) -------------------------------------------
        self._query_children: dict[str, tuple[Any, Any]] = {}
        for kind in QUERY_TYPES:
            self._query_children[kind] = (
                self.queries.labels(nid, kind),
                self.query_duration.labels(nid, kind),
            )
        for alias, kind in _QUERY_ALIASES.items():
            self._query_children[alias] = self._query_children[kind]
        self._query_other = self._query_children["other"]
        self._error_children: dict[int, Any] = {}
        self._transition_children: dict[tuple[Any, Any], Any] = {}
        self._txn_children: dict[tuple[str, str], Any] = {}
        self._member_children = {s: self.cluster_members.labels(nid, s) for s in MEMBER_STATES}
        for child in self._member_children.values():
            child.set(0)
        self._quorum = self.cluster_quorum_available.labels(nid)
        self._quorum.set(0)
        self._gossip_rounds = self.gossip_rounds.labels(nid)
        self._gossip_seen: dict[str, int] = {}
        self._gossip_failures = self.gossip_failures.labels(nid)
        self._ping_req = self.ping_req.labels(nid)
        self._conn_open = self.mysql_connections.labels(nid)
        self._conn_total = self.mysql_connections_total.labels(nid)
        self._prepare = self.twophase_prepare.labels(nid)
        self._commit = self.twophase_commit.labels(nid)
        self._conflicts = self.write_conflicts.labels(nid)
        self._databases = self.databases.labels(nid)
        self._db_sizes: set[str] = set()
        self._table_rows: set[tuple[str, str]] = set()
        self._digest_info: dict[tuple[str, str], str] = {}  # (db, table) -> digest label exported now
        self._lag_series: set[tuple[str, str]] = set()
        self._ae_rounds = self.antientropy_rounds.labels(nid)
        self._ae_applied = self.antientropy_applied.labels(nid)
        self._ae_seen: dict[str, int] = {}
        # upstream's ``marmot_v2_*`` families beside ours (upstream_metrics.py), fed by the methods below
        self.v2 = UpstreamMetrics(reg, nid, QUERY_BUCKETS, self)
        self._canonical: dict[str, str] = {}

    # ---------------------------------------------------------------------------------------------------------
    # hot path: each is a dict lookup at most plus one or two locked adds

    def observe_query(self, kind: str, seconds: float, result: Any = None) -> None:
        """Count one statement of ``kind`` (select/insert/update/delete/ddl/other; case-insensitive,
        "replace" counts as insert, "create"/"alter"/"drop" as ddl, anything else as other). ``result``
        (an ``OkResult`` or ``ResultSet``) feeds upstream's ``rows_affected`` / ``rows_returned``."""
        children = self._query_children.get(kind)
        if children is None:
            children = self._query_kind(kind)
        children[0].inc()
        children[1].observe(seconds)
        if result is not None:
            self.v2.rows(result)

    def canonical_kind(self, kind: str) -> str:
        """``kind`` folded onto ``QUERY_TYPES`` (cached)."""
        name = self._canonical.get(kind)
        if name is None:
            key = str(kind).lower()
            name = _QUERY_ALIASES.get(key, key if key in QUERY_TYPES else "other")
            if len(self._canonical) < _CACHE_LIMIT:
                self._canonical[kind] = name
        return name

    def _query_kind(self, kind: str) -> tuple[Any, Any]:
        key = str(kind).lower()
        children = self._query_children.get(key, self._query_other)
        if len(self._query_children) < _CACHE_LIMIT:
            self._query_children[kind] = children
        return children

    def query_error(self, code: int, kind: str | None = None) -> None:
        """Count one statement answered with MySQL error ``code`` (1064, 1213, ...); ``kind``: its
        statement kind when known (upstream's ``queries_total{result="error"}``)."""
        self.v2.query_error(self.canonical_kind(kind or "other"))
        child = self._error_children.get(code)
        if child is None:
            child = self.query_errors.labels(self._nid, str(int(code)))
            if len(self._error_children) < _CACHE_LIMIT:
                self._error_children[code] = child
        child.inc()

    def connection_opened(self) -> None:
        self._conn_open.inc()
        self._conn_total.inc()

    def connection_closed(self) -> None:
        self._conn_open.dec()

    def state_transition(self, old: Any, new: Any) -> None:
        """Count a membership state change (states may be enum members or strings)."""
        key = (old, new)
        child = self._transition_children.get(key)
        if child is None:
            child = self.node_state_transitions.labels(self._nid, state_name(old), state_name(new))
            if len(self._transition_children) < _CACHE_LIMIT:
                self._transition_children[key] = child
        child.inc()
        self.v2.child(self.v2.transitions, state_name(old), state_name(new)).inc()

    def gossip_round(self, ok: bool) -> None:
        self._gossip_rounds.inc()
        if not ok:
            self._gossip_failures.inc()

    def ping_req_sent(self) -> None:
        self._ping_req.inc()

    def txn_finished(self, kind: str, result: str, seconds: float | None = None) -> None:
        """Count a coordinated transaction: ``txn_total{type=kind, result=result}``, e.g.
        ``("dml", "committed")``, ``("ddl", "conflict")`` (docs/metrics.md lists the values); ``seconds``
        its coordinator time (upstream's ``txn_duration_seconds``)."""
        self.v2.txn_finished(str(kind), str(result), seconds)
        key = (kind, result)
        child = self._txn_children.get(key)
        if child is None:
            child = self.txn.labels(self._nid, str(kind), str(result))
            if len(self._txn_children) < _CACHE_LIMIT:
                self._txn_children[key] = child
        child.inc()

    def observe_prepare(self, seconds: float) -> None:
        self._prepare.observe(seconds)

    def observe_commit(self, seconds: float) -> None:
        self._commit.observe(seconds)

    def write_conflict(self, why: str = "", path: str = "coordinator") -> None:
        """A write conflict: ``path`` ``coordinator`` (a transaction this node coordinated was refused;
        also counted in ours) or ``participant`` (this node refused a peer's PREPARE: upstream only)."""
        if path == "coordinator":
            self._conflicts.inc()
        self.v2.conflict(why, path)

    def quorum_acks(self, phase: str, acks: int) -> None:
        """Acknowledgements a 2PC phase (``prepare``/``commit``) collected, this node's own included."""
        self.v2.child(self.v2.quorum_acks, phase).observe(acks)

    def replication_request(self, phase: str, result: str, n: int = 1) -> None:
        """``n`` 2PC requests of ``phase`` to peers ended with ``result`` (docs/metrics.md lists them)."""
        if n > 0:
            self.v2.child(self.v2.requests, phase, result).inc(n)

    def replica_seconds(self, phase: str, seconds: float) -> None:
        """Participant time to answer a peer's ``prepare``, ``commit`` or ``replay``."""
        hist = {"prepare": self.v2.replica_prepare, "commit": self.v2.replica_commit}.get(
            phase, self.v2.replica_replay
        )
        self.v2.child(hist).observe(seconds)

    def ddl_lock_wait(self, seconds: float) -> None:
        self.v2.child(self.v2.ddl_lock_wait).observe(seconds)

    def antientropy_round(self, seconds: float) -> None:
        self.v2.child(self.v2.ae_duration).observe(seconds)

    # ---------------------------------------------------------------------------------------------------------
    # state gauges

    def set_members(self, members: Iterable[dict[str, Any]], has_quorum: bool) -> None:
        counts = dict.fromkeys(MEMBER_STATES, 0)
        for m in members:
            s = state_name(m.get("state", ""))
            counts[s] = counts.get(s, 0) + 1
        for s, n in counts.items():
            child = self._member_children.get(s)
            if child is None:  # a state this module does not know yet: export it anyway
                child = self._member_children[s] = self.cluster_members.labels(self._nid, s)
            child.set(n)
        self._quorum.set(1 if has_quorum else 0)
        self.v2.set_members(counts, has_quorum)

    def set_databases(self, databases: Iterable[dict[str, Any]]) -> None:
        seen: set[str] = set()
        for db in databases:
            name = str(db.get("name", ""))
            if not name:
                continue
            seen.add(name)
            self.database_size_bytes.labels(self._nid, name).set(float(db.get("size_bytes") or 0))
        for gone in self._db_sizes - seen:  # dropped databases must disappear, not freeze at their last size
            with contextlib.suppress(KeyError):
                self.database_size_bytes.remove(self._nid, gone)
        self._db_sizes = seen
        self._databases.set(len(seen))

    def sync_gossip(self, stats: dict[str, int]) -> None:
        """Advance the gossip counters to the membership driver's own running totals."""
        for name, child in (
            ("gossip_sent", self._gossip_rounds),
            ("gossip_failed", self._gossip_failures),
            ("probe_direct_failed", self._ping_req),
        ):
            total = int(stats.get(name, 0))
            seen = self._gossip_seen.get(name, 0)
            if total > seen:
                child.inc(total - seen)
                self._gossip_seen[name] = total
        self.v2.sync_gossip(stats)

    def set_digests(self, digests: dict[str, dict[str, tuple[int, int]]]) -> None:
        """``{db: {table: (digest, rows)}}`` -> ``table_rows`` and ``table_digest_info``. A changed digest
        replaces its series (the old label set is removed, not left at 1); dropped tables disappear."""
        nid = self._nid
        rows_seen: set[tuple[str, str]] = set()
        info: dict[tuple[str, str], str] = {}
        for db, tables in digests.items():
            for table, (value, rows) in tables.items():
                rows_seen.add((db, table))
                self.table_rows.labels(nid, db, table).set(rows)
                info[(db, table)] = f"{value:016x}"
        for db, table in self._table_rows - rows_seen:
            with contextlib.suppress(KeyError):
                self.table_rows.remove(nid, db, table)
        for (db, table), old in self._digest_info.items():
            if info.get((db, table)) != old:
                with contextlib.suppress(KeyError):
                    self.table_digest_info.remove(nid, db, table, old)
        for (db, table), label in info.items():
            self.table_digest_info.labels(nid, db, table, label).set(1)
        self._table_rows = rows_seen
        self._digest_info = info

    def set_replication(self, status: dict[str, Any]) -> None:
        """A ``replication_status()`` answer -> the lag gauges, and the anti-entropy counters advanced to
        anti-entropy's own running totals."""
        nid = self._nid
        seen: set[tuple[str, str]] = set()
        for e in status.get("lag") or []:
            labels = (str(e.get("peer")), str(e.get("database")))
            seen.add(labels)
            self.replication_lag_transactions.labels(nid, *labels).set(float(e.get("behind_txns") or 0))
            self.replication_lag_seconds.labels(nid, *labels).set(float(e.get("lag_seconds") or 0))
            self.divergent_tables.labels(nid, *labels).set(len(e.get("divergent_tables") or ()))
        for labels in self._lag_series - seen:
            for g in (self.replication_lag_transactions, self.replication_lag_seconds, self.divergent_tables):
                with contextlib.suppress(KeyError):
                    g.remove(nid, *labels)
        self._lag_series = seen
        stats = status.get("anti_entropy") or {}
        for name, child in (("rounds", self._ae_rounds), ("applied", self._ae_applied)):
            total = int(stats.get(name, 0) or 0)
            seen_total = self._ae_seen.get(name, 0)
            if total > seen_total:
                child.inc(total - seen_total)
                self._ae_seen[name] = total
        self.v2.set_replication(list(status.get("lag") or []), stats)

    def refresh_replication(self, control: ClusterControl) -> None:
        """Digest and lag gauges, when ``control`` offers ``table_digests()`` / ``replication_status()``
        (test fakes may not). A failure keeps the last values: a scrape must not fail because a database
        file is being replaced."""
        digests = getattr(control, "table_digests", None)
        if callable(digests):
            try:
                self.set_digests(digests())
            except Exception:
                log.warning(
                    "metrics: reading table digests failed; digest gauges not refreshed", exc_info=True
                )
        active = getattr(control, "active_transactions", None)
        if callable(active):
            with contextlib.suppress(Exception):
                self.v2.child(self.v2.active).set(int(active()))
        status = getattr(control, "replication_status", None)
        if callable(status):
            try:
                result = status()
                if inspect.iscoroutine(result):
                    result.close()  # the sync path: only a plain answer is used
                elif isinstance(result, dict):
                    self.set_replication(result)
            except Exception:
                log.warning(
                    "metrics: reading replication lag failed; lag gauges not refreshed", exc_info=True
                )

    def refresh_membership(self, control: ClusterControl) -> None:
        """Member gauges, quorum, and the gossip counters (when ``control`` has ``gossip_stats()``)."""
        self.set_members(control.members(), bool(control.has_quorum()))
        stats = getattr(control, "gossip_stats", None)
        if callable(stats):
            self.sync_gossip(stats())

    def refresh(self, control: ClusterControl, databases: list[dict[str, Any]] | None = None) -> None:
        """Set the state gauges from ``control`` (``admin.http`` calls it before every scrape).

        ``databases`` may be passed when the caller already has the list; otherwise ``control.databases()``
        is called, and skipped when it is a coroutine function (``admin.http`` awaits it and passes it in).
        """
        self.refresh_membership(control)
        if databases is None:
            result = control.databases()
            if inspect.isawaitable(result):
                if inspect.iscoroutine(result):
                    result.close()  # never awaited on purpose: this is the sync path
                return
            databases = result
        self.set_databases(databases)
        self.refresh_replication(control)

    def exposition(self) -> bytes:
        """The registry in Prometheus text format (``CONTENT_TYPE_LATEST``), without the ``*_created``
        samples prometheus_client adds to counters and histograms (turning them off is process-global)."""
        return generate_latest(_WithoutCreated(self.registry))


class _WithoutCreated:
    """A registry view dropping ``<name>_created`` samples: they double the series count and upstream
    (Go client) has none. ``collect()`` builds fresh families per call, so trimming them in place is safe."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Any]:
        for family in self._registry.collect():
            created = family.name + "_created"
            family.samples = [s for s in family.samples if s.name != created]
            yield family
