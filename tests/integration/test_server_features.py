"""Listener and process features: unix socket, TLS, auth plugins, limits, commands, shutdown, CLI."""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import apsw
import pymysql
import pytest

from marmot.testing import free_port, make_node
from tests.support import REPO, connect


def _self_signed(tmp: Path) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return str(cert_path), str(key_path)


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    """A node with TLS, caching_sha2_password, a password user, a small packet limit and 5 connections."""
    tmp = tmp_path_factory.mktemp("secured")
    cert, key = _self_signed(tmp)
    n = make_node(
        tmp,
        mysql_extra=(
            f'tls_cert_file = "{cert}"\ntls_key_file = "{key}"\nauth_plugin = "caching_sha2_password"\n'
            'max_allowed_packet = 65536\nmax_connections = 5\nunix_socket_perm = "0600"\n'
            '[[mysql.users]]\nname = "app"\npassword = "s3cret!"\n[[mysql.users]]\nname = "root"\npassword = ""\n'
        ),
    )
    n.start()
    yield n
    n.stop()


def test_unix_socket(node):
    c = pymysql.connect(unix_socket=node.unix_socket, user="root", password="", database="marmot")
    cur = c.cursor()
    cur.execute("SELECT 40 + 2")
    assert cur.fetchone() == (42,)
    c.close()
    assert stat.S_IMODE(os.stat(node.unix_socket).st_mode) == 0o660


def test_unix_socket_perm_from_config(secured):
    assert stat.S_IMODE(os.stat(secured.unix_socket).st_mode) == 0o600


def test_tls_connection(secured):
    c = pymysql.connect(
        host="127.0.0.1",
        port=secured.mysql_port,
        user="app",
        password="s3cret!",
        ssl={"check_hostname": False, "verify_mode": 0},
    )
    cur = c.cursor()
    cur.execute("SELECT 1")
    assert cur.fetchone() == (1,)
    assert c._sock.version().startswith("TLS")  # type: ignore[union-attr]
    c.close()


def test_caching_sha2_fast_path_and_wrong_password(secured):
    c = pymysql.connect(host="127.0.0.1", port=secured.mysql_port, user="app", password="s3cret!")
    assert c._auth_plugin_name == "caching_sha2_password"
    c.close()
    with pytest.raises(pymysql.err.OperationalError) as ei:
        pymysql.connect(host="127.0.0.1", port=secured.mysql_port, user="app", password="nope")
    assert ei.value.args[0] == 1045


def test_auth_switch_from_native_to_caching_sha2(secured):
    mysql_connector = pytest.importorskip("mysql.connector")
    c = mysql_connector.connect(
        host="127.0.0.1",
        port=secured.mysql_port,
        user="app",
        password="s3cret!",
        auth_plugin="mysql_native_password",
        ssl_disabled=True,
    )
    cur = c.cursor()
    cur.execute("SELECT CURRENT_USER()")
    assert cur.fetchone()[0].startswith("app@")
    c.close()


def test_max_connections(secured):
    conns = []
    try:
        with pytest.raises(pymysql.err.OperationalError) as ei:
            for _ in range(10):
                conns.append(
                    pymysql.connect(host="127.0.0.1", port=secured.mysql_port, user="root", password="")
                )
        assert ei.value.args[0] == 1040
        assert len(conns) == 5
    finally:
        for c in conns:
            c.close()
    time.sleep(0.2)
    pymysql.connect(host="127.0.0.1", port=secured.mysql_port, user="root", password="").close()


def test_oversized_packet_closes_connection_only(secured):
    c = pymysql.connect(
        host="127.0.0.1", port=secured.mysql_port, user="root", password="", database="marmot"
    )
    with pytest.raises(pymysql.err.MySQLError):
        c.cursor().execute("SELECT '" + "x" * 200_000 + "'")
    c2 = pymysql.connect(
        host="127.0.0.1", port=secured.mysql_port, user="root", password="", database="marmot"
    )
    cur = c2.cursor()
    cur.execute("SELECT LENGTH('" + "y" * 60_000 + "')")
    assert cur.fetchone() == (60_000,)
    c2.close()


def test_change_user_reset_and_field_list(secured):
    c = pymysql.connect(
        host="127.0.0.1", port=secured.mysql_port, user="root", password="", database="marmot"
    )
    cur = c.cursor()
    cur.execute("CREATE TABLE IF NOT EXISTS fl (id INT PRIMARY KEY, label VARCHAR(20))")
    cur.execute("SET @v = 5")
    c._execute_command(pymysql.constants.COMMAND.COM_FIELD_LIST, b"fl\x00")
    fields = []
    while True:
        pkt = c._read_packet()
        if pkt.is_eof_packet() or pkt.is_ok_packet():
            break
        fields.append(pkt.read_struct("<B")[0] and pkt)
    assert len(fields) == 2
    c._execute_command(0x1F, b"")  # COM_RESET_CONNECTION
    assert c._read_packet().is_ok_packet()
    cur.execute("SELECT @v")
    assert cur.fetchone() == (None,)
    c.close()


