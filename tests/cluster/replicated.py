"""A replicated cluster of real node processes for tests, and the two things every replication test
needs: a client connection to one node and "poll every node until they all answer the same".

Why a helper: the replication tests (compat table, AUTO_INCREMENT under concurrency, ...) all need the
same N-node cluster (seed + joiners, one shared secret, fast gossip timers, QUORUM writes) and the same
convergence check. A write acknowledged at QUORUM is on a majority, not necessarily on the node a test
reads next (followers beyond the quorum apply asynchronously), so a single read on another node is a
race: ``wait_until_equal`` polls with a deadline and, when it gives up, shows what each node returned.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pymysql
import pytest

from tests.faultproxy import ProxyPool
from tests.nodeproc import REPO, NodeProcess, free_port, make_node

SECRET = "replicated-test-secret"
# the fast membership timers of tests/cluster/test_membership_cluster.py
TIMERS = "gossip_interval_ms = 100\nsuspect_timeout_ms = 600\ndead_timeout_ms = 1200\n"


def member_states(node: NodeProcess, secret: str = SECRET) -> dict[int, str]:
    """The membership table as ``node`` sees it (admin API), ``{}`` while it cannot answer."""
    req = urllib.request.Request(f"http://127.0.0.1:{node.grpc_port}/admin/cluster/members",
                                 headers={"X-Marmot-Secret": secret})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            body = json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError):
        return {}
    return {m["node_id"]: m["state"] for m in body.get("members", [])}


def admin_json(node: NodeProcess, path: str, secret: str = SECRET) -> Any:
    """GET an admin route of ``node`` (JSON)."""
    req = urllib.request.Request(f"http://127.0.0.1:{node.grpc_port}{path}", headers={"X-Marmot-Secret": secret})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def admin_call(node: NodeProcess, path: str, method: str = "GET", secret: str = SECRET,
               timeout: float = 15.0) -> tuple[int, dict[str, Any]]:
    """Call an admin route of ``node``: (HTTP status, JSON body); an error status is returned, not raised."""
    req = urllib.request.Request(f"http://127.0.0.1:{node.grpc_port}{path}", method=method,
                                 headers={"X-Marmot-Secret": secret})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def marmot_verify(node: NodeProcess, *extra: str, settle: float = 1, timeout: float = 120
                  ) -> subprocess.CompletedProcess[str]:
    """Run ``marmot verify`` (a real CLI process) against ``node``'s cluster; ``extra``: more flags."""
    return subprocess.run([sys.executable, "-m", "marmot.cli", "verify", "--address", f"127.0.0.1:{node.grpc_port}",
                           "--secret", SECRET, "--settle", str(settle), *extra],
                          capture_output=True, text=True, timeout=timeout, cwd=str(REPO))


def _wait_all_alive(node: NodeProcess, n: int, timeout: float = 30.0) -> None:
    everyone = {i: "ALIVE" for i in range(1, n + 1)}
    deadline = time.monotonic() + timeout
    while (seen := member_states(node)) != everyone:
        if time.monotonic() > deadline:
            raise AssertionError(f"node at 127.0.0.1:{node.grpc_port} does not see all {n} members ALIVE "
                                 f"within {timeout}s: {seen}\n{node.log()}")
        time.sleep(0.1)


def _confirm_started(node: NodeProcess, grace: float = 5.0) -> None:
    """``NodeProcess.start`` returns once *something* accepts connections on the MySQL port; if another
    process holds that port, the node itself dies on bind. Wait for the node's own "listening" log line
    (or, failing that, ``grace`` seconds alive) and raise like ``start`` if it exited."""
    assert node.proc is not None
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if node.proc.poll() is not None:
            raise RuntimeError(f"node exited with {node.proc.returncode}: {node.log()}")
        try:
            if f"listening on 127.0.0.1:{node.mysql_port}" in node.log_path.read_text(errors="replace"):
                return
        except OSError:
            pass
        time.sleep(0.05)


def _port_in_use(err: RuntimeError) -> int | None:
    """The port a node failed to bind ("address already in use"), from its start error."""
    m = re.search(r"bind on address \('127\.0\.0\.1', (\d+)\)\S*: address already in use", str(err))
    return int(m.group(1)) if m else None


