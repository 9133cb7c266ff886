"""Test-only failpoints: named places in the write path where a fault test can pause or kill a node.

Fault tests must kill a node at an exact moment of two-phase commit ("between PREPARE and COMMIT"), which
a signal sent from outside can only hit by luck. A failpoint is set through the environment of the node
process, never through config (production nodes never see one):

    MARMOT_FAILPOINTS="coordinator_after_prepare=sleep:3,participant_before_commit=exit"

Actions: ``sleep:SECONDS`` (pause this coroutine; the test SIGKILLs the node meanwhile) and ``exit`` (the
process dies at once with status 137, as after SIGKILL: no cleanup, no flush). Each failpoint fires
once per process unless suffixed ``*`` (``sleep:3*`` fires every time). Names in use are listed in
docs/replication.md ("Failures"); unknown names are ignored.

Fault schedules also arm failpoints while a node runs: ``MARMOT_FAILPOINTS_FILE=/path`` makes the node
read that file every 50 ms and, whenever its text changes, replace the armed set with the spec in it
(same syntax; an empty file disarms everything).

Clock skew, the other test hook: ``MARMOT_CLOCK_OFFSET_FILE=/path`` makes the node read that file every
50 ms and use the signed integer of milliseconds in it as its HLC's offset from the wall clock. Fault
tests move it forwards and backwards while the node runs (libfaketime can only move a running
process's clock forwards safely). The HLC itself never goes backwards; a node whose clock is
set back mints smaller timestamps only once the real clock passes its last one.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

log = logging.getLogger("marmot.failpoints")


def _parse(spec: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in spec.split(","):
        name, _, action = part.strip().partition("=")
        if name and action:
            out[name.strip()] = action.strip()
    return out


_ACTIVE = _parse(os.environ.get("MARMOT_FAILPOINTS", ""))


def active() -> bool:
    return bool(_ACTIVE)


def armed(name: str) -> bool:
    return name in _ACTIVE


async def hit(name: str) -> None:
    """Run the action set for ``name`` (nothing when unset — a dict lookup on the hot path)."""
    if not _ACTIVE:
        return
    action = _ACTIVE.get(name)
    if action is None:
        return
    if not action.endswith("*"):
        del _ACTIVE[name]
    action = action.rstrip("*")
    log.warning("failpoint %s: %s", name, action)
    if action == "exit":
        os._exit(137)
    if action.startswith("sleep:"):
        await asyncio.sleep(float(action[6:]))


CLOCK_OFFSET_ENV = "MARMOT_CLOCK_OFFSET_FILE"


def clock_offset_file() -> str | None:
    return os.environ.get(CLOCK_OFFSET_ENV) or None


def read_offset_ms(path: str) -> int | None:
    """The offset in the file, or None when it is missing, empty or not an integer (keep the last one)."""
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


async def follow_clock_offset(hlc: Any, path: str, interval: float = 0.05) -> None:
    """Keep ``hlc.offset_ns`` equal to the file's milliseconds until cancelled."""
    last: int | None = None
    while True:
        ms = read_offset_ms(path)
        if ms is not None and ms != last:
            hlc.offset_ns = ms * 1_000_000
            log.warning("clock offset now %+d ms (test hook)", ms)
            last = ms
        await asyncio.sleep(interval)


FAILPOINTS_FILE_ENV = "MARMOT_FAILPOINTS_FILE"


def failpoints_file() -> str | None:
    return os.environ.get(FAILPOINTS_FILE_ENV) or None


async def follow_failpoints(path: str, interval: float = 0.05) -> None:
    """Re-arm from ``path`` whenever its text changes, until cancelled."""
    last: str | None = None
    while True:
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            text = None
        if text is not None and text != last:
            _ACTIVE.clear()
            _ACTIVE.update(_parse(text))
            log.warning("failpoints now %r (test hook)", text)
            last = text
        await asyncio.sleep(interval)
