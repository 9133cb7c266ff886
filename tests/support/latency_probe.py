"""A separate process that measures how responsive a node is: a fresh connection and ``SELECT 1``, again
and again, with the node's RSS sampled alongside.

Why a process of its own: the overload tests load the node from many threads of the test process; a
probe thread there would measure the test's own GIL contention as the node's latency.

    python -m tests.support.latency_probe --port P --pid PID --out FILE [--interval 0.02]

Touches ``FILE.ready`` after its first probe; runs until SIGTERM, then writes ``{"latencies": [...], "rss_kb": [...], "errors": [...]}`` to FILE
(latency in seconds per probe: connect, log in, SELECT 1, close). ``Probe`` starts and stops it by PID.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from marmot.testing.nodes import NodeProcess


def rss_kb(pid: int) -> int:
    """Resident set size of a process in KiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of ``values``; 0.0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def _main() -> None:
    import pymysql

    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--interval", type=float, default=0.02)
    args = ap.parse_args()
    stop = False

    def on_term(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    latencies: list[float] = []
    rss: list[int] = []
    errors: list[str] = []
    while not stop:
        started = time.perf_counter()
        try:
            c = pymysql.connect(
                host="127.0.0.1",
                port=args.port,
                user="root",
                password="",
                connect_timeout=30,
                read_timeout=30,
            )
            with c.cursor() as cur:
                cur.execute("SELECT 1")
                cur.fetchall()
            c.close()
            latencies.append(time.perf_counter() - started)
        except Exception as err:  # recorded: a refused or failed probe is a finding, not a crash
            errors.append(f"{type(err).__name__}: {err}")
        rss.append(rss_kb(args.pid))
        if len(rss) == 1:
            Path(args.out + ".ready").touch()
        time.sleep(args.interval)
    Path(args.out).write_text(json.dumps({"latencies": latencies, "rss_kb": rss, "errors": errors}))


@dataclass
class Probe:
    """Context manager: the probe process for ``node`` while the block runs; its figures afterwards."""

    node: NodeProcess
    out: Path
    interval: float = 0.02
    latencies: list[float] = field(default_factory=list)
    rss_kb: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Probe:
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.latency_probe",
                "--port",
                str(self.node.mysql_port),
                "--pid",
                str(self.node.pid),
                "--out",
                str(self.out),
                "--interval",
                str(self.interval),
            ],
            cwd=Path(__file__).resolve().parents[2],
        )
        ready = Path(str(self.out) + ".ready")
        deadline = time.monotonic() + 60
        while not ready.exists() and self._proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # the load starts once the probe runs (its start-up is seconds when loaded)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._proc is not None
        os.kill(self._proc.pid, signal.SIGTERM)
        try:
            self._proc.wait(60)
        except subprocess.TimeoutExpired:
            os.kill(self._proc.pid, signal.SIGKILL)
            self._proc.wait(5)
        if self.out.exists():
            data = json.loads(self.out.read_text())
            self.latencies, self.rss_kb, self.errors = data["latencies"], data["rss_kb"], data["errors"]

    def p99(self) -> float:
        return percentile(self.latencies, 99)

    def summary(self) -> str:
        la = os.getloadavg()
        return (
            f"{len(self.latencies)} probes, p50 {percentile(self.latencies, 50) * 1000:.1f} ms, "
            f"p99 {self.p99() * 1000:.1f} ms, max {max(self.latencies, default=0) * 1000:.1f} ms; "
            f"node RSS max {max(self.rss_kb, default=0) / 1024:.0f} MiB; load average {la[0]:.1f} {la[1]:.1f}; "
            f"{len(self.errors)} failed probes"
        )


if __name__ == "__main__":
    _main()
