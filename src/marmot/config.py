"""Node configuration: upstream Marmot v2's TOML contract, typed and validated before anything starts.

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
* **Strict.** An unknown key is an error, not a warning: a typo that silently falls back to a
  default (``gc_min_retention_hour = 48``) is the most expensive kind of config bug. Types are
  strict too (``true`` is not an integer, ``"3306"`` is not a port). Every message starts with the
  offending key in dotted form, e.g. ``mysql.port: expected an integer in 1..65535, got 'abc'``;
  all problems are collected and reported together, first one first.
* **Precedence:** embedded defaults < file < environment (``MARMOT_CLUSTER_SECRET``,
  ``MARMOT_REPLICA_SECRET``; secrets should not live in files) < explicit overrides (CLI flags).

Node ids: ``node_id = 0`` asks for an automatic id (:func:`resolve_node_id`). Transaction ids and
AUTO_INCREMENT ids carry 6 bits of node id (see ``marmot.ids``), so node ids are limited to 1..63:
nodes with distinct ids can never mint the same id (upstream masks larger ids, so its nodes 1 and 65
collide). Automatic ids can still coincide between two hosts; the cluster layer refuses such a peer.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import socket
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from marmot.hlc import NODE_BITS_MASK

SYSTEM_DATABASE = "__marmot_system"
CONSISTENCY_LEVELS = ("ONE", "TWO", "THREE", "QUORUM", "ALL", "LOCAL_ONE")
AUTH_PLUGINS = ("mysql_native_password", "caching_sha2_password")
AUTO_ID_MODES = ("compact", "extended")
LOG_FORMATS = ("json", "console")
SINK_TYPES = ("kafka", "nats")
SINK_FORMATS = ("debezium",)
# AUTO_INCREMENT ids and transaction ids carry 6 bits of node id: allowing only 1..63 means two nodes
# with different node ids can never mint the same id (ids 1 and 65 would).
MAX_NODE_ID = 63
ENV_CLUSTER_SECRET = "MARMOT_CLUSTER_SECRET"
ENV_REPLICA_SECRET = "MARMOT_REPLICA_SECRET"
REDACTED = "********"


class ConfigError(Exception):
    """Invalid configuration. ``errors`` lists every problem; each starts with its dotted key."""

    def __init__(self, errors: list[str] | str):
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        msg = self.errors[0]
        if len(self.errors) > 1:
            msg += f" (and {len(self.errors) - 1} more: " + "; ".join(self.errors[1:]) + ")"
        super().__init__(msg)

    @property
    def key(self) -> str:
        """The dotted key (or file path) of the first problem."""
        return self.errors[0].split(": ", 1)[0]


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
    grpc_bind_address: str = _opt("0.0.0.0", nonempty=True)
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
    gc_min_retention_hours: int = _opt(2, **_NONNEG)
    gc_max_retention_hours: int = _opt(24, **_NONNEG)  # 0 = unlimited
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
    bind_address: str = _opt("0.0.0.0", nonempty=True)
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


@dataclass(frozen=True)
class PublisherConfig:
    enabled: bool = _opt(False)
    sinks: list[SinkConfig] = _opt([])


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
# Walking the schema


_INVALID = object()
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


def _all_keys(cls: type = Config, prefix: str = "") -> list[str]:
    """Every dotted key of the schema (list-of-table items as ``publisher.sinks[].name``)."""
    out: list[str] = []
    for name in _fields(cls):
        key = _join(prefix, name)
        tp = _hints(cls)[name]
        item = _list_item(tp)
        out.append(key)
        if dataclasses.is_dataclass(tp):
            out.extend(_all_keys(tp, key))
        elif item is not None and dataclasses.is_dataclass(item):
            out.extend(_all_keys(item, key + "[]"))
    return out


def _describe(tp: Any, rule: _Rule) -> str:
    if rule.octal:
        return 'permission bits in 0..0o777 (0o660, "0660", or 660 read as octal digits)'
    if rule.choices:
        return "one of " + ", ".join(rule.choices)
    item = _list_item(tp)
    if item is not None:
        if dataclasses.is_dataclass(item):
            return "a list of tables"
        return 'a list of "host:port" strings' if rule.address else "a list of strings"
    if dataclasses.is_dataclass(tp):
        return "a table"
    if tp is bool:
        return "a boolean (true or false)"
    if tp is str:
        return "a non-empty string" if rule.nonempty else "a string"
    noun = "an integer" if tp is int else "a number"
    if rule.positive:
        return f"a positive {noun.split()[-1]}"
    if rule.lo is not None and rule.hi is not None:
        return f"{noun} in {rule.lo}..{rule.hi}"
    if rule.lo is not None:
        return f"{noun} >= {rule.lo}"
    if rule.hi is not None:
        return f"{noun} <= {rule.hi}"
    return noun


def _parse_octal(value: Any) -> int | None:
    """Permission bits from an int (the mode itself) or a string of octal digits."""
    if type(value) is int:
        mode = value
    elif isinstance(value, str):
        text = value.strip().lower().removeprefix("0o")
        if not text or any(c not in "01234567" for c in text):
            return None
        mode = int(text, 8)
    else:
        return None
    return mode if 0 <= mode <= 0o777 else None


def _check_address(value: str) -> bool:
    host, sep, port = value.rpartition(":")
    return bool(sep and host and port.isdigit() and 1 <= int(port) <= 65535)


def _convert(key: str, tp: Any, rule: _Rule, value: Any, errors: list[str]) -> Any:
    """Check one value against its type and rule; return it (normalised) or ``_INVALID``."""

    def bad() -> Any:
        errors.append(f"{key}: expected {_describe(tp, rule)}, got {value!r}")
        return _INVALID

    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            return bad()
        return _build(tp, value, key, errors)  # type: ignore[arg-type]
    item = _list_item(tp)
    if item is not None:
        if not isinstance(value, list):
            return bad()
        out: list[Any] = []
        for i, v in enumerate(value):
            ikey = f"{key}[{i}]"
            if dataclasses.is_dataclass(item):
                if not isinstance(v, dict):
                    errors.append(f"{ikey}: expected a table, got {v!r}")
                    continue
                out.append(_build(item, v, ikey, errors))  # type: ignore[arg-type]
            elif not isinstance(v, str) or not v.strip():
                errors.append(f"{ikey}: expected a non-empty string, got {v!r}")
            elif rule.address and not _check_address(v):
                errors.append(f'{ikey}: expected "host:port" with a port in 1..65535, got {v!r}')
            else:
                out.append(v)
        return out
    if rule.octal:
        mode = _parse_octal(value)
        return bad() if mode is None else mode
    if tp is bool:
        return value if isinstance(value, bool) else bad()
    if tp is str:
        if not isinstance(value, str):
            return bad()
        if rule.choices:
            for choice in rule.choices:
                if value.strip().lower() == choice.lower():
                    return choice
            return bad()
        if rule.nonempty and not value.strip():
            return bad()
        return value
    if tp is int:
        if type(value) is not int:
            return bad()
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return bad()
        value = float(value)
    else:  # pragma: no cover - schema bug
        raise TypeError(f"{key}: unsupported schema type {tp!r}")
    if (
        (rule.positive and value <= 0)
        or (rule.lo is not None and value < rule.lo)
        or (rule.hi is not None and value > rule.hi)
    ):
        return bad()
    return value


def _unknown(key: str, name: str, known: Mapping[str, Any], value: Any) -> str:
    what = "section" if isinstance(value, dict) else "key"
    prefix = key[: -len(name)]
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6) or [
        k for k in known if len(name) >= 3 and (k.startswith(name) or name.startswith(k))
    ]
    if close:
        hint = f" (did you mean '{prefix}{close[0]}'?)"
    else:
        elsewhere = [k for k in _all_keys() if k.rsplit(".", 1)[-1] == name and "[]" not in k]
        hint = f" (did you mean '{elsewhere[0]}'? it belongs in another section)" if elsewhere else ""
    return f"{key}: unknown {what}{hint}"


def _build(cls: type, raw: Mapping[str, Any], prefix: str, errors: list[str]) -> Any:
    fields = _fields(cls)
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for name, value in raw.items():
        key = _join(prefix, name)
        f = fields.get(name)
        if f is None:
            errors.append(_unknown(key, name, fields, value))
            continue
        converted = _convert(key, hints[name], _rule(f), value, errors)
        if converted is not _INVALID:
            kwargs[name] = converted
    return cls(**kwargs)


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
        if not dataclasses.is_dataclass(cls):
            return None
        f = _fields(cls).get(part)
        if f is None:
            return None
        tp = _hints(cls)[part]
        if i == len(parts) - 1:
            return tp, _rule(f)
        cls = tp
    return None


def _set_raw(raw: dict[str, Any], dotted: str, value: Any) -> str | None:
    """Put a value into the parsed-TOML tree, creating tables on the way. Returns the dotted key
    of a non-table value in the way (nothing is set then), else None."""
    node = raw
    parts = dotted.split(".")
    for i, part in enumerate(parts[:-1]):
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            return ".".join(parts[: i + 1])
        node = nxt
    node[parts[-1]] = value
    return None


# TOML has no leading-zero integers, so upstream's `unix_socket_perm = 0660` cannot be written as
# is. We accept `0o660` (TOML octal), the string "0660", and a decimal literal like `660` whose
# digits we read as octal. tomllib hands us only the number, so the literal form is read from the
# source text: 0o660 (= 432) and 432 (= 0o432) would be indistinguishable otherwise.
_PERM_LITERAL = re.compile(
    r"^[ \t]*(?:mysql[ \t]*\.[ \t]*)?unix_socket_perm[ \t]*=[ \t]*([+]?[0-9][0-9_]*|0[oxb][0-9a-fA-F_]+)[ \t]*(?:#.*)?$",
    re.MULTILINE,
)


_UPSTREAM_PERM = re.compile(
    r"^[ \t]*(?:mysql[ \t]*\.[ \t]*)?unix_socket_perm[ \t]*=[ \t]*(0[0-7]+)\b", re.MULTILINE
)


def _fix_perm_literal(raw: dict[str, Any], text: str) -> None:
    section = raw.get("mysql")
    if not isinstance(section, dict) or type(section.get("unix_socket_perm")) is not int:
        return
    m = _PERM_LITERAL.search(text)
    if m is None:
        # Written some other way (inline table ...): digits that cannot be a mode are octal digits.
        if section["unix_socket_perm"] > 0o777:
            section["unix_socket_perm"] = str(section["unix_socket_perm"])
    elif not m.group(1).lower().startswith(("0o", "0x", "0b")):
        # A decimal literal: hand its digits on as a string, which is parsed as octal.
        section["unix_socket_perm"] = m.group(1).lstrip("+").replace("_", "")


# ---------------------------------------------------------------------------------------------
# Cross-key rules


def _validate(cfg: Config, errors: list[str]) -> list[str]:
    """Rules that involve more than one key. Appends errors; returns warnings."""
    warnings: list[str] = []
    cl, rp, rep, my = cfg.cluster, cfg.replication, cfg.replica, cfg.mysql

    if cl.dead_timeout_ms < cl.suspect_timeout_ms:
        errors.append(
            f"cluster.dead_timeout_ms: must be >= cluster.suspect_timeout_ms ({cl.suspect_timeout_ms}), "
            f"got {cl.dead_timeout_ms}"
        )

    # GC must not delete what anti-entropy still needs (upstream §6.5 / README "GC Configuration Rules").
    if rp.gc_interval_seconds < rp.anti_entropy_interval_seconds:
        errors.append(
            f"replication.gc_interval_seconds: must be >= replication.anti_entropy_interval_seconds "
            f"({rp.anti_entropy_interval_seconds}), got {rp.gc_interval_seconds}"
        )
    if rp.gc_min_retention_hours * 3600 < rp.delta_sync_threshold_seconds:
        errors.append(
            f"replication.gc_min_retention_hours: must cover replication.delta_sync_threshold_seconds "
            f"({rp.delta_sync_threshold_seconds} s = {rp.delta_sync_threshold_seconds / 3600:g} h), "
            f"got {rp.gc_min_retention_hours}"
        )
    if rp.gc_max_retention_hours != 0:
        if rp.gc_max_retention_hours < rp.gc_min_retention_hours:
            errors.append(
                f"replication.gc_max_retention_hours: must be 0 (unlimited) or >= "
                f"replication.gc_min_retention_hours ({rp.gc_min_retention_hours}), "
                f"got {rp.gc_max_retention_hours}"
            )
        elif rp.gc_max_retention_hours * 3600 < 2 * rp.delta_sync_threshold_seconds:
            warnings.append(
                f"replication.gc_max_retention_hours: {rp.gc_max_retention_hours} h is less than twice "
                f"replication.delta_sync_threshold_seconds ({rp.delta_sync_threshold_seconds} s); nodes "
                f"that lag longer than that will need a full snapshot"
            )

    if cl.standalone and cl.seed_nodes:
        errors.append(
            f"cluster.seed_nodes: must be empty when cluster.standalone = true, got {cl.seed_nodes!r}"
        )
    if cl.standalone and rep.enabled:
        errors.append("replica.enabled: cannot be true when cluster.standalone = true")
    if rep.enabled:
        if not rep.follow_addresses:
            errors.append("replica.follow_addresses: required when replica.enabled = true, got []")
        if not rep.secret:
            errors.append(
                f"replica.secret: required when replica.enabled = true (or set {ENV_REPLICA_SECRET})"
            )
        if cl.seed_nodes:
            errors.append(
                f"cluster.seed_nodes: must be empty when replica.enabled = true, got {cl.seed_nodes!r}"
            )
    for i, db in enumerate(rep.replicate_databases):
        if db.strip().lower() == SYSTEM_DATABASE:
            errors.append(f"replica.replicate_databases[{i}]: {SYSTEM_DATABASE!r} is never replicated")

    if not my.users:
        errors.append("mysql.users: at least one user is required, got []")
    seen: set[str] = set()
    for i, user in enumerate(my.users):
        if not user.name.strip():
            errors.append(f"mysql.users[{i}].name: required (a non-empty user name)")
        elif user.name in seen:
            errors.append(f"mysql.users[{i}].name: duplicate user {user.name!r}")
        seen.add(user.name)
    if bool(cl.tls_cert_file) != bool(cl.tls_key_file):
        missing = "cluster.tls_key_file" if cl.tls_cert_file else "cluster.tls_cert_file"
        other = "cluster.tls_cert_file" if cl.tls_cert_file else "cluster.tls_key_file"
        errors.append(f"{missing}: required when {other} is set (TLS needs both)")
    if bool(my.tls_cert_file) != bool(my.tls_key_file):
        missing = "mysql.tls_key_file" if my.tls_cert_file else "mysql.tls_cert_file"
        other = "mysql.tls_cert_file" if my.tls_cert_file else "mysql.tls_key_file"
        errors.append(f"{missing}: required when {other} is set (TLS needs both)")

    if rep.reconnect_max_backoff_seconds < rep.reconnect_interval_seconds:
        errors.append(
            f"replica.reconnect_max_backoff_seconds: must be >= replica.reconnect_interval_seconds "
            f"({rep.reconnect_interval_seconds}), got {rep.reconnect_max_backoff_seconds}"
        )

    names: set[str] = set()
    for i, sink in enumerate(cfg.publisher.sinks):
        key = f"publisher.sinks[{i}]"
        if not sink.name.strip():
            errors.append(f"{key}.name: required (a unique sink name)")
        elif sink.name in names:
            errors.append(f"{key}.name: duplicate sink name {sink.name!r}")
        names.add(sink.name)
        if not sink.type:
            errors.append(f"{key}.type: required, one of {', '.join(SINK_TYPES)}")
        elif sink.type == "kafka" and not sink.brokers:
            errors.append(f"{key}.brokers: required for a kafka sink, got []")
        elif sink.type == "nats" and not sink.nats_url:
            errors.append(f"{key}.nats_url: required for a nats sink")
        if sink.retry_max_ms < sink.retry_initial_ms:
            errors.append(
                f"{key}.retry_max_ms: must be >= {key}.retry_initial_ms ({sink.retry_initial_ms}), "
                f"got {sink.retry_max_ms}"
            )
    if cfg.publisher.enabled and not cfg.publisher.sinks:
        warnings.append("publisher.enabled: true but no [[publisher.sinks]] are configured")

    bc = cfg.batch_commit
    if bc.checkpoint_restart_thresh_mb < bc.checkpoint_passive_thresh_mb:
        errors.append(
            f"batch_commit.checkpoint_restart_thresh_mb: must be >= batch_commit.checkpoint_passive_thresh_mb "
            f"({bc.checkpoint_passive_thresh_mb:g}), got {bc.checkpoint_restart_thresh_mb:g}"
        )
    return warnings


# ---------------------------------------------------------------------------------------------
# Public API


def load_config(
    path: str | os.PathLike[str] | None,
    overrides: Mapping[str, object] | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Load and validate a configuration.

    ``path`` None means the embedded defaults only. ``overrides`` maps dotted keys
    (``"mysql.port"``, ``"node_id"``, ``"cluster.promotion.check_interval_seconds"``) to values and
    wins over the file and the environment; a value of None is skipped (a CLI flag not given), and
    for a list-of-strings key a string is split on commas (``"a:1,b:2"``). ``env`` (default
    ``os.environ``) supplies ``MARMOT_CLUSTER_SECRET`` / ``MARMOT_REPLICA_SECRET`` when non-empty.
    Raises :class:`ConfigError`.
    """
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{p}: config file not found") from None
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{p}: cannot read config file: {e}") from None
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            upstream_perm = _UPSTREAM_PERM.search(text)
            if upstream_perm:  # upstream's documented `unix_socket_perm = 0660` is not valid TOML
                digits = upstream_perm.group(1)
                raise ConfigError(
                    f"mysql.unix_socket_perm: TOML does not allow the leading zero in {digits}; write "
                    f'0o{digits.lstrip("0") or "0"}, "{digits}" or {digits.lstrip("0") or "0"} ({p}: {e})'
                ) from None
            raise ConfigError(f"{p}: invalid TOML: {e}") from None
        _fix_perm_literal(raw, text)

    if env.get(ENV_CLUSTER_SECRET):
        _set_raw(raw, "cluster.cluster_secret", env[ENV_CLUSTER_SECRET])
    if env.get(ENV_REPLICA_SECRET):
        _set_raw(raw, "replica.secret", env[ENV_REPLICA_SECRET])

    errors: list[str] = []
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        target = _lookup(dotted)
        if target is not None and _list_item(target[0]) is str and isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        blocked = _set_raw(raw, dotted, value)
        if blocked is not None:
            errors.append(f"{dotted}: cannot override, {blocked} is not a table")

    cfg = _build(Config, raw, "", errors)
    if errors:
        raise ConfigError(errors)
    warnings = _validate(cfg, errors)
    if errors:
        raise ConfigError(errors)
    return dataclasses.replace(cfg, warnings=warnings)


