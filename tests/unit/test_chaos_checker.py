"""The chaos-run checker (tests/chaos/checker.py) on small hand-built histories.

Why these tests: the checker decides whether a chaos run found a bug, so it must flag each kind of
broken history with the right check, and just as much it must not fail a run for what LWW legitimately
does (a later write losing to clock skew, money created by ONE-level transfers, info writes that did or
did not land, reads on different nodes or overlapping in time that disagree). Each test starts from a
clean run that passes everything and breaks exactly one thing.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.checker import check, check_files, load_history

REPO = Path(__file__).resolve().parents[2]

CLEAN_CHECKS = {
    "convergence",
    "set-acked-present[set]",
    "no-phantoms[set]",
    "failed-write-visible[set]",
    "monotonic-reads[set]",
    "no-phantoms[register]",
    "failed-write-visible[register]",
    "register-acked-durable[register]",
    "monotonic-reads[register]",
    "bank-total[bank]",
}


class Hist:
    """Builds history records; each op gets an invoke and (unless pending) a completion, times ascending."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.next_id = 0
        self.t = 0.0

    def tick(self) -> float:
        self.t += 1.0
        return self.t

    def op(
        self,
        kind: str,
        f: str,
        *,
        value: Any = None,
        result: Any = None,
        status: str = "ok",
        node: int = 1,
        level: str | None = None,
        key: int | None = None,
        ts: list[int] | None = None,
        t0: float | None = None,
        t1: float | None = None,
        workload: str | None = None,
    ) -> int:
        self.next_id += 1
        base = {
            "id": self.next_id,
            "proc": node,
            "node": node,
            "workload": workload or kind,
            "kind": kind,
            "f": f,
            "level": level,
        }
        if key is not None:
            base["key"] = key
        invoke = {**base, "type": "invoke", "t": self.tick() if t0 is None else t0}
        if value is not None:
            invoke["value"] = value
        self.records.append(invoke)
        if status == "pending":
            return self.next_id
        done = {**invoke, "type": status, "t": self.tick() if t1 is None else t1}
        if f == "read":
            done["value"] = result
        if status == "ok" and f != "read":
            done["ts"] = ts
        if status in ("fail", "info"):
            done["error"] = "boom"
        self.records.append(done)
        return self.next_id

    def add(self, value: int, ts: list[int] | None = None, level: str = "QUORUM", **kw: Any) -> int:
        return self.op("set", "add", value=value, ts=ts, level=level, **kw)

    def set_read(self, values: list[int], **kw: Any) -> int:
        return self.op("set", "read", result=values, **kw)

    def write(self, key: int, value: int, ts: list[int] | None, level: str = "QUORUM", **kw: Any) -> int:
        return self.op("register", "write", key=key, value=value, ts=ts, level=level, **kw)

    def reg_read(self, key: int, value: int | None, **kw: Any) -> int:
        return self.op("register", "read", key=key, result=value, **kw)

    def transfer(
        self, frm: int, to: int, amount: int, ts: list[int], level: str = "QUORUM", **kw: Any
    ) -> int:
        return self.op(
            "bank", "transfer", value={"from": frm, "to": to, "amount": amount}, ts=ts, level=level, **kw
        )


