"""Attach ``py-spy`` to a running node and summarise where its samples land (self time per function).

``py-spy record --format raw`` writes one line per distinct stack: ``frame;frame;...;leaf COUNT``, each
frame ``function (file:line)``. Self time of a function = the samples whose *leaf* frame is that
function. With ``--idle`` the samples spent waiting in the event loop's ``select``/``epoll`` are kept, so
the table also shows how busy the server process was (with one client, idle time is the server
waiting for the client's next request); percentages are given of all samples and of the
busy (non-idle) ones.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
# Leaf frames that mean "the thread was waiting, not working".
_IDLE_LEAVES = {
    ("select", "selectors.py"),
    ("poll", "selectors.py"),
    ("wait", "threading.py"),
    ("_worker", "thread.py"),
    ("get", "queue.py"),
    ("epoll_wait", "libc.so.6"),
    ("poll", "libc.so.6"),
}


def _is_idle(func: str, file: str) -> bool:
    return (func.rpartition(".")[2], Path(file).name) in _IDLE_LEAVES


def py_spy() -> str | None:
    cand = Path(sys.executable).parent / "py-spy"
    return str(cand) if cand.exists() else shutil.which("py-spy")


def start_record(
    pid: int, duration: float, out: Path, rate: int = 250, native: bool = False
) -> subprocess.Popen:
    exe = py_spy()
    if exe is None:
        raise FileNotFoundError("py-spy not installed: .venv/bin/pip install py-spy")
    return subprocess.Popen(
        [
            exe,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(int(duration)),
            "--rate",
            str(rate),
            "--format",
            "raw",
            "--function",
            "--idle",
            "--output",
            str(out),
            *(["--native"] if native else []),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _frame_key(frame: str) -> tuple[str, str]:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip(), ""
    return m.group("func"), m.group("file")


def summarise(raw: Path, top: int = 15) -> tuple[list[tuple[str, int, float, float]], int, int]:
    """([(file:function, samples, % of all, % of busy)], total samples, idle samples)."""
    self_counts: Counter[tuple[str, str]] = Counter()
    total = idle = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        leaf = _frame_key(stack.split(";")[-1])
        total += n
        if _is_idle(*leaf):
            idle += n
            continue
        self_counts[leaf] += n
    busy = max(1, total - idle)
    rows = [
        (f"{file}:{func}", n, 100.0 * n / max(1, total), 100.0 * n / busy)
        for (func, file), n in self_counts.most_common(top)
    ]
    return rows, total, idle


def inclusive(raw: Path, needles: list[str]) -> dict[str, float]:
    """% of busy samples whose stack contains a frame matching each needle (substring of 'file:function')."""
    hits: Counter[str] = Counter()
    busy = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [_frame_key(f) for f in stack.split(";")]
        if _is_idle(*frames[-1]):
            continue
        n = int(count)
        busy += n
        keys = {f"{file}:{func}" for func, file in frames}
        for needle in needles:
            if any(needle in k for k in keys):
                hits[needle] += n
    return {needle: 100.0 * hits[needle] / max(1, busy) for needle in needles}


def render(rows: list[tuple[str, int, float, float]], total: int, idle: int) -> str:
    lines = [
        f"py-spy samples: {total} (idle in the event loop: {idle}, "
        f"{100.0 * idle / max(1, total):.1f} %; busy: {total - idle})",
        "",
        "| # | file:function (self time) | samples | % of all | % of busy |",
        "|---|---|---:|---:|---:|",
    ]
    for i, (name, n, pct_all, pct_busy) in enumerate(rows, 1):
        lines.append(f"| {i} | `{name}` | {n} | {pct_all:.1f} | {pct_busy:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":  # summarise an existing raw file: python bench/profile_summary.py FILE [N]
    rows_, total_, idle_ = summarise(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 15)
    print(render(rows_, total_, idle_))