def id_node_bits(node_id: int) -> int:
    """The part of a node id that reaches transaction ids and AUTO_INCREMENT ids (``& 63``).

    Two members with equal ``id_node_bits`` would mint colliding ids; the cluster layer refuses
    to admit such a peer.
    """
    return node_id & NODE_BITS_MASK


_FNV64_OFFSET = 0xCBF29CE484222325
_FNV64_PRIME = 0x100000001B3
_MASK64 = (1 << 64) - 1


def fnv1a_64(data: bytes) -> int:
    """FNV-1a, 64-bit (the hash upstream uses to derive node ids)."""
    h = _FNV64_OFFSET
    for byte in data:
        h = ((h ^ byte) * _FNV64_PRIME) & _MASK64
    return h


def _machine_id(paths: tuple[str, ...]) -> str:
    for candidate in paths:
        try:
            value = Path(candidate).read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            continue
        if value:
            return value
    return ""


def resolve_node_id(
    cfg: Config,
    *,
    machine_id_paths: tuple[str, ...] = ("/etc/machine-id", "/var/lib/dbus/machine-id"),
    hostname: str | None = None,
) -> int:
    """The node id to run with: ``cfg.node_id`` if set, else a stable id derived from this host.

    The automatic id is FNV-1a 64 of the machine id (fallback: the hostname) and the absolute
    ``data_dir``, mapped into 1..63. Including ``data_dir`` (upstream hashes the machine
    id alone) gives several nodes on one host different ids. Stable across restarts as long as the
    machine and the data directory stay the same. Only ``id_node_bits()`` of it reaches ids, so
    two auto-numbered nodes collide with probability 1/64 per pair: set ``node_id`` explicitly
    for real clusters.
    """
    if cfg.node_id != 0:
        return cfg.node_id
    ident = _machine_id(machine_id_paths) or (hostname if hostname is not None else socket.gethostname())
    digest = fnv1a_64(f"{ident}\0{os.path.abspath(cfg.data_dir)}".encode())
    return digest % MAX_NODE_ID + 1
