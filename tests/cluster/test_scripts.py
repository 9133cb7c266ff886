"""The example scripts: a 3-node cluster on the documented ports, PID files, a second run that finds the
cluster running and leaves it alone, ``status``, ``restart N``, and a stop that ends exactly the processes
they started."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pymysql
import pytest

from marmot.testing import pid_alive
from tests.support import REPO, wait_for

PORTS = (3307, 3308, 3309, 8081, 8082, 8083)
MARMOT = str(Path(sys.executable).parent / "marmot")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _pids(run_dir: Path) -> dict[int, int]:
    return {
        n: int((run_dir / f"node-{n}" / "marmot.pid").read_text())
        for n in (1, 2, 3)
        if (run_dir / f"node-{n}" / "marmot.pid").exists()
    }


def _members_alive(count: int) -> bool:
    out = subprocess.run(
        [MARMOT, "members", "--address", "127.0.0.1:8081", "--secret", "marmot-example-secret"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return f"{count} members, {count} alive" in out.stdout


@pytest.mark.skipif(
    not all(_port_free(p) for p in PORTS), reason="the example ports 3307-3309/8081-8083 are busy"
)
def test_run_cluster_status_restart_and_stop(tmp_path):
    env = dict(os.environ, MARMOT_RUN_DIR=str(tmp_path), MARMOT=MARMOT)
    script = REPO / "examples" / "run-cluster.sh"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(script), *args], env=env, capture_output=True, text=True, timeout=180
        )

    seen: set[int] = set()  # every node PID the scripts reported, stopped by PID at the end whatever happens
    try:
        started = run()
        seen.update(_pids(tmp_path).values())
        assert started.returncode == 0, started.stderr
        pids = _pids(tmp_path)
        for n, port in ((1, 3307), (2, 3308), (3, 3309)):
            assert (
                f"node {n}: running, pid {pids[n]}, MySQL 127.0.0.1:{port}, cluster 127.0.0.1:{8080 + n}"
                in started.stdout
            )
        assert all(pid_alive(pid) for pid in pids.values())
        assert _members_alive(3)

        # a second run finds the cluster running and leaves it as it is
        again = run()
        assert again.returncode == 0, again.stderr
        assert "the cluster already runs" in again.stdout
        assert _pids(tmp_path) == pids and all(pid_alive(pid) for pid in pids.values())
        for n in (1, 2, 3):
            assert (
                "in use by another marmot process" not in (tmp_path / f"node-{n}" / "marmot.log").read_text()
            )

        status = run("status")
        assert status.returncode == 0, status.stderr
        for n, pid in pids.items():
            assert re.search(
                rf"^node {n}: running, pid {pid}, MySQL 127\.0\.0\.1:{3306 + n}, "
                rf"cluster 127\.0\.0\.1:{8080 + n}",
                status.stdout,
                re.M,
            ), status.stdout

        restarted = run("restart", "2")
        seen.update(_pids(tmp_path).values())
        assert restarted.returncode == 0, restarted.stderr
        assert f"stopped pid {pids[2]}" in restarted.stdout
        new_pid = _pids(tmp_path)[2]
        assert new_pid != pids[2] and not pid_alive(pids[2]) and pid_alive(new_pid)
        assert f"node 2: running, pid {new_pid}" in restarted.stdout
        pymysql.connect(host="127.0.0.1", port=3308, user="root", password="").close()
        wait_for(lambda: _members_alive(3), timeout=60, interval=0.5)
        pids[2] = new_pid

        # a node that died without a word: status says so, a run starts only it again
        os.kill(pids[3], signal.SIGKILL)
        wait_for(lambda: not pid_alive(pids[3]), timeout=30)
        status = run("status")
        assert status.returncode == 3 and "node 3: not running" in status.stdout, status.stdout
        resumed = run()
        seen.update(_pids(tmp_path).values())
        assert resumed.returncode == 0, resumed.stderr
        assert "node 1 already runs" in resumed.stdout and "node 2 already runs" in resumed.stdout
        pids[3] = _pids(tmp_path)[3]
        assert pid_alive(pids[3]) and _pids(tmp_path) == pids

        assert run("restart", "9").returncode == 1  # never set up
    finally:
        stopped = run("stop")
        for pid in seen:  # anything the stop missed
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert stopped.returncode == 0 and stopped.stdout.count("stopped pid") == 3, stopped.stdout
    wait_for(lambda: not any(pid_alive(pid) for pid in pids.values()), timeout=30)
    assert not list(tmp_path.glob("node-*/marmot.pid"))
    status = run("status")
    assert status.returncode == 3 and status.stdout.count("not running") == 3


@pytest.mark.skipif(
    not all(_port_free(p) for p in (*PORTS, 3310, 8091)),
    reason="the example ports 3307-3310/8081-8083/8091 are busy",
)
def test_run_cluster_with_a_replica(tmp_path):
    """``run-cluster.sh --replicas 1``: a read-only replica on MySQL 3310 that follows the cluster, refuses
    writes with 1290, shows in ``status`` and is stopped by ``stop`` with the nodes."""
    env = dict(os.environ, MARMOT_RUN_DIR=str(tmp_path), MARMOT=MARMOT)
    script = REPO / "examples" / "run-cluster.sh"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(script), *args], env=env, capture_output=True, text=True, timeout=180
        )

    def replica_pid() -> int | None:
        pidfile = tmp_path / "node-51" / "marmot.pid"
        return int(pidfile.read_text()) if pidfile.exists() else None

    seen: set[int] = set()
    try:
        started = run("--replicas", "1")
        seen.update(_pids(tmp_path).values())
        if replica_pid():
            seen.add(replica_pid())
        assert started.returncode == 0, started.stderr
        assert re.search(
            r"^node 51 \(read-only replica\): running, pid \d+, MySQL 127\.0\.0\.1:3310, cluster 127\.0\.0\.1:8091",
            started.stdout,
            re.M,
        ), started.stdout
        primary = pymysql.connect(host="127.0.0.1", port=3307, user="root", password="", autocommit=True)
        primary.cursor().execute("CREATE DATABASE ex")
        primary.cursor().execute("CREATE TABLE ex.t (id INT PRIMARY KEY)")
        primary.cursor().execute("INSERT INTO ex.t VALUES (1), (2)")
        primary.close()

        def replica_rows() -> object:
            conn = pymysql.connect(host="127.0.0.1", port=3310, user="root", password="")
            try:
                cur = conn.cursor()
                cur.execute("SELECT COUNT(*) FROM ex.t")
                return cur.fetchone()[0]
            finally:
                conn.close()

        wait_for(lambda: replica_rows() == 2, timeout=30, ignore=(pymysql.err.MySQLError,))
        conn = pymysql.connect(host="127.0.0.1", port=3310, user="root", password="")
        with pytest.raises(pymysql.err.MySQLError) as err:
            conn.cursor().execute("INSERT INTO ex.t VALUES (3)")
        conn.close()
        assert err.value.args[0] == 1290
        status = run("status")
        assert status.returncode == 0 and "node 51 (read-only replica): running" in status.stdout
    finally:
        stopped = run("stop")
        for pid in seen:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert stopped.returncode == 0 and stopped.stdout.count("stopped pid") == 4, stopped.stdout
    assert not list(tmp_path.glob("node-*/marmot.pid"))
