"""Point-read latency per read level on a 3-node cluster under the replicated load.

What it measures: what a client pays for a read at ``LOCAL_ONE`` (the node's own copy), at ``QUORUM``
(a read barrier first: the node asks its peers for the end of their commit logs and pulls what it lacks,
docs/replication.md "Read consistency"), and for a read-your-writes read with a causal token (a write
through one node, its ``@@marmot_last_commit_ts``, then ``SET marmot_read_after = '<token>'`` + the read on
another node: the SET+read pair is timed, docs/replication.md "Causal tokens"). Latency is per statement
as the client sees it: p50 / p90 / p99, count and errors per level, and the QUORUM / LOCAL_ONE p50 ratio
(issue #16's target: at most 2x).

Why under load: a barrier is a round trip to a peer's event loop (and, for a transaction this node has
not applied yet, a pull); on an idle cluster that is nearly free, on a loaded one it waits for two busy
event loops. So the tool
starts a cluster (``marmot.testing.LocalCluster``, the launcher the tests and bench/replicated_load.py
use), runs bench/replicated_load.py against it as a subprocess (``--hosts``: its load phase, then its
mixed run phase for the whole measurement), and measures reads from separate reader processes while that
run phase is going. Reads go to ``SELECT field0..field9 FROM benchmarks WHERE id = ?`` on the load's
keys, each reader cycling over the nodes.

By default the levels are *interleaved*: every reader runs LOCAL_ONE, QUORUM, causal, LOCAL_ONE, ... so
all levels share the same moments of the load (on a shared 2-core machine the load varies from second to
second, which would otherwise move the ratio); ``--sequential`` measures one level after the other, each
for ``--seconds``. It prints figures; it never asserts a speed. Every process it starts (nodes, the load
subprocess, reader processes) is stopped by its PID at the end, also on Ctrl-C / SIGTERM.

    .venv/bin/python bench/read_latency.py                      # 3 nodes, 15 s per level, 16 load clients
    .venv/bin/python bench/read_latency.py --seconds 5 --load-clients 4 --json bench/results/reads.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from replicated_load import (  # noqa: E402  (bench/ is not a package)
    CLUSTER_SECRET,
    CLUSTER_TIMERS,
    FIELDS,
    KEY_FORMAT,
    Driver,
    _summary,
    error_text,
    fmt_int,
)
from workers import run_workers  # noqa: E402  (bench/ is not a package)

LEVELS = ("LOCAL_ONE", "QUORUM", "CAUSAL")
MAX_MESSAGES = 5
# the causal level's own rows: keys below every ``rec_%012d`` key of the load ('b' < 'e'), so the load's
# "highest key" query and its random keys never meet them, and the load's writes never conflict with ours
CAUSAL_KEY = "rb_reader_%03d"


# per node, from GET /admin/cluster/replication: barriers run, and per peer answer whether it needed nothing
# more (fast), a wait for this node's own COMMIT (waited) or a pull (pulls)
BARRIER_KEYS = ("barriers", "fast", "waited", "pulls", "applied", "failed")


def _barrier_counters(cluster: Any) -> dict[str, dict[str, int]]:
    """Each node's read-barrier counters (empty for a node that does not report them)."""
    from marmot.testing import admin_json

    out: dict[str, dict[str, int]] = {}
    for i, node in enumerate(cluster.nodes, start=1):
        try:
            counters = admin_json(node, "/admin/cluster/replication", secret=CLUSTER_SECRET)["read_barriers"]
        except Exception:  # an older node without the counters, or one that exited
            continue
        out[str(i)] = {k: int(counters.get(k, 0)) for k in BARRIER_KEYS}
    return out


# -- reader (one process per reader) ----------------------------------------------------------------------


@dataclass
class ReaderConfig:
    reader: int
    endpoints: list[tuple[str, int]]
    driver: str
    user: str
    password: str
    database: str
    table: str
    levels: tuple[str, ...]  # run in turn, one statement (or causal pair) each
    seconds: float
    max_key: int
    quorum_via: str  # "set": SET marmot_read_consistency per session; "hint": a hint per statement
    seed: int


