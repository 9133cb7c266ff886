"""Offline checker for a chaos run: reads the history (JSONL) and final state (JSON), checks properties.

Why offline: the harness only records what clients saw and what each node held at the end, so a run
can be re-checked (or the checker fixed) without re-running a cluster:
``python -m tests.chaos.checker HISTORY.jsonl FINAL.json`` prints ``PASS``/``FAIL`` lines, ``NOTE``
lines, then ``N passed, M failed``, and exits 1 when a check failed.

What is strict and what is only reported follows Marmot's promises under last-writer-wins: nodes
converge, acknowledged writes survive (possibly under a later LWW version), nobody reads a value that
was never written or whose write definitely failed, one node's reads never go back in time, and a read
at QUORUM or ALL is never older than a write acknowledged before it began (``stale-read``). A
later write losing to clock skew, or money created by concurrent ONE-level transfers, is what LWW
legitimately does, so those are NOTEs, never failures.

An op's outcome: ``ok`` applied, ``fail`` definitely not applied, ``info`` (or no completion at all,
when the run ended first) unknown, so it may or may not show up anywhere.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_EXAMPLES = 5
Ts = tuple[int, ...]
# Sorts before every real timestamp: a register read of an absent row is "minus infinity".
NULL_TS: Ts = ()
# The column that names a row of each workload kind (what "the same row on another node" means).
IDENTITY = {"set": "value", "register": "key", "bank": "account"}
COMPLETIONS = frozenset({"ok", "fail", "info", "unknown"})  # "unknown" is the harness's name for "info"


@dataclass(frozen=True)
class Check:
    """One pass/fail property; ``details`` explains a failure with a few examples and counts."""

    name: str
    ok: bool
    details: str = ""


@dataclass(frozen=True)
class Note:
    """A report-only finding: behaviour LWW allows but worth knowing about, or statistics of the run."""

    name: str
    count: int
    details: str = ""


@dataclass
class Report:
    """Every check and note of one run, in print order."""

    checks: list[Check] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return sum(c.ok for c in self.checks)

    @property
    def failed(self) -> int:
        return len(self.checks) - self.passed

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def find_check(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)

    def find_note(self, name: str) -> Note | None:
        return next((n for n in self.notes if n.name == name), None)

    def summary(self) -> str:
        lines = [f"PASS {c.name}" if c.ok else f"FAIL {c.name}: {c.details}" for c in self.checks]
        lines += [f"NOTE {n.name}: {n.details}" for n in self.notes]
        lines.append(f"{self.passed} passed, {self.failed} failed")
        return "\n".join(lines)


@dataclass
class Op:
    """One client operation: its invoke and completion records merged (they share ``id``)."""

    id: Any
    workload: str
    kind: str | None
    f: str
    proc: Any = None
    node: Any = None
    level: str | None = None
    key: Any = None
    arg: Any = None  # the invoke's value: what a write/add/transfer tried to write
    status: str = "info"  # no completion (the run ended first) is as unknown as an info
    result: Any = None  # an ok read's value
    ts: Ts | None = None
    invoke_t: float = float("-inf")  # no invoke seen: never "after" anything, so no false ordering
    complete_t: float = float("inf")

    @property
    def is_write(self) -> bool:
        return self.f != "read"

    @property
    def ok_read(self) -> bool:
        return self.f == "read" and self.status == "ok"


@dataclass
class History:
    """A parsed history: ops, bank setup records by workload, nemesis records."""

    ops: list[Op]
    setups: dict[str, dict[str, Any]]
    nemesis: list[dict[str, Any]]


class _Findings:
    """Counts problems but keeps only the first few descriptions: a broken run can have thousands."""

    def __init__(self) -> None:
        self.count = 0
        self.examples: list[str] = []

    def add(self, text: str) -> None:
        self.count += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(text)

    def text(self) -> str:
        more = self.count - len(self.examples)
        return "; ".join(self.examples) + (f"; ... (+{more} more)" if more > 0 else "")


# -- parsing ----------------------------------------------------------------------------------------------


def _ts(raw: Any) -> Ts | None:
    return None if raw is None else tuple(int(x) for x in raw)


def _fmt_ts(ts: Ts | None) -> str:
    if ts is None:
        return "?"
    return "null" if ts == NULL_TS else "[" + ",".join(map(str, ts)) + "]"


def _node_order(n: Any) -> tuple[int, str]:
    return (len(str(n)), str(n))


def _sorted(items: Iterable[Any]) -> list[Any]:
    """Sorted when comparable, else by repr: a malformed row must not crash the report."""
    items = list(items)
    try:
        return sorted(items)
    except TypeError:
        return sorted(items, key=repr)


def _merge(ops: dict[Any, Op], rec: dict[str, Any]) -> None:
    op = ops.get(rec.get("id"))
    if op is None:
        op = ops[rec.get("id")] = Op(
            rec.get("id"), str(rec.get("workload")), rec.get("kind"), str(rec.get("f"))
        )
    for name in ("proc", "node", "level", "key", "kind"):
        if rec.get(name) is not None:
            setattr(op, name, rec[name])
    t = rec.get("t")
    if rec["type"] == "invoke":
        op.arg = rec.get("value")
        if t is not None:
            op.invoke_t = float(t)
        return
    op.status = "info" if rec["type"] == "unknown" else rec["type"]
    if t is not None:
        op.complete_t = float(t)
    op.ts = _ts(rec.get("ts"))
    if op.is_write:
        if op.arg is None:
            op.arg = rec.get("value")
    elif rec["type"] == "ok":
        op.result = rec.get("value")


def parse_history(records: Iterable[dict[str, Any]]) -> History:
    """Pairs invokes with completions; unknown record types (crash, ...) are skipped."""
    ops: dict[Any, Op] = {}
    setups: dict[str, dict[str, Any]] = {}
    nemesis: list[dict[str, Any]] = []
    for rec in records:
        typ = rec.get("type")
        if typ == "setup":
            setups[str(rec.get("workload"))] = rec
        elif typ == "nemesis":
            nemesis.append(rec)
        elif typ == "invoke" or typ in COMPLETIONS:
            _merge(ops, rec)
    return History(list(ops.values()), setups, nemesis)


def load_history(path: str | Path) -> list[dict[str, Any]]:
    """The JSONL records; a torn last line (run killed mid-write) is dropped, its op then stays unknown."""
    lines = Path(path).read_text().splitlines()
    records = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if lineno == len(lines):
                break
            raise ValueError(f"{path}:{lineno}: not a JSON record") from None
    return records


def _workload_kinds(hist: History, final: dict[str, Any]) -> dict[str, str]:
    kinds = {str(k): str(v) for k, v in (final.get("workloads") or {}).items()}
    for op in hist.ops:
        if op.kind is not None:
            kinds.setdefault(op.workload, op.kind)
    for name, rec in hist.setups.items():
        kinds.setdefault(name, str(rec.get("kind", "bank")))
    for rows in (final.get("nodes") or {}).values():
        for name in rows:
            kinds.setdefault(name, name if name in IDENTITY else "unknown")
    return kinds


def _rows(nodes: dict[str, Any], name: str) -> dict[str, list[dict[str, Any]]]:
    """Each node's final rows of one workload (empty when the node has none)."""
    return {n: list(per.get(name) or []) for n, per in sorted(nodes.items(), key=lambda i: _node_order(i[0]))}


