"""Clusters for tests, on ``marmot.testing.cluster.LocalCluster``: a context manager that yields the
started nodes, the same behind the fault proxy, a module-scoped pytest fixture, and ``marmot verify``.

Why thin wrappers: most replication tests want "N nodes, all ALIVE, stopped by PID afterwards" and the
list of nodes; the launcher's options (per-node env, extra config, proxy) pass straight through.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from marmot.testing.admin import SECRET
from marmot.testing.cluster import LocalCluster
from marmot.testing.faultproxy import ProxyPool
from marmot.testing.nodes import NodeProcess
from tests.support.paths import REPO


@contextmanager
def replicated_cluster(
    tmp: Path,
    n: int = 3,
    consistency: str = "QUORUM",
    extra_toml: str = "",
    mysql_extra: str = "",
    replication_extra: str = "",
    cluster_extra: str = "",
    env: dict[int, dict[str, str]] | None = None,
) -> Iterator[list[NodeProcess]]:
    """Start ``n`` nodes (ids 1..n; node 1 is the seed the others join through), wait until every node
    sees every member ALIVE, yield them in id order, and stop each process by its PID (SIGTERM) afterwards
    (also when starting or the test fails). ``extra_toml`` is appended to every node's config (whole
    sections); ``replication_extra`` and ``cluster_extra`` are more keys of its ``[replication]`` /
    ``[cluster]`` sections; ``env[i]`` is node i's extra environment (failpoints)."""
    with LocalCluster(
        n,
        tmp,
        consistency=consistency,
        extra_toml=extra_toml,
        mysql_extra=mysql_extra,
        replication_extra=replication_extra,
        cluster_extra=cluster_extra,
        env=env,
    ) as cluster:
        yield cluster.nodes


@contextmanager
def proxied_cluster(
    tmp: Path,
    env: dict[int, dict[str, str]] | None = None,
    extra_toml: str = "",
    replication_extra: str = "",
) -> Iterator[tuple[list[NodeProcess], ProxyPool]]:
    """Three nodes (ids 1..3) that reach each other only through a fault proxy's directed links
    (``[cluster] dial_overrides``), so a test can cut, hold or delay any direction on 127.0.0.1.
    Anti-entropy runs every second and writes time out after 2 s. ``env[i]`` is node i's extra
    environment (failpoints); ``extra_toml`` is appended to every config and ``replication_extra`` to its
    ``[replication]`` section. Every node is SIGKILLed by its
    PID afterwards and the proxy closed."""
    with LocalCluster(
        3,
        tmp,
        proxied=True,
        env=env,
        extra_toml=extra_toml,
        stop_signal=signal.SIGKILL,
        replication_extra="anti_entropy_interval_seconds = 1\nwrite_timeout_ms = 2000\n" + replication_extra,
    ) as cluster:
        assert cluster.proxy is not None
        yield cluster.nodes, cluster.proxy


def cluster_fixture(n: int = 3, consistency: str = "QUORUM", extra_toml: str = "", scope: str = "module"):
    """A pytest fixture (assign it to a module-level name) yielding a started ``replicated_cluster``."""

    @pytest.fixture(scope=scope)
    def _cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[NodeProcess]]:
        with replicated_cluster(tmp_path_factory.mktemp("cluster"), n, consistency, extra_toml) as nodes:
            yield nodes

    return _cluster


def marmot_verify(
    node: NodeProcess, *extra: str, settle: float = 1, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``marmot verify`` (a real CLI process) against ``node``'s cluster; ``extra``: more flags."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "marmot.cli",
            "verify",
            "--address",
            f"127.0.0.1:{node.grpc_port}",
            "--secret",
            SECRET,
            "--settle",
            str(settle),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(REPO),
    )