def _new_stats() -> dict[str, Any]:
    return {
        "lat": {lvl: array("q") for lvl in LEVELS},
        "write_lat": array("q"),  # the causal level's write + token fetch (not part of its figure)
        "errors": dict.fromkeys(LEVELS, 0),
        "stale": 0,  # causal reads that did not see the token's write: a correctness failure
        "misses": 0,  # LOCAL_ONE / QUORUM reads of a key the load had deleted (not an error)
        "messages": [],
        "per_node": {lvl: [0] * 64 for lvl in LEVELS},
        "fatal": "",
    }


class Reader:
    """Connections per node for each level; one measured operation per call of ``step``."""

    def __init__(self, cfg: ReaderConfig, stats: dict[str, Any]) -> None:
        self.cfg = cfg
        self.stats = stats
        self.driver = Driver(cfg.driver)
        self.rng = random.Random(cfg.seed * 7919 + cfg.reader)
        n = len(cfg.endpoints)
        self.conns: dict[tuple[str, int], Any] = {}
        self.turn = dict.fromkeys(LEVELS, cfg.reader % n)  # node of the level's next statement
        cols = ",".join(FIELDS)
        self.read_sql = f"SELECT {cols} FROM {cfg.table} WHERE id=%s"
        self.hint_sql = f"SELECT /*+ MARMOT_CONSISTENCY(QUORUM) */ {cols} FROM {cfg.table} WHERE id=%s"
        self.causal_key = CAUSAL_KEY % cfg.reader
        self.causal_seq = 0

    def conn(self, role: str, node: int) -> Any:
        """One connection per (role, node); a session setting is made once when it opens."""
        key = (role, node)
        c = self.conns.get(key)
        if c is None:
            cfg = self.cfg
            c = self.driver.connect(cfg.endpoints[node], cfg.user, cfg.password, cfg.database)
            cur = c.cursor()
            if role == "LOCAL_ONE":
                cur.execute("SET marmot_read_consistency = 'LOCAL_ONE'")
            elif role == "QUORUM" and cfg.quorum_via == "set":
                cur.execute("SET marmot_read_consistency = 'QUORUM'")
            self.conns[key] = c
        return c

    def drop(self, role: str, node: int) -> None:
        c = self.conns.pop((role, node), None)
        if c is not None:
            with contextlib.suppress(Exception):
                c.close()

    def close(self) -> None:
        for role, node in list(self.conns):
            self.drop(role, node)

    def _next_node(self, level: str) -> int:
        node = self.turn[level]
        self.turn[level] = (node + 1) % len(self.cfg.endpoints)
        return node

    def _error(self, level: str, role: str, node: int, err: BaseException) -> None:
        self.stats["errors"][level] += 1
        msgs = self.stats["messages"]
        text = f"{level} node {node + 1}: {error_text(err)}"
        if len(msgs) < MAX_MESSAGES and text not in msgs:
            msgs.append(text)
        self.drop(role, node)
        time.sleep(0.01)

    def prepare(self) -> None:
        """Open every connection and create this reader's causal row before the clock starts."""
        n = len(self.cfg.endpoints)
        for level in self.cfg.levels:
            for node in range(n):
                if level == "CAUSAL":
                    self.conn("causal-write", node)
                    self.conn("causal-read", node)
                else:
                    self.conn(level, node)
        if "CAUSAL" in self.cfg.levels:
            cur = self.conn("causal-write", 0).cursor()
            cur.execute(
                f"INSERT OR REPLACE INTO {self.cfg.table} (id, field0) VALUES (%s, %s)",
                (self.causal_key, "0"),
            )

    def step(self, level: str) -> None:
        if level == "CAUSAL":
            self._causal()
            return
        node = self._next_node(level)
        sql = self.hint_sql if level == "QUORUM" and self.cfg.quorum_via == "hint" else self.read_sql
        key = KEY_FORMAT % self.rng.randint(1, self.cfg.max_key)
        clock = time.perf_counter_ns
        try:
            cur = self.conn(level, node).cursor()
            t = clock()
            cur.execute(sql, (key,))
            rows = cur.fetchall()
            ns = clock() - t
        except Exception as err:
            self._error(level, level, node, err)
            return
        self.stats["lat"][level].append(ns)
        self.stats["per_node"][level][node] += 1
        if not rows:
            self.stats["misses"] += 1

    def _causal(self) -> None:
        """Write on node w, take its token, then time SET marmot_read_after + the read on node w+2."""
        n = len(self.cfg.endpoints)
        w = self._next_node("CAUSAL")
        r = (w + 2) % n if n > 2 else (w + 1) % n  # 3 nodes: 1 -> 3, 2 -> 1, 3 -> 2
        self.causal_seq += 1
        value = f"{self.cfg.reader}.{self.causal_seq}"
        clock = time.perf_counter_ns
        try:
            t = clock()
            cur = self.conn("causal-write", w).cursor()
            cur.execute(f"UPDATE {self.cfg.table} SET field0=%s WHERE id=%s", (value, self.causal_key))
            cur.execute("SELECT @@marmot_last_commit_ts")
            token = str(cur.fetchone()[0])
            self.stats["write_lat"].append(clock() - t)
        except Exception as err:
            self._error("CAUSAL", "causal-write", w, err)
            return
        try:
            cur = self.conn("causal-read", r).cursor()
            t = clock()
            cur.execute(f"SET marmot_read_after = '{token}'")
            cur.execute(f"SELECT field0 FROM {self.cfg.table} WHERE id=%s", (self.causal_key,))
            rows = cur.fetchall()
            ns = clock() - t
        except Exception as err:
            self._error("CAUSAL", "causal-read", r, err)
            return
        self.stats["lat"]["CAUSAL"].append(ns)
        self.stats["per_node"]["CAUSAL"][r] += 1
        if not rows or str(rows[0][0]) != value:
            self.stats["stale"] += 1
            msgs = self.stats["messages"]
            if len(msgs) < MAX_MESSAGES:
                msgs.append(f"CAUSAL node {r + 1}: read {rows!r} after token {token}, wrote {value!r}")