# -- convergence ------------------------------------------------------------------------------------------


def _freeze(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _freeze(x)) for k, x in v.items()))
    return v


def _index(rows: list[dict[str, Any]], ident: str | None) -> dict[Any, frozenset[Any]]:
    index: dict[Any, set[Any]] = defaultdict(set)
    for row in rows:
        frozen = _freeze(row)
        index[row.get(ident) if ident else frozen].add(frozen)
    return {k: frozenset(v) for k, v in index.items()}


def _fmt_versions(versions: frozenset[Any], ident: str | None) -> str:
    if not versions:
        return "missing"

    def fmt(row: tuple[tuple[str, Any], ...]) -> str:  # ts last: the value is what a reader compares first
        cols = sorted((kv for kv in row if kv[0] != ident), key=lambda kv: kv[0] == "ts")
        return " ".join(f"{k}={_fmt_ts(v) if k == 'ts' else v}" for k, v in cols)

    return "|".join(fmt(row) for row in _sorted(versions))


def _diff_workload(name: str, kind: str, nodes: dict[str, Any]) -> str:
    ident = IDENTITY.get(kind)
    per_node = {n: _index(rows, ident) for n, rows in _rows(nodes, name).items()}
    keys = set().union(*per_node.values())
    differing = [k for k in _sorted(keys) if len({idx.get(k, frozenset()) for idx in per_node.values()}) > 1]
    found = _Findings()
    for k in differing:
        found.add(
            f"{ident or 'row'} {k}: "
            + ", ".join(
                f"n{n} {_fmt_versions(idx.get(k, frozenset()), ident)}" for n, idx in per_node.items()
            )
        )
    return f"{name}: {found.count} rows differ ({found.text()})" if found.count else ""


