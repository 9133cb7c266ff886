"""Marmot vs MariaDB, side by side, in one run: point selects, single-row INSERTs, sysbench.

``make bench`` (= ``.venv/bin/python bench/point_select.py``) starts a single Marmot node and a throwaway
MariaDB server (one after the other, never both loaded at once), runs on each:

1. point selects ``SELECT c FROM sbtest1 WHERE id=<random 1..10000>`` with 1 and 8 client processes;
2. autocommit single-row INSERTs with 1 and 8 client processes;
3. ``sysbench oltp_point_select --db-ps-mode=auto`` (prepared statements) with 1 and 8 threads, plus a
   compatibility pass of sysbench's stock ``prepare`` whose failing statements are reported;

and prints a markdown table (also written to ``bench/results/latest.md``). ``--profile`` adds one more
1-connection point-select run on a fresh Marmot node with ``py-spy`` attached and prints the top
self-time functions (also in ``bench/results/profile-latest.md``). Figures only: nothing here asserts a
speed. Every process started here is stopped by its PID, on success, error, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import atexit
import datetime as dt
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import loadgen
import mariadb_server
import profile_summary
import sysbench_runner

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
OWNER = os.getpid()
_cleanups: list = []


def _run_cleanups() -> None:
    if os.getpid() != OWNER:  # a forked worker must never stop the servers
        return
    while _cleanups:
        fn = _cleanups.pop()
        try:
            fn()
        except Exception as err:
            print(f"cleanup failed: {err!r}", file=sys.stderr)


def _on_signal(signum, _frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _marmot_node(tmp: Path):
    from marmot.testing import make_node

    return make_node(tmp, unix_socket=False)


# -- one server -----------------------------------------------------------------------------------------


def bench_server(label: str, port: int, args, out: dict) -> None:
    """Run every selected workload against the server on ``port``; fill ``out``."""
    driver = args.driver
    t = time.monotonic()
    if "select" in args.workloads or "insert" in args.workloads:
        n = loadgen.load_table(driver, port, args.rows)
        print(f"[{label}] loaded sbtest1: {n} rows in {time.monotonic() - t:.1f}s", flush=True)
    if "select" in args.workloads:
        for conns in args.conns:
            r = loadgen.run_case("select", conns, driver, port, args.rows, args.duration)
            out[("select", conns)] = r
            print(
                f"[{label}] point select  {conns} conn: {r.rate:9.0f} q/s  p50 {r.p50_ms:.3f} ms  "
                f"p99 {r.p99_ms:.3f} ms  misses {r.misses} errors {r.errors} {r.first_error}",
                flush=True,
            )
    if "insert" in args.workloads:
        for conns in args.conns:
            loadgen.create_insert_table(driver, port)
            r = loadgen.run_case("insert", conns, driver, port, args.rows, args.duration)
            out[("insert", conns)] = r
            print(
                f"[{label}] insert        {conns} conn: {r.rate:9.0f} op/s p50 {r.p50_ms:.3f} ms  "
                f"p99 {r.p99_ms:.3f} ms  errors {r.errors} {r.first_error}",
                flush=True,
            )
    if "select" in args.workloads or "insert" in args.workloads:
        loadgen.drop_tables(driver, port, "sbtest1", "sbinsert")
    if "sysbench" in args.workloads:
        if not sysbench_runner.available():
            print(f"[{label}] sysbench not installed; run: {mariadb_server.INSTALL_HINT}", flush=True)
            return

        def count_hits() -> tuple[int, int]:
            conn = loadgen.connect(driver, port)
            try:
                cur = conn.cursor()
                cur.execute(f"SELECT COUNT(*), SUM(id BETWEEN 1 AND {args.rows}) FROM sbtest1")
                total, hits = cur.fetchone()
                return int(total), int(hits or 0)
            finally:
                conn.close()

        compat = sysbench_runner.compatibility(port, args.rows, count_hits)
        out["sysbench_compat"] = compat
        print(
            f"[{label}] sysbench stock prepare: {'ok' if compat.prepare_ok else 'FAILED'}"
            + "".join(f"\n    {p}" for p in compat.problems)
            + (f"\n    note: {compat.id_note}" if compat.id_note else ""),
            flush=True,
        )
        ok, problems = sysbench_runner.prepare_measured(port, args.rows)
        out["sysbench_prepare_problems"] = problems
        if not ok:
            print(
                f"[{label}] sysbench prepare --auto_inc=off FAILED:" + "".join(f"\n    {p}" for p in problems)
            )
            return
        total, hits = count_hits()
        if hits < args.rows:
            problems.append(
                f"after prepare --auto_inc=off only {hits} of {total} rows have ids 1..{args.rows}"
            )
        for threads in args.conns:
            r = sysbench_runner.run(port, args.rows, threads, int(args.duration))
            out[("sysbench", threads)] = r
            print(
                f"[{label}] sysbench ps   {threads} thr:  {r.qps:9.0f} q/s  avg {r.lat_avg_ms:.2f} ms  "
                f"p95 {r.lat_p95_ms:.2f} ms  ignored errors {r.ignored_errors}"
                + "".join(f"\n    {p}" for p in r.problems),
                flush=True,
            )
            if not r.ok:
                print(r.tail)
        out["sysbench_prepare_problems"] += sysbench_runner.cleanup(port, args.rows)


def with_marmot(tmp: Path, fn) -> None:
    node = _marmot_node(tmp)
    _cleanups.append(node.stop)
    node.start()
    try:
        fn(node)
    finally:
        node.stop()
        if node.stop in _cleanups:
            _cleanups.remove(node.stop)


def with_mariadb(tmp: Path, durable: bool, fn) -> None:
    srv = mariadb_server.MariaDBServer(tmp, durable=durable)
    _cleanups.append(srv.stop)
    try:
        srv.start()
        fn(srv)
    finally:
        srv.stop()
        if srv.stop in _cleanups:
            _cleanups.remove(srv.stop)


# -- profile --------------------------------------------------------------------------------------------


def profile_marmot(tmp: Path, args) -> str:
    if profile_summary.py_spy() is None:
        msg = "py-spy not installed; run: .venv/bin/pip install py-spy"
        print(msg)
        return msg
    kind = args.profile_workload
    raw = RESULTS / ("marmot-point-select.pyspy.txt" if kind == "select" else f"marmot-{kind}.pyspy.txt")
    report: list[str] = []

    def go(node) -> None:
        loadgen.load_table(args.driver, node.mysql_port, args.rows)
        if kind == "insert":
            loadgen.create_insert_table(args.driver, node.mysql_port)
        spy: list[subprocess.Popen] = []

        def attach() -> None:
            p = profile_summary.start_record(node.pid, args.duration, raw, native=args.profile_native)
            spy.append(p)
            _cleanups.append(lambda: p.poll() is None and p.kill())

        r = loadgen.run_case(
            kind,
            args.profile_conns,
            args.driver,
            node.mysql_port,
            args.rows,
            args.duration,
            on_started=attach,
        )
        if spy:
            try:
                _, err = spy[0].communicate(timeout=30)
            except subprocess.TimeoutExpired:
                spy[0].kill()
                _, err = spy[0].communicate()
            if spy[0].returncode != 0:
                report.append(f"py-spy failed ({spy[0].returncode}): {err.decode(errors='replace')[-800:]}")
                return
        rows, total, idle = profile_summary.summarise(raw, args.profile_top)
        incl = profile_summary.inclusive(
            raw,
            [
                "mysql/connection.py:",
                "mysql/packets.py:",
                "mysql/values.py:",
                "mysql/stmt_params.py:",
                "mysql/result_packets.py:",
                "engine/session.py:",
                "sql/lexer.py:",
                "sql/transpiler.py:",
                "mysql/types.py:",
                "lexer.py:normalize",
                "Session._run_plan",
                "_SelectorSocketTransport.write",
                *([":APSWCursor_execute", ":sqlite3_step"] if args.profile_native else []),
            ],
        )
        report.append(
            f"{args.profile_conns}-connection {'point select' if kind == 'select' else 'INSERT'} under py-spy (rate 250 Hz, --idle, --function"
            f"{', --native' if args.profile_native else ''}): "
            f"{r.rate:.0f} ops/s, p50 {r.p50_ms:.3f} ms (profiling slows the node; see the table above "
            f"for unprofiled figures).\n"
        )
        report.append(profile_summary.render(rows, total, idle))
        report.append("\nInclusive share of busy samples (stack contains a frame matching the pattern):\n")
        report.append("| file / function pattern | % of busy |\n|---|---:|")
        report.extend(f"| `{k.rstrip(':')}` | {v:.1f} |" for k, v in incl.items())
        report.append(
            f"\nRaw stacks: `{raw.relative_to(REPO)}` (collapsed format; feed to flamegraph.pl or "
            f"speedscope)."
        )

    with_marmot(tmp, go)
    return "\n".join(report)


# -- report ---------------------------------------------------------------------------------------------


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if a and b else "—"


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if x else "—"


def render(results: dict, args, env: dict) -> str:
    m, d = results.get("marmot", {}), results.get("mariadb", {})
    lines = [
        f"# Marmot vs MariaDB — {env['date']}",
        "",
        f"Machine: {env['cpu']} ({os.cpu_count()} CPUs), {env['os']}. Python {platform.python_version()}, "
        f"client driver `{args.driver}`. Marmot `{env['marmot_rev']}` (single node). {env['mariadb']}. "
        f"{env['sysbench']}.",
        f"Load average when the run started: {env['loadavg']} (other work on the machine skews the figures).",
        f"Each case runs {args.duration:g} s after a 0.5 s warm-up; table `sbtest1` with {args.rows} rows "
        f"(id INT PRIMARY KEY, k INT, c CHAR(120), pad CHAR(60)). Client and server share the machine.",
        f"MariaDB durability: `innodb_flush_log_at_trx_commit={1 if args.mariadb_durable else 2}`"
        + (
            ""
            if args.mariadb_durable
            else " (same class as Marmot's SQLite WAL + synchronous=NORMAL: "
            "survives a process crash, not a power loss)"
        )
        + ".",
        "",
        "| workload | conns | Marmot ops/s | MariaDB ops/s | Marmot / MariaDB | Marmot latency | MariaDB latency |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    names = {
        "select": "point select, COM_QUERY (Python procs)",
        "insert": "INSERT 1 row, autocommit (Python procs)",
        "sysbench": "sysbench oltp_point_select, prepared",
    }
    for kind in ("select", "insert", "sysbench"):
        for conns in args.conns:
            a, b = m.get((kind, conns)), d.get((kind, conns))
            if a is None and b is None:
                continue
            if kind == "sysbench":
                ra, rb = (a.qps if a else 0.0), (b.qps if b else 0.0)
                la = f"avg {a.lat_avg_ms:.2f} / p95 {a.lat_p95_ms:.2f} ms" if a and a.ok else "—"
                lb = f"avg {b.lat_avg_ms:.2f} / p95 {b.lat_p95_ms:.2f} ms" if b and b.ok else "—"
            else:
                ra, rb = (a.rate if a else 0.0), (b.rate if b else 0.0)
                la = f"p50 {a.p50_ms:.3f} / p99 {a.p99_ms:.3f} ms" if a and a.ops else "—"
                lb = f"p50 {b.p50_ms:.3f} / p99 {b.p99_ms:.3f} ms" if b and b.ops else "—"
            lines.append(
                f"| {names[kind]} | {conns} | {_fmt(ra)} | {_fmt(rb)} | {_ratio(ra, rb)} | {la} | {lb} |"
            )
    notes = []
    for label, res in (("Marmot", m), ("MariaDB", d)):
        for key, r in res.items():
            if isinstance(key, tuple) and key[0] != "sysbench" and (r.errors or r.misses):
                notes.append(
                    f"- {label} {key[0]} {key[1]} conn: {r.errors} errors, {r.misses} empty results "
                    f"{r.first_error}"
                )
            if isinstance(key, tuple) and key[0] == "sysbench" and (r.problems or r.ignored_errors):
                notes.append(
                    f"- {label} sysbench {key[1]} thr: ignored errors {r.ignored_errors}; "
                    + "; ".join(r.problems[:5])
                )
        compat = res.get("sysbench_compat")
        if compat is not None:
            status = "ok" if compat.prepare_ok and not compat.problems else "FAILED"
            notes.append(
                f"- {label} sysbench stock `prepare` (AUTO_INCREMENT, bulk INSERT, CREATE INDEX): {status}"
            )
            notes.extend(f"  - `{p}`" for p in compat.problems)
            if compat.id_note:
                notes.append(
                    f"  - {compat.id_note}; the measured sysbench pass therefore uses `--auto_inc=off`"
                )
        for p in res.get("sysbench_prepare_problems", []):
            notes.append(f"- {label} sysbench prepare --auto_inc=off: `{p}`")
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines) + "\n"


def _env(args) -> dict:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        rev = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        rev = rev + ("+dirty src" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        rev = "?"
    bins = mariadb_server.find_binaries()
    return {
        "date": dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "cpu": cpu,
        "os": f"{platform.system()} {platform.release()}",
        "marmot_rev": rev or "?",
        "mariadb": mariadb_server.server_version(bins[1]) if bins else "MariaDB not installed",
        "sysbench": sysbench_runner.version() if sysbench_runner.available() else "sysbench not installed",
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per measured case (default 10)")
    ap.add_argument("--rows", type=int, default=10_000, help="rows in sbtest1 (default 10000)")
    ap.add_argument("--conns", default="1,8", help="client connections/threads per case (default 1,8)")
    ap.add_argument("--servers", default="marmot,mariadb", help="comma list of marmot, mariadb")
    ap.add_argument(
        "--workloads", default="select,insert,sysbench", help="comma list of select, insert, sysbench"
    )
    ap.add_argument("--driver", default="auto", choices=["auto", "mysqlclient", "pymysql"])
    ap.add_argument(
        "--mariadb-durable",
        action="store_true",
        help="MariaDB with innodb_flush_log_at_trx_commit=1 (fsync per commit)",
    )
    ap.add_argument(
        "--profile",
        action="store_true",
        help="afterwards, profile a 1-connection point-select run of Marmot with py-spy",
    )
    ap.add_argument("--profile-top", type=int, default=15)
    ap.add_argument("--profile-conns", type=int, default=1, help="client processes in the profiled run")
    ap.add_argument(
        "--profile-workload",
        default="select",
        choices=["select", "insert"],
        help="workload of the profiled run (default select)",
    )
    ap.add_argument(
        "--profile-native",
        action="store_true",
        help="py-spy --native: show C frames (SQLite, apsw) instead of folding them into Python",
    )
    args = ap.parse_args(argv)
    args.conns = [int(c) for c in args.conns.split(",") if c]
    args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    args.workloads = {w.strip() for w in args.workloads.split(",") if w.strip()}
    args.driver = loadgen.driver_name(args.driver)

    atexit.register(_run_cleanups)
    signal.signal(signal.SIGTERM, _on_signal)
    RESULTS.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="marmot-bench-"))
    _cleanups.insert(0, lambda: shutil.rmtree(tmp, ignore_errors=True))
    env = _env(args)
    results: dict[str, dict] = {}
    started = time.monotonic()
    try:
        if "marmot" in args.servers:
            results["marmot"] = {}
            with_marmot(
                tmp / "marmot", lambda node: bench_server("marmot", node.mysql_port, args, results["marmot"])
            )
        if "mariadb" in args.servers:
            if mariadb_server.find_binaries() is None:
                print(f"[mariadb] not installed, skipped; run: {mariadb_server.INSTALL_HINT}")
            else:
                results["mariadb"] = {}
                with_mariadb(
                    tmp / "mariadb",
                    args.mariadb_durable,
                    lambda srv: bench_server("mariadb", srv.port, args, results["mariadb"]),
                )
        table = render(results, args, env)
        print()
        print(table)
        (RESULTS / "latest.md").write_text(table)
        print(f"written to {(RESULTS / 'latest.md').relative_to(REPO)}")
        if args.profile:
            prof = profile_marmot(tmp / "marmot-profile", args)
            print()
            print(prof)
            (RESULTS / "profile-latest.md").write_text(
                f"# Marmot {args.profile_workload} profile — {env['date']}\n\n{prof}\n"
            )
            print(f"written to {(RESULTS / 'profile-latest.md').relative_to(REPO)}")
    finally:
        _run_cleanups()
    print(f"total time {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as exc:
        print(f"interrupted ({exc}); every started process was stopped", file=sys.stderr)
        sys.exit(130)