def _reader(cfg: ReaderConfig, start_ev: Any, start_at: Any, out: Any) -> None:
    # The parent owns Ctrl-C and cleanup; a reader just ends on SIGTERM (the parent terminates it by PID).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    stats = _new_stats()
    reader = None
    ready_sent = False
    try:
        reader = Reader(cfg, stats)
        reader.prepare()
        out.put(("ready", cfg.reader))
        ready_sent = True
        if not start_ev.wait(120):
            raise TimeoutError("no start signal")
        t0 = start_at.value
        while time.monotonic() < t0:
            time.sleep(0.0005)
        t_end = t0 + cfg.seconds
        levels, i = cfg.levels, 0
        while time.monotonic() < t_end:
            reader.step(levels[i % len(levels)])
            i += 1
    except Exception as err:
        stats["fatal"] = f"reader {cfg.reader}: {error_text(err)}"
        stats["messages"].append(stats["fatal"])
    finally:
        if reader is not None:
            reader.close()
    if not ready_sent:
        out.put(("ready", cfg.reader))
    out.put(("result", stats))


def run_readers(base: ReaderConfig, readers: int) -> dict[str, Any]:
    """``readers`` reader processes from one start instant for ``base.seconds``; merged figures."""
    configs = [ReaderConfig(**{**base.__dict__, "reader": i}) for i in range(readers)]
    results, _ = run_workers(_reader, configs)
    total = _new_stats()
    for r in results:
        for lvl in LEVELS:
            total["lat"][lvl].extend(r["lat"][lvl])
            total["errors"][lvl] += r["errors"][lvl]
            total["per_node"][lvl] = [
                a + b for a, b in zip(total["per_node"][lvl], r["per_node"][lvl], strict=True)
            ]
        total["write_lat"].extend(r["write_lat"])
        for k in ("stale", "misses"):
            total[k] += r[k]
        for msg in r["messages"]:
            if len(total["messages"]) < 2 * MAX_MESSAGES and msg not in total["messages"]:
                total["messages"].append(msg)
    if len(results) < readers:
        total["messages"].append(f"{readers - len(results)} reader process(es) returned no result")
    return total