@contextmanager
def replicated_cluster(tmp: Path, n: int = 3, consistency: str = "QUORUM", extra_toml: str = "",
                       mysql_extra: str = "", replication_extra: str = "", cluster_extra: str = "",
                       env: dict[int, dict[str, str]] | None = None) -> Iterator[list[NodeProcess]]:
    """Start ``n`` nodes (ids 1..n; node 1 is the seed the others join through), wait until every node
    sees every member ALIVE, yield them in id order, and stop each process by its PID afterwards (also
    when starting or the test fails). ``extra_toml`` is appended to every node's config (whole sections);
    ``replication_extra`` and ``cluster_extra`` are more keys of its ``[replication]`` / ``[cluster]`` sections;
    ``env[i]`` is node i's extra environment (failpoints).

    Free ports are picked, released and then bound by the node, so another process (a parallel test run)
    can take one in between: a node that cannot bind is started again on fresh ports (its MySQL port
    only, if it already joined the cluster under its cluster port)."""
    started: dict[int, NodeProcess] = {}
    used: set[int] = set()
    lock = threading.Lock()
    repl = f'[replication]\ndefault_write_consistency = "{consistency}"\n{replication_extra}'

    def fresh_port() -> int:
        with lock:
            while (port := free_port()) in used:
                pass
            used.add(port)
            return port

    def configure(node_id: int, seed: NodeProcess | None) -> NodeProcess:
        seeds = f'seed_nodes = ["127.0.0.1:{seed.grpc_port}"]\n' if seed else ""
        node = make_node(tmp / f"n{node_id}", node_id=node_id, unix_socket=False, mysql_extra=mysql_extra,
                         cluster_extra=f'{TIMERS}cluster_secret = "{SECRET}"\n{seeds}{cluster_extra}',
                         extra_toml=repl + extra_toml)
        with lock:
            clash = {node.mysql_port, node.grpc_port} & used or node.mysql_port == node.grpc_port
            used.update((node.mysql_port, node.grpc_port))
        if clash:
            return configure(node_id, seed)
        node.env.update((env or {}).get(node_id, {}))
        return node

    def start(node_id: int, seed: NodeProcess | None) -> NodeProcess:
        node = configure(node_id, seed)
        for attempt in range(3):
            try:
                node.start()
                _confirm_started(node)
                break
            except RuntimeError as err:
                port = _port_in_use(err)
                if port is None or attempt == 2:
                    raise
                if port == node.grpc_port:  # nothing joined yet: all new ports
                    node = configure(node_id, seed)
                else:  # joined under its cluster port: keep that, move the MySQL port
                    new = fresh_port()
                    text = node.config_path.read_text().replace(f"\nport = {node.mysql_port}\n", f"\nport = {new}\n")
                    node.config_path.write_text(text)
                    node.mysql_port = new
        with lock:
            started[node_id] = node
        return node

    try:
        seed = start(1, None)
        with ThreadPoolExecutor(max_workers=max(1, n - 1)) as pool:  # joiners boot in parallel
            for f in [pool.submit(start, i, seed) for i in range(2, n + 1)]:
                f.result()
        nodes = [started[i] for i in range(1, n + 1)]
        for node in nodes:
            _wait_all_alive(node, n)
        yield nodes
    finally:
        for _, node in sorted(started.items()):
            node.stop(signal.SIGTERM)


