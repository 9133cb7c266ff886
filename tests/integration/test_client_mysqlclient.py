"""mysqlclient (MySQLdb, the C libmysqlclient/libmariadb driver) against a real node process.

mysqlclient has no server-side prepared statements: every parameter is escaped by the C library
(``mysql_real_escape_string``) and spliced into a COM_QUERY, so this file is the text-protocol test of
quoting, backslashes, NULL, binary data and unicode for a C client.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

MySQLdb = pytest.importorskip("MySQLdb", reason="mysqlclient is not installed")
from MySQLdb.constants import CLIENT  # noqa: E402

from tests.integration.client_values import RAW_BYTES, SAFE_BYTES  # noqa: E402
from tests.integration.client_values import fresh_table as shared_fresh_table  # noqa: E402

DDL = (
    "CREATE TABLE {name} (id INT PRIMARY KEY, s VARCHAR(100), t TEXT, b BLOB, vb VARBINARY(64), n BIGINT, "
    "f DOUBLE, d DECIMAL(12,2), dd DATE, ts DATETIME)"
)
INSERT = (
    "INSERT INTO {name} (id, s, t, b, vb, n, f, d, dd, ts) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
ROWS = [
    (
        1,
        "it's",
        'say "hi"',
        SAFE_BYTES,
        b"\x00",
        2**53 - 1,
        1.5,
        Decimal("12345.67"),
        dt.date(2024, 2, 29),
        dt.datetime(2024, 1, 2, 3, 4, 5),
    ),
    (
        2,
        "back\\slash",
        "\\n",
        b"",
        b"'\\\"",
        2**63 - 1,
        -0.1,
        Decimal("-0.05"),
        dt.date(1970, 1, 1),
        dt.datetime(1999, 12, 31, 23, 59, 59),
    ),
    (3, "trail\\", "é中文🦫", None, None, 0, 1e300, Decimal("1.10"), None, None),
    (4, "", None, b"\x00\x00", b"", None, None, None, None, None),
    (
        5,
        "\\\\ 'both' \"kinds\" \\",
        "line1\nline2\ttab\r\x1a\x00end",
        b"\\0",
        b"%_",
        -(2**53 - 1),
        3.141592653589793,
        Decimal("0.00"),
        dt.date(9999, 12, 31),
        dt.datetime(2000, 2, 29, 0, 0, 1),
    ),
]


def connect(node, **kw):
    args = dict(
        host="127.0.0.1",
        port=node.mysql_port,
        user="root",
        password="",
        database="marmot",
        charset="utf8mb4",
        autocommit=True,
        connect_timeout=5,
    )
    args.update(kw)
    return MySQLdb.connect(**args)


@pytest.fixture
def db(node):
    c = connect(node)
    yield c
    c.close()


def fresh_table(cur, name: str, ddl: str = DDL) -> None:
    shared_fresh_table(cur, name, ddl)


def test_text_protocol_round_trip_with_client_escaping(db):
    cur = db.cursor()
    fresh_table(cur, "mc_vals")
    for row in ROWS:
        assert cur.execute(INSERT.format(name="mc_vals"), row) == 1
    cur.execute("SELECT id, s, t, b, vb, n, f, d, dd, ts FROM mc_vals ORDER BY id")
    got = cur.fetchall()
    assert got == tuple(ROWS)
    assert [type(v) for v in got[0]] == [
        int,
        str,
        str,
        bytes,
        bytes,
        int,
        float,
        Decimal,
        dt.date,
        dt.datetime,
    ]
    assert [str(r[7]) for r in got[:3]] == ["12345.67", "-0.05", "1.10"]  # DECIMAL keeps its scale
    # The same escaping in a WHERE clause finds each row again.
    for row in ROWS:
        cur.execute("SELECT id FROM mc_vals WHERE s = %s", (row[1],))
        assert cur.fetchall() == ((row[0],),)
    cur.execute("SELECT id FROM mc_vals WHERE t IS NULL AND b = %s", (b"\x00\x00",))
    assert cur.fetchall() == ((4,),)
    # The library's own escape function, spliced by hand.
    quoted = db.string_literal('é it\'s \\ "x"'.encode()).decode()
    cur.execute(f"SELECT {quoted} AS v")
    assert cur.fetchall() == (('é it\'s \\ "x"',),)
    cur.execute("SELECT 'é中文🦫', CHAR_LENGTH('é中文🦫'), NULL, ''")
    assert cur.fetchall() == (("é中文🦫", 4, None, ""),)


def test_text_protocol_binary_not_utf8(db):
    """The C library splices the raw bytes into a quoted string: the COM_QUERY itself is not UTF-8."""
    cur = db.cursor()
    fresh_table(cur, "mc_raw", "CREATE TABLE {name} (id INT PRIMARY KEY, b BLOB, vb VARBINARY(64))")
    cur.execute("INSERT INTO mc_raw VALUES (%s, %s, %s)", (1, RAW_BYTES, RAW_BYTES))
    cur.execute("SELECT b, vb FROM mc_raw")
    assert cur.fetchall() == ((RAW_BYTES, RAW_BYTES),)
    cur.execute("SELECT id, HEX(b) FROM mc_raw WHERE b = %s", (RAW_BYTES,))
    assert cur.fetchall() == ((1, RAW_BYTES.hex().upper()),)


def test_text_protocol_binary_prefix(node):
    c = connect(node, binary_prefix=True)
    try:
        cur = c.cursor()
        fresh_table(cur, "mc_prefix", "CREATE TABLE {name} (id INT PRIMARY KEY, b BLOB)")
        cur.execute("INSERT INTO mc_prefix VALUES (%s, %s)", (1, SAFE_BYTES))
        cur.execute("SELECT b FROM mc_prefix")
        assert cur.fetchall() == ((SAFE_BYTES,),)
    finally:
        c.close()


def test_text_protocol_min_bigint(node):
    c = connect(node)
    try:
        cur = c.cursor()
        fresh_table(cur, "mc_min", "CREATE TABLE {name} (id INT PRIMARY KEY, n BIGINT)")
        cur.execute("INSERT INTO mc_min VALUES (%s, %s)", (1, -(2**63)))
        cur.execute("SELECT n FROM mc_min")
        assert cur.fetchall() == ((-(2**63),),)
    finally:
        c.close()


def test_affected_rows_and_insert_id(db, node):
    cur = db.cursor()
    fresh_table(
        cur, "mc_ai", "CREATE TABLE {name} (id BIGINT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(20), n INT)"
    )
    assert cur.execute("INSERT INTO mc_ai (name, n) VALUES (%s, %s)", ("a", 1)) == 1
    first = cur.lastrowid
    assert first > 0 and first == db.insert_id()
    assert cur.execute("INSERT INTO mc_ai (name, n) VALUES (%s, %s), (%s, %s)", ("b", 2, "c", 3)) == 2
    second = cur.lastrowid  # a multi-row INSERT reports the id of its first row
    assert second > first
    cur.execute("SELECT id FROM mc_ai WHERE name = 'b'")
    assert cur.fetchone()[0] == second
    cur.execute("SELECT LAST_INSERT_ID()")
    assert cur.fetchone()[0] == second
    cur.executemany("INSERT INTO mc_ai (name, n) VALUES (%s, %s)", [("d", 4), ("e", 5), ("f", 6)])
    assert cur.rowcount == 3
    assert cur.execute("INSERT INTO mc_ai (id, name, n) VALUES (7, 'explicit', 7)") == 1
    assert cur.execute("UPDATE mc_ai SET n = n * 10 WHERE n >= 5") == 3
    assert cur.execute("UPDATE mc_ai SET n = 10 WHERE name = 'a'") == 1
    assert cur.execute("UPDATE mc_ai SET n = 10 WHERE name = 'a'") == 0  # matched, not changed
    assert cur.execute("DELETE FROM mc_ai WHERE n >= 50") == 3
    cur.execute("SELECT name FROM mc_ai ORDER BY id")
    assert [r[0] for r in cur.fetchall()] == ["a", "b", "c", "d"]
    # With CLIENT_FOUND_ROWS (as SQLAlchemy connects) an UPDATE reports matched rows.
    found = connect(node, client_flag=CLIENT.FOUND_ROWS)
    try:
        assert found.cursor().execute("UPDATE mc_ai SET n = 10 WHERE name = 'a'") == 1
    finally:
        found.close()


def test_transactions(db, node):
    cur = db.cursor()
    fresh_table(cur, "mc_tx", "CREATE TABLE {name} (id INT PRIMARY KEY, v VARCHAR(10))")
    other = connect(node)
    try:
        ocur = other.cursor()
        db.autocommit(False)
        cur.execute("INSERT INTO mc_tx VALUES (1, 'rolled')")
        ocur.execute("SELECT COUNT(*) FROM mc_tx")
        assert ocur.fetchone() == (0,)  # not visible before commit
        db.rollback()
        cur.execute("INSERT INTO mc_tx VALUES (2, 'kept')")
        cur.execute("INSERT INTO mc_tx VALUES (3, 'kept')")
        db.commit()
        ocur.execute("SELECT id FROM mc_tx ORDER BY id")
        assert ocur.fetchall() == ((2,), (3,))
        db.autocommit(True)
        db.begin()
        cur.execute("DELETE FROM mc_tx")
        db.rollback()
        cur.execute("SELECT COUNT(*) FROM mc_tx")
        assert cur.fetchone() == (2,)
        cur.execute("SELECT @@autocommit")
        assert cur.fetchone() == (1,)
    finally:
        other.close()


def test_errors_leave_connection_usable(db):
    cur = db.cursor()
    fresh_table(cur, "mc_err", "CREATE TABLE {name} (id INT PRIMARY KEY, v VARCHAR(10) UNIQUE)")
    cur.execute("INSERT INTO mc_err VALUES (1, 'a')")
    with pytest.raises(MySQLdb.IntegrityError) as ei:
        cur.execute("INSERT INTO mc_err VALUES (%s, %s)", (1, "b"))
    assert ei.value.args[0] == 1062
    with pytest.raises(MySQLdb.IntegrityError) as ei:
        cur.execute("INSERT INTO mc_err VALUES (2, 'a')")
    assert ei.value.args[0] == 1062
    with pytest.raises(MySQLdb.ProgrammingError) as ei:
        cur.execute("SELEC 1")
    assert ei.value.args[0] == 1064
    with pytest.raises(MySQLdb.ProgrammingError) as ei:
        cur.execute("SELECT * FROM mc_no_such_table")
    assert ei.value.args[0] == 1146
    cur.execute("SELECT 1")
    assert cur.fetchall() == ((1,),)
    # Inside a transaction a failed statement undoes only itself.
    db.begin()
    cur.execute("INSERT INTO mc_err VALUES (2, 'b')")
    with pytest.raises(MySQLdb.IntegrityError):
        cur.execute("INSERT INTO mc_err VALUES (3, 'b')")
    db.commit()
    cur.execute("SELECT id, v FROM mc_err ORDER BY id")
    assert cur.fetchall() == ((1, "a"), (2, "b"))


def test_multi_statements_and_results(node):
    c = connect(node, client_flag=CLIENT.MULTI_STATEMENTS)
    try:
        cur = c.cursor()
        fresh_table(cur, "mc_multi", "CREATE TABLE {name} (id INT PRIMARY KEY, v VARCHAR(10))")
        cur.execute("INSERT INTO mc_multi VALUES (1, 'a'), (2, 'b'), (3, 'c')")
        cur.execute(
            "SELECT 1; SELECT 'two', 2; UPDATE mc_multi SET v = 'z' WHERE id < 3; "
            "SELECT id FROM mc_multi WHERE v = 'z' ORDER BY id"
        )
        sets = [(cur.fetchall(), cur.rowcount)]
        while cur.nextset():
            sets.append((cur.fetchall(), cur.rowcount))
        assert sets == [(((1,),), 1), ((("two", 2),), 1), ((), 2), (((1,), (2,)), 2)]
        # Execution stops at the first failing statement; its error surfaces on nextset().
        cur.execute("SELECT 1; SELEC 2; SELECT 3")
        assert cur.fetchall() == ((1,),)
        with pytest.raises(MySQLdb.ProgrammingError) as ei:
            cur.nextset()
        assert ei.value.args[0] == 1064
        cur.execute("SELECT 4")
        assert cur.fetchall() == ((4,),)
    finally:
        c.close()
    # Without the capability, a multi-statement query is refused (mysqlclient enables it by default).
    single = connect(node, multi_statements=False)
    try:
        with pytest.raises(MySQLdb.ProgrammingError) as ei:
            single.cursor().execute("SELECT 1; SELECT 2")
        assert ei.value.args[0] == 1064
        cur = single.cursor()
        cur.execute("SELECT 5")
        assert cur.fetchall() == ((5,),)
    finally:
        single.close()
