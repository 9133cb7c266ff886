"""Nemeses and seeded schedules.

A schedule is a list of steps drawn from a seeded RNG: each step starts one fault, or two of different
families (a network fault together with a crash, say), holds them for a few seconds, heals them, and
pauses before the next. The same seed gives the same schedule, so a failing run can be replayed; the
timing of the clients around it is not deterministic (threads, real processes), which is why a failing
seed is rerun several times when a bug is chased. Whatever happens, the runner heals everything at the
end (``ChaosCluster.heal_all``).

Every nemesis, with what it does (docs/reliability.md lists them for users):
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.chaos.cluster import ChaosCluster

NODES = (1, 2, 3)


@dataclass(frozen=True)
class Nemesis:
    """A fault family member: ``start`` applies it and returns what it did; ``heal`` undoes exactly that."""

    name: str
    family: str
    doc: str
    start: Callable[[ChaosCluster, random.Random], dict[str, Any]]
    heal: Callable[[ChaosCluster, dict[str, Any]], None]
    needs: str = ""  # a ChaosCluster capability ("tmpfs", "fiu"), or "" when none
    hold: tuple[float, float] = (2.0, 4.0)  # seconds the fault lasts, drawn uniformly


def _isolate(c: ChaosCluster, rng: random.Random) -> dict[str, Any]:
    node = rng.choice(NODES)
    c.partition([[node], [n for n in NODES if n != node]])
    return {"isolated": node}


def _bridge(c: ChaosCluster, rng: random.Random) -> dict[str, Any]:
    a, bridge, b = rng.sample(NODES, 3)
    for src, dst in ((a, b), (b, a)):
        c.pool.set(src, dst, "reject")
    return {"bridge": bridge, "cut": [a, b]}


def _one_way(c: ChaosCluster, rng: random.Random) -> dict[str, Any]:
    src, dst = rng.sample(NODES, 2)
    c.one_way(src, dst)
    return {"from": src, "to": dst}


def _delay(c: ChaosCluster, rng: random.Random) -> dict[str, Any]:
    delay, jitter = rng.choice((20, 50, 150)), rng.choice((5, 20, 50))
    c.delay(delay, jitter)
    return {"delay_ms": delay, "jitter_ms": jitter}


def _resets(c: ChaosCluster, rng: random.Random) -> dict[str, Any]:
    c.reset_connections()
    return {}


def _heal_network(c: ChaosCluster, _: dict[str, Any]) -> None:
    c.heal_network()


STALL_S = 5  # longer than the participants' heartbeat timeout (3 s) plus a resolver round


def _stall_2pc(c: ChaosCluster, rng: random.Random) -> dict[str, Any]:
    """Every transaction one node coordinates stalls between PREPARE and its decision, and the node is
    cut off meanwhile: its participants give up on those transactions and let other writes of the same
    rows through; the stalled coordinator must then not commit them on its own."""
    node = rng.choice(NODES)
    c.arm(node, f"coordinator_after_prepare=sleep:{STALL_S}*")
    time.sleep(0.4)  # transactions reach the stall with every PREPARE acknowledged
    c.partition([[node], [n for n in NODES if n != node]])
    return {"node": node}


def _unstall(c: ChaosCluster, what: dict[str, Any]) -> None:
    c.arm(what["node"], "")
    c.heal_network()


def _kill(c: ChaosCluster, rng: random.Random) -> dict[str, Any]:
    node = rng.choice(NODES)
    c.kill(node)
    return {"killed": [node]}


def _kill_two(c: ChaosCluster, rng: random.Random) -> dict[str, Any]:
    """Crashes in quick succession (how Galera lost committed transactions in 2026)."""
    first, second = rng.sample(NODES, 2)
    c.kill(first)
    c.kill(second)
    return {"killed": [first, second]}


def _restart(c: ChaosCluster, what: dict[str, Any]) -> None:
    for node in what["killed"]:
        c.free_disk(node)  # a node cannot start on a full disk
        c.restart(node)


def _pause(c: ChaosCluster, rng: random.Random) -> dict[str, Any]:
    node = rng.choice(NODES)
    c.pause(node)
    return {"paused": node}


def _resume(c: ChaosCluster, what: dict[str, Any]) -> None:
    c.resume(what["paused"])


def _skew(c: ChaosCluster, rng: random.Random) -> dict[str, Any]:
    """One or two nodes' clocks jump by up to ±5 s, forwards or backwards, while they run."""
    offsets = {n: rng.choice((-1, 1)) * rng.randint(200, 5000) for n in rng.sample(NODES, rng.randint(1, 2))}
    for n, ms in offsets.items():
        c.set_clock(n, ms)
    return {"offsets_ms": offsets}


def _unskew(c: ChaosCluster, what: dict[str, Any]) -> None:
    for n in what["offsets_ms"]:
        c.set_clock(int(n), 0)


def _disk_full(c: ChaosCluster, rng: random.Random) -> dict[str, Any]:
    node = rng.choice(NODES)
    c.fill_disk(node)
    return {"node": node}


def _disk_free(c: ChaosCluster, what: dict[str, Any]) -> None:
    c.free_disk(what["node"])


