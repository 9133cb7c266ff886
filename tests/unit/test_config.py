"""Config loading: defaults, the reference config.toml, every validation rule, precedence."""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
from pathlib import Path

import pytest

from marmot.config import (
    INERT_KEYS,
    MAX_NODE_ID,
    NOT_BUILT,
    REDACTED,
    Config,
    ConfigError,
    MySQLUser,
    SinkConfig,
    _all_keys,
    fnv1a_64,
    id_node_bits,
    inert_keys,
    inert_keys_set,
    load_config,
    resolve_node_id,
    unbuilt_modes,
    value_at,
)

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "config.toml"
NO_ENV: dict[str, str] = {}


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "marmot.toml"
    p.write_text(text)
    return p


def load_text(tmp_path: Path, text: str, **kw: object) -> Config:
    return load_config(write(tmp_path, text), env=kw.pop("env", NO_ENV), **kw)  # type: ignore[arg-type]


def error_of(tmp_path: Path, text: str, **kw: object) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text, **kw)
    return info.value


# -- defaults and the reference file -----------------------------------------------------------


def test_embedded_defaults() -> None:
    cfg = load_config(None, env=NO_ENV)
    assert cfg == Config()
    assert cfg.warnings == []
    assert cfg.node_id == 0 and cfg.data_dir == "./marmot-data"
    assert cfg.cluster.grpc_port == 8080 and cfg.cluster.shutdown_grace_period_ms == 15000
    assert cfg.cluster.promotion.check_interval_seconds == 2
    assert cfg.cluster.promotion.min_healthy_duration_sec == 3
    assert cfg.replication.default_write_consistency == "QUORUM"
    assert cfg.replication.default_read_consistency == "LOCAL_ONE"
    assert cfg.replication.gc_min_retention_hours == 2 and cfg.replication.gc_max_retention_hours == 24
    assert cfg.transaction.lock_wait_timeout_seconds == 50
    assert cfg.metastore.cache_size_mb == 128
    assert cfg.grpc_client.compression_level == 1
    assert cfg.query_pipeline.transpiler_cache_size == 10000
    assert cfg.mysql.port == 3306 and cfg.mysql.auto_id_mode == "compact"
    assert cfg.mysql.unix_socket_perm == 0o660
    assert cfg.mysql.users == [MySQLUser("root", "")]
    assert cfg.mysql.max_allowed_packet == 64 * 1024 * 1024
    assert cfg.mysql.server_version == "8.0.36-marmot"
    assert not cfg.mysql.tls_enabled
    assert cfg.logging.format == "json" and cfg.logging.max_size_mb == 100
    assert cfg.prometheus.enabled is True
    assert cfg.replica.enabled is False and cfg.replica.snapshot_concurrency == 3
    assert cfg.publisher.enabled is False and cfg.publisher.sinks == []
    assert cfg.batch_commit.max_batch_size == 128 and cfg.batch_commit.checkpoint_restart_thresh_mb == 16.0
    assert cfg.extensions.always_loaded == [] and cfg.vector_index.enabled is False


def test_defaults_are_not_shared_between_instances() -> None:
    a, b = Config(), Config()
    assert a.mysql.users is not b.mysql.users
    assert a.cluster.seed_nodes is not b.cluster.seed_nodes


def test_reference_config_loads_to_exact_defaults() -> None:
    cfg = load_config(REFERENCE, env=NO_ENV)
    assert cfg == Config()
    assert cfg.to_dict(redact_secrets=False) == Config().to_dict(redact_secrets=False)
    assert cfg.warnings == []


