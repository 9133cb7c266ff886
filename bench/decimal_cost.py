"""Cost of exact DECIMAL: the same work on a ``DECIMAL(12,2)`` column and on a ``DOUBLE`` (SQLite REAL)
column, through one real node and PyMySQL.

An exact DECIMAL is stored as canonical text in a column with the ``MARMOT_DECIMAL`` collation, checked
on the way in by the column check (which now always formats the value), summed by the
``__marmot_dec_sum`` aggregate and sorted by the collation (docs/transpiler.md "Exact DECIMAL"); a DOUBLE
is a native SQLite REAL throughout. Measured per phase, best of ``--repeat`` runs:

- insert: ``--rows`` rows in multi-row INSERTs of 100 rows, autocommit;
- select: every row fetched (``SELECT id, v FROM t``);
- sum: ``SELECT SUM(v) FROM t`` (and AVG);
- order: ``SELECT id FROM t ORDER BY v LIMIT 10`` (no index: a sort of every row);
- lookup: 1,000 ``SELECT id FROM t WHERE v = <value>`` on an indexed column.

Figures are printed, never asserted. The one thing checked is that the DECIMAL sum is exact (exit status 1
otherwise). The node is stopped by its PID, also on error. (Not named ``decimal.py``: run from ``bench/``,
that name would shadow the standard library module every client imports.)

Usage: ``.venv/bin/python bench/decimal_cost.py [--rows 20000] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import pymysql

from marmot.testing import make_node

TYPES = {"decimal": "DECIMAL(12,2)", "real": "DOUBLE"}


def connect(port: int) -> pymysql.connections.Connection:
    return pymysql.connect(
        host="127.0.0.1", port=port, user="root", password="", database="marmot", autocommit=True
    )


def value(i: int) -> str:
    return f"{i % 100000}.{i % 100:02d}"


def run(cur: pymysql.cursors.Cursor, kind: str, rows: int) -> dict[str, float]:
    table = f"b_{kind}"
    cur.execute(f"DROP TABLE IF EXISTS {table}")
    cur.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY, v {TYPES[kind]}, w {TYPES[kind]}, KEY by_w (w))")
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    for start in range(0, rows, 100):
        cur.execute(
            f"INSERT INTO {table} VALUES "
            + ",".join(f"({i}, {value(i)}, {value(i)})" for i in range(start, min(start + 100, rows)))
        )
    out["insert"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    cur.execute(f"SELECT id, v FROM {table}")
    assert len(cur.fetchall()) == rows
    out["select"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    cur.execute(f"SELECT SUM(v), AVG(v) FROM {table}")
    total = cur.fetchone()[0]
    out["sum"] = time.perf_counter() - t0
    out["total"] = total
    t0 = time.perf_counter()
    cur.execute(f"SELECT id FROM {table} ORDER BY v LIMIT 10")
    cur.fetchall()
    out["order"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(0, 1000):
        cur.execute(f"SELECT id FROM {table} WHERE w = {value(i * 7)}")
        cur.fetchall()
    out["lookup"] = time.perf_counter() - t0
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    expected = sum(Decimal(value(i)) for i in range(args.rows))
    with tempfile.TemporaryDirectory(prefix="marmot-bench-decimal-") as tmp:
        node = make_node(Path(tmp), unix_socket=False).start()
        try:
            conn = connect(node.mysql_port)
            cur = conn.cursor()
            best: dict[str, dict[str, float]] = {}
            for _ in range(args.repeat):
                for kind in TYPES:
                    got = run(cur, kind, args.rows)
                    prev = best.setdefault(kind, got)
                    for phase, seconds in got.items():
                        if phase != "total":
                            prev[phase] = min(prev[phase], seconds)
                    prev["total"] = got["total"]
            conn.close()
        finally:
            node.stop()
    print(f"rows: {args.rows}, best of {args.repeat}")
    print("| phase | DECIMAL(12,2) | DOUBLE | DECIMAL / DOUBLE |")
    print("|---|---:|---:|---:|")
    for phase in ("insert", "select", "sum", "order", "lookup"):
        d, r = best["decimal"][phase], best["real"][phase]
        print(f"| {phase} | {d * 1000:,.1f} ms | {r * 1000:,.1f} ms | {d / r:.2f}x |")
    print(f"SUM: DECIMAL {best['decimal']['total']!r} (exact: {expected}), DOUBLE {best['real']['total']!r}")
    return 0 if best["decimal"]["total"] == expected else 1


if __name__ == "__main__":
    sys.exit(main())
