"""Read-only replicas: how fast a replica catches up, and how far behind it stays under write load.

What it measures (real processes on 127.0.0.1, ``marmot.testing``: a cluster and replica processes):

1. **Catch-up by log replay.** A replica bootstraps a small database, is stopped, the cluster commits
   ``--txns`` transactions of ``--rows`` rows each while it is away, and the replica is started again: it
   resumes from its cursor and replays the source's log. Figure: rows applied per second, from the first
   applied transaction to the last (sampled from ``/admin/replica/status`` every 20 ms), and the time from
   process start to caught up.
2. **Bootstrap by snapshot.** A second, empty replica of the same database: rows per second from start
   to caught up (snapshot export + transfer + install, then the tail of the log).
3. **Lag under load.** ``bench/replicated_load.py`` (YCSB-style transactions on every node, its own
   client processes) runs against the cluster while a probe commits one marker row every 200 ms on a
   cluster node and polls the replica until the row is there. Figure: lag p50 / p99 / max (commit
   acknowledged on the cluster -> visible on the replica), and the load's own throughput.

It prints figures; it never asserts a speed. ``docs/benchmarks.md`` has the results on this machine kind.

    .venv/bin/python bench/replica_catchup.py                       # about two minutes
    .venv/bin/python bench/replica_catchup.py --txns 2000 --rows 50 --load-seconds 20
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pymysql

from marmot.testing import LocalCluster, NodeProcess, admin_json
from marmot.testing.replicas import make_replica

BENCH = Path(__file__).resolve().parent
DB = "catchup"


def connect(node: NodeProcess, db: str | None = DB) -> pymysql.connections.Connection:
    return pymysql.connect(
        host="127.0.0.1", port=node.mysql_port, user="root", password="", database=db, autocommit=True
    )


def status(replica: NodeProcess) -> dict[str, Any]:
    return admin_json(replica, "/admin/replica/status")


def wait_streaming(replica: NodeProcess, want_rows: int, timeout: float = 600) -> float:
    """Seconds until the replica is STREAMING and holds ``want_rows`` rows of ``catchup.t``."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            if status(replica)["state"] == "STREAMING":
                conn = connect(replica)
                try:
                    cur = conn.cursor()
                    cur.execute("SELECT COUNT(*) FROM t")
                    if cur.fetchone()[0] >= want_rows:
                        return time.monotonic() - t0
                finally:
                    conn.close()
        except (OSError, pymysql.err.MySQLError):
            pass
        time.sleep(0.02)
    raise RuntimeError(f"the replica did not catch up within {timeout:.0f}s:\n{replica.log()}")


def write_rows(nodes: list[NodeProcess], txns: int, rows: int, first_id: int, clients: int = 4) -> None:
    """``txns`` transactions of ``rows`` rows each (multi-row INSERTs), from ``clients`` threads."""

    def client(c: int) -> None:
        conn = connect(nodes[c % len(nodes)])
        cur = conn.cursor()
        for t in range(c, txns, clients):
            base = first_id + t * rows
            values = ", ".join(f"({base + r}, {r}, REPEAT('p', 100))" for r in range(rows))
            cur.execute(f"INSERT INTO t (id, k, pad) VALUES {values}")
        conn.close()

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()


def catch_up_by_log(cl: LocalCluster, work: Path, txns: int, rows: int) -> dict[str, Any]:
    replica = make_replica(work / "replay", [cl.node(1)], node_id=51)
    try:
        replica.start()
        wait_streaming(replica, 1)
        replica.stop()  # SIGTERM: it resumes from its cursor later
        t0 = time.monotonic()
        write_rows(cl.nodes, txns, rows, first_id=1000)
        load_s = time.monotonic() - t0
        started = time.monotonic()
        replica.start()
        samples: list[tuple[float, int]] = []
        while True:
            s = status(replica)
            samples.append((time.monotonic(), int(s["pull"].get("applied", 0))))
            if samples[-1][1] >= txns and all(d["behind_txns"] == 0 for d in s["databases"]):
                break
            if time.monotonic() - started > 600:
                raise RuntimeError("catch-up did not finish in 10 minutes")
            time.sleep(0.02)
        first = next((t for t, a in samples if a > 0), samples[-1][0])
        done = samples[-1][0]
        applied = samples[-1][1]
        snapshots = int(status(replica)["pull"].get("snapshots", 0))
    finally:
        replica.stop()
    return {
        "txns": applied,
        "rows": applied * rows,
        "replay_seconds": round(done - first, 3),
        "rows_per_second": round(applied * rows / max(done - first, 1e-6)),
        "txns_per_second": round(applied / max(done - first, 1e-6)),
        "start_to_caught_up_seconds": round(done - started, 3),
        "snapshots": snapshots,
        "cluster_load_seconds": round(load_s, 2),
    }


def bootstrap_by_snapshot(cl: LocalCluster, work: Path, total_rows: int) -> dict[str, Any]:
    replica = make_replica(work / "snapshot", [cl.node(2)], node_id=52)
    try:
        started = time.monotonic()
        replica.start()
        wait_streaming(replica, total_rows)
        seconds = time.monotonic() - started
        snapshots = int(status(replica)["pull"].get("snapshots", 0))
    finally:
        replica.stop()
    return {
        "rows": total_rows,
        "seconds": round(seconds, 3),
        "rows_per_second": round(total_rows / seconds),
        "snapshots": snapshots,
    }


