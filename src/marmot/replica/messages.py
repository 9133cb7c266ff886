"""The messages between a replica and the cluster nodes it follows (besides the log exchange it shares
with members: ``log_databases``, ``log_list``, ``log_fetch``, ``log_have``, ``replication/catchup``).

Why a module: both ends (``follower.py`` on the replica, ``cluster_side.py`` on a cluster node) encode and
decode the same maps; strict decoding (``MessageError``) like every other message between nodes.

* ``replica.cluster_nodes {pv}`` -> ``ClusterNodes {node_id, nodes: [{node_id, address, mysql_address,
  state}]}``: who answers, and the cluster's members as it sees them (discovery, failover candidates).
* ``replica.heartbeat`` ``Heartbeat {address, mysql_address, node_id, source, state, databases: {db:
  {position, behind_txns, lag_seconds}}}`` -> ``{ok}``: a replica's registration and positions, listed
  by the node at ``/admin/cluster/replicas`` and in its metrics.
* ``replica.snapshot {pv, db}`` (server stream): a ``snapshot_stream`` served from the snapshot cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

from marmot.replication.messages import MessageError, answer, request, versioned
from marmot.replication.messages import field as get

CLUSTER_NODES = "replica.cluster_nodes"
HEARTBEAT = "replica.heartbeat"
SNAPSHOT = "replica.snapshot"


@dataclass(frozen=True, slots=True)
class NodeInfo:
    node_id: int
    address: str  # cluster port (RPC + admin API)
    mysql_address: str  # "" when the node did not say
    state: str

    def encode(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "address": self.address,
            "mysql_address": self.mysql_address,
            "state": self.state,
        }

    @classmethod
    def decode(cls, p: Any) -> NodeInfo:
        return cls(
            get(p, "node_id", int), get(p, "address", str), get(p, "mysql_address", str), get(p, "state", str)
        )


@dataclass(frozen=True, slots=True)
class ClusterNodes:
    node_id: int  # the answering node
    nodes: list[NodeInfo]

    def encode(self) -> dict[str, Any]:
        return {"node_id": self.node_id, "nodes": [n.encode() for n in self.nodes]}

    @classmethod
    def decode(cls, payload: Any) -> ClusterNodes:
        p = answer(payload)
        raw = p.get("nodes")
        if not isinstance(raw, list):
            raise MessageError("nodes must be a list")
        return cls(get(p, "node_id", int), [NodeInfo.decode(n) for n in raw])


@dataclass(frozen=True, slots=True)
class DatabasePosition:
    position: int  # the source's log seq the replica consumed up to
    behind_txns: int  # the source's last seq minus position, at the replica's last poll
    lag_seconds: float  # how long since the replica was last caught up with this database

    def encode(self) -> dict[str, Any]:
        return {"position": self.position, "behind_txns": self.behind_txns, "lag_seconds": self.lag_seconds}

    @classmethod
    def decode(cls, p: Any) -> DatabasePosition:
        lag = p.get("lag_seconds") if isinstance(p, dict) else None
        if type(lag) not in (int, float):
            raise MessageError("lag_seconds must be a number")
        return cls(get(p, "position", int), get(p, "behind_txns", int), float(cast(float, lag)))


@dataclass(frozen=True, slots=True)
class Heartbeat:
    method: ClassVar[str] = HEARTBEAT
    address: str  # the replica's admin address (host:port): its identity in the registry
    mysql_address: str
    node_id: int
    source: int  # node id of the cluster node it follows (0: none right now)
    state: str
    databases: dict[str, DatabasePosition] = field(default_factory=dict)

    def encode(self) -> dict[str, Any]:
        return versioned(
            {
                "address": self.address,
                "mysql_address": self.mysql_address,
                "node_id": self.node_id,
                "source": self.source,
                "state": self.state,
                "databases": {db: pos.encode() for db, pos in self.databases.items()},
            }
        )

    @classmethod
    def decode(cls, payload: Any) -> Heartbeat:
        p = request(payload)
        dbs = p.get("databases")
        if not isinstance(dbs, dict) or not all(isinstance(k, str) for k in dbs):
            raise MessageError("databases must be a map of names")
        return cls(
            get(p, "address", str),
            get(p, "mysql_address", str),
            get(p, "node_id", int),
            get(p, "source", int),
            get(p, "state", str),
            {db: DatabasePosition.decode(v) for db, v in dbs.items()},
        )