def clean() -> tuple[Hist, dict[str, Any]]:
    """A run that passes every check: includes info ops present and absent, a fail op, nemesis records."""
    h = Hist()
    h.records.append(
        {"type": "setup", "workload": "bank", "kind": "bank", "accounts": {"0": 100, "1": 100}, "total": 200}
    )
    h.records.append({"type": "nemesis", "phase": "start", "t": 0.5, "fault": "partition", "detail": "1|23"})
    h.add(1, [10, 0, 1], level="QUORUM")
    h.set_read([1], node=1)
    h.add(2, [20, 0, 2], level="ONE", node=2)
    h.add(3, [30, 0, 3], level="ALL", node=3)
    h.add(4, status="info")  # never landed
    h.add(5, status="fail")
    h.add(6, status="info")  # landed
    h.set_read([1, 2], node=1)
    h.set_read([1, 2, 3, 6], node=2)
    h.reg_read(1, None, node=1)
    h.write(1, 10, [100, 0, 1], node=1)
    h.reg_read(1, 10, node=1)
    h.write(1, 11, [200, 0, 2], level="ONE", node=2)
    h.reg_read(1, 11, node=1)
    h.write(2, 20, None, status="info")  # landed, its ts only known from the final state
    h.write(2, 21, None, status="fail")
    h.reg_read(2, 20, node=3)
    h.transfer(0, 1, 30, [300, 0, 1])
    h.op("bank", "read", result={"0": 70, "1": 130})
    h.records.append({"type": "nemesis", "phase": "heal", "t": h.tick(), "fault": "partition"})
    h.records.append({"type": "crash", "node": 2, "status": -9})  # unknown types are ignored
    node = {
        "set": [
            {"value": v, "ts": ts}
            for v, ts in ((1, [10, 0, 1]), (2, [20, 0, 2]), (3, [30, 0, 3]), (6, [35, 0, 1]))
        ],
        "register": [{"key": 1, "value": 11, "ts": [200, 0, 2]}, {"key": 2, "value": 20, "ts": [250, 0, 3]}],
        "bank": [
            {"account": 0, "balance": 70, "ts": [300, 0, 1]},
            {"account": 1, "balance": 130, "ts": [300, 0, 1]},
        ],
    }
    final = {
        "converged": True,
        "converge_seconds": 1.5,
        "workloads": {"set": "set", "register": "register", "bank": "bank"},
        "nodes": {str(n): copy.deepcopy(node) for n in (1, 2, 3)},
    }
    return h, final


def failed(h: Hist, final: dict[str, Any]) -> set[str]:
    return {c.name for c in check(h.records, final).checks if not c.ok}


def details(h: Hist, final: dict[str, Any], name: str) -> str:
    found = check(h.records, final).find_check(name)
    assert found is not None
    return found.details


def rows(final: dict[str, Any], node: int, workload: str) -> list[dict[str, Any]]:
    return final["nodes"][str(node)][workload]


# -- the clean run --------------------------------------------------------------------------------------


def test_clean_history_passes_every_check() -> None:
    h, final = clean()
    report = check(h.records, final)
    assert {c.name for c in report.checks} == CLEAN_CHECKS
    assert report.ok and report.failed == 0 and report.passed == len(CLEAN_CHECKS), report.summary()
    lines = report.summary().splitlines()
    assert lines[0] == "PASS convergence"
    assert lines[-1] == f"{len(CLEAN_CHECKS)} passed, 0 failed"
    assert not any(line.startswith("FAIL") for line in lines)


def test_clean_history_notes_statistics_only() -> None:
    h, final = clean()
    report = check(h.records, final)
    assert {n.name for n in report.notes} == {"indeterminate", "outcomes", "nemesis"}
    indeterminate = report.find_note("indeterminate")
    assert indeterminate is not None and indeterminate.count == 3
    assert "register=1" in indeterminate.details and "set=2" in indeterminate.details
    outcomes = report.find_note("outcomes")
    assert outcomes is not None and "set add@QUORUM ok=1 fail=1 info=2" in outcomes.details
    nemesis = report.find_note("nemesis")
    assert nemesis is not None and nemesis.count == 1 and "partition=1" in nemesis.details


def test_pending_op_counts_as_indeterminate() -> None:
    h, final = clean()
    h.add(7, status="pending")
    h.write(3, 30, None, status="pending")
    report = check(h.records, final)
    assert report.ok, report.summary()
    assert report.find_note("indeterminate").count == 5  # type: ignore[union-attr]


# -- convergence --------------------------------------------------------------------------------------


def test_harness_not_converged_fails_convergence_only() -> None:
    h, final = clean()
    final["converged"] = False
    assert failed(h, final) == {"convergence"}
    assert "converged=False" in details(h, final, "convergence")


