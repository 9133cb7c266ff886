"""Causal tokens with three real node processes behind the fault proxy: ``@@marmot_last_commit_ts`` after
a write on node 1, handed to a session on node 3 with ``SET marmot_read_after``, makes that session
wait until node 3 has applied the write (it was cut off during the write, and catches up once healed);
a token no node ever committed gives 1105 after ``read_timeout_ms``; a malformed one 1231."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from marmot.testing.faultproxy import ProxyPool
from marmot.testing.nodes import NodeProcess
from tests.support import connect, proxied_cluster, run, wait_until_equal

READ_TIMEOUT_MS = 3000


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[NodeProcess], ProxyPool]]:
    with proxied_cluster(
        tmp_path_factory.mktemp("causal"), replication_extra=f"read_timeout_ms = {READ_TIMEOUT_MS}\n"
    ) as got:
        yield got


def test_token_waits_for_the_write_to_arrive(proxied: tuple[list[NodeProcess], ProxyPool]) -> None:
    nodes, proxy = proxied
    n1, _, n3 = nodes
    run(n1, "CREATE TABLE causal (id INT PRIMARY KEY, v TEXT)")
    wait_until_equal(nodes, "SELECT COUNT(*) FROM causal", expected=((0,),))

    proxy.isolate(3)  # node 3 misses the PREPARE and the COMMIT; nodes 1 and 2 make the quorum
    try:
        writer = connect(n1)
        cur = writer.cursor()
        cur.execute("INSERT INTO causal VALUES (1, 'carried')")
        cur.execute("SELECT @@marmot_last_commit_ts")
        token = cur.fetchall()[0][0]
        writer.close()
        assert run(n3, "SELECT v FROM causal WHERE id = 1") == ()  # the write has not reached node 3

        got: dict[str, Any] = {}

        def reader() -> None:
            conn = connect(n3)
            try:
                c = conn.cursor()
                started = time.monotonic()
                c.execute("SET marmot_read_after = %s", (token,))
                got["waited"] = time.monotonic() - started
                c.execute("SELECT v FROM causal WHERE id = 1")
                got["rows"] = c.fetchall()
            except Exception as err:  # reported below, with what the test expected
                got["error"] = err
            finally:
                conn.close()

        t = threading.Thread(target=reader)
        t.start()
        time.sleep(0.5)  # the SET is waiting now: node 3 cannot have the write while isolated
    finally:
        proxy.heal()
    t.join(timeout=60)
    assert "error" not in got, got
    assert got["rows"] == (("carried",),)
    assert got["waited"] >= 0.3  # it did wait for the heal (bounded loosely: the machine is loaded)


def test_token_that_never_arrives_gives_1105(proxied: tuple[list[NodeProcess], ProxyPool]) -> None:
    nodes, _ = proxied
    never = f"{time.time_ns()}.0.1"  # a timestamp at which node 1 committed nothing
    conn = connect(nodes[2])
    try:
        started = time.monotonic()
        with pytest.raises(pymysql.err.OperationalError) as err:
            conn.cursor().execute("SET marmot_read_after = %s", (never,))
        assert err.value.args[0] == 1105 and "marmot_read_after" in err.value.args[1]
        assert time.monotonic() - started >= READ_TIMEOUT_MS / 1000 * 0.9
        with pytest.raises(pymysql.err.MySQLError) as bad:
            conn.cursor().execute("SET marmot_read_after = 'yesterday'")
        assert bad.value.args[0] == 1231
        conn.cursor().execute("SET marmot_read_after = ''")  # an empty token waits for nothing
    finally:
        conn.close()
