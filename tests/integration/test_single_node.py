"""Single-node behaviour through a real driver (PyMySQL) against a real node process."""

from __future__ import annotations

import socket
import struct

import pymysql
import pytest

from marmot.ids import MAX_SAFE_INTEGER, decode_compact_id
from tests.support import connect


def error_code(excinfo) -> int:
    return excinfo.value.args[0]


def test_select_literals_and_column_names(conn):
    cur = conn.cursor()
    cur.execute("SELECT 1, 1+1, 'abc', NULL, 2.5")
    assert cur.fetchall() == ((1, 2, "abc", None, 2.5),)
    assert [d[0] for d in cur.description] == ["1", "1+1", "abc", "NULL", "2.5"]
    cur.execute("SELECT count(*) AS n")
    assert cur.fetchone() == (1,)


def test_crud_affected_rows_and_last_insert_id(conn):
    cur = conn.cursor()
    cur.execute("DROP TABLE IF EXISTS people")
    cur.execute(
        "CREATE TABLE people (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(50) NOT NULL, age INT) "
        "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
    )
    assert cur.execute("INSERT INTO people (name, age) VALUES ('ann', 30), ('bob', 40)") == 2
    first = cur.lastrowid
    assert first > 0 and first <= MAX_SAFE_INTEGER
    assert decode_compact_id(first).node_bits == 1
    cur.execute("SELECT id, name FROM people ORDER BY id")
    rows = cur.fetchall()
    assert [r[1] for r in rows] == ["ann", "bob"]
    assert rows[0][0] == first and rows[1][0] > first
    # MySQL counts changed rows, not matched rows, unless CLIENT_FOUND_ROWS is set
    assert cur.execute("UPDATE people SET age = 30 WHERE name = 'ann'") == 0
    assert cur.execute("UPDATE people SET age = age + 1") == 2
    assert cur.execute("DELETE FROM people WHERE name = 'bob'") == 1
    cur.execute("SELECT LAST_INSERT_ID()")
    assert cur.fetchone()[0] == first


def test_auto_increment_rules(conn):
    cur = conn.cursor()
    cur.execute("DROP TABLE IF EXISTS ai")
    cur.execute("CREATE TABLE ai (id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT, v TEXT, PRIMARY KEY (id))")
    cur.execute("INSERT INTO ai (id, v) VALUES (0, 'zero')")
    zero_id = cur.lastrowid
    cur.execute("INSERT INTO ai (id, v) VALUES (NULL, 'null')")
    null_id = cur.lastrowid
    cur.execute("INSERT INTO ai (v) VALUES ('omitted')")
    omitted_id = cur.lastrowid
    cur.execute("INSERT INTO ai VALUES (0, 'positional')")
    positional_id = cur.lastrowid
    cur.execute("INSERT INTO ai (id, v) VALUES (42, 'explicit')")
    cur.execute("SELECT id, v FROM ai ORDER BY v")
    got = dict((v, i) for i, v in cur.fetchall())
    assert got["explicit"] == 42
    ids = [zero_id, null_id, omitted_id, positional_id]
    assert ids == sorted(ids) and len(set(ids)) == 4 and all(i > 2**40 for i in ids)
    assert [got["zero"], got["null"], got["omitted"], got["positional"]] == ids
    cur.execute("SELECT LAST_INSERT_ID()")
    assert cur.fetchone()[0] == positional_id  # explicit ids do not change LAST_INSERT_ID()
    cur.execute("SHOW CREATE TABLE ai")
    ddl = cur.fetchone()[1]
    assert "AUTO_INCREMENT" in ddl and "bigint" in ddl


def test_multi_statement_results(node):
    c = connect(node, client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)
    cur = c.cursor()
    cur.execute("SELECT 1; SELECT 2, 3; DO 1")
    assert cur.fetchall() == ((1,),)
    assert cur.nextset()
    assert cur.fetchall() == ((2, 3),)
    assert cur.nextset()
    assert cur.nextset() is None
    c.close()


def test_databases(node, conn):
    cur = conn.cursor()
    cur.execute("DROP DATABASE IF EXISTS shop")
    cur.execute("CREATE DATABASE shop")
    with pytest.raises(pymysql.err.MySQLError) as ei:
        cur.execute("CREATE DATABASE shop")
    assert error_code(ei) == 1007
    cur.execute("CREATE DATABASE IF NOT EXISTS shop")
    cur.execute("SHOW DATABASES")
    names = [r[0] for r in cur.fetchall()]
    assert "shop" in names and "marmot" in names and not any(n.startswith("__marmot") for n in names)
    cur.execute("CREATE TABLE shop.items (id INT PRIMARY KEY, name TEXT)")
    cur.execute("INSERT INTO shop.items VALUES (1, 'pen')")
    cur.execute("SELECT name FROM shop.items")
    assert cur.fetchall() == (("pen",),)
    cur.execute("USE shop")
    cur.execute("SELECT DATABASE()")
    assert cur.fetchone() == ("shop",)
    cur.execute("SHOW TABLES")
    assert cur.fetchall() == (("items",),)
    c2 = connect(node, "shop")
    c2.cursor().execute("SELECT COUNT(*) FROM items")
    c2.select_db("marmot")  # COM_INIT_DB
    with pytest.raises(pymysql.err.MySQLError) as ei:
        c2.select_db("nope")
    assert error_code(ei) == 1049
    c2.close()
    with pytest.raises(pymysql.err.MySQLError) as ei:
        connect(node, "missing_db")
    assert error_code(ei) == 1049
    cur.execute("USE marmot")
    cur.execute("DROP DATABASE shop")
    cur.execute("SHOW DATABASES LIKE 'shop'")
    assert cur.fetchall() == ()


