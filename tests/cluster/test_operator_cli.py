"""The operator commands (issue #18 point 3) against real node processes: ``marmot status``,
``databases``, ``remove``, ``allow`` and ``decommission`` do what the admin routes do, print it for
people, and fail with the node's reason and a non-zero exit (1 refused or unreachable, 2 bad secret)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from marmot.testing import SECRET, free_port, member_states
from tests.cluster.test_backup_restore import admin_args, marmot
from tests.support import replicated_cluster, run, wait_for


def test_operator_commands_on_a_live_cluster(tmp_path: Path) -> None:
    with replicated_cluster(tmp_path, 3) as nodes:
        n1, n2, n3 = nodes
        run(n1, "CREATE DATABASE shop", "CREATE TABLE shop.orders (id INT PRIMARY KEY)")

        status = marmot("status", *admin_args(n1))
        assert status.returncode == 0, status.stderr
        assert "node 1 at" in status.stdout and "healthy" in status.stdout, status.stdout
        assert "3 members, 3 alive, quorum 2: OK" in status.stdout, status.stdout
        assert "shop" in status.stdout and "replication" in status.stdout, status.stdout

        dbs = marmot("databases", *admin_args(n2))
        assert dbs.returncode == 0, dbs.stderr
        row = next(line.split() for line in dbs.stdout.splitlines() if line.startswith("shop "))
        assert row[1] == "1", dbs.stdout  # one table
        assert "database(s) on node 2" in dbs.stdout, dbs.stdout

        # errors: the node's reason on stderr and a non-zero exit
        wrong = marmot("databases", "--address", f"127.0.0.1:{n1.grpc_port}", "--secret", "nope")
        assert wrong.returncode == 2 and "invalid cluster secret" in wrong.stderr, wrong.stderr
        gone = marmot("status", "--address", f"127.0.0.1:{free_port()}", "--secret", SECRET, "--timeout", "2")
        assert gone.returncode == 1 and "node unreachable" in gone.stderr, gone.stderr
        unknown = marmot("remove", "9", *admin_args(n1))
        assert unknown.returncode == 1 and "unknown node id 9" in unknown.stderr, unknown.stderr
        itself = marmot("remove", "1", *admin_args(n1))
        assert itself.returncode == 1 and "cannot remove itself" in itself.stderr, itself.stderr
        nothing = marmot("decommission", "2", "--cancel", *admin_args(n1))
        assert nothing.returncode == 1 and "no decommission to cancel" in nothing.stderr, nothing.stderr

        # a dead node is removed (out of the quorum), then allowed back and rejoins
        n3.stop(signal.SIGKILL)
        wait_for(lambda: member_states(n1).get(3) == "DEAD", 30, "node 3 DEAD")
        removed = marmot("remove", "3", *admin_args(n1))
        assert removed.returncode == 0 and "node 3 removed" in removed.stdout, removed.stderr
        wait_for(lambda: member_states(n2).get(3) == "REMOVED", 30, "node 2 sees node 3 REMOVED")
        status = marmot("status", *admin_args(n2))
        assert status.returncode == 0 and "REMOVED" in status.stdout, status.stdout
        allowed = marmot("allow", "3", *admin_args(n1))
        assert allowed.returncode == 0 and "allowed to rejoin" in allowed.stdout, allowed.stderr
        n3.start()
        wait_for(lambda: member_states(n1).get(3) == "ALIVE", 60, "node 3 ALIVE again")

        # a live node is decommissioned through another one, and the command waits until it left
        started = time.monotonic()
        left = marmot("decommission", "2", "--wait", "--wait-timeout", "90", *admin_args(n1))
        assert left.returncode == 0, left.stderr
        assert "node 2: phase done" in left.stdout, left.stdout
        assert n2.proc is not None
        n2.proc.wait(30)
        assert n2.proc.returncode == 0, n2.log()
        assert time.monotonic() - started < 90
        after = marmot("decommission", "2", "--status", *admin_args(n1))
        assert after.returncode == 0 and "phase done" in after.stdout, after.stdout + after.stderr

        # asked of the leaving node itself: done once it has stopped (it can no longer answer)
        itself = marmot("decommission", "3", "--wait", "--wait-timeout", "90", *admin_args(n3))
        assert itself.returncode == 0 and "node 3: phase done" in itself.stdout, itself.stdout + itself.stderr
        assert n3.proc is not None
        n3.proc.wait(30)
        assert n3.proc.returncode == 0, n3.log()
