"""Test-only failpoints: named places in the write path where a fault test can pause or kill a node.

Fault tests must kill a node at an exact moment of two-phase commit ("between PREPARE and COMMIT"), which
a signal sent from outside can only hit by luck. A failpoint is set through the environment of the node
process, never through config (production nodes never see one):

    MARMOT_FAILPOINTS="coordinator_after_prepare=sleep:3,participant_before_commit=exit"

Actions: ``sleep:SECONDS`` (pause this coroutine; the test SIGKILLs the node meanwhile) and ``exit`` (the
process dies at once with status 137, as after SIGKILL: no cleanup, no flush). Each failpoint fires
once per process unless suffixed ``*`` (``sleep:3*`` fires every time). Names in use are listed in
docs/replication.md ("Failures"); unknown names are ignored.
"""

from __future__ import annotations

import asyncio
import logging
import os

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
