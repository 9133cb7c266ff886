"""Read levels (issue #16 point 1): a read at QUORUM on a node that missed writes pulls them first.

Three nodes behind the fault proxy, anti-entropy off so only a read barrier
brings node 3 up to date, and ``default_read_consistency = "QUORUM"`` in every config (point 4: plain
reads are barrier reads; LOCAL_ONE is asked for with SET). Node 3's incoming replication links are cut
(1→3, 2→3): COMMITs do not reach it, but it can still call its peers."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pymysql
import pytest

from marmot.testing import LocalCluster, NodeProcess, ProxyPool, admin_json
from tests.support import connect, run, wait_for, wait_until_equal

READ_TIMEOUT_MS = 1500


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[NodeProcess], ProxyPool]]:
    with LocalCluster(
        3,
        tmp_path_factory.mktemp("reads"),
        proxied=True,
        replication_extra=(
            "enable_anti_entropy = false\nwrite_timeout_ms = 2000\n"
            f'default_read_consistency = "QUORUM"\nread_timeout_ms = {READ_TIMEOUT_MS}\n'
        ),
    ) as cluster:
        assert cluster.proxy is not None
        yield cluster.nodes, cluster.proxy


def _cut_incoming(pool: ProxyPool, node: int) -> None:
    for src in (1, 2, 3):
        if src != node:
            pool.set(src, node, "reject")


def _quorum_read_works(node: NodeProcess) -> bool:
    try:
        run(node, "SELECT /*+ MARMOT_CONSISTENCY(QUORUM) */ COUNT(*) FROM information_schema.tables")
        return True
    except pymysql.err.OperationalError:
        return False


def _heal(pool: ProxyPool, node: NodeProcess) -> None:
    pool.heal()
    wait_for(lambda: _quorum_read_works(node), timeout=30, what="node 3 answers QUORUM reads again")


def test_quorum_read_sees_writes_the_node_missed(proxied):
    nodes, pool = proxied
    n1, _n2, n3 = nodes
    run(n1, "CREATE TABLE r1 (id INT PRIMARY KEY, v INT)")
    wait_until_equal(nodes, "SELECT COUNT(*) FROM r1", expected=((0,),))
    _cut_incoming(pool, 3)
    try:
        for i in range(10):
            run(n1, f"INSERT /*+ MARMOT_CONSISTENCY(QUORUM) */ INTO r1 VALUES ({i}, {i})")
        c = connect(n3)
        cur = c.cursor()
        cur.execute("SELECT @@marmot_read_consistency")
        assert cur.fetchall() == (("QUORUM",),)  # the config's default
        cur.execute("SET marmot_read_consistency = 'LOCAL_ONE'")
        cur.execute("SELECT COUNT(*) FROM r1")
        assert cur.fetchall() == ((0,),)  # this node's copy: the writes did not reach it
        cur.execute("SELECT /*+ MARMOT_CONSISTENCY(QUORUM) */ COUNT(*), SUM(v) FROM r1")
        assert cur.fetchall() == ((10, 45),)  # the hint: caught up with a peer first

        # a table created through node 1 while node 3 is cut off, read by SET, through a join
        run(
            n1,
            "CREATE TABLE r2 (id INT PRIMARY KEY, w INT)",
            "INSERT INTO r2 SELECT id, v * 10 FROM r1",
            "INSERT INTO r1 VALUES (10, 10)",
        )
        cur.execute("SELECT COUNT(*) FROM r1")
        assert cur.fetchall() == ((10,),)
        with pytest.raises(pymysql.err.ProgrammingError) as missing:
            cur.execute("SELECT COUNT(*) FROM r2")
        assert missing.value.args[0] == 1146
        cur.execute("SET marmot_read_consistency = 'QUORUM'")
        cur.execute("SELECT @@marmot_read_consistency")
        assert cur.fetchall() == (("QUORUM",),)
        cur.execute("SELECT COUNT(*), SUM(r2.w) FROM r1 JOIN r2 ON r1.id = r2.id")
        assert cur.fetchall() == ((10, 450),)
        cur.execute("SELECT COUNT(*) FROM r1")
        assert cur.fetchall() == ((11,),)

        # the config's default again (SET ... = DEFAULT), through INFORMATION_SCHEMA and SHOW
        run(n1, "CREATE TABLE r3 (id INT PRIMARY KEY, label VARCHAR(10))")
        cur.execute("SET marmot_read_consistency = DEFAULT")
        cur.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'marmot' "
            "AND table_name LIKE 'r%' ORDER BY table_name"
        )
        assert cur.fetchall() == (("r1",), ("r2",), ("r3",))
        run(n1, "CREATE TABLE r4 (id INT PRIMARY KEY)")
        cur.execute("SHOW TABLES LIKE 'r4'")
        assert cur.fetchall() == (("r4",),)
        c.close()
    finally:
        _heal(pool, n3)


def test_isolated_node_refuses_quorum_reads_with_1105(proxied):
    nodes, pool = proxied
    n3 = nodes[2]
    pool.isolate(3)
    try:
        c = connect(n3)
        cur = c.cursor()
        started = time.monotonic()
        with pytest.raises(pymysql.err.OperationalError) as refused:
            cur.execute("SELECT COUNT(*) FROM r1")
        elapsed = time.monotonic() - started
        code, message = refused.value.args
        assert code == 1105, message
        assert "QUORUM" in message and "node 1" in message and "node 2" in message, message
        assert elapsed < READ_TIMEOUT_MS / 1000 + 5, elapsed  # about read_timeout_ms, not more
        cur.execute("SELECT /*+ MARMOT_CONSISTENCY(LOCAL_ONE) */ COUNT(*) FROM r1")
        assert cur.fetchall() == ((11,),)  # LOCAL_ONE still answers from this node's copy
        cur.execute("SELECT 1")  # names no database: no barrier
        assert cur.fetchall() == ((1,),)
        c.close()
    finally:
        _heal(pool, n3)


def test_in_a_transaction_the_level_applies_at_its_first_read(proxied):
    nodes, pool = proxied
    n1, _n2, n3 = nodes
    c = connect(n3)
    cur = c.cursor()
    try:
        _cut_incoming(pool, 3)
        run(n1, "INSERT INTO r1 VALUES (20, 20)")
        cur.execute("BEGIN")
        cur.execute("SELECT COUNT(*) FROM r1")  # the first read: the barrier
        assert cur.fetchall() == ((12,),)
        pool.isolate(3)
        cur.execute("SELECT COUNT(*) FROM r1")  # later reads of the transaction run locally
        assert cur.fetchall() == ((12,),)
        cur.execute("SELECT /*+ MARMOT_CONSISTENCY(ALL) */ SUM(v) FROM r1")
        assert cur.fetchall() == ((75,),)
        cur.execute("COMMIT")
        with pytest.raises(pymysql.err.OperationalError) as refused:  # a new transaction: a new barrier
            cur.execute("SELECT COUNT(*) FROM r1")
        assert refused.value.args[0] == 1105
    finally:
        c.close()
        _heal(pool, n3)


def test_set_refuses_an_unknown_level(proxied):
    nodes, _pool = proxied
    with pytest.raises(pymysql.err.OperationalError) as bad:
        run(nodes[0], "SET marmot_read_consistency = 'SOMETIMES'")
    assert bad.value.args[0] == 1231 and "LOCAL_ONE" in bad.value.args[1]


def _barriers(node: NodeProcess) -> dict[str, int]:
    return dict(admin_json(node, "/admin/cluster/replication")["read_barriers"])


def test_an_up_to_date_node_pulls_nothing(proxied):
    """#16 point 7: on a node that already applied everything its peers have, a QUORUM read is one
    ``log_positions`` round trip — the peer lists the transactions after this node's mark on its log,
    all applied here — and no pull (no ``log_list``, no cursor write). The read still sees each write;
    a write the node missed is still pulled (the first test)."""
    nodes, pool = proxied
    n1, n2, _n3 = nodes
    pool.heal()
    run(n1, "CREATE TABLE r5 (id INT PRIMARY KEY, v INT)")
    c = connect(n2)
    cur = c.cursor()
    local = "SELECT /*+ MARMOT_CONSISTENCY(LOCAL_ONE) */ COUNT(*), SUM(v) FROM r5"
    try:

        def no_pull_in_a_row() -> bool:  # marks on both peers' logs (from the cursor or a first pull)
            pulls = _barriers(n2)["pulls"]
            for _ in range(6):
                cur.execute("SELECT COUNT(*) FROM r5")
            return _barriers(n2)["pulls"] == pulls

        wait_for(no_pull_in_a_row, timeout=30, what="QUORUM reads on node 2 settle without pulls")
        before = _barriers(n2)
        for i in range(10):
            run(n1, f"INSERT INTO r5 VALUES ({i}, {i})")
            expected = ((i + 1, i * (i + 1) // 2),)
            wait_until_equal([n2], local, expected=expected)  # applied here by 2PC, not by a pull
            cur.execute("SELECT COUNT(*), SUM(v) FROM r5")  # QUORUM: the module's default
            assert cur.fetchall() == expected
        after = _barriers(n2)
    finally:
        c.close()
    assert after["barriers"] - before["barriers"] == 10, (before, after)
    assert after["fast"] - before["fast"] >= 10, (before, after)
    assert after["pulls"] == before["pulls"] and after["failed"] == before["failed"], (before, after)
