"""Exact DECIMAL through a real node and PyMySQL (issue 13 point 2): literals and DECIMAL columns computed
exactly, CAST/SUM/AVG with MySQL's result types (NEWDECIMAL, precision and scale in the column
definition), values of up to 65 digits stored and returned exactly, ordering/comparison/UNIQUE numeric,
and BIGINT UNSIGNED up to 2**64-1."""

from __future__ import annotations

import json
from decimal import Decimal

import pymysql
import pytest

NEWDECIMAL = 246


@pytest.fixture
def cur(conn):
    return conn.cursor()


def one(cur, sql, args=None):
    cur.execute(sql, args)
    return cur.fetchall()


def column(cur, index=0):
    """(type code, decimals) of a result column, as the column definition sent them."""
    field = cur.description[index]
    return field[1], field[5]


def test_exact_literal_arithmetic(cur):
    assert one(cur, "SELECT 0.1 + 0.2") == ((Decimal("0.3"),),)
    assert column(cur) == (NEWDECIMAL, 1)
    assert one(cur, "SELECT 3 * 1.10") == ((Decimal("3.30"),),)
    assert column(cur) == (NEWDECIMAL, 2)
    assert one(cur, "SELECT 1.0 / 3, 0.3 - 0.1, 1.10") == (
        (Decimal("0.33333"), Decimal("0.2"), Decimal("1.10")),
    )
    assert one(cur, "SELECT 12345678901234567890.1234567890 + 1") == (
        (Decimal("12345678901234567891.1234567890"),),
    )
    # integer / integer is a DECIMAL with 4 decimals in MySQL
    assert one(cur, "SELECT 10 / 4, 1 / 3, 1 / 0") == ((Decimal("2.5000"), Decimal("0.3333"), None),)
    assert column(cur) == (NEWDECIMAL, 4)
    # 1e-1 is a DOUBLE in MySQL: it stays binary floating point
    cur.execute("SELECT 1e-1 + 0.2")
    assert isinstance(cur.fetchone()[0], float)


def test_cast_as_decimal(cur):
    assert one(cur, "SELECT CAST(1 AS DECIMAL(10,2))") == ((Decimal("1.00"),),)
    assert column(cur) == (NEWDECIMAL, 2)
    assert one(cur, "SELECT CAST('2.345' AS DECIMAL(10,2)), CAST(1234.5 AS DECIMAL(4,1))") == (
        (Decimal("2.35"), Decimal("999.9")),
    )


@pytest.fixture
def money(cur):
    cur.execute("DROP TABLE IF EXISTS money")
    cur.execute("CREATE TABLE money (id INT PRIMARY KEY, amount DECIMAL(12,2), big DECIMAL(30,10), qty INT)")
    rows = [
        (1, "0.10", "12345678901234567890.1234567890", 3),
        (2, "0.20", "0.0000000001", 2),
        (3, "9.5", None, 1),
    ]
    cur.executemany("INSERT INTO money VALUES (%s, %s, %s, %s)", rows)
    return cur


def test_column_values_stored_and_returned_exactly(money):
    assert one(money, "SELECT id, amount, big FROM money ORDER BY id") == (
        (1, Decimal("0.10"), Decimal("12345678901234567890.1234567890")),
        (2, Decimal("0.20"), Decimal("0.0000000001")),
        (3, Decimal("9.50"), None),
    )
    assert column(money, 2) == (NEWDECIMAL, 10)


def test_sum_avg_keep_decimal_type_and_scale(money):
    assert one(money, "SELECT SUM(amount), AVG(amount), SUM(big), MIN(amount), MAX(amount) FROM money") == (
        (
            Decimal("9.80"),
            Decimal("3.266667"),
            Decimal("12345678901234567890.1234567891"),
            Decimal("0.10"),
            Decimal("9.50"),
        ),
    )
    assert [column(money, i) for i in range(5)] == [
        (NEWDECIMAL, 2),
        (NEWDECIMAL, 6),
        (NEWDECIMAL, 10),
        (NEWDECIMAL, 2),
        (NEWDECIMAL, 2),
    ]
    # MySQL: SUM of a DECIMAL(12,2) is DECIMAL(34,2) (display length 36 with sign and point)
    assert money.description[0][3] == 36
    assert one(money, "SELECT SUM(amount) FROM money WHERE id > 100") == ((None,),)


def test_column_arithmetic_and_updates(money):
    assert one(money, "SELECT amount * qty FROM money ORDER BY id") == (
        (Decimal("0.30"),),
        (Decimal("0.40"),),
        (Decimal("9.50"),),
    )
    money.execute("UPDATE money SET amount = amount + 0.1 WHERE id = 1")
    money.execute("UPDATE money SET big = big * 2 WHERE id = 1")
    assert one(money, "SELECT amount, big FROM money WHERE id = 1") == (
        (Decimal("0.20"), Decimal("24691357802469135780.2469135780")),
    )
    assert one(money, "SELECT id FROM money WHERE amount + 0.1 = 0.3 ORDER BY id") == ((1,), (2,))


