"""Every row of the upstream README's SQL compatibility table marked "Replication: Yes", on a 3-node
cluster: the statement is written on one node and every node then returns identical results.

Why these checks: a replicated write is only right if the *other* nodes end up with exactly what the
writer has — the same rows (ids, non-deterministic values and trigger/cascade effects included), the
same schema (SHOW CREATE TABLE / SHOW INDEX / SHOW TRIGGERS), the same databases. Each test writes on a
different node than the previous step where it can, reads the writer's answer, and polls every node until
they all agree with it (followers beyond the quorum apply asynchronously). Literal expected values make
a wrong result fail even when all nodes are wrong alike. The rows (see README "SQL compatibility"):

INSERT/REPLACE, UPDATE, DELETE (qualified names too), LOAD DATA, CREATE/ALTER/DROP/TRUNCATE/RENAME TABLE,
CREATE/DROP INDEX, VIEW, TRIGGER, CREATE/DROP/ALTER DATABASE, COMMIT, ROLLBACK, SAVEPOINT; plus
INSERT ... SELECT, ON DUPLICATE KEY UPDATE, FK cascades and AUTO_INCREMENT, which ride on those rows.

One cluster serves the whole module; every test uses its own tables.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pymysql
import pytest

from marmot.testing import NodeProcess
from tests.support import cluster_fixture, connect, run, wait_until_equal

cluster = cluster_fixture(n=3)


@contextmanager
def session(node: NodeProcess, db: str | None = "marmot") -> Iterator[pymysql.cursors.Cursor]:
    """A cursor on a fresh connection to ``node``, closed (rolling back anything open) on exit, so that a
    failing test leaves no transaction behind to disturb the tests after it."""
    c = connect(node, db)
    try:
        yield c.cursor()
    finally:
        c.close()


def converged(
    nodes: Sequence[NodeProcess],
    sql: str,
    writer: NodeProcess,
    expected: Any = None,
    db: str | None = "marmot",
) -> tuple:
    """What ``writer`` answers to ``sql`` (checked against ``expected`` if given), once every node
    answers the same."""
    mine = run(writer, sql, db=db)
    if expected is not None:
        assert mine == tuple(expected), f"writer answered {mine!r}, expected {tuple(expected)!r}"
    wait_until_equal(nodes, sql, db=db, expected=mine)
    return mine


# ---------------------------------------------------------------------------------------------- DDL: tables


def test_create_table(cluster):
    n1, n2, n3 = cluster
    run(
        n2,
        "CREATE TABLE ct_people (id INT AUTO_INCREMENT PRIMARY KEY, email VARCHAR(80) NOT NULL, "
        "name VARCHAR(40) DEFAULT 'anon', score DECIMAL(8,2) DEFAULT 0.00, born DATE NULL, "
        "UNIQUE KEY uk_email (email), KEY k_name (name))",
    )
    converged(cluster, "SHOW TABLES LIKE 'ct_people'", n2, [("ct_people",)])
    ddl = converged(cluster, "SHOW CREATE TABLE ct_people", n2)
    assert "`email` varchar(80) NOT NULL" in ddl[0][1] and "AUTO_INCREMENT" in ddl[0][1]
    idx = converged(cluster, "SHOW INDEX FROM ct_people", n2)
    assert {r[2] for r in idx} == {"PRIMARY", "uk_email", "k_name"}
    converged(cluster, "SHOW COLUMNS FROM ct_people", n2)
    # the replicated UNIQUE key is enforced on another node
    run(n3, "INSERT INTO ct_people (email) VALUES ('a@x')")
    wait_until_equal(cluster, "SELECT email FROM ct_people", expected=[("a@x",)])
    with pytest.raises(pymysql.err.IntegrityError) as ei:
        run(n1, "INSERT INTO ct_people (email) VALUES ('a@x')")
    assert ei.value.args[0] == 1062
    converged(cluster, "SELECT email, name, score FROM ct_people ORDER BY id", n3)
    # IF NOT EXISTS on an existing table changes nothing anywhere
    run(n1, "CREATE TABLE IF NOT EXISTS ct_people (id INT PRIMARY KEY)")
    assert converged(cluster, "SHOW CREATE TABLE ct_people", n1) == ddl


def test_alter_table(cluster):
    n1, n2, n3 = cluster
    run(
        n1,
        "CREATE TABLE at_items (id INT PRIMARY KEY, title VARCHAR(20), qty INT)",
        "INSERT INTO at_items VALUES (1, 'one', 10), (2, 'two', 20)",
    )
    converged(cluster, "SELECT * FROM at_items ORDER BY id", n1, [(1, "one", 10), (2, "two", 20)])

    run(n3, "ALTER TABLE at_items ADD COLUMN status VARCHAR(10) NOT NULL DEFAULT 'new' AFTER id")
    converged(cluster, "SHOW CREATE TABLE at_items", n3)
    converged(
        cluster, "SELECT * FROM at_items ORDER BY id", n3, [(1, "new", "one", 10), (2, "new", "two", 20)]
    )

    # a rebuild (MODIFY / CHANGE / DROP COLUMN) keeps the data on every node
    run(
        n2,
        "ALTER TABLE at_items MODIFY COLUMN title VARCHAR(60) NOT NULL",
        "ALTER TABLE at_items CHANGE COLUMN qty quantity BIGINT DEFAULT 1",
        "ALTER TABLE at_items ADD INDEX by_status (status)",
    )
    ddl = converged(cluster, "SHOW CREATE TABLE at_items", n2)
    assert "`quantity` bigint DEFAULT" in ddl[0][1] and "`title` varchar(60) NOT NULL" in ddl[0][1]
    assert "by_status" in {r[2] for r in converged(cluster, "SHOW INDEX FROM at_items", n2)}
    run(n1, "ALTER TABLE at_items DROP COLUMN status")
    converged(cluster, "SHOW CREATE TABLE at_items", n1)
    # the new schema is in use on a third node
    run(n3, "INSERT INTO at_items (id, title) VALUES (3, 'three')")
    converged(
        cluster, "SELECT * FROM at_items ORDER BY id", n3, [(1, "one", 10), (2, "two", 20), (3, "three", 1)]
    )


def test_drop_table(cluster):
    n1, n2, n3 = cluster
    run(n1, "CREATE TABLE dt_gone (id INT PRIMARY KEY)", "INSERT INTO dt_gone VALUES (1)")
    converged(cluster, "SHOW TABLES LIKE 'dt_%'", n1, [("dt_gone",)])
    run(n3, "DROP TABLE dt_gone")
    converged(cluster, "SHOW TABLES LIKE 'dt_%'", n3, [])
    run(n2, "DROP TABLE IF EXISTS dt_gone")  # no-op everywhere
    # the name is free again on every node: recreate elsewhere with another shape
    run(n2, "CREATE TABLE dt_gone (k VARCHAR(5) PRIMARY KEY)", "INSERT INTO dt_gone VALUES ('x')")
    converged(cluster, "SELECT * FROM dt_gone ORDER BY k", n2, [("x",)])
    converged(cluster, "SHOW CREATE TABLE dt_gone", n2)


def test_rename_table(cluster):
    n1, n2, n3 = cluster
    run(n1, "CREATE TABLE rn_old (id INT PRIMARY KEY, v VARCHAR(5))", "INSERT INTO rn_old VALUES (1, 'a')")
    converged(cluster, "SELECT * FROM rn_old ORDER BY id", n1, [(1, "a")])
    run(n2, "RENAME TABLE rn_old TO rn_new")
    converged(cluster, "SHOW TABLES LIKE 'rn_%'", n2, [("rn_new",)])
    run(n3, "ALTER TABLE rn_new RENAME TO rn_final", "INSERT INTO rn_final VALUES (2, 'b')")
    converged(cluster, "SHOW TABLES LIKE 'rn_%'", n3, [("rn_final",)])
    converged(cluster, "SELECT * FROM rn_final ORDER BY id", n3, [(1, "a"), (2, "b")])


def test_truncate_table(cluster):
    n1, n2, n3 = cluster
    run(
        n1,
        "CREATE TABLE tr_log (id INT PRIMARY KEY, msg VARCHAR(10))",
        "INSERT INTO tr_log VALUES (1, 'a'), (2, 'b'), (3, 'c')",
    )
    converged(cluster, "SELECT COUNT(*) FROM tr_log", n1, [(3,)])
    run(n2, "TRUNCATE TABLE tr_log")
    converged(cluster, "SELECT COUNT(*) FROM tr_log", n2, [(0,)])
    run(n3, "INSERT INTO tr_log VALUES (1, 'again')")  # the emptied table takes the old keys again
    converged(cluster, "SELECT * FROM tr_log ORDER BY id", n3, [(1, "again")])
    converged(cluster, "SHOW CREATE TABLE tr_log", n3)


def test_create_drop_index(cluster):
    n1, n2, n3 = cluster
    run(
        n1,
        "CREATE TABLE ix_t (id INT PRIMARY KEY, a VARCHAR(20), b INT)",
        "INSERT INTO ix_t VALUES (1, 'x', 1), (2, 'y', 2)",
    )
    converged(cluster, "SELECT * FROM ix_t ORDER BY id", n1, [(1, "x", 1), (2, "y", 2)])
    run(n3, "CREATE INDEX ix_a ON ix_t (a(10))")
    run(n2, "CREATE UNIQUE INDEX ux_b ON ix_t (b)")
    idx = converged(cluster, "SHOW INDEX FROM ix_t", n2)
    assert {r[2] for r in idx} == {"PRIMARY", "ix_a", "ux_b"}
    with pytest.raises(pymysql.err.IntegrityError) as ei:  # the unique index exists on node 1 too
        run(n1, "INSERT INTO ix_t VALUES (3, 'z', 2)")
    assert ei.value.args[0] == 1062
    run(n1, "DROP INDEX ux_b ON ix_t")
    idx = converged(cluster, "SHOW INDEX FROM ix_t", n1)
    assert {r[2] for r in idx} == {"PRIMARY", "ix_a"}
    run(n3, "INSERT INTO ix_t VALUES (3, 'z', 2)")  # allowed again on another node
    converged(cluster, "SELECT * FROM ix_t ORDER BY id", n3, [(1, "x", 1), (2, "y", 2), (3, "z", 2)])


# ----------------------------------------------------------------------------------------------------- DML


def test_insert_single_multi_set_and_qualified(cluster):
    n1, n2, n3 = cluster
    run(n1, "CREATE TABLE ins_t (id INT PRIMARY KEY, v VARCHAR(20), n INT DEFAULT 7, b BLOB, f DOUBLE)")
    converged(cluster, "SHOW TABLES LIKE 'ins_t'", n1, [("ins_t",)])
    run(n1, "INSERT INTO ins_t (id, v) VALUES (1, 'single')")
    run(
        n2,
        "INSERT INTO ins_t VALUES (2, 'multi-a', 2, x'00ff10', 2.5), (3, 'multi-b', NULL, NULL, -0.125), "
        "(4, 'ünïcødé ✓', 4, '', 1e300)",
    )
    run(n3, "INSERT INTO ins_t SET id = 5, v = 'set-form'")
    run(n3, "INSERT INTO marmot.ins_t (id, v) VALUES (6, 'qualified')", db=None)  # no default database
    converged(
        cluster,
        "SELECT * FROM ins_t ORDER BY id",
        n3,
        [
            (1, "single", 7, None, None),
            (2, "multi-a", 2, b"\x00\xff\x10", 2.5),
            (3, "multi-b", None, None, -0.125),
            (4, "ünïcødé ✓", 4, b"", 1e300),
            (5, "set-form", 7, None, None),
            (6, "qualified", 7, None, None),
        ],
    )


def test_insert_select(cluster):
    n1, n2, n3 = cluster
    run(
        n1,
        "CREATE TABLE is_src (id INT PRIMARY KEY, v VARCHAR(10), n INT)",
        "CREATE TABLE is_dst (id INT PRIMARY KEY, label VARCHAR(20), twice INT)",
        "INSERT INTO is_src VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3)",
    )
    converged(cluster, "SELECT * FROM is_src ORDER BY id", n1, [(1, "a", 1), (2, "b", 2), (3, "c", 3)])
    run(
        n2,
        "INSERT INTO is_dst (id, label, twice) SELECT id * 10, CONCAT('from-', v), n * 2 FROM is_src "
        "WHERE n >= 2",
    )
    converged(cluster, "SELECT * FROM is_dst ORDER BY id", n2, [(20, "from-b", 4), (30, "from-c", 6)])


def test_insert_on_duplicate_key_update_and_ignore(cluster):
    n1, n2, n3 = cluster
    run(
        n1,
        "CREATE TABLE odku (id INT PRIMARY KEY, v VARCHAR(10), n INT)",
        "INSERT INTO odku VALUES (1, 'a', 1)",
    )
    converged(cluster, "SELECT * FROM odku ORDER BY id", n1, [(1, "a", 1)])
    run(
        n2,
        "INSERT INTO odku VALUES (1, 'a2', 5), (2, 'b', 7) "
        "ON DUPLICATE KEY UPDATE n = n + VALUES(n), v = CONCAT(v, '+')",
    )
    converged(cluster, "SELECT * FROM odku ORDER BY id", n2, [(1, "a+", 6), (2, "b", 7)])
    run(n3, "INSERT IGNORE INTO odku VALUES (2, 'dup', 0), (3, 'c', 3)")  # the duplicate is skipped
    converged(cluster, "SELECT * FROM odku ORDER BY id", n3, [(1, "a+", 6), (2, "b", 7), (3, "c", 3)])


def test_replace(cluster):
    n1, n2, n3 = cluster
    run(
        n1,
        "CREATE TABLE rep (id INT PRIMARY KEY, email VARCHAR(20) UNIQUE, name VARCHAR(10))",
        "INSERT INTO rep VALUES (1, 'a@x', 'A'), (2, 'b@x', 'B')",
    )
    converged(cluster, "SELECT * FROM rep ORDER BY id", n1, [(1, "a@x", "A"), (2, "b@x", "B")])
    run(n3, "REPLACE INTO rep VALUES (2, 'b@x', 'B2')")  # same primary key: the row is replaced
    # a UNIQUE-key conflict with another row: MySQL deletes that row and inserts the new one
    run(n3, "REPLACE INTO rep VALUES (3, 'a@x', 'C')")
    converged(cluster, "SELECT * FROM rep ORDER BY id", n3, [(2, "b@x", "B2"), (3, "a@x", "C")])
    run(n2, "REPLACE INTO rep SET id = 4, email = 'd@x', name = 'D'")
    converged(
        cluster, "SELECT * FROM rep ORDER BY id", n2, [(2, "b@x", "B2"), (3, "a@x", "C"), (4, "d@x", "D")]
    )


def test_update(cluster):
    n1, n2, n3 = cluster
    run(
        n1,
        "CREATE TABLE upd (id INT PRIMARY KEY, v VARCHAR(20), n INT)",
        "INSERT INTO upd VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3), (4, 'd', 4)",
    )
    converged(cluster, "SELECT COUNT(*) FROM upd", n1, [(4,)])
    run(n2, "UPDATE upd SET n = n * 2 + 1, v = CONCAT(v, '!') WHERE n >= 2")  # multi-row, expressions
    converged(
        cluster, "SELECT * FROM upd ORDER BY id", n2, [(1, "a", 1), (2, "b!", 5), (3, "c!", 7), (4, "d!", 9)]
    )
    run(n3, "UPDATE upd SET v = UPPER(v) ORDER BY n DESC LIMIT 2")
    converged(
        cluster, "SELECT * FROM upd ORDER BY id", n3, [(1, "a", 1), (2, "b!", 5), (3, "C!", 7), (4, "D!", 9)]
    )
    run(n1, "UPDATE marmot.upd SET id = id + 100 WHERE id = 1")  # a primary-key change, qualified name
    run(n1, "UPDATE upd SET n = n WHERE id = 2")  # changes nothing
    converged(
        cluster,
        "SELECT * FROM upd ORDER BY id",
        n1,
        [(2, "b!", 5), (3, "C!", 7), (4, "D!", 9), (101, "a", 1)],
    )


def test_non_deterministic_values_identical(cluster):
    """Row images replicate, not statement text: UUID(), RAND() and NOW(6) evaluated once, on the writer."""
    n1, n2, n3 = cluster
    run(n1, "CREATE TABLE nd (id INT PRIMARY KEY, u VARCHAR(40), r DOUBLE, t DATETIME(6))")
    converged(cluster, "SHOW TABLES LIKE 'nd'", n1, [("nd",)])
    run(n1, "INSERT INTO nd VALUES (1, UUID(), RAND(), NOW(6)), (2, UUID(), RAND(), NOW(6))")
    first = converged(cluster, "SELECT * FROM nd ORDER BY id", n1)
    assert len(first) == 2 and first[0][1] != first[1][1]
    run(n2, "UPDATE nd SET r = RAND(), u = UUID()")
    second = converged(cluster, "SELECT * FROM nd ORDER BY id", n2)
    assert [r[1] for r in second] != [r[1] for r in first]


def test_delete(cluster):
    n1, n2, n3 = cluster
    run(
        n1,
        "CREATE TABLE del (id INT PRIMARY KEY, n INT)",
        "INSERT INTO del VALUES (1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (6, 6)",
    )
    converged(cluster, "SELECT COUNT(*) FROM del", n1, [(6,)])
    run(n3, "DELETE FROM del WHERE n IN (2, 4)")
    converged(cluster, "SELECT * FROM del ORDER BY id", n3, [(1, 1), (3, 3), (5, 5), (6, 6)])
    run(n1, "DELETE FROM marmot.del ORDER BY n DESC LIMIT 2")
    converged(cluster, "SELECT * FROM del ORDER BY id", n1, [(1, 1), (3, 3)])
    run(n2, "DELETE FROM del")
    converged(cluster, "SELECT * FROM del ORDER BY id", n2, [])


def test_table_without_primary_key(cluster):
    """MySQL allows tables without a key; one writer at a time, such rows replicate too."""
    n1, n2, n3 = cluster
    run(
        n2, "CREATE TABLE nopk (v VARCHAR(10), n INT)", "INSERT INTO nopk VALUES ('a', 1), ('b', 2), ('a', 3)"
    )
    converged(cluster, "SELECT * FROM nopk ORDER BY v, n", n2, [("a", 1), ("a", 3), ("b", 2)])
    run(n2, "UPDATE nopk SET n = n + 10 WHERE v = 'a'", "DELETE FROM nopk WHERE v = 'b'")
    converged(cluster, "SELECT * FROM nopk ORDER BY v, n", n2, [("a", 11), ("a", 13)])


def test_load_data_local_infile(cluster, tmp_path: Path):
    n1, n2, n3 = cluster
    run(n1, "CREATE TABLE ld (id INT PRIMARY KEY, name VARCHAR(20), note TEXT)")
    converged(cluster, "SHOW TABLES LIKE 'ld'", n1, [("ld",)])
    path = tmp_path / "rows.tsv"
    path.write_text("1\talice\tfirst\\tline\n2\tbob\t\\N\n3\tcarol\tback\\\\slash\n", encoding="utf-8")
    with session(n3) as cur:
        assert cur.execute(f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE ld") == 3
    converged(
        cluster,
        "SELECT * FROM ld ORDER BY id",
        n3,
        [(1, "alice", "first\tline"), (2, "bob", None), (3, "carol", "back\\slash")],
    )
    # bulk: one statement, thousands of rows, from another node
    path.write_text("".join(f"{i}\tbulk{i}\t{'x' * (i % 50)}\n" for i in range(1000, 6000)), encoding="utf-8")
    with session(n2) as cur:
        assert cur.execute(f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE ld") == 5000
    converged(
        cluster,
        "SELECT COUNT(*), SUM(id), SUM(LENGTH(note)) FROM ld",
        n2,
        [(5003, sum(range(1000, 6000)) + 6, sum(i % 50 for i in range(1000, 6000)) + 20)],
    )
    converged(cluster, "SELECT * FROM ld ORDER BY id", n2)


def test_auto_increment_ids_identical(cluster):
    n1, n2, n3 = cluster
    run(n1, "CREATE TABLE ai (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(10))")
    converged(cluster, "SHOW TABLES LIKE 'ai'", n1, [("ai",)])
    ids: dict[str, int] = {}
    for node, label in ((n1, "one"), (n2, "two"), (n3, "three")):
        with session(node) as cur:
            cur.execute("INSERT INTO ai (v) VALUES (%s)", (label,))
            ids[label] = cur.lastrowid
            cur.execute("SELECT LAST_INSERT_ID()")
            assert cur.fetchone() == (ids[label],)
    run(n2, "INSERT INTO ai (id, v) VALUES (NULL, 'null-id'), (0, 'zero-id')")
    rows = converged(cluster, "SELECT id, v FROM ai ORDER BY id", n2)
    assert len(rows) == 5 and len({r[0] for r in rows}) == 5
    assert {v: i for i, v in rows if v in ids} == ids  # the ids the clients were told, on every node


# --------------------------------------------------------------------------------------------- transactions


def _sample(node: NodeProcess, sql: str, seen: set, stop: threading.Event) -> None:
    c = connect(node)
    try:
        cur = c.cursor()
        while not stop.is_set():
            cur.execute(sql)
            seen.add(cur.fetchone())
            time.sleep(0.002)
    finally:
        c.close()


def test_commit_replicates_as_a_unit(cluster):
    n1, n2, n3 = cluster
    run(
        n1,
        "CREATE TABLE tx_a (id INT PRIMARY KEY, n INT)",
        "CREATE TABLE tx_b (id INT PRIMARY KEY, v VARCHAR(5))",
        "INSERT INTO tx_a VALUES (1, 0)",
    )
    converged(cluster, "SELECT * FROM tx_a", n1, [(1, 0)])
    converged(cluster, "SHOW TABLES LIKE 'tx_b'", n1, [("tx_b",)])
    probe = (
        "SELECT (SELECT COUNT(*) FROM tx_a), (SELECT SUM(n) FROM tx_a), (SELECT COUNT(*) FROM tx_b), "
        "(SELECT COUNT(*) FROM tx_a WHERE id = 1)"
    )
    before, after = (1, 0, 0, 1), (2, 3, 2, 0)
    stop = threading.Event()
    seen = {id(n): set() for n in (n1, n3)}
    samplers = [threading.Thread(target=_sample, args=(n, probe, seen[id(n)], stop)) for n in (n1, n3)]
    for t in samplers:
        t.start()
    try:
        with session(n2) as cur:
            cur.execute("BEGIN")
            cur.execute("UPDATE tx_a SET n = 5 WHERE id = 1")
            cur.execute("INSERT INTO tx_a VALUES (2, 1), (3, 2)")
            cur.execute("INSERT INTO tx_b VALUES (1, 'x'), (2, 'y')")
            cur.execute("DELETE FROM tx_a WHERE id = 1")
            time.sleep(0.2)  # uncommitted: the samplers must keep seeing `before`
            cur.execute("COMMIT")
        converged(cluster, probe, n2, [after])
    finally:
        stop.set()
        for t in samplers:
            t.join(10)
    for n in (n1, n3):
        s = {tuple(int(x) for x in row) for row in seen[id(n)]}
        assert s <= {before, after}, f"node saw a partial transaction: {sorted(s)}"
        assert before in s
    converged(cluster, "SELECT * FROM tx_a ORDER BY id", n3, [(2, 1), (3, 2)])
    converged(cluster, "SELECT * FROM tx_b ORDER BY id", n3, [(1, "x"), (2, "y")])


def test_rollback_leaves_nothing(cluster):
    n1, n2, n3 = cluster
    run(n1, "CREATE TABLE rb (id INT PRIMARY KEY, v VARCHAR(10))", "INSERT INTO rb VALUES (1, 'kept')")
    converged(cluster, "SELECT * FROM rb ORDER BY id", n1, [(1, "kept")])
    with session(n3) as cur:
        cur.execute("START TRANSACTION")
        cur.execute("INSERT INTO rb VALUES (2, 'rolled'), (3, 'rolled')")
        cur.execute("UPDATE rb SET v = 'changed' WHERE id = 1")
        cur.execute("DELETE FROM rb WHERE id = 1")
        cur.execute("ROLLBACK")
        cur.execute("INSERT INTO rb VALUES (4, 'marker')")  # a later write from the same node: it arrives
    converged(cluster, "SELECT * FROM rb ORDER BY id", n3, [(1, "kept"), (4, "marker")])
    time.sleep(0.5)  # nothing of the rolled-back transaction shows up late either
    wait_until_equal(
        cluster, "SELECT * FROM rb ORDER BY id", expected=[(1, "kept"), (4, "marker")], timeout=1
    )


def test_savepoint(cluster):
    n1, n2, n3 = cluster
    run(n2, "CREATE TABLE sp (id INT PRIMARY KEY, v VARCHAR(10))")
    converged(cluster, "SHOW TABLES LIKE 'sp'", n2, [("sp",)])
    with session(n1) as cur:
        cur.execute("BEGIN")
        cur.execute("INSERT INTO sp VALUES (1, 'a')")
        cur.execute("SAVEPOINT s1")
        cur.execute("INSERT INTO sp VALUES (2, 'b')")
        cur.execute("UPDATE sp SET v = 'a-changed' WHERE id = 1")
        cur.execute("ROLLBACK TO SAVEPOINT s1")
        cur.execute("INSERT INTO sp VALUES (3, 'c')")
        cur.execute("SAVEPOINT s2")
        cur.execute("UPDATE sp SET v = 'c2' WHERE id = 3")
        cur.execute("RELEASE SAVEPOINT s2")
        cur.execute("COMMIT")
    converged(cluster, "SELECT * FROM sp ORDER BY id", n1, [(1, "a"), (3, "c2")])


def test_ddl_commits_the_open_transaction(cluster):
    """MySQL: DDL inside BEGIN implicitly commits what came before it; a later ROLLBACK cannot undo it."""
    n1, n2, n3 = cluster
    run(n1, "CREATE TABLE ic_t (id INT PRIMARY KEY)")
    converged(cluster, "SHOW TABLES LIKE 'ic_%'", n1, [("ic_t",)])
    with session(n2) as cur:
        cur.execute("BEGIN")
        cur.execute("INSERT INTO ic_t VALUES (1)")
        cur.execute("CREATE TABLE ic_new (id INT PRIMARY KEY)")
        cur.execute("INSERT INTO ic_t VALUES (2)")  # a new transaction (autocommit is on again)
        cur.execute("ROLLBACK")
    converged(cluster, "SHOW TABLES LIKE 'ic_%'", n2, [("ic_new",), ("ic_t",)])
    converged(cluster, "SELECT * FROM ic_t ORDER BY id", n2, [(1,), (2,)])


def test_open_transaction_does_not_hold_up_other_nodes(cluster):
    """MySQL: an open transaction locks the rows it wrote, nothing more. While one is open on node 3,
    nodes 1 and 2 keep writing another table at QUORUM (node 3 may lag meanwhile); the open
    transaction's rows are seen nowhere else until COMMIT, and then everything converges."""
    n1, n2, n3 = cluster
    run(
        n1,
        "CREATE TABLE ot_held (id INT PRIMARY KEY, v VARCHAR(10))",
        "CREATE TABLE ot_free (id INT PRIMARY KEY, v VARCHAR(10))",
    )
    converged(cluster, "SHOW TABLES LIKE 'ot_%'", n1, [("ot_free",), ("ot_held",)])
    with session(n3) as held:
        held.execute("BEGIN")
        held.execute("INSERT INTO ot_held VALUES (1, 'held')")
        run(n1, "INSERT INTO ot_free VALUES (1, 'a'), (2, 'b')")
        run(n2, "UPDATE ot_free SET v = 'B' WHERE id = 2")
        wait_until_equal([n1, n2], "SELECT * FROM ot_free ORDER BY id", expected=[(1, "a"), (2, "B")])
        wait_until_equal([n1, n2], "SELECT COUNT(*) FROM ot_held", expected=[(0,)])
        held.execute("COMMIT")
    converged(cluster, "SELECT * FROM ot_held ORDER BY id", n3, [(1, "held")])
    converged(cluster, "SELECT * FROM ot_free ORDER BY id", n3, [(1, "a"), (2, "B")])


