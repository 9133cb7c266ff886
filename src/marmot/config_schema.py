"""The configuration schema: one frozen dataclass per section of upstream Marmot v2's TOML file.

Why it looks like this:

* **The file format is a user contract.** Section and key names and their defaults are upstream's
  (``cfg/config.go`` / ``config.toml``), so an upstream config file loads here unchanged. Our own
  additions live in ``[mysql]`` (users, TLS, packet size, server version). ``config.toml`` at the
  repository root is the annotated reference and loads to exactly the embedded defaults (a test
  keeps the two in step).
* **The dataclasses are the schema.** Each section is a frozen dataclass; a field's type hint says
  what TOML type it takes and its metadata (``_Rule``) gives the range or the allowed values. One
  generic walker turns the parsed TOML into dataclasses, so adding a key is one line, and error
  messages, ``to_dict()`` and the unknown-key suggestions can never drift from the fields.
  (The dataclasses are frozen, but list values are ordinary lists: "frozen-ish". Treat them as
  read-only; derive changed configs with ``dataclasses.replace`` or ``load_config`` overrides.)

* **What does not act is listed, not hidden.** ``NOT_BUILT`` names the modes a config may ask for that
  this node cannot run (startup stops); ``INERT_KEYS`` names the keys accepted for compatibility with no
  effect, each with its reason (one startup warning names those a config sets).

Loading a file into this schema, the per-key checks (the walker ``_build``) and the cross-key rules live
in ``marmot.config``, which re-exports every name defined here: import from ``marmot.config``. This module only declares the schema
and walks it (``_all_keys``, ``_lookup``, ``_to_dict``); it imports nothing of ours.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, TypeGuard

CONSISTENCY_LEVELS = ("ONE", "TWO", "THREE", "QUORUM", "ALL", "LOCAL_ONE")
AUTH_PLUGINS = ("mysql_native_password", "caching_sha2_password")
AUTO_ID_MODES = ("compact", "extended")
LOG_FORMATS = ("json", "console")
SINK_TYPES = ("kafka", "nats")
SINK_FORMATS = ("debezium",)
SNAPSHOT_MODES = ("never", "initial")
# AUTO_INCREMENT ids and transaction ids carry 6 bits of node id: allowing only 1..63 means two nodes
# with different node ids can never mint the same id (ids 1 and 65 would).
MAX_NODE_ID = 63
REDACTED = "********"


# ---------------------------------------------------------------------------------------------
# Schema helpers


@dataclass(frozen=True, slots=True)
class _Rule:
    """Constraints on one key, beyond its type hint."""

    lo: int | float | None = None
    hi: int | float | None = None
    positive: bool = False  # > 0 (for floats; for ints the same as lo=1)
    choices: tuple[str, ...] = ()  # case-insensitive; normalised to the spelling given here
    nonempty: bool = False
    secret: bool = False  # redacted by Config.to_dict()
    address: bool = False  # list items are "host:port"
    octal: bool = False  # file permission bits


def _opt(default: Any, **rule: Any) -> Any:
    md = {"rule": _Rule(**rule)}
    if isinstance(default, list):
        items = tuple(default)
        return field(default_factory=lambda: list(items), metadata=md)
    return field(default=default, metadata=md)


def _section(cls: type) -> Any:
    return field(default_factory=cls)


_PORT = {"lo": 1, "hi": 65535}
_POS = {"lo": 1}  # positive integer (timeouts, intervals, sizes)
_NONNEG = {"lo": 0}

# ---------------------------------------------------------------------------------------------
# Sections, in upstream's order. Comments say what we do differently, if anything.


@dataclass(frozen=True)
class PromotionConfig:
    """``[cluster.promotion]``: when a joining node counts as a full member."""

    check_interval_seconds: int = _opt(2, **_POS)
    min_healthy_duration_sec: int = _opt(3, **_NONNEG)


@dataclass(frozen=True)
class ClusterConfig:
    grpc_bind_address: str = _opt("127.0.0.1", nonempty=True)  # upstream: 0.0.0.0; see config.toml
    grpc_advertise_address: str = _opt("")  # "" = hostname:grpc_port
    grpc_port: int = _opt(8080, **_PORT)
    seed_nodes: list[str] = _opt([], address=True)
    standalone: bool = _opt(False)
    cluster_secret: str = _opt("", secret=True)
    gossip_interval_ms: int = _opt(1000, **_POS)
    gossip_fanout: int = _opt(3, **_POS)
    suspect_timeout_ms: int = _opt(5000, **_POS)
    dead_timeout_ms: int = _opt(10000, **_POS)
    shutdown_grace_period_ms: int = _opt(15000, lo=1000, hi=300000)
    autoinc_merge_interval_ms: int = _opt(2000, **_POS)
    autoinc_base_sync_interval_ms: int = _opt(10000, **_POS)
    # Our additions: TLS on the cluster port (RPC and the admin HTTP API); "" = plain TCP.
    tls_cert_file: str = _opt("")
    tls_key_file: str = _opt("")
    tls_ca_file: str = _opt("")  # peers' certificates are verified against this CA; "" = not verified
    # Our addition: "advertised=dial" pairs; a peer advertising the left address is dialled at the right one
    # (NAT, port forwarding, and the fault-injection proxy of the test harness).
    dial_overrides: list[str] = _opt([])
    promotion: PromotionConfig = _section(PromotionConfig)


@dataclass(frozen=True)
class ReplicationConfig:
    default_write_consistency: str = _opt("QUORUM", choices=CONSISTENCY_LEVELS)
    default_read_consistency: str = _opt("LOCAL_ONE", choices=CONSISTENCY_LEVELS)
    write_timeout_ms: int = _opt(5000, **_POS)
    ddl_validation_timeout_ms: int = _opt(60000, **_POS)
    read_timeout_ms: int = _opt(2000, **_POS)
    enable_anti_entropy: bool = _opt(True)
    anti_entropy_interval_seconds: int = _opt(30, **_POS)
    gc_interval_seconds: int = _opt(60, **_POS)
    delta_sync_threshold_transactions: int = _opt(10000, **_POS)
    delta_sync_threshold_seconds: int = _opt(3600, **_NONNEG)
    # floats so tests can collect within seconds (0.001 h = 3.6 s); whole hours in practice
    gc_min_retention_hours: float = _opt(2.0, lo=0.0)
    gc_max_retention_hours: float = _opt(24.0, lo=0.0)  # 0 = unlimited
    stream_chunk_size_kb: int = _opt(1024, **_POS)
    snapshot_restore_timeout_seconds: int = _opt(1800, **_POS)


@dataclass(frozen=True)
class TransactionConfig:
    heartbeat_timeout_seconds: int = _opt(10, **_POS)
    conflict_window_seconds: int = _opt(10, **_POS)
    lock_wait_timeout_seconds: int = _opt(50, **_POS)
    ddl_implicit_commit: bool = _opt(True)


@dataclass(frozen=True)
class MetastoreConfig:
    """Upstream tunes its Pebble meta store here; accepted for config compatibility."""

    cache_size_mb: int = _opt(128, **_POS)
    memtable_size_mb: int = _opt(64, **_POS)
    memtable_count: int = _opt(2, **_POS)
    l0_compaction_threshold: int = _opt(500, **_POS)
    l0_stop_writes: int = _opt(1000, **_POS)
    wal_bytes_per_sync_kb: int = _opt(512, **_NONNEG)
    strict_prepare_sync: bool = _opt(False)


@dataclass(frozen=True)
class ConnectionPoolConfig:
    pool_size: int = _opt(4, **_POS)
    max_idle_time_seconds: int = _opt(10, **_NONNEG)
    max_lifetime_seconds: int = _opt(300, **_NONNEG)  # 0 = unlimited


@dataclass(frozen=True)
class GrpcClientConfig:
    """Node-to-node client settings (our RPC is msgpack, not gRPC; the names are upstream's)."""

    keepalive_time_seconds: int = _opt(10, **_POS)
    keepalive_timeout_seconds: int = _opt(3, **_POS)
    max_retries: int = _opt(3, **_NONNEG)
    retry_backoff_ms: int = _opt(100, **_NONNEG)
    compression_level: int = _opt(1, lo=0, hi=4)  # 0 = off


@dataclass(frozen=True)
class CoordinatorConfig:
    prepare_timeout_ms: int = _opt(2000, **_POS)
    commit_timeout_ms: int = _opt(2000, **_POS)
    abort_timeout_ms: int = _opt(2000, **_POS)


@dataclass(frozen=True)
class DDLConfig:
    lock_lease_seconds: int = _opt(30, **_POS)
    enable_idempotent: bool = _opt(True)


@dataclass(frozen=True)
class QueryPipelineConfig:
    transpiler_cache_size: int = _opt(10000, **_NONNEG)  # 0 = no cache
    validator_pool_size: int = _opt(8, **_POS)


@dataclass(frozen=True)
class MySQLUser:
    """One ``[[mysql.users]]`` entry (our addition: upstream accepts any user and password)."""

    name: str = _opt("", nonempty=True)
    password: str = _opt("", secret=True)


@dataclass(frozen=True)
class MySQLConfig:
    enabled: bool = _opt(True)
    bind_address: str = _opt("127.0.0.1", nonempty=True)  # upstream: 0.0.0.0; see config.toml
    port: int = _opt(3306, **_PORT)
    max_connections: int = _opt(1000, **_POS)
    local_infile_enabled: bool = _opt(True)
    auto_id_mode: str = _opt("compact", choices=AUTO_ID_MODES)
    unix_socket: str = _opt("")  # "" = no unix socket
    unix_socket_perm: int = _opt(0o660, octal=True)
    # Our additions.
    users: list[MySQLUser] = _opt([MySQLUser("root", "")])
    tls_cert_file: str = _opt("")
    tls_key_file: str = _opt("")
    max_allowed_packet: int = _opt(67108864, lo=1024, hi=1 << 30)
    connect_timeout_seconds: float = _opt(10.0, positive=True)  # MySQL's connect_timeout
    server_version: str = _opt("8.0.36-marmot", nonempty=True)
    auth_plugin: str = _opt("mysql_native_password", choices=AUTH_PLUGINS)

    @property
    def tls_enabled(self) -> bool:
        return bool(self.tls_cert_file and self.tls_key_file)


@dataclass(frozen=True)
class LoggingConfig:
    verbose: bool = _opt(False)
    format: str = _opt("json", choices=LOG_FORMATS)
    file: str = _opt("")  # "" = stdout only
    max_size_mb: float = _opt(100.0, positive=True)  # a float so tests can rotate tiny files
    max_backups: int = _opt(5, **_NONNEG)  # 0 = keep all rotated files
    compress: bool = _opt(True)


@dataclass(frozen=True)
class PrometheusConfig:
    enabled: bool = _opt(True)


@dataclass(frozen=True)
class ReplicaConfig:
    enabled: bool = _opt(False)
    follow_addresses: list[str] = _opt([], address=True)
    replicate_databases: list[str] = _opt([])
    secret: str = _opt("", secret=True)
    discovery_interval_seconds: int = _opt(30, **_POS)
    failover_timeout_seconds: int = _opt(60, **_POS)
    reconnect_interval_seconds: int = _opt(5, **_POS)
    reconnect_max_backoff_seconds: int = _opt(30, **_POS)
    initial_sync_timeout_minutes: int = _opt(30, **_POS)
    database_discovery_interval_seconds: int = _opt(10, **_POS)
    snapshot_concurrency: int = _opt(3, **_POS)
    snapshot_cache_ttl_seconds: int = _opt(30, **_NONNEG)
    forward_writes: bool = _opt(False)
    forward_write_timeout_sec: int = _opt(30, **_POS)


@dataclass(frozen=True)
class SinkConfig:
    """One ``[[publisher.sinks]]`` entry."""

    name: str = _opt("", nonempty=True)
    type: str = _opt("", choices=SINK_TYPES)
    format: str = _opt("debezium", choices=SINK_FORMATS)
    brokers: list[str] = _opt([])  # kafka
    nats_url: str = _opt("")  # nats
    topic_prefix: str = _opt("marmot.cdc", nonempty=True)
    filter_tables: list[str] = _opt(["*"])
    filter_databases: list[str] = _opt(["*"])
    batch_size: int = _opt(100, **_POS)
    poll_interval_ms: int = _opt(10, **_POS)
    retry_initial_ms: int = _opt(100, **_POS)
    retry_max_ms: int = _opt(30000, **_POS)
    retry_multiplier: float = _opt(2.0, lo=1.0)
    snapshot_mode: str = _opt("never", choices=SNAPSHOT_MODES)  # ours: "initial" emits op "r" first


@dataclass(frozen=True)
class PublisherConfig:
    enabled: bool = _opt(False)
    sinks: list[SinkConfig] = _opt([])
    # ours: commit-log transactions a sink may leave unpublished before GC stops holding them for it
    max_backlog_transactions: int = _opt(1_000_000, **_POS)


@dataclass(frozen=True)
class BatchCommitConfig:
    enabled: bool = _opt(True)
    max_batch_size: int = _opt(128, **_POS)
    max_wait_ms: int = _opt(10, **_NONNEG)
    checkpoint_enabled: bool = _opt(True)
    checkpoint_passive_thresh_mb: float = _opt(4.0, positive=True)
    checkpoint_restart_thresh_mb: float = _opt(16.0, positive=True)
    allow_dynamic_batch_size: bool = _opt(True)
    incremental_vacuum_enabled: bool = _opt(True)
    incremental_vacuum_pages: int = _opt(100, **_POS)
    incremental_vacuum_time_limit_ms: int = _opt(10, **_POS)


@dataclass(frozen=True)
class ExtensionsConfig:
    directory: str = _opt("")
    always_loaded: list[str] = _opt([])


@dataclass(frozen=True)
class VectorIndexConfig:
    enabled: bool = _opt(False)
    data_dir: str = _opt("")  # "" = <data_dir>/vector_index


@dataclass(frozen=True)
class Config:
    node_id: int = _opt(0, lo=0, hi=MAX_NODE_ID)  # 0 = automatic, see resolve_node_id()
    data_dir: str = _opt("./marmot-data", nonempty=True)
    cluster: ClusterConfig = _section(ClusterConfig)
    replication: ReplicationConfig = _section(ReplicationConfig)
    transaction: TransactionConfig = _section(TransactionConfig)
    metastore: MetastoreConfig = _section(MetastoreConfig)
    connection_pool: ConnectionPoolConfig = _section(ConnectionPoolConfig)
    grpc_client: GrpcClientConfig = _section(GrpcClientConfig)
    coordinator: CoordinatorConfig = _section(CoordinatorConfig)
    ddl: DDLConfig = _section(DDLConfig)
    query_pipeline: QueryPipelineConfig = _section(QueryPipelineConfig)
    mysql: MySQLConfig = _section(MySQLConfig)
    logging: LoggingConfig = _section(LoggingConfig)
    prometheus: PrometheusConfig = _section(PrometheusConfig)
    replica: ReplicaConfig = _section(ReplicaConfig)
    publisher: PublisherConfig = _section(PublisherConfig)
    batch_commit: BatchCommitConfig = _section(BatchCommitConfig)
    extensions: ExtensionsConfig = _section(ExtensionsConfig)
    vector_index: VectorIndexConfig = _section(VectorIndexConfig)
    # Not configuration: advice found while validating (logged at startup). Excluded from ==.
    warnings: list[str] = field(default_factory=list, compare=False, metadata={"internal": True})

    def to_dict(self, *, redact_secrets: bool = True) -> dict[str, Any]:
        """Nested plain data (TOML/JSON-able) keyed like the file. Secrets and passwords are
        replaced by ``REDACTED`` unless ``redact_secrets`` is false; ``warnings`` is left out."""
        return _to_dict(self, redact_secrets)


# ---------------------------------------------------------------------------------------------
# Keys that do not act, in one place


# Modes upstream has that this node does not build yet. A config that asks for one stops startup
# (``marmot.config.refuse_unbuilt_modes``, called by cli.py) instead of starting a node that silently does
# something else. Delete an entry when its layer lands (and move its sibling keys out of INERT_KEYS).
NOT_BUILT: dict[str, str] = {}

# Keys accepted so that an upstream config file loads unchanged, but with no effect here: dotted key (or
# a whole section: every key in it, NOT_BUILT ones excepted) -> why. A config that sets one to anything
# but its default gets one startup warning naming them (``marmot.config.inert_keys_set``). The same list,
# with the same reasons, is in README.md ("Accepted for compatibility, no effect"), and config.toml says
# "No effect" on each of these keys; tests/unit/test_config.py keeps the three in step.
INERT_KEYS: dict[str, str] = {
    "cluster.standalone": "a node without seed_nodes already runs as a cluster of one (other nodes may still "
    "join it); the key is only checked against seed_nodes and replica mode",
    "cluster.autoinc_merge_interval_ms": "AUTO_INCREMENT ids are minted from the clock and the node id, so "
    "there are no range bases to merge",
    "cluster.autoinc_base_sync_interval_ms": "as autoinc_merge_interval_ms: no range bases to synchronise",
    "cluster.promotion": "a joining node turns ALIVE as soon as anti-entropy reports it caught up, checked "
    "every gossip round",
    "transaction.conflict_window_seconds": "conflicts are found by write intents and row versions, not by a "
    "time window",
    "metastore": "there is no Pebble meta store: transaction metadata lives in each database's SQLite file",
    "connection_pool": "each MySQL session opens its own SQLite connection per database; there is no pool",
    "grpc_client": "node-to-node calls use fixed settings (keepalive every 10 s, 3 s timeout; no retries "
    "or compression at this layer)",
    "coordinator": "every two-phase-commit phase is bounded by replication.write_timeout_ms "
    "(ddl_validation_timeout_ms for DDL)",
    "ddl.enable_idempotent": "replicated DDL is always applied idempotently",
    "query_pipeline.validator_pool_size": "statements are checked on the session's own connection",
    "batch_commit.max_wait_ms": "a batch is whatever queued while the previous one was applied; no waiting",
    "batch_commit.checkpoint_enabled": "SQLite's own automatic WAL checkpoints run; a full checkpoint at "
    "shutdown",
    "batch_commit.checkpoint_passive_thresh_mb": "see checkpoint_enabled",
    "batch_commit.checkpoint_restart_thresh_mb": "see checkpoint_enabled",
    "batch_commit.allow_dynamic_batch_size": "a batch always grows with the queue, up to max_batch_size; "
    "this cannot be turned off",
    "batch_commit.incremental_vacuum_enabled": "no incremental vacuum runs",
    "batch_commit.incremental_vacuum_pages": "see incremental_vacuum_enabled",
    "batch_commit.incremental_vacuum_time_limit_ms": "see incremental_vacuum_enabled",
    "vector_index": "there is no vector index support",
}


# ---------------------------------------------------------------------------------------------
# Walking the schema


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def _fields(cls: type) -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}


