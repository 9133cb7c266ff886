"""The hooks the fault tests (tests/chaos) rely on: ``@@marmot_last_commit_ts`` (each write's LWW
timestamp, returned to the client), the test-only clock offset file (skew changed at run time) and the
failpoints file (failpoints armed and disarmed at run time)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pymysql
import pytest

from marmot.testing import NodeProcess, make_node
from tests.support import connect


@contextmanager
def hooked_node(tmp: Path, node_id: int, env: dict[str, str]) -> Iterator[tuple[NodeProcess, object]]:
    """A single node started with test-hook environment, and an autocommit cursor on it."""
    node = make_node(tmp / "n", node_id=node_id)
    node.env.update(env)
    node.start()
    try:
        c = connect(node)
        try:
            yield node, c.cursor()
        finally:
            c.close()
    finally:
        node.stop()


def _ts(cur) -> tuple[int, int, int]:
    cur.execute("SELECT @@marmot_last_commit_ts")
    wall, logical, node = (int(p) for p in cur.fetchone()[0].split("."))
    return wall, logical, node


def test_last_commit_ts_and_runtime_clock_offset(tmp_path):
    offset_file = tmp_path / "clock.ms"
    offset_file.write_text("60000")
    with hooked_node(tmp_path, 7, {"MARMOT_CLOCK_OFFSET_FILE": str(offset_file)}) as (node, cur):
        cur.execute("SELECT @@marmot_last_commit_ts")
        assert cur.fetchone()[0] == ""  # nothing committed on this session yet
        cur.execute("CREATE TABLE h (id INT PRIMARY KEY, v INT)")
        ddl = _ts(cur)
        cur.execute("INSERT INTO h VALUES (1, 1)")
        first = _ts(cur)
        assert first > ddl and first[2] == 7
        # the node's clock runs a minute ahead: its commit timestamps say so
        assert abs(first[0] / 1e9 - (time.time() + 60)) < 10
        cur.execute("BEGIN")
        cur.execute("UPDATE h SET v = 2 WHERE id = 1")
        assert _ts(cur) == first  # not committed yet
        cur.execute("COMMIT")
        second = _ts(cur)
        assert second > first
        # moved at run time, forwards...
        offset_file.write_text("3600000")
        deadline = time.monotonic() + 5
        while True:
            cur.execute("INSERT INTO h VALUES (2, 2) ON DUPLICATE KEY UPDATE v = v + 1")
            if _ts(cur)[0] / 1e9 > time.time() + 3000:
                break
            assert time.monotonic() < deadline, "the new offset was not picked up"
            time.sleep(0.05)
        ahead = _ts(cur)
        # ...and backwards: the HLC never goes back, so timestamps stay above the last one
        offset_file.write_text("-5000")
        time.sleep(0.3)
        cur.execute("UPDATE h SET v = 9 WHERE id = 1")
        assert _ts(cur) > ahead
        assert "clock offset now -5000 ms" in node.log_path.read_text()
        # a rolled-back transaction and a failed statement leave the last value alone
        cur.execute("BEGIN")
        cur.execute("UPDATE h SET v = 10 WHERE id = 1")
        cur.execute("ROLLBACK")
        last = _ts(cur)
        with pytest.raises(pymysql.err.IntegrityError):
            cur.execute("INSERT INTO h VALUES (1, 1)")
        assert _ts(cur) == last


def test_failpoints_armed_and_disarmed_at_run_time(tmp_path):
    fp_file = tmp_path / "failpoints"
    fp_file.write_text("")
    with hooked_node(tmp_path, 3, {"MARMOT_FAILPOINTS_FILE": str(fp_file)}) as (node, cur):
        cur.execute("CREATE TABLE f (id INT PRIMARY KEY)")

        def timed_insert(i: int) -> float:
            t0 = time.monotonic()
            cur.execute("INSERT INTO f VALUES (%s)", (i,))
            return time.monotonic() - t0

        assert timed_insert(1) < 0.8
        fp_file.write_text("coordinator_after_prepare=sleep:1*")
        time.sleep(0.3)  # read every 50 ms
        assert timed_insert(2) >= 1.0 and timed_insert(3) >= 1.0  # "*": every time while armed
        fp_file.write_text("")
        time.sleep(0.3)
        assert timed_insert(4) < 0.8
        log = node.log_path.read_text()
        assert "failpoints now 'coordinator_after_prepare=sleep:1*'" in log and "failpoints now ''" in log