def _flatten(table: dict, prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for k, v in table.items():
        key = f"{prefix}.{k}" if prefix else k
        keys.add(key)
        if isinstance(v, dict):
            keys |= _flatten(v, key)
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            for item in v:
                keys |= _flatten(item, key + "[]")
    return keys


def test_reference_config_lists_every_key() -> None:
    in_file = _flatten(tomllib.loads(REFERENCE.read_text()))
    schema = set(_all_keys())
    sink_keys = {k for k in schema if k.startswith("publisher.sinks")}
    assert in_file == schema - sink_keys  # sinks are documented as a commented example


def test_reference_config_every_key_has_a_comment() -> None:
    lines = REFERENCE.read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^[a-z_0-9]+ = ", line) and not lines[i - 1].startswith("#"):
            # Keys inside [[mysql.users]] are documented by the comment above the table.
            assert lines[i - 1] in ("[[mysql.users]]", 'name = "root"'), line


def test_reference_sink_example_is_valid_when_uncommented(tmp_path: Path) -> None:
    text = REFERENCE.read_text()
    block = text[text.index("# [[publisher.sinks]]") :].split("\n\n")[0]
    sink = "\n".join(line[2:] for line in block.splitlines())
    cfg = load_text(tmp_path, "[publisher]\nenabled = true\n" + sink)
    assert cfg.publisher.sinks == [SinkConfig(name="kafka-main", type="kafka", brokers=["localhost:9092"])]


def test_to_dict_is_json_and_redacts_secrets() -> None:
    cfg = load_config(
        None,
        overrides={"cluster.cluster_secret": "s3cret", "mysql.users": [{"name": "app", "password": "pw"}]},
        env=NO_ENV,
    )
    d = cfg.to_dict()
    json.dumps(d)
    assert d["cluster"]["cluster_secret"] == REDACTED
    assert d["mysql"]["users"] == [{"name": "app", "password": REDACTED}]
    assert d["replica"]["secret"] == ""  # empty secrets stay visible as empty
    assert "warnings" not in d
    raw = cfg.to_dict(redact_secrets=False)
    assert raw["cluster"]["cluster_secret"] == "s3cret"
    assert raw["cluster"]["promotion"] == {"check_interval_seconds": 2, "min_healthy_duration_sec": 3}


def test_config_is_frozen() -> None:
    cfg = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.mysql.port = 1  # type: ignore[misc]


# -- precedence ---------------------------------------------------------------------------------


def test_file_values(tmp_path: Path) -> None:
    cfg = load_text(
        tmp_path,
        """
node_id = 3
data_dir = "/var/lib/marmot"
[cluster]
grpc_port = 8081
seed_nodes = ["node1:8080", "[::1]:8082"]
[cluster.promotion]
min_healthy_duration_sec = 0
[replication]
default_write_consistency = "all"
[batch_commit]
checkpoint_passive_thresh_mb = 2
""",
    )
    assert cfg.node_id == 3 and cfg.data_dir == "/var/lib/marmot"
    assert cfg.cluster.grpc_port == 8081
    assert cfg.cluster.seed_nodes == ["node1:8080", "[::1]:8082"]
    assert cfg.cluster.promotion.min_healthy_duration_sec == 0
    assert cfg.cluster.promotion.check_interval_seconds == 2  # untouched keys keep defaults
    assert cfg.replication.default_write_consistency == "ALL"
    assert cfg.batch_commit.checkpoint_passive_thresh_mb == 2.0
    assert isinstance(cfg.batch_commit.checkpoint_passive_thresh_mb, float)


def test_overrides_win_over_file(tmp_path: Path) -> None:
    path = write(tmp_path, "node_id = 1\n[mysql]\nport = 3307\n[cluster]\ngrpc_port = 8081\n")
    cfg = load_config(
        path,
        overrides={
            "mysql.port": 4000,
            "node_id": 9,
            "data_dir": "/tmp/x",
            "cluster.grpc_port": 9000,
            "cluster.promotion.check_interval_seconds": 1,
            "logging.verbose": None,  # a flag that was not given
        },
        env=NO_ENV,
    )
    assert (cfg.mysql.port, cfg.node_id, cfg.data_dir, cfg.cluster.grpc_port) == (4000, 9, "/tmp/x", 9000)
    assert cfg.cluster.promotion.check_interval_seconds == 1
    assert cfg.logging.verbose is False


def test_override_follow_addresses_from_comma_string() -> None:
    cfg = load_config(
        None,
        overrides={
            "replica.enabled": True,
            "replica.secret": "s",
            "replica.follow_addresses": "a:8080, b:8080,",
        },
        env=NO_ENV,
    )
    assert cfg.replica.follow_addresses == ["a:8080", "b:8080"]
    cfg = load_config(None, overrides={"replica.follow_addresses": ["c:1"]}, env=NO_ENV)
    assert cfg.replica.follow_addresses == ["c:1"]


def test_override_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"^mysql\.port: expected an integer in 1\.\.65535, got 'abc'$"):
        load_config(None, overrides={"mysql.port": "abc"}, env=NO_ENV)
    with pytest.raises(ConfigError, match=r"^mysql\.prot: unknown key \(did you mean 'mysql\.port'\?\)"):
        load_config(None, overrides={"mysql.prot": 1}, env=NO_ENV)


def test_override_into_a_list_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, '[[mysql.users]]\nname = "a"\n')
    with pytest.raises(
        ConfigError, match=r"^mysql\.users\.0\.name: cannot override, mysql\.users is not a table"
    ):
        load_config(path, overrides={"mysql.users.0.name": "b"}, env=NO_ENV)


def test_env_secrets_override_file(tmp_path: Path) -> None:
    text = '[cluster]\ncluster_secret = "file"\n[replica]\nsecret = "file-r"\n'
    cfg = load_text(tmp_path, text, env={"MARMOT_CLUSTER_SECRET": "env", "MARMOT_REPLICA_SECRET": "env-r"})
    assert cfg.cluster.cluster_secret == "env" and cfg.replica.secret == "env-r"
    cfg = load_text(tmp_path, text, env={"MARMOT_CLUSTER_SECRET": ""})  # empty = not set
    assert cfg.cluster.cluster_secret == "file" and cfg.replica.secret == "file-r"


def test_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARMOT_CLUSTER_SECRET", "from-os")
    assert load_config(None).cluster.cluster_secret == "from-os"


def test_override_beats_env() -> None:
    cfg = load_config(
        None, overrides={"cluster.cluster_secret": "flag"}, env={"MARMOT_CLUSTER_SECRET": "env"}
    )
    assert cfg.cluster.cluster_secret == "flag"


