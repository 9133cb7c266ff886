"""No silent modes, on a real ``marmot`` process: a config that sets keys accepted for compatibility with
no effect starts, and logs exactly one warning naming them (the refusal of a mode that is not built is
tested in tests/unit/test_config.py; no mode is unbuilt today)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pymysql

from marmot.testing import make_node
from tests.support import REPO

INERT = "accepted for compatibility, no effect on this node"


def run_marmot(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "marmot.cli", *args], capture_output=True, text=True, cwd=REPO, timeout=60
    )


def _config_warnings(log: str) -> list[str]:
    return [line for line in log.splitlines() if "WARNING" in line and "marmot.config" in line]


def test_inert_keys_start_with_exactly_one_warning(tmp_path: Path) -> None:
    node = make_node(
        tmp_path,
        unix_socket=False,
        cluster_extra="autoinc_merge_interval_ms = 500\n",
        extra_toml="[metastore]\ncache_size_mb = 256\n[coordinator]\nprepare_timeout_ms = 2000\n",
    )
    node.start()
    try:
        pymysql.connect(host="127.0.0.1", port=node.mysql_port, user="root", password="").close()
    finally:
        node.stop(signal.SIGTERM)
    log = node.log_path.read_text()
    assert "node 1 started" in log, log
    warnings = _config_warnings(log)
    assert len(warnings) == 1, warnings
    assert f"cluster.autoinc_merge_interval_ms, metastore.cache_size_mb: {INERT}" in warnings[0], warnings
    # coordinator.prepare_timeout_ms is set, but to its default: not mentioned
    assert "prepare_timeout_ms" not in log
    assert log.count(INERT) == 1


def test_inert_keys_at_their_defaults_start_without_the_warning(tmp_path: Path) -> None:
    # config.toml's own [metastore] section, copied as is: every key set, none changed
    section = (
        "[metastore]\n" + (REPO / "config.toml").read_text().split("\n[metastore]\n")[1].split("\n\n")[0]
    )
    assert "cache_size_mb = 128" in section
    node = make_node(tmp_path, unix_socket=False, extra_toml=section + "\n")
    node.start()
    node.stop(signal.SIGTERM)
    log = node.log_path.read_text()
    assert "node 1 started" in log and INERT not in log and _config_warnings(log) == [], log
