"""A partition through the fault proxy (marmot.testing.faultproxy): 3 nodes, node 3 cut off from both others.

The majority keeps committing QUORUM writes, the minority refuses them (1105); writes at ONE succeed on
both sides, also to the same rows; after the heal anti-entropy brings every node to the same rows, and
rows written on both sides hold the last writer's value (issue "Anti-entropy", point 7)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pymysql
import pytest

from marmot.testing import NodeProcess, ProxyPool, admin_json
from tests.support import proxied_cluster, run, wait_until_equal


@pytest.fixture
def proxied(tmp_path) -> Iterator[tuple[list[NodeProcess], ProxyPool]]:
    """Three nodes that reach each other only through the proxy's directed links."""
    with proxied_cluster(tmp_path) as cluster:
        yield cluster


def test_minority_refuses_quorum_one_converges_lww(proxied):
    nodes, pool = proxied
    n1, n2, n3 = nodes
    run(
        n1,
        "CREATE TABLE p (id INT PRIMARY KEY, v VARCHAR(20))",
        "INSERT INTO p VALUES (1, 'start'), (2, 'start'), (3, 'start')",
    )
    wait_until_equal(
        nodes, "SELECT * FROM p ORDER BY id", expected=((1, "start"), (2, "start"), (3, "start"))
    )

    pool.isolate(3)
    for i in range(10, 30):  # the majority keeps committing at QUORUM
        run(n1 if i % 2 else n2, f"INSERT INTO p VALUES ({i}, 'majority')")
    with pytest.raises(pymysql.err.OperationalError) as ei:  # the minority refuses
        run(n3, "INSERT INTO p VALUES (99, 'minority')")
    assert ei.value.args[0] == 1105 and "quorum" in ei.value.args[1]

    # ONE on both sides, to the same rows: the later write must win everywhere after the heal
    run(n1, "UPDATE /*+ MARMOT_CONSISTENCY(ONE) */ p SET v = 'majority-first' WHERE id = 1")
    run(n3, "UPDATE /*+ MARMOT_CONSISTENCY(ONE) */ p SET v = 'minority-last' WHERE id = 1")
    run(n3, "UPDATE /*+ MARMOT_CONSISTENCY(ONE) */ p SET v = 'minority-first' WHERE id = 2")
    run(n2, "UPDATE /*+ MARMOT_CONSISTENCY(ONE) */ p SET v = 'majority-last' WHERE id = 2")
    run(n3, "DELETE /*+ MARMOT_CONSISTENCY(ONE) */ FROM p WHERE id = 3")

    pool.heal()
    expected = ((1, "minority-last"), (2, "majority-last")) + tuple((i, "majority") for i in range(10, 30))
    wait_until_equal(nodes, "SELECT * FROM p ORDER BY id", timeout=30, expected=expected)
    # and identical per-table digests (keys and row versions, tombstones aside) on every node
    deadline = time.monotonic() + 15
    while (
        len(
            {
                json.dumps(admin_json(n, "/admin/databases/marmot/digest")["tables"], sort_keys=True)
                for n in nodes
            }
        )
        != 1
    ):
        assert time.monotonic() < deadline, [admin_json(n, "/admin/databases/marmot/digest") for n in nodes]
        time.sleep(0.2)
    # and the healed minority writes at QUORUM again
    deadline = time.monotonic() + 15
    while True:
        try:
            run(n3, "INSERT INTO p VALUES (100, 'healed')")
            break
        except pymysql.err.OperationalError:
            assert time.monotonic() < deadline
            time.sleep(0.3)
    wait_until_equal(nodes, "SELECT v FROM p WHERE id = 100", expected=(("healed",),))