def test_env_secret_satisfies_replica_requirement(tmp_path: Path) -> None:
    text = '[replica]\nenabled = true\nfollow_addresses = ["n1:8080"]\n'
    assert "replica.secret" in str(error_of(tmp_path, text))
    cfg = load_text(tmp_path, text, env={"MARMOT_REPLICA_SECRET": "x"})
    assert cfg.replica.enabled and cfg.replica.secret == "x"


# -- file-level errors -----------------------------------------------------------------------------


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml", env=NO_ENV)
    err = error_of(tmp_path, "[mysql\nport = 1\n")
    assert "invalid TOML" in str(err) and str(err).startswith(str(tmp_path))


# -- unknown keys ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[mysql]\nprot = 3306\n", "mysql.prot: unknown key (did you mean 'mysql.port'?)"),
        ("[mysqll]\nport = 3306\n", "mysqll: unknown section (did you mean 'mysql'?)"),
        ("nodeid = 1\n", "nodeid: unknown key (did you mean 'node_id'?)"),
        (
            "[replication]\ngc_min_retention_hour = 4\n",
            "replication.gc_min_retention_hour: unknown key (did you mean 'replication.gc_min_retention_hours'?)",
        ),
        (
            "[cluster.promotion]\ncheck_interval = 1\n",
            "cluster.promotion.check_interval: unknown key (did you mean 'cluster.promotion.check_interval_seconds'?)",
        ),
        (
            "[mysql]\nanti_entropy_interval_seconds = 5\n",
            "mysql.anti_entropy_interval_seconds: unknown key (did you mean "
            "'replication.anti_entropy_interval_seconds'? it belongs in another section)",
        ),
        ("[mysql]\nzzz = 1\n", "mysql.zzz: unknown key"),
        (
            '[[publisher.sinks]]\nname = "a"\ntype = "nats"\nnats_url = "nats://x"\ntopic = "t"\n',
            "publisher.sinks[0].topic: unknown key (did you mean 'publisher.sinks[0].topic_prefix'?)",
        ),
    ],
)
def test_unknown_keys_are_errors_with_suggestions(tmp_path: Path, text: str, message: str) -> None:
    assert str(error_of(tmp_path, text)) == message


def test_all_errors_are_reported_first_one_first(tmp_path: Path) -> None:
    err = error_of(tmp_path, "[mysql]\nport = 0\nprot = 1\n[cluster]\ngrpc_port = true\n")
    assert len(err.errors) == 3
    assert err.key == "mysql.port"
    assert str(err).startswith("mysql.port: expected an integer in 1..65535, got 0 (and 2 more: ")
    assert "cluster.grpc_port: expected an integer in 1..65535, got True" in str(err)


# -- types and ranges -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('node_id = "1"', "node_id"),
        ("node_id = -1", "node_id"),
        ("data_dir = 5", "data_dir"),
        ('data_dir = ""', "data_dir"),
        ("mysql = 5", "mysql"),
        ('[mysql]\nport = "abc"', "mysql.port"),
        ("[mysql]\nport = 0", "mysql.port"),
        ("[mysql]\nport = 65536", "mysql.port"),
        ("[mysql]\nport = 3306.0", "mysql.port"),
        ("[mysql]\nport = true", "mysql.port"),
        ("[mysql]\nenabled = 1", "mysql.enabled"),
        ('[mysql]\nenabled = "yes"', "mysql.enabled"),
        ("[mysql]\nmax_allowed_packet = 10", "mysql.max_allowed_packet"),
        ('[mysql]\nserver_version = ""', "mysql.server_version"),
        ("[mysql]\nbind_address = 1", "mysql.bind_address"),
        ("[cluster]\ngrpc_port = 70000", "cluster.grpc_port"),
        ("[cluster]\nshutdown_grace_period_ms = 999", "cluster.shutdown_grace_period_ms"),
        ("[cluster]\nshutdown_grace_period_ms = 300001", "cluster.shutdown_grace_period_ms"),
        ("[cluster]\ngossip_interval_ms = 0", "cluster.gossip_interval_ms"),
        ('[cluster]\nseed_nodes = "a:1"', "cluster.seed_nodes"),
        ("[cluster]\nseed_nodes = [1]", "cluster.seed_nodes[0]"),
        ('[cluster]\nseed_nodes = ["ok:1", "no-port"]', "cluster.seed_nodes[1]"),
        ('[cluster]\nseed_nodes = ["host:99999"]', "cluster.seed_nodes[0]"),
        ("[cluster.promotion]\ncheck_interval_seconds = 0", "cluster.promotion.check_interval_seconds"),
        ("[cluster]\npromotion = 1", "cluster.promotion"),
        ("[replication]\nwrite_timeout_ms = 0", "replication.write_timeout_ms"),
        ("[replication]\nwrite_timeout_ms = -5", "replication.write_timeout_ms"),
        ('[replication]\ndefault_write_consistency = "MOST"', "replication.default_write_consistency"),
        ("[replication]\ndefault_read_consistency = 1", "replication.default_read_consistency"),
        ("[transaction]\nlock_wait_timeout_seconds = 0", "transaction.lock_wait_timeout_seconds"),
        ("[coordinator]\nprepare_timeout_ms = 0", "coordinator.prepare_timeout_ms"),
        ("[query_pipeline]\ntranspiler_cache_size = -1", "query_pipeline.transpiler_cache_size"),
        ("[grpc_client]\ncompression_level = 5", "grpc_client.compression_level"),
        ('[mysql]\nauto_id_mode = "snowflake"', "mysql.auto_id_mode"),
        ('[logging]\nformat = "xml"', "logging.format"),
        ("[logging]\nmax_size_mb = 0", "logging.max_size_mb"),
        ("[logging]\nmax_size_mb = nan", "logging.max_size_mb"),
        ("[logging]\nmax_backups = -1", "logging.max_backups"),
        ('[batch_commit]\ncheckpoint_passive_thresh_mb = "4"', "batch_commit.checkpoint_passive_thresh_mb"),
        ("[batch_commit]\ncheckpoint_passive_thresh_mb = true", "batch_commit.checkpoint_passive_thresh_mb"),
        ('[extensions]\nalways_loaded = [""]', "extensions.always_loaded[0]"),
        ("[[mysql.users]]\nname = 1", "mysql.users[0].name"),
        ('[mysql]\nusers = ["root"]', "mysql.users[0]"),
        ('[publisher]\nsinks = {name = "x"}', "publisher.sinks"),
    ],
)
def test_type_and_range_errors_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    err = error_of(tmp_path, text + "\n")
    assert str(err).startswith(f"{key}: "), str(err)
    assert err.key == key


