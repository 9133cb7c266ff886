"""Shared fixtures (``tests/support/fixtures.py``) and the markers every test gets from its directory.

tests/unit → ``unit``, tests/cluster → ``cluster``, tests/integration → ``integration``, tests/chaos →
``chaos``; the tests in ``SLOW`` (15 s or more on the loaded 2-core machine) also get ``slow``. So
``pytest -m unit`` (``make test-unit``) or ``pytest -m "not slow"`` need no list to remember.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import tests.support.fuzzing  # noqa: F401  - registers and loads the Hypothesis profile (ci or fuzz)

pytest_plugins = ["tests.support.fixtures"]

TESTS = Path(__file__).resolve().parent
BY_DIRECTORY = {"unit": "unit", "cluster": "cluster", "integration": "integration", "chaos": "chaos"}
# the long ones, by file (relative to tests/) or node id: 15 s or more each on the shared 2-core machine
SLOW = {
    "chaos/test_chaos.py",
    "cluster/test_catch_up.py::test_node_down_catches_up_by_log_pull",
    "cluster/test_cdc_nats.py::test_every_acknowledged_write_of_a_killed_coordinator_is_published",
    "cluster/test_cdc_nats.py::test_new_sink_with_initial_snapshot_emits_existing_rows_then_changes",
    "cluster/test_ddl_isolation.py::test_sysbench_parallel_prepare_and_read_write",
    "cluster/test_digest_verify.py::test_digests_verify_and_lag",
    "cluster/test_operator_cli.py::test_operator_commands_on_a_live_cluster",
    "cluster/test_scripts.py::test_run_cluster_status_restart_and_stop",
    "cluster/test_scripts.py::test_run_cluster_with_a_replica",
    "cluster/test_replica_snapshots.py::test_replicas_bootstrapping_together_cost_one_snapshot",
    "cluster/test_replica_states.py::test_gc_does_not_wait_for_a_replica_which_re_snapshots",
    "cluster/test_wordpress_cluster.py",
    "integration/test_kafka_cdc.py::test_events_written_while_the_broker_is_down_arrive_after_it_is_back",
    "cluster/test_cdc_kafka.py",
    "integration/test_overload.py",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(item.path).resolve()
        if not path.is_relative_to(TESTS):
            continue
        rel = path.relative_to(TESTS).as_posix()
        marker = BY_DIRECTORY.get(rel.split("/")[0])
        if marker:
            item.add_marker(marker)
        if rel in SLOW or f"{rel}::{getattr(item, 'originalname', item.name)}" in SLOW:
            item.add_marker(pytest.mark.slow)
