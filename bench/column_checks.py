"""Cost of the sql_mode column checks on the write path: the bench's single-row INSERT (``loadgen.SCHEMA``:
INT primary key, INT, CHAR(120), CHAR(60)) run N times in one transaction, as SQLite SQL without the
checks and as the transpiler plans it with them (each value wrapped in ``__marmot_chk``, which applies
the column's checker from ``marmot.engine.column_checks``).

Why in-process and not through a node: a node's INSERT costs about a millisecond of wire, planning,
capture and 2PC, and on a shared 2-core machine run-to-run noise of the end-to-end benchmark
(``point_select.py --workloads insert``) is larger than the checks; here the difference per row is what
the checks add. Best of ``--repeat`` runs per mode; figures are printed, never asserted. The one thing
checked is that both modes stored the same rows (exit status 1 otherwise).

Usage: ``.venv/bin/python bench/column_checks.py [--rows 50000] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import sys
import time

import apsw
import sqlglot

from loadgen import SCHEMA
from marmot.engine.column_checks import StatementChecks, check_value, table_checks
from marmot.engine.sql_mode import flags
from marmot.engine.table_description import describe
from marmot.engine.variables import DEFAULT_SQL_MODE
from marmot.sql.ddl import translate_create_table
from marmot.sql.value_checks import ColumnFacts, wrap_insert

INSERT = "INSERT INTO sbinsert (id, k, c, pad) VALUES (?, ?, ?, ?)"


def checked_sql(conn: apsw.Connection) -> tuple[str, object]:
    """The checked INSERT as the transpiler renders it, and the table's column checks."""
    desc = describe(conn, "sbinsert")
    assert desc is not None
    facts = tuple(ColumnFacts(c.name, required=False, exempt=False) for c in desc.columns)
    tree = sqlglot.parse_one(INSERT.replace("?", ":p"), read="mysql")
    wrap_insert(tree, facts, 0)  # type: ignore[arg-type]
    return tree.sql("sqlite").replace(":p", "?"), table_checks(desc)


def once(mode: str, rows: list[tuple[int, int, str, str]]) -> tuple[float, list[tuple[object, ...]]]:
    conn = apsw.Connection(":memory:")
    for stmt in translate_create_table(sqlglot.parse_one(SCHEMA.format(name="sbinsert"), read="mysql")):  # type: ignore[arg-type]
        conn.execute(stmt)
    sql = INSERT
    if mode == "checked":
        sql, checks = checked_sql(conn)
        st = StatementChecks(flags(DEFAULT_SQL_MODE), False, True, [])

        def chk(value: object, slot: int, column: int, row: int) -> object:
            # what SessionFunctions._check does per value: row and column for messages, the value kept
            st.row = row
            st.column = column
            out = st.stored[column] = check_value(checks[column], value, st)  # type: ignore[index, arg-type]
            return out

        conn.create_scalar_function("__marmot_chk", chk, 4)
    conn.execute("BEGIN")
    t0 = time.perf_counter()
    for r in rows:
        conn.execute(sql, r)
    elapsed = time.perf_counter() - t0
    conn.execute("COMMIT")
    return elapsed, conn.execute("SELECT * FROM sbinsert ORDER BY id").fetchall()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rows = [(i, i % 1000, f"{i:0>11}-" * 10, f"{i:0>11}-" * 5) for i in range(args.rows)]
    best: dict[str, float] = {}
    stored: dict[str, list[tuple[object, ...]]] = {}
    for _ in range(args.repeat):
        for mode in ("plain", "checked"):
            elapsed, stored[mode] = once(mode, rows)
            best[mode] = min(best.get(mode, elapsed), elapsed)
    per_row = {m: best[m] / args.rows * 1e6 for m in best}
    print(f"{args.rows} single-row INSERTs, best of {args.repeat}:")
    for mode in ("plain", "checked"):
        print(f"  {mode:8} {per_row[mode]:7.2f} us/row")
    print(f"  checks add {per_row['checked'] - per_row['plain']:.2f} us/row (4 columns)")
    if stored["plain"] != stored["checked"]:
        print("the checked INSERTs stored other rows than the plain ones", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
