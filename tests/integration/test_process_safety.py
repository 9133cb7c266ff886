"""Honest processes (issue #12, points 2, 3, 8, 9), with real ``marmot`` processes on 127.0.0.1:

* one process per data directory: a second one exits at once naming the directory and the holder's PID,
  and the first goes on serving;
* the PID file is written once the node serves, never over the file of a live process, and removed only
  by the process that wrote it; ``-daemon`` returns once the node serves, or exits 1 with its error;
* startup errors a user can fix are one line naming the path or port, exit 1, no traceback;
* the built-in bind address is 127.0.0.1 (read from /proc/net/tcp: no traffic beyond loopback),
  ``--bind-address`` sets both listeners, and a node listening beyond loopback without passwords warns;
* a membership change is logged once, with its old and new state.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from marmot.testing import NodeProcess, free_port, make_node, pid_alive
from tests.support import REPO, wait_for

CLI = [sys.executable, "-m", "marmot.cli"]


def run_cli(*args: str, timeout: float = 60, **kw: object) -> subprocess.CompletedProcess[str]:
    """Run ``marmot`` to completion (a start that must fail, or a ``-daemon`` launcher)."""
    return subprocess.run([*CLI, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout, **kw)  # type: ignore[call-overload]


def assert_one_line_error(out: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit 1, one line on stderr starting with ``marmot:`` that contains every needle, no traceback."""
    assert out.returncode == 1, (out.returncode, out.stdout[-2000:], out.stderr[-2000:])
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("marmot: "), out.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert "Traceback" not in out.stdout + out.stderr
    return lines[0]


def serves(port: int) -> bool:
    try:
        c = pymysql.connect(host="127.0.0.1", port=port, user="root", password="", connect_timeout=5)
    except pymysql.err.OperationalError:
        return False
    try:
        with c.cursor() as cur:
            cur.execute("SELECT 1")
            return cur.fetchone() == (1,)
    finally:
        c.close()


def wait_gone(pid: int, timeout: float = 30) -> None:
    wait_for(lambda: not pid_alive(pid), timeout, f"PID {pid} gone", interval=0.05)


def stop_pid(pid: int) -> None:
    """SIGTERM a process we started (a daemon is not our child), SIGKILL if it does not exit."""
    if not pid_alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    try:
        wait_gone(pid, 30)
    except AssertionError:
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid, 10)


def stop_daemon(pid_file: Path, data_dir: Path) -> None:
    """Stop the daemon a test launched, found by its PID file or its data directory's lock file."""
    for path in (pid_file, data_dir / "marmot.lock"):
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) != os.getpid():
            stop_pid(int(text))


def dead_pid() -> int:
    """The PID of a process that has exited (and been reaped)."""
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def listener_hosts(port: int) -> set[str]:
    """Local addresses of the listening IPv4 sockets on ``port``, from /proc/net/tcp (no traffic needed)."""
    hosts = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state = fields[1], fields[3]
        addr_hex, port_hex = local.split(":")
        if state == "0A" and int(port_hex, 16) == port:  # 0A = LISTEN
            hosts.add(socket.inet_ntoa(bytes.fromhex(addr_hex)[::-1]))
    return hosts


@pytest.fixture
def node(tmp_path: Path) -> Iterator[NodeProcess]:
    n = make_node(tmp_path / "first", unix_socket=False).start()
    yield n
    n.stop()


# ---- one process per data directory --------------------------------------------------------------


def test_second_process_on_the_same_data_dir_is_refused(node: NodeProcess, tmp_path: Path):
    out = run_cli(
        "--config", str(node.config_path), "--mysql-port", str(free_port()), "--grpc-port", str(free_port())
    )
    assert_one_line_error(
        out, "data directory", str(node.data_dir), "in use by another marmot process", f"PID {node.pid}"
    )
    assert node.proc is not None and node.proc.poll() is None
    assert serves(node.mysql_port)
    assert (node.data_dir / "marmot.lock").read_text().strip() == str(node.pid)
    # -daemon reports the same refusal from the background process
    out = run_cli(
        "--config",
        str(node.config_path),
        "--mysql-port",
        str(free_port()),
        "--grpc-port",
        str(free_port()),
        "-daemon",
    )
    assert_one_line_error(out, str(node.data_dir), f"PID {node.pid}")
    assert serves(node.mysql_port)


