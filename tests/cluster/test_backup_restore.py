"""``marmot backup`` and ``marmot restore`` with real node processes (issue #18 point 3): a backup taken
from a node under a write load is consistent per database (data and commit log at the same point, the
manifest naming that point); restored into a fresh data directory of a new node that joins the cluster,
it catches up from that point and ends identical to the others (``marmot verify``), without bringing back
rows deleted after the backup. Restore refuses what would be unsafe: a running node's directory, a
directory that already holds data, a damaged file, a copy older than the tombstone retention."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import apsw
import pymysql

from marmot.testing import SECRET, NodeProcess, join_keys, make_node
from tests.support import connect, marmot_verify, replicated_cluster, run, wait_until_equal
from tests.support.paths import REPO

FAST_AE = "anti_entropy_interval_seconds = 1\n"


def marmot(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The real CLI in a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "marmot.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(REPO),
    )


def admin_args(node: NodeProcess) -> list[str]:
    return ["--address", f"127.0.0.1:{node.grpc_port}", "--secret", SECRET]


def read_file(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return list(conn.execute(sql).fetchall())
    finally:
        conn.close()


class Writer(threading.Thread):
    """Inserts one row per autocommit statement (ids from ``start``) until stopped; counts successes."""

    def __init__(self, node: NodeProcess, start: int) -> None:
        super().__init__(daemon=True)
        self.node = node
        self.next_id = start
        self.done = 0
        self.stop_flag = threading.Event()
        self.errors: list[str] = []

    def run(self) -> None:
        conn = connect(self.node, "shop")
        try:
            while not self.stop_flag.is_set():
                try:
                    conn.cursor().execute("INSERT INTO t VALUES (%s, %s)", (self.next_id, "load"))
                    self.done += 1
                except pymysql.MySQLError as err:  # a conflict or a timeout under load: not this test's point
                    self.errors.append(str(err))
                self.next_id += 1
        finally:
            conn.close()


def test_backup_under_load_restores_into_a_new_node_that_converges(tmp_path: Path) -> None:
    with replicated_cluster(tmp_path, 3, replication_extra=FAST_AE) as nodes:
        n1, n2, n3 = nodes
        run(
            n1,
            "CREATE DATABASE shop",
            "CREATE TABLE shop.t (id INT PRIMARY KEY, v VARCHAR(20))",
            *[f"INSERT INTO shop.t VALUES ({i}, 'v{i}')" for i in range(1, 61)],
        )
        wait_until_equal(nodes, "SELECT COUNT(*) FROM shop.t", expected=((60,),))
        live = n2.data_dir / "shop.db"
        ((setup_log,),) = read_file(live, "SELECT COUNT(*) FROM __marmot_txn_log")
        setup_extra = setup_log - 60  # log entries of the setup that are no row (CREATE TABLE ...)

        writers = [Writer(n1, 1000), Writer(n3, 100000)]
        for w in writers:
            w.start()
        try:
            time.sleep(1.0)
            backup_dir = tmp_path / "backup"
            taken = marmot("backup", str(backup_dir), *admin_args(n2))
            time.sleep(0.5)
        finally:
            for w in writers:
                w.stop_flag.set()
            for w in writers:
                w.join(30)
        assert taken.returncode == 0, taken.stderr
        assert sum(w.done for w in writers) > 20, [w.errors[:3] for w in writers]
        assert "shop:" in taken.stdout and "backup of node 2" in taken.stdout, taken.stdout

        manifest = json.loads((backup_dir / "manifest.json").read_text())
        entry = manifest["databases"]["shop"]
        copy = backup_dir / "shop.db"
        # the copy is one point in time: its rows and its commit log agree with each other and the manifest
        ((max_seq, log_rows),) = read_file(copy, "SELECT MAX(seq), COUNT(*) FROM __marmot_txn_log")
        ((rows,),) = read_file(copy, "SELECT COUNT(*) FROM t")
        ((versions,),) = read_file(copy, "SELECT COUNT(*) FROM __marmot_row_version WHERE tbl = 't'")
        assert entry["last_seq"] == max_seq, (entry, max_seq)
        # every insert (setup and load) is one transaction of one row: rows and log entries move together
        assert rows == versions, (rows, versions)
        assert log_rows - setup_extra == rows, (
            f"{log_rows} log entries but {rows} rows: not one point in time"
        )
        assert rows > 60, "the backup was taken before the load started"
        assert entry["log_id"] == read_file(copy, "SELECT log_id FROM __marmot_schema_version")[0][0]

        # after the backup: delete and update rows the backup holds, insert more
        run(
            n1,
            "DELETE FROM shop.t WHERE id <= 20",
            "UPDATE shop.t SET v = 'after' WHERE id BETWEEN 21 AND 40",
            "INSERT INTO shop.t VALUES (500000, 'late')",
        )

        # restore into a new node's data directory and let it join
        n4 = make_node(
            tmp_path / "n4",
            node_id=4,
            unix_socket=False,
            cluster_extra=join_keys(n1),
            extra_toml=f"\n[replication]\n{FAST_AE}",
        )
        restored = marmot("restore", str(backup_dir), "--config", str(n4.config_path))
        assert restored.returncode == 0, restored.stderr
        fresh_log_id = read_file(n4.data_dir / "shop.db", "SELECT log_id FROM __marmot_schema_version")[0][0]
        assert fresh_log_id != entry["log_id"], "a restored copy must start a log of its own"

        # a running node's directory and a directory with data are refused, naming why
        busy = marmot("restore", str(backup_dir), "--config", str(n2.config_path))
        assert busy.returncode == 1 and f"PID {n2.pid}" in busy.stderr, busy.stderr
        again = marmot("restore", str(backup_dir), "--data-dir", str(n4.data_dir))
        assert again.returncode == 1 and "already holds" in again.stderr and "shop.db" in again.stderr

        n4.start()
        try:
            everyone = [*nodes, n4]
            wait_until_equal(everyone, "SELECT COUNT(*), SUM(id) FROM shop.t", timeout=90)
            wait_until_equal(everyone, "SELECT id, v FROM shop.t ORDER BY id", timeout=30)
            assert run(n4, "SELECT COUNT(*) FROM shop.t WHERE id <= 20") == ((0,),), "deleted rows came back"
            assert run(n4, "SELECT COUNT(*) FROM shop.t WHERE v = 'after'") == ((20,),)
            # it caught up from the backup's position by replaying the log, not by a snapshot
            assert "by snapshot" not in n4.log_path.read_text(errors="replace")
            verified = marmot_verify(n1)
            assert verified.returncode == 0, verified.stdout + verified.stderr
            assert "node 4" in verified.stdout.lower(), verified.stdout
        finally:
            n4.stop()

        # a damaged backup file is refused before anything is written
        damaged = tmp_path / "damaged"
        damaged.mkdir()
        for f in backup_dir.iterdir():
            (damaged / f.name).write_bytes(f.read_bytes())
        blob = bytearray((damaged / "shop.db").read_bytes())
        blob[len(blob) // 2] ^= 0xFF
        (damaged / "shop.db").write_bytes(bytes(blob))
        bad = marmot("restore", str(damaged), "--data-dir", str(tmp_path / "elsewhere"))
        assert bad.returncode == 1 and "does not match its manifest" in bad.stderr, bad.stderr
        assert not list(tmp_path.glob("elsewhere/*.db")), "a damaged copy must not be restored"


def test_restore_refuses_a_copy_older_than_the_tombstone_retention(tmp_path: Path) -> None:
    """Tombstones live ``gc_max_retention_hours``: a copy older than that is refused (the row repair would
    copy rows deleted since back to every node) unless ``--allow-old`` (the whole cluster rebuilt)."""
    node = make_node(
        tmp_path / "src", unix_socket=False, cluster_extra=f'cluster_secret = "{SECRET}"\n'
    ).start()
    try:
        run(node, "CREATE TABLE t (id INT PRIMARY KEY)", "INSERT INTO t VALUES (1), (2)")
        taken = marmot("backup", str(tmp_path / "bk"), *admin_args(node))
        assert taken.returncode == 0, taken.stderr
        no_secret = marmot("backup", str(tmp_path / "bk2"), "--address", f"127.0.0.1:{node.grpc_port}")
        assert no_secret.returncode == 2 and "authentication" in no_secret.stderr, no_secret.stderr
    finally:
        node.stop()
    short = tmp_path / "short.toml"  # 0.0002 h: 0.72 s of tombstone retention
    short.write_text(
        f'data_dir = "{tmp_path / "dst"}"\n[replication]\ngc_min_retention_hours = 0\n'
        "gc_max_retention_hours = 0.0002\ndelta_sync_threshold_seconds = 0\n"
    )
    time.sleep(1.5)
    old = marmot("restore", str(tmp_path / "bk"), "--config", str(short))
    assert old.returncode == 1 and "gc_max_retention_hours" in old.stderr, old.stderr
    assert not list(tmp_path.glob("dst/*.db")), "a refused restore must write nothing"
    forced = marmot("restore", str(tmp_path / "bk"), "--config", str(short), "--allow-old")
    assert forced.returncode == 0, forced.stderr
    assert read_file(tmp_path / "dst" / "marmot.db", "SELECT id FROM t ORDER BY id") == [(1,), (2,)]

    # a manifest cannot make restore write outside the data directory
    manifest = json.loads((tmp_path / "bk" / "manifest.json").read_text())
    entry = manifest["databases"].pop("marmot")
    manifest["databases"]["../escaped"] = {**entry, "file": "marmot.db"}
    (tmp_path / "bk" / "manifest.json").write_text(json.dumps(manifest))
    tampered = marmot("restore", str(tmp_path / "bk"), "--data-dir", str(tmp_path / "dst2"))
    assert tampered.returncode == 1 and "invalid database '../escaped'" in tampered.stderr, tampered.stderr
    assert not (tmp_path / "escaped.db").exists() and not list(tmp_path.glob("dst2/*.db"))


def test_a_node_without_a_secret_refuses_backups(tmp_path: Path) -> None:
    """A backup hands out every row: with no ``cluster_secret`` (reads open) the node still refuses it."""
    node = make_node(tmp_path / "open", unix_socket=False).start()
    try:
        run(node, "CREATE TABLE t (id INT PRIMARY KEY)")
        listed = marmot("databases", "--address", f"127.0.0.1:{node.grpc_port}")
        assert listed.returncode == 0 and "marmot" in listed.stdout, listed.stderr  # reads stay open
        refused = marmot("backup", str(tmp_path / "bk"), "--address", f"127.0.0.1:{node.grpc_port}")
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "(403)" in refused.stderr and "requires cluster_secret" in refused.stderr, refused.stderr
        assert not list(tmp_path.glob("bk/*.db")) and not (tmp_path / "bk" / "manifest.json").exists()
    finally:
        node.stop()
