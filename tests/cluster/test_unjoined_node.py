"""A node with seeds that no seed admitted is not a cluster of one (issue #12, point 1).

Real node processes on 127.0.0.1, a real MySQL client (PyMySQL) and the ``marmot health`` command line:

* seeds where nothing listens: writes and DDL at every level get 1105 naming the seed and "connection
  refused", reads work, ``marmot health`` says NOT JOINED with the reason, the log says it; once a real
  node comes up at the seed address the node joins by itself and the same writes succeed; restarted
  alone after that it is a member and falls under the ordinary quorum rule again;
* a seed with another cluster secret: 1105 naming the seed and the failed authentication;
* a node that served alone (no seeds) and is restarted with an unreachable seed: INSERT/UPDATE/DELETE and
  ONE-level writes refused, its rows still readable;
* no seeds at all: a deliberate single-node cluster that accepts writes and reports itself joined.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from marmot.testing import TIMERS, NodeProcess, admin_call, admin_json, free_port, make_node
from tests.support import REPO, connect, run, wait_for

SECRET = "unjoined-test-secret"
# a MySQL error while a node is still joining means "not yet" to wait_for
NOT_YET = (pymysql.err.MySQLError,)


def configure(
    tmp: Path, node_id: int, *, seeds: list[str], secret: str = SECRET, grpc_port: int | None = None
) -> NodeProcess:
    seed_line = "seed_nodes = [" + ", ".join(f'"{s}"' for s in seeds) + "]\n"
    node = make_node(
        tmp,
        node_id=node_id,
        unix_socket=False,
        cluster_extra=f'{TIMERS}cluster_secret = "{secret}"\n{seed_line}',
    )
    if grpc_port is not None:  # a node that must listen where another node's seed points
        node.config_path.write_text(
            node.config_path.read_text().replace(
                f"grpc_port = {node.grpc_port}\n", f"grpc_port = {grpc_port}\n"
            )
        )
        node.grpc_port = grpc_port
    return node


@pytest.fixture
def nodes() -> Iterator[list[NodeProcess]]:
    """Every node a test starts; each is stopped by its PID afterwards, also when the test fails."""
    started: list[NodeProcess] = []
    yield started
    for n in started:
        n.stop(signal.SIGTERM)


def start(started: list[NodeProcess], node: NodeProcess) -> NodeProcess:
    if node not in started:
        started.append(node)
    return node.start()


def refused(node: NodeProcess, sql: str) -> str:
    """Run ``sql``; it must fail with 1105 (SQLSTATE HY000): return the message."""
    c = connect(node)
    try:
        with pytest.raises(pymysql.err.MySQLError) as ei:
            c.cursor().execute(sql)
    finally:
        c.close()
    assert ei.value.args[0] == 1105, ei.value.args
    return str(ei.value.args[1])


def health_cli(node: NodeProcess, secret: str = SECRET) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "marmot.cli",
            "health",
            "--address",
            f"127.0.0.1:{node.grpc_port}",
            "--secret",
            secret,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(REPO),
    )


def health_json(node: NodeProcess, secret: str = SECRET) -> tuple[int, dict]:
    """``GET /admin/cluster/health``: (status, body), the 503 of an unhealthy node included."""
    return admin_call(node, "/admin/cluster/health", secret=secret, timeout=5)


def wait_join_failure(node: NodeProcess, seed: str, reason: str, secret: str = SECRET) -> None:
    """Until ``node``'s last join round found ``reason`` at ``seed`` (a round that merely timed out on a
    loaded machine is retried within a second)."""

    def seen() -> bool:
        status, body = health_json(node, secret)
        return status == 503 and body["join"]["failures"][seed].startswith(reason)

    wait_for(seen, timeout=30, what=f"join failure {reason!r} at {seed}", ignore=NOT_YET)


def test_unreachable_seed_refuses_writes_until_the_seed_comes_up(
    tmp_path: Path, nodes: list[NodeProcess]
) -> None:
    seed_port = free_port()  # nothing listens here until the test starts the seed node
    seed_addr = f"127.0.0.1:{seed_port}"
    n2 = start(nodes, configure(tmp_path / "n2", 2, seeds=[seed_addr]))
    wait_join_failure(n2, seed_addr, "connection refused")
    for sql in (
        "CREATE TABLE t (id INT PRIMARY KEY, v TEXT)",
        "CREATE DATABASE other",
        "CREATE TABLE t1 (id INT PRIMARY KEY) /*+ MARMOT_CONSISTENCY(ONE) */",
    ):
        msg = refused(n2, sql)
        assert "has not joined a cluster" in msg and f"seed {seed_addr}: connection refused" in msg, msg
    assert run(n2, "SELECT 1") == ((1,),)  # reads are local and stay allowed
    assert run(n2, "SHOW TABLES") == ()

    got = health_cli(n2)
    assert got.returncode == 1, got
    assert "NOT JOINED" in got.stdout and f"seed {seed_addr}: connection refused" in got.stdout, got.stdout
    status, health = health_json(n2)
    assert status == 503 and health["join"]["joined"] is False and health["join"]["seeds"] == [seed_addr]
    assert health["join"]["failures"] == {seed_addr: "connection refused"}
    assert "has not joined a cluster" in health["reasons"][0]
    assert "no seed admitted this node" in n2.log() and "connection refused" in n2.log()

    # the seed comes up where n2's seed_nodes point: n2 joins by itself and the same writes succeed
    n1 = start(nodes, configure(tmp_path / "n1", 1, seeds=[], grpc_port=seed_port))
    wait_for(
        lambda: run(n2, "CREATE TABLE IF NOT EXISTS t (id INT PRIMARY KEY, v TEXT)") == (),
        timeout=30,
        what="CREATE TABLE after the join",
        ignore=NOT_YET,
    )
    c = connect(n2)
    try:
        cur = c.cursor()
        cur.execute("INSERT INTO t VALUES (1, 'after the join')")
        cur.execute("CREATE DATABASE other")
    finally:
        c.close()
    wait_for(
        lambda: run(n1, "SELECT id, v FROM t") == ((1, "after the join"),),
        timeout=30,
        what="row on the seed",
        ignore=NOT_YET,
    )
    assert "joined the cluster" in n2.log()
    wait_for(
        lambda: health_cli(n2).returncode == 0,
        timeout=30,
        what="n2 healthy (ALIVE once caught up, with quorum)",
        ignore=NOT_YET,
    )

    # n2 has joined: restarted alone it knows the 2-node membership, is no longer "not joined", and
    # refuses QUORUM writes by the ordinary quorum rule while ONE writes go on
    n1.stop()
    n2.stop()
    n2.start()
    msg = refused(n2, "INSERT INTO t VALUES (2, 'alone')")
    assert "quorum not reached" in msg and "not joined" not in msg, msg
    assert run(n2, "INSERT /*+ MARMOT_CONSISTENCY(ONE) */ INTO t VALUES (3, 'one')") == ()


def test_wrong_cluster_secret_refuses_writes_naming_the_seed(
    tmp_path: Path, nodes: list[NodeProcess]
) -> None:
    n1 = start(nodes, configure(tmp_path / "n1", 1, seeds=[]))
    seed_addr = f"127.0.0.1:{n1.grpc_port}"
    n2 = start(nodes, configure(tmp_path / "n2", 2, seeds=[seed_addr], secret="a-typo-in-the-secret"))
    wait_join_failure(n2, seed_addr, "authentication failed", secret="a-typo-in-the-secret")
    msg = refused(n2, "CREATE TABLE t (id INT PRIMARY KEY)")
    assert f"seed {seed_addr}: authentication failed" in msg and "cluster secret" in msg, msg
    got = health_cli(n2, secret="a-typo-in-the-secret")
    assert got.returncode == 1 and "NOT JOINED" in got.stdout and "authentication failed" in got.stdout, got
    assert "authentication failed" in n2.log()
    # nothing leaked into the real cluster, which goes on writing alone as it was configured to
    assert run(n1, "CREATE TABLE t (id INT PRIMARY KEY)") == ()
    assert set(m["node_id"] for m in admin_json(n1, "/admin/cluster/members", SECRET)["members"]) == {1}


def test_former_single_node_with_unreachable_seed_refuses_dml_and_reads(
    tmp_path: Path, nodes: list[NodeProcess]
) -> None:
    n = start(nodes, configure(tmp_path / "n1", 1, seeds=[]))
    run(n, "CREATE TABLE t (id INT PRIMARY KEY, v TEXT)", "INSERT INTO t VALUES (1, 'alone')")
    n.stop()
    # the same data directory, now told to join a cluster whose seed does not answer
    dead = f"127.0.0.1:{free_port()}"
    n.config_path.write_text(n.config_path.read_text().replace("seed_nodes = []", f'seed_nodes = ["{dead}"]'))
    n.start()
    wait_join_failure(n, dead, "connection refused")
    for sql in (
        "INSERT INTO t VALUES (2, 'x')",
        "UPDATE t SET v = 'y' WHERE id = 1",
        "DELETE FROM t",
        "INSERT /*+ MARMOT_CONSISTENCY(ONE) */ INTO t VALUES (3, 'one')",
        "INSERT /*+ MARMOT_CONSISTENCY(ALL) */ INTO t VALUES (4, 'all')",
    ):
        msg = refused(n, sql)
        assert f"seed {dead}: connection refused" in msg, msg
    assert run(n, "SELECT id, v FROM t") == ((1, "alone"),)


def test_no_seeds_is_a_deliberate_single_node_cluster(tmp_path: Path, nodes: list[NodeProcess]) -> None:
    n = start(nodes, configure(tmp_path / "n1", 1, seeds=[]))
    run(n, "CREATE TABLE t (id INT PRIMARY KEY)", "INSERT INTO t VALUES (1)")
    assert run(n, "SELECT id FROM t") == ((1,),)
    status, health = health_json(n)
    assert status == 200 and health["ok"] and health["join"] == {"joined": True, "seeds": []}
    assert "NOT JOINED" not in health_cli(n).stdout