def test_sigterm_graceful_shutdown_checkpoints(tmp_path):
    n = make_node(tmp_path).start()
    c = connect(n)
    c.cursor().execute("CREATE TABLE t (id INT PRIMARY KEY)")
    c.cursor().execute("INSERT INTO t VALUES (1), (2)")
    open_txn = connect(n, autocommit=False)
    open_txn.cursor().execute("BEGIN")
    open_txn.cursor().execute("INSERT INTO t VALUES (3)")
    assert n.stop(signal.SIGTERM) == 0
    db = n.data_dir / "marmot.db"
    wal = Path(str(db) + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0  # checkpointed
    rows = apsw.Connection(str(db)).execute("SELECT id FROM t ORDER BY id").fetchall()
    assert rows == [(1,), (2,)]  # the open transaction was rolled back


def test_daemon_and_pid_file(tmp_path):
    n = make_node(tmp_path)
    pid_file = tmp_path / "run" / "marmot.pid"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "marmot.cli",
            "-config",
            str(n.config_path),
            "-daemon",
            f"-pid-file={pid_file}",
        ],
        cwd=REPO,
        check=True,
        timeout=20,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not pid_file.exists():
        time.sleep(0.05)
    pid = int(pid_file.read_text())
    try:
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", n.mysql_port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        c = pymysql.connect(host="127.0.0.1", port=n.mysql_port, user="root", password="")
        c.close()
    finally:
        os.kill(pid, signal.SIGTERM)
    while time.monotonic() < deadline + 10:
        try:
            os.kill(pid, 0)
            time.sleep(0.05)
        except ProcessLookupError:
            break
    assert not pid_file.exists()


def test_cli_help_and_bad_config(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "marmot.cli", "--help"], capture_output=True, text=True, cwd=REPO, timeout=30
    )
    assert out.returncode == 0
    for flag in (
        "--config",
        "--node-id",
        "--data-dir",
        "--mysql-port",
        "--grpc-port",
        "--follow-addresses",
        "-daemon",
        "-pid-file",
    ):
        assert flag in out.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("[mysql]\nport = 'abc'\n")
    out = subprocess.run(
        [sys.executable, "-m", "marmot.cli", "--config", str(bad)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
    )
    assert out.returncode == 2 and "mysql.port" in out.stderr
    bad.write_text("[replication]\ngc_interval_seconds = 5\nanti_entropy_interval_seconds = 30\n")
    out = subprocess.run(
        [sys.executable, "-m", "marmot.cli", "--config", str(bad)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
    )
    assert out.returncode == 2 and "gc_interval_seconds" in out.stderr


def test_cli_flags_override_file_and_log_to_file(tmp_path):
    n = make_node(tmp_path, extra_toml=f'file = "{tmp_path / "marmot.log"}"\n')
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "marmot.cli",
            "--config",
            str(n.config_path),
            "--mysql-port",
            str(port),
            "--data-dir",
            str(tmp_path / "other"),
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        pymysql.connect(host="127.0.0.1", port=port, user="root", password="").close()
        assert (tmp_path / "other" / "marmot.db").exists()
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(10)
    assert "node 1 started" in (tmp_path / "marmot.log").read_text()


def test_change_user_and_status_flags(secured):
    mysql_connector = pytest.importorskip("mysql.connector")
    c = mysql_connector.connect(
        host="127.0.0.1",
        port=secured.mysql_port,
        user="root",
        password="",
        database="marmot",
        ssl_disabled=True,
    )
    cur = c.cursor()
    assert not c.in_transaction
    cur.execute("START TRANSACTION")
    cur.execute("SELECT 1")
    cur.fetchall()
    assert c.in_transaction  # SERVER_STATUS_IN_TRANS
    c.rollback()
    assert not c.in_transaction
    c.cmd_change_user(username="app", password="s3cret!", database="marmot")
    cur = c.cursor()
    cur.execute("SELECT CURRENT_USER(), DATABASE()")
    user, db = cur.fetchone()
    assert user.startswith("app@") and db == "marmot"
    with pytest.raises(mysql_connector.Error) as ei:
        c.cmd_change_user(username="app", password="bad")
    assert ei.value.errno == 1045
    c.close()