def level_report(stats: dict[str, Any], level: str, seconds: float, nodes: int) -> dict[str, Any]:
    s = _summary(stats["lat"][level])
    return {
        **s,
        "errors": stats["errors"][level],
        "per_second": round(s["count"] / seconds, 1) if seconds else 0.0,
        "per_node": stats["per_node"][level][:nodes],
    }


# -- the load (bench/replicated_load.py as a subprocess) ---------------------------------------------------


class Load:
    """bench/replicated_load.py against ``--hosts``: load phase, then run phase; stopped by its PID."""

    def __init__(self, endpoints: list[tuple[str, int]], args: argparse.Namespace, duration: float) -> None:
        fd, name = tempfile.mkstemp(prefix="marmot-read-latency-load-", suffix=".json")
        os.close(fd)
        self.json_path = Path(name)
        self.cmd = [
            sys.executable,
            str(BENCH / "replicated_load.py"),
            "--hosts",
            ",".join(f"{h}:{p}" for h, p in endpoints),
            "--records",
            str(args.records),
            "--duration",
            f"{duration:.1f}",
            "--clients",
            str(args.load_clients),
            "--workload",
            args.workload,
            "--driver",
            args.driver,
            "--no-verify",
            "--json",
            str(self.json_path),
        ]
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self.running = threading.Event()  # its run phase has begun
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("run:"):
                self.running.set()

    def wait_running(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.running.wait(0.5):
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError("the load exited before its run phase:\n" + "\n".join(self.lines[-20:]))
            if time.monotonic() > deadline:
                raise RuntimeError(f"the load's run phase did not begin within {timeout:.0f} s")

    def finish(self, timeout: float) -> dict[str, Any]:
        """Wait for the load to end by itself (it writes its figures), else stop it by PID."""
        if self.proc is not None:
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.stop()
        if self._reader is not None:
            self._reader.join(timeout=5)
        with contextlib.suppress(OSError, ValueError):
            return json.loads(self.json_path.read_text())
        return {}

    def stop(self) -> None:
        """SIGTERM (it stops its client processes by PID on the way out), then SIGKILL."""
        p = self.proc
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)

    def cleanup(self) -> None:
        self.stop()
        self.json_path.unlink(missing_ok=True)


# -- output -----------------------------------------------------------------------------------------------