def test_ordering_comparison_and_unique(cur):
    cur.execute("DROP TABLE IF EXISTS prices")
    cur.execute("CREATE TABLE prices (id INT PRIMARY KEY, p DECIMAL(6,2) UNIQUE, KEY by_p (p))")
    for i, v in enumerate(["10.0", "9.5", "-1", "100", "2.5"]):
        cur.execute("INSERT INTO prices VALUES (%s, %s)", (i, v))
    assert [r[0] for r in one(cur, "SELECT p FROM prices ORDER BY p")] == [
        Decimal(x) for x in ("-1.00", "2.50", "9.50", "10.00", "100.00")
    ]
    assert [r[0] for r in one(cur, "SELECT p FROM prices WHERE p > 9.6 ORDER BY p DESC")] == [
        Decimal("100.00"),
        Decimal("10.00"),
    ]
    assert one(cur, "SELECT id FROM prices WHERE p = 2.50") == ((4,),)
    assert one(cur, "SELECT id FROM prices WHERE p = '2.5'") == ((4,),)
    assert one(cur, "SELECT id FROM prices WHERE p BETWEEN 2 AND 10 ORDER BY p") == ((4,), (1,), (0,))
    with pytest.raises(pymysql.err.IntegrityError) as info:
        cur.execute("INSERT INTO prices VALUES (9, 2.50)")
    assert info.value.args[0] == 1062
    with pytest.raises(pymysql.err.IntegrityError):
        cur.execute("INSERT INTO prices VALUES (9, '2.5')")
    # ORDER BY a computed DECIMAL sorts numerically too
    assert [r[0] for r in one(cur, "SELECT p * 1.0 AS x FROM prices ORDER BY x")][:2] == [
        Decimal("-1.000"),
        Decimal("2.500"),
    ]


def test_show_create_table_keeps_decimal(cur):
    cur.execute("DROP TABLE IF EXISTS dshow")
    cur.execute("CREATE TABLE dshow (id INT PRIMARY KEY, d DECIMAL(10,2) UNSIGNED NOT NULL DEFAULT 0)")
    create = one(cur, "SHOW CREATE TABLE dshow")[0][1]
    assert "`d` decimal(10,2) unsigned NOT NULL DEFAULT '0.00'" in create
    assert "DECIMALTEXT" not in create.upper() and "MARMOT_DECIMAL" not in create.upper()
    assert one(
        cur,
        "SELECT DATA_TYPE, COLUMN_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE FROM information_schema.COLUMNS "
        "WHERE TABLE_NAME = 'dshow' AND COLUMN_NAME = 'd'",
    ) == (("decimal", "decimal(10,2) unsigned", 10, 2),)


def test_bigint_unsigned_full_range(cur):
    cur.execute("DROP TABLE IF EXISTS ubig")
    cur.execute("CREATE TABLE ubig (id INT PRIMARY KEY, n BIGINT UNSIGNED)")
    values = [2**64 - 1, 2**63, 2**63 - 1, 0, 5]
    for i, v in enumerate(values):
        cur.execute("INSERT INTO ubig VALUES (%s, %s)", (i, v))
    assert [r[0] for r in one(cur, "SELECT n FROM ubig ORDER BY n")] == sorted(values)
    assert one(cur, "SELECT id FROM ubig WHERE n = 18446744073709551615") == ((0,),)
    assert one(cur, "SELECT id FROM ubig WHERE n > 9223372036854775807 ORDER BY n") == ((1,), (0,))
    with pytest.raises(pymysql.MySQLError) as info:
        cur.execute("INSERT INTO ubig VALUES (9, 18446744073709551616)")
    assert info.value.args[0] == 1264


def test_view_of_decimal_sum_is_decimal(cur):
    cur.execute("DROP VIEW IF EXISTS vtot")
    cur.execute("DROP TABLE IF EXISTS vsrc")
    cur.execute("CREATE TABLE vsrc (id INT PRIMARY KEY, g VARCHAR(5), amount DECIMAL(12,2))")
    cur.execute("INSERT INTO vsrc VALUES (1, 'a', 5.25), (2, 'a', 7.00), (3, 'b', 1)")
    cur.execute("CREATE VIEW vtot AS SELECT g, SUM(amount) AS total FROM vsrc GROUP BY g")
    assert one(cur, "SELECT * FROM vtot ORDER BY g") == (("a", Decimal("12.25")), ("b", Decimal("1.00")))
    assert column(cur, 1) == (NEWDECIMAL, 2)
    assert one(cur, "SELECT total FROM vtot ORDER BY total DESC") == ((Decimal("12.25"),), (Decimal("1.00"),))
    assert column(cur) == (NEWDECIMAL, 2)
    # computed exactly inside the view too, and SHOW CREATE VIEW gives MySQL's text back
    cur.execute("INSERT INTO vsrc VALUES (4, 'c', 0.10), (5, 'c', 0.20)")
    cur.execute("DROP VIEW IF EXISTS vexact")
    cur.execute("CREATE VIEW vexact AS SELECT g, SUM(amount) * 1.10 AS x FROM vsrc GROUP BY g")
    assert one(cur, "SELECT x FROM vexact WHERE g = 'c'") == ((Decimal("0.3300"),),)
    create = one(cur, "SHOW CREATE VIEW vexact")[0][1]
    assert "sum(`amount`) * 1.10" in create.lower() and "marmot" not in create.lower()


