"""The cluster under test: 3 node processes on 127.0.0.1 and every fault the nemeses can inflict on them.

Each node dials each peer through its own directed fault-proxy link (``[cluster] dial_overrides``), so
a partition, a one-way partition, delay with jitter or a burst of connection resets is a proxy mode and
never leaves 127.0.0.1 (../shared/reference/fault-injection.md §2). Process faults are signals to the
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

Every process started here is stopped by its PID in ``close()``, every tmpfs unmounted.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pymysql

from marmot.storage.rowkey import decode_row_key
from tests.cluster.replicated import SECRET, TIMERS
from tests.faultproxy import ProxyPool
from tests.nodeproc import NodeProcess, free_port, make_node

FIU_LIBS = ("/usr/lib/fiu/fiu_run_preload.so", "/usr/lib/fiu/fiu_posix_preload.so")
TMPFS_SIZE = "256m"
DB = "chaos"

# Fast timers: faults last seconds, so detection, intent expiry and anti-entropy must too.
NODE_TOML = """\
[replication]
default_write_consistency = "QUORUM"
anti_entropy_interval_seconds = 1
write_timeout_ms = 2000
[transaction]
heartbeat_timeout_seconds = 3
"""


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)


def tmpfs_available(probe_dir: Path) -> bool:
    """True when this process may mount a tmpfs (root on a machine that allows it)."""
    probe_dir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    if _run("mount", "-t", "tmpfs", "-o", "size=1m", "marmot-chaos-probe", str(probe_dir)).returncode != 0:
        return False
    _run("umount", str(probe_dir))
    return True


def fiu_available() -> bool:
    return shutil.which("fiu-ctrl") is not None and all(Path(p).exists() for p in FIU_LIBS)


class ChaosCluster:
    """Three nodes behind fault proxies. Fault methods take node numbers 1..3."""

    def __init__(self, workdir: Path, *, use_tmpfs: bool | None = None, use_fiu: bool | None = None) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.capabilities = {
            "tmpfs": tmpfs_available(workdir / "probe") if use_tmpfs is None else use_tmpfs,
            "fiu": fiu_available() if use_fiu is None else use_fiu,
        }
        self.nodes: dict[int, NodeProcess] = {}
        self.mounts: list[Path] = []
        self.pool = ProxyPool()
        self.paused: set[int] = set()
        self.down: set[int] = set()
        self.disk_full: set[int] = set()
        self.fsync_failing: set[int] = set()
        self.clock_ms: dict[int, int] = {1: 0, 2: 0, 3: 0}
        self.armed: set[int] = set()  # nodes with failpoints armed

    # -- life cycle ------------------------------------------------------------------------------

    def start(self) -> None:
        nodes = {i: make_node(self.workdir / f"n{i}", node_id=i, unix_socket=False) for i in (1, 2, 3)}
        self.nodes = nodes
        for i in (1, 2, 3):
            for j, dst in nodes.items():
                if i != j:
                    self.pool.add(i, j, free_port(), dst.grpc_port)
        for i, n in nodes.items():
            overrides = ", ".join(f'"127.0.0.1:{dst.grpc_port}=127.0.0.1:{self.pool.link(i, j).listen_port}"'
                                  for j, dst in nodes.items() if j != i)
            seeds = f'seed_nodes = ["127.0.0.1:{nodes[1].grpc_port}"]\n' if i > 1 else ""
            text = n.config_path.read_text().replace(
                "[cluster]\n",
                f'[cluster]\n{TIMERS}cluster_secret = "{SECRET}"\n{seeds}dial_overrides = [{overrides}]\n', 1)
            n.config_path.write_text(text + NODE_TOML)
            n.data_dir.mkdir(parents=True, exist_ok=True)
            if self.capabilities["tmpfs"]:
                r = _run("mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", f"marmot-chaos-n{i}", str(n.data_dir))
                if r.returncode == 0:
                    self.mounts.append(n.data_dir)
                else:
                    self.capabilities["tmpfs"] = False
            self._clock_file(i).write_text("0")
            n.env["MARMOT_CLOCK_OFFSET_FILE"] = str(self._clock_file(i))
            self._failpoints_file(i).write_text("")
            n.env["MARMOT_FAILPOINTS_FILE"] = str(self._failpoints_file(i))
            if self.capabilities["fiu"]:
                n.env["LD_PRELOAD"] = " ".join(FIU_LIBS)
                n.env["FIU_CTRL_FIFO"] = str(self._fiu_prefix(i))
                n.env["FIU_ENABLE"] = ""
        for n in nodes.values():
            n.start()
        self.wait_all_alive(60)
        self.sql(1, f"CREATE DATABASE IF NOT EXISTS {DB}", db=None)

    def close(self) -> None:
        """Stop every node by its PID (resumed first: a stopped process ignores SIGTERM), the proxies,
        and unmount every tmpfs. Safe to call twice."""
        for i, n in self.nodes.items():
            if n.proc is not None and n.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(n.pid, signal.SIGCONT)
                n.stop(signal.SIGKILL)
            self._remove_fiu_fifos(i, n)
        self.pool.close()
        for m in self.mounts:
            _run("umount", "-l", str(m))
        self.mounts = []

    def node_log(self, i: int) -> str:
        return self.nodes[i].log()

    # -- network faults (proxy modes on directed links) --------------------------------------------

    def partition(self, groups: list[list[int]]) -> None:
        """Links between different groups reject (both directions); links inside a group pass."""
        side = {n: g for g, members in enumerate(groups) for n in members}
        for (src, dst) in self.pool.links:
            self.pool.set(src, dst, "reject" if side.get(src) != side.get(dst) else "pass")

    def one_way(self, src: int, dst: int) -> None:
        """src's messages to dst vanish (held, not refused); dst → src still works."""
        self.pool.set(src, dst, "blackhole")

    def delay(self, delay_ms: float, jitter_ms: float) -> None:
        for (src, dst) in self.pool.links:
            self.pool.set(src, dst, "delay", delay_ms=delay_ms, jitter_ms=jitter_ms)

    def reset_connections(self) -> None:
        for (src, dst) in self.pool.links:
            self.pool.reset(src, dst)

    def heal_network(self) -> None:
        self.pool.heal()

    # -- process faults -----------------------------------------------------------------------------

    def kill(self, i: int) -> None:
        n = self.nodes[i]
        if n.proc is not None and n.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(n.pid, signal.SIGCONT)
            n.stop(signal.SIGKILL)
        self._remove_fiu_fifos(i, n)
        self.paused.discard(i)
        self.fsync_failing.discard(i)
        self.down.add(i)

    def restart(self, i: int) -> None:
        """Start a killed node again on its data. A full disk may keep it from starting: the caller
        heals the disk first."""
        if i not in self.down:
            return
        self.nodes[i].start(timeout=60)
        self.down.discard(i)

    def pause(self, i: int) -> None:
        if i not in self.down and i not in self.paused:
            os.kill(self.nodes[i].pid, signal.SIGSTOP)
            self.paused.add(i)

    def resume(self, i: int) -> None:
        if i in self.paused:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.nodes[i].pid, signal.SIGCONT)
            self.paused.discard(i)

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
        self.heal_network()

    # -- observation -----------------------------------------------------------------------------------

    def admin(self, i: int, path: str, timeout: float = 5.0) -> Any:
        req = urllib.request.Request(f"http://127.0.0.1:{self.nodes[i].grpc_port}{path}",
                                     headers={"X-Marmot-Secret": SECRET})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())

    def states(self, i: int) -> dict[int, str]:
        try:
            body = self.admin(i, "/admin/cluster/members")
        except (urllib.error.URLError, OSError, ValueError):
            return {}
        return {m["node_id"]: m["state"] for m in body.get("members", [])}

    def wait_all_alive(self, timeout: float) -> bool:
        want = {1: "ALIVE", 2: "ALIVE", 3: "ALIVE"}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.states(i) == want for i in (1, 2, 3)):
                return True
            time.sleep(0.2)
        return False

    def sql(self, i: int, statement: str, args: Any = None, db: str | None = DB) -> list[tuple]:
        c = pymysql.connect(host="127.0.0.1", port=self.nodes[i].mysql_port, user="root", password="",
                            database=db, autocommit=True, connect_timeout=5, read_timeout=30)
        try:
            with c.cursor() as cur:
                cur.execute(statement, args)
                return list(cur.fetchall())
        finally:
            c.close()

    def row_versions(self, i: int, table: str) -> dict[tuple, list[int]]:
        """``{primary key values: [wall, logical, node]}`` of every live row of ``table`` on node i."""
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
