"""Two-phase commit under node loss: 3 real node processes at QUORUM, SIGKILL at each phase.

What must hold (issue "Replicated writes", point 5): no acknowledged write is lost when any one node dies
at any moment; a transaction whose coordinator died before deciding leaves no trace and its intents expire
after ``heartbeat_timeout_seconds``; a node that prepared but missed the COMMIT learns the outcome from a
peer that committed, instead of aborting it. Exact moments are hit with test-only failpoints
(``marmot/failpoints.py``, set through the node's environment), not with lucky timing.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator

import pymysql
import pytest

from marmot.testing import LocalCluster, NodeProcess, member_states
from tests.support import connect, wait_for

HEARTBEAT = 2  # [transaction] heartbeat_timeout_seconds for these tests


def query(node: NodeProcess, sql: str, args: tuple = ()) -> tuple:
    c = connect(node, read_timeout=30)
    try:
        cur = c.cursor()
        cur.execute(sql, args)
        return tuple(cur.fetchall())
    finally:
        c.close()


def rows_on(node: NodeProcess, table: str) -> tuple:
    return query(node, f"SELECT * FROM {table} ORDER BY id")


@pytest.fixture
def trio(tmp_path) -> Iterator[tuple[list[NodeProcess], dict]]:
    """Three nodes with a short heartbeat timeout and table ``acct`` on all of them; SIGKILLed afterwards."""
    with LocalCluster(
        3,
        tmp_path,
        extra_toml=f"[transaction]\nheartbeat_timeout_seconds = {HEARTBEAT}\n",
        stop_signal=signal.SIGKILL,
    ) as cluster:
        nodes = cluster.nodes
        query(nodes[0], "CREATE TABLE acct (id INT PRIMARY KEY, v INT)")
        for n in nodes:
            wait_for(lambda n=n: query(n, "SHOW TABLES LIKE 'acct'") == (("acct",),))
        yield nodes, {}


def restart(node: NodeProcess, failpoints: str = "") -> None:
    node.stop(signal.SIGKILL)
    node.env = {"MARMOT_FAILPOINTS": failpoints} if failpoints else {}
    node.start()


def wait_alive(nodes: list[NodeProcess], count: int) -> None:
    for n in nodes:
        wait_for(lambda n=n: list(member_states(n).values()).count("ALIVE") >= count, timeout=20)


def write_in_thread(node: NodeProcess, sql: str) -> dict:
    """Run ``sql`` on ``node`` in a thread; the returned dict gets "ok" or "error" when it finishes."""
    out: dict = {}

    def run() -> None:
        try:
            query(node, sql)
            out["ok"] = True
        except Exception as e:  # the node may be killed under the client: that is the point
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    out["thread"] = t
    return out


def test_participant_down_before_prepare(trio):
    """A dead participant: QUORUM still commits with the other two; both have every acknowledged row."""
    nodes, _ = trio
    n1, n2, n3 = nodes
    n3.stop(signal.SIGKILL)
    for i in range(20):
        query(n1 if i % 2 else n2, "INSERT INTO acct VALUES (%s, %s)", (i, i))
    expected = tuple((i, i) for i in range(20))
    wait_for(lambda: rows_on(n1, "acct") == expected and rows_on(n2, "acct") == expected)


def test_participant_killed_between_prepare_and_commit(trio):
    nodes, _ = trio
    n1, n2, n3 = nodes
    restart(n1, "coordinator_after_prepare=sleep:3")
    wait_alive(nodes, 3)
    w = write_in_thread(n1, "INSERT INTO acct VALUES (1, 100)")
    time.sleep(1.0)  # n1 sits between PREPARE and COMMIT
    n2.stop(signal.SIGKILL)
    w["thread"].join(30)
    assert w.get("ok"), w.get("error")  # acknowledged: n1 and n3 have it
    assert rows_on(n1, "acct") == ((1, 100),)
    wait_for(lambda: rows_on(n3, "acct") == ((1, 100),))


def test_coordinator_killed_between_prepare_and_commit(trio):
    """Nothing was acknowledged; the survivors abort once the heartbeat timeout passes (their intents do
    not block the rows forever) and agree that the row does not exist."""
    nodes, _ = trio
    n1, n2, n3 = nodes
    restart(n1, "coordinator_after_prepare=sleep:30")
    wait_alive(nodes, 3)
    w = write_in_thread(n1, "INSERT INTO acct VALUES (7, 700)")
    time.sleep(1.0)
    n1.stop(signal.SIGKILL)
    w["thread"].join(10)
    assert not w.get("ok")
    # the intent on row 7 expires: a new write of that row succeeds within the timeout plus a margin
    deadline = time.monotonic() + HEARTBEAT + 10
    while True:
        try:
            query(n2, "INSERT INTO acct VALUES (7, 777)")
            break
        except pymysql.err.OperationalError as e:
            assert e.args[0] in (1213, 1105), e
            assert time.monotonic() < deadline, f"intent never expired: {e}"
            time.sleep(0.5)
    wait_for(lambda: rows_on(n2, "acct") == ((7, 777),) and rows_on(n3, "acct") == ((7, 777),))


def test_coordinator_killed_during_commit(trio):
    """The decision reached one participant, then the coordinator died: the acknowledged-nowhere but
    committed-somewhere transaction must not be aborted by the other participant — it learns the
    commit from its peer and applies it."""
    nodes, _ = trio
    n1, n2, n3 = nodes
    restart(n1, "coordinator_partial_commit=sleep:30")
    wait_alive(nodes, 3)
    w = write_in_thread(n1, "INSERT INTO acct VALUES (5, 500)")
    time.sleep(1.5)  # one of n2/n3 has committed, the other only prepared
    n1.stop(signal.SIGKILL)
    w["thread"].join(10)
    assert not w.get("ok")
    wait_for(
        lambda: rows_on(n2, "acct") == ((5, 500),) and rows_on(n3, "acct") == ((5, 500),),
        timeout=HEARTBEAT + 15,
    )


def test_coordinator_killed_before_local_commit(trio):
    """Killed after a quorum of peers committed but before applying locally: the client never got an
    answer; the two peers have the row; the restarted coordinator does not undo anything."""
    nodes, _ = trio
    n1, n2, n3 = nodes
    restart(n1, "coordinator_before_local_commit=exit")
    wait_alive(nodes, 3)
    w = write_in_thread(n1, "INSERT INTO acct VALUES (9, 900)")
    w["thread"].join(15)
    assert not w.get("ok")
    wait_for(
        lambda: rows_on(n2, "acct") == ((9, 900),) and rows_on(n3, "acct") == ((9, 900),),
        timeout=HEARTBEAT + 15,
    )
    restart(n1)
    wait_alive(nodes, 3)
    query(n2, "UPDATE acct SET v = 901 WHERE id = 9")  # the row is writable again through the cluster
    wait_for(lambda: rows_on(n3, "acct") == ((9, 901),))


def test_participant_killed_during_commit(trio):
    """A participant dies as the COMMIT arrives: the coordinator still has a quorum (itself and the
    other participant), so the client gets OK and both have the row."""
    nodes, _ = trio
    n1, n2, n3 = nodes
    restart(n2, "participant_before_commit=exit")
    wait_alive(nodes, 3)
    query(n1, "INSERT INTO acct VALUES (3, 300)")
    assert rows_on(n1, "acct") == ((3, 300),)
    wait_for(lambda: rows_on(n3, "acct") == ((3, 300),))


def test_quorum_lost_refuses_with_1105(trio):
    nodes, _ = trio
    n1, n2, n3 = nodes
    n2.stop(signal.SIGKILL)
    n3.stop(signal.SIGKILL)
    wait_for(lambda: list(member_states(n1).values()).count("ALIVE") == 1, timeout=20)
    with pytest.raises(pymysql.err.OperationalError) as ei:
        query(n1, "INSERT INTO acct VALUES (1, 1)")
    assert ei.value.args[0] == 1105 and "quorum" in ei.value.args[1]
    assert rows_on(n1, "acct") == ()