def _check_convergence(final: dict[str, Any], kinds: dict[str, str]) -> Check:
    nodes = final.get("nodes") or {}
    problems = []
    if not final.get("converged"):
        problems.append(
            f"harness saw no agreement (converged={final.get('converged')!r}, "
            f"converge_seconds={final.get('converge_seconds')!r})"
        )
    if not nodes:
        problems.append("final state holds no nodes")
    for name in sorted(kinds):
        diff = _diff_workload(name, kinds[name], nodes)
        if diff:
            problems.append(diff)
    return Check("convergence", not problems, "; ".join(problems))


# -- sets and registers: what was acknowledged, what may be seen ------------------------------------------


def _levels(counter: Counter[Any]) -> str:
    return ", ".join(f"{level}={n}" for level, n in _sorted(counter.items()))


def _check_set_acked_present(name: str, ops: list[Op], nodes: dict[str, Any]) -> Check:
    present = {n: {row.get("value") for row in rows} for n, rows in _rows(nodes, name).items()}
    acked = [op for op in ops if op.is_write and op.status == "ok"]
    found, levels = _Findings(), Counter[Any]()
    for op in acked:
        missing_on = [f"n{n}" for n, values in present.items() if op.arg not in values]
        if missing_on:
            levels[op.level] += 1
            found.add(f"value {op.arg} ({op.level}, op {op.id}) missing on {','.join(missing_on)}")
    details = f"{found.count} of {len(acked)} acked adds missing (levels: {_levels(levels)}): {found.text()}"
    return Check(f"set-acked-present[{name}]", not found.count, details if found.count else "")


def _sightings(kind: str, name: str, ops: list[Op], nodes: dict[str, Any]) -> Iterator[tuple[str, set[Any]]]:
    """Every place values are seen, as (where, values): ok reads, then each node's final rows."""
    for op in ops:
        if op.ok_read:
            values = (op.result or []) if kind == "set" else ([] if op.result is None else [op.result])
            yield f"read op {op.id} on n{op.node}", set(values)
    for n, rows in _rows(nodes, name).items():
        yield f"final n{n}", {row.get("value") for row in rows}


def _check_seen(
    check: str,
    kind: str,
    name: str,
    ops: list[Op],
    nodes: dict[str, Any],
    pick: Callable[[set[Any]], set[Any]],
    what: str,
) -> Check:
    found, values = _Findings(), set()
    for where, seen in _sightings(kind, name, ops, nodes):
        for v in _sorted(pick(seen)):
            values.add(v)
            found.add(f"{v} in {where}")
    details = f"{len(values)} {what} seen {found.count} times: {found.text()}"
    return Check(f"{check}[{name}]", not found.count, details if found.count else "")