def test_transactions_isolation_and_rollback(node, conn):
    cur = conn.cursor()
    cur.execute("DROP TABLE IF EXISTS acct")
    cur.execute("CREATE TABLE acct (id INT PRIMARY KEY, bal INT)")
    cur.execute("INSERT INTO acct VALUES (1, 100)")
    other = connect(node, "marmot")
    ocur = other.cursor()
    cur.execute("BEGIN")
    cur.execute("UPDATE acct SET bal = 50 WHERE id = 1")
    ocur.execute("SELECT bal FROM acct WHERE id = 1")
    assert ocur.fetchone() == (100,)  # uncommitted write invisible
    cur.execute("SELECT bal FROM acct WHERE id = 1")
    assert cur.fetchone() == (50,)  # own write visible
    cur.execute("ROLLBACK")
    ocur.execute("SELECT bal FROM acct WHERE id = 1")
    assert ocur.fetchone() == (100,)
    cur.execute("START TRANSACTION")
    cur.execute("INSERT INTO acct VALUES (2, 1)")
    cur.execute("SAVEPOINT s1")
    cur.execute("INSERT INTO acct VALUES (3, 1)")
    cur.execute("ROLLBACK TO SAVEPOINT s1")
    cur.execute("RELEASE SAVEPOINT s1")
    cur.execute("COMMIT")
    ocur.execute("SELECT id FROM acct ORDER BY id")
    assert ocur.fetchall() == ((1,), (2,))
    other.close()


def test_autocommit_off(node):
    a = connect(node, "marmot", autocommit=False)
    b = connect(node, "marmot")
    a.cursor().execute("CREATE TABLE IF NOT EXISTS ac (id INT PRIMARY KEY)")
    a.cursor().execute("INSERT INTO ac VALUES (7)")
    bc = b.cursor()
    bc.execute("SELECT COUNT(*) FROM ac WHERE id = 7")
    assert bc.fetchone() == (0,)
    a.commit()
    bc.execute("SELECT COUNT(*) FROM ac WHERE id = 7")
    assert bc.fetchone() == (1,)
    a.close()
    b.close()


def test_killed_client_leaves_nothing(node, conn):
    cur = conn.cursor()
    cur.execute("CREATE TABLE IF NOT EXISTS k (id INT PRIMARY KEY)")
    victim = connect(node, "marmot")
    victim.cursor().execute("BEGIN")
    victim.cursor().execute("INSERT INTO k VALUES (99)")
    victim._sock.shutdown(socket.SHUT_RDWR)  # vanish without COM_QUIT
    victim._sock.close()
    # the write lock must be released: another writer gets through
    cur.execute("INSERT INTO k VALUES (100)")
    cur.execute("SELECT id FROM k ORDER BY id")
    assert cur.fetchall() == ((100,),)


def test_syntax_error_keeps_connection(conn):
    cur = conn.cursor()
    with pytest.raises(pymysql.err.ProgrammingError) as ei:
        cur.execute("SELEC 1")
    assert error_code(ei) == 1064
    assert "near" in ei.value.args[1]
    with pytest.raises(pymysql.err.ProgrammingError) as ei:
        cur.execute("SELECT * FROM no_such_table")
    assert error_code(ei) == 1146
    cur.execute("SELECT 1")
    assert cur.fetchone() == (1,)


def test_internal_tables_hidden(conn):
    cur = conn.cursor()
    for sql in (
        "SELECT * FROM __marmot_applied_txn",
        "INSERT INTO __marmot_x VALUES (1)",
        "CREATE TABLE __marmot_evil (a INT)",
        "DROP TABLE __marmot_row_version",
    ):
        with pytest.raises(pymysql.err.MySQLError) as ei:
            cur.execute(sql)
        assert error_code(ei) == 1146
    cur.execute("SHOW TABLES")
    assert not any(r[0].startswith("__marmot") for r in cur.fetchall())


def test_wrong_password(node):
    with pytest.raises(pymysql.err.OperationalError) as ei:
        connect(node, None, password="wrong")
    assert error_code(ei) == 1045
    with pytest.raises(pymysql.err.OperationalError) as ei:
        connect(node, None, user="nobody")
    assert error_code(ei) == 1045


