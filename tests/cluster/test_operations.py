"""Operations that finish, with real node processes on 127.0.0.1: a decommission drains only as long as a
transaction is in flight (not the whole grace period), and its status keeps answering ``done`` after the
node has left (it used to be a 500 with an RpcError traceback: nobody was left to forward the request to)."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

from marmot.testing import NodeProcess, admin_call, member_states
from tests.support import connect, replicated_cluster, run, wait_until_equal

GRACE_MS = 30000  # long on purpose: a drain that waited for it would be unmistakable
GRACE = f"shutdown_grace_period_ms = {GRACE_MS}\n"


def wait_exit(node: NodeProcess, timeout: float) -> float:
    """Wait for the node process to exit on its own; return when (monotonic)."""
    assert node.proc is not None
    node.proc.wait(timeout)
    return time.monotonic()


def test_idle_decommission_ends_at_once_and_status_says_done(tmp_path: Path) -> None:
    with replicated_cluster(tmp_path, 3, cluster_extra=GRACE) as nodes:
        n1, n2, n3 = nodes
        run(n1, "CREATE TABLE t (id INT PRIMARY KEY, v TEXT)", "INSERT INTO t VALUES (1, 'a')")
        wait_until_equal(nodes, "SELECT * FROM t", expected=[(1, "a")])

        started = time.monotonic()
        status, body = admin_call(n1, "/admin/cluster/decommission/3", "POST")
        assert status == 200 and body["node_id"] == 3, body
        ended = wait_exit(n3, GRACE_MS / 1000 + 20)
        assert n3.proc is not None and n3.proc.returncode == 0, n3.log()
        # nothing was in flight: the drain did not sit out the 30 s grace period
        assert ended - started < GRACE_MS / 1000 / 2, f"drain took {ended - started:.1f} s\n{n3.log()}"
        assert "decommissioned: drained in" in n3.log()

        # after the node left, every remaining member answers "done" for it (not a 500)
        for asked in (n1, n2):
            status, body = admin_call(asked, "/admin/cluster/decommission/3/status")
            assert status == 200, body
            assert body["node_id"] == 3 and body["phase"] == "done" and body["decommissioning"] is False, body
            assert body["pending_transactions"] == 0, body
            assert body["state"] in ("LEAVING", "SUSPECT", "DEAD"), body
        # still "done" once the failure detector has moved it on from LEAVING
        deadline = time.monotonic() + 20
        while member_states(n1).get(3) == "LEAVING" and time.monotonic() < deadline:
            time.sleep(0.1)
        status, body = admin_call(n1, "/admin/cluster/decommission/3/status")
        assert status == 200 and body["phase"] == "done", body

        # commands for a node that already left are refused with the reason, not forwarded into the void
        status, body = admin_call(n2, "/admin/cluster/decommission/3", "POST")
        assert status == 409 and "already been decommissioned" in body["error"], body
        status, body = admin_call(n2, "/admin/cluster/decommission/3/cancel", "POST")
        assert status == 409 and "already completed" in body["error"], body
        # unknown node ids stay 404; a live node that is not leaving answers phase "none" (forwarded)
        assert admin_call(n1, "/admin/cluster/decommission/42/status")[0] == 404
        status, body = admin_call(n1, "/admin/cluster/decommission/2/status")
        assert status == 200 and body["phase"] == "none" and body["state"] == "ALIVE", body

        # a node that crashed (not decommissioned) cannot be asked: 502 naming it, and no traceback logged
        n2.stop(signal.SIGKILL)
        status, body = admin_call(n1, "/admin/cluster/decommission/2/status")
        assert status == 502 and "node 2" in body["error"], body
        log = n1.log_path.read_text(errors="replace")
        assert "admin API: GET /admin/cluster/decommission" not in log and "RpcError" not in log, log[-4000:]


def test_drain_waits_for_the_transaction_in_flight(tmp_path: Path) -> None:
    # node 3's coordinator pauses 8 s between PREPARE and COMMIT of the first write it runs; the grace
    # period is far longer (60 s)
    grace_ms = 60000
    env = {3: {"MARMOT_FAILPOINTS": "coordinator_after_prepare=sleep:8"}}
    with replicated_cluster(
        tmp_path, 3, cluster_extra=f"shutdown_grace_period_ms = {grace_ms}\n", env=env
    ) as nodes:
        n1, _, n3 = nodes
        run(n1, "CREATE TABLE t (id INT PRIMARY KEY, v TEXT)")
        wait_until_equal(nodes, "SELECT COUNT(*) FROM t", expected=[(0,)])

        outcome: dict[str, Any] = {}

        def write() -> None:
            try:
                c = connect(n3)
                try:
                    c.cursor().execute("INSERT INTO t VALUES (1, 'in flight')")
                    outcome["ok"] = time.monotonic()
                finally:
                    c.close()
            except Exception as err:  # reported by the assertion below
                outcome["error"] = repr(err)

        writer = threading.Thread(target=write)
        writer.start()
        try:
            deadline = time.monotonic() + 20
            while "failpoint coordinator_after_prepare" not in n3.log():
                assert time.monotonic() < deadline, n3.log()
                time.sleep(0.05)

            started = time.monotonic()
            status, body = admin_call(n1, "/admin/cluster/decommission/3", "POST")
            assert status == 200 and body["phase"] == "draining", body
            assert body["pending_transactions"] >= 1, body
            time.sleep(2)
            # the transaction is still paused: the node is still draining
            assert n3.proc is not None and n3.proc.poll() is None, n3.log()
            status, body = admin_call(n1, "/admin/cluster/decommission/3/status")
            assert status == 200 and body["phase"] == "draining" and body["decommissioning"] is True, body
            assert body["pending_transactions"] >= 1, body

            ended = wait_exit(n3, grace_ms / 1000 + 20)
        finally:
            writer.join(60)
        assert outcome.get("ok") is not None, outcome
        # it stopped once the write had committed, long before the grace period was over
        assert outcome["ok"] <= ended
        assert ended - started < grace_ms / 1000 / 2, f"drain took {ended - started:.1f} s\n{n3.log()}"
        wait_until_equal(nodes[:2], "SELECT * FROM t", expected=[(1, "in flight")])
        status, body = admin_call(n1, "/admin/cluster/decommission/3/status")
        assert status == 200 and body["phase"] == "done", body


def test_cancel_while_draining_keeps_the_node(tmp_path: Path) -> None:
    env = {3: {"MARMOT_FAILPOINTS": "coordinator_after_prepare=sleep:6"}}
    with replicated_cluster(tmp_path, 3, cluster_extra=GRACE, env=env) as nodes:
        n1, n2, n3 = nodes
        run(n1, "CREATE TABLE t (id INT PRIMARY KEY)")
        wait_until_equal(nodes, "SELECT COUNT(*) FROM t", expected=[(0,)])
        writer = threading.Thread(target=run, args=(n3, "INSERT INTO t VALUES (1)"))
        writer.start()
        try:
            deadline = time.monotonic() + 20
            while "failpoint coordinator_after_prepare" not in n3.log():
                assert time.monotonic() < deadline, n3.log()
                time.sleep(0.05)
            status, body = admin_call(n1, "/admin/cluster/decommission/3", "POST")
            assert status == 200 and body["phase"] == "draining", body
            status, body = admin_call(n2, "/admin/cluster/decommission/3/cancel", "POST")
            assert status == 200 and body["phase"] == "none" and body["state"] == "ALIVE", body
        finally:
            writer.join(60)
        # the node stayed: back to ALIVE everywhere, and it takes writes again
        deadline = time.monotonic() + 15
        while member_states(n1).get(3) != "ALIVE":
            assert time.monotonic() < deadline, member_states(n1)
            time.sleep(0.1)
        run(n3, "INSERT INTO t VALUES (2)")
        wait_until_equal(nodes, "SELECT id FROM t ORDER BY id", expected=[(1,), (2,)])
        assert n3.proc is not None and n3.proc.poll() is None
        status, body = admin_call(n1, "/admin/cluster/decommission/3/status")
        assert status == 200 and body["phase"] == "none" and body["decommissioning"] is False, body
        # nothing to cancel now: 409 with the reason (forwarded from node 3)
        status, body = admin_call(n1, "/admin/cluster/decommission/3/cancel", "POST")
        assert status == 409 and "no decommission to cancel" in body["error"], body