def _check_no_phantoms(kind: str, name: str, ops: list[Op], nodes: dict[str, Any]) -> Check:
    invoked = {op.arg for op in ops if op.is_write}
    return _check_seen(
        "no-phantoms", kind, name, ops, nodes, lambda seen: seen - invoked, "values nobody wrote"
    )


def _check_failed_write_visible(kind: str, name: str, ops: list[Op], nodes: dict[str, Any]) -> Check:
    failed = {op.arg for op in ops if op.is_write and op.status == "fail"}
    return _check_seen(
        "failed-write-visible", kind, name, ops, nodes, lambda seen: seen & failed, "values of failed writes"
    )


def _check_register_durable(name: str, ops: list[Op], nodes: dict[str, Any]) -> Check:
    acked = [op for op in ops if op.is_write and op.status == "ok" and op.ts is not None]
    acked_ts = {op.arg: op.ts for op in acked}
    finals = {n: {row.get("key"): row for row in rows} for n, rows in _rows(nodes, name).items()}
    found, levels = _Findings(), Counter[Any]()
    for op in acked:
        lost = []
        for n, rows in finals.items():
            row = rows.get(op.key)
            if row is None:
                lost.append(f"n{n} row missing")
                continue
            final_ts = _ts(row.get("ts"))
            if final_ts is None:
                final_ts = acked_ts.get(row.get("value"))
            if final_ts is not None and final_ts < op.ts:
                lost.append(f"n{n} holds {row.get('value')} ts {_fmt_ts(final_ts)}")
        if lost:
            levels[op.level] += 1
            found.add(
                f"key {op.key} value {op.arg} ts {_fmt_ts(op.ts)} ({op.level}, op {op.id}): {', '.join(lost)}"
            )
    details = f"{found.count} of {len(acked)} acked writes lost (levels: {_levels(levels)}): {found.text()}"
    return Check(f"register-acked-durable[{name}]", not found.count, details if found.count else "")


# -- real-time order: monotonic reads, LWW overwrites ----------------------------------------------------


def _sweep(ops: list[Op]) -> Iterator[tuple[list[Op], Op]]:
    """Walks ops in invoke order, handing along with each one the ops that completed (strictly) before it
    was invoked and after the previous step: real-time precedence in O(n log n), not over all pairs."""
    done = sorted(ops, key=lambda o: o.complete_t)
    i = 0
    for op in sorted(ops, key=lambda o: o.invoke_t):
        j = i
        while j < len(done) and done[j].complete_t < op.invoke_t:
            j += 1
        yield done[i:j], op
        i = j


def _group(ops: Iterable[Op], key: Callable[[Op], Any]) -> dict[Any, list[Op]]:
    groups: dict[Any, list[Op]] = defaultdict(list)
    for op in ops:
        groups[key(op)].append(op)
    return groups


def _check_monotonic_set(name: str, ops: list[Op]) -> Check:
    found = _Findings()
    for node, reads in _group((op for op in ops if op.ok_read), lambda op: op.node).items():
        values = {op.id: set(op.result or []) for op in reads}  # built once: reads can hold thousands
        before: list[Op] = []  # reads completed before the current one was invoked, in completion order
        union: set[Any] = set()  # everything they saw: the current read must hold all of it
        for completed, r2 in _sweep(reads):
            before += completed
            for r1 in completed:
                union |= values[r1.id]
            if not union <= values[r2.id]:
                found.add(_set_regression(node, r2, union - values[r2.id], before, values))
    return Check(
        f"monotonic-reads[{name}]",
        not found.count,
        f"{found.count} reads went back in time: {found.text()}" if found.count else "",
    )


def _set_regression(
    node: Any, r2: Op, lacking: set[Any], before: list[Op], values: dict[Any, set[Any]]
) -> str:
    example = _sorted(lacking)[0]
    r1 = next(r for r in before if example in values[r.id])
    return (
        f"n{node}: read op {r2.id} (invoked t={r2.invoke_t:.3f}) lacks {len(lacking)} values read before, "
        f"e.g. {example} (read op {r1.id}, ok t={r1.complete_t:.3f})"
    )


