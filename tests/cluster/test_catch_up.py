"""Anti-entropy catch-up with real node processes: a node that was down while the others kept writing
(tables created, rows inserted, updated and deleted, a database created) pulls what it missed from its
peers' commit logs when it comes back, and every node ends identical (issue "Anti-entropy", point 1 and
the first test of point 7, at a smaller scale than the 5,000-write soak)."""

from __future__ import annotations

import signal

from tests.cluster.replicated import replicated_cluster, run, wait_until_equal


def test_node_down_catches_up_by_log_pull(tmp_path):
    with replicated_cluster(tmp_path, 3, replication_extra="anti_entropy_interval_seconds = 1\n") as nodes:
        n1, n2, n3 = nodes
        run(n1, "CREATE TABLE kept (id INT PRIMARY KEY, v VARCHAR(20))", "INSERT INTO kept VALUES (1, 'before')")
        wait_until_equal(nodes, "SELECT * FROM kept ORDER BY id", expected=((1, "before"),))
        n3.stop(signal.SIGKILL)
        # while node 3 is down: new schema, new database, 600 row writes from both survivors
        run(n1, "CREATE TABLE born (id INT AUTO_INCREMENT PRIMARY KEY, v INT)", "CREATE DATABASE away")
        run(n2, "CREATE TABLE t (id INT PRIMARY KEY)", db="away")
        run(n2, "INSERT INTO t VALUES (1), (2), (3)", db="away")
        for i in range(300):
            run(n1 if i % 2 else n2, f"INSERT INTO born (v) VALUES ({i})")
        for i in range(2, 202):
            run(n2, f"INSERT INTO kept VALUES ({i}, 'v{i}')")
        run(n1, "UPDATE kept SET v = 'changed' WHERE id % 3 = 0", "DELETE FROM kept WHERE id % 7 = 0")
        n3.start()
        want_born = wait_until_equal([n1, n2], "SELECT COUNT(*), SUM(v) FROM born")
        assert want_born[0] == ((300, sum(range(300))),)
        wait_until_equal(nodes, "SELECT COUNT(*), SUM(v) FROM born", timeout=30)
        wait_until_equal(nodes, "SELECT * FROM kept ORDER BY id", timeout=30)
        wait_until_equal(nodes, "SELECT * FROM t ORDER BY id", db="away", timeout=30, expected=((1,), (2,), (3,)))
        # and it takes part in writes again
        run(n3, "INSERT INTO kept VALUES (1000, 'from three')")
        wait_until_equal(nodes, "SELECT v FROM kept WHERE id = 1000", expected=(("from three",),))