def test_the_lock_goes_with_the_process(tmp_path: Path):
    """A cleanly stopped node and a SIGKILLed one both leave the data directory free for the next."""
    n = make_node(tmp_path, unix_socket=False)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        n.start()
        try:
            assert serves(n.mysql_port)
        finally:
            n.stop(sig)
    n.start()
    try:
        assert serves(n.mysql_port)
    finally:
        n.stop()


# ---- PID file ----------------------------------------------------------------------------------


def _ts(line: str) -> float:
    """The epoch seconds of a console-format log line (``2026-01-02T03:04:05.678Z ...``)."""
    stamp = line.split()[0].rstrip("Z")
    return datetime.datetime.fromisoformat(stamp).replace(tzinfo=datetime.UTC).timestamp()


def _start_with_pid_file(n: NodeProcess, pid_file: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*CLI, "--config", str(n.config_path), "-pid-file", str(pid_file)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait_for_pid_file(proc: subprocess.Popen[bytes], pid_file: Path, timeout: float = 60) -> None:
    """Until the node wrote its PID file; it must not have exited meanwhile."""
    deadline = time.monotonic() + timeout
    while not pid_file.exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)


def test_pid_file_is_written_once_the_listeners_are_bound(tmp_path: Path):
    n = make_node(tmp_path, unix_socket=False, extra_toml=f'file = "{tmp_path / "node.log"}"\n')
    pid_file = tmp_path / "run" / "marmot.pid"
    proc = _start_with_pid_file(n, pid_file)
    try:
        _wait_for_pid_file(proc, pid_file)
        # the moment it exists, both listeners already accept connections
        for port in (n.mysql_port, n.grpc_port):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        assert pid_file.read_text() == f"{proc.pid}\n"
        log = (tmp_path / "node.log").read_text().splitlines()
        bound = [_ts(line) for line in log if "listening on 127.0.0.1" in line]
        assert len(bound) == 2
        # file times come from the kernel's coarse clock (a few ms behind): allow 50 ms, far less than
        # the imports and database opening that preceded the listeners
        assert pid_file.stat().st_mtime >= max(bound) - 0.05
        assert serves(n.mysql_port)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    assert not pid_file.exists()


def test_pid_file_of_a_live_process_refuses_the_start(node: NodeProcess, tmp_path: Path):
    pid_file = tmp_path / "marmot.pid"
    pid_file.write_text(f"{node.pid}\n")
    other = make_node(tmp_path / "other", unix_socket=False)
    for extra in ((), ("-daemon",)):
        out = run_cli("--config", str(other.config_path), "-pid-file", str(pid_file), *extra)
        assert_one_line_error(out, "PID file", str(pid_file), f"PID {node.pid}", "already running")
        assert pid_file.read_text() == f"{node.pid}\n"  # neither overwritten nor removed
        assert not other.data_dir.exists()  # refused before anything started
        assert not serves(other.mysql_port)
    assert serves(node.mysql_port)