def _register_value_ts(ops: list[Op], nodes: dict[str, Any], name: str) -> dict[Any, Ts]:
    """A value's LWW version: its ok write's ts, else (info write, say) its ts in the final state."""
    value_ts: dict[Any, Ts] = {}
    for rows in _rows(nodes, name).values():
        for row in rows:
            ts = _ts(row.get("ts"))
            if ts is not None:
                value_ts.setdefault(row.get("value"), ts)
    for op in ops:
        if op.is_write and op.status == "ok" and op.ts is not None:
            value_ts[op.arg] = op.ts
    return value_ts


def _check_monotonic_register(name: str, ops: list[Op], value_ts: dict[Any, Ts]) -> Check:
    def read_ts(read: Op) -> Ts | None:
        return NULL_TS if read.result is None else value_ts.get(read.result)

    found = _Findings()
    reads = _group((op for op in ops if op.ok_read), lambda op: (op.node, op.key))
    for (node, key), group in reads.items():
        best: tuple[Ts, Op] | None = None  # the latest version read by an earlier-completed read
        for completed, r2 in _sweep(group):
            for r1 in completed:
                ts1 = read_ts(r1)
                if ts1 is not None and (best is None or ts1 > best[0]):
                    best = (ts1, r1)
            ts2 = read_ts(r2)
            if best is not None and ts2 is not None and ts2 < best[0]:
                found.add(
                    f"n{node} key {key}: read op {r2.id} saw {r2.result} ts {_fmt_ts(ts2)} after read op "
                    f"{best[1].id} saw {best[1].result} ts {_fmt_ts(best[0])}"
                )
    return Check(
        f"monotonic-reads[{name}]",
        not found.count,
        f"{found.count} reads went back in time: {found.text()}" if found.count else "",
    )


def _note_lww_overwritten(name: str, ops: list[Op]) -> Note | None:
    found = _Findings()
    writes = (op for op in ops if op.is_write and op.status == "ok" and op.ts is not None)
    for key, group in _group(writes, lambda op: op.key).items():
        best: tuple[Ts, Op] | None = None  # the highest-versioned write acked before this one was invoked
        for completed, w2 in _sweep(group):
            for w1 in completed:
                if w1.ts is not None and (best is None or w1.ts > best[0]):
                    best = (w1.ts, w1)
            if best is not None and w2.ts is not None and w2.ts < best[0]:
                found.add(
                    f"key {key}: write {w2.arg} ({w2.level}) ts {_fmt_ts(w2.ts)} invoked after write "
                    f"{best[1].arg} ({best[1].level}) ts {_fmt_ts(best[0])} was acked"
                )
    if not found.count:
        return None
    return Note(
        f"lww-overwritten[{name}]",
        found.count,
        f"{found.count} acked writes lost to an earlier write's higher ts: {found.text()}",
    )


# -- read levels: a read sees every write acknowledged before it began ----------------------------------

# Per checked read level, the write levels whose acknowledged writes it must see (docs/replication.md,
# "Read consistency": R sees W when their counts exceed the membership; on 3 nodes QUORUM + QUORUM does,
# ONE (this node and one peer: 2) + QUORUM does, and ALL sees everything). The chaos cluster has 3
# nodes. LOCAL_ONE reads (the plain reader's, logged with no level) may be stale.
READ_SEES: dict[str, frozenset[str]] = {
    "ONE": frozenset({"QUORUM", "ALL"}),
    "QUORUM": frozenset({"QUORUM", "ALL"}),
    "ALL": frozenset({"ONE", "QUORUM", "ALL"}),
}


