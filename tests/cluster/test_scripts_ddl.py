"""scripts/test-ddl-replication.sh (upstream's DDL/DML replication smoke test) passes on a 2-node cluster.

Why run it from pytest: the script is documented for users; running it here keeps it working, and
checks that it reports each of its steps (not only the exit code) and leaves no node running.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from tests.support import REPO

STEPS = (
    "CREATE TABLE on node 1 replicates to node 2",
    "INSERT on node 1 replicates to node 2",
    "UPDATE on node 2 replicates to node 1",
    "DELETE on node 1 replicates to node 2",
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.skipif(
    shutil.which("mysql") is None, reason="the mysql client (mariadb-client) is not installed"
)
def test_ddl_replication_script():
    env = dict(os.environ, MARMOT_PYTHON=sys.executable)
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "test-ddl-replication.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = done.stdout
    assert done.returncode == 0, f"exit {done.returncode}\n{out}\n{done.stderr}"
    for step in STEPS:
        assert f"PASS: {step}" in out, f"step not passed: {step}\n{out}\n{done.stderr}"
    assert "FAIL" not in out and "ALL PASSED" in out
    pids = [int(p) for p in re.findall(r"^node \d: .*, pid (\d+)$", out, re.M)]
    assert len(pids) == 2
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in pids), "the script left a node running"