def test_differing_rows_fail_convergence_with_key_and_nodes() -> None:
    h, final = clean()
    rows(final, 2, "bank")[0]["ts"] = [301, 0, 2]
    assert failed(h, final) == {"convergence"}
    text = details(h, final, "convergence")
    assert "bank: 1 rows differ" in text and "account 0" in text and "n2 balance=70 ts=[301,0,2]" in text


def test_missing_nodes_fail_convergence() -> None:
    h, final = clean()
    final["nodes"] = {}
    assert "convergence" in failed(h, final)


# -- sets ---------------------------------------------------------------------------------------------


def test_acked_add_missing_on_one_node() -> None:
    h, final = clean()
    rows(final, 2, "set").pop(1)  # value 2, acked at ONE
    assert failed(h, final) == {"convergence", "set-acked-present[set]"}
    text = details(h, final, "set-acked-present[set]")
    assert "1 of 3 acked adds missing" in text and "value 2 (ONE" in text and "missing on n2" in text


def test_info_add_may_be_present_or_absent() -> None:
    h, final = clean()
    for n in (1, 2, 3):
        rows(final, n, "set").append({"value": 4, "ts": [40, 0, 1]})
    assert check(h.records, final).ok


def test_unknown_is_the_same_as_info() -> None:
    """The harness logs an indeterminate outcome as ``unknown`` (Jepsen's ``info``)."""
    h, final = clean()
    for rec in h.records:
        if rec["type"] == "info":
            rec["type"] = "unknown"
    for n in (1, 2, 3):
        rows(final, n, "set").append({"value": 4, "ts": [40, 0, 1]})
    report = check(h.records, final)
    assert report.ok
    assert report.find_note("indeterminate") is not None and report.find_note("indeterminate").count >= 1


def test_phantom_set_value_in_read() -> None:
    h, final = clean()
    h.set_read([1, 2, 3, 6, 99], node=3)
    assert failed(h, final) == {"no-phantoms[set]"}
    assert "99 in read op" in details(h, final, "no-phantoms[set]")


def test_phantom_register_value_in_final_state() -> None:
    h, final = clean()
    for n in (1, 2, 3):
        rows(final, n, "register").append({"key": 9, "value": 999, "ts": [900, 0, 1]})
    assert failed(h, final) == {"no-phantoms[register]"}
    assert "999 in final n1" in details(h, final, "no-phantoms[register]")


def test_failed_add_visible_in_read() -> None:
    h, final = clean()
    h.set_read([1, 2, 3, 5, 6], node=3)
    assert failed(h, final) == {"failed-write-visible[set]"}
    assert "5 in read op" in details(h, final, "failed-write-visible[set]")


def test_failed_register_write_visible_in_final_state() -> None:
    h, final = clean()
    for n in (1, 2, 3):
        rows(final, n, "register")[1] = {"key": 2, "value": 21, "ts": [260, 0, 1]}
    assert failed(h, final) == {"failed-write-visible[register]"}


def test_non_monotonic_set_read_on_one_node() -> None:
    h, final = clean()
    h.set_read([1, 2, 3], node=2)  # after the node-2 read of [1, 2, 3, 6]
    assert failed(h, final) == {"monotonic-reads[set]"}
    text = details(h, final, "monotonic-reads[set]")
    assert "n2: read op" in text and "lacks 1 values" in text and "e.g. 6" in text


def test_set_reads_on_different_nodes_may_disagree() -> None:
    h, final = clean()
    h.set_read([1, 2, 3, 6], node=3)
    h.set_read([1, 2], node=1)  # node 1 read no more than this before
    assert check(h.records, final).ok


def test_overlapping_set_reads_may_disagree() -> None:
    h, final = clean()
    t = h.tick()
    h.set_read([1, 2, 3, 6], node=3, t0=t, t1=t + 2)
    h.set_read([1, 2], node=3, t0=t + 1, t1=t + 3)  # invoked before the first completed
    assert check(h.records, final).ok


