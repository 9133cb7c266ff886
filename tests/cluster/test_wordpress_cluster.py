"""Distributed WordPress: ``examples/wordpress-cluster/run.sh`` on free ports, driven over HTTP.

The script starts 3 nodes (reads and writes at QUORUM) and 3 WordPress front ends, front end N on node N.
A post published through front end 1 is on the pages of front ends 2 and 3 at the first request (no
retry: a stale read fails the test); a visitor's comment posted through front end 3 is held, approved by
the admin through front end 1 and then shown by front end 2; ``marmot verify`` finds the three copies
identical; ``run.sh stop`` ends every process the script started, by PID.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pymysql
import pytest

from marmot.testing import free_port, pid_alive
from tests.integration.test_wordpress import WORDPRESS, Browser
from tests.support import REPO

SCRIPT = REPO / "examples" / "wordpress-cluster" / "run.sh"
MARMOT = str(Path(sys.executable).parent / "marmot")
SECRET = "marmot-example-secret"  # examples/_common.sh's default
PASSWORD = "wordpress cluster test"

pytestmark = pytest.mark.skipif(
    not (WORDPRESS / "wp-login.php").exists() or not Path("/usr/bin/php").exists(),
    reason="needs Debian packages wordpress, php-cli, php-mysql, php-xml",
)


def _pids(run_dir: Path) -> dict[str, int]:
    """Every PID the script's PID files name (nodes and front ends)."""
    files = [*run_dir.glob("node-*/marmot.pid"), *run_dir.glob("wp-*/php.pid")]
    return {f"{f.parent.name}/{f.name}": int(f.read_text()) for f in files if f.read_text().strip()}


def _login(base: str) -> tuple[Browser, str]:
    b = Browser(base)
    b.request("/wp-login.php")  # sets the test cookie
    data = {"log": "admin", "pwd": PASSWORD, "testcookie": "1", "redirect_to": base + "/wp-admin/"}
    status, page = b.request("/wp-login.php", data=data)
    assert status == 200 and "Dashboard" in page, page[:3000]
    status, nonce = b.request("/wp-admin/admin-ajax.php?action=rest-nonce")
    assert status == 200 and re.fullmatch(r"[0-9a-f]{10}", nonce.strip()), nonce
    return b, nonce.strip()


def _page(base: str, mysql_port: int, path: str) -> str:
    """One GET of ``path`` from the front end at ``base``; the page must say it was rendered there from
    the node at ``mysql_port`` (not redirected to another front end)."""
    status, page = Browser(base).request(path)
    assert status == 200, page[:2000]
    assert f"Served by {base} from the Marmot node at 127.0.0.1:{mysql_port}" in page, page[-2000:]
    return page


def test_wordpress_cluster_front_ends_agree(tmp_path):
    http = [free_port() for _ in range(3)]
    mysql = [free_port() for _ in range(3)]
    cluster = [free_port() for _ in range(3)]
    env = dict(
        os.environ,
        MARMOT=MARMOT,
        MARMOT_RUN_DIR=str(tmp_path),
        MARMOT_WP_HTTP_PORTS=" ".join(map(str, http)),
        MARMOT_WP_MYSQL_PORTS=" ".join(map(str, mysql)),
        MARMOT_WP_CLUSTER_PORTS=" ".join(map(str, cluster)),
        MARMOT_WP_ADMIN_PASSWORD=PASSWORD,
    )

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=180
        )

    base = [f"http://127.0.0.1:{port}" for port in http]
    seen: dict[str, int] = {}
    try:
        started = run("start")
        seen.update(_pids(tmp_path))
        assert started.returncode == 0, started.stdout + started.stderr
        for n in range(3):
            assert f"WordPress front end {n + 1}: {base[n]}/  (node {n + 1})" in started.stdout
        assert len(seen) == 6 and all(pid_alive(pid) for pid in seen.values()), seen
        status = run("status")
        assert status.returncode == 0 and status.stdout.count(": running, pid ") == 6, status.stdout

        # the nodes read at QUORUM by default: WordPress sends no SET of its own
        with (
            pymysql.connect(host="127.0.0.1", port=mysql[1], user="root", password="") as conn,
            conn.cursor() as cur,
        ):
            cur.execute("SELECT @@marmot_read_consistency")
            assert cur.fetchone() == ("QUORUM",)

        admin, nonce = _login(base[0])
        post = admin.rest(
            "/wp/v2/posts",
            nonce,
            {
                "title": "Marmots on three nodes",
                "content": "<p>Written through one.</p>",
                "status": "publish",
            },
            "POST",
        )
        post_id = post["id"]
        # at once, one request each: front ends 2 and 3 render it from their own nodes
        for n in (1, 2):
            page = _page(base[n], mysql[n], f"/?p={post_id}")
            assert "Marmots on three nodes" in page and "Written through one." in page

        # a visitor comments through front end 3: a first-time author is held for moderation
        visitor = Browser(base[2])
        status_code, _ = visitor.request(
            "/wp-comments-post.php",
            data={
                "comment_post_ID": str(post_id),
                "author": "Woodchuck",
                "email": "wc@example.com",
                "comment": "Seen from the third burrow.",
                "comment_parent": "0",
            },
        )
        assert status_code == 200
        assert "Seen from the third burrow." not in _page(base[1], mysql[1], f"/?p={post_id}")
        # the admin, on front end 1, finds it held at once and approves it
        held = admin.rest(f"/wp/v2/comments?post={post_id}&status=hold", nonce)
        assert [(c["author_name"], c["content"]["rendered"].strip()) for c in held] == [
            ("Woodchuck", "<p>Seen from the third burrow.</p>")
        ]
        admin.rest(f"/wp/v2/comments/{held[0]['id']}", nonce, {"status": "approved"}, "POST")
        page = _page(base[1], mysql[1], f"/?p={post_id}")
        assert "Woodchuck" in page and "Seen from the third burrow." in page

        verify = subprocess.run(
            [MARMOT, "verify", "--address", f"127.0.0.1:{cluster[0]}", "--secret", SECRET, "--settle", "1"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert (
            "wp_posts" in verify.stdout and "wp_comments" in verify.stdout and "DIFFER" not in verify.stdout
        )
        assert re.search(r"table\(s\) on 3 node\(s\): all match$", verify.stdout.rstrip()), verify.stdout
    finally:
        seen.update(_pids(tmp_path))
        stopped = run("stop")
        survivors = {name: pid for name, pid in seen.items() if pid_alive(pid)}
        for pid in survivors.values():  # never leave a process behind, even when the script failed
            os.kill(pid, signal.SIGKILL)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert survivors == {}, (survivors, stopped.stdout, stopped.stderr)
    assert stopped.stdout.count("stopped front end") == 3 and stopped.stdout.count("stopped pid") == 3
    assert _pids(tmp_path) == {}  # no PID file left that names a process
