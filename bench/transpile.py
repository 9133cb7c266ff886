"""Transpile cost on a recorded WordPress statement stream: µs per statement and plan-cache hit rate.

The stream (``bench/data/wordpress-general.log``) is the general query log of the WordPress end-to-end
test (installer, login, REST posts, comments, front-end pages); re-record it with
``MARMOT_RECORD_WORDPRESS=$PWD/bench/data/wordpress-general.log .venv/bin/pytest tests/integration/test_wordpress.py``.

The statements are replayed in order through a real ``Session`` on a fresh data directory (so the schema
evolves as it did for WordPress), timing the two transpile stages separately:

- ``normalize``: the lexer turning a statement into its literal-free shape (every statement pays it);
- ``plan``: the plan-cache lookup, and on a miss the sqlglot parse + rules + SQLite rendering.

It also reports the hit rate the cache would have had if keyed on the raw SQL text (what a naive cache
gets from a client that interpolates literals, as WordPress's mysqli does).

Usage: ``.venv/bin/python bench/transpile.py [LOG] [--cache-size N]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from marmot.engine.context import EngineContext  # noqa: E402
from marmot.engine.errors import MySQLError  # noqa: E402
from marmot.engine.session import Session  # noqa: E402
from marmot.engine.variables import default_globals  # noqa: E402
from marmot.ids import CompactIdGenerator  # noqa: E402
from marmot.sql import lexer  # noqa: E402
from marmot.storage.databases import DatabaseManager  # noqa: E402

DEFAULT_LOG = REPO / "bench" / "data" / "wordpress-general.log"


def read_log(path: Path) -> list[str]:
    out = []
    for line in path.read_text(encoding="utf-8", errors="surrogateescape").splitlines():
        parts = line.split("\t", 3)
        if len(parts) == 4 and parts[2] in ("Query", "Execute"):
            out.append(parts[3])
    return out


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def replay(statements: list[str], cache_size: int) -> dict[str, object]:
    data = tempfile.mkdtemp(prefix="marmot-transpile-bench-")
    ctx = EngineContext(
        DatabaseManager(data),
        CompactIdGenerator(1),
        default_globals("8.0.36", 1 << 26, 100),
        transpiler_cache_size=cache_size,
    )
    ctx.databases.create("wordpress")  # WordPress connects with its database selected
    session = Session(ctx, 1, "root", "wordpress")
    transpiler = ctx.transpiler
    timings = {"normalize": [], "plan_hit": [], "plan_miss": []}
    original_plan = transpiler.plan

    def timed_plan(norm, database, generation, original):
        misses = transpiler.cache.misses
        t0 = time.perf_counter_ns()
        plan = original_plan(norm, database, generation, original)
        dt = (time.perf_counter_ns() - t0) / 1000
        timings["plan_miss" if transpiler.cache.misses > misses else "plan_hit"].append(dt)
        return plan

    transpiler.plan = timed_plan  # type: ignore[method-assign]
    errors = 0
    for sql in statements:
        for stmt in Session.split(sql):
            lexer._CACHE.clear()  # measure the lexer as it runs for a statement it has not seen
            t0 = time.perf_counter_ns()
            with contextlib.suppress(lexer.LexError):
                lexer.normalize(stmt)
            timings["normalize"].append((time.perf_counter_ns() - t0) / 1000)
            try:
                await session.execute(stmt)
            except MySQLError:
                errors += 1
    session.close()
    ctx.databases.close()
    return {
        "timings": timings,
        "errors": errors,
        "hits": transpiler.cache.hits,
        "misses": transpiler.cache.misses,
        "entries": len(transpiler.cache),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("log", nargs="?", default=str(DEFAULT_LOG))
    ap.add_argument("--cache-size", type=int, default=10000)
    args = ap.parse_args()
    statements = read_log(Path(args.log))
    texts = [s for sql in statements for s in Session.split(sql)]
    shapes = set()
    for s in texts:
        try:
            shapes.add(lexer.normalize(s).shape)
        except lexer.LexError:
            shapes.add(s)
    result = asyncio.run(replay(statements, args.cache_size))
    t = result["timings"]
    planned = result["hits"] + result["misses"]
    text_hit_rate = 1 - len(set(texts)) / len(texts)
    rows = [
        ("statements in the stream", f"{len(texts)}"),
        ("distinct statement texts", f"{len(set(texts))}"),
        ("distinct shapes (literals removed)", f"{len(shapes)}"),
        ("statements that reached the transpiler", f"{planned}"),
        ("plan-cache hit rate, shape key (ours)", f"{result['hits'] / planned:.1%}" if planned else "-"),
        ("hit rate a raw-text key would get", f"{text_hit_rate:.1%}"),
        (
            "normalize µs p50 / mean / p99",
            f"{pct(t['normalize'], 0.5):.1f} / {statistics.fmean(t['normalize']):.1f} / {pct(t['normalize'], 0.99):.1f}",
        ),
        (
            "plan hit µs p50 / mean",
            f"{pct(t['plan_hit'], 0.5):.2f} / {statistics.fmean(t['plan_hit'] or [0]):.2f}",
        ),
        (
            "plan miss (sqlglot + rules) µs p50 / mean / p99",
            f"{pct(t['plan_miss'], 0.5):.0f} / {statistics.fmean(t['plan_miss'] or [0]):.0f} / {pct(t['plan_miss'], 0.99):.0f}",
        ),
        (
            "total transpile µs per statement, mean",
            f"{(sum(t['normalize']) + sum(t['plan_hit']) + sum(t['plan_miss'])) / max(1, len(texts)):.1f}",
        ),
        ("errors returned while replaying (mostly 1146 probes)", f"{result['errors']}"),
    ]
    print("| measure | value |\n|---|---:|")
    for k, v in rows:
        print(f"| {k} | {v} |")


if __name__ == "__main__":
    main()
