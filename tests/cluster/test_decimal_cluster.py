"""Exact DECIMAL and BIGINT UNSIGNED on 3 nodes (issue 13 point 2): values written through different
nodes, and computed exactly there (UPDATE ... SET d = d + 0.1, d * 3), arrive exactly on every node; the
replicas apply them into their DECIMAL indexes (UNIQUE still numeric there), ``marmot verify`` finds the
nodes' digests equal, and a node joining afterwards gets the same values by snapshot."""

from __future__ import annotations

import signal
from decimal import Context, Decimal, localcontext

import pymysql
import pytest

from marmot.testing import join_keys, make_node
from tests.support import connect, marmot_verify, replicated_cluster, run, wait_until_equal

BIG = Decimal("12345678901234567890123456789012345.123456789012345678901234567890")  # DECIMAL(65,30)
with localcontext(Context(prec=100)):  # Python's default context keeps 28 digits only
    BIG3 = BIG * 3
    TOTAL = BIG3 - 1 + Decimal("1E-30")


def test_exact_values_replicate_and_verify(tmp_path):
    extra = "anti_entropy_interval_seconds = 1\n"
    with replicated_cluster(tmp_path, 3, replication_extra=extra) as nodes:
        n1, n2, n3 = nodes
        c1, c2 = connect(n1), connect(n2)
        try:
            cur1, cur2 = c1.cursor(), c2.cursor()
            cur1.execute(
                "CREATE TABLE ledger (id INT PRIMARY KEY, amount DECIMAL(12,2) UNIQUE, "
                "big DECIMAL(65,30), n BIGINT UNSIGNED, KEY by_n (n))"
            )
            wait_until_equal(nodes, "SELECT COUNT(*) FROM ledger", timeout=30, expected=((0,),))
            cur1.execute("INSERT INTO ledger VALUES (1, 0.10, %s, 18446744073709551615)", (str(BIG),))
            cur2.execute("INSERT INTO ledger VALUES (2, '9.5', '0.000000000000000000000000000001', 5)")
            cur2.execute("INSERT INTO ledger VALUES (3, 10, -1, 9223372036854775808)")
            cur1.execute("UPDATE ledger SET amount = amount + 0.1, big = big * 3 WHERE id = 1")
            expected = (
                (1, Decimal("0.20"), BIG3, 2**64 - 1),
                (2, Decimal("9.50"), Decimal("1E-30"), 5),
                (3, Decimal("10.00"), Decimal("-1"), 2**63),
            )
            wait_until_equal(
                nodes, "SELECT id, amount, big, n FROM ledger ORDER BY id", timeout=30, expected=expected
            )
            # each replica's copy sorts and compares numerically, and its UNIQUE index refuses 9.50 as 9.5
            for node in nodes:
                assert run(node, "SELECT id FROM ledger ORDER BY amount DESC") == ((3,), (2,), (1,))
                assert run(node, "SELECT id FROM ledger ORDER BY n") == ((2,), (3,), (1,))
                assert run(node, "SELECT SUM(amount), SUM(big) FROM ledger") == ((Decimal("19.70"), TOTAL),)
            with connect(n3) as c3, pytest.raises(pymysql.err.IntegrityError):
                c3.cursor().execute("INSERT INTO ledger VALUES (4, 9.500, 0, 0)")
            # a view computing exactly replicates as DDL and computes the same on every node
            cur1.execute("CREATE VIEW ledger_total AS SELECT SUM(amount) * 1.10 AS t FROM ledger")
            wait_until_equal(
                nodes, "SELECT * FROM ledger_total", timeout=30, expected=((Decimal("21.6700"),),)
            )
            result = marmot_verify(n1)
            assert result.returncode == 0, result.stdout + result.stderr

            # a node joining now installs a snapshot of the database: the same exact values there
            n4 = make_node(
                tmp_path / "n4",
                node_id=4,
                unix_socket=False,
                cluster_extra=join_keys(n1),
                extra_toml=f"[replication]\n{extra}",
            ).start()
            try:
                wait_until_equal(
                    [n1, n4],
                    "SELECT id, amount, big, n FROM ledger ORDER BY id",
                    timeout=60,
                    expected=expected,
                )
                assert run(n4, "SELECT id FROM ledger WHERE n = 18446744073709551615") == ((1,),)
                assert run(n4, "SELECT id FROM ledger WHERE amount = 9.5") == ((2,),)
                assert "installed a snapshot of marmot" in n4.log()
            finally:
                n4.stop(signal.SIGTERM)
        finally:
            c1.close()
            c2.close()
