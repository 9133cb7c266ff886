"""GET_LOCK and friends held cluster-wide (issue 13 point 5): a lock taken through one node is taken for
every node, freed by RELEASE_LOCK, by the end of its session, and when its node dies (SIGKILL: membership
declares it DEAD and every member drops its grants). ``replication/named_locks.py`` has the design,
including what a partition does (pinned by the last test)."""

from __future__ import annotations

import signal
import threading
import time

from tests.support import cluster_fixture, connect, proxied_cluster, wait_for

cluster = cluster_fixture(3)


def _one(cur, sql: str, *args: object) -> object:
    cur.execute(sql, args or None)
    return cur.fetchone()[0]


def test_a_lock_taken_through_one_node_is_taken_for_the_others(cluster):
    n1, n2, n3 = cluster
    a, b, c = connect(n1), connect(n2), connect(n3)
    try:
        ca, cb, cc = a.cursor(), b.cursor(), c.cursor()
        a_id = _one(ca, "SELECT CONNECTION_ID()")
        assert _one(ca, "SELECT GET_LOCK('migrations', 0)") == 1
        assert _one(ca, "SELECT GET_LOCK('migrations', 0)") == 1  # re-entrant, as MySQL
        assert _one(cb, "SELECT GET_LOCK('migrations', 0)") == 0
        assert _one(cb, "SELECT IS_FREE_LOCK('migrations')") == 0
        assert _one(cc, "SELECT IS_USED_LOCK('migrations')") == a_id
        started = time.monotonic()
        assert _one(cb, "SELECT GET_LOCK(%s, %s)", "migrations", 0.5) == 0  # waits its timeout, then 0
        assert time.monotonic() - started >= 0.4
        assert _one(cc, "SELECT RELEASE_LOCK('migrations')") == 0  # held by another session
        assert _one(ca, "SELECT RELEASE_LOCK('migrations')") == 1
        assert _one(cb, "SELECT GET_LOCK('migrations', 0)") == 0  # still held once
        # a waiter on node 2 gets the lock when node 1's session releases it
        got: list[object] = []
        waiter = threading.Thread(target=lambda: got.append(_one(cb, "SELECT GET_LOCK('migrations', 30)")))
        waiter.start()
        time.sleep(0.5)
        assert _one(ca, "SELECT RELEASE_LOCK('migrations')") == 1
        waiter.join(40)
        assert got == [1]
        assert _one(cc, "SELECT IS_FREE_LOCK('migrations')") == 0
        assert _one(ca, "SELECT RELEASE_LOCK('migrations')") == 0
        assert _one(cb, "SELECT RELEASE_ALL_LOCKS()") == 1
        assert _one(cc, "SELECT IS_FREE_LOCK('migrations')") == 1
        assert _one(cc, "SELECT RELEASE_LOCK('migrations')") is None  # nobody holds it
    finally:
        for conn in (a, b, c):
            conn.close()


def test_a_lock_ends_with_its_session(cluster):
    n1, n2, _n3 = cluster
    a = connect(n1)
    b = connect(n2)
    try:
        assert _one(a.cursor(), "SELECT GET_LOCK('session_bound', 0)") == 1
        assert _one(b.cursor(), "SELECT GET_LOCK('session_bound', 0)") == 0
        a.close()
        assert _one(b.cursor(), "SELECT GET_LOCK('session_bound', 20)") == 1
    finally:
        b.close()


def test_a_lock_is_freed_when_its_node_is_killed(cluster):
    n1, _n2, n3 = cluster
    holder = connect(n3)
    assert _one(holder.cursor(), "SELECT GET_LOCK('node_bound', 0)") == 1
    a = connect(n1)
    try:
        cur = a.cursor()
        assert _one(cur, "SELECT GET_LOCK('node_bound', 0)") == 0
        n3.stop(signal.SIGKILL)
        started = time.monotonic()
        # node 3 is declared DEAD after the test timers' dead timeout; the grants of its session go with it
        assert _one(cur, "SELECT GET_LOCK('node_bound', 60)") == 1
        assert time.monotonic() - started < 60
        wait_for(lambda: _one(cur, "SELECT IS_USED_LOCK('node_bound')") is not None, 10, "lock held")
    finally:
        a.close()
        holder.close()


def test_partition_minority_cannot_lock_majority_takes_over(tmp_path):
    with proxied_cluster(tmp_path) as (nodes, pool):
        n1, _n2, n3 = nodes
        holder, other, a = connect(n3), connect(n3), connect(n1)
        try:
            hid = _one(holder.cursor(), "SELECT CONNECTION_ID()")
            assert _one(holder.cursor(), "SELECT GET_LOCK('cut', 0)") == 1
            assert _one(a.cursor(), "SELECT GET_LOCK('cut', 0)") == 0
            pool.isolate(3)
            # the minority side cannot gather a majority of grants: GET_LOCK waits its timeout, then 0
            assert _one(other.cursor(), "SELECT GET_LOCK('minority', 1)") == 0
            # the majority declares node 3 DEAD, drops its grants and may grant the name again ...
            assert _one(a.cursor(), "SELECT GET_LOCK('cut', 60)") == 1
            # ... while the cut-off session still holds it as far as its own node knows (documented)
            assert _one(holder.cursor(), "SELECT IS_USED_LOCK('cut')") == hid
            pool.heal()
            assert _one(holder.cursor(), "SELECT RELEASE_LOCK('cut')") == 1
            wait_for(
                lambda: (
                    _one(other.cursor(), "SELECT IS_USED_LOCK('cut')")
                    == _one(a.cursor(), "SELECT CONNECTION_ID()")
                ),
                30,
                "after the heal every node sees node 1's session as the holder",
                ignore=(Exception,),
            )
        finally:
            for conn in (holder, other, a):
                conn.close()