def test_node_id_bounds(tmp_path: Path) -> None:
    assert load_text(tmp_path, f"node_id = {MAX_NODE_ID}\n").node_id == MAX_NODE_ID
    with pytest.raises(ConfigError, match=r"^node_id: expected an integer in 0\.\.63"):
        load_config(None, overrides={"node_id": 64}, env=NO_ENV)


def test_message_format_example() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, overrides={"mysql.port": "abc"}, env=NO_ENV)
    assert str(info.value) == "mysql.port: expected an integer in 1..65535, got 'abc'"


def test_enums_are_case_insensitive_and_normalised(tmp_path: Path) -> None:
    cfg = load_text(
        tmp_path,
        '[replication]\ndefault_write_consistency = "quorum"\ndefault_read_consistency = "Local_One"\n'
        '[mysql]\nauto_id_mode = "EXTENDED"\n[logging]\nformat = "Console"\n',
    )
    assert cfg.replication.default_write_consistency == "QUORUM"
    assert cfg.replication.default_read_consistency == "LOCAL_ONE"
    assert cfg.mysql.auto_id_mode == "extended"
    assert cfg.logging.format == "console"
    for level in ("ONE", "TWO", "THREE", "QUORUM", "ALL", "LOCAL_ONE"):
        got = load_config(
            None, overrides={"replication.default_write_consistency": level.lower()}, env=NO_ENV
        )
        assert got.replication.default_write_consistency == level


def test_float_keys_accept_integers_and_int_keys_reject_floats(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, "[logging]\nmax_size_mb = 0.001\n")
    assert cfg.logging.max_size_mb == 0.001
    assert error_of(tmp_path, "[logging]\nmax_backups = 1.5\n").key == "logging.max_backups"


# -- unix_socket_perm -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("literal", "mode"),
    [
        ("0o660", 0o660),
        ("0o600", 0o600),
        ("660", 0o660),
        ("644", 0o644),
        ("0", 0),
        ("777", 0o777),
        ("432", 0o432),  # decimal literals are always octal digits, even when small
        ('"0660"', 0o660),
        ('"660"', 0o660),
        ('"0o640"', 0o640),
        ("0o660  # comment", 0o660),
    ],
)
def test_unix_socket_perm_forms(tmp_path: Path, literal: str, mode: int) -> None:
    cfg = load_text(tmp_path, f"[mysql]\nunix_socket_perm = {literal}\n")
    assert cfg.mysql.unix_socket_perm == mode


def test_unix_socket_perm_dotted_and_inline_forms(tmp_path: Path) -> None:
    assert load_text(tmp_path, "mysql.unix_socket_perm = 600\n").mysql.unix_socket_perm == 0o600
    assert load_text(tmp_path, "mysql = { unix_socket_perm = 640 }\n").mysql.unix_socket_perm == 0o640


@pytest.mark.parametrize("literal", ["680", "0o1000", "1000", '"08"', '"rw"', "-1", "true"])
def test_unix_socket_perm_rejects(tmp_path: Path, literal: str) -> None:
    err = error_of(tmp_path, f"[mysql]\nunix_socket_perm = {literal}\n")
    assert str(err).startswith("mysql.unix_socket_perm: expected permission bits in 0..0o777")


def test_upstream_leading_zero_perm_gets_a_helpful_error(tmp_path: Path) -> None:
    err = error_of(tmp_path, "[mysql]\nunix_socket_perm = 0660\n")
    assert str(err).startswith(
        "mysql.unix_socket_perm: TOML does not allow the leading zero in 0660; write 0o660"
    )


def test_unix_socket_perm_override_int_is_the_mode_and_str_is_octal() -> None:
    assert (
        load_config(None, overrides={"mysql.unix_socket_perm": 0o600}, env=NO_ENV).mysql.unix_socket_perm
        == 0o600
    )
    assert (
        load_config(None, overrides={"mysql.unix_socket_perm": "0640"}, env=NO_ENV).mysql.unix_socket_perm
        == 0o640
    )