def _rule(f: dataclasses.Field[Any]) -> _Rule:
    return f.metadata.get("rule") or _Rule()


def _list_item(tp: Any) -> Any:
    return typing.get_args(tp)[0] if typing.get_origin(tp) is list else None


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _is_section(tp: object) -> TypeGuard[type[Any]]:
    """Whether a type hint is a section of the schema (a dataclass)."""
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _all_keys(cls: type = Config, prefix: str = "") -> list[str]:
    """Every dotted key of the schema (list-of-table items as ``publisher.sinks[].name``)."""
    out: list[str] = []
    for name in _fields(cls):
        key = _join(prefix, name)
        tp = _hints(cls)[name]
        item = _list_item(tp)
        out.append(key)
        if _is_section(tp):
            out.extend(_all_keys(tp, key))
        elif _is_section(item):
            out.extend(_all_keys(item, key + "[]"))
    return out


def _leaf_keys(prefix: str) -> list[str]:
    """``prefix`` itself if it is a key, else every key in that section (list-of-table keys such as
    ``publisher.sinks`` count as one key, their items are not walked)."""
    found = _lookup(prefix)
    if found is None:
        raise KeyError(prefix)
    section = found[0]
    if not _is_section(section):
        return [prefix]
    out: list[str] = []
    for key in _all_keys(section, prefix):
        tp = _lookup(key)
        if "[]" not in key and tp is not None and not dataclasses.is_dataclass(tp[0]):
            out.append(key)
    return out


