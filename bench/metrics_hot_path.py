"""Cost per call of the metrics a node updates on its hot paths (``marmot.admin.metrics.Metrics``): every
query, error, connection, membership transition, gossip round and transaction touches one.

Why a benchmark and not a test: a microsecond figure depends on the machine and its load, so it is
printed, never asserted (it used to run inside the unit tests). The target the code aims at is under
2 µs per call.

Usage: ``.venv/bin/python bench/metrics_hot_path.py [--calls 20000]``
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from marmot.admin.metrics import Metrics


def hot_paths(m: Metrics) -> dict[str, Callable[[], object]]:
    return {
        "observe_query": lambda: m.observe_query("select", 0.0007),
        "query_error": lambda: m.query_error(1064),
        "connection_opened": m.connection_opened,
        "connection_closed": m.connection_closed,
        "state_transition": lambda: m.state_transition("ALIVE", "SUSPECT"),
        "gossip_round": lambda: m.gossip_round(True),
        "txn_finished": lambda: m.txn_finished("autocommit", "committed"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20_000, help="calls per metric (default 20000)")
    args = parser.parse_args(argv)
    for name, fn in hot_paths(Metrics(1)).items():
        fn()  # the first call creates the labelled child
        t0 = time.perf_counter()
        for _ in range(args.calls):
            fn()
        per_call = (time.perf_counter() - t0) / args.calls * 1e6
        print(f"metrics hot path: {name:18s} {per_call:.2f} us/call (target < 2 us)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