def _fsync(c: ChaosCluster, rng: random.Random) -> dict[str, Any]:
    node = rng.choice([n for n in NODES if n not in c.down] or [1])
    return {"node": node, "applied": c.fail_fsync(node, True)}


def _fsync_heal(c: ChaosCluster, what: dict[str, Any]) -> None:
    c.fail_fsync(what["node"], False)


def _kill_replica(c: ChaosCluster, _rng: random.Random) -> dict[str, Any]:
    c.kill_replica()
    return {"killed": "replica"}


def _restart_replica(c: ChaosCluster, _what: dict[str, Any]) -> None:
    c.restart_replica()


NEMESES: tuple[Nemesis, ...] = (
    Nemesis(
        "isolate",
        "network",
        "one node cut off from both others, both directions (connections reset); "
        "with 3 nodes this is also the split into halves",
        _isolate,
        _heal_network,
    ),
    Nemesis(
        "bridge",
        "network",
        "two nodes cannot reach each other; the third reaches both (non-transitive)",
        _bridge,
        _heal_network,
    ),
    Nemesis(
        "one-way",
        "network",
        "one directed link holds every byte (the reverse direction works)",
        _one_way,
        _heal_network,
    ),
    Nemesis(
        "delay",
        "network",
        "every link delays each chunk by 20–150 ms with up to ±50 ms jitter",
        _delay,
        _heal_network,
    ),
    Nemesis(
        "resets",
        "network",
        "every open node-to-node connection is reset (RST) at once",
        _resets,
        _heal_network,
    ),
    Nemesis(
        "stall-2pc",
        "network",
        f"every transaction one node coordinates stalls {STALL_S} s between PREPARE "
        "and its decision (failpoint armed at run time) while the node is cut off: its participants give "
        "up on them",
        _stall_2pc,
        _unstall,
        hold=(4.0, 5.5),
    ),
    Nemesis("kill", "process", "SIGKILL one node; restart it on its data at the heal", _kill, _restart),
    Nemesis(
        "kill-two",
        "process",
        "SIGKILL two nodes in quick succession; restart both at the heal",
        _kill_two,
        _restart,
    ),
    Nemesis(
        "pause",
        "process",
        "SIGSTOP one node for 3.5–5.5 s, longer than the participants' heartbeat "
        "timeout (3 s), so a stalled coordinator's transactions get given up on; SIGCONT at the heal",
        _pause,
        _resume,
        hold=(3.5, 5.5),
    ),
    Nemesis(
        "skew",
        "clock",
        "one or two nodes' HLC wall clock jumps 0.2–5 s forwards or backwards",
        _skew,
        _unskew,
    ),
    Nemesis(
        "disk-full",
        "disk",
        "one node's tmpfs data directory is filled to 16 KiB free",
        _disk_full,
        _disk_free,
        needs="tmpfs",
    ),
    Nemesis(
        "fsync-eio",
        "disk",
        "every fsync of one node fails with EIO (libfiu, at run time)",
        _fsync,
        _fsync_heal,
        needs="fiu",
    ),
)

# Faults of the read-only replica a run may add (``runner --replica``): kept apart from NEMESES so that the
# schedules of runs without a replica stay what their seeds always gave.
REPLICA_NEMESES: tuple[Nemesis, ...] = (
    Nemesis(
        "replica-kill",
        "replica",
        "SIGKILL the read-only replica (runs with --replica); restart it on its data at the heal",
        _kill_replica,
        _restart_replica,
        needs="replica",
    ),
)

BY_NAME = {n.name: n for n in (*NEMESES, *REPLICA_NEMESES)}
__doc__ = (
    (__doc__ or "") + "\n".join(f"* ``{n.name}`` ({n.family}): {n.doc}" for n in BY_NAME.values()) + "\n"
)


@dataclass
class Step:
    """Faults started together at ``at`` seconds, healed after ``hold`` seconds."""

    at: float
    hold: float
    nemeses: list[str]
    applied: list[dict[str, Any]] = field(default_factory=list)


def schedule(seed: int, duration: float, names: list[str] | None = None) -> list[Step]:
    """The steps of a seeded schedule that fit in ``duration`` seconds. ``names`` limits the nemeses.

    The first steps visit every nemesis once, in a seeded order, so even a short schedule (CI's) covers
    them all; later steps draw at random, and about a third add a second fault of another family."""
    rng = random.Random(seed)
    pool = [BY_NAME[n] for n in names] if names else list(NEMESES)
    first_round = rng.sample(pool, len(pool))
    steps: list[Step] = []
    t = rng.uniform(1.0, 2.0)
    while True:
        first = first_round[0] if first_round else rng.choice(pool)
        hold = rng.uniform(*first.hold)
        if t + hold > duration:
            return steps
        if first_round:
            first_round.pop(0)
        chosen = [first.name]
        others = [n for n in pool if n.family != first.family]
        if others and rng.random() < 0.3:
            chosen.append(rng.choice(others).name)
        steps.append(Step(round(t, 3), round(hold, 3), chosen))
        t += hold + rng.uniform(0.5, 1.5)