# -- cross-key rules --------------------------------------------------------------------------------


def test_gc_interval_must_cover_anti_entropy(tmp_path: Path) -> None:
    err = error_of(tmp_path, "[replication]\nanti_entropy_interval_seconds = 30\ngc_interval_seconds = 10\n")
    assert str(err) == (
        "replication.gc_interval_seconds: must be >= replication.anti_entropy_interval_seconds (30), got 10"
    )
    ok = load_text(tmp_path, "[replication]\nanti_entropy_interval_seconds = 30\ngc_interval_seconds = 30\n")
    assert ok.replication.gc_interval_seconds == 30


def test_gc_min_retention_must_cover_delta_threshold(tmp_path: Path) -> None:
    err = error_of(
        tmp_path, "[replication]\ngc_min_retention_hours = 1\ndelta_sync_threshold_seconds = 7200\n"
    )
    assert err.key == "replication.gc_min_retention_hours"
    assert "delta_sync_threshold_seconds" in str(err)
    # Fast timers for tests: everything at zero is consistent.
    cfg = load_text(
        tmp_path,
        "[replication]\ngc_min_retention_hours = 0\ndelta_sync_threshold_seconds = 0\n",
    )
    assert cfg.replication.gc_min_retention_hours == 0


def test_gc_max_retention_zero_or_at_least_min(tmp_path: Path) -> None:
    err = error_of(tmp_path, "[replication]\ngc_min_retention_hours = 4\ngc_max_retention_hours = 3\n")
    assert err.key == "replication.gc_max_retention_hours"
    cfg = load_text(tmp_path, "[replication]\ngc_min_retention_hours = 4\ngc_max_retention_hours = 0\n")
    assert cfg.replication.gc_max_retention_hours == 0 and cfg.warnings == []


def test_gc_max_below_twice_delta_threshold_warns(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, "[replication]\ngc_min_retention_hours = 1\ngc_max_retention_hours = 1\n")
    assert len(cfg.warnings) == 1
    assert cfg.warnings[0].startswith("replication.gc_max_retention_hours: ")
    assert load_text(tmp_path, "[replication]\ngc_max_retention_hours = 2\n").warnings == []


def test_standalone_excludes_seeds_and_replica(tmp_path: Path) -> None:
    err = error_of(tmp_path, '[cluster]\nstandalone = true\nseed_nodes = ["a:1"]\n')
    assert err.key == "cluster.seed_nodes"
    err = error_of(
        tmp_path,
        '[cluster]\nstandalone = true\n[replica]\nenabled = true\nfollow_addresses = ["a:1"]\nsecret = "s"\n',
    )
    assert err.key == "replica.enabled"
    assert load_text(tmp_path, "[cluster]\nstandalone = true\n").cluster.standalone


def test_replica_requirements(tmp_path: Path) -> None:
    err = error_of(tmp_path, '[replica]\nenabled = true\nsecret = "s"\n')
    assert str(err) == "replica.follow_addresses: required when replica.enabled = true, got []"
    err = error_of(tmp_path, '[replica]\nenabled = true\nfollow_addresses = ["a:1"]\n')
    assert err.key == "replica.secret"
    err = error_of(
        tmp_path,
        '[cluster]\nseed_nodes = ["b:2"]\n[replica]\nenabled = true\nfollow_addresses = ["a:1"]\nsecret = "s"\n',
    )
    assert err.key == "cluster.seed_nodes" and "replica.enabled" in str(err)
    # Disabled replica sections are not checked for completeness.
    assert load_text(tmp_path, '[replica]\nfollow_addresses = ["a:1"]\n').replica.enabled is False


def test_replicate_databases_may_not_include_system_db(tmp_path: Path) -> None:
    err = error_of(tmp_path, '[replica]\nreplicate_databases = ["app", "__marmot_system"]\n')
    assert err.key == "replica.replicate_databases[1]"
    cfg = load_text(tmp_path, '[replica]\nreplicate_databases = ["prod_*", "app"]\n')
    assert cfg.replica.replicate_databases == ["prod_*", "app"]


def test_dead_timeout_not_below_suspect(tmp_path: Path) -> None:
    err = error_of(tmp_path, "[cluster]\nsuspect_timeout_ms = 500\ndead_timeout_ms = 400\n")
    assert err.key == "cluster.dead_timeout_ms"


# -- users, TLS, sinks ------------------------------------------------------------------------------


def test_user_list(tmp_path: Path) -> None:
    cfg = load_text(
        tmp_path,
        '[[mysql.users]]\nname = "app"\npassword = "pw"\n\n[[mysql.users]]\nname = "ro"\n',
    )
    assert cfg.mysql.users == [MySQLUser("app", "pw"), MySQLUser("ro", "")]  # replaces the default root