def test_stale_pid_file_is_replaced_and_removed_on_exit(tmp_path: Path):
    n = make_node(tmp_path, unix_socket=False)
    pid_file = tmp_path / "marmot.pid"
    pid_file.write_text(f"{dead_pid()}\n")
    proc = subprocess.Popen(
        [*CLI, "--config", str(n.config_path), "-pid-file", str(pid_file)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while pid_file.read_text() != f"{proc.pid}\n":
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        assert serves(n.mysql_port)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    assert not pid_file.exists()


def test_pid_file_is_not_removed_by_a_process_that_did_not_write_it(tmp_path: Path):
    """Someone else's PID in our file at exit (a successor took it over): the file stays."""
    n = make_node(tmp_path, unix_socket=False)
    pid_file = tmp_path / "marmot.pid"
    keeper = subprocess.Popen(["sleep", "300"])
    proc = _start_with_pid_file(n, pid_file)
    try:
        _wait_for_pid_file(proc, pid_file)
        pid_file.write_text(f"{keeper.pid}\n")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert pid_file.read_text() == f"{keeper.pid}\n"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        keeper.kill()
        keeper.wait(10)


# ---- -daemon -------------------------------------------------------------------------------------


def test_daemon_returns_once_the_node_serves(tmp_path: Path):
    n = make_node(tmp_path, unix_socket=False)
    pid_file = tmp_path / "run" / "marmot.pid"
    out = run_cli("-config", str(n.config_path), "-daemon", f"-pid-file={pid_file}")
    try:
        assert out.returncode == 0, out.stderr
        pid = int(pid_file.read_text())  # no waiting: it is there when the launcher returns
        assert pid != os.getpid() and pid_alive(pid)
        assert serves(n.mysql_port)
        socket.create_connection(("127.0.0.1", n.grpc_port), timeout=5).close()
        assert (n.data_dir / "marmot.lock").read_text().strip() == str(pid)  # held by the daemon itself
    finally:
        stop_daemon(pid_file, n.data_dir)
    assert not pid_file.exists()


@pytest.mark.parametrize("which", ["mysql", "cluster"])
def test_daemon_reports_a_port_in_use(tmp_path: Path, which: str):
    n = make_node(tmp_path, unix_socket=False)
    pid_file = tmp_path / "marmot.pid"
    port = n.mysql_port if which == "mysql" else n.grpc_port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        out = run_cli("--config", str(n.config_path), "-daemon", "-pid-file", str(pid_file))
    try:
        what = "MySQL port" if which == "mysql" else "cluster port"
        assert_one_line_error(out, f"127.0.0.1:{port}", what, "in use")
        assert not pid_file.exists()
        # no daemon was left behind holding the data directory: a node starts on it at once
        n.start()
        try:
            assert serves(n.mysql_port)
        finally:
            n.stop()
    finally:
        stop_daemon(pid_file, n.data_dir)  # only if the launcher lied and one runs


# ---- startup errors ------------------------------------------------------------------------------


def _flags(data_dir: Path | str, *extra: str) -> list[str]:
    return [
        "--data-dir",
        str(data_dir),
        "--mysql-port",
        str(free_port()),
        "--grpc-port",
        str(free_port()),
        *extra,
    ]


def test_data_dir_that_is_a_file(tmp_path: Path):
    f = tmp_path / "afile"
    f.write_text("not a directory")
    assert_one_line_error(run_cli(*_flags(f)), f"data directory {f} is not a directory")
    assert_one_line_error(run_cli(*_flags(f / "sub")), str(f / "sub"), "Not a directory")
    assert f.read_text() == "not a directory"


def _without_root_override() -> list[str]:
    """A command prefix under which directory modes bind us: root ignores them (CAP_DAC_OVERRIDE), so
    as root the child runs without that capability (util-linux ``setpriv``)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root and setpriv (util-linux) is missing: cannot make a directory unwritable")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--"]


def test_unwritable_data_dir(tmp_path: Path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    prefix = _without_root_override()
    try:
        for data_dir, message in (
            (locked / "data", f"cannot create data directory {locked / 'data'}"),
            (locked, f"data directory {locked} is not writable"),
        ):
            out = subprocess.run(
                [*prefix, *CLI, *_flags(data_dir)], cwd=REPO, capture_output=True, text=True, timeout=60
            )
            assert_one_line_error(out, message, "Permission denied")
    finally:
        locked.chmod(0o755)


@pytest.mark.parametrize("which", ["mysql", "cluster"])
def test_port_in_use(tmp_path: Path, which: str):
    mysql_port, grpc_port = free_port(), free_port()
    port = mysql_port if which == "mysql" else grpc_port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        out = run_cli(
            "--data-dir", str(tmp_path / "d"), "--mysql-port", str(mysql_port), "--grpc-port", str(grpc_port)
        )
    assert_one_line_error(
        out,
        f"cannot listen on 127.0.0.1:{port}",
        "MySQL port" if which == "mysql" else "cluster port",
        "Address already in use",
    )


def test_unix_socket_of_a_running_node_is_not_taken_over(tmp_path: Path):
    first = make_node(tmp_path / "a").start()
    try:
        out = run_cli(
            "--data-dir",
            str(tmp_path / "b"),
            "--mysql-port",
            str(free_port()),
            "--grpc-port",
            str(free_port()),
            "--config",
            str(_unix_config(tmp_path, first.unix_socket)),
        )
        assert_one_line_error(out, f"unix socket {first.unix_socket}", "another server listens on it")
        c = pymysql.connect(unix_socket=first.unix_socket, user="root", password="")
        c.close()
    finally:
        first.stop()


def _unix_config(tmp_path: Path, sock: str) -> Path:
    cfg = tmp_path / "unix.toml"
    cfg.write_text(f'[mysql]\nunix_socket = "{sock}"\n')
    return cfg


def test_bind_address_not_on_this_host(tmp_path: Path):
    # 192.0.2.1 is TEST-NET-1 (never a local address): bind fails, nothing is sent anywhere
    out = run_cli(*_flags(tmp_path / "d", "--bind-address", "192.0.2.1"))
    assert_one_line_error(out, "cannot listen on 192.0.2.1:", "Cannot assign requested address")


# ---- bind defaults and the beyond-loopback warning ----------------------------------------------


def _start_cli(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[bytes], int, int, Path]:
    """A node from built-in defaults plus flags; returns once MySQL serves on 127.0.0.1."""
    mysql_port, grpc_port = free_port(), free_port()
    log = tmp_path / "stdout.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                *CLI,
                "--data-dir",
                str(tmp_path / "data"),
                "--mysql-port",
                str(mysql_port),
                "--grpc-port",
                str(grpc_port),
                *extra,
            ],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while not serves(mysql_port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait(10)
            raise AssertionError(f"node did not start: {log.read_text()[-3000:]}")
        time.sleep(0.1)
    return proc, mysql_port, grpc_port, log


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def test_default_bind_is_loopback(tmp_path: Path):
    proc, mysql_port, grpc_port, log = _start_cli(tmp_path)
    try:
        assert listener_hosts(mysql_port) == {"127.0.0.1"}
        assert listener_hosts(grpc_port) == {"127.0.0.1"}
        assert "beyond loopback" not in log.read_text()
    finally:
        _stop(proc)


def test_bind_address_flag_sets_both_listeners_and_warns(tmp_path: Path):
    proc, mysql_port, grpc_port, log = _start_cli(tmp_path, "-bind-address", "0.0.0.0")
    try:
        assert listener_hosts(mysql_port) == {"0.0.0.0"}
        assert listener_hosts(grpc_port) == {"0.0.0.0"}
        text = log.read_text()
        assert (
            "MySQL listens beyond loopback (0.0.0.0:" in text and "user 'root' has an empty password" in text
        )
        assert "cluster port listens beyond loopback (0.0.0.0:" in text and "empty cluster secret" in text
    finally:
        _stop(proc)


def test_no_warning_beyond_loopback_with_password_and_secret(tmp_path: Path):
    cfg = tmp_path / "secured.toml"
    cfg.write_text('[cluster]\ncluster_secret = "s3cret"\n[[mysql.users]]\nname = "root"\npassword = "pw"\n')
    mysql_port, grpc_port = free_port(), free_port()
    log = tmp_path / "stdout.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                *CLI,
                "--config",
                str(cfg),
                "--data-dir",
                str(tmp_path / "data"),
                "--mysql-port",
                str(mysql_port),
                "--grpc-port",
                str(grpc_port),
                "--bind-address",
                "0.0.0.0",
            ],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while "MySQL protocol listening" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        assert listener_hosts(mysql_port) == {"0.0.0.0"}
        assert "beyond loopback" not in log.read_text()
    finally:
        _stop(proc)


# ---- membership changes are logged once ----------------------------------------------------------


def test_membership_change_is_logged_once(tmp_path: Path):
    a = make_node(tmp_path / "a", node_id=1, unix_socket=False).start()
    b: NodeProcess | None = None
    try:
        b = make_node(
            tmp_path / "b",
            node_id=2,
            unix_socket=False,
            cluster_extra=f'seed_nodes = ["127.0.0.1:{a.grpc_port}"]\n',
        ).start()
        deadline = time.monotonic() + 60
        while (
            "member 2: JOINING -> ALIVE" not in a.log_path.read_text()
            or "member 2: JOINING -> ALIVE" not in b.log_path.read_text()
        ):
            assert time.monotonic() < deadline, (a.log(), b.log())
            time.sleep(0.1)
        assert b.stop() == 0
        leaving = re.compile(r"member 2: \w+ -> LEAVING")
        while not leaving.search(a.log_path.read_text()):
            assert time.monotonic() < deadline, a.log()
            time.sleep(0.1)
        time.sleep(1)  # anything logged twice would be written by now
        a_log, b_log = a.log_path.read_text(), b.log_path.read_text()
        assert a_log.count("member 2: (new) -> JOINING") == 1
        assert a_log.count("JOINING -> ALIVE") == 1
        assert len(leaving.findall(a_log)) == 1
        assert b_log.count("JOINING -> ALIVE") == 1  # the joiner's own promotion
        assert b_log.count("member 1: (new) -> ALIVE") == 1
    finally:
        if b is not None:
            b.stop()
        a.stop()
