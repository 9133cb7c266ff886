"""Run seeded fault schedules against a 3-node cluster and check the histories.

    python -m tests.chaos.runner --seeds 1,2 --duration 40          # what CI's test runs, roughly
    python -m tests.chaos.runner --schedules 10 --duration 60      # `make chaos`

One schedule: start the cluster (tests/chaos/cluster.py), create the workloads' tables, start the clients
(tests/chaos/workloads.py), play the seeded nemesis steps (tests/chaos/nemesis.py), heal everything,
let the clients run a few seconds more on the healed cluster, stop them, wait until every node holds the
same rows and row versions (anti-entropy's job), dump them, and hand history + final state to the
checker (tests/chaos/checker.py). Each run leaves ``history.jsonl``, ``final.json``, ``report.txt`` and
the node logs in its directory.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.chaos import checker
from tests.chaos.cluster import REPLICA, ChaosCluster
from tests.chaos.nemesis import BY_NAME, NEMESES, REPLICA_NEMESES, schedule
from tests.chaos.workloads import WORKLOADS, History, final_state, setup, start_clients

QUIET_AFTER_HEAL = 3.0  # seconds the clients keep going on the healed cluster
CONVERGE_TIMEOUT = 120.0


@dataclass
class RunResult:
    seed: int
    duration: float
    workdir: Path
    report: checker.Report
    steps: list[dict[str, Any]]
    ops: int
    converge_seconds: float | None
    crashes: list[str]  # failures the checker cannot see: "node-crash: ...", "unhandled-exception: ..."
    capabilities: dict[str, bool]

    @property
    def ok(self) -> bool:
        return self.report.ok and not self.crashes


def _converge(cluster: ChaosCluster, deadline: float) -> tuple[dict[str, Any] | None, float]:
    """Poll the dumps until all three nodes (and the replica, when the run has one) agree; (nodes,
    seconds) or (last dumps, -1) at the deadline."""
    start = time.monotonic()
    last: dict[str, Any] | None = None
    ids: tuple[int | str, ...] = (1, 2, 3, REPLICA) if cluster.replica is not None else (1, 2, 3)
    while time.monotonic() < deadline:
        try:
            last = final_state(cluster, ids=ids)
        except Exception:  # noqa: BLE001 - a node still restarting or catching up; try again
            time.sleep(1.0)
            continue
        if all(last[str(i)] == last["1"] for i in ids):
            return last, time.monotonic() - start
        time.sleep(1.0)
    return last, -1.0


def run_schedule(
    seed: int,
    duration: float,
    workdir: Path,
    nemeses: list[str] | None = None,
    log: Any = print,
    replica: bool = False,
) -> RunResult:
    """Play one seeded schedule and check it. Every process started is stopped before returning.
    ``replica``: a read-only replica follows the cluster throughout (``ChaosCluster``); its final rows and
    versions join the nodes' in the final state, so the convergence and acknowledged-write checks hold
    it to the same standard."""
    workdir.mkdir(parents=True, exist_ok=True)
    cluster = ChaosCluster(workdir / "cluster", replica=replica)
    history = History(workdir / "history.jsonl")
    stop = threading.Event()
    clients: list[Any] = []
    applied_steps: list[dict[str, Any]] = []
    crashes: list[str] = []
    try:
        cluster.start()
        names = [
            n.name
            for n in (*NEMESES, *REPLICA_NEMESES)
            if (not nemeses or n.name in nemeses) and (not n.needs or cluster.capabilities.get(n.needs))
        ]
        steps = schedule(seed, duration, names)
        log(
            f"seed {seed}: {len(steps)} steps over {duration:.0f}s, nemeses {names}, "
            f"capabilities {cluster.capabilities}"
        )
        setup(cluster, history)
        clients = start_clients(cluster, history, stop, seed)
        t0 = time.monotonic()
        for step in steps:
            _sleep_until(t0 + step.at)
            for name in step.nemeses:
                what = BY_NAME[name].start(cluster, _step_rng(seed, step.at, name))
                step.applied.append(what)
                history.log({"type": "nemesis", "phase": "start", "fault": name, "detail": what})
            _sleep_until(t0 + step.at + step.hold)
            for name, what in reversed(list(zip(step.nemeses, step.applied, strict=True))):
                BY_NAME[name].heal(cluster, what)
                history.log({"type": "nemesis", "phase": "heal", "fault": name})
            crashes += _unexpected_exits(cluster, history)
            applied_steps.append(
                {
                    "at": step.at,
                    "hold": step.hold,
                    "faults": dict(zip(step.nemeses, step.applied, strict=True)),
                }
            )
        _sleep_until(t0 + duration)
        cluster.heal_all()
        history.log({"type": "nemesis", "phase": "heal", "fault": "all"})
        time.sleep(QUIET_AFTER_HEAL)
        stop.set()
        for c in clients:
            c.join(15)
        crashes += _unexpected_exits(cluster, history)
        cluster.heal_all()
        cluster.wait_all_alive(60)
        nodes, seconds = _converge(cluster, time.monotonic() + CONVERGE_TIMEOUT)
        final = {
            "converged": seconds >= 0,
            "converge_seconds": round(seconds, 2) if seconds >= 0 else None,
            "workloads": {w.name: w.kind for w in WORKLOADS},
            "nodes": nodes or {},
        }
        (workdir / "final.json").write_text(json.dumps(final))
    finally:
        stop.set()
        for c in clients:
            c.join(10)
        history.close()
        cluster.close()
    report = checker.check_files(workdir / "history.jsonl", workdir / "final.json")
    crashes += _log_faults(workdir)
    ops = (workdir / "history.jsonl").read_text().count('"type":"invoke"')
    result = RunResult(
        seed,
        duration,
        workdir,
        report,
        applied_steps,
        ops,
        final["converge_seconds"],
        crashes,
        dict(cluster.capabilities),
    )
    text = _summary(report, crashes)
    (workdir / "report.txt").write_text(text + "\n")
    (workdir / "steps.json").write_text(json.dumps(applied_steps, indent=1))
    return result


HARNESS_CHECKS = ("node-crash", "unhandled-exception")


def _summary(report: checker.Report, failures: list[str]) -> str:
    """The checker's report with the harness's own checks added, ending in one ``N passed, N failed``."""
    lines = report.summary().rstrip("\n").split("\n")[:-1]  # without the checker's count line
    passed, failed = report.passed, report.failed
    for name in HARNESS_CHECKS:
        mine = [f for f in failures if f.startswith(name + ":")]
        if mine:
            failed += 1
            lines += [f"FAIL {f}" for f in mine]
        else:
            passed += 1
            lines.append(f"PASS {name}")
    return "\n".join(lines + [f"{passed} passed, {failed} failed"])


def _step_rng(seed: int, at: float, name: str) -> random.Random:
    """The randomness of one fault of one step (which node, how much skew): fixed by the seed."""
    return random.Random(f"{seed}/{at}/{name}")


def _sleep_until(t: float) -> None:
    while (left := t - time.monotonic()) > 0:
        time.sleep(min(left, 0.2))


def _unexpected_exits(cluster: ChaosCluster, history: History) -> list[str]:
    """Nodes that died without a kill nemesis: a bug (logged, counted as a failure, restarted)."""
    out = []
    r = cluster.replica
    if r is not None and not cluster.replica_down and r.proc is not None and r.proc.poll() is not None:
        out.append(f"node-crash: the replica exited with status {r.proc.returncode}: {r.log()[-1500:]}")
        history.log({"type": "crash", "node": REPLICA, "status": r.proc.returncode})
        cluster.replica_down = True
        cluster.restart_replica()
    for i, n in cluster.nodes.items():
        if i in cluster.down or n.proc is None or n.proc.poll() is None:
            continue
        msg = f"node-crash: node {i} exited with status {n.proc.returncode}: {n.log()[-1500:]}"
        history.log({"type": "crash", "node": i, "status": n.proc.returncode})
        out.append(msg)
        cluster.down.add(i)
        cluster.free_disk(i)
        cluster.restart(i)
    return out


# Lines a node logs only when its own code let an exception escape: always a bug, whatever the fault.
_UNHANDLED = ("Task exception was never retrieved", "Exception in callback", "Unhandled exception")


def _log_faults(workdir: Path) -> list[str]:
    """Unhandled exceptions in the node logs (asyncio's last-resort handler), one line per kind."""
    out = []
    for log in sorted(workdir.glob("cluster/n*/node-*.log")):
        text = log.read_text(errors="replace")
        for marker in _UNHANDLED:
            if (count := text.count(marker)) and (at := text.find(marker)) >= 0:
                out.append(
                    f"unhandled-exception: {log.relative_to(workdir)}: {count} x '{marker}', first: "
                    f"{text[at : at + 600]!r}"
                )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", help="comma-separated seeds (default: 1..--schedules)")
    ap.add_argument("--schedules", type=int, default=1)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of faults per schedule")
    ap.add_argument("--nemeses", help="comma-separated nemesis names (default: all this machine supports)")
    ap.add_argument("--out", type=Path, help="directory for the runs (default: a new temporary one)")
    ap.add_argument(
        "--replica",
        action="store_true",
        help="also run a read-only replica (killed by the replica-kill nemesis); its final state must "
        "equal the nodes'",
    )
    args = ap.parse_args(argv)
    # SIGTERM (a CI timeout, a kill) unwinds like Ctrl-C, so every node is stopped and every tmpfs unmounted
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else list(range(1, args.schedules + 1))
    out = args.out or Path(tempfile.mkdtemp(prefix="marmot-chaos-"))
    results = []
    for seed in seeds:
        r = run_schedule(
            seed,
            args.duration,
            out / f"seed-{seed}",
            args.nemeses.split(",") if args.nemeses else None,
            replica=args.replica,
        )
        results.append(r)
        print((r.workdir / "report.txt").read_text())
    print("| seed | faults (s) | ops | converged in (s) | checks | result |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r.seed} | {r.duration:.0f} | {r.ops} | {r.converge_seconds} | "
            f"{(r.workdir / 'report.txt').read_text().strip().splitlines()[-1]} | {'ok' if r.ok else 'FAIL'} |"
        )
    print(f"runs in {out}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
