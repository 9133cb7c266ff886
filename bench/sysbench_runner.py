"""Drive ``sysbench oltp_point_select`` (prepared statements) against one MySQL-protocol server.

Two passes per server:

* **compatibility pass** — sysbench's stock ``prepare`` (``--auto_inc=on``: ``CREATE TABLE`` with
  ``AUTO_INCREMENT``, bulk multi-row INSERTs, ``CREATE INDEX k_1``) at ``--verbosity=5``; every FATAL /
  ALERT line (sysbench prints the failing SQL and the MySQL error there) is collected and reported.
  Afterwards we check whether the ids sysbench's ``run`` will ask for (1..table_size) exist: a server that
  mints its own AUTO_INCREMENT values (Marmot's compact/extended ids) makes every point select miss.
* **measured pass** — ``prepare --auto_inc=off`` (sysbench writes ids 1..table_size itself, so both
  servers hold identical rows and every point select hits), then ``run`` with 1 and 8 threads and
  ``--db-ps-mode=auto`` (COM_STMT_PREPARE once, COM_STMT_EXECUTE per query), then ``cleanup``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field

_PER_SEC = re.compile(r"^\s*(transactions|queries|ignored errors):\s+(\d+)\s+\(([\d.]+) per sec\.\)", re.M)
_LAT = re.compile(r"^\s*(min|avg|max|95th percentile):\s+([\d.]+)", re.M)
_PROBLEM = re.compile(r"^(FATAL|ALERT|WARNING):.*$", re.M)


def available() -> str | None:
    return shutil.which("sysbench")


def version() -> str:
    try:
        return subprocess.run(
            ["sysbench", "--version"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


@dataclass
class SysbenchRun:
    threads: int
    ok: bool = False
    tps: float = 0.0
    qps: float = 0.0
    ignored_errors: int = 0
    lat_avg_ms: float = 0.0
    lat_p95_ms: float = 0.0
    problems: list[str] = field(default_factory=list)
    tail: str = ""


@dataclass
class CompatReport:
    prepare_ok: bool = False
    problems: list[str] = field(default_factory=list)  # FATAL/ALERT lines: failing SQL + MySQL error
    id_note: str = ""


def _base(port: int, table_size: int) -> list[str]:
    return [
        "sysbench",
        "oltp_point_select",
        "--db-driver=mysql",
        "--mysql-host=127.0.0.1",
        f"--mysql-port={port}",
        "--mysql-user=root",
        "--mysql-password=",
        "--mysql-db=marmot",
        "--tables=1",
        f"--table-size={table_size}",
        "--db-ps-mode=auto",
    ]


def _run(args: list[str], timeout: float) -> tuple[int, str]:
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as err:
        out = (
            (err.stdout or b"").decode(errors="replace")
            if isinstance(err.stdout, bytes)
            else (err.stdout or "")
        )
        return -1, out + f"\nFATAL: sysbench timed out after {timeout}s: {' '.join(args)}"
    return r.returncode, r.stdout + r.stderr


def cleanup(port: int, table_size: int) -> list[str]:
    """``sysbench cleanup`` (DROP TABLE IF EXISTS sbtest1); returns its FATAL/ALERT lines."""
    rc, out = _run([*_base(port, table_size), "cleanup"], 60)
    problems = [m.group(0) for m in _PROBLEM.finditer(out)]
    if rc != 0 and not problems:
        problems = [f"sysbench cleanup exited {rc}: {out[-800:]}"]
    return problems


def compatibility(port: int, table_size: int, count_hits) -> CompatReport:
    """Stock prepare (AUTO_INCREMENT ids); ``count_hits()`` -> (rows, rows with id in 1..table_size)."""
    rep = CompatReport()
    before = cleanup(port, table_size)
    rc, out = _run([*_base(port, table_size), "--verbosity=5", "prepare"], 120)
    rep.prepare_ok = rc == 0
    rep.problems = before + [m.group(0) for m in _PROBLEM.finditer(out)]
    if rc != 0 and len(rep.problems) == len(before):
        rep.problems = [f"sysbench prepare exited {rc}: {out[-800:]}"]
    if rep.prepare_ok:
        try:
            total, hits = count_hits()
            if hits < table_size:
                rep.id_note = (
                    f"after stock prepare the table holds {total} rows but only {hits} have ids in "
                    f"1..{table_size}: sysbench's point selects would return empty results"
                )
        except Exception as err:
            rep.id_note = f"could not inspect sbtest1 after prepare: {err!r}"
    rep.problems += cleanup(port, table_size)
    return rep


def prepare_measured(port: int, table_size: int) -> tuple[bool, list[str]]:
    cleanup(port, table_size)
    rc, out = _run([*_base(port, table_size), "--auto_inc=off", "prepare"], 120)
    problems = [m.group(0) for m in _PROBLEM.finditer(out)]
    if rc != 0 and not problems:
        problems = [f"sysbench prepare exited {rc}: {out[-800:]}"]
    return rc == 0, problems


def run(port: int, table_size: int, threads: int, seconds: int) -> SysbenchRun:
    res = SysbenchRun(threads)
    rc, out = _run(
        [
            *_base(port, table_size),
            "--auto_inc=off",
            f"--threads={threads}",
            f"--time={seconds}",
            "--report-interval=0",
            "run",
        ],
        seconds + 60,
    )
    res.tail = out[-1500:]
    res.problems = [m.group(0) for m in _PROBLEM.finditer(out)]
    for name, _count, per_sec in _PER_SEC.findall(out):
        if name == "transactions":
            res.tps = float(per_sec)
        elif name == "queries":
            res.qps = float(per_sec)
        else:
            res.ignored_errors = int(_count)
    lat = dict(_LAT.findall(out))
    res.lat_avg_ms = float(lat.get("avg", 0))
    res.lat_p95_ms = float(lat.get("95th percentile", 0))
    res.ok = rc == 0 and res.qps > 0
    return res
