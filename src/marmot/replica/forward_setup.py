"""Plugging write forwarding into a replica's engine (``[replica] forward_writes = true``).

Why its own module: ``ReplicaNode`` builds the parts (transport, follower, storage) and this is the one
place that says how forwarding uses them — which cluster nodes a write may go to, in what order, how long
it may take, and how "this replica has applied that commit" is answered — so the node only calls
``install_forwarding``.
"""

from __future__ import annotations

from marmot.admin.metrics import Metrics
from marmot.config import Config
from marmot.engine.context import EngineContext
from marmot.replica.applied import AppliedCheck
from marmot.replica.follower import Follower, replicated
from marmot.replica.forward_client import ForwardClient, Send
from marmot.replica.forward_metrics import ForwarderCollector
from marmot.replica.forward_writes import WriteForwarder
from marmot.storage.databases import DatabaseManager


def forward_candidates(follower: Follower) -> list[str]:
    """Cluster nodes a forwarded write may go to, best first: the node this replica follows (its own
    writes then come back through the stream it already reads), the other live nodes it learned of, then
    the configured follow addresses."""
    out: list[str] = []
    if follower.source is not None:
        out.append(follower.source.address)
    for node in sorted(follower.nodes.values(), key=lambda n: n.node_id):
        if node.state == "ALIVE" and node.address not in out:
            out.append(node.address)
    out += [a for a in follower.settings.follow_addresses if a not in out]
    return out


def install_forwarding(
    engine: EngineContext,
    cfg: Config,
    node_id: int,
    send: Send,
    follower: Follower,
    databases: DatabaseManager,
    metrics: Metrics | None = None,
) -> WriteForwarder:
    """Make the read-only ``engine`` forward its sessions' writes (``replica/forward_writes.py``)."""
    client = ForwardClient(
        send, lambda: forward_candidates(follower), float(cfg.replica.forward_write_timeout_sec)
    )
    patterns = follower.settings.patterns
    forwarder = WriteForwarder(
        client, node_id, AppliedCheck(databases).wait, lambda db: replicated(patterns, db)
    )
    engine.forwarder = forwarder
    engine.write_gate = forwarder.gate
    # it accepts writes: clients that check @@read_only before writing may send them
    engine.global_variables["read_only"] = 0
    if metrics is not None:
        metrics.registry.register(ForwarderCollector(node_id, forwarder))
    return forwarder
