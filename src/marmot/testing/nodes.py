"""One real Marmot node process on 127.0.0.1: write its config on free ports, start it, stop it by PID.

Why a process and not an in-process server: the tests, the chaos harness and the benchmarks must see
what a user sees (the real CLI, its signal handling, its logs), and a process is the only thing that can
be SIGKILLed or SIGSTOPped like a crashed or frozen server. Every process started here is stopped by its
own PID, never by name.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listened on a moment ago (bind to 0, read it, release it).
    Another process can take it before the node binds: ``marmot.testing.cluster`` retries on a clash."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie, dead but not yet reaped, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())


@dataclass
class NodeProcess:
    """A node process; ``stop()`` sends SIGTERM to its PID and waits, SIGKILL after a grace period.

    ``start()`` can be called again after a stop or a kill: the node restarts on the same data directory
    and config (its log file is appended to)."""

    data_dir: Path
    mysql_port: int
    grpc_port: int
    config_path: Path
    unix_socket: str = ""
    proc: subprocess.Popen | None = None
    log_path: Path = field(default=Path("/dev/null"))
    env: dict[str, str] = field(default_factory=dict)  # extra environment (e.g. MARMOT_FAILPOINTS)
    cwd: Path | None = None  # working directory of the process; None: the caller's

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 20.0) -> NodeProcess:
        """Start the process and return once its MySQL port accepts connections; raise ``RuntimeError``
        (with the log tail) if it exits first or does not listen within ``timeout`` seconds. A
        ``MARMOT_FAILPOINTS`` of the caller's environment is never inherited: only ``env`` arms them."""
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        env.pop("MARMOT_FAILPOINTS", None)
        env.update(self.env)
        self.log_path = self.data_dir.parent / f"node-{self.mysql_port}.log"
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "marmot.cli", "--config", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=None if self.cwd is None else str(self.cwd),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"node exited with {self.proc.returncode}: {self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.mysql_port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"node did not start listening: {self.log()}")

    def running(self) -> bool:
        """Started and not exited (a SIGSTOPped process is still running)."""
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        """The last 4000 characters of the node's log ("" when there is none)."""
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        """Send ``sig`` to the PID and wait for the exit (SIGKILL after ``timeout``); the exit status, or
        None if it was never started."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        os.kill(self.proc.pid, sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(5)


def make_node(
    tmp: Path,
    extra_toml: str = "",
    unix_socket: bool = True,
    mysql_extra: str = "",
    node_id: int = 1,
    cluster_extra: str = "",
    logging_extra: str = "",
) -> NodeProcess:
    """Write a config for a node with free ports under ``tmp`` (not started).

    ``cluster_extra``, ``mysql_extra`` and ``logging_extra`` are more keys of those sections;
    ``extra_toml`` is appended after them (whole sections: ``[replication]``, ``[transaction]`` ...)."""
    tmp.mkdir(parents=True, exist_ok=True)
    mysql_port, grpc_port = free_port(), free_port()
    data_dir = tmp / "data"
    sock = str(tmp / "mysql.sock") if unix_socket else ""
    cfg = tmp / "node.toml"
    cfg.write_text(
        f'node_id = {node_id}\ndata_dir = "{data_dir}"\n'
        f'[cluster]\ngrpc_bind_address = "127.0.0.1"\ngrpc_port = {grpc_port}\n{cluster_extra}\n'
        f'[mysql]\nbind_address = "127.0.0.1"\nport = {mysql_port}\nunix_socket = "{sock}"\n{mysql_extra}\n'
        f'[logging]\nformat = "console"\n{logging_extra}' + extra_toml
    )
    return NodeProcess(data_dir, mysql_port, grpc_port, cfg, sock)
