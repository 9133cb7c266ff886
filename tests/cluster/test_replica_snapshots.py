"""Snapshots served cheaply: several replicas bootstrapping from one cluster node at once cost that node
one export (its snapshot cache, ``[replica] snapshot_cache_ttl_seconds``), and each replica installs a
whole copy. Real processes: a one-node cluster and five replicas started together."""

from __future__ import annotations

import re
import time
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


def test_a_restore_started_in_a_terminal_draws_a_progress_bar(tmp_path: Path) -> None:
    """A replica whose stderr is a terminal (a pty here) draws the snapshot's progress bar while it
    bootstraps; the same restore with stderr in a file logs its progress instead (the other test)."""
    import os
    import pty
    import select
    import signal
    import subprocess
    import sys

    with LocalCluster(1, tmp_path / "cluster") as cl:
        node = cl.node(1)
        run(
            node,
            "CREATE DATABASE big",
            "CREATE TABLE big.t (id INT PRIMARY KEY, v TEXT)",
            *(f"INSERT INTO big.t VALUES ({i}, REPEAT('x', 200))" for i in range(50)),
        )
        replica = make_replica(tmp_path / "tty", [node], node_id=49, databases=["big"])
        master, slave = pty.openpty()
        log = open(tmp_path / "tty.log", "wb")  # noqa: SIM115 - the child writes it
        proc = subprocess.Popen(
            [sys.executable, "-m", "marmot.cli", "--config", str(replica.config_path)],
            stdout=log,
            stderr=slave,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        os.close(slave)
        seen = b""
        try:
            deadline = time.monotonic() + 60
            while b"100.0%" not in seen and time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], 0.5)
                if ready:
                    try:
                        seen += os.read(master, 65536)
                    except OSError:
                        break
        finally:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(5)
            os.close(master)
            log.close()
        text = seen.decode(errors="replace")
        assert re.search(r"restoring big from node 1 \[#+\] 100\.0%", text), text[-2000:]


def test_snapshot_concurrency_bounds_parallel_bootstraps(tmp_path: Path) -> None:
    """With ``snapshot_concurrency = 1`` the replica bootstraps one database at a time: in its log every
    snapshot is installed before the next one starts."""
    from marmot.testing.replicas import FAST_REPLICA

    with LocalCluster(1, tmp_path / "cluster") as cl:
        node = cl.node(1)
        for db in ("a1", "a2", "a3"):
            run(
                node,
                f"CREATE DATABASE {db}",
                f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v TEXT)",
                *(f"INSERT INTO {db}.t VALUES ({i}, REPEAT('y', 500))" for i in range(40)),
            )
        replica = make_replica(
            tmp_path / "one",
            [node],
            node_id=48,
            databases=["a?"],
            replica_extra=FAST_REPLICA + "snapshot_concurrency = 1\n",
        )
        try:
            replica.start()
            wait_for(
                lambda: admin_json(replica, "/admin/replica/status")["state"] == "STREAMING", 60, "STREAMING"
            )
            assert admin_json(replica, "/admin/replica/status")["pull"]["snapshots"] == 3
        finally:
            replica.stop()
        events = re.findall(
            r"(catches up from node \d+ by snapshot|installed a snapshot)", replica.log_path.read_text()
        )
        assert events == ["catches up from node 1 by snapshot", "installed a snapshot"] * 3, events
