"""A coordinator cut off between PREPARE and COMMIT must not commit what its participants gave up on.

The bank workload's scenario, made exact with a failpoint and the fault proxy: node 1 coordinates a
QUORUM transfer 1 → 2, gets both PREPARE acks, then stalls (failpoint) while the network isolates it.
Nodes 2 and 3 wait ``heartbeat_timeout_seconds`` for the decision, cannot reach node 1, and abort the
transaction, releasing its intents; node 2 then commits a transfer 1 → 3 at QUORUM with node 3. When
node 1 wakes up it must not commit the first transfer on its own: that would hand account 1's stale
image (LWW, its commit timestamp is the later one) to everyone after the heal and create money. It
keeps the transaction undecided, tells its client the outcome is unknown, and aborts it once the
participants answer that they aborted it. Money is conserved on every node.
"""

from __future__ import annotations

import threading
import time

import pymysql

from tests.support import connect, proxied_cluster, run, wait_until_equal

STALL = 6  # seconds node 1 sits between PREPARE and its decision (> heartbeat + resolver round)


def _transfer(node, src: int, dst: int, amount: int) -> None:
    c = connect(node, read_timeout=60)
    try:
        cur = c.cursor()
        cur.execute("BEGIN")
        cur.execute("UPDATE acct SET bal = bal - %s WHERE id = %s", (amount, src))
        cur.execute("UPDATE acct SET bal = bal + %s WHERE id = %s", (amount, dst))
        cur.execute("COMMIT")
    finally:
        c.close()


def test_isolated_coordinator_does_not_commit_what_participants_aborted(tmp_path):
    env = {1: {"MARMOT_FAILPOINTS": f"coordinator_after_prepare=sleep:{STALL}"}}
    with proxied_cluster(tmp_path, env=env, extra_toml="[transaction]\nheartbeat_timeout_seconds = 2\n") as (
        nodes,
        pool,
    ):
        n1, n2, n3 = nodes
        run(
            n2,
            "CREATE TABLE acct (id INT PRIMARY KEY, bal INT)",
            "INSERT INTO acct VALUES (1, 100), (2, 100), (3, 100)",
        )
        wait_until_equal(nodes, "SELECT * FROM acct ORDER BY id", expected=((1, 100), (2, 100), (3, 100)))

        outcome: dict = {}

        def first() -> None:
            try:
                _transfer(n1, 1, 2, 10)
                outcome["ok"] = True
            except pymysql.err.MySQLError as e:
                outcome["error"] = e

        t = threading.Thread(target=first, daemon=True)
        t.start()
        time.sleep(1.0)  # both participants prepared; node 1 sits in its failpoint
        pool.isolate(1)

        deadline = time.monotonic() + 20  # node 2 and 3 abort the orphan, then the rows are free again
        while True:
            try:
                _transfer(n2, 1, 3, 5)
                break
            except pymysql.err.OperationalError as e:
                assert e.args[0] in (1213, 1105), e
                assert time.monotonic() < deadline, f"the orphaned intents never expired: {e}"
                time.sleep(0.3)

        t.join(30)
        assert "ok" not in outcome, "node 1 acknowledged a transfer its participants had aborted"
        pool.heal()
        rows = wait_until_equal(nodes, "SELECT * FROM acct ORDER BY id", timeout=30)[0]
        assert sum(bal for _, bal in rows) == 300, rows
        assert rows == ((1, 95), (2, 100), (3, 105)), rows
        # the client of the first transfer was told its outcome is unknown, not that it failed for sure
        err = outcome["error"]
        assert err.args[0] == 1105 and "unknown" in err.args[1], err
