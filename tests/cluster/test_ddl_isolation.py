"""DDL on one table leaves writes to other tables alone (issue: sysbench's parallel ``prepare`` used to
fail on a cluster and leave tables half filled, without their indexes).

A write conflicts with a DDL only when the DDL changes a table the write changes: its participants
compare per-table schema fingerprints, and a DDL's intents cover only the tables it changes. Shown on
a 3-node cluster of real processes with real clients: an open transaction on one table survives DDL on
another and loses (1213) to DDL on its own; autocommit writes to one table run clean while another table
is altered again and again; ``sysbench`` prepares 4 tables in parallel through one node and every node
ends with every row and index; ``oltp_read_write`` over all three nodes hits no error but row-conflict
1213s; ``marmot verify`` finds the nodes identical afterwards.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading

import pymysql
import pytest

from marmot.testing import NodeProcess
from tests.support import cluster_fixture, connect, marmot_verify, run, wait_until_equal

cluster = cluster_fixture(3)


def _sysbench(nodes: list[NodeProcess], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    ports = ",".join(str(n.mysql_port) for n in nodes)
    return subprocess.run(
        [
            "sysbench",
            *args,
            "--db-driver=mysql",
            "--mysql-host=127.0.0.1",
            f"--mysql-port={ports}",
            "--mysql-user=root",
            "--mysql-password=",
            "--mysql-db=sbtest",
            "--mysql-ssl=off",
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_open_transaction_survives_ddl_on_another_table(cluster: list[NodeProcess]) -> None:
    n1, n2, _ = cluster
    run(
        n1, "CREATE TABLE iso_a (id INT PRIMARY KEY, v INT)", "CREATE TABLE iso_b (id INT PRIMARY KEY, v INT)"
    )
    wait_until_equal(
        cluster,
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_name LIKE 'iso_%'",
        expected=((2,),),
    )
    c = connect(n1)
    try:
        cur = c.cursor()
        cur.execute("BEGIN")
        cur.execute("INSERT INTO iso_a VALUES (1, 1)")
        run(n2, "ALTER TABLE iso_b ADD COLUMN w INT", "CREATE INDEX iso_b_v ON iso_b (v)")
        wait_until_equal(
            cluster,
            "SELECT COUNT(*) FROM information_schema.statistics "
            "WHERE table_name = 'iso_b' AND index_name = 'iso_b_v'",
            expected=((1,),),
        )
        cur.execute("INSERT INTO iso_a VALUES (2, 2)")
        cur.execute("COMMIT")
    finally:
        c.close()
    wait_until_equal(cluster, "SELECT id, v FROM iso_a ORDER BY id", expected=((1, 1), (2, 2)))

    # the same on its own table: the transaction's images were made for the old schema, so it loses
    c = connect(n1)
    try:
        cur = c.cursor()
        cur.execute("BEGIN")
        cur.execute("INSERT INTO iso_a VALUES (3, 3)")
        run(n2, "ALTER TABLE iso_a ADD COLUMN w INT")
        wait_until_equal(
            cluster,
            "SELECT COUNT(*) FROM information_schema.columns "
            "WHERE table_name = 'iso_a' AND column_name = 'w'",
            expected=((1,),),
        )
        with pytest.raises(pymysql.err.OperationalError) as err:
            cur.execute("INSERT INTO iso_a VALUES (4, 4)")
            cur.execute("COMMIT")
        assert err.value.args[0] == 1213 and "iso_a" in err.value.args[1]
    finally:
        c.close()
    wait_until_equal(cluster, "SELECT id FROM iso_a ORDER BY id", expected=((1,), (2,)))


def test_autocommit_writes_run_clean_while_another_table_changes(cluster: list[NodeProcess]) -> None:
    n1, n2, n3 = cluster
    run(n1, "CREATE TABLE busy (id INT PRIMARY KEY, v INT)", "CREATE TABLE altered (id INT PRIMARY KEY)")
    wait_until_equal(
        cluster,
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_name IN ('busy', 'altered')",
        expected=((2,),),
    )
    errors: list[BaseException] = []
    stop = threading.Event()

    def writer(node: NodeProcess, start: int) -> None:
        c = connect(node)
        try:
            i = start
            while not stop.is_set():
                c.cursor().execute("INSERT INTO busy VALUES (%s, %s)", (i, i))
                i += 2
        except BaseException as e:  # noqa: BLE001 - every error is the test's failure
            errors.append(e)
        finally:
            c.close()

    threads = [threading.Thread(target=writer, args=(n, s)) for n, s in ((n1, 0), (n3, 1))]
    for t in threads:
        t.start()
    try:
        for i in range(12):  # DDL through the middle node, each waited for everywhere
            run(n2, f"ALTER TABLE altered ADD COLUMN c{i} INT")
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not errors, errors
    counts = wait_until_equal(cluster, "SELECT COUNT(*) FROM busy", timeout=30)
    assert counts[0][0][0] > 0
    wait_until_equal(
        cluster,
        "SELECT COUNT(*) FROM information_schema.columns WHERE table_name = 'altered'",
        expected=((13,),),
    )


@pytest.mark.skipif(
    shutil.which("sysbench") is None, reason="sysbench is not installed (.ci/run installs it)"
)
def test_sysbench_parallel_prepare_and_read_write(cluster: list[NodeProcess]) -> None:
    n1 = cluster[0]
    run(n1, "CREATE DATABASE sbtest", db=None)
    tables = 4
    prep = _sysbench([n1], "oltp_insert", f"--tables={tables}", "--table-size=5000", "--threads=4", "prepare")
    assert prep.returncode == 0 and "FATAL" not in prep.stdout + prep.stderr, prep.stdout + prep.stderr
    for t in range(1, tables + 1):
        wait_until_equal(
            cluster,
            f"SELECT COUNT(*), SUM(k) > 0 FROM sbtest{t}",
            db="sbtest",
            timeout=60,
            expected=((5000, 1),),
        )
        wait_until_equal(
            cluster,
            "SELECT index_name, column_name FROM information_schema.statistics "
            f"WHERE table_schema = 'sbtest' AND table_name = 'sbtest{t}' ORDER BY 1",
            db="sbtest",
            expected=((f"k_{t}", "k"), ("PRIMARY", "id")),
        )
    # connections spread over the three nodes; only row conflicts (1213) may be retried
    rw = _sysbench(
        cluster,
        "oltp_read_write",
        f"--tables={tables}",
        "--table-size=5000",
        "--threads=8",
        "--time=15",
        "--mysql-ignore-errors=1213",
        "run",
    )
    out = rw.stdout + rw.stderr
    assert rw.returncode == 0 and "FATAL" not in out, out
    done = re.search(r"transactions:\s+(\d+)", out)
    assert done is not None and int(done.group(1)) > 0, out
    verify = marmot_verify(n1, "--database", "sbtest", settle=5)
    assert verify.returncode == 0, verify.stdout + verify.stderr
