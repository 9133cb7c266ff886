"""The example scripts: a 3-node cluster on the documented ports, PID files, and a stop that ends
exactly the processes they started."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster.test_membership_cluster import wait_for
from tests.nodeproc import REPO

PORTS = (3307, 3308, 3309, 8081, 8082, 8083)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


@pytest.mark.skipif(not all(_port_free(p) for p in PORTS), reason="the example ports 3307-3309/8081-8083 are busy")
def test_run_cluster_and_stop(tmp_path):
    env = dict(os.environ, MARMOT_RUN_DIR=str(tmp_path), MARMOT=str(Path(sys.executable).parent / "marmot"))
    script = REPO / "examples" / "run-cluster.sh"
    started = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=120)
    pids = []
    try:
        assert started.returncode == 0, started.stderr
        for n, port in ((1, 3307), (2, 3308), (3, 3309)):
            assert f"node {n}: MySQL 127.0.0.1:{port}" in started.stdout
            pids.append(int((tmp_path / f"node-{n}" / "marmot.pid").read_text()))
        for pid in pids:
            os.kill(pid, 0)  # running
        members = subprocess.run([str(Path(sys.executable).parent / "marmot"), "members", "--address",
                                  "127.0.0.1:8081", "--secret", "marmot-example-secret"],
                                 capture_output=True, text=True, timeout=30)
        assert "3 members, 3 alive" in members.stdout
    finally:
        stopped = subprocess.run(["bash", str(script), "stop"], env=env, capture_output=True, text=True,
                                 timeout=60)
    assert stopped.returncode == 0 and stopped.stdout.count("stopped pid") == 3

    def gone() -> bool:
        for pid in pids:
            try:
                os.kill(pid, 0)
                return False
            except ProcessLookupError:
                continue
        return True

    wait_for(gone, timeout=10)
    assert not list(tmp_path.glob("node-*/marmot.pid"))
