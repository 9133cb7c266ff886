"""Transactions larger than one RPC chunk travel as client streams (PREPARE and REPLAY) and larger than
one frame (64 MiB) still replicate; deadlines grow with the size (issue "Replicated writes", point 2)."""

from __future__ import annotations

from tests.support import replicated_cluster, run, wait_until_equal


def test_transaction_larger_than_a_chunk_replicates(tmp_path):
    # 64 KiB chunks: a 3 MB transaction goes as ~50 chunks per peer
    with replicated_cluster(tmp_path, 3, replication_extra="stream_chunk_size_kb = 64\n") as nodes:
        n1, n2, n3 = nodes
        run(n1, "CREATE TABLE big (id INT PRIMARY KEY, v TEXT)")
        wait_until_equal(nodes, "SHOW TABLES LIKE 'big'", expected=(("big",),))
        run(
            n2,
            "INSERT INTO big WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10000) "
            "SELECT x, printf('%0300d', x) FROM c",
        )
        wait_until_equal(nodes, "SELECT COUNT(*), SUM(LENGTH(v)) FROM big", expected=((10000, 3_000_000),))
        run(
            n3,
            "BEGIN",
            "UPDATE big SET v = concat(v, 'x') WHERE id <= 5000",
            "DELETE FROM big WHERE id > 9000",
            "COMMIT",
        )
        wait_until_equal(nodes, "SELECT COUNT(*), SUM(LENGTH(v)) FROM big", expected=((9000, 2_705_000),))