# -- registers ------------------------------------------------------------------------------------------


def test_acked_register_write_lost() -> None:
    h, final = clean()
    rows(final, 3, "register")[0] = {"key": 1, "value": 10, "ts": [100, 0, 1]}  # write 11 (ts 200) lost
    assert failed(h, final) == {"convergence", "register-acked-durable[register]"}
    text = details(h, final, "register-acked-durable[register]")
    assert "key 1 value 11 ts [200,0,2] (ONE" in text and "n3 holds 10 ts [100,0,1]" in text


def test_register_row_missing_is_a_lost_write() -> None:
    h, final = clean()
    for n in (1, 2, 3):
        rows(final, n, "register").pop(0)
    assert failed(h, final) == {"register-acked-durable[register]"}
    assert "n1 row missing" in details(h, final, "register-acked-durable[register]")


def test_null_final_ts_falls_back_to_the_ok_write_or_skips() -> None:
    h, final = clean()
    for n in (1, 2, 3):
        rows(final, n, "register")[1]["ts"] = None  # value 20 from an info write: unknown, skipped
    assert check(h.records, final).ok
    for n in (1, 2, 3):
        rows(final, n, "register")[0] = {"key": 1, "value": 10, "ts": None}  # ok write of 10: ts 100 < 200
    assert failed(h, final) == {"register-acked-durable[register]"}


def test_lww_overwrite_is_only_a_note() -> None:
    h, final = clean()
    h.write(3, 30, [500, 0, 1], node=1)
    h.write(3, 31, [400, 0, 2], node=2)  # invoked after 30 was acked, lost to node 1's faster clock
    for n in (1, 2, 3):
        rows(final, n, "register").append({"key": 3, "value": 30, "ts": [500, 0, 1]})
    report = check(h.records, final)
    assert report.ok, report.summary()
    note = report.find_note("lww-overwritten[register]")
    assert note is not None and note.count == 1 and "write 31" in note.details
    assert "NOTE lww-overwritten[register]: 1 acked writes" in report.summary()


def test_concurrent_writes_in_any_ts_order_are_no_overwrite() -> None:
    h, final = clean()
    t = h.tick()
    h.write(3, 30, [500, 0, 1], node=1, t0=t, t1=t + 2)
    h.write(3, 31, [400, 0, 2], node=2, t0=t + 1, t1=t + 3)
    for n in (1, 2, 3):
        rows(final, n, "register").append({"key": 3, "value": 30, "ts": [500, 0, 1]})
    report = check(h.records, final)
    assert report.ok and report.find_note("lww-overwritten[register]") is None


def test_non_monotonic_register_read_on_one_node() -> None:
    h, final = clean()
    h.reg_read(1, 10, node=1)  # node 1 already read 11
    assert failed(h, final) == {"monotonic-reads[register]"}
    text = details(h, final, "monotonic-reads[register]")
    assert "n1 key 1: read op" in text and "saw 10 ts [100,0,1]" in text and "saw 11 ts [200,0,2]" in text


def test_null_register_read_after_a_value_is_non_monotonic() -> None:
    h, final = clean()
    h.reg_read(2, None, node=3)  # node 3 read 20 (info write, ts from the final state)
    assert failed(h, final) == {"monotonic-reads[register]"}
    assert "saw None ts null" in details(h, final, "monotonic-reads[register]")


def test_register_reads_on_different_nodes_or_overlapping_may_disagree() -> None:
    h, final = clean()
    h.reg_read(1, 10, node=2)
    h.reg_read(1, None, node=3)
    t = h.tick()
    h.reg_read(1, 11, node=2, t0=t, t1=t + 2)
    h.reg_read(1, 10, node=2, t0=t + 1, t1=t + 3)
    assert check(h.records, final).ok


