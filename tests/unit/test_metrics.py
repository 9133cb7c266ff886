"""Metrics: private registries, node_id on every sample, hot-path methods, state gauges, exposition."""

from __future__ import annotations

import enum

import prometheus_client
from prometheus_client.parser import text_string_to_metric_families

from marmot.admin.metrics import MEMBER_STATES, QUERY_TYPES, Metrics, state_name


def families(m: Metrics) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(m.exposition().decode())}


def sample(m: Metrics, name: str, **labels: str) -> float | None:
    for fam in text_string_to_metric_families(m.exposition().decode()):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


EXPECTED = {
    "marmot_build_info": "gauge",
    "marmot_cluster_members": "gauge",
    "marmot_cluster_quorum_available": "gauge",
    "marmot_node_state_transitions": "counter",
    "marmot_gossip_rounds": "counter",
    "marmot_gossip_failures": "counter",
    "marmot_ping_req": "counter",
    "marmot_mysql_connections": "gauge",
    "marmot_mysql_connections_accepted": "counter",
    "marmot_queries": "counter",
    "marmot_query_errors": "counter",
    "marmot_query_duration_seconds": "histogram",
    "marmot_txn": "counter",
    "marmot_twophase_prepare_seconds": "histogram",
    "marmot_twophase_commit_seconds": "histogram",
    "marmot_write_conflicts": "counter",
    "marmot_database_size_bytes": "gauge",
    "marmot_databases": "gauge",
    "marmot_table_rows": "gauge",
    "marmot_table_digest_info": "gauge",
    "marmot_replication_lag_transactions": "gauge",
    "marmot_replication_lag_seconds": "gauge",
    "marmot_replication_divergent_tables": "gauge",
    "marmot_antientropy_rounds": "counter",
    "marmot_antientropy_applied": "counter",
}

# upstream's families (reference/upstream-design.md §11.3), exported beside ours (admin/upstream_metrics.py)
UPSTREAM = {
    f"marmot_v2_{name}": kind
    for name, kind in {
        "cluster_nodes": "gauge",
        "cluster_quorum_available": "gauge",
        "gossip_rounds": "counter",
        "gossip_messages": "counter",
        "gossip_failures": "counter",
        "node_state_transitions": "counter",
        "cluster_join": "counter",
        "txn": "counter",
        "txn_duration_seconds": "histogram",
        "twophase_prepare_seconds": "histogram",
        "twophase_commit_seconds": "histogram",
        "twophase_quorum_acks": "histogram",
        "write_conflicts": "counter",
        "replication_requests": "counter",
        "active_transactions": "gauge",
        "replica_prepare_seconds": "histogram",
        "replica_commit_seconds": "histogram",
        "replica_replay_seconds": "histogram",
        "queries": "counter",
        "query_duration_seconds": "histogram",
        "rows_affected": "histogram",
        "rows_returned": "histogram",
        "mysql_connections": "gauge",
        "ddl_operations": "counter",
        "ddl_lock_wait_seconds": "histogram",
        "antientropy_rounds": "counter",
        "antientropy_syncs": "counter",
        "antientropy_duration_seconds": "histogram",
        "replication_lag_txns": "gauge",
        "delta_sync_txns": "counter",
        "log_pull_pair_results": "counter",
        "log_pull_txns_applied": "counter",
        "log_pull_stuck_txns": "gauge",
    }.items()
}


def test_every_documented_family_is_exported_with_its_type() -> None:
    fams = families(Metrics(1))
    for name, kind in {**EXPECTED, **UPSTREAM}.items():
        assert name in fams, name
        assert fams[name].type == kind, name
    assert set(fams) == set(EXPECTED) | set(UPSTREAM)


def test_docs_list_every_metric() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text()
    for name, kind in {**EXPECTED, **UPSTREAM}.items():
        exported = name + "_total" if kind == "counter" else name
        assert f"`{exported}`" in doc, exported


def test_every_sample_carries_node_id_and_no_created_series() -> None:
    m = Metrics(7, version="1.2.3")
    m.observe_query("select", 0.001)
    m.query_error(1064)
    m.state_transition("ALIVE", "SUSPECT")
    m.txn_finished("autocommit", "committed")
    m.set_databases([{"name": "app", "size_bytes": 4096}])
    n = 0
    for fam in text_string_to_metric_families(m.exposition().decode()):
        for s in fam.samples:
            n += 1
            assert s.labels.get("node_id") == "7", s
            assert not s.name.endswith("_created"), s
    assert n > 50
    assert sample(m, "marmot_build_info", version="1.2.3") == 1


def test_private_registries_do_not_clash_and_stay_off_the_global_one() -> None:
    a, b = Metrics(1), Metrics(2)
    a.observe_query("insert", 0.002)
    assert sample(a, "marmot_queries_total", type="insert") == 1
    assert sample(b, "marmot_queries_total", type="insert") == 0
    assert a.registry is not prometheus_client.REGISTRY
    assert (
        prometheus_client.REGISTRY.get_sample_value(
            "marmot_queries_total", {"node_id": "1", "type": "insert"}
        )
        is None
    )
    Metrics(1)  # the same node id again in one process is fine too


