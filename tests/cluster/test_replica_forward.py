"""Writes forwarded from a read-only replica to a three-node cluster, with real node processes.

The ``forward`` RPC driven directly (as a replica sends it): a retried request id is answered from
memory and applied once cluster-wide, and the answer carries a causal token another node accepts.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from marmot.cluster.rpc import ClientPool
from marmot.replica.forward_protocol import METHOD, ForwardAnswer, ForwardRequest
from marmot.testing.admin import SECRET
from marmot.testing.nodes import NodeProcess
from tests.support import connect, replicated_cluster, run, run_async, wait_until_equal


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[NodeProcess]]:
    with replicated_cluster(tmp_path_factory.mktemp("forward")) as nodes:
        yield nodes


def _forward(node: NodeProcess, *requests: ForwardRequest) -> list[ForwardAnswer]:
    """Send ``requests`` one after the other to ``node``'s forward service, as a replica would."""

    async def main() -> list[ForwardAnswer]:
        pool = ClientPool(secret=SECRET, node_id=99)
        try:
            client = pool.get(f"127.0.0.1:{node.grpc_port}")
            out = []
            for req in requests:
                msg: Any = await client.call(METHOD, req.to_wire(), 30.0)
                out.append(ForwardAnswer.from_wire(msg))
            return out
        finally:
            await pool.close()

    return run_async(main(), timeout=60)


def test_retried_request_id_applies_once(cluster: list[NodeProcess]) -> None:
    n1, n2, n3 = cluster
    run(n1, "CREATE TABLE fwd_once (id INT PRIMARY KEY AUTO_INCREMENT, v TEXT)")
    wait_until_equal(cluster, "SELECT COUNT(*) FROM fwd_once", expected=((0,),))
    insert = ForwardRequest("rpc-once-1", 1, "INSERT INTO fwd_once (v) VALUES ('x')", database="marmot")
    first, retried = _forward(n2, insert, insert)
    assert first.error is None, first.error
    assert first.result is not None and first.result.affected_rows == 1  # type: ignore[union-attr]
    assert retried == first  # the kept answer, not a second run
    new_id = first.result.last_insert_id  # type: ignore[union-attr]
    assert new_id > 0 and first.session_last_insert_id == new_id
    wait_until_equal(cluster, "SELECT id, v FROM fwd_once", expected=((new_id, "x"),))
    assert first.commit_ts is not None
    token = f"{first.commit_ts.wall_ns}.{first.commit_ts.logical}.{first.commit_ts.node_id}"
    conn = connect(n3)
    try:
        cur = conn.cursor()
        cur.execute("SET marmot_read_after = %s", (token,))  # a real causal token of the cluster
        cur.execute("SELECT COUNT(*) FROM fwd_once")
        assert cur.fetchall() == ((1,),)
    finally:
        conn.close()
