"""What the replication layer takes from the rest of the node: its settings and its view of membership.

Why a module of its own: ``Replication`` (service.py) is built in one place from these (``from_config``)
instead of from two dozen keyword arguments and attributes patched in afterwards, and unit tests build
it from the same two types with small values. Membership is a protocol because replication must not
import ``cluster/`` (node.py adapts gossip to it; tests use an in-memory one); the network comes in as
a ``marmot.transport.Transport``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from marmot.config import Config
from marmot.replication.catchup.snapshot import DEFAULT_CHUNK


class Membership(Protocol):
    """Who else is in the cluster, as replication needs to know it."""

    def alive_peers(self) -> dict[int, str]:
        """ALIVE members other than this node: ``{node_id: address}`` (PREPARE goes to these)."""
        ...

    def total_members(self) -> int:
        """Every member but REMOVED ones, this node included (quorums count over it)."""
        ...

    def members(self) -> list[int]:
        """Ids of every member but REMOVED ones, this node excluded (GC waits for what they consumed; a
        settlement stops waiting for a node that is no member any more)."""
        ...

    def leaving(self) -> bool:
        """This node is leaving the cluster (decommission): it refuses new PREPAREs."""
        ...

    def not_joined(self) -> str | None:
        """Why this node is in no cluster yet (no seed admitted it), or None once it is."""
        ...

    def publish_schema(self, versions: dict[str, int]) -> None:
        """Gossip this node's schema version of every database (``extra.schema_versions``)."""
        ...

    def peer_schema_versions(self) -> dict[int, dict[str, int]]:
        """What ALIVE peers gossiped with ``publish_schema``: ``{node_id: {database: version}}`` (a peer
        that published nothing yet is absent). "Schema follows" waits for a newer one (``schema_follow``)."""
        ...


@dataclass(frozen=True, slots=True)
class ReplicationSettings:
    """The replication layer's knobs. Defaults are the config defaults' scale, small enough for tests to
    override only what they exercise; ``from_config`` maps the TOML keys."""

    default_level: str = "QUORUM"  # [replication] default_write_consistency
    write_timeout: float = 5.0  # [replication] write_timeout_ms, in seconds
    read_level: str = "LOCAL_ONE"  # [replication] default_read_consistency
    read_timeout: float = (
        2.0  # [replication] read_timeout_ms, in seconds: read barriers, schema follows, causal tokens
    )
    ddl_timeout: float = 60.0  # [replication] ddl_validation_timeout_ms, in seconds
    heartbeat_timeout: float = 10.0  # [transaction] heartbeat_timeout_seconds
    ddl_lease: float = 30.0  # [ddl] lock_lease_seconds
    status_timeout: float = 2.0  # how long stale-transaction resolution waits for each peer's STATUS
    max_batch: int = 128  # [batch_commit] max_batch_size (1 when batch commit is off)
    stream_chunk: int = DEFAULT_CHUNK  # [replication] stream_chunk_size_kb: large PREPAREs, snapshot chunks
    anti_entropy_interval: float | None = 30.0  # None: enable_anti_entropy = false (the log is still served)
    gc_interval: float = 60.0  # [replication] gc_interval_seconds
    gc_min_retention_h: float = 2.0  # [replication] gc_min_retention_hours
    gc_max_retention_h: float = 24.0  # [replication] gc_max_retention_hours
    snapshot_threshold: int = 10000  # [replication] delta_sync_threshold_transactions
    snapshot_threshold_seconds: float = 3600.0  # [replication] delta_sync_threshold_seconds (0: not used)
    restore_timeout: float = 1800.0  # [replication] snapshot_restore_timeout_seconds
    progress_bar: bool = False  # draw a bar on stderr for snapshot restores at startup (a real node)

    @classmethod
    def from_config(cls, cfg: Config) -> ReplicationSettings:
        rcfg = cfg.replication
        return cls(
            default_level=rcfg.default_write_consistency,
            write_timeout=rcfg.write_timeout_ms / 1000,
            read_level=rcfg.default_read_consistency,
            read_timeout=rcfg.read_timeout_ms / 1000,
            ddl_timeout=rcfg.ddl_validation_timeout_ms / 1000,
            heartbeat_timeout=float(cfg.transaction.heartbeat_timeout_seconds),
            ddl_lease=float(cfg.ddl.lock_lease_seconds),
            max_batch=cfg.batch_commit.max_batch_size if cfg.batch_commit.enabled else 1,
            stream_chunk=rcfg.stream_chunk_size_kb * 1024,
            anti_entropy_interval=float(rcfg.anti_entropy_interval_seconds)
            if rcfg.enable_anti_entropy
            else None,
            gc_interval=float(rcfg.gc_interval_seconds),
            gc_min_retention_h=float(rcfg.gc_min_retention_hours),
            gc_max_retention_h=float(rcfg.gc_max_retention_hours),
            snapshot_threshold=rcfg.delta_sync_threshold_transactions,
            snapshot_threshold_seconds=float(rcfg.delta_sync_threshold_seconds),
            restore_timeout=float(rcfg.snapshot_restore_timeout_seconds),
            progress_bar=True,
        )