def _raw_login(node) -> socket.socket:
    """Log in as root (empty password) over a raw socket and return it ready for commands."""
    s = socket.create_connection(("127.0.0.1", node.mysql_port), timeout=5)
    hdr = s.recv(4)
    length = int.from_bytes(hdr[:3], "little")
    while length:
        length -= len(s.recv(length))
    caps = 0x000FA685 & ~0x800  # protocol 41, secure conn, plugin auth ... no SSL
    body = struct.pack("<IIB23s", caps, 1 << 24, 45, b"\0" * 23) + b"root\0" + b"\0"
    body += b"mysql_native_password\0"
    s.sendall(len(body).to_bytes(3, "little") + b"\x01" + body)
    reply = s.recv(1024)
    assert reply[4] == 0x00, reply
    return s


def _read_until_closed(s: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (fails the test on a timeout)."""
    s.settimeout(5)
    data = b""
    while True:
        try:
            chunk = s.recv(4096)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def test_malformed_packet_closes_only_that_connection(node, conn):
    s = _raw_login(node)
    s.sendall(b"\x01\x00\x00\x00\x17")  # COM_STMT_EXECUTE with no body
    reply = _read_until_closed(s)  # MySQL's "Malformed communication packet", then the close
    assert reply[4] == 0xFF and int.from_bytes(reply[5:7], "little") == 1835, reply
    s.close()
    s2 = _raw_login(node)
    s2.sendall(b"\x01\x00\x00\x00\xee")  # unknown command
    reply = s2.recv(1024)
    assert reply[4] == 0xFF and int.from_bytes(reply[5:7], "little") == 1047
    s2.sendall(b"\x01\x00\x00\x00\x0e")  # the connection is still usable: COM_PING
    assert s2.recv(1024)[4] == 0x00
    s2.close()
    cur = conn.cursor()
    cur.execute("SELECT 1")
    assert cur.fetchone() == (1,)


def test_oversized_packet_rejected(node, conn):
    s = _raw_login(node)
    # A COM_QUERY of 5 x 16 MiB fragments: more than max_allowed_packet (64 MiB). The server refuses as
    # soon as the announced fragments pass the limit, before the rest arrives.
    chunk = b"\x00" * 0xFFFFFF
    try:
        s.sendall(b"\xff\xff\xff\x00\x03" + chunk[1:])
        for seq in range(1, 5):
            s.sendall(b"\xff\xff\xff" + bytes([seq]) + chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass
    data = _read_until_closed(s)
    s.close()
    assert data[4] == 0xFF and int.from_bytes(data[5:7], "little") == 1153
    cur = conn.cursor()
    cur.execute("SELECT 2")
    assert cur.fetchone() == (2,)


def test_connection_pragmas_applied(tmp_path):
    from marmot.storage.databases import DatabaseManager

    dm = DatabaseManager(tmp_path)
    conn = dm.open("marmot")
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert conn.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL
    assert conn.execute("PRAGMA foreign_keys").fetchone() == (1,)
    conn.close()
    dm.close()


def test_extended_auto_ids_and_restart_keeps_ids_increasing(tmp_path):
    from marmot.hlc import from_txn_id
    from marmot.testing import make_node

    n = make_node(tmp_path, mysql_extra='auto_id_mode = "extended"').start()
    try:
        c = connect(n)
        cur = c.cursor()
        cur.execute("CREATE TABLE e (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
        cur.execute("INSERT INTO e (v) VALUES (1)")
        first = cur.lastrowid
        assert first > MAX_SAFE_INTEGER and from_txn_id(first).node_bits == 1
        c.close()
    finally:
        n.stop()
    n.start()  # the id lease: ids after a restart stay above those before it
    try:
        c = connect(n)
        cur = c.cursor()
        cur.execute("INSERT INTO e (v) VALUES (2)")
        assert cur.lastrowid > first
        c.close()
    finally:
        n.stop()


def test_prepare_rejects_bad_syntax_at_prepare(node):
    mysql_connector = pytest.importorskip("mysql.connector")
    c = mysql_connector.connect(
        host="127.0.0.1", port=node.mysql_port, user="root", password="", database="marmot", ssl_disabled=True
    )
    cur = c.cursor(prepared=True)
    with pytest.raises(mysql_connector.Error) as ei:
        cur.execute("SELEC ?", (1,))
    assert ei.value.errno == 1064
    with pytest.raises(mysql_connector.Error) as ei:
        cur.execute("INSERT INTO nowhere VALUES (?", (1,))
    assert ei.value.errno == 1064
    cur.execute("SELECT ? + 1", (41,))
    assert cur.fetchone()[0] == 42
    c.close()


def test_default_database_when_none_is_named(node):
    """As upstream, and as the README's quick start does: a client naming no database is in `marmot`."""
    c = connect(node, None)  # no database
    cur = c.cursor()
    cur.execute("SELECT DATABASE()")
    assert cur.fetchone() == ("marmot",)
    cur.execute("CREATE TABLE IF NOT EXISTS quick (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100))")
    cur.execute("INSERT INTO quick (name) VALUES ('alice')")
    cur.execute("SELECT LAST_INSERT_ID() > 0, name FROM quick")
    assert cur.fetchone() == (1, "alice")
    c.close()
