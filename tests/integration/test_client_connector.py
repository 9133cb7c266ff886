"""mysql-connector-python (Oracle's pure-Python driver) against a real node process.

Covers both of its paths: the text protocol with the driver's own escaping, and server-side prepared
statements (``cursor(prepared=True)``: COM_STMT_PREPARE / COM_STMT_EXECUTE, binary rows both ways).
The C extension is not used (``use_pure=True``), so the run does not depend on how the wheel was built.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

connector = pytest.importorskip("mysql.connector", reason="mysql-connector-python is not installed")
from mysql.connector import errors  # noqa: E402

from tests.integration.client_values import RAW_BYTES, SAFE_BYTES  # noqa: E402
from tests.integration.client_values import fresh_table as shared_fresh_table  # noqa: E402

DDL = (
    "CREATE TABLE {name} (id INT PRIMARY KEY, s VARCHAR(100), t TEXT, b BLOB, vb VARBINARY(64), n BIGINT, "
    "f DOUBLE, d DECIMAL(12,2), dd DATE, ts DATETIME(6))"
)
COLUMNS = "id, s, t, b, vb, n, f, d, dd, ts"
TEXT_ROWS = [
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
        dt.datetime(1999, 12, 31, 23, 59, 59, 999999),
    ),
    (3, "trail\\", "é中文🦫", None, None, 0, 1e300, Decimal("1.10"), None, None),
    (4, "", None, b"\x00\x00", b"", None, None, None, None, None),
]
# The binary protocol carries every value natively, so these include what the text path cannot yet.
PREPARED_ROWS = [
    (
        11,
        'it\'s "q" back\\slash \\n trail\\',
        "é中文🦫",
        RAW_BYTES,
        RAW_BYTES,
        -(2**63),
        -0.1,
        Decimal("-0.05"),
        dt.date(2024, 2, 29),
        dt.datetime(2024, 1, 2, 3, 4, 5, 123456),
    ),
    (
        12,
        "",
        "",
        SAFE_BYTES,
        b"",
        2**63 - 1,
        1e300,
        Decimal("12345.67"),
        dt.date(1, 1, 1),
        dt.datetime(9999, 12, 31, 23, 59, 59),
    ),
    (13, None, None, None, None, None, None, None, None, None),
    (
        14,
        "\\",
        "'",
        b"\xff",
        b"\x00",
        2**53 - 1,
        3.141592653589793,
        Decimal("1.10"),
        dt.date(2000, 2, 29),
        dt.datetime(2000, 2, 29, 12, 0, 0),
    ),
]


def connect(node, **kw):
    args = dict(
        host="127.0.0.1",
        port=node.mysql_port,
        user="root",
        password="",
        database="marmot",
        use_pure=True,
        autocommit=True,
        connection_timeout=5,
        charset="utf8mb4",
    )
    args.update(kw)
    return connector.connect(**args)


@pytest.fixture
def cnx(node):
    c = connect(node)
    yield c
    c.close()


def fresh_table(cur, name: str, ddl: str = DDL) -> None:
    shared_fresh_table(cur, name, ddl)


def test_text_protocol_round_trip(cnx):
    cur = cnx.cursor()
    fresh_table(cur, "cn_text")
    for row in TEXT_ROWS:
        cur.execute(f"INSERT INTO cn_text ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", row)
        assert cur.rowcount == 1
    cur.execute(f"SELECT {COLUMNS} FROM cn_text ORDER BY id")
    got = cur.fetchall()
    assert got == TEXT_ROWS
    assert [str(r[7]) for r in got[:3]] == ["12345.67", "-0.05", "1.10"]
    for row in TEXT_ROWS:  # named parameters go through the same escaping
        cur.execute("SELECT id FROM cn_text WHERE s = %(s)s", {"s": row[1]})
        assert cur.fetchall() == [(row[0],)]


def test_text_protocol_binary_not_utf8(node):
    c = connect(node)
    try:
        cur = c.cursor()
        fresh_table(cur, "cn_raw", "CREATE TABLE {name} (id INT PRIMARY KEY, b BLOB)")
        cur.execute("INSERT INTO cn_raw VALUES (%s, %s)", (1, RAW_BYTES))
        cur.execute("SELECT b FROM cn_raw")
        assert cur.fetchall() == [(RAW_BYTES,)]
    finally:
        c.close()


def test_text_protocol_min_bigint(node):
    c = connect(node)
    try:
        cur = c.cursor()
        fresh_table(cur, "cn_min", "CREATE TABLE {name} (id INT PRIMARY KEY, n BIGINT)")
        cur.execute("INSERT INTO cn_min VALUES (%s, %s)", (1, -(2**63)))
        cur.execute("SELECT n FROM cn_min")
        assert cur.fetchall() == [(-(2**63),)]
    finally:
        c.close()


def test_decimal_full_precision(cnx):
    cur = cnx.cursor(prepared=True)
    fresh_table(cnx.cursor(), "cn_dec", "CREATE TABLE {name} (id INT PRIMARY KEY, d DECIMAL(30,10))")
    value = Decimal("12345678901234567890.1234567890")
    cur.execute("INSERT INTO cn_dec VALUES (?, ?)", (1, value))
    cur.execute("SELECT d FROM cn_dec WHERE id = ?", (1,))
    assert cur.fetchall() == [(value,)]


def test_bigint_unsigned_full_range_prepared(cnx):
    """Server-side prepared statements carry BIGINT UNSIGNED above 2**63-1 both ways (binary protocol)."""
    cur = cnx.cursor(prepared=True)
    fresh_table(cnx.cursor(), "cn_u64", "CREATE TABLE {name} (id INT PRIMARY KEY, n BIGINT UNSIGNED)")
    for i, v in enumerate([2**64 - 1, 2**63, 7]):
        cur.execute("INSERT INTO cn_u64 VALUES (?, ?)", (i, v))
    cur.execute("SELECT id, n FROM cn_u64 WHERE n >= ? ORDER BY n", (2**63,))
    assert cur.fetchall() == [(1, 2**63), (0, 2**64 - 1)]
    cur.execute("SELECT n FROM cn_u64 WHERE n = ?", (2**64 - 1,))
    assert cur.fetchall() == [(2**64 - 1,)]


def test_prepared_statements_round_trip(cnx):
    fresh_table(cnx.cursor(), "cn_prep")
    cur = cnx.cursor(prepared=True)
    insert = f"INSERT INTO cn_prep ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    for row in PREPARED_ROWS[:2]:
        cur.execute(insert, row)  # same SQL again: the driver re-executes its prepared statement
        assert cur.rowcount == 1
    cur.executemany(insert, PREPARED_ROWS[2:])
    assert cur.rowcount == 2
    cur.execute(f"SELECT {COLUMNS} FROM cn_prep WHERE id >= ? ORDER BY id", (0,))
    got = cur.fetchall()
    assert got == PREPARED_ROWS
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
    assert [str(r[7]) for r in got if r[7] is not None] == ["-0.05", "12345.67", "1.10"]
    # Parameters in WHERE, re-executed with new values; text read back through the text protocol too.
    for row in PREPARED_ROWS:
        cur.execute("SELECT id FROM cn_prep WHERE id = ? AND (s = ? OR s IS NULL)", (row[0], row[1]))
        assert cur.fetchall() == [(row[0],)]
    text = cnx.cursor()
    text.execute(f"SELECT {COLUMNS} FROM cn_prep ORDER BY id")
    assert text.fetchall() == PREPARED_ROWS
    # Expressions over parameters: the types come back from the values.
    cur.execute("SELECT ? + 1, CONCAT(?, ?), ?, ?", (41, "é", "🦫", None, b"\x00\xff"))
    assert cur.fetchall() == [(42, "é🦫", None, b"\x00\xff")]


def test_prepared_affected_rows_and_insert_id(cnx):
    fresh_table(
        cnx.cursor(), "cn_ai", "CREATE TABLE {name} (id BIGINT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(20))"
    )
    cur = cnx.cursor(prepared=True)
    cur.execute("INSERT INTO cn_ai (v) VALUES (?)", ("a",))
    first = cur.lastrowid
    assert cur.rowcount == 1 and first > 0
    cur.execute("INSERT INTO cn_ai (v) VALUES (?)", ("b",))
    second = cur.lastrowid
    assert second > first
    cur.execute("SELECT id FROM cn_ai WHERE v = ?", ("b",))
    assert cur.fetchall() == [(second,)]
    cur.execute("UPDATE cn_ai SET v = ? WHERE id >= ?", ("z", first))
    assert cur.rowcount == 2
    cur.execute("UPDATE cn_ai SET v = ? WHERE id >= ?", ("z", first))
    assert cur.rowcount == 0  # nothing changed
    cur.execute("DELETE FROM cn_ai WHERE id = ?", (first,))
    assert cur.rowcount == 1
    text = cnx.cursor()
    text.execute("INSERT INTO cn_ai (v) VALUES (%s), (%s)", ("c", "d"))
    assert text.rowcount == 2 and text.lastrowid > second
    text.execute("SELECT LAST_INSERT_ID()")
    assert text.fetchall() == [(text.lastrowid,)]


def test_transactions(cnx, node):
    cur = cnx.cursor()
    fresh_table(cur, "cn_tx", "CREATE TABLE {name} (id INT PRIMARY KEY, v VARCHAR(10))")
    other = connect(node)
    try:
        ocur = other.cursor()
        cnx.start_transaction()
        assert cnx.in_transaction
        cur.execute("INSERT INTO cn_tx VALUES (1, 'gone')")
        ocur.execute("SELECT COUNT(*) FROM cn_tx")
        assert ocur.fetchall() == [(0,)]
        cnx.rollback()
        assert not cnx.in_transaction
        cnx.start_transaction()
        prep = cnx.cursor(prepared=True)
        prep.execute("INSERT INTO cn_tx VALUES (?, ?)", (2, "kept"))
        cnx.commit()
        ocur.execute("SELECT id, v FROM cn_tx")
        assert ocur.fetchall() == [(2, "kept")]
        cnx.autocommit = False
        cur.execute("INSERT INTO cn_tx VALUES (3, 'gone')")
        cnx.rollback()
        cnx.autocommit = True
        cur.execute("SELECT id FROM cn_tx")
        assert cur.fetchall() == [(2,)]
    finally:
        other.close()


def test_errors_leave_connection_usable(cnx):
    cur = cnx.cursor()
    fresh_table(cur, "cn_err", "CREATE TABLE {name} (id INT PRIMARY KEY, v VARCHAR(10))")
    cur.execute("INSERT INTO cn_err VALUES (1, 'a')")
    with pytest.raises(errors.IntegrityError) as ei:
        cur.execute("INSERT INTO cn_err VALUES (%s, %s)", (1, "b"))
    assert ei.value.errno == 1062 and ei.value.sqlstate == "23000"
    prep = cnx.cursor(prepared=True)
    with pytest.raises(errors.IntegrityError) as ei:
        prep.execute("INSERT INTO cn_err VALUES (?, ?)", (1, "c"))
    assert ei.value.errno == 1062
    with pytest.raises(errors.ProgrammingError) as ei:
        cur.execute("SELEC 1")
    assert ei.value.errno == 1064 and ei.value.sqlstate == "42000"
    with pytest.raises(errors.ProgrammingError) as ei:
        cnx.cursor(prepared=True).execute("SELEC ?", (1,))
    assert ei.value.errno == 1064
    prep.execute("INSERT INTO cn_err VALUES (?, ?)", (2, "b"))
    cur.execute("SELECT id, v FROM cn_err ORDER BY id")
    assert cur.fetchall() == [(1, "a"), (2, "b")]


def test_multi_statements(cnx):
    cur = cnx.cursor()
    fresh_table(cur, "cn_multi", "CREATE TABLE {name} (id INT PRIMARY KEY, v VARCHAR(10))")
    cur.execute(
        "INSERT INTO cn_multi VALUES (1, 'a'); INSERT INTO cn_multi VALUES (2, 'b'); "
        "SELECT v FROM cn_multi ORDER BY id; UPDATE cn_multi SET v = 'z'; SELECT 'done'"
    )
    sets = [cur.fetchall() if cur.with_rows else cur.rowcount]
    while cur.nextset():
        sets.append(cur.fetchall() if cur.with_rows else cur.rowcount)
    assert sets == [1, 1, [("a",), ("b",)], 2, [("done",)]]
    with pytest.raises(errors.ProgrammingError) as ei:
        cur.execute("SELECT 1; SELEC 2")
        cur.fetchall()
        cur.nextset()
    assert ei.value.errno == 1064
    cur.execute("SELECT 3")
    assert cur.fetchall() == [(3,)]