@contextmanager
def proxied_cluster(tmp: Path, env: dict[int, dict[str, str]] | None = None, extra_toml: str = ""
                    ) -> Iterator[tuple[list[NodeProcess], ProxyPool]]:
    """Three nodes (ids 1..3) that reach each other only through a fault proxy's directed links
    (``[cluster] dial_overrides``), so a test can cut, hold or delay any direction on 127.0.0.1.
    ``env[i]`` is node i's extra environment (failpoints); ``extra_toml`` is appended to every config.
    Every node is SIGKILLed by its PID afterwards and the proxy closed."""
    nodes = [make_node(tmp / f"n{i}", node_id=i, unix_socket=False) for i in (1, 2, 3)]
    pool = ProxyPool()
    for i in (1, 2, 3):
        for j, dst in enumerate(nodes, start=1):
            if i != j:
                pool.add(i, j, free_port(), dst.grpc_port)
    for i, n in enumerate(nodes, start=1):
        overrides = ", ".join(f'"127.0.0.1:{dst.grpc_port}=127.0.0.1:{pool.link(i, j).listen_port}"'
                              for j, dst in enumerate(nodes, start=1) if j != i)
        seeds = f'seed_nodes = ["127.0.0.1:{nodes[0].grpc_port}"]\n' if i > 1 else ""
        text = n.config_path.read_text().replace(
            "[cluster]\n", f'[cluster]\n{TIMERS}cluster_secret = "{SECRET}"\n{seeds}dial_overrides = [{overrides}]\n', 1)
        text += "[replication]\nanti_entropy_interval_seconds = 1\nwrite_timeout_ms = 2000\n" + extra_toml
        n.config_path.write_text(text)
        n.env.update((env or {}).get(i, {}))
    try:
        for n in nodes:
            n.start()
        for n in nodes:
            _wait_all_alive(n, 3)
        yield nodes, pool
    finally:
        for n in nodes:
            n.stop(signal.SIGKILL)
        pool.close()


def cluster_fixture(n: int = 3, consistency: str = "QUORUM", extra_toml: str = "", scope: str = "module"):
    """A pytest fixture (assign it to a module-level name) yielding a started ``replicated_cluster``."""

    @pytest.fixture(scope=scope)
    def _cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[NodeProcess]]:
        with replicated_cluster(tmp_path_factory.mktemp("cluster"), n, consistency, extra_toml) as nodes:
            yield nodes

    return _cluster


def connect(node: NodeProcess, db: str | None = "marmot", **kw: Any) -> pymysql.connections.Connection:
    """A PyMySQL connection to ``node`` with autocommit on (MySQL's default) and LOCAL INFILE allowed."""
    kw.setdefault("connect_timeout", 5)
    kw.setdefault("read_timeout", 60)
    return pymysql.connect(host="127.0.0.1", port=node.mysql_port, user="root", password="", database=db,
                           autocommit=True, local_infile=True, **kw)


def run(node: NodeProcess, *stmts: str, db: str | None = "marmot") -> tuple:
    """Execute statements in order on one connection to ``node``; return the last one's rows."""
    c = connect(node, db)
    try:
        cur = c.cursor()
        for s in stmts:
            cur.execute(s)
        return tuple(cur.fetchall())
    finally:
        c.close()


def node_name(nodes: Sequence[NodeProcess], node: NodeProcess) -> str:
    return f"node {nodes.index(node) + 1} (127.0.0.1:{node.mysql_port})"


def wait_until_equal(nodes: Sequence[NodeProcess], sql: str, timeout: float = 10.0, db: str | None = "marmot",
                     expected: Any = None, args: Any = None) -> list[tuple]:
    """Run ``sql`` on every node until all return identical rows (and, if ``expected`` is given, rows
    equal to it); return the per-node results. A node answering with an error (a table or database that
    has not arrived yet) never counts as agreeing. On timeout, fail with each node's last answer."""
    conns: dict[int, Any] = {}
    last: list[Any] = [None] * len(nodes)
    deadline = time.monotonic() + timeout
    try:
        while True:
            for i, node in enumerate(nodes):
                try:
                    if i not in conns:
                        conns[i] = connect(node, db)
                    cur = conns[i].cursor()
                    cur.execute(sql, args)
                    last[i] = tuple(cur.fetchall())
                except pymysql.err.MySQLError as err:
                    last[i] = err
                    c = conns.pop(i, None)
                    if c is not None:
                        c.close()
            ok = all(not isinstance(r, Exception) for r in last) and all(r == last[0] for r in last)
            if ok and (expected is None or last[0] == tuple(expected)):
                return list(last)
            if time.monotonic() >= deadline:
                lines = [f"  {node_name(nodes, node)}: {r!r}" for node, r in zip(nodes, last, strict=True)]
                want = "" if expected is None else f"\n  expected: {tuple(expected)!r}"
                raise AssertionError(f"nodes did not agree within {timeout}s on {sql!r}{want}\n" + "\n".join(lines))
            time.sleep(0.05)
    finally:
        for c in conns.values():
            c.close()