def test_old_numeric_affinity_table_converted_by_modify(conn):
    """A DECIMAL column created before exact storage (NUMERIC affinity, made here with transpilation off)
    becomes exact when ALTER TABLE ... MODIFY redefines it."""
    cur = conn.cursor()
    cur.execute("DROP TABLE IF EXISTS olddec")
    cur.execute("SET marmot_transpilation = OFF")
    try:
        cur.execute("CREATE TABLE olddec (id INT NOT NULL PRIMARY KEY, d DECIMAL(30,10))")
    finally:
        cur.execute("SET marmot_transpilation = ON")
    value = "12345678901234567890.1234567890"
    cur.execute("INSERT INTO olddec VALUES (1, %s)", (value,))
    assert one(cur, "SELECT d FROM olddec") != ((Decimal(value),),)  # a REAL: digits lost
    cur.execute("ALTER TABLE olddec MODIFY d DECIMAL(30,10)")
    cur.execute("UPDATE olddec SET d = %s", (value,))
    assert one(cur, "SELECT d FROM olddec") == ((Decimal(value),),)


def test_decimal_in_json_and_text(money):
    """A DECIMAL stays a JSON number in JSON constructors, and prints with its scale in string functions."""
    cur = money
    assert one(cur, "SELECT JSON_OBJECT('a', amount), JSON_ARRAY(amount) FROM money WHERE id = 3") == (
        ('{"a": 9.5}', "[9.5]"),
    )
    cur.execute("SELECT JSON_OBJECTAGG(id, amount) FROM money WHERE id < 3")
    assert json.loads(cur.fetchone()[0]) == {"1": 0.1, "2": 0.2}
    assert one(cur, "SELECT CONCAT('$', amount) FROM money WHERE id = 3") == (("$9.50",),)


def test_alter_table_keeps_exact_decimal(cur):
    cur.execute("DROP TABLE IF EXISTS dalter")
    cur.execute("CREATE TABLE dalter (id INT PRIMARY KEY, x INT)")
    cur.execute("INSERT INTO dalter VALUES (1, 1), (2, 2)")
    cur.execute("ALTER TABLE dalter ADD COLUMN d DECIMAL(25,5) NOT NULL")
    cur.execute("UPDATE dalter SET d = '12345678901234567890.12345' WHERE id = 2")
    cur.execute("ALTER TABLE dalter DROP COLUMN x")  # a table rebuild: the copy keeps type and collation
    cur.execute("CREATE UNIQUE INDEX ud2 ON dalter (d)")
    assert one(cur, "SELECT id, d FROM dalter ORDER BY d DESC") == (
        (2, Decimal("12345678901234567890.12345")),
        (1, Decimal("0.00000")),
    )
    with pytest.raises(pymysql.err.IntegrityError):
        cur.execute("INSERT INTO dalter VALUES (3, 0)")
    create = one(cur, "SHOW CREATE TABLE dalter")[0][1]
    assert "`d` decimal(25,5) NOT NULL" in create


def test_bigint_unsigned_arithmetic_and_updates(cur):
    cur.execute("DROP TABLE IF EXISTS ucount")
    cur.execute("CREATE TABLE ucount (id INT PRIMARY KEY, n BIGINT UNSIGNED)")
    cur.execute("INSERT INTO ucount VALUES (1, 18446744073709551610), (2, 9223372036854775807), (3, 5)")
    cur.execute("UPDATE ucount SET n = n + 1")
    assert one(cur, "SELECT id, n FROM ucount ORDER BY id") == (
        (1, 18446744073709551611),
        (2, 9223372036854775808),
        (3, 6),
    )
    cur.execute("UPDATE ucount SET n = n - 2 WHERE id = 2")  # back below 2**63: a plain integer again
    assert one(cur, "SELECT n, n * 2, n / 2 FROM ucount WHERE id = 2") == (
        (9223372036854775806, 18446744073709551612, Decimal("4611686018427387903.0000")),
    )
    assert one(cur, "SELECT MAX(n), MIN(n) FROM ucount") == ((18446744073709551611, 6),)
    assert one(cur, "SELECT 18446744073709551615") == ((18446744073709551615,),)
    with pytest.raises(pymysql.MySQLError) as info:
        cur.execute("UPDATE ucount SET n = n * 2 WHERE id = 1")
    assert info.value.args[0] == 1264
