"""Real Marmot node processes on 127.0.0.1, for tests, the chaos harness and benchmarks.

A development utility shipped with the package (the server never imports it): ``nodes`` writes a node's
config on free ports and starts / stops the process by PID, ``cluster`` starts an N-node cluster (seed +
joiners, optionally behind the fault proxy of ``faultproxy``, on tmpfs data directories), ``admin``
asks a node's admin API, ``tmpfs`` mounts the data directories where the machine allows it. See
README.md next to this file.
"""

from marmot.testing.admin import SECRET, admin_call, admin_json, member_states
from marmot.testing.cluster import TIMERS, LocalCluster, join_keys
from marmot.testing.faultproxy import Link, ProxyPool
from marmot.testing.nodes import NodeProcess, free_port, make_node, pid_alive
from marmot.testing.replicas import make_replica

__all__ = [
    "SECRET",
    "TIMERS",
    "Link",
    "LocalCluster",
    "NodeProcess",
    "ProxyPool",
    "admin_call",
    "admin_json",
    "free_port",
    "join_keys",
    "make_node",
    "make_replica",
    "member_states",
    "pid_alive",
]
