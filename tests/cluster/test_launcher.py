"""The cluster launcher (``marmot.testing.LocalCluster``) when a port it picked is taken before the node
binds it — what a parallel test run can do between ``free_port()`` and the node's bind.

The seed's cluster port taken: the seed gets a fresh one and the joiners' ``seed_nodes`` follow it. A
joiner's MySQL port taken: the node (already a member under its cluster port) moves to a fresh MySQL port.
Either way the cluster comes up with every member ALIVE and serves SQL; the squatting sockets are ours,
closed at the end.
"""

from __future__ import annotations

import socket
from pathlib import Path

from marmot.testing import LocalCluster, NodeProcess
from tests.support import run, wait_until_equal


class SquattedCluster(LocalCluster):
    """A LocalCluster whose node i finds its port ``squat[i]`` ("grpc_port" / "mysql_port") taken by a
    listening socket between configuration and boot."""

    def __init__(self, *args: object, squat: dict[int, str], **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.squat = squat
        self.taken: dict[int, int] = {}
        self.sockets: list[socket.socket] = []

    def _configure(self, i: int) -> NodeProcess:
        node = super()._configure(i)
        if i in self.squat and i not in self.taken:
            port = getattr(node, self.squat[i])
            s = socket.socket()
            s.bind(("127.0.0.1", port))
            s.listen()
            self.sockets.append(s)
            self.taken[i] = port
        return node


def test_taken_ports_are_replaced_and_the_cluster_comes_up(tmp_path: Path) -> None:
    cluster = SquattedCluster(3, tmp_path, squat={1: "grpc_port", 3: "mysql_port"})
    try:
        with cluster:
            n1, n2, n3 = cluster.nodes
            assert n1.grpc_port != cluster.taken[1] and n3.mysql_port != cluster.taken[3]
            for joiner in (n2, n3):  # they joined through the seed's new port
                assert f'"127.0.0.1:{n1.grpc_port}"' in joiner.config_path.read_text()
            assert all(cluster.member_states(i) == {1: "ALIVE", 2: "ALIVE", 3: "ALIVE"} for i in (1, 2, 3))
            run(n3, "CREATE TABLE t (id INT PRIMARY KEY)", "INSERT INTO t VALUES (1)")
            wait_until_equal(cluster.nodes, "SELECT id FROM t", expected=[(1,)])
            # each had failed on the taken port first (node 3's log of that attempt is named by its old port)
            assert "cannot listen on" in n1.log() and "address already in use" in n1.log().lower()
            first_try = (n3.data_dir.parent / f"node-{cluster.taken[3]}.log").read_text()
            assert "cannot listen on" in first_try and "(MySQL" in first_try, first_try
        assert cluster.dead_nodes() == [1, 2, 3]  # stopped by PID on exit
    finally:
        for s in cluster.sockets:
            s.close()