def test_register_read_of_unknown_version_is_skipped() -> None:
    h, final = clean()
    h.write(1, 12, None, status="info")  # not in the final state: its ts is unknown
    h.reg_read(1, 12, node=1)
    h.reg_read(1, 10, node=1)  # after 12 (unknown) but also after 11: still a violation
    h.reg_read(1, 12, node=2)
    h.reg_read(1, None, node=2)  # 12's version unknown, nothing known read before on node 2
    assert failed(h, final) == {"monotonic-reads[register]"}
    assert details(h, final, "monotonic-reads[register]").startswith("1 reads went back in time")


# -- stale reads: a QUORUM/ALL read is never older than a write acknowledged before it began ------------


def quorum_key(h: Hist, final: dict[str, Any], value: int = 31, ts: list[int] | None = None) -> None:
    """Key 3: two QUORUM writes acknowledged on nodes 1 and 2 (30 at [400,0,1], then 31 at [500,0,2]);
    every node ends with ``value`` at ``ts`` (31 unless a test writes a later one)."""
    h.write(3, 30, [400, 0, 1], node=1)
    h.write(3, 31, [500, 0, 2], node=2)
    for n in (1, 2, 3):
        rows(final, n, "register").append({"key": 3, "value": value, "ts": ts or [500, 0, 2]})


def test_quorum_read_of_the_newest_acknowledged_write_passes() -> None:
    h, final = clean()
    quorum_key(h, final)
    h.reg_read(3, 31, node=3, level="QUORUM")
    report = check(h.records, final)
    assert report.ok, report.summary()
    stale = report.find_check("stale-read[register]")
    assert stale is not None and stale.ok
    stats = report.find_note("read-levels[register]")
    assert stats is not None and stats.count == 1 and "QUORUM ok=1" in stats.details


def test_stale_quorum_read_fails_with_the_read_and_the_write_it_missed() -> None:
    h, final = clean()
    quorum_key(h, final)
    read = h.reg_read(3, 30, node=3, level="QUORUM")  # 31 was acknowledged before: 30 is older
    assert failed(h, final) == {"stale-read[register]"}
    text = details(h, final, "stale-read[register]")
    assert text.startswith("1 reads older than a write acknowledged before they began: key 3: ")
    assert f"read op {read} on n3 at QUORUM" in text and "saw 30 ts [400,0,1]" in text
    assert "of 31 on n2 (QUORUM) ts [500,0,2] was acknowledged" in text


def test_quorum_read_of_no_row_after_an_acknowledged_write_is_stale() -> None:
    h, final = clean()
    quorum_key(h, final)
    h.reg_read(3, None, node=1, level="QUORUM")
    assert failed(h, final) == {"stale-read[register]"}
    assert "saw None ts null (no row)" in details(h, final, "stale-read[register]")


def test_quorum_read_before_any_acknowledged_write_may_see_nothing() -> None:
    h, final = clean()
    h.reg_read(3, None, node=3, level="QUORUM")
    quorum_key(h, final)
    assert check(h.records, final).ok


def test_concurrent_write_may_be_seen_or_not() -> None:
    for seen in (31, 32):
        h, final = clean()
        quorum_key(h, final, value=32, ts=[600, 0, 3])
        t = h.t
        h.write(3, 32, [600, 0, 3], node=3, t0=t + 1, t1=t + 3)  # acknowledged after the read began
        h.reg_read(3, seen, node=1, level="QUORUM", t0=t + 2, t1=t + 4)
        h.t = t + 4
        report = check(h.records, final)
        assert report.ok, (seen, report.summary())


def test_unacknowledged_write_may_be_seen_when_not_older() -> None:
    h, final = clean()
    quorum_key(h, final, value=33, ts=[700, 0, 1])
    h.write(3, 33, None, node=1, status="info")  # landed: its version is known from the final state
    h.reg_read(3, 33, node=2, level="QUORUM")
    assert check(h.records, final).ok


def test_value_of_unknown_version_is_unjudged_not_failed() -> None:
    h, final = clean()
    quorum_key(h, final)
    h.write(3, 34, None, node=1, status="info")  # overwritten or lost: version unknown
    h.reg_read(3, 34, node=2, level="QUORUM")
    report = check(h.records, final)
    assert report.ok, report.summary()
    stats = report.find_note("read-levels[register]")
    assert stats is not None and stats.count == 0 and "1 unjudged" in stats.details


