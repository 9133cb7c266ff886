"""Snapshots served cheaply: several replicas bootstrapping from one cluster node at once cost that node
one export (its snapshot cache, ``[replica] snapshot_cache_ttl_seconds``), and each replica installs a
whole copy. Real processes: a one-node cluster and five replicas started together."""

from __future__ import annotations

import re
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from marmot.testing.admin import admin_json
from marmot.testing.cluster import LocalCluster
from marmot.testing.replicas import make_replica
from tests.support import run, wait_for

REPLICAS = 5


def _metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    m = re.search(rf"^{name}\{{[^}}]*\}} ([0-9.e+]+)$", text, re.M)
    assert m is not None, f"{name} not in /metrics"
    return float(m.group(1))


def test_replicas_bootstrapping_together_cost_one_snapshot(tmp_path: Path) -> None:
    with LocalCluster(1, tmp_path / "cluster") as cl:
        node = cl.node(1)
        run(
            node,
            "CREATE DATABASE big",
            "CREATE TABLE big.t (id INT PRIMARY KEY, v TEXT)",
            *(f"INSERT INTO big.t VALUES ({i}, REPEAT('x', 200))" for i in range(300)),
        )
        replicas = [
            make_replica(tmp_path / f"r{i}", [node], node_id=40 + i, databases=["big"])
            for i in range(REPLICAS)
        ]
        try:
            with ThreadPoolExecutor(REPLICAS) as pool:
                list(pool.map(lambda r: r.start(), replicas))
            for r in replicas:
                wait_for(
                    lambda r=r: admin_json(r, "/admin/replica/status")["state"] == "STREAMING",
                    60,
                    "STREAMING",
                )
                assert run(r, "SELECT COUNT(*) FROM big.t", db=None) == ((300,),)
                assert admin_json(r, "/admin/replica/status")["pull"]["snapshots"] == 1
        finally:
            for r in replicas:
                r.stop()
        assert _metric(node.grpc_port, "marmot_replica_snapshots_served_total") == REPLICAS
        assert _metric(node.grpc_port, "marmot_replica_snapshots_built_total") == 1
