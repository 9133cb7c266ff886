"""CI's short seeded fault schedule (issue "Jepsen-style fault testing", point 4).

One run of tests/chaos/runner.py: 3 nodes behind fault proxies, every nemesis this machine supports at
least once (tmpfs and libfiu are installed by .ci/run), set/register/bank workloads at ONE, QUORUM and
ALL with a LOCAL_ONE reader per node, the QUORUM register (QUORUM writes; QUORUM, ONE and ALL reads
through other nodes, checked by ``stale-read``) sharing the same 60 s, then the history checker. The seed is fixed so a failure can be replayed
with ``python -m tests.chaos.runner --seeds N``; ``make chaos`` runs ten longer schedules.
"""

from __future__ import annotations

import json
import os
from collections import Counter

import pytest

from tests.chaos.nemesis import NEMESES
from tests.chaos.runner import run_schedule
from tests.chaos.workloads import QUORUM_REGISTER, WORKLOADS

CI_SEEDS = [int(s) for s in os.environ.get("MARMOT_CHAOS_SEEDS", "7").split(",")]
CI_DURATION = float(os.environ.get("MARMOT_CHAOS_DURATION", "60"))


@pytest.mark.timeout(600)
@pytest.mark.parametrize("seed", CI_SEEDS)
def test_seeded_schedule(tmp_path, seed):
    result = run_schedule(seed, CI_DURATION, tmp_path / f"seed-{seed}", log=lambda *_: None)
    report = (result.workdir / "report.txt").read_text()
    logs = "".join(
        f"\n--- {log.relative_to(result.workdir)} (tail) ---\n{log.read_text(errors='replace')[-3000:]}"
        for log in sorted(result.workdir.glob("cluster/n*/node-*.log"))
    )
    assert result.ok, f"seed {seed} failed:\n{report}\nrun directory: {result.workdir}{logs}"
    # the run exercised what it claims: every nemesis this machine supports, and real traffic
    applied = {name for step in result.steps for name in step["faults"]}
    supported = {n.name for n in NEMESES if not n.needs or result.capabilities.get(n.needs)}
    assert applied == supported, f"nemeses not exercised: {sorted(supported - applied)}"
    assert result.ops > 2000, f"only {result.ops} operations ran"
    # every workload ran: ok operations of each, and QUORUM reads judged by stale-read
    done = Counter()
    for line in (result.workdir / "history.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec.get("type") == "ok":
            done[(rec["workload"], rec["f"], rec.get("level"))] += 1
    for wl in WORKLOADS:
        assert any(n for (name, f, _), n in done.items() if name == wl.name and f != "read"), wl.name
        assert any(n for (name, f, _), n in done.items() if name == wl.name and f == "read"), wl.name
    q = QUORUM_REGISTER.name
    assert done[(q, "write", "QUORUM")] >= 50 and done[(q, "read", "QUORUM")] >= 30, done
    assert done[(q, "read", "ONE")] >= 5 and done[(q, "read", "ALL")] >= 1, done  # one read in five each
    stale = result.report.find_check(f"stale-read[{q}]")
    assert stale is not None and stale.ok
    judged = result.report.find_note(f"read-levels[{q}]")
    assert judged is not None and judged.count >= 50, judged
    assert result.report.passed >= 16  # 11 before register_quorum, which adds 5 (stale-read among them)


@pytest.mark.timeout(600)
def test_short_schedule_with_a_replica(tmp_path):
    """A read-only replica through a short schedule of process faults (its source killed or paused, the
    replica itself killed): its final rows and versions must equal the nodes' (``convergence``), and it
    must hold every acknowledged write like they do."""
    seed = int(os.environ.get("MARMOT_CHAOS_REPLICA_SEED", "3"))
    result = run_schedule(
        seed,
        float(os.environ.get("MARMOT_CHAOS_REPLICA_DURATION", "20")),
        tmp_path / f"replica-seed-{seed}",
        ["kill", "pause", "replica-kill"],
        log=lambda *_: None,
        replica=True,
    )
    report = (result.workdir / "report.txt").read_text()
    assert result.ok, f"seed {seed} with a replica failed:\n{report}\nrun directory: {result.workdir}"
    final = json.loads((result.workdir / "final.json").read_text())
    assert set(final["nodes"]) == {"1", "2", "3", "replica"} and final["converged"]
    assert final["nodes"]["replica"] == final["nodes"]["1"]
    applied = {name for step in result.steps for name in step["faults"]}
    assert "replica-kill" in applied, applied
    assert result.ops > 300, f"only {result.ops} operations ran"
