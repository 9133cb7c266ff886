"""A local Marmot cluster of N real node processes on 127.0.0.1, for benchmarks.

Node 1 is the seed; nodes 2..N join through ``seed_nodes = ["127.0.0.1:<cluster port of node 1>"]``.
All share one ``cluster_secret``, run with short gossip timers (as ``tests/cluster`` does) and with
``[replication] default_write_consistency`` set. Ports are free ports picked by ``tests/nodeproc.py``;
the data directories and node logs live in one temporary directory that ``stop()`` removes.
``stop()`` ends exactly the processes started here, by PID (SIGTERM, SIGKILL after a grace period).

    with LocalCluster(3) as cl:
        cl.wait_all_alive()
        print(cl.mysql_endpoints())
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.nodeproc import NodeProcess, make_node  # noqa: E402

SECRET = "marmot-bench-secret"
TIMERS = "gossip_interval_ms = 100\nsuspect_timeout_ms = 1500\ndead_timeout_ms = 3000\n"


class LocalCluster:
    """Start ``size`` nodes (``start()``), wait for full membership, stop them all (``stop()``)."""

    def __init__(self, size: int, write_consistency: str = "QUORUM", secret: str = SECRET,
                 keep_dir: bool = False) -> None:
        if not 1 <= size <= 63:
            raise ValueError("cluster size must be 1..63")
        self.size = size
        self.write_consistency = write_consistency
        self.secret = secret
        self.keep_dir = keep_dir
        self.tmp = Path(tempfile.mkdtemp(prefix="marmot-bench-"))
        self.nodes: list[NodeProcess] = []

    # -- lifecycle ---------------------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> LocalCluster:
        extra = ("verbose = false\n"  # [logging]: no debug output (the config has no finer level)
                 f'[replication]\ndefault_write_consistency = "{self.write_consistency}"\n')
        for node_id in range(1, self.size + 1):
            seeds = "" if node_id == 1 else f'seed_nodes = ["127.0.0.1:{self.nodes[0].grpc_port}"]\n'
            node = make_node(self.tmp / f"n{node_id}", extra_toml=extra, unix_socket=False, node_id=node_id,
                             cluster_extra=f'{TIMERS}cluster_secret = "{self.secret}"\n{seeds}')
            self.nodes.append(node)  # before start(): a node that fails half-way is still stopped
            node.start(timeout=timeout)
        return self

    def stop(self) -> None:
        """Stop every node by its PID (reverse order), then remove the temporary directory."""
        for node in reversed(self.nodes):
            try:
                node.stop()
            except Exception as err:  # keep stopping the others
                print(f"stopping node pid {node.proc.pid if node.proc else '?'} failed: {err!r}",
                      file=sys.stderr)
        if self.keep_dir:
            print(f"cluster data and logs kept in {self.tmp}", file=sys.stderr)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        try:
            return self.start()
        except BaseException:  # __exit__ does not run when __enter__ raises
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- state -------------------------------------------------------------------------------------------

    def mysql_endpoints(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", n.mysql_port) for n in self.nodes]

    def pids(self) -> list[int]:
        return [n.pid for n in self.nodes if n.proc is not None]

    def dead_nodes(self) -> list[int]:
        """Node ids (1-based) whose process has exited."""
        return [i + 1 for i, n in enumerate(self.nodes) if n.proc is None or n.proc.poll() is not None]

    def log_tail(self, node_index: int, chars: int = 2000) -> str:
        return self.nodes[node_index].log()[-chars:]

    def member_states(self, node: NodeProcess) -> dict[int, str]:
        """``GET /admin/cluster/members`` on the node's cluster port: {node_id: state}."""
        req = urllib.request.Request(f"http://127.0.0.1:{node.grpc_port}/admin/cluster/members",
                                     headers={"Authorization": f"Bearer {self.secret}"})
        try:
            with urllib.request.urlopen(req, timeout=2) as resp:
                body = json.loads(resp.read())
        except (OSError, urllib.error.URLError, ValueError):
            return {}
        return {int(m["node_id"]): str(m["state"]) for m in body.get("members", [])}

    def wait_all_alive(self, timeout: float = 30.0) -> float:
        """Wait until every node sees every node ALIVE; return the seconds it took."""
        want = {i: "ALIVE" for i in range(1, self.size + 1)}
        t0 = time.monotonic()
        deadline = t0 + timeout
        last: list[dict[int, str]] = []
        while time.monotonic() < deadline:
            dead = self.dead_nodes()
            if dead:
                raise RuntimeError(f"node(s) {dead} exited: {self.log_tail(dead[0] - 1)}")
            last = [self.member_states(n) for n in self.nodes]
            if all(s == want for s in last):
                return time.monotonic() - t0
            time.sleep(0.1)
        raise RuntimeError(f"membership not complete after {timeout:.0f}s: " +
                           "; ".join(f"node {i + 1} sees {s}" for i, s in enumerate(last)))


if __name__ == "__main__":  # manual check: start, wait, print, stop
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    with LocalCluster(n) as cl:
        print(f"all {n} members ALIVE after {cl.wait_all_alive():.2f}s; MySQL endpoints {cl.mysql_endpoints()}")
