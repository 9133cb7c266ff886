"""Worker processes that start at one instant: the process harness the load generators share.

Why one module: ``replicated_load.py`` (the write load) and ``read_latency.py`` (the readers) both fork N
client processes, wait until every one is connected, release them together so their figures cover the
same interval, collect one result each, and stop them by PID when anything goes wrong (a worker blocked on
a full result pipe would never exit by itself).

Protocol with a worker ``target(cfg, start_ev, start_at, out)``: it puts ``("ready", ...)`` once connected,
waits for ``start_ev`` and starts at ``start_at.value`` (a ``time.monotonic()`` instant), and ends with
``("result", figures)``. A worker that fails before it is ready may send its result at once.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import time
from collections.abc import Callable, Sequence
from typing import Any


def run_workers(target: Callable[..., None], configs: Sequence[Any]) -> tuple[list[Any], float]:
    """One process per config; returns (the results that arrived, the common start instant)."""
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    start_ev = ctx.Event()
    start_at = ctx.Value("d", 0.0)
    procs = [ctx.Process(target=target, args=(cfg, start_ev, start_at, out), daemon=True) for cfg in configs]
    results: list[Any] = []
    finished = False
    t_start = 0.0
    try:
        for p in procs:
            p.start()
        ready = 0
        while ready + len(results) < len(procs):
            msg = _next(out, procs)
            if msg is None:
                break
            if msg[0] == "ready":
                ready += 1
            else:
                results.append(msg[1])
        t_start = start_at.value = time.monotonic() + 0.2
        start_ev.set()
        while len(results) < len(procs):
            msg = _next(out, procs)
            if msg is None:
                break
            if msg[0] == "result":
                results.append(msg[1])
        finished = True
    finally:
        for p in procs:  # normal end: each exits by itself; otherwise by PID: terminate, then kill
            if finished:
                p.join(timeout=10)
            if p.is_alive():
                p.terminate()
                p.join(timeout=3)
            if p.is_alive():
                p.kill()
                p.join(timeout=3)
    return results, t_start


def _next(out: Any, procs: list[Any]) -> tuple[str, Any] | None:
    """The next message, or None once every worker has exited without sending one."""
    while True:
        try:
            msg: tuple[str, Any] = out.get(timeout=1.0)
            return msg
        except queue.Empty:
            if not any(p.is_alive() for p in procs):
                return None
