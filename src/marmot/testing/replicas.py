"""Read-only replica processes of a test cluster (``src/marmot/replica/``), for tests, chaos and benches.

Why here: the replica tests, the chaos harness's replica option and ``bench/replica_catchup.py`` all
start replicas the same way — a node config with a ``[replica]`` section following some cluster nodes
with the cluster's secret, short reconnect and discovery timers — and stop them by PID like any node.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from marmot.testing.admin import SECRET
from marmot.testing.nodes import NodeProcess, make_node

# Timers a test can wait on: failover and reconnects within seconds, new databases taken up every second.
FAST_REPLICA = (
    "discovery_interval_seconds = 2\nfailover_timeout_seconds = 10\nreconnect_interval_seconds = 1\n"
    "reconnect_max_backoff_seconds = 2\ndatabase_discovery_interval_seconds = 1\n"
)


def make_replica(
    tmp: Path,
    follow: Sequence[NodeProcess],
    *,
    node_id: int = 50,
    databases: Sequence[str] = (),
    replica_extra: str = FAST_REPLICA,
    extra_toml: str = "",
    secret: str = SECRET,
) -> NodeProcess:
    """Write (not start) the config of a replica following ``follow`` (their cluster ports), replicating
    ``databases`` (glob patterns; none: all). ``replica_extra``: more ``[replica]`` keys."""
    addresses = ", ".join(f'"127.0.0.1:{n.grpc_port}"' for n in follow)
    patterns = ", ".join(f'"{p}"' for p in databases)
    section = (
        f'\n[replica]\nenabled = true\nfollow_addresses = [{addresses}]\nsecret = "{secret}"\n'
        f"replicate_databases = [{patterns}]\n{replica_extra}"
    )
    return make_node(tmp, node_id=node_id, extra_toml=section + extra_toml)
