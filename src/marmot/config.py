"""Node configuration: upstream Marmot v2's TOML contract, typed and validated before anything starts.

The schema -- one frozen dataclass per section, each key's type, default and rule -- is
``marmot.config_schema``; this module loads a file into it and checks it. It re-exports every name of the
schema, so ``from marmot.config import Config, MySQLConfig`` keeps working for all callers.

Why it looks like this:

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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from marmot.config_schema import (
    AUTH_PLUGINS,
    AUTO_ID_MODES,
    CONSISTENCY_LEVELS,
    INERT_KEYS,
    LOG_FORMATS,
    MAX_NODE_ID,
    NOT_BUILT,
    REDACTED,
    SINK_FORMATS,
    SINK_TYPES,
    BatchCommitConfig,
    ClusterConfig,
    Config,
    ConnectionPoolConfig,
    CoordinatorConfig,
    DDLConfig,
    ExtensionsConfig,
    GrpcClientConfig,
    LoggingConfig,
    MetastoreConfig,
    MySQLConfig,
    MySQLUser,
    PrometheusConfig,
    PromotionConfig,
    PublisherConfig,
    QueryPipelineConfig,
    ReplicaConfig,
    ReplicationConfig,
    SinkConfig,
    TransactionConfig,
    VectorIndexConfig,
    _all_keys,
    _fields,
    _hints,
    _join,
    _list_item,
    _lookup,
    _Rule,
    _rule,
    inert_keys,
    value_at,
)
from marmot.hlc import NODE_BITS_MASK

__all__ = [
    "AUTH_PLUGINS",
    "AUTO_ID_MODES",
    "CONSISTENCY_LEVELS",
    "ENV_CLUSTER_SECRET",
    "ENV_REPLICA_SECRET",
    "INERT_KEYS",
    "LOG_FORMATS",
    "MAX_NODE_ID",
    "NOT_BUILT",
    "REDACTED",
    "SINK_FORMATS",
    "SINK_TYPES",
    "SYSTEM_DATABASE",
    "BatchCommitConfig",
    "ClusterConfig",
    "Config",
    "ConfigError",
    "ConnectionPoolConfig",
    "CoordinatorConfig",
    "DDLConfig",
    "ExtensionsConfig",
    "GrpcClientConfig",
    "LoggingConfig",
    "MetastoreConfig",
    "MySQLConfig",
    "MySQLUser",
    "PrometheusConfig",
    "PromotionConfig",
    "PublisherConfig",
    "QueryPipelineConfig",
    "ReplicaConfig",
    "ReplicationConfig",
    "SinkConfig",
    "TransactionConfig",
    "VectorIndexConfig",
    "fnv1a_64",
    "id_node_bits",
    "inert_keys",
    "inert_keys_set",
    "load_config",
    "resolve_node_id",
    "unbuilt_modes",
    "value_at",
]

SYSTEM_DATABASE = "__marmot_system"
ENV_CLUSTER_SECRET = "MARMOT_CLUSTER_SECRET"
ENV_REPLICA_SECRET = "MARMOT_REPLICA_SECRET"


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
# Parsed TOML -> schema: per-key type checks and rules, unknown keys


_INVALID = object()


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

    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            return bad()
        return _build(tp, value, key, errors)
    item = _list_item(tp)
    if item is not None:
        if not isinstance(value, list):
            return bad()
        out: list[Any] = []
        for i, v in enumerate(value):
            ikey = f"{key}[{i}]"
            if isinstance(item, type) and dataclasses.is_dataclass(item):
                if not isinstance(v, dict):
                    errors.append(f"{ikey}: expected a table, got {v!r}")
                    continue
                out.append(_build(item, v, ikey, errors))
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

    for pair in cl.dial_overrides:
        left, sep, right = pair.partition("=")
        if not sep or ":" not in left or ":" not in right:
            errors.append(
                f'cluster.dial_overrides: expected "advertised host:port=dial host:port", got {pair!r}'
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
# Keys that do not act (the lists are config_schema.NOT_BUILT and config_schema.INERT_KEYS)


INERT_WARNING = "accepted for compatibility, no effect on this node"


def unbuilt_modes(cfg: Config) -> list[str]:
    """One message per ``NOT_BUILT`` key that ``cfg`` sets (to anything but its default): the modes this
    config asks for that this node cannot run. ``load_config(..., refuse_unbuilt=True)`` raises them."""
    default = Config()
    out = []
    for key, why in NOT_BUILT.items():
        if value_at(cfg, key) != value_at(default, key):
            out.append(
                f"{key}: {why}; this node cannot start with it set (remove it from the config"
                f"{' and the command line' if key == 'replica.follow_addresses' else ''})"
            )
    return out


def inert_keys_set(cfg: Config) -> list[str]:
    """The keys accepted for compatibility with no effect that ``cfg`` sets to anything but their
    default, in schema order. Keys left at their default (a copy of config.toml) are not listed."""
    default = Config()
    return [key for key in inert_keys() if value_at(cfg, key) != value_at(default, key)]


def inert_warning(cfg: Config) -> str | None:
    """The one startup warning naming every inert key ``cfg`` sets, or None when it sets none."""
    keys = inert_keys_set(cfg)
    if not keys:
        return None
    return (
        f'{", ".join(keys)}: {INERT_WARNING} (README.md, "Accepted for compatibility, no effect", '
        f"says why for each)"
    )


# ---------------------------------------------------------------------------------------------
# Public API


def load_config(
    path: str | os.PathLike[str] | None,
    overrides: Mapping[str, object] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    refuse_unbuilt: bool = False,
) -> Config:
    """Load and validate a configuration.

    ``path`` None means the embedded defaults only. ``overrides`` maps dotted keys
    (``"mysql.port"``, ``"node_id"``, ``"cluster.promotion.check_interval_seconds"``) to values and
    wins over the file and the environment; a value of None is skipped (a CLI flag not given), and
    for a list-of-strings key a string is split on commas (``"a:1,b:2"``). ``env`` (default
    ``os.environ``) supplies ``MARMOT_CLUSTER_SECRET`` / ``MARMOT_REPLICA_SECRET`` when non-empty.
    ``refuse_unbuilt`` (what starting a node passes) raises for a mode this node does not build
    (:func:`unbuilt_modes`) before any other cross-key rule, so that is the first thing said about it.
    Raises :class:`ConfigError`. The returned ``warnings`` end with :func:`inert_warning`, if any.
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
    if refuse_unbuilt and (unbuilt := unbuilt_modes(cfg)):
        raise ConfigError(unbuilt)
    warnings = _validate(cfg, errors)
    if errors:
        raise ConfigError(errors)
    if (inert := inert_warning(cfg)) is not None:
        warnings.append(inert)
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
