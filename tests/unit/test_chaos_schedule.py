"""Seeded fault schedules (tests/chaos/nemesis.py): replayable, bounded, and covering every nemesis.

A failing chaos run is replayed by its seed, so the same seed must give the same steps; CI's short
schedule must still exercise every nemesis, so the first steps visit each once; and no step may run past
the schedule's duration, after which the runner heals everything.
"""

from __future__ import annotations

from tests.chaos.nemesis import BY_NAME, NEMESES, schedule


def _plan(seed: int, duration: float, names: list[str] | None = None) -> list[tuple[float, float, list[str]]]:
    return [(s.at, s.hold, s.nemeses) for s in schedule(seed, duration, names)]


def test_same_seed_same_schedule_other_seed_other_schedule():
    assert _plan(7, 60) == _plan(7, 60)
    assert _plan(7, 60) != _plan(8, 60)


def test_first_steps_visit_every_nemesis_and_steps_stay_within_the_duration():
    for seed in range(1, 21):
        steps = schedule(seed, 60)
        first = [s.nemeses[0] for s in steps[: len(NEMESES)]]
        assert sorted(first) == sorted(n.name for n in NEMESES), seed
        for a, b in zip(steps, steps[1:], strict=False):
            assert a.at + a.hold < b.at  # one step healed before the next starts
        assert steps[-1].at + steps[-1].hold <= 60
        for s in steps:
            low, high = BY_NAME[s.nemeses[0]].hold
            assert low <= s.hold <= high
            if len(s.nemeses) == 2:  # a second fault always comes from another family
                assert BY_NAME[s.nemeses[0]].family != BY_NAME[s.nemeses[1]].family


def test_schedule_limited_to_some_nemeses():
    steps = schedule(3, 40, ["kill", "skew"])
    assert steps and {n for s in steps for n in s.nemeses} <= {"kill", "skew"}
