"""Anti-entropy catch-up with real node processes: a node that was down while the others kept writing
(tables and a database created, over 5,000 transactions inserting, updating and deleting rows) pulls what it missed from its
peers' commit logs when it comes back, and every node ends identical (issue "Anti-entropy", point 1 and
the first test of point 7)."""

from __future__ import annotations

import signal
import threading

from tests.support import connect, replicated_cluster, run, wait_until_equal

BORN = 4800  # with the other writes below, node 3 misses more than 5,000 transactions


def test_node_down_catches_up_by_log_pull(tmp_path):
    with replicated_cluster(tmp_path, 3, replication_extra="anti_entropy_interval_seconds = 1\n") as nodes:
        n1, n2, n3 = nodes
        run(
            n1,
            "CREATE TABLE kept (id INT PRIMARY KEY, v VARCHAR(20))",
            "INSERT INTO kept VALUES (1, 'before')",
        )
        wait_until_equal(nodes, "SELECT * FROM kept ORDER BY id", expected=((1, "before"),))
        n3.stop(signal.SIGKILL)
        # while node 3 is down: new schema, new database, 600 row writes from both survivors
        run(n1, "CREATE TABLE born (id INT AUTO_INCREMENT PRIMARY KEY, v INT)", "CREATE DATABASE away")
        run(n2, "CREATE TABLE t (id INT PRIMARY KEY)", db="away")
        run(n2, "INSERT INTO t VALUES (1), (2), (3)", db="away")

        def insert_many(node, values) -> None:  # one autocommit transaction per row
            c = connect(node)
            try:
                cur = c.cursor()
                for v in values:
                    cur.execute(f"INSERT INTO born (v) VALUES ({v})")
            finally:
                c.close()

        threads = [
            threading.Thread(target=insert_many, args=(node, range(k, BORN, 2)))
            for k, node in enumerate((n1, n2))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        for i in range(2, 202):
            run(n2, f"INSERT INTO kept VALUES ({i}, 'v{i}')")
        run(n1, "UPDATE kept SET v = 'changed' WHERE id % 3 = 0", "DELETE FROM kept WHERE id % 7 = 0")
        n3.start()
        want_born = wait_until_equal([n1, n2], "SELECT COUNT(*), SUM(v) FROM born")
        assert want_born[0] == ((BORN, sum(range(BORN))),)
        wait_until_equal(nodes, "SELECT COUNT(*), SUM(v) FROM born", timeout=30)
        wait_until_equal(nodes, "SELECT * FROM kept ORDER BY id", timeout=30)
        wait_until_equal(
            nodes, "SELECT * FROM t ORDER BY id", db="away", timeout=30, expected=((1,), (2,), (3,))
        )
        log = n3.log_path.read_text()
        assert "installed a snapshot of marmot" not in log  # marmot caught up by delta sync, not a copy
        assert "transaction(s) of marmot from node" in log
        # and it takes part in writes again
        run(n3, "INSERT INTO kept VALUES (1000, 'from three')")
        wait_until_equal(nodes, "SELECT v FROM kept WHERE id = 1000", expected=(("from three",),))


def test_catch_up_of_large_transactions(tmp_path):
    """Log entries are fetched in answers of at most 16 MiB of bodies: 40 transactions of ~1 MB each missed
    by a node take several answers, and all of them arrive."""
    with replicated_cluster(tmp_path, 3, replication_extra="anti_entropy_interval_seconds = 1\n") as nodes:
        n1, n2, n3 = nodes
        run(n1, "CREATE TABLE blobs (id INT PRIMARY KEY, b LONGTEXT)")
        wait_until_equal(nodes, "SHOW TABLES LIKE 'blobs'", expected=(("blobs",),))
        n3.stop(signal.SIGKILL)
        for i in range(40):
            run(n1 if i % 2 else n2, f"INSERT INTO blobs VALUES ({i}, REPEAT('x', 1000000))")
        n3.start()
        wait_until_equal(
            nodes, "SELECT COUNT(*), SUM(LENGTH(b)) FROM blobs", timeout=60, expected=((40, 40_000_000),)
        )
