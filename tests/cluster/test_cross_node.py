"""What a node knows of the others, with three real node processes on 127.0.0.1: every member's MySQL
address in ``marmot members`` (and its JSON), and "schema follows": a table or database created through
one node can be used at once through another (it waits for the DDL gossip says exists, never 1146/1049).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pymysql
import pytest

from marmot.testing import SECRET
from marmot.testing.nodes import NodeProcess
from tests.support import REPO, connect, replicated_cluster, wait_for

# Node 3 applies every COMMIT it receives 0.4 s late: a DDL acknowledged at QUORUM (nodes 1 and 2) is
# not there yet when a client asks node 3 at once, which is the moment "schema follows" covers.
LATE_COMMITS = {3: {"MARMOT_FAILPOINTS": "participant_before_commit=sleep:0.4*"}}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[NodeProcess]]:
    with replicated_cluster(tmp_path_factory.mktemp("cross"), 3, env=LATE_COMMITS) as nodes:
        yield nodes


ROUNDS = 10  # fresh tables / databases per test


def _members_cli(node: NodeProcess, *extra: str) -> str:
    """``marmot members`` as a real CLI process against ``node``; its standard output."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "marmot.cli",
            "members",
            "--address",
            f"127.0.0.1:{node.grpc_port}",
            "--secret",
            SECRET,
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(REPO),
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_members_show_each_nodes_mysql_address(cluster: list[NodeProcess]) -> None:
    expected = {i + 1: f"127.0.0.1:{n.mysql_port}" for i, n in enumerate(cluster)}
    for node in cluster:
        # gossip spreads each node's address within a few rounds of its start
        def addresses(node: NodeProcess = node) -> dict[int, str]:
            obj = json.loads(_members_cli(node, "--json"))
            return {m["node_id"]: m.get("mysql_address") for m in obj["members"]}

        wait_for(lambda addresses=addresses: addresses() == expected, timeout=15, what="mysql addresses")
        lines = _members_cli(node).splitlines()
        header = lines[0].split()
        assert header[-1] == "MYSQL", lines
        rows = {line.split()[0].rstrip("*"): line.split() for line in lines[1:4]}
        assert {nid: row[-1] for nid, row in rows.items()} == {str(k): v for k, v in expected.items()}


def test_table_created_elsewhere_is_usable_at_once(cluster: list[NodeProcess]) -> None:
    n1, _, n3 = cluster
    writer, reader = connect(n1), connect(n3)
    try:
        wc, rc = writer.cursor(), reader.cursor()
        for i in range(ROUNDS):
            wc.execute(f"CREATE TABLE follow_{i} (id INT PRIMARY KEY, v TEXT)")
            rc.execute(f"SELECT COUNT(*) FROM follow_{i}")  # no wait: 1146 unless the schema follows
            assert rc.fetchall() == ((0,),)
    finally:
        writer.close()
        reader.close()


def test_database_created_elsewhere_is_usable_at_once(cluster: list[NodeProcess]) -> None:
    n1, _, n3 = cluster
    writer, reader = connect(n1), connect(n3, db=None)
    try:
        wc, rc = writer.cursor(), reader.cursor()
        for i in range(ROUNDS):
            wc.execute(f"CREATE DATABASE follow_db_{i}")
            rc.execute(f"USE follow_db_{i}")  # 1049 unless the database follows
            rc.execute("SELECT DATABASE()")
            assert rc.fetchall() == ((f"follow_db_{i}",),)
    finally:
        writer.close()
        reader.close()


def test_a_table_that_exists_nowhere_is_still_1146(cluster: list[NodeProcess]) -> None:
    conn = connect(cluster[2])
    try:
        with pytest.raises(pymysql.err.ProgrammingError) as err:
            conn.cursor().execute("SELECT * FROM never_created_anywhere")
        assert err.value.args[0] == 1146
    finally:
        conn.close()