def test_failed_quorum_reads_are_not_judged() -> None:
    h, final = clean()
    quorum_key(h, final)
    h.op("register", "read", key=3, status="fail", node=3, level="QUORUM")  # 1105: too few answers
    h.op("register", "read", key=3, status="info", node=3, level="QUORUM")  # timed out
    report = check(h.records, final)
    assert report.ok, report.summary()
    stats = report.find_note("read-levels[register]")
    assert stats is not None and "QUORUM fail=1" in stats.details and "QUORUM info=1" in stats.details


def test_local_one_reads_are_not_checked() -> None:
    h, final = clean()
    quorum_key(h, final)
    h.reg_read(3, 30, node=3)  # the plain reader: no level, may be stale
    report = check(h.records, final)
    assert report.ok and report.find_check("stale-read[register]") is None
    h.reg_read(3, 31, node=1, level="QUORUM")
    h.reg_read(3, 30, node=2)
    report = check(h.records, final)
    assert report.ok and report.find_check("stale-read[register]") is not None


def test_quorum_read_need_not_see_a_write_acknowledged_at_one_but_all_must() -> None:
    h, final = clean()
    quorum_key(h, final, value=36, ts=[800, 0, 1])
    h.write(3, 36, [800, 0, 1], level="ONE", node=1)
    h.reg_read(3, 31, node=2, level="QUORUM")
    assert check(h.records, final).ok
    h.reg_read(3, 31, node=3, level="ALL")
    assert failed(h, final) == {"stale-read[register]"}
    assert "at ALL" in details(h, final, "stale-read[register]")


def test_one_read_on_three_nodes_must_see_a_quorum_write_but_not_a_one_write() -> None:
    """ONE reads through this node and one peer: 2 of 3 nodes, which meets every QUORUM write's 2."""
    h, final = clean()
    quorum_key(h, final, value=36, ts=[800, 0, 1])
    h.reg_read(3, 31, node=3, level="ONE")
    h.write(3, 36, [800, 0, 1], level="ONE", node=1)
    h.reg_read(3, 31, node=2, level="ONE")  # misses the ONE write: allowed
    assert check(h.records, final).ok
    h.reg_read(3, 30, node=1, level="ONE")  # older than 31, acknowledged at QUORUM before: stale
    assert failed(h, final) == {"stale-read[register]"}
    assert "at ONE" in details(h, final, "stale-read[register]")


# -- bank -------------------------------------------------------------------------------------------------


def test_bank_total_broken_at_quorum_fails() -> None:
    h, final = clean()
    for n in (1, 2, 3):
        rows(final, n, "bank")[1]["balance"] = 150
    assert failed(h, final) == {"bank-total[bank]"}
    text = details(h, final, "bank-total[bank]")
    assert "n1 sums to 220" in text and "expected 200" in text


def test_bank_total_broken_with_transfers_at_one_is_a_note() -> None:
    h, final = clean()
    h.transfer(1, 0, 10, [400, 0, 2], level="ONE", node=2)
    for n in (1, 2, 3):
        rows(final, n, "bank")[1]["balance"] = 150
    report = check(h.records, final)
    assert report.ok, report.summary()
    note = report.find_note("bank-total-one[bank]")
    assert note is not None and "n3 sums to 220" in note.details


def test_bank_read_off_total_is_a_note() -> None:
    h, final = clean()
    h.op("bank", "read", result={"0": 70, "1": 100}, node=2)
    report = check(h.records, final)
    assert report.ok
    note = report.find_note("bank-read-total[bank]")
    assert note is not None and note.count == 1 and "1 of 2 ok reads" in note.details


def test_bank_without_setup_record_fails() -> None:
    h, final = clean()
    h.records = [r for r in h.records if r.get("type") != "setup"]
    assert failed(h, final) == {"bank-total[bank]"}