def lag_under_load(cl: LocalCluster, work: Path, seconds: float, clients: int) -> dict[str, Any]:
    replica = make_replica(work / "lag", [cl.node(1)], node_id=53)
    hosts = ",".join(f"127.0.0.1:{n.mysql_port}" for n in cl.nodes)
    lags: list[float] = []
    try:
        replica.start()
        wait_streaming(replica, 1)
        setup = connect(cl.node(1))
        setup.cursor().execute("CREATE TABLE IF NOT EXISTS probe (id INT PRIMARY KEY, at DOUBLE)")
        setup.close()
        time.sleep(1.5)  # the replica takes the new table up with its next pull
        out_json = work / "load.json"
        load = subprocess.Popen(
            [
                sys.executable,
                str(BENCH / "replicated_load.py"),
                "--hosts",
                hosts,
                "--records",
                "2000",
                "--duration",
                str(seconds),
                "--clients",
                str(clients),
                "--no-verify",
                "--drop",
                "--json",
                str(out_json),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        writer, reader = connect(cl.node(2)), connect(replica)
        i = 0
        try:
            time.sleep(3)  # past the load phase's start
            while load.poll() is None and i < 10_000:
                i += 1
                writer.cursor().execute(f"INSERT INTO probe VALUES ({i}, {time.time()})")
                acked = time.monotonic()
                cur = reader.cursor()
                while time.monotonic() - acked < 30:
                    cur.execute(f"SELECT 1 FROM probe WHERE id = {i}")
                    if cur.fetchone():
                        lags.append(time.monotonic() - acked)
                        break
                    time.sleep(0.002)
                time.sleep(0.2)
        finally:
            writer.close()
            reader.close()
        output, _ = load.communicate(timeout=600)
        figures = json.loads(out_json.read_text()) if out_json.exists() else {}
    finally:
        replica.stop()
    lags.sort()

    def pct(p: float) -> float:
        return round(lags[min(len(lags) - 1, int(p * len(lags)))] * 1000, 1) if lags else float("nan")

    run = figures.get("run") or {} if isinstance(figures, dict) else {}
    return {
        "probes": len(lags),
        "lag_ms_p50": pct(0.50),
        "lag_ms_p99": pct(0.99),
        "lag_ms_max": round(lags[-1] * 1000, 1) if lags else float("nan"),
        "lag_ms_mean": round(statistics.mean(lags) * 1000, 1) if lags else float("nan"),
        "load_txns_per_second": run.get("txn_per_s"),
        "load_ops_per_second": run.get("ops_per_s"),
        "load_output_tail": output.strip().splitlines()[-12:],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=3, help="cluster nodes (%(default)s)")
    ap.add_argument("--txns", type=int, default=3000, help="transactions written while the replica is away")
    ap.add_argument("--rows", type=int, default=20, help="rows per transaction (%(default)s)")
    ap.add_argument("--load-seconds", type=float, default=20.0, help="replicated_load.py run phase")
    ap.add_argument("--load-clients", type=int, default=8, help="replicated_load.py client processes")
    ap.add_argument("--skip-lag", action="store_true", help="only the catch-up figures")
    ap.add_argument("--json", type=Path, help="write the figures to this file")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="marmot-replica-bench-"))
    out: dict[str, Any] = {"nodes": args.nodes}
    with LocalCluster(args.nodes, work / "cluster") as cl:
        conn = connect(cl.node(1), None)
        conn.cursor().execute(f"CREATE DATABASE {DB}")
        conn.cursor().execute(f"CREATE TABLE {DB}.t (id INT PRIMARY KEY, k INT, pad VARCHAR(100))")
        conn.cursor().execute(f"INSERT INTO {DB}.t VALUES (1, 1, 'first')")
        conn.close()
        out["replay"] = catch_up_by_log(cl, work, args.txns, args.rows)
        print(f"catch-up by log replay: {json.dumps(out['replay'])}", flush=True)
        out["snapshot"] = bootstrap_by_snapshot(cl, work, args.txns * args.rows + 1)
        print(f"bootstrap by snapshot: {json.dumps(out['snapshot'])}", flush=True)
        if not args.skip_lag:
            out["lag"] = lag_under_load(cl, work, args.load_seconds, args.load_clients)
            print(
                f"lag under load: {json.dumps({k: v for k, v in out['lag'].items() if k != 'load_output_tail'})}"
            )
    r, s = out["replay"], out["snapshot"]
    print()
    print("| figure | value |")
    print("|---|---|")
    print(
        f"| catch-up by log replay ({r['txns']} txns x {args.rows} rows) | {r['rows_per_second']:,} rows/s ({r['txns_per_second']:,} txns/s); {r['start_to_caught_up_seconds']} s from start to caught up |"
    )
    print(
        f"| bootstrap by snapshot ({s['rows']} rows) | {s['rows_per_second']:,} rows/s; {s['seconds']} s from start to caught up |"
    )
    if "lag" in out:
        lag = out["lag"]
        print(
            f"| lag under replicated_load.py ({args.load_clients} clients, {args.load_seconds:.0f} s; "
            f"{lag['probes']} probes) | p50 {lag['lag_ms_p50']} ms, p99 {lag['lag_ms_p99']} ms, max {lag['lag_ms_max']} ms |"
        )
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
