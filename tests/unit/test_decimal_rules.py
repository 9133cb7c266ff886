"""Exact DECIMAL and BIGINT UNSIGNED in-process (issue 13 point 2): the collation on a real SQLite table
made by the real DDL translation, the exact functions registered on a real connection, and the result
types the transpiler gives MySQL's typing rules."""

from __future__ import annotations

import apsw
import pytest
import sqlglot

from marmot.sql import functions, lexer
from marmot.sql.ddl import translate_create_table
from marmot.sql.functions import unsigned
from marmot.sql.transpiler import SchemaInfo, Transpiler
from marmot.storage import collations


@pytest.fixture
def conn():
    c = apsw.Connection(":memory:")
    collations.register(c)
    functions.register(c)
    ddl = "CREATE TABLE t (id INT PRIMARY KEY, d DECIMAL(8,2) UNIQUE, n BIGINT UNSIGNED)"
    for stmt in translate_create_table(sqlglot.parse_one(ddl, read="mysql")):  # type: ignore[arg-type]
        c.execute(stmt)
    yield c
    c.close()


def test_collation_orders_and_equates_numerically(conn):
    conn.execute("INSERT INTO t (id, d) VALUES (1, '10.00'), (2, '9.50'), (3, '-0.50'), (4, '100.00')")
    assert [r[0] for r in conn.execute("SELECT d FROM t ORDER BY d")] == ["-0.50", "9.50", "10.00", "100.00"]
    assert conn.execute("SELECT id FROM t WHERE d = 9.5").fetchall() == [(2,)]
    assert conn.execute("SELECT MAX(d) FROM t").fetchall() == [("100.00",)]
    with pytest.raises(apsw.ConstraintError):
        conn.execute("INSERT INTO t (id, d) VALUES (5, '9.5')")
    assert collations.compare_decimals("abc", "0") == 0  # no number reads as 0, as in MySQL


def test_exact_functions(conn):
    row = conn.execute(
        "SELECT __marmot_dec_add('0.1', '0.2'), __marmot_dec_mul(3, '1.10'), __marmot_dec_div(1, 3, 4), "
        "__marmot_dec_div(1, 0, 4), __marmot_dec_cast('2.345', 10, 2), __marmot_dec_cast(1234.5, 4, 1), "
        "__marmot_dec_sub('0.1', '0.1'), __marmot_dec_cmp('10.0', '9.5')"
    ).fetchone()
    assert row == ("0.3", "3.30", "0.3333", None, "2.35", "999.9", "0.0", 1)
    conn.execute("INSERT INTO t (id, d) VALUES (1, '0.10'), (2, '0.20'), (3, NULL)")
    assert conn.execute("SELECT __marmot_dec_sum(d), __marmot_dec_avg(d, 6) FROM t").fetchone() == (
        "0.30",
        "0.150000",
    )
    assert conn.execute("SELECT __marmot_dec_sum(d) FROM t WHERE id > 9").fetchone() == (None,)


def test_unsigned_stored_form_sorts_after_every_signed_integer(conn):
    values = [2**64 - 1, 2**63, 2**63 - 1, 0]
    for i, v in enumerate(values):
        conn.execute("INSERT INTO t (id, n) VALUES (?, ?)", (i, unsigned.encode(v)))
    stored = [unsigned.decode(r[0]) for r in conn.execute("SELECT n FROM t ORDER BY n")]
    assert stored == sorted(values)
    found = conn.execute("SELECT id FROM t WHERE n = __marmot_u64(?)", ("18446744073709551615",)).fetchall()
    assert found == [(0,)]
    assert unsigned.as_stored(5) == 5 and unsigned.as_stored("12") == "12"


class _Schema(SchemaInfo):
    def column_types(self, database: str, table: str) -> dict[str, str] | None:
        if table == "t":
            return {"id": "int", "d": "decimal(12,2)", "f": "double", "n": "bigint unsigned"}
        return None


@pytest.mark.parametrize(
    ("sql", "types"),
    [
        ("SELECT 0.1 + 0.2", ("DECIMAL(2,1)",)),
        ("SELECT 3 * 1.10", ("DECIMAL(4,2)",)),
        ("SELECT CAST(1 AS DECIMAL(10,2))", ("DECIMAL(10,2)",)),
        ("SELECT SUM(d), AVG(d), MIN(d) FROM t", ("DECIMAL(34,2)", "DECIMAL(16,6)", "DECIMAL(12,2)")),
        ("SELECT d * 2, d + 0.125, d / 3 FROM t", ("DECIMAL(13,2)", "DECIMAL(14,3)", "DECIMAL(16,6)")),
        ("SELECT 10 / 4", ("DECIMAL(6,4)",)),
        ("SELECT d + f, 1e-1 + 0.1 FROM t", ()),
        ("SELECT SUM(d) FROM t WHERE id IN (SELECT id FROM t WHERE d > 1)", ("DECIMAL(34,2)",)),
    ],
)
def test_result_types_follow_mysql(sql, types):
    tr = Transpiler(schema=_Schema())
    plan = tr.plan(lexer.normalize(sql), "db", 0, sql)
    assert tuple(t for t in plan.result_types if t) == types
    if types:
        assert "__marmot_dec_" in plan.steps[0].sql.lower()
    else:
        assert "__marmot_dec_" not in plan.steps[0].sql.lower()


def test_unsigned_comparisons_use_the_stored_form():
    tr = Transpiler(schema=_Schema())
    sql = "SELECT id FROM t WHERE n = 18446744073709551615 OR n IN (1, 2) OR n BETWEEN 3 AND 4"
    plan = tr.plan(lexer.normalize(sql), "db", 0, sql)
    assert plan.steps[0].sql.lower().count("__marmot_u64(") == 5