def machine_facts() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    commit = ""
    with contextlib.suppress(Exception):
        commit = subprocess.run(
            ["git", "-C", str(BENCH), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": commit,
    }


def print_table(levels: dict[str, dict[str, Any]], ratio: float | None) -> None:
    print(
        f"\n   {'level':<12}{'count':>9}{'per s':>9}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}{'errors':>8}"
    )
    for name, s in levels.items():
        if not s.get("count"):
            print(f"   {name:<12}{0:>9}{'':>9}{'-':>9}{'-':>9}{'-':>9}{'-':>9}{s['errors']:>8}")
            continue
        print(
            f"   {name:<12}{fmt_int(s['count']):>9}{s['per_second']:>9.1f}{s['p50']:>9.2f}{s['p90']:>9.2f}"
            f"{s['p99']:>9.2f}{s['max']:>9.2f}{s['errors']:>8}"
        )
    if ratio is not None:
        verdict = "within" if ratio <= 2.0 else "ABOVE"
        print(f"\n   QUORUM / LOCAL_ONE p50 = {ratio:.2f}x ({verdict} the 2x target)")


# -- main -------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=3, help="nodes of the local cluster (%(default)s)")
    p.add_argument("--seconds", type=float, default=15.0, help="measured seconds per level (%(default)s)")
    p.add_argument(
        "--sequential", action="store_true", help="one level after the other instead of interleaved"
    )
    p.add_argument(
        "--levels",
        default=",".join(LEVELS),
        help="levels to measure, comma-separated, of " + ", ".join(LEVELS) + " (all)",
    )
    p.add_argument("--readers", type=int, default=3, help="reader processes (%(default)s)")
    p.add_argument(
        "--quorum-via",
        choices=("set", "hint"),
        default="set",
        help="QUORUM by SET marmot_read_consistency per session or by a hint per statement (%(default)s)",
    )
    p.add_argument("--records", type=int, default=10_000, help="rows the load phase inserts (%(default)s)")
    p.add_argument(
        "--load-clients", type=int, default=16, help="client processes of the replicated load (%(default)s)"
    )
    p.add_argument(
        "--workload", default="mixed", help="replicated_load.py --workload of the load (%(default)s)"
    )
    p.add_argument("--no-load", action="store_true", help="measure on an idle cluster (table loaded only)")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of load before measuring (%(default)s)")
    p.add_argument("--driver", choices=("auto", "mysqlclient", "pymysql"), default="auto")
    p.add_argument("--keep-data", action="store_true", help="keep the cluster's data dir and logs")
    p.add_argument("--json", type=Path, default=None, help="write every figure to this JSON file")
    p.add_argument("--seed", type=int, default=None)
    args = p.parse_args(argv)
    if args.nodes < 2 or args.readers < 1 or args.seconds <= 0 or args.records < 1:
        p.error("--nodes >= 2, --readers >= 1, --seconds > 0, --records >= 1")
    args.levels = tuple(x.strip().upper() for x in args.levels.split(",") if x.strip())
    if not args.levels or set(args.levels) - set(LEVELS):
        p.error(f"--levels: choose from {', '.join(LEVELS)}")
    if args.seed is None:
        args.seed = int(time.time() * 1000) & 0x7FFFFFFF
    return args


def _on_signal(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    driver = Driver(args.driver)
    report: dict[str, Any] = {
        "tool": "bench/read_latency.py",
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "driver": driver.name,
        "machine": machine_facts(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    m = report["machine"]
    print(
        f"machine: {m['cpus']} cpu(s) {m['cpu']}, load average {m['loadavg_at_start']}, "
        f"python {m['python']}, commit {m['commit']}"
    )
    cluster = None
    load: Load | None = None
    failures: list[str] = []
    phases = [(lvl,) for lvl in args.levels] if args.sequential else [args.levels]
    window = args.seconds * len(args.levels)  # interleaved: the levels share the whole window
    try:
        from marmot.testing import LocalCluster

        t = time.monotonic()
        cluster = LocalCluster(
            args.nodes,
            consistency="QUORUM",
            secret=CLUSTER_SECRET,
            timers=CLUSTER_TIMERS,
            logging_extra="verbose = false\n",
            start_timeout=30,
            keep_dir=args.keep_data,
        )
        cluster.start(wait=False)
        cluster.wait_all_alive()
        endpoints = cluster.mysql_endpoints()
        report["cluster"] = {"nodes": args.nodes, "pids": cluster.pids(), "endpoints": endpoints}
        print(f"cluster: {args.nodes} nodes ALIVE after {time.monotonic() - t:.1f} s; pids {cluster.pids()}")

        # the load: its load phase fills the table, its run phase lasts the whole measurement
        load_seconds = args.warmup + window + 5.0 * len(phases) + 2.0
        load = Load(endpoints, args, 1.0 if args.no_load else load_seconds)
        print(
            f"load: bench/replicated_load.py --hosts ... --records {args.records} --clients {args.load_clients} "
            f"--workload {args.workload} ({'1 s run, then idle' if args.no_load else f'{load_seconds:.0f} s run'})",
            flush=True,
        )
        load.start()
        load.wait_running(timeout=600)
        if args.no_load:
            report["load"] = load.finish(timeout=60)
        else:
            time.sleep(args.warmup)

        base = ReaderConfig(
            reader=0,
            endpoints=endpoints,
            driver=driver.name,
            user="root",
            password="",
            database="marmot",
            table="benchmarks",
            levels=args.levels,
            seconds=window,
            max_key=args.records,
            quorum_via=args.quorum_via,
            seed=args.seed,
        )
        merged = _new_stats()
        elapsed = dict.fromkeys(LEVELS, 0.0)
        for levels in phases:
            seconds = args.seconds if args.sequential else window
            print(
                f"reads: {', '.join(levels)} ({'interleaved, ' if len(levels) > 1 else ''}{seconds:g} s, "
                f"{args.readers} reader processes) ...",
                flush=True,
            )
            base.levels, base.seconds = levels, seconds
            stats = run_readers(base, args.readers)
            for lvl in levels:
                merged["lat"][lvl].extend(stats["lat"][lvl])
                merged["errors"][lvl] += stats["errors"][lvl]
                merged["per_node"][lvl] = stats["per_node"][lvl]
                elapsed[lvl] += seconds / len(levels)
            merged["write_lat"].extend(stats["write_lat"])
            merged["stale"] += stats["stale"]
            merged["misses"] += stats["misses"]
            merged["messages"].extend(stats["messages"])
        levels_out = {lvl: level_report(merged, lvl, elapsed[lvl], args.nodes) for lvl in args.levels}
        local, quorum = levels_out.get("LOCAL_ONE", {}), levels_out.get("QUORUM", {})
        ratio = round(quorum["p50"] / local["p50"], 2) if local.get("count") and quorum.get("count") else None
        report["levels"] = levels_out
        report["quorum_over_local_one_p50"] = ratio
        report["causal_write_ms"] = _summary(merged["write_lat"])
        report["causal_stale"] = merged["stale"]
        report["read_misses"] = merged["misses"]
        report["messages"] = merged["messages"]
        report["read_barriers"] = _barrier_counters(cluster)
        if not args.no_load:
            report["load"] = load.finish(timeout=window + 120)
        run = report.get("load", {}).get("run", {})
        print_table(levels_out, ratio)
        w = report["causal_write_ms"]
        if w.get("count"):
            print(
                f"   causal write + token (not in CAUSAL's figure): p50 {w['p50']:.2f} ms, p99 {w['p99']:.2f} ms; "
                f"stale causal reads: {merged['stale']}"
            )
        if run:
            print(
                f"   load meanwhile: {fmt_int(run['ops_per_s'])} ops/s, {run['txn_per_s']:,.1f} txn/s "
                f"({args.load_clients} clients, {args.workload}), errors after retries {run['errors_total']}"
            )
        if report["read_barriers"]:
            totals = {k: sum(c.get(k, 0) for c in report["read_barriers"].values()) for k in BARRIER_KEYS}
            print("   read barriers on the nodes: " + ", ".join(f"{k} {v:,}" for k, v in totals.items()))
        for msg in merged["messages"]:
            print(f"   ! {msg}")
        if merged["stale"]:
            failures.append(f"{merged['stale']} causal read(s) did not see the token's write")
        if any(s["errors"] for s in levels_out.values()):
            failures.append("read errors: " + ", ".join(f"{k} {v['errors']}" for k, v in levels_out.items()))
        if cluster.dead_nodes():
            failures.append(f"node(s) {cluster.dead_nodes()} exited during the run")
    except KeyboardInterrupt:
        print("\ninterrupted: stopping readers, load and nodes", file=sys.stderr)
        failures.append("interrupted")
        return 130
    finally:
        if load is not None:
            load.cleanup()
        if cluster is not None:
            for node in cluster.dead_nodes():
                print(f"node {node} had exited; last log lines:\n{cluster.log_tail(node)}", file=sys.stderr)
            cluster.stop()
        report["failures"] = failures
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\nresult: {'FAIL: ' + '; '.join(failures) if failures else 'OK'}")
    if args.json:
        print(f"figures written to {args.json}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
