"""What a node process claims on the machine, claimed honestly: its data directory and its PID file.

Why this exists: two ``marmot`` processes on one data directory run as the same node id and write the
same SQLite files behind each other's back, and a PID file written before the listeners are bound (or
over the file of a running node, or removed by a process that did not write it) makes scripts stop the
wrong process. So:

* **The data directory is locked** for the life of the process: ``flock`` on ``<data_dir>/marmot.lock``,
  taken before any SQLite file is opened. The holder writes its PID into the file, so a second process
  can say who holds it. The kernel drops the lock when the process dies (also on SIGKILL), so a stale
  lock file never blocks a restart; the file itself is left in place (removing a lock file races with
  the next locker).
* **The PID file** is checked before anything starts (a file naming a live process refuses the start),
  written only once the node serves, and removed on exit only while it still holds our PID.

Startup failures a user can fix (a path that is a file, an unwritable directory, a port in use) raise
:class:`StartupError`, whose message is the one line the command prints.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import ipaddress
import os
import socket
from pathlib import Path

from marmot.config import Config

LOCK_FILE = "marmot.lock"


class StartupError(Exception):
    """A startup failure with a one-line, user-facing message (no traceback)."""


def _reason(err: OSError) -> str:
    """``Permission denied`` rather than ``[Errno 13] Permission denied: '/x'`` (the caller names the path)."""
    if isinstance(err, socket.gaierror):  # a bind address that does not resolve: its errno is negative
        return str(err.strerror)
    return os.strerror(err.errno) if err.errno and err.errno > 0 else str(err)


def listen_error(what: str, host: str, port: int, err: OSError) -> StartupError:
    """The message for a listener that could not be bound (port in use, address not local, ...)."""
    return StartupError(f"cannot listen on {host}:{port} ({what}): {_reason(err)}")


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID runs (one we may not signal counts; a zombie, exited, does not)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii", errors="replace")
    except OSError:
        return True  # no /proc: trust kill()
    return not any(line.startswith("State:") and "Z" in line.split()[1:2] for line in status.splitlines())


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class DataDirLock:
    """Exclusive hold on a data directory for this process's life (see the module docstring)."""

    def __init__(self, data_dir: Path, fd: int) -> None:
        self.data_dir = data_dir
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, data_dir: str | os.PathLike[str]) -> DataDirLock:
        """Create the directory if needed, check it is a writable directory, and lock it.

        Raises :class:`StartupError` naming the path (not a directory, cannot be created, not writable)
        or the PID of the process that holds it.
        """
        path = Path(data_dir).absolute()
        if path.exists() and not path.is_dir():
            raise StartupError(f"data directory {path} is not a directory")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StartupError(f"cannot create data directory {path}: {_reason(err)}") from None
        lock_path = path / LOCK_FILE
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as err:
            raise StartupError(f"data directory {path} is not writable: {_reason(err)}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise StartupError(f"cannot lock data directory {path}: {_reason(err)}") from None
            holder = _read_pid(lock_path)
            who = f"PID {holder}" if holder is not None else "PID unknown"
            raise StartupError(f"data directory {path} is in use by another marmot process ({who})") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            os.fsync(fd)
        except OSError as err:
            os.close(fd)
            raise StartupError(f"data directory {path} is not writable: {_reason(err)}") from None
        return cls(path, fd)

    def release(self) -> None:
        """Drop the lock (closing the descriptor releases it); the file stays."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class PidFile:
    """A PID file that never lies: see the module docstring."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).absolute()
        self._written_pid: int | None = None

    def check(self) -> None:
        """Refuse to start when the file names another live process. A stale file is left for ``write``."""
        pid = _read_pid(self.path)
        if pid is not None and pid != os.getpid() and pid_alive(pid):
            raise StartupError(
                f"PID file {self.path} names a running process (PID {pid}): is marmot already "
                f"running? (remove the file if that process is not marmot)"
            )

    def write(self) -> None:
        """Write our PID (atomically, so a reader never sees half a file); re-checks the old file first."""
        self.check()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(f"{os.getpid()}\n", encoding="ascii")
            os.replace(tmp, self.path)
        except OSError as err:
            raise StartupError(f"cannot write PID file {self.path}: {_reason(err)}") from None
        self._written_pid = os.getpid()

    def remove(self) -> None:
        """Remove the file if we wrote it and it still names us (a successor may have replaced it)."""
        if self._written_pid is None or _read_pid(self.path) != self._written_pid:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._written_pid = None


def _loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost: assume it is reachable from elsewhere


def exposure_warnings(cfg: Config) -> list[str]:
    """Warnings for listeners beyond loopback that anyone who reaches them may use without a password."""
    out: list[str] = []
    my, cl = cfg.mysql, cfg.cluster
    if my.enabled and not _loopback(my.bind_address):
        for user in my.users:
            if not user.password:
                out.append(
                    f"MySQL listens beyond loopback ({my.bind_address}:{my.port}) and user '{user.name}' "
                    f'has an empty password: set [[mysql.users]] password, or bind_address = "127.0.0.1"'
                )
    # a replica's cluster port authenticates with [replica] secret (required), not cluster_secret
    port_secret = cfg.replica.secret if cfg.replica.enabled else cl.cluster_secret
    if not _loopback(cl.grpc_bind_address) and not port_secret:
        out.append(
            f"the cluster port listens beyond loopback ({cl.grpc_bind_address}:{cl.grpc_port}) with an "
            f"empty cluster secret: anyone who reaches it can join the cluster and use the admin API; set "
            f'[cluster] cluster_secret (or MARMOT_CLUSTER_SECRET), or grpc_bind_address = "127.0.0.1"'
        )
    return out


# Descriptors a client session can hold: its socket, and its database's SQLite file and WAL (plus any
# database it ATTACHes). The rest of the node (cluster port, peers, system database) fits in the margin.
FDS_PER_CONNECTION = 4
FD_MARGIN = 1024


def raise_fd_limit(max_connections: int) -> str | None:
    """Raise the soft RLIMIT_NOFILE towards what ``max_connections`` clients need, as MySQL does with
    ``open_files_limit``; a warning if the hard limit is lower than that.

    Why: distributions start processes with a soft limit of 1024 descriptors. Past it ``accept`` fails
    with EMFILE and SQLite cannot open a session's database, long before ``max_connections`` (default
    1000) is reached; the hard limit is usually far higher and a process may raise its soft limit to it.
    """
    import resource

    need = max_connections * FDS_PER_CONNECTION + FD_MARGIN
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return None
    target = need if hard == resource.RLIM_INFINITY else min(need, hard)
    if target > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    if soft < need:
        return (
            f"open-file limit is {soft} (hard limit {hard}); [mysql] max_connections = {max_connections} "
            f"needs about {need}: raise it (ulimit -n, LimitNOFILE=) or clients may be refused"
        )
    return None