def test_user_names_unique_and_non_empty(tmp_path: Path) -> None:
    err = error_of(tmp_path, '[[mysql.users]]\nname = "a"\n[[mysql.users]]\nname = "a"\n')
    assert str(err) == "mysql.users[1].name: duplicate user 'a'"
    err = error_of(tmp_path, '[[mysql.users]]\npassword = "x"\n')
    assert err.key == "mysql.users[0].name"
    err = error_of(tmp_path, '[[mysql.users]]\nname = " "\n')
    assert err.key == "mysql.users[0].name"
    err = error_of(tmp_path, "[mysql]\nusers = []\n")
    assert err.key == "mysql.users"
    err = error_of(tmp_path, '[[mysql.users]]\nname = "a"\nrole = "x"\n')
    assert err.key == "mysql.users[0].role"


def test_tls_needs_both_files(tmp_path: Path) -> None:
    assert error_of(tmp_path, '[mysql]\ntls_cert_file = "c.pem"\n').key == "mysql.tls_key_file"
    assert error_of(tmp_path, '[mysql]\ntls_key_file = "k.pem"\n').key == "mysql.tls_cert_file"
    cfg = load_text(tmp_path, '[mysql]\ntls_cert_file = "c.pem"\ntls_key_file = "k.pem"\n')
    assert cfg.mysql.tls_enabled


def test_sinks(tmp_path: Path) -> None:
    cfg = load_text(
        tmp_path,
        '[publisher]\nenabled = true\n[[publisher.sinks]]\nname = "n"\ntype = "NATS"\nnats_url = "nats://h:4222"\n'
        "retry_multiplier = 3\n",
    )
    (sink,) = cfg.publisher.sinks
    assert sink.type == "nats" and sink.format == "debezium" and sink.filter_tables == ["*"]
    assert sink.retry_multiplier == 3.0
    assert (
        error_of(tmp_path, '[[publisher.sinks]]\nname = "k"\ntype = "kafka"\n').key
        == "publisher.sinks[0].brokers"
    )
    assert (
        error_of(tmp_path, '[[publisher.sinks]]\nname = "n"\ntype = "nats"\n').key
        == "publisher.sinks[0].nats_url"
    )
    assert error_of(tmp_path, '[[publisher.sinks]]\nname = "x"\n').key == "publisher.sinks[0].type"
    assert (
        error_of(tmp_path, '[[publisher.sinks]]\nname = "x"\ntype = "redis"\n').key
        == "publisher.sinks[0].type"
    )
    err = error_of(
        tmp_path, '[[publisher.sinks]]\nname = "x"\ntype = "nats"\nnats_url = "u"\nformat = "avro"\n'
    )
    assert err.key == "publisher.sinks[0].format"
    two = '[[publisher.sinks]]\nname = "x"\ntype = "nats"\nnats_url = "u"\n'
    assert error_of(tmp_path, two + two).key == "publisher.sinks[1].name"
    assert (
        error_of(tmp_path, '[[publisher.sinks]]\ntype = "nats"\nnats_url = "u"\n').key
        == "publisher.sinks[0].name"
    )


def test_publisher_keys_of_ours(tmp_path: Path) -> None:
    """snapshot_mode and max_backlog_transactions (not upstream's): defaults, values, bad values named."""
    sink = '[[publisher.sinks]]\nname = "n"\ntype = "nats"\nnats_url = "nats://h:4222"\n'
    cfg = load_text(tmp_path, "[publisher]\nenabled = true\n" + sink)
    assert (
        cfg.publisher.max_backlog_transactions == 1_000_000
        and cfg.publisher.sinks[0].snapshot_mode == "never"
    )
    cfg = load_text(
        tmp_path, "[publisher]\nmax_backlog_transactions = 5\n" + sink + 'snapshot_mode = "initial"\n'
    )
    assert cfg.publisher.max_backlog_transactions == 5 and cfg.publisher.sinks[0].snapshot_mode == "initial"
    assert error_of(tmp_path, sink + 'snapshot_mode = "full"\n').key == "publisher.sinks[0].snapshot_mode"
    assert error_of(tmp_path, "[publisher]\nmax_backlog_transactions = 0\n").key == (
        "publisher.max_backlog_transactions"
    )


def test_publisher_enabled_without_sinks_warns(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, "[publisher]\nenabled = true\n")
    assert cfg.warnings and cfg.warnings[0].startswith("publisher.enabled: ")


# -- node ids -----------------------------------------------------------------------------------------


def test_fnv1a_64_known_vectors() -> None:
    assert fnv1a_64(b"") == 0xCBF29CE484222325
    assert fnv1a_64(b"a") == 0xAF63DC4C8601EC8C
    assert fnv1a_64(b"foobar") == 0x85944171F73967E8


def test_resolve_node_id_explicit() -> None:
    assert resolve_node_id(Config(node_id=42)) == 42


