"""``marmot verify --full`` against real node processes (issue #12, point 5): a row changed directly in
one node's SQLite file while the node is stopped — same key, same version, other content, nothing in any
commit log — is invisible to the kept digests (plain ``marmot verify`` exits 0, anti-entropy repairs
nothing), and ``marmot verify --full`` exits 1 naming the table and the key."""

from __future__ import annotations

import json
import time

import apsw

from marmot.testing import member_states
from tests.support import marmot_verify as verify
from tests.support import replicated_cluster, run, wait_until_equal


def test_verify_full_finds_a_row_changed_in_a_stopped_nodes_file(tmp_path):
    with replicated_cluster(tmp_path, 3, replication_extra="anti_entropy_interval_seconds = 1\n") as nodes:
        n1, n2, n3 = nodes
        run(
            n1,
            "CREATE TABLE accounts (id INT PRIMARY KEY, owner VARCHAR(40), balance INT)",
            "CREATE TABLE notes (k VARCHAR(20) PRIMARY KEY, body TEXT)",
        )
        for i, node in enumerate(nodes * 10):
            run(node, f"INSERT INTO accounts VALUES ({i}, 'owner{i}', {i * 100})")
        run(n2, "INSERT INTO notes VALUES ('a', 'x'), ('b', 'y')")
        wait_until_equal(nodes, "SELECT * FROM accounts ORDER BY id", timeout=20)
        wait_until_equal(nodes, "SELECT * FROM notes ORDER BY k", timeout=20)
        ok = verify(n1, "--full")
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert ok.stdout.rstrip().endswith("2 table(s) on 3 node(s): all match"), ok.stdout

        # node 3 stopped (SIGTERM to its PID); its file edited as another program would; started again
        assert n3.stop() is not None
        conn = apsw.Connection(str(n3.data_dir / "marmot.db"))
        conn.set_busy_timeout(5000)
        conn.execute("UPDATE accounts SET balance = 999999 WHERE id = 17")
        assert conn.changes() == 1
        conn.close()
        n3.start()
        deadline = time.monotonic() + 30
        while member_states(n1) != {1: "ALIVE", 2: "ALIVE", 3: "ALIVE"}:
            assert time.monotonic() < deadline, member_states(n1)
            time.sleep(0.2)
        time.sleep(3)  # anti-entropy rounds (every second): the kept digests agree, so nothing is repaired
        assert run(n3, "SELECT balance FROM accounts WHERE id = 17") == ((999999,),)
        assert run(n1, "SELECT balance FROM accounts WHERE id = 17") == ((1700,),)

        # plain verify compares the kept digests (keys and versions): it cannot see this change
        plain = verify(n1)
        assert plain.returncode == 0, plain.stdout + plain.stderr

        full = verify(n1, "--full")
        assert full.returncode == 1, full.stdout + full.stderr
        lines = full.stdout.splitlines()
        assert any(
            ln.split()[:2] == ["marmot", "accounts"] and ln.rstrip().endswith("DIFFER") for ln in lines
        ), full.stdout
        assert any(ln.split()[:2] == ["marmot", "notes"] and ln.rstrip().endswith("MATCH") for ln in lines), (
            full.stdout
        )
        assert "marmot.accounts: 1 key(s) differ" in full.stdout
        assert any(ln.split()[:1] == ["(17)"] for ln in lines), full.stdout

        as_json = json.loads(verify(n2, "--full", "--json").stdout)
        assert as_json["ok"] is False and as_json["full"] is True
        [entry] = as_json["differing_keys"]["marmot.accounts"]
        assert entry["versions"][0] == entry["versions"][1] == entry["versions"][2] is not None
        assert entry["contents"][0] == entry["contents"][1] != entry["contents"][2]

        # the documented fix: rewrite the row through Marmot; it gets a new version on every node
        run(n1, "UPDATE accounts SET balance = 1700 WHERE id = 17")
        wait_until_equal(nodes, "SELECT balance FROM accounts WHERE id = 17", expected=((1700,),), timeout=20)
        fixed = verify(n1, "--full")
        assert fixed.returncode == 0, fixed.stdout + fixed.stderr
