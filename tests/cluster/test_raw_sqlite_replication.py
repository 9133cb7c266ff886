"""``SET marmot_transpilation = OFF`` on a replicated database (issue #12, point 5 "No silent divergence"):
SQLite SQL written by a client reaches every node through the normal capture + 2PC path — rows, row
versions and digests alike — DDL replicates as DDL, and what cannot be captured is refused with an error
before anything is stored on any node. Three real node processes, PyMySQL clients."""

from __future__ import annotations

import time

import apsw
import pymysql
import pytest

from marmot.testing import admin_json
from tests.support import cluster_fixture, connect, wait_until_equal

cluster = cluster_fixture(3)


def raw(node, db: str = "marmot"):
    """A connection to ``node`` whose session speaks SQLite (transpilation OFF)."""
    c = connect(node, db)
    c.cursor().execute("SET marmot_transpilation = OFF")
    return c


def on_every_node(nodes, sql: str) -> list[tuple]:
    """``sql`` (SQLite dialect) on each node, one fresh raw session per node."""
    out = []
    for node in nodes:
        c = raw(node)
        try:
            cur = c.cursor()
            cur.execute(sql)
            out.append(tuple(cur.fetchall()))
        finally:
            c.close()
    return out


def test_raw_writes_replicate(cluster):
    n1, n2, n3 = cluster
    c = raw(n2)
    cur = c.cursor()
    # SQLite DDL: replicated as DDL is
    cur.execute(
        "CREATE TABLE raw_items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, qty INTEGER "
        "DEFAULT 0 CHECK (qty >= 0)) STRICT"
    )
    # SQLite-only syntax: rowids picked by SQLite, upsert with excluded., || concatenation, RETURNING
    cur.execute("INSERT INTO raw_items (name, qty) VALUES ('apple', 3), ('pear', 5)")
    assert cur.rowcount == 2
    assert cur.lastrowid == 2
    cur.execute(
        "INSERT INTO raw_items (name, qty) VALUES ('apple', 4) "
        "ON CONFLICT(name) DO UPDATE SET qty = qty + excluded.qty"
    )
    cur.execute("UPDATE raw_items SET name = name || '-ripe' WHERE id = 2")
    assert cur.rowcount == 1
    cur.execute("INSERT INTO raw_items (name) VALUES (%s) RETURNING id, qty", ("plum",))
    assert cur.fetchall() == ((3, 0),)
    cur.execute("INSERT OR REPLACE INTO raw_items (id, name, qty) VALUES (3, 'plum', 9)")
    cur.execute("DELETE FROM raw_items WHERE qty = 9 RETURNING name")
    assert cur.fetchall() == (("plum",),)
    c.close()
    want = ((1, "apple", 7), (2, "pear-ripe", 5))
    wait_until_equal(cluster, "SELECT id, name, qty FROM raw_items ORDER BY id", expected=want)

    # The rows went through replication: every node holds their versions, so the digests agree and
    # count them
    deadline = time.monotonic() + 15
    while True:
        docs = [admin_json(n, "/admin/databases/marmot/digest")["tables"].get("raw_items") for n in cluster]
        if all(d == docs[0] for d in docs) and docs[0] is not None and docs[0]["rows"] == 2:
            break
        assert time.monotonic() < deadline, docs
        time.sleep(0.1)


def test_raw_transaction_replicates_at_commit(cluster):
    n1, n2, n3 = cluster
    c = raw(n1)
    cur = c.cursor()
    cur.execute("CREATE TABLE raw_ledger (k TEXT PRIMARY KEY, v INTEGER) WITHOUT ROWID")
    wait_until_equal(cluster, "SELECT COUNT(*) FROM raw_ledger", expected=((0,),))
    cur.execute("BEGIN")
    cur.execute("INSERT INTO raw_ledger VALUES ('a', 1), ('b', 2)")
    cur.execute("UPDATE raw_ledger SET v = v * 10 WHERE k = 'b'")
    cur.execute("SELECT k, v FROM raw_ledger ORDER BY k")  # the transaction sees its own writes
    assert cur.fetchall() == (("a", 1), ("b", 20))
    assert on_every_node([n3], "SELECT COUNT(*) FROM raw_ledger") == [((0,),)]  # nothing before COMMIT
    cur.execute("COMMIT")
    cur.execute("BEGIN")
    cur.execute("DELETE FROM raw_ledger WHERE k = 'a'")
    cur.execute("ROLLBACK")
    c.close()
    wait_until_equal(cluster, "SELECT k, v FROM raw_ledger ORDER BY k", expected=(("a", 1), ("b", 20)))


def test_raw_ddl_replicates(cluster):
    n1, n2, n3 = cluster
    c = raw(n3)
    cur = c.cursor()
    cur.execute("CREATE TABLE raw_notes (id INTEGER PRIMARY KEY, body TEXT);")
    cur.execute("ALTER TABLE raw_notes ADD COLUMN tag TEXT DEFAULT 'none'")
    cur.execute("CREATE INDEX raw_notes_tag ON raw_notes (tag)")
    cur.execute("INSERT INTO raw_notes (body) VALUES ('hello')")
    c.close()
    wait_until_equal(cluster, "SELECT id, body, tag FROM raw_notes", expected=((1, "hello", "none"),))
    indexes = on_every_node(cluster, "SELECT name FROM pragma_index_list('raw_notes') WHERE origin = 'c'")
    assert indexes == [(("raw_notes_tag",),)] * 3


