"""Cost of change capture on the write path: N single-row INSERTs in one transaction with no hook, a no-op
SQLite preupdate hook, and ``ChangeCapture`` (``marmot.engine.capture``).

Why a benchmark and not a test: the figures depend on the machine and its load, so they are printed,
never asserted (it used to run inside the unit tests, where it cost seconds per run and proved nothing).
Best of ``--repeat`` runs per mode; a file database in WAL mode with ``synchronous=NORMAL``, as the
server uses. The one thing checked is that capture saw every row (exit status 1 otherwise).

Usage: ``.venv/bin/python bench/capture_overhead.py [--rows 100000] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import apsw

from marmot.engine.capture import ChangeCapture

MODES = ("none", "noop", "capture")


def once(workdir: Path, mode: str, i: int, rows: list[tuple[int, str, str, int]]) -> tuple[float, float]:
    """(seconds for the INSERTs, seconds for ``changes()``) of one run in ``mode``."""
    conn = apsw.Connection(str(workdir / f"{mode}{i}.db"))
    conn.execute("PRAGMA journal_mode=WAL").fetchall()
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT, v TEXT, n INT)")
    cap = ChangeCapture()
    if mode == "noop":
        conn.preupdate_hook(lambda u: None)
    elif mode == "capture":
        cap.start(conn, 0)
    conn.execute("BEGIN")
    t0 = time.perf_counter()
    for r in rows:
        conn.execute("INSERT INTO t VALUES (?, ?, ?, ?)", r)
    t1 = time.perf_counter()
    if mode == "capture" and (got := len(cap.changes())) != len(rows):
        raise SystemExit(f"capture saw {got} changes for {len(rows)} inserted rows")
    t2 = time.perf_counter()
    conn.execute("COMMIT")
    conn.close()
    return t1 - t0, t2 - t1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="INSERTs per transaction (default 100000)")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per mode; the best is reported (default 3)"
    )
    args = parser.parse_args(argv)
    rows = [(i, f"key{i}", "v" * 40, i * 7) for i in range(args.rows)]
    with tempfile.TemporaryDirectory(prefix="marmot-capture-bench-") as tmp:
        results = {mode: min(once(Path(tmp), mode, i, rows) for i in range(args.repeat)) for mode in MODES}
    base = results["none"][0]
    n = args.rows
    print(f"{n} single-row INSERTs in one transaction, best of {args.repeat}:")
    for mode, (run_s, merge_s) in results.items():
        extra = (
            f", changes() {merge_s * 1e3:.0f} ms ({merge_s / n * 1e6:.2f} µs/row)"
            if mode == "capture"
            else ""
        )
        print(f"  {mode:8s} statements {run_s * 1e3:6.0f} ms (+{(run_s - base) / n * 1e6:.2f} µs/row){extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
