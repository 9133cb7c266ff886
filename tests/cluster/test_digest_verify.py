"""Convergence checks with real node processes (issue "Anti-entropy", points 5 and 6): after writes on
every node the per-table digests served at ``/admin/databases/{db}/digest`` are equal on all three
nodes and ``marmot verify`` (a real ``python -m marmot.cli verify`` process) exits 0; after one node's
file is changed behind Marmot's back while it runs — a row rewritten at a newer version, as if that node
alone had applied a transaction, but with nothing in any commit log for anti-entropy to spread —
``marmot verify`` exits 1 and names the table and the key. ``/admin/cluster/replication`` reports
anti-entropy's lag per peer and database, and ``/metrics`` the digests and lag."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import apsw

from marmot.storage import replication_tables as rt
from marmot.storage.rowkey import encode_row_key
from marmot.testing import SECRET, NodeProcess
from tests.support import marmot_verify as verify
from tests.support import replicated_cluster, run, wait_for, wait_until_equal


def admin(node: NodeProcess, path: str) -> Any:
    req = urllib.request.Request(
        f"http://127.0.0.1:{node.grpc_port}{path}", headers={"X-Marmot-Secret": SECRET}
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        body = resp.read()
    return json.loads(body) if path != "/metrics" else body.decode()


def test_digests_verify_and_lag(tmp_path):
    with replicated_cluster(tmp_path, 3, replication_extra="anti_entropy_interval_seconds = 1\n") as nodes:
        n1, n2, n3 = nodes
        run(
            n1,
            "CREATE TABLE items (id INT PRIMARY KEY, v VARCHAR(20))",
            "CREATE TABLE tags (name VARCHAR(20) PRIMARY KEY)",
        )
        for i, node in enumerate(nodes * 20):
            run(node, f"INSERT INTO items VALUES ({i}, 'v{i}')")
        run(n2, "UPDATE items SET v = 'changed' WHERE id % 5 = 0", "DELETE FROM items WHERE id % 7 = 0")
        run(n3, "INSERT INTO tags VALUES ('a'), ('b')", "DELETE FROM tags WHERE name = 'a'")
        want = wait_until_equal(nodes, "SELECT COUNT(*) FROM items")[0][0][0]
        wait_until_equal(nodes, "SELECT * FROM items ORDER BY id")

        # equal digests on every node (a follower may apply a moment later: poll)
        docs = wait_for(
            lambda: (
                (d := [admin(n, "/admin/databases/marmot/digest") for n in nodes])
                and all(x["tables"] == d[0]["tables"] for x in d)
                and d
            ),
            what="equal digests on all nodes",
        )
        tables = docs[0]["tables"]
        assert set(tables) == {"items", "tags"}
        assert tables["items"]["rows"] == want and tables["tags"]["rows"] == 1
        assert len({d["schema_version"] for d in docs}) == 1

        ok = verify(n1)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "items" in ok.stdout and "MATCH" in ok.stdout and "DIFFER" not in ok.stdout
        assert ok.stdout.rstrip().endswith("2 table(s) on 3 node(s): all match")

        # lag per peer and database, from anti-entropy's rounds (every second here)
        status = wait_for(
            lambda: (
                (s := admin(n3, "/admin/cluster/replication"))
                and {(e["peer"], e["database"]) for e in s["lag"]} >= {(1, "marmot"), (2, "marmot")}
                and s
            ),
            what="anti-entropy lag of both peers on node 3",
        )
        assert status["anti_entropy"]["enabled"] is True and status["anti_entropy"]["rounds"] >= 1
        for e in status["lag"]:
            assert e["behind_txns"] == 0, e
            assert 0 <= e["lag_seconds"] < 30, e
        metrics = admin(n3, "/metrics")
        assert f'marmot_table_rows{{database="marmot",node_id="3",table="items"}} {float(want)}' in metrics
        assert f'digest="{tables["items"]["digest"]}"' in metrics
        assert 'marmot_replication_lag_transactions{database="marmot",node_id="3",peer="1"} 0.0' in metrics
        assert "marmot_antientropy_rounds_total" in metrics

        # Nodes 1 and 2 will repair the divergence below within a few rounds; a failpoint holds their
        # first repair for a few seconds so that `marmot verify` and the status can be seen reporting it.
        for node in (n1, n2):
            node.stop()
            node.env = {"MARMOT_FAILPOINTS": "anti_entropy_before_repair=sleep:6"}
            node.start()
        wait_for(
            lambda: all(admin(n, "/admin/databases/marmot/digest")["tables"] == tables for n in nodes),
            what="nodes 1 and 2 back with the same digests",
        )

        # Silent divergence: node 3's row 10 rewritten in its file while it runs, at a newer version,
        # with the versions and digest kept as the applier would — but nothing in any commit log.
        k = encode_row_key("items", [10])
        conn = apsw.Connection(str(n3.data_dir / "marmot.db"))
        conn.set_busy_timeout(5000)
        with conn:
            conn.execute("UPDATE items SET v = 'tampered' WHERE id = 10")
            conn.execute(f"UPDATE {rt.ROW_VERSION} SET wall = wall + 1 WHERE pk = ?", (k,))
            assert conn.changes() == 1
            rt.recompute_digests(conn, ["items"])
        conn.close()
        assert admin(n3, "/admin/databases/marmot/digest")["tables"]["items"] != tables["items"]
        assert admin(n1, "/admin/databases/marmot/digest")["tables"]["items"] == tables["items"]

        bad = verify(n2)
        assert bad.returncode == 1, bad.stdout + bad.stderr
        lines = bad.stdout.splitlines()
        assert any(
            ln.split()[:2] == ["marmot", "items"] and ln.rstrip().endswith("DIFFER") for ln in lines
        ), bad.stdout
        assert any(ln.split()[:2] == ["marmot", "tags"] and ln.rstrip().endswith("MATCH") for ln in lines), (
            bad.stdout
        )
        assert "marmot.items: 1 key(s) differ" in bad.stdout
        assert any(ln.split()[:1] == ["(10)"] for ln in lines), bad.stdout

        as_json = json.loads(verify(n1, "--json", "--database", "marmot").stdout)
        assert as_json["ok"] is False
        assert [x["key"] for x in as_json["differing_keys"]["marmot.items"]] == [k.hex()]
        versions = as_json["differing_keys"]["marmot.items"][0]["versions"]
        assert versions[0] == versions[1] and versions[2][0] == versions[0][0] + 1

        # anti-entropy notices it too: once both logs are applied and the digests stay apart for two
        # rounds, the replication status lists the table as divergent
        div = wait_for(
            lambda: [
                e
                for e in admin(n1, "/admin/cluster/replication")["lag"]
                if e["peer"] == 3 and e["database"] == "marmot" and e["divergent_tables"]
            ],
            what="divergence reported by anti-entropy on node 1",
        )
        assert div[0]["divergent_tables"] == ["items"]

        # ... and repairs it, row by row, last-writer-wins: node 3's row carries the newest version, so
        # every node pulls it from node 3 and the digests meet again
        wait_for(
            lambda: (
                (d := [admin(n, "/admin/databases/marmot/digest")["tables"] for n in nodes])
                and all(x == d[0] for x in d)
            ),
            timeout=20,
            what="digests equal again after repair",
        )
        for i, node in enumerate(nodes, 1):
            wait_for(
                lambda node=node: (
                    tuple(map(tuple, run(node, "SELECT v FROM items WHERE id = 10"))) == (("tampered",),)
                ),
                timeout=20,
                what=f"row 10 repaired on node {i}",
            )
        repaired = verify(n1)
        assert repaired.returncode == 0, repaired.stdout + repaired.stderr