@pytest.mark.parametrize(
    ("sql", "code", "check", "before"),
    [
        # an internal table: invisible and unwritable, as with transpilation ON
        (
            "INSERT INTO __marmot_table_digest (tbl, digest, rows) VALUES ('forged', 1, 1)",
            1146,
            "SELECT COUNT(*) FROM __marmot_table_digest WHERE tbl = 'forged'",
            ((0,),),
        ),
        # a virtual table: its module writes storage tables that cannot be captured row by row
        ("INSERT INTO raw_fts (body) VALUES ('lost')", 1105, "SELECT COUNT(*) FROM raw_fts", ((0,),)),
        (
            "INSERT INTO raw_fts_content (id, c0) VALUES (5, 'lost')",
            1105,
            "SELECT COUNT(*) FROM raw_fts",
            ((0,),),
        ),
        # the file header is not replicated
        ("PRAGMA user_version = 42", 1105, "PRAGMA user_version", ((0,),)),
        # raw transaction control would end the replicated transaction behind its back
        ("END", 1105, "SELECT COUNT(*) FROM raw_refused", ((0,),)),
        # a setting that lets this node store rows the others refuse
        ("PRAGMA ignore_check_constraints = ON", 1105, "PRAGMA ignore_check_constraints", ((0,),)),
        # VACUUM may renumber rowids, the keys of tables without an INTEGER PRIMARY KEY
        ("VACUUM", 1105, "SELECT COUNT(*) FROM raw_refused", ((0,),)),
    ],
)
def test_refused_before_anything_is_stored(cluster, sql, code, check, before):
    n1, n2, n3 = cluster
    setup = raw(n1)
    setup.cursor().execute("CREATE TABLE IF NOT EXISTS raw_refused (id INTEGER PRIMARY KEY)")
    setup.cursor().execute("CREATE VIRTUAL TABLE IF NOT EXISTS raw_fts USING fts5(body)")
    setup.close()
    wait_until_equal(cluster, "SELECT COUNT(*) FROM raw_refused", expected=((0,),))
    c = raw(n2)
    with pytest.raises(pymysql.err.MySQLError) as ei:
        c.cursor().execute(sql)
    assert ei.value.args[0] == code, ei.value.args
    assert "marmot_transpilation = OFF" in ei.value.args[1] or code == 1146, ei.value.args
    c.cursor().execute("SELECT 1")  # the connection stays usable
    c.close()
    time.sleep(0.5)  # a replicated write would have reached the other nodes by now
    assert on_every_node(cluster, check) == [before] * 3


def test_attached_database_writes_refused(cluster, tmp_path):
    side = tmp_path / "side.db"
    f = apsw.Connection(str(side))
    f.execute("CREATE TABLE t (a)")
    f.close()
    n1, n2, n3 = cluster
    c = raw(n1)
    cur = c.cursor()
    cur.execute(f"ATTACH '{side}' AS side")
    for sql in ("CREATE TABLE side.u (a)", "INSERT INTO side.t VALUES (1)"):
        with pytest.raises(pymysql.err.MySQLError) as ei:
            cur.execute(sql)
        assert ei.value.args[0] == 1105 and "attached database 'side'" in ei.value.args[1], ei.value.args
    cur.execute("SELECT COUNT(*) FROM side.t")  # reading it is fine
    assert cur.fetchall() == ((0,),)
    c.close()
    f = apsw.Connection(str(side))
    assert f.execute("SELECT name FROM sqlite_schema").fetchall() == [("t",)]
    f.close()


def test_temporary_tables_stay_local_and_work(cluster):
    n1, n2, n3 = cluster
    c = raw(n1)
    cur = c.cursor()
    cur.execute("CREATE TEMP TABLE scratch (a INTEGER)")
    cur.execute("INSERT INTO scratch VALUES (1), (2)")
    assert cur.rowcount == 2
    cur.execute("SELECT SUM(a) FROM scratch")
    assert cur.fetchall() == ((3,),)
    c.close()


def test_server_side_prepared_raw_write_replicates(cluster):
    """COM_STMT_PREPARE / COM_STMT_EXECUTE (mysql-connector's binary protocol): the parameters are bound
    to the SQLite statement, and the write replicates."""
    connector = pytest.importorskip("mysql.connector", reason="mysql-connector-python is not installed")
    n1, n2, n3 = cluster
    cnx = connector.connect(
        host="127.0.0.1",
        port=n3.mysql_port,
        user="root",
        password="",
        database="marmot",
        use_pure=True,
        autocommit=True,
        connection_timeout=5,
    )
    try:
        cur = cnx.cursor()
        cur.execute("SET marmot_transpilation = OFF")
        cur.execute("CREATE TABLE raw_prepared (k TEXT PRIMARY KEY, n INTEGER, b BLOB)")
        cur.close()
        cur = cnx.cursor(prepared=True)
        cur.execute("INSERT INTO raw_prepared (k, n, b) VALUES (?, ?, ?)", ("x'y", 2**62, b"\x00\xff"))
        cur.execute("UPDATE raw_prepared SET n = n + ? WHERE k = ?", (1, "x'y"))
        assert cur.rowcount == 1
        cur.close()
    finally:
        cnx.close()
    wait_until_equal(cluster, "SELECT k, n, HEX(b) FROM raw_prepared", expected=(("x'y", 2**62 + 1, "00FF"),))
