"""A local cluster of N real node processes on 127.0.0.1: the one launcher of the tests, the chaos
harness and the benchmarks.

Node 1 is the seed; nodes 2..N join through ``seed_nodes = ["127.0.0.1:<cluster port of node 1>"]``
(and boot in parallel). All share one ``cluster_secret``, run with short gossip timers and with
``[replication] default_write_consistency`` set. ``start()`` returns once every node sees every member
ALIVE; ``stop()`` ends exactly the processes started here, by PID.

Options cover what the callers need beyond that:

* ``proxied``: each node dials each peer through its own directed fault-proxy link
  (``[cluster] dial_overrides`` → ``marmot.testing.faultproxy``), so a test can cut, hold or delay one
  direction without leaving 127.0.0.1;
* ``env``: per-node extra environment (failpoints, clock-offset files, preload libraries);
* ``tmpfs_size``: every data directory on its own tmpfs (root only; ``on_tmpfs`` says if it worked);
* ``kill`` / ``pause`` / ``resume`` / ``restart``: SIGKILL, SIGSTOP, SIGCONT by PID, and a start again
  on the same data;
* ``stop_signal``: how ``stop()`` ends the nodes (SIGTERM: a clean shutdown; SIGKILL: fast teardown).

Free ports are picked, released and then bound by the node, so another process (a parallel test run) can
take one in between: a node that cannot bind is started again on a fresh port.

    with LocalCluster(3, tmp_path) as cl:
        print(cl.mysql_endpoints())
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from marmot.testing.admin import SECRET, member_states
from marmot.testing.faultproxy import ProxyPool
from marmot.testing.nodes import NodeProcess, free_port, make_node
from marmot.testing.tmpfs import mount_tmpfs, unmount

__all__ = ["SECRET", "TIMERS", "LocalCluster", "join_keys"]

# Fast membership timers: a test waits seconds, not minutes, for SUSPECT and DEAD.
TIMERS = "gossip_interval_ms = 100\nsuspect_timeout_ms = 600\ndead_timeout_ms = 1200\n"
MAX_PARALLEL_BOOTS = 8  # joiners started at once (each is a Python process importing the server)


def join_keys(seed: NodeProcess | None, secret: str = SECRET, timers: str = TIMERS) -> str:
    """The ``[cluster]`` keys of a node of a test cluster: timers, secret and (unless it is the seed) the
    seed to join through."""
    seeds = f'seed_nodes = ["127.0.0.1:{seed.grpc_port}"]\n' if seed else ""
    return f'{timers}cluster_secret = "{secret}"\n{seeds}'


# the node's own startup error (marmot.startup.listen_error), and asyncio's wording of the same failure
_IN_USE = (
    re.compile(r"cannot listen on 127\.0\.0\.1:(\d+) \([^)]*\): address already in use", re.I),
    re.compile(r"bind on address \('127\.0\.0\.1', (\d+)\)\S*: address already in use", re.I),
)


def _port_in_use(err: RuntimeError) -> int | None:
    """The port a node failed to bind ("address already in use"), from its start error."""
    for pattern in _IN_USE:
        if m := pattern.search(str(err)):
            return int(m.group(1))
    return None


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


class LocalCluster:
    """``size`` nodes (ids 1..size) under ``workdir`` (a temporary directory, removed by ``stop()``
    unless ``keep_dir``, when None). Usable as a context manager (start on enter, stop on exit)."""

    def __init__(
        self,
        size: int = 3,
        workdir: Path | None = None,
        *,
        consistency: str = "QUORUM",
        secret: str = SECRET,
        timers: str = TIMERS,
        extra_toml: str = "",
        mysql_extra: str = "",
        replication_extra: str = "",
        cluster_extra: str = "",
        logging_extra: str = "",
        env: Mapping[int, Mapping[str, str]] | None = None,
        proxied: bool = False,
        tmpfs_size: str | None = None,
        stop_signal: int = signal.SIGTERM,
        start_timeout: float = 20.0,
        alive_timeout: float = 30.0,
        keep_dir: bool = False,
    ) -> None:
        if not 1 <= size <= 63:
            raise ValueError("cluster size must be 1..63")
        self.size = size
        self.own_dir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="marmot-cluster-")) if workdir is None else workdir
        self.secret = secret
        self.timers = timers
        self.cluster_extra = cluster_extra
        self.mysql_extra = mysql_extra
        self.logging_extra = logging_extra
        self.node_toml = (
            f'[replication]\ndefault_write_consistency = "{consistency}"\n{replication_extra}' + extra_toml
        )
        self.env = {i: dict(e) for i, e in (env or {}).items()}
        self.proxied = proxied
        self.tmpfs_size = tmpfs_size
        self.stop_signal = stop_signal
        self.start_timeout = start_timeout
        self.alive_timeout = alive_timeout
        self.keep_dir = keep_dir
        self.by_id: dict[int, NodeProcess] = {}
        self.proxy: ProxyPool | None = None
        self.mounts: list[Path] = []
        self.on_tmpfs = False  # every data directory is a tmpfs of its own
        self.down: set[int] = set()  # killed by kill() and not restarted
        self.paused: set[int] = set()  # SIGSTOPped by pause() and not resumed
        self._used_ports: set[int] = set()
        self._lock = threading.Lock()

    # -- life cycle ------------------------------------------------------------------------------------

    def start(self, wait: bool = True) -> LocalCluster:
        """Configure and start every node, then (``wait``) wait until all see all ALIVE; on failure the
        nodes already started are stopped before the error propagates."""
        try:
            for i in range(1, self.size + 1):
                self.by_id[i] = self._configure(i)
            if self.proxied:
                self._add_proxy()
            if self.tmpfs_size:
                self._mount_tmpfs()
            self._boot(1)
            with ThreadPoolExecutor(max_workers=max(1, min(MAX_PARALLEL_BOOTS, self.size - 1))) as pool:
                for f in [pool.submit(self._boot, i) for i in range(2, self.size + 1)]:
                    f.result()
            if wait:
                self.wait_all_alive(self.alive_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every node by its PID (resumed first: a stopped process ignores SIGTERM) with
        ``stop_signal``, close the proxy, unmount every tmpfs and remove an own ``workdir``. Safe to call
        twice; a node that fails to stop does not keep the others running."""
        for i, node in sorted(self.by_id.items()):
            try:
                if node.running():
                    self._signal(node, signal.SIGCONT)
                node.stop(self.stop_signal)
            except Exception as err:  # keep stopping the others
                print(
                    f"stopping node {i} (pid {node.proc.pid if node.proc else '?'}) failed: {err!r}",
                    file=sys.stderr,
                )
        self.paused.clear()
        if self.proxy is not None:
            self.proxy.close()
            self.proxy = None
        for m in self.mounts:
            unmount(m)
        self.mounts = []
        if self.own_dir:
            if self.keep_dir:
                print(f"cluster data and logs kept in {self.workdir}", file=sys.stderr)
            else:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self.start()  # start() stops what it started when it fails: __exit__ would not run

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the nodes -------------------------------------------------------------------------------------

    @property
    def nodes(self) -> list[NodeProcess]:
        """The nodes in id order (index 0 is node 1)."""
        return [self.by_id[i] for i in sorted(self.by_id)]

    def node(self, i: int) -> NodeProcess:
        return self.by_id[i]

    def mysql_endpoints(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", n.mysql_port) for n in self.nodes]

    def pids(self) -> list[int]:
        return [n.pid for n in self.nodes if n.proc is not None]

    def dead_nodes(self) -> list[int]:
        """Ids of the nodes whose process has exited (or never started)."""
        return [i for i, n in sorted(self.by_id.items()) if not n.running()]

    def log_tail(self, i: int, chars: int = 2000) -> str:
        return self.by_id[i].log()[-chars:]

    def member_states(self, i: int) -> dict[int, str]:
        """Node i's view of the membership (``{}`` while it cannot answer)."""
        return member_states(self.by_id[i], self.secret)

    def wait_all_alive(self, timeout: float = 30.0) -> float:
        """Wait until every node sees every node ALIVE; return the seconds it took. Raise
        ``RuntimeError`` if a node exits meanwhile or the deadline passes (saying what each node saw)."""
        want = {i: "ALIVE" for i in self.by_id}
        t0 = time.monotonic()
        last: dict[int, dict[int, str]] = {}
        while True:
            if dead := self.dead_nodes():
                raise RuntimeError(f"node(s) {dead} exited: {self.log_tail(dead[0])}")
            last = {i: self.member_states(i) for i in self.by_id}
            if all(seen == want for seen in last.values()):
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                lagging = [i for i, seen in last.items() if seen != want]
                raise RuntimeError(
                    f"not every node sees all {len(want)} members ALIVE within {timeout:.0f}s: "
                    + "; ".join(f"node {i} sees {s}" for i, s in last.items())
                    + f"\nlog of node {lagging[0]}:\n{self.log_tail(lagging[0])}"
                )
            time.sleep(0.1)

    # -- process faults (by PID) -----------------------------------------------------------------------

    def kill(self, i: int) -> None:
        """SIGKILL node i (resumed first if paused); it stays down until ``restart(i)``."""
        node = self.by_id[i]
        if node.running():
            self._signal(node, signal.SIGCONT)
            node.stop(signal.SIGKILL)
        self.paused.discard(i)
        self.down.add(i)

    def restart(self, i: int, timeout: float = 60.0) -> None:
        """Start node i again on its data and config, unless it is running."""
        node = self.by_id[i]
        if not node.running():
            node.start(timeout=timeout)
        self.down.discard(i)

    def pause(self, i: int) -> None:
        """SIGSTOP node i: it keeps its sockets but answers nothing until ``resume(i)``."""
        if i not in self.down and i not in self.paused:
            self._signal(self.by_id[i], signal.SIGSTOP)
            self.paused.add(i)

    def resume(self, i: int) -> None:
        if i in self.paused:
            self._signal(self.by_id[i], signal.SIGCONT)
            self.paused.discard(i)

    @staticmethod
    def _signal(node: NodeProcess, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(node.pid, sig)

    # -- configuration ---------------------------------------------------------------------------------

    def _fresh_port(self) -> int:
        with self._lock:
            while (port := free_port()) in self._used_ports:
                pass
            self._used_ports.add(port)
            return port

    def _configure(self, i: int) -> NodeProcess:
        """Write node i's config (fresh ports, none used by another node of this cluster)."""
        seed = self.by_id.get(1) if i > 1 else None
        node = make_node(
            self.workdir / f"n{i}",
            node_id=i,
            unix_socket=False,
            mysql_extra=self.mysql_extra,
            cluster_extra=join_keys(seed, self.secret, self.timers) + self.cluster_extra,
            logging_extra=self.logging_extra,
            extra_toml=self.node_toml,
        )
        with self._lock:
            clash = {node.mysql_port, node.grpc_port} & self._used_ports or node.mysql_port == node.grpc_port
            self._used_ports.update((node.mysql_port, node.grpc_port))
        if clash:
            return self._configure(i)
        node.env.update(self.env.get(i, {}))
        return node

    def _add_proxy(self) -> None:
        """One fault-proxy link per direction, and each node's ``dial_overrides`` through its own links."""
        self.proxy = ProxyPool()
        for i in self.by_id:
            for j, dst in self.by_id.items():
                if i != j:
                    self.proxy.add(i, j, self._fresh_port(), dst.grpc_port)
        for i, node in self.by_id.items():
            overrides = ", ".join(
                f'"127.0.0.1:{dst.grpc_port}=127.0.0.1:{self.proxy.link(i, j).listen_port}"'
                for j, dst in self.by_id.items()
                if j != i
            )
            text = node.config_path.read_text().replace(
                "[cluster]\n", f"[cluster]\ndial_overrides = [{overrides}]\n", 1
            )
            node.config_path.write_text(text)

    def _mount_tmpfs(self) -> None:
        assert self.tmpfs_size is not None
        for i, node in self.by_id.items():
            if not mount_tmpfs(node.data_dir, self.tmpfs_size, f"marmot-n{i}"):
                return
            self.mounts.append(node.data_dir)
        self.on_tmpfs = True

    def _boot(self, i: int) -> None:
        """Start node i; if a port it was given is taken meanwhile, move it to a fresh one and retry."""
        node = self.by_id[i]
        for attempt in range(3):
            try:
                node.start(timeout=self.start_timeout)
                _confirm_started(node)
                return
            except RuntimeError as err:
                port = _port_in_use(err)
                if port is None or attempt == 2:
                    raise
                if port == node.grpc_port:
                    self._move_cluster_port(i)
                else:  # it may have joined under its cluster port: keep that, move the MySQL port
                    new = self._fresh_port()
                    text = node.config_path.read_text().replace(
                        f"\nport = {node.mysql_port}\n", f"\nport = {new}\n"
                    )
                    node.config_path.write_text(text)
                    node.mysql_port = new

    def _move_cluster_port(self, i: int) -> None:
        """Node i could not bind its cluster port, so nobody has heard of it under that port yet: give it
        a fresh one, also in the seed line of the others (node 1 boots before any joiner). Behind a proxy
        the port is in every peer's running ``dial_overrides``, so that is an error there."""
        node = self.by_id[i]
        if self.proxied:
            raise RuntimeError(f"node {i}'s cluster port {node.grpc_port} was taken before it could bind it")
        old, new = node.grpc_port, self._fresh_port()
        text = node.config_path.read_text().replace(f"\ngrpc_port = {old}\n", f"\ngrpc_port = {new}\n")
        node.config_path.write_text(text)
        node.grpc_port = new
        for j, other in self.by_id.items():
            if j != i:
                t = other.config_path.read_text()
                other.config_path.write_text(t.replace(f'"127.0.0.1:{old}"', f'"127.0.0.1:{new}"'))