def _check_stale_reads(name: str, ops: list[Op], value_ts: dict[Any, Ts]) -> tuple[Check, Note]:
    """``stale-read``: an ok read at ONE/QUORUM/ALL of key k, invoked at t, must return a value whose LWW
    version is not older than that of the newest write of k acknowledged (at a level the read sees)
    before t. The value may come from any write, acknowledged or not (a write still in flight or of
    unknown outcome may be seen), as long as it is not older. Failed reads (1105: too few nodes
    answered) carry no value and are not judged; a value whose version is unknown (an unacknowledged
    write later overwritten everywhere) is counted as unjudged."""
    found, checked, unjudged = _Findings(), 0, 0
    writer = {op.arg: op for op in ops if op.is_write}
    outcomes: Counter[str] = Counter()
    for key, group in _group(ops, lambda op: op.key).items():
        reads = [op for op in group if op.f == "read" and op.level in READ_SEES]
        for op in reads:
            outcomes[f"{op.level} {op.status}"] += 1
        for level in sorted({r.level for r in reads if r.level is not None}):
            acked = sorted(
                (
                    w
                    for w in group
                    if w.is_write and w.status == "ok" and w.ts and w.level in READ_SEES[level]
                ),
                key=lambda w: w.complete_t,
            )
            i, newest = 0, None  # the highest-versioned write acknowledged before the read began
            for r in sorted((r for r in reads if r.level == level and r.ok_read), key=lambda r: r.invoke_t):
                while i < len(acked) and acked[i].complete_t < r.invoke_t:
                    if newest is None or acked[i].ts > newest.ts:  # type: ignore[operator]
                        newest = acked[i]
                    i += 1
                got = NULL_TS if r.result is None else value_ts.get(r.result)
                if got is None:
                    unjudged += 1
                    continue
                checked += 1
                if newest is not None and newest.ts is not None and got < newest.ts:
                    found.add(_stale_text(key, r, got, writer.get(r.result), newest))
    stats = f"{checked} reads checked, {unjudged} unjudged (value of unknown version); " + ", ".join(
        f"{k}={n}" for k, n in sorted(outcomes.items())
    )
    check = Check(
        f"stale-read[{name}]",
        not found.count,
        f"{found.count} reads older than a write acknowledged before they began: {found.text()}"
        if found.count
        else "",
    )
    return check, Note(f"read-levels[{name}]", checked, stats)


def _stale_text(key: Any, r: Op, got: Ts, source: Op | None, newest: Op) -> str:
    if r.result is None:
        came = " (no row)"
    elif source is None:
        came = ""
    else:
        came = f" (write op {source.id} on n{source.node}, {source.status})"
    return (
        f"key {key}: read op {r.id} on n{r.node} at {r.level} invoked t={r.invoke_t:.3f} saw {r.result} "
        f"ts {_fmt_ts(got)}{came}, but write op {newest.id} of {newest.arg} on n{newest.node} "
        f"({newest.level}) ts {_fmt_ts(newest.ts)} was acknowledged at t={newest.complete_t:.3f}"
    )


# -- bank ----------------------------------------------------------------------------------------------


def _check_bank(
    name: str, ops: list[Op], setup: dict[str, Any] | None, nodes: dict[str, Any]
) -> tuple[Check, list[Note]]:
    check = f"bank-total[{name}]"
    if setup is None:
        return Check(check, False, "no setup record in the history"), []
    total = setup.get("total")
    notes = []
    reads = [op for op in ops if op.ok_read and isinstance(op.result, dict)]
    off_reads = [op for op in reads if sum(int(b or 0) for b in op.result.values()) != total]
    if off_reads:
        notes.append(
            Note(
                f"bank-read-total[{name}]",
                len(off_reads),
                f"{len(off_reads)} of {len(reads)} ok reads do not sum to {total}, e.g. read op "
                f"{off_reads[0].id} on n{off_reads[0].node}: {off_reads[0].result}",
            )
        )
    sums = {n: sum(int(row.get("balance") or 0) for row in rows) for n, rows in _rows(nodes, name).items()}
    off = ", ".join(f"n{n} sums to {s}" for n, s in sums.items() if s != total)
    if not off:
        return Check(check, True), notes
    # An info transfer at ONE may have committed on its coordinator exactly like an ok one.
    one = [op for op in ops if op.is_write and op.level == "ONE" and op.status in ("ok", "info")]
    if one:
        notes.append(
            Note(
                f"bank-total-one[{name}]",
                len(one),
                f"{off} (total {total}); tolerated: {len(one)} transfers at ONE (LWW may create or "
                "destroy money when two nodes update an account concurrently)",
            )
        )
        return Check(check, True, f"{off}; tolerated, transfers at ONE"), notes
    return Check(check, False, f"{off}, expected {total} (all transfers at QUORUM/ALL)"), notes