def inert_keys() -> list[str]:
    """Every dotted key under an ``INERT_KEYS`` entry, ``NOT_BUILT`` ones left out, in schema order."""
    chosen = {k for entry in INERT_KEYS for k in _leaf_keys(entry)} - set(NOT_BUILT)
    return [k for k in _all_keys() if k in chosen]


def value_at(cfg: Any, dotted: str) -> Any:
    """The value of a dotted key in a ``Config``."""
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


def _to_dict(obj: Any, redact: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, f in _fields(type(obj)).items():
        value = getattr(obj, name)
        if dataclasses.is_dataclass(value):
            out[name] = _to_dict(value, redact)
        elif isinstance(value, list):
            out[name] = [_to_dict(v, redact) if dataclasses.is_dataclass(v) else v for v in value]
        elif redact and _rule(f).secret and value:
            out[name] = REDACTED
        else:
            out[name] = value
    return out


def _lookup(dotted: str) -> tuple[Any, _Rule] | None:
    """Type hint and rule of a dotted key, or None if the schema has no such key."""
    cls: Any = Config
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        if not _is_section(cls):
            return None
        f = _fields(cls).get(part)
        if f is None:
            return None
        tp = _hints(cls)[part]
        if i == len(parts) - 1:
            return tp, _rule(f)
        cls = tp
    return None