# ---------------------------------------------------------------------------------------------- databases


def test_create_alter_drop_database(cluster):
    n1, n2, n3 = cluster
    run(n2, "CREATE DATABASE repl_db")
    dbs = converged(cluster, "SHOW DATABASES", n2, db=None)
    assert ("repl_db",) in dbs
    # tables and rows in the new database, written from other nodes (USE and qualified names)
    wait_until_equal(cluster, "SHOW TABLES", db="repl_db", expected=[])
    run(n3, "USE repl_db", "CREATE TABLE things (id INT PRIMARY KEY, v VARCHAR(10))", db=None)
    converged(cluster, "SHOW TABLES", n3, [("things",)], db="repl_db")
    run(n1, "INSERT INTO repl_db.things VALUES (1, 'a'), (2, 'b')")
    run(n2, "UPDATE repl_db.things SET v = 'B' WHERE id = 2", "DELETE FROM repl_db.things WHERE id = 1")
    converged(cluster, "SELECT * FROM things ORDER BY id", n2, [(2, "B")], db="repl_db")
    converged(cluster, "SHOW TABLES LIKE 'things'", n2, [])  # not in the default database
    # ALTER DATABASE (no visible effect on a single node either): accepted, the same everywhere
    run(n1, "ALTER DATABASE repl_db CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
    converged(cluster, "SHOW CREATE DATABASE repl_db", n1, db=None)
    run(n2, "CREATE DATABASE IF NOT EXISTS repl_db")  # exists: a no-op, the data stays
    converged(cluster, "SELECT * FROM repl_db.things ORDER BY id", n2, [(2, "B")])
    run(n3, "DROP DATABASE repl_db")
    after = converged(cluster, "SHOW DATABASES", n3, db=None)
    assert ("repl_db",) not in after and set(after) == set(dbs) - {("repl_db",)}
    # the name can be reused, empty, from another node
    run(n1, "CREATE DATABASE repl_db")
    wait_until_equal(cluster, "SHOW TABLES", db="repl_db", expected=[])
    run(n1, "DROP DATABASE repl_db")
    converged(cluster, "SHOW DATABASES", n1, after, db=None)


# ------------------------------------------------------------------------------------- keys, triggers, views


def test_foreign_key_cascades(cluster):
    n1, n2, n3 = cluster
    run(
        n1,
        "CREATE TABLE fk_parent (id INT PRIMARY KEY, name VARCHAR(10))",
        "CREATE TABLE fk_child (id INT PRIMARY KEY, pid INT, "
        "FOREIGN KEY (pid) REFERENCES fk_parent (id) ON DELETE CASCADE ON UPDATE CASCADE)",
        "CREATE TABLE fk_weak (id INT PRIMARY KEY, pid INT, FOREIGN KEY (pid) REFERENCES fk_parent (id) "
        "ON DELETE SET NULL)",
    )
    converged(cluster, "SHOW TABLES LIKE 'fk_%'", n1, [("fk_child",), ("fk_parent",), ("fk_weak",)])
    run(
        n2,
        "INSERT INTO fk_parent VALUES (1, 'p1'), (2, 'p2'), (3, 'p3')",
        "INSERT INTO fk_child VALUES (10, 1), (11, 1), (20, 2), (30, 3)",
        "INSERT INTO fk_weak VALUES (100, 1), (200, 2)",
    )
    converged(cluster, "SELECT * FROM fk_child ORDER BY id", n2, [(10, 1), (11, 1), (20, 2), (30, 3)])
    run(n3, "DELETE FROM fk_parent WHERE id = 1")
    converged(cluster, "SELECT * FROM fk_parent ORDER BY id", n3, [(2, "p2"), (3, "p3")])
    converged(cluster, "SELECT * FROM fk_child ORDER BY id", n3, [(20, 2), (30, 3)])
    converged(cluster, "SELECT * FROM fk_weak ORDER BY id", n3, [(100, None), (200, 2)])
    run(n1, "UPDATE fk_parent SET id = 33 WHERE id = 3")  # ON UPDATE CASCADE
    converged(cluster, "SELECT * FROM fk_child ORDER BY id", n1, [(20, 2), (30, 33)])
    with pytest.raises(pymysql.err.IntegrityError) as ei:  # the constraint exists on another node
        run(n2, "INSERT INTO fk_child VALUES (99, 404)")
    assert ei.value.args[0] == 1452
    converged(cluster, "SELECT * FROM fk_child ORDER BY id", n2, [(20, 2), (30, 33)])


def test_triggers(cluster):
    n1, n2, n3 = cluster
    run(
        n1,
        "CREATE TABLE tg_t (id INT PRIMARY KEY, v VARCHAR(10), n INT)",
        "CREATE TABLE tg_audit (id INT PRIMARY KEY, note VARCHAR(30))",
        "CREATE TRIGGER tg_bump BEFORE INSERT ON tg_t FOR EACH ROW SET NEW.n = NEW.n + 100",
        "CREATE TRIGGER tg_log AFTER INSERT ON tg_t FOR EACH ROW "
        "INSERT INTO tg_audit VALUES (NEW.id, CONCAT('ins ', NEW.v))",
    )
    trg = converged(cluster, "SHOW TRIGGERS LIKE 'tg_%'", n1)
    assert {r[0] for r in trg} == {"tg_bump", "tg_log"}
    # fired on node 2; their effects are replicated once, not fired again where they are applied
    run(n2, "INSERT INTO tg_t VALUES (1, 'a', 1), (2, 'b', 2)")
    converged(cluster, "SELECT * FROM tg_t ORDER BY id", n2, [(1, "a", 101), (2, "b", 102)])
    converged(cluster, "SELECT * FROM tg_audit ORDER BY id", n2, [(1, "ins a"), (2, "ins b")])
    run(
        n3,
        "DROP TRIGGER tg_bump",
        "CREATE TRIGGER tg_upd AFTER UPDATE ON tg_t FOR EACH ROW "
        "UPDATE tg_audit SET note = CONCAT(note, ' upd') WHERE id = NEW.id",
    )
    trg = converged(cluster, "SHOW TRIGGERS LIKE 'tg_%'", n3)
    assert {r[0] for r in trg} == {"tg_log", "tg_upd"}
    run(n1, "UPDATE tg_t SET v = 'b2' WHERE id = 2")
    converged(cluster, "SELECT * FROM tg_audit ORDER BY id", n1, [(1, "ins a"), (2, "ins b upd")])
    converged(cluster, "SELECT * FROM tg_t ORDER BY id", n1, [(1, "a", 101), (2, "b2", 102)])
    run(n2, "DROP TRIGGER IF EXISTS tg_upd")
    trg = converged(cluster, "SHOW TRIGGERS LIKE 'tg_%'", n2)
    assert {r[0] for r in trg} == {"tg_log"}
    run(n3, "INSERT INTO tg_t VALUES (3, 'c', 3)")  # no bump any more, still logged
    converged(cluster, "SELECT * FROM tg_t ORDER BY id", n3, [(1, "a", 101), (2, "b2", 102), (3, "c", 3)])
    converged(
        cluster, "SELECT * FROM tg_audit ORDER BY id", n3, [(1, "ins a"), (2, "ins b upd"), (3, "ins c")]
    )


def test_views(cluster):
    n1, n2, n3 = cluster
    run(
        n1,
        "CREATE TABLE vw_base (id INT PRIMARY KEY, v VARCHAR(10), n INT)",
        "INSERT INTO vw_base VALUES (1, 'a', 1), (2, 'b', 5)",
    )
    converged(cluster, "SELECT * FROM vw_base ORDER BY id", n1, [(1, "a", 1), (2, "b", 5)])
    run(n2, "CREATE VIEW vw_big AS SELECT id, v FROM vw_base WHERE n > 2")
    converged(cluster, "SHOW FULL TABLES LIKE 'vw_%'", n2, [("vw_base", "BASE TABLE"), ("vw_big", "VIEW")])
    converged(cluster, "SELECT * FROM vw_big ORDER BY id", n2, [(2, "b")])
    run(n3, "INSERT INTO vw_base VALUES (3, 'c', 9)")
    converged(cluster, "SELECT * FROM vw_big ORDER BY id", n3, [(2, "b"), (3, "c")])
    run(n1, "DROP VIEW vw_big", "CREATE VIEW vw_big AS SELECT id, UPPER(v) AS v FROM vw_base WHERE n < 9")
    converged(cluster, "SELECT * FROM vw_big ORDER BY id", n1, [(1, "A"), (2, "B")])
    run(n3, "DROP VIEW vw_big")
    converged(cluster, "SHOW FULL TABLES LIKE 'vw_%'", n3, [("vw_base", "BASE TABLE")])


def test_every_table_identical_at_the_end(cluster):
    """After everything above, each table of the default database has one schema and one content."""
    n1, n2, n3 = cluster
    tables = [r[0] for r in converged(cluster, "SHOW FULL TABLES", n1) if r[1] == "BASE TABLE"]
    for t in tables:
        converged(cluster, f"SHOW CREATE TABLE `{t}`", n1)
        cols = run(n1, f"SHOW COLUMNS FROM `{t}`")
        order = ", ".join(f"`{c[0]}`" for c in cols)
        converged(cluster, f"SELECT * FROM `{t}` ORDER BY {order}", n1)