def test_observe_query_kinds_aliases_and_histogram() -> None:
    m = Metrics(1)
    m.observe_query("select", 0.0002)
    m.observe_query("SELECT", 0.003)
    m.observe_query("Insert", 0.01)
    m.observe_query("replace", 0.01)
    m.observe_query("create", 0.5)
    m.observe_query("update", 0.001)
    m.observe_query("delete", 0.001)
    m.observe_query("show", 0.0001)
    m.observe_query("set", 0.0001)
    assert sample(m, "marmot_queries_total", type="select") == 2
    assert sample(m, "marmot_queries_total", type="insert") == 2
    assert sample(m, "marmot_queries_total", type="ddl") == 1
    assert sample(m, "marmot_queries_total", type="update") == 1
    assert sample(m, "marmot_queries_total", type="delete") == 1
    assert sample(m, "marmot_queries_total", type="other") == 2
    assert sample(m, "marmot_query_duration_seconds_count", type="select") == 2
    assert abs(sample(m, "marmot_query_duration_seconds_sum", type="select") - 0.0032) < 1e-9
    assert sample(m, "marmot_query_duration_seconds_bucket", type="select", le="0.00025") == 1
    assert sample(m, "marmot_query_duration_seconds_bucket", type="select", le="0.005") == 2
    assert sample(m, "marmot_query_duration_seconds_bucket", type="select", le="+Inf") == 2
    types = {
        s.labels["type"]
        for f in text_string_to_metric_families(m.exposition().decode())
        if f.name == "marmot_queries"
        for s in f.samples
    }
    assert types == set(QUERY_TYPES)


def test_free_form_label_caches_are_bounded() -> None:
    m = Metrics(1)
    for i in range(2000):
        m.observe_query(f"weird{i}", 0.0)
    assert len(m._query_children) <= 512
    assert sample(m, "marmot_queries_total", type="other") == 2000


def test_errors_connections_gossip_and_transitions() -> None:
    class State(enum.Enum):
        ALIVE = 1
        SUSPECT = 2

    m = Metrics(4)
    m.query_error(1064)
    m.query_error(1064)
    m.query_error(1213)
    m.connection_opened()
    m.connection_opened()
    m.connection_closed()
    m.gossip_round(True)
    m.gossip_round(False)
    m.ping_req_sent()
    m.state_transition(State.ALIVE, State.SUSPECT)
    m.state_transition("alive", "suspect")
    m.state_transition("SUSPECT", "DEAD")
    m.txn_finished("autocommit", "committed")
    m.txn_finished("explicit", "conflict")
    m.observe_prepare(0.002)
    m.observe_commit(0.001)
    m.write_conflict()
    assert sample(m, "marmot_query_errors_total", code="1064") == 2
    assert sample(m, "marmot_query_errors_total", code="1213") == 1
    assert sample(m, "marmot_mysql_connections") == 1
    assert sample(m, "marmot_mysql_connections_accepted_total") == 2
    assert sample(m, "marmot_gossip_rounds_total") == 2
    assert sample(m, "marmot_gossip_failures_total") == 1
    assert sample(m, "marmot_ping_req_total") == 1
    assert sample(m, "marmot_node_state_transitions_total", **{"from": "ALIVE", "to": "SUSPECT"}) == 2
    assert sample(m, "marmot_node_state_transitions_total", **{"from": "SUSPECT", "to": "DEAD"}) == 1
    assert sample(m, "marmot_txn_total", type="explicit", result="conflict") == 1
    assert sample(m, "marmot_twophase_prepare_seconds_count") == 1
    assert sample(m, "marmot_twophase_commit_seconds_count") == 1
    assert sample(m, "marmot_write_conflicts_total") == 1
    assert state_name(State.SUSPECT) == "SUSPECT"


class FakeControl:
    node_id = 1

    def __init__(self, dbs: object) -> None:
        self._dbs = dbs

    def members(self) -> list[dict]:
        return [
            {"node_id": 1, "state": "ALIVE"},
            {"node_id": 2, "state": "alive"},
            {"node_id": 3, "state": "SUSPECT"},
            {"node_id": 4, "state": "REMOVED"},
        ]

    def has_quorum(self) -> bool:
        return True

    def databases(self) -> object:
        return self._dbs() if callable(self._dbs) else self._dbs


def test_refresh_sets_member_quorum_and_database_gauges() -> None:
    m = Metrics(1)
    m.refresh(FakeControl([{"name": "a", "size_bytes": 100, "tables": 2}, {"name": "b", "size_bytes": 5}]))
    assert sample(m, "marmot_cluster_members", state="ALIVE") == 2
    assert sample(m, "marmot_cluster_members", state="SUSPECT") == 1
    assert sample(m, "marmot_cluster_members", state="REMOVED") == 1
    assert sample(m, "marmot_cluster_members", state="DEAD") == 0
    assert {s for s in MEMBER_STATES} <= {
        s.labels["state"]
        for f in text_string_to_metric_families(m.exposition().decode())
        if f.name == "marmot_cluster_members"
        for s in f.samples
    }
    assert sample(m, "marmot_cluster_quorum_available") == 1
    assert sample(m, "marmot_databases") == 2
    assert sample(m, "marmot_database_size_bytes", database="a") == 100
    # a dropped database disappears instead of freezing at its last size
    m.refresh(FakeControl([{"name": "b", "size_bytes": 7}]))
    assert sample(m, "marmot_database_size_bytes", database="a") is None
    assert sample(m, "marmot_database_size_bytes", database="b") == 7
    assert sample(m, "marmot_databases") == 1


def test_refresh_skips_a_coroutine_databases_without_warning(recwarn) -> None:
    async def dbs() -> list[dict]:
        return [{"name": "x", "size_bytes": 1}]

    m = Metrics(1)
    m.refresh(FakeControl(dbs))
    assert sample(m, "marmot_cluster_quorum_available") == 1
    assert sample(m, "marmot_databases") == 0
    assert not [w for w in recwarn if "never awaited" in str(w.message)]