# -- several workloads of one kind --------------------------------------------------------------------


def test_checks_are_per_workload_name() -> None:
    h, final = clean()
    h.write(1, 50, [600, 0, 1], level="ONE", workload="register_one")
    h.reg_read(1, 50, workload="register_one")
    h.reg_read(1, None, workload="register_one")
    final["workloads"]["register_one"] = "register"
    for n in (1, 2, 3):
        final["nodes"][str(n)]["register_one"] = [{"key": 1, "value": 50, "ts": [600, 0, 1]}]
    report = check(h.records, final)
    assert {c.name for c in report.checks if not c.ok} == {"monotonic-reads[register_one]"}
    assert report.find_check("no-phantoms[register_one]") is not None


# -- files and the command line -------------------------------------------------------------------------


def write_run(tmp_path: Path, h: Hist, final: dict[str, Any]) -> tuple[Path, Path]:
    hist_path, final_path = tmp_path / "history.jsonl", tmp_path / "final.json"
    hist_path.write_text("".join(json.dumps(r) + "\n" for r in h.records))
    final_path.write_text(json.dumps(final))
    return hist_path, final_path


def test_check_files_reads_jsonl_and_json(tmp_path: Path) -> None:
    h, final = clean()
    report = check_files(*write_run(tmp_path, h, final))
    assert report.ok and report.passed == len(CLEAN_CHECKS)


def test_torn_last_line_is_dropped_but_a_bad_middle_line_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    path.write_text('{"type": "nemesis"}\n\n{"type": "inv')
    assert load_history(path) == [{"type": "nemesis"}]
    path.write_text('{"type": "inv\n{"type": "nemesis"}\n')
    with pytest.raises(ValueError, match=":1:"):
        load_history(path)


def run_cli(hist_path: Path, final_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.chaos.checker", str(hist_path), str(final_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_exit_codes_and_last_line(tmp_path: Path) -> None:
    h, final = clean()
    good = run_cli(*write_run(tmp_path, h, final))
    assert good.returncode == 0, good.stderr
    assert good.stdout.splitlines()[-1] == f"{len(CLEAN_CHECKS)} passed, 0 failed"
    h.set_read([1, 99], node=2)  # a phantom, and node 2 read more before
    bad = run_cli(*write_run(tmp_path, h, final))
    assert bad.returncode == 1, bad.stderr
    lines = bad.stdout.splitlines()
    assert lines[-1] == f"{len(CLEAN_CHECKS) - 2} passed, 2 failed"
    assert any(line.startswith("FAIL no-phantoms[set]: ") for line in lines)
    assert any(line.startswith("FAIL monotonic-reads[set]: ") for line in lines)


# -- scale ----------------------------------------------------------------------------------------------


def test_large_history_is_checked() -> None:
    """~40k ops: the real-time checks sweep instead of comparing all pairs."""
    h = Hist()
    final_set: list[dict[str, Any]] = []
    final_reg: dict[int, dict[str, Any]] = {}
    for i in range(1, 10_001):
        node = i % 3 + 1
        h.add(i, [i, 0, node], node=node)
        final_set.append({"value": i, "ts": [i, 0, node]})
        key = i % 50
        h.write(key, 100_000 + i, [i, 0, node], node=node)
        final_reg[key] = {"key": key, "value": 100_000 + i, "ts": [i, 0, node]}
        h.reg_read(key, 100_000 + i, node=node)
        if i % 100 == 0:
            h.set_read(list(range(max(1, i - 300), i + 1)), node=node)
    node_rows = {"set": final_set, "register": list(final_reg.values())}
    final = {
        "converged": True,
        "workloads": {"set": "set", "register": "register"},
        "nodes": {str(n): node_rows for n in (1, 2, 3)},
    }
    report = check(h.records, final)  # comparing all pairs instead would run into pytest's timeout
    assert {c.name for c in report.checks if not c.ok} == {"monotonic-reads[set]"}  # windows drop old values
