"""The cluster under test: 3 node processes on 127.0.0.1 and every fault the nemeses can inflict on them.

Each node dials each peer through its own directed fault-proxy link (``[cluster] dial_overrides``), so
a partition, a one-way partition, delay with jitter or a burst of connection resets is a proxy mode and
never leaves 127.0.0.1 (no network namespaces or other addresses are needed). Process faults are signals to the
node's own PID (SIGKILL then a restart on the same data, SIGSTOP / SIGCONT). Clock skew is the node's
test-only HLC offset file (``MARMOT_CLOCK_OFFSET_FILE``), changed while it runs, both directions.

Disk faults need a little more of the machine and are used only where it offers them:
* **full disk**: each node's data directory is its own tmpfs (needs root's ``mount``); "full" is a ballast
  file that takes all but a few KiB of it, the heal deletes it;
* **fsync errors**: the node runs under libfiu's preload libraries (Debian ``fiu-utils``) and
  ``fiu-ctrl`` turns ``posix/io/sync/*`` failures on and off in the running process.
``ChaosCluster.capabilities`` says which of the two this machine has; the schedule uses only those.

Moments inside two-phase commit are hit with the node's failpoints (``src/marmot/failpoints.py``),
armed while it runs through a file it follows (``MARMOT_FAILPOINTS_FILE``).

The nodes, the proxy and the tmpfs mounts are ``marmot.testing.cluster.LocalCluster``'s (the launcher
the tests and benchmarks use too); this class adds the faults. Every process started here is stopped by
its PID in ``close()``, every tmpfs unmounted.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

from marmot.storage.rowkey import decode_row_key
from marmot.testing import SECRET, LocalCluster, NodeProcess, ProxyPool, admin_json, member_states
from marmot.testing.replicas import make_replica
from marmot.testing.tmpfs import tmpfs_available
from tests.support import connect

FIU_LIBS = ("/usr/lib/fiu/fiu_run_preload.so", "/usr/lib/fiu/fiu_posix_preload.so")
TMPFS_SIZE = "256m"
DB = "chaos"
REPLICA = "replica"  # the replica's key where nodes are numbered (final state, sql, row_versions)

# Fast timers (the launcher's gossip timers, and these): faults last seconds, so detection, intent
# expiry and anti-entropy must too.
REPLICATION_KEYS = "anti_entropy_interval_seconds = 1\nwrite_timeout_ms = 2000\n"
NODE_TOML = "[transaction]\nheartbeat_timeout_seconds = 3\n"


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)


def fiu_available() -> bool:
    return shutil.which("fiu-ctrl") is not None and all(Path(p).exists() for p in FIU_LIBS)


class ChaosCluster:
    """Three nodes behind fault proxies. Fault methods take node numbers 1..3."""

    def __init__(
        self,
        workdir: Path,
        *,
        use_tmpfs: bool | None = None,
        use_fiu: bool | None = None,
        replica: bool = False,
    ) -> None:
        """``replica``: also run a read-only replica (``src/marmot/replica/``) following node 1, outside the
        fault proxies (it reaches the nodes directly; node faults hit its source and make it fail over);
        the ``replica-kill`` nemesis is then available, and the runner requires its final state to equal
        the nodes'."""
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.capabilities = {
            "tmpfs": tmpfs_available(workdir / "probe") if use_tmpfs is None else use_tmpfs,
            "fiu": fiu_available() if use_fiu is None else use_fiu,
            "replica": replica,
        }
        self.replica: NodeProcess | None = None
        self.replica_down = False
        self.cluster = LocalCluster(
            3,
            workdir,
            proxied=True,
            replication_extra=REPLICATION_KEYS,
            extra_toml=NODE_TOML,
            env={i: self._node_env(i) for i in (1, 2, 3)},
            tmpfs_size=TMPFS_SIZE if self.capabilities["tmpfs"] else None,
            stop_signal=signal.SIGKILL,
            alive_timeout=60,
        )
        self.disk_full: set[int] = set()
        self.fsync_failing: set[int] = set()
        self.clock_ms: dict[int, int] = {1: 0, 2: 0, 3: 0}
        self.armed: set[int] = set()  # nodes with failpoints armed

    # -- life cycle ------------------------------------------------------------------------------

    def _node_env(self, i: int) -> dict[str, str]:
        """Node i's clock-offset and failpoint files, and libfiu's preload libraries where available."""
        env = {
            "MARMOT_CLOCK_OFFSET_FILE": str(self._clock_file(i)),
            "MARMOT_FAILPOINTS_FILE": str(self._failpoints_file(i)),
        }
        if self.capabilities["fiu"]:
            env.update(LD_PRELOAD=" ".join(FIU_LIBS), FIU_CTRL_FIFO=str(self._fiu_prefix(i)), FIU_ENABLE="")
        return env

    def start(self) -> None:
        for i in (1, 2, 3):
            self._clock_file(i).write_text("0")
            self._failpoints_file(i).write_text("")
        self.cluster.start()
        if self.capabilities["tmpfs"]:
            self.capabilities["tmpfs"] = self.cluster.on_tmpfs
        self.sql(1, f"CREATE DATABASE IF NOT EXISTS {DB}", db=None)
        if self.capabilities["replica"]:
            # its directory matches the runner's log glob (cluster/n*/node-*.log)
            self.replica = make_replica(self.workdir / "nreplica", [self.nodes[1]], node_id=50)
            self.replica.start(timeout=60)

    def close(self) -> None:
        """Stop the replica and every node by its PID (resumed first: a stopped process ignores SIGTERM),
        the proxies, and unmount every tmpfs. Safe to call twice."""
        if self.replica is not None:
            self.replica.stop(signal.SIGKILL)
        self.cluster.stop()
        for i, n in self.nodes.items():
            self._remove_fiu_fifos(i, n)

    @property
    def nodes(self) -> dict[int, NodeProcess]:
        return self.cluster.by_id

    @property
    def pool(self) -> ProxyPool:
        assert self.cluster.proxy is not None, "the cluster is not started"
        return self.cluster.proxy

    @property
    def down(self) -> set[int]:
        return self.cluster.down

    @property
    def paused(self) -> set[int]:
        return self.cluster.paused

    def node_log(self, i: int) -> str:
        return self.nodes[i].log()

    # -- network faults (proxy modes on directed links) --------------------------------------------

    def partition(self, groups: list[list[int]]) -> None:
        """Links between different groups reject (both directions); links inside a group pass."""
        side = {n: g for g, members in enumerate(groups) for n in members}
        for src, dst in self.pool.links:
            self.pool.set(src, dst, "reject" if side.get(src) != side.get(dst) else "pass")

    def one_way(self, src: int, dst: int) -> None:
        """src's messages to dst vanish (held, not refused); dst → src still works."""
        self.pool.set(src, dst, "blackhole")

    def delay(self, delay_ms: float, jitter_ms: float) -> None:
        for src, dst in self.pool.links:
            self.pool.set(src, dst, "delay", delay_ms=delay_ms, jitter_ms=jitter_ms)

    def reset_connections(self) -> None:
        for src, dst in self.pool.links:
            self.pool.reset(src, dst)

    def heal_network(self) -> None:
        self.pool.heal()

    # -- process faults (by PID: the launcher's) -----------------------------------------------------

    def kill(self, i: int) -> None:
        self.cluster.kill(i)
        self._remove_fiu_fifos(i, self.nodes[i])
        self.fsync_failing.discard(i)

    def restart(self, i: int) -> None:
        """Start a killed node again on its data. A full disk may keep it from starting: the caller
        heals the disk first."""
        if i in self.down:
            self.cluster.restart(i, timeout=60)

    def pause(self, i: int) -> None:
        self.cluster.pause(i)

    def kill_replica(self) -> None:
        assert self.replica is not None
        self.replica.stop(signal.SIGKILL)
        self.replica_down = True

    def restart_replica(self) -> None:
        if self.replica is not None and self.replica_down:
            self.replica.start(timeout=60)
            self.replica_down = False

    def resume(self, i: int) -> None:
        self.cluster.resume(i)

    # -- clock skew ---------------------------------------------------------------------------------

    def set_clock(self, i: int, offset_ms: int) -> None:
        """The node's HLC reads the wall clock plus ``offset_ms`` from now on (either sign)."""
        path = self._clock_file(i)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(str(int(offset_ms)))
        tmp.replace(path)  # atomic: the node never reads half a number
        self.clock_ms[i] = int(offset_ms)

    def _clock_file(self, i: int) -> Path:
        return self.workdir / f"clock-n{i}.ms"

    # -- failpoints (src/marmot/failpoints.py), armed at run time ------------------------------------

    def arm(self, i: int, spec: str) -> None:
        """Replace node i's armed failpoints with ``spec`` ("" disarms): it re-reads the file every 50 ms."""
        path = self._failpoints_file(i)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(spec)
        tmp.replace(path)
        (self.armed.add if spec else self.armed.discard)(i)

    def _failpoints_file(self, i: int) -> Path:
        return self.workdir / f"failpoints-n{i}"

    # -- disk faults ---------------------------------------------------------------------------------

    def fill_disk(self, i: int) -> bool:
        """Take all but a few KiB of node i's tmpfs; False when this machine cannot. The node keeps
        writing meanwhile, so the ballast grows in chunks until the file system says it is full."""
        if not self.capabilities["tmpfs"]:
            return False
        with open(self.nodes[i].data_dir / "ballast", "ab") as f:
            size = os.fstat(f.fileno()).st_size
            for chunk in (1 << 20, 64 << 10, 4 << 10):
                while True:
                    try:
                        os.posix_fallocate(f.fileno(), size, chunk)
                    except OSError:
                        break
                    size += chunk
        self.disk_full.add(i)
        return True

    def free_disk(self, i: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.nodes[i].data_dir / "ballast").unlink()
        self.disk_full.discard(i)

    def fail_fsync(self, i: int, on: bool = True) -> bool:
        """Make every fsync/fdatasync of node i fail with EIO (libfiu), or stop doing so."""
        if not self.capabilities["fiu"] or i in self.down:
            return False
        cmd = "enable name=posix/io/sync/*" if on else "disable name=posix/io/sync/*"
        r = _run("fiu-ctrl", "-f", str(self._fiu_prefix(i)), "-c", cmd, str(self.nodes[i].pid))
        if r.returncode != 0:
            return False
        (self.fsync_failing.add if on else self.fsync_failing.discard)(i)
        return True

    def _fiu_prefix(self, i: int) -> Path:
        return self.workdir / f"fiu-n{i}"

    def _remove_fiu_fifos(self, i: int, n: NodeProcess) -> None:
        if n.proc is None:
            return
        for suffix in (".in", ".out"):
            with contextlib.suppress(OSError):
                Path(f"{self._fiu_prefix(i)}-{n.proc.pid}{suffix}").unlink()

    # -- healing --------------------------------------------------------------------------------------

    def heal_all(self) -> None:
        """Undo every fault: disks, fsync, clocks, paused and dead processes, the network."""
        for i in (1, 2, 3):
            self.free_disk(i)
            if i in self.fsync_failing:
                self.fail_fsync(i, False)
            if self.clock_ms[i]:
                self.set_clock(i, 0)
            if i in self.armed:
                self.arm(i, "")
            self.resume(i)
        for i in sorted(self.down):
            self.restart(i)
        self.restart_replica()
        self.heal_network()

    # -- observation -----------------------------------------------------------------------------------

    def node(self, i: int | str) -> NodeProcess:
        """Node ``i`` (1..3), or the replica for ``REPLICA``."""
        if i == REPLICA:
            assert self.replica is not None, "no replica in this run"
            return self.replica
        return self.nodes[int(i)]

    def admin(self, i: int | str, path: str, timeout: float = 5.0) -> Any:
        return admin_json(self.node(i), path, SECRET, timeout)

    def states(self, i: int) -> dict[int, str]:
        return member_states(self.nodes[i])

    def wait_all_alive(self, timeout: float) -> bool:
        """Whether every node sees every node ALIVE within ``timeout`` seconds."""
        try:
            self.cluster.wait_all_alive(timeout)
        except RuntimeError:
            return False
        return True

    def sql(self, i: int | str, statement: str, args: Any = None, db: str | None = DB) -> list[tuple]:
        c = connect(self.node(i), db, local_infile=False, read_timeout=30)
        try:
            with c.cursor() as cur:
                cur.execute(statement, args)
                return list(cur.fetchall())
        finally:
            c.close()

    def row_versions(self, i: int | str, table: str) -> dict[tuple, list[int]]:
        """``{primary key values: [wall, logical, node]}`` of every live row of ``table`` on node i (or
        the replica)."""
        out: dict[tuple, list[int]] = {}
        after = ""
        while True:
            q = f"/admin/databases/{DB}/digest/{table}/keys?limit=1000" + (f"&after={after}" if after else "")
            doc = self.admin(i, q, timeout=15)
            for hexkey, version in doc["keys"]:
                _, values = decode_row_key(bytes.fromhex(hexkey))
                out[tuple(values)] = version
            if not doc.get("next"):
                return out
            after = doc["next"]