def test_resolve_node_id_auto_is_stable_and_depends_on_data_dir(tmp_path: Path) -> None:
    mid = tmp_path / "machine-id"
    mid.write_text("0123456789abcdef\n")
    a = resolve_node_id(Config(data_dir=str(tmp_path / "a")), machine_id_paths=(str(mid),))
    assert a == resolve_node_id(Config(data_dir=str(tmp_path / "a")), machine_id_paths=(str(mid),))
    b = resolve_node_id(Config(data_dir=str(tmp_path / "b")), machine_id_paths=(str(mid),))
    assert a != b
    assert 0 < a <= MAX_NODE_ID and 0 < b <= MAX_NODE_ID
    # Hostname fallback when no machine id can be read.
    h1 = resolve_node_id(Config(data_dir="/d"), machine_id_paths=(str(tmp_path / "none"),), hostname="h1")
    h2 = resolve_node_id(Config(data_dir="/d"), machine_id_paths=(), hostname="h2")
    assert h1 != h2 and h1 > 0
    # Relative data dirs are made absolute first.
    rel = resolve_node_id(Config(data_dir="./x"), machine_id_paths=(), hostname="h")
    assert rel == resolve_node_id(Config(data_dir=str(Path.cwd() / "x")), machine_id_paths=(), hostname="h")


def test_resolve_node_id_default_paths_never_zero() -> None:
    assert resolve_node_id(Config()) > 0


def test_id_node_bits() -> None:
    assert id_node_bits(1) == 1
    assert id_node_bits(63) == 63
    assert id_node_bits(64) == 0
    assert id_node_bits(65) == id_node_bits(1)  # these two nodes would mint colliding ids


# -- keys that do not act: modes not built (startup stops) and keys with no effect (one warning) ---------

README = REPO / "README.md"
SRC = REPO / "src" / "marmot"


def _reference_keys_and_comments() -> dict[str, str]:
    """config.toml's dotted keys -> the comment block right above each."""
    out: dict[str, str] = {}
    section = ""
    comment: list[str] = []
    for line in REFERENCE.read_text().splitlines():
        if line.startswith("#"):
            comment.append(line)
        elif m := re.match(r"^\[\[?([a-z_.]+)\]\]?$", line):
            section = m.group(1)
            comment = []
        elif m := re.match(r"^([a-z_0-9]+) = ", line):
            out[f"{section}.{m.group(1)}" if section else m.group(1)] = "\n".join(comment)
            comment = []
        elif not line.strip():
            comment = []
    return out


def _readme_table(heading: str) -> dict[str, str]:
    """First backticked token of each row of the table under ``heading`` -> its second cell."""
    text = README.read_text()
    body = text[text.index(heading) :]
    rows: dict[str, str] = {}
    started = False
    for line in body.splitlines()[1:]:
        if line.startswith("|"):
            started = True
            cells = [c.strip() for c in line.strip("|").split("|")]
            m = re.match(r"`([^`]+)`", cells[0])
            if m and not set(cells[0]) <= set("-|"):
                rows[m.group(1)] = cells[1]
        elif started:
            break
    return rows


def _acting_readme_keys() -> set[str]:
    """Dotted keys named in the README's table of keys that act."""
    text = README.read_text()
    table = text[text.index("The keys that act:") : text.index("**Not built yet")]
    keys: set[str] = set()
    for line in table.splitlines():
        if not line.startswith("| `"):
            continue
        first = line.split("|")[1]
        section = ""
        for token in re.findall(r"`([^`]+)`", first):
            if m := re.match(r"^\[\[([a-z_.]+)\]\]$", token):
                keys.add(m.group(1))
                continue
            if m := re.match(r"^\[([a-z_.]+)\] (\S+)$", token):
                section, token = m.group(1), m.group(2)
            keys.add(f"{section}.{token}" if section else token)
    return keys


def test_inert_and_unbuilt_entries_are_schema_keys() -> None:
    from marmot.config_schema import _lookup

    for entry in [*INERT_KEYS, *NOT_BUILT]:
        assert _lookup(entry) is not None, entry
    assert not set(inert_keys()) & set(NOT_BUILT)
    assert {"metastore.cache_size_mb", "vector_index.enabled"} <= set(inert_keys())
    # replica mode and the CDC publisher act: their keys are neither inert nor refused
    for key in (
        "replica.enabled",
        "replica.follow_addresses",
        "replica.secret",
        "replica.snapshot_concurrency",
        "replica.forward_writes",
        "replica.forward_write_timeout_sec",
        "publisher.enabled",
        "publisher.sinks",
    ):
        assert key not in inert_keys() and key not in NOT_BUILT, key


def test_readme_lists_exactly_the_inert_keys_with_their_reasons() -> None:
    assert _readme_table("### Accepted for compatibility, no effect") == INERT_KEYS


def test_every_key_acts_or_is_listed_as_inert_or_not_built() -> None:
    schema = {k for k in _all_keys() if "[]" not in k and not dataclasses.is_dataclass(value_at(Config(), k))}
    acting = _acting_readme_keys()
    listed = set(inert_keys()) | set(NOT_BUILT)
    assert acting <= schema, acting - schema
    assert not acting & listed, acting & listed
    assert schema == acting | listed, schema - acting - listed


def _attribute_reads() -> str:
    return "\n".join(p.read_text() for p in SRC.rglob("*.py") if not p.name.startswith("config"))


