"""A throwaway MariaDB server for side-by-side benchmarks (Debian ``mariadb-server``).

``MariaDBServer(tmp).start()`` initialises a fresh data directory with ``mariadb-install-db`` (or
``mysql_install_db``), starts ``mariadbd`` on 127.0.0.1 with a free port and ``--skip-grant-tables`` (user
root, empty password), waits until it answers ``SELECT 1`` and creates the ``marmot`` database. ``stop()``
sends SIGTERM to the PID it started (SIGKILL after a grace period). Nothing here reads ``/etc/mysql``:
every option is on the command line (``--no-defaults``).

Durability: by default InnoDB runs with ``innodb_flush_log_at_trx_commit=2`` (write the redo log at each
commit, fsync about once a second). That is the same guarantee as Marmot's SQLite ``journal_mode=WAL`` +
``synchronous=NORMAL``: a committed transaction survives a process crash, not a power loss. Pass
``durable=True`` for MariaDB's default (fsync at every commit).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

INSTALL_HINT = "apt-get install -y mariadb-server sysbench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_binaries() -> tuple[str, str] | None:
    """(install-db, server) executables, or None when MariaDB is not installed."""
    install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    server = None
    for name in ("mariadbd", "mysqld"):
        server = shutil.which(name) or (
            f"/usr/sbin/{name}" if os.access(f"/usr/sbin/{name}", os.X_OK) else None
        )
        if server:
            break
    if install is None or server is None:
        return None
    return install, server


def server_version(server: str) -> str:
    try:
        out = subprocess.run([server, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return out.strip()


class MariaDBServer:
    """One mariadbd process on 127.0.0.1 with its own data directory under ``tmp``."""

    def __init__(self, tmp: Path, durable: bool = False) -> None:
        bins = find_binaries()
        if bins is None:
            raise FileNotFoundError(f"MariaDB server not installed; run: {INSTALL_HINT}")
        self.install_db, self.server = bins
        self.tmp = tmp
        self.datadir = tmp / "data"
        self.socket = tmp / "s.sock"
        self.port = free_port()
        self.durable = durable
        self.proc: subprocess.Popen | None = None
        self.log_path = tmp / "mariadbd.log"

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def _user_args(self) -> list[str]:
        return ["--user=root"] if os.geteuid() == 0 else []

    def start(self, timeout: float = 60.0) -> MariaDBServer:
        self.tmp.mkdir(parents=True, exist_ok=True)
        install_log = self.tmp / "install-db.log"
        with open(install_log, "wb") as out:
            rc = subprocess.run(
                [
                    self.install_db,
                    "--no-defaults",
                    f"--datadir={self.datadir}",
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                    *self._user_args(),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=120,
            ).returncode
        if rc != 0:
            raise RuntimeError(
                f"{self.install_db} failed ({rc}): {install_log.read_text(errors='replace')[-2000:]}"
            )
        args = [
            self.server,
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--socket={self.socket}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            "--skip-grant-tables",
            "--skip-name-resolve",
            f"--pid-file={self.tmp / 'mariadbd.pid'}",
            f"--log-error={self.log_path}",
            f"--innodb-flush-log-at-trx-commit={1 if self.durable else 2}",
            "--max-connections=200",
            *self._user_args(),
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        last_err: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mariadbd exited with {self.proc.returncode}: {self.log()}")
            try:
                self._sql("CREATE DATABASE IF NOT EXISTS marmot")
                return self
            except Exception as err:  # not up yet
                last_err = err
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"mariadbd did not come up in {timeout}s ({last_err}): {self.log()}")

    def _sql(self, sql: str) -> None:
        import pymysql

        conn = pymysql.connect(host="127.0.0.1", port=self.port, user="root", password="", connect_timeout=1)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
            conn.commit()
        finally:
            conn.close()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the PID we started, SIGKILL if it does not exit within ``timeout``."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