# -- statistics ----------------------------------------------------------------------------------------


def _stat_notes(hist: History) -> list[Note]:
    info = Counter(op.workload for op in hist.ops if op.status == "info")
    outcomes: dict[str, Counter[str]] = defaultdict(Counter)
    for op in hist.ops:
        outcomes[f"{op.workload} {op.f}" + (f"@{op.level}" if op.level else "")][op.status] += 1
    faults = Counter(str(rec.get("fault")) for rec in hist.nemesis if rec.get("phase", "start") == "start")
    return [
        Note(
            "indeterminate",
            sum(info.values()),
            f"{sum(info.values())} info ops" + (f" ({_levels(info)})" if info else ""),
        ),
        Note(
            "outcomes",
            len(hist.ops),
            f"{len(hist.ops)} ops: "
            + "; ".join(
                f"{label} ok={c['ok']} fail={c['fail']} info={c['info']}"
                for label, c in sorted(outcomes.items())
            ),
        ),
        Note(
            "nemesis",
            sum(faults.values()),
            f"{sum(faults.values())} faults" + (f" ({_levels(faults)})" if faults else ""),
        ),
    ]


# -- entry points --------------------------------------------------------------------------------------


def _check_workload(
    name: str, kind: str, ops: list[Op], hist: History, nodes: dict[str, Any]
) -> tuple[list[Check], list[Note]]:
    if kind == "bank":
        check, notes = _check_bank(name, ops, hist.setups.get(name), nodes)
        return [check], notes
    if kind not in ("set", "register"):
        return [], []
    checks = [_check_set_acked_present(name, ops, nodes)] if kind == "set" else []
    checks += [
        _check_no_phantoms(kind, name, ops, nodes),
        _check_failed_write_visible(kind, name, ops, nodes),
    ]
    if kind == "set":
        return checks + [_check_monotonic_set(name, ops)], []
    value_ts = _register_value_ts(ops, nodes, name)
    checks += [
        _check_register_durable(name, ops, nodes),
        _check_monotonic_register(name, ops, value_ts),
    ]
    lww = _note_lww_overwritten(name, ops)
    notes = [lww] if lww else []
    if any(op.f == "read" and op.level in READ_SEES for op in ops):  # only workloads that read at a level
        stale, stats = _check_stale_reads(name, ops, value_ts)
        checks.append(stale)
        notes.append(stats)
    return checks, notes


def check(history: Iterable[dict[str, Any]], final: dict[str, Any]) -> Report:
    """Checks one run: ``history`` as the JSONL records, ``final`` as the final-state document."""
    hist = parse_history(history)
    kinds = _workload_kinds(hist, final)
    nodes = final.get("nodes") or {}
    by_workload = _group(hist.ops, lambda op: op.workload)
    report = Report([_check_convergence(final, kinds)])
    for name in sorted(kinds):
        checks, notes = _check_workload(name, kinds[name], by_workload.get(name, []), hist, nodes)
        report.checks += checks
        report.notes += notes
    report.notes += _stat_notes(hist)
    return report


def check_files(history_path: str | Path, final_path: str | Path) -> Report:
    """Checks a run from its files (``history.jsonl``, ``final.json``)."""
    return check(load_history(history_path), json.loads(Path(final_path).read_text()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.chaos.checker",
        description="Check a chaos run's history against its final state.",
    )
    parser.add_argument("history", type=Path, help="history.jsonl of the run")
    parser.add_argument("final", type=Path, help="final.json of the run")
    args = parser.parse_args(argv)
    report = check_files(args.history, args.final)
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