def test_inert_keys_are_not_read_and_acting_keys_are() -> None:
    """A key wired into the node must leave INERT_KEYS, and a key nobody reads must join it: looks for
    reads through a config object (``cfg.x``, ``rcfg.x``, ``mysql_cfg.x``, ``cfg.section.x``) outside
    config*.py, for keys whose last name is unique in the schema (``enabled`` is everywhere)."""
    code = _attribute_reads()
    names = [k.rsplit(".", 1)[-1] for k in _all_keys()]
    for key in _all_keys():
        if "[]" in key or dataclasses.is_dataclass(value_at(Config(), key)):
            continue
        name = key.rsplit(".", 1)[-1]
        if names.count(name) != 1 or key == "node_id":  # node_id: read by config.resolve_node_id
            continue
        read = re.search(rf"\b\w*cfg\.(?:\w+\.)?{name}\b", code) is not None
        if key in inert_keys():
            assert not read, f"{key} is listed as having no effect, but the node reads .{name}"
        elif key not in NOT_BUILT:
            assert read, f"{key} acts according to README.md, but nothing outside config*.py reads .{name}"


def test_reference_config_says_which_keys_do_nothing() -> None:
    comments = _reference_keys_and_comments()
    for key in inert_keys():
        assert "No effect" in comments[key], f"config.toml: {key}'s comment must say it has no effect"
    for key in NOT_BUILT:
        assert "Not built yet" in comments[key], key
    for key, comment in comments.items():
        if "No effect" in comment:
            assert key in inert_keys(), f"config.toml says {key} has no effect, but it is not in INERT_KEYS"


def test_no_warning_for_inert_keys_left_at_their_defaults(tmp_path: Path) -> None:
    assert load_config(REFERENCE, env=NO_ENV).warnings == []
    cfg = load_text(
        tmp_path, "[metastore]\ncache_size_mb = 128\n[transaction]\nconflict_window_seconds = 10\n"
    )
    assert cfg.warnings == [] and inert_keys_set(cfg) == []


def test_one_warning_names_every_inert_key_set(tmp_path: Path) -> None:
    text = (
        "[cluster]\nstandalone = true\n[transaction]\nconflict_window_seconds = 5\n[metastore]\ncache_size_mb = 256\n"
        "[vector_index]\nenabled = true\n"
    )
    cfg = load_text(tmp_path, text, env={"MARMOT_REPLICA_SECRET": "r"})
    keys = [
        "cluster.standalone",
        "transaction.conflict_window_seconds",
        "metastore.cache_size_mb",
        "vector_index.enabled",
    ]
    assert inert_keys_set(cfg) == keys
    assert cfg.warnings == [
        ", ".join(keys) + ": accepted for compatibility, no effect on this node "
        '(README.md, "Accepted for compatibility, no effect", says why for each)'
    ]
    # a flag (override) counts as setting the key, too; other warnings stay separate
    cfg = load_config(
        None,
        overrides={
            "coordinator.prepare_timeout_ms": 10,
            "replication.gc_min_retention_hours": 1,
            "replication.gc_max_retention_hours": 1,
        },
        env=NO_ENV,
    )
    assert len(cfg.warnings) == 2
    assert cfg.warnings[0].startswith("replication.gc_max_retention_hours: ")
    assert cfg.warnings[1].startswith("coordinator.prepare_timeout_ms: accepted for compatibility, no effect")


def test_everything_a_config_can_ask_for_is_built(tmp_path: Path) -> None:
    """Replica mode and the CDC publisher were the last NOT_BUILT modes: a full config of both loads with
    refuse_unbuilt, and nothing is refused."""
    assert NOT_BUILT == {}
    text = (
        '[replica]\nenabled = true\nfollow_addresses = ["a:1"]\nsecret = "s"\nforward_writes = true\n'
        "[publisher]\nenabled = true\n"
    )
    cfg = load_text(tmp_path, text, refuse_unbuilt=True)
    assert cfg.replica.enabled and cfg.replica.forward_writes and cfg.publisher.enabled
    assert unbuilt_modes(cfg) == []


def test_an_unbuilt_mode_stops_startup_naming_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refusal itself, for the next mode that is parsed before it is built (a stand-in entry)."""
    monkeypatch.setitem(NOT_BUILT, "vector_index.enabled", "vector indexes are not built yet")
    assert unbuilt_modes(Config()) == []
    err = error_of(tmp_path, "[vector_index]\nenabled = true\n", refuse_unbuilt=True)
    assert err.errors == [
        "vector_index.enabled: vector indexes are not built yet; this node cannot start with it set "
        "(remove it from the config)"
    ]
    cfg = load_text(tmp_path, "[vector_index]\nenabled = true\n")  # tools that only read a config load it
    assert [e.split(":")[0] for e in unbuilt_modes(cfg)] == ["vector_index.enabled"]


def test_follow_addresses_flag_turns_replica_mode_on() -> None:
    """``--follow-addresses`` alone means "run as a replica of these nodes" (the secret still required)."""
    from marmot.cli import build_parser, overrides_from

    args = build_parser().parse_args(["--follow-addresses", "127.0.0.1:1, 127.0.0.1:2"])
    overrides = overrides_from(args)
    assert overrides["replica.enabled"] is True
    with pytest.raises(ConfigError, match="replica.secret: required"):
        load_config(None, overrides=overrides, env=NO_ENV)
    cfg = load_config(None, overrides=overrides, env={"MARMOT_REPLICA_SECRET": "s"})
    assert cfg.replica.enabled and cfg.replica.follow_addresses == ["127.0.0.1:1", "127.0.0.1:2"]
