"""WordPress end to end: Debian's ``wordpress`` on PHP's built-in web server against a Marmot node.

The installer, a login, a post created through the REST API, a comment posted by a visitor and approved
by the admin, both read back through the HTML front end (a minimal classic theme that prints the loop)
and the REST API, then search, pagination and a category archive. Assertions are on page content.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from marmot.testing import free_port, make_node
from tests.support import connect

WORDPRESS = Path("/usr/share/wordpress")
THEME = Path(__file__).parent / "wordpress" / "theme"

pytestmark = pytest.mark.skipif(
    not (WORDPRESS / "wp-login.php").exists() or shutil.which("php") is None,
    reason="needs Debian packages wordpress, php-cli, php-mysql, php-xml",
)

WP_CONFIG = """<?php
define('DB_NAME', 'wordpress');
define('DB_USER', 'root');
define('DB_PASSWORD', '');
define('DB_HOST', '127.0.0.1:{port}');
define('DB_CHARSET', 'utf8mb4');
define('DB_COLLATE', '');
{salts}
$table_prefix = 'wp_';
define('WP_DEBUG', false);
if (!defined('ABSPATH')) {{ define('ABSPATH', __DIR__ . '/'); }}
define('WP_CONTENT_DIR', __DIR__ . '/wp-content');
define('DISABLE_WP_CRON', true);
define('AUTOMATIC_UPDATER_DISABLED', true);
define('WP_HTTP_BLOCK_EXTERNAL', true);
define('FS_METHOD', 'direct');
require_once ABSPATH . 'wp-settings.php';
"""


class Browser:
    """A cookie-keeping HTTP client for one user."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def request(
        self,
        path: str,
        data: dict | None = None,
        json_body: object = None,
        headers: dict | None = None,
        method: str | None = None,
    ) -> tuple[int, str]:
        body = None
        hdrs = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body).encode()
            hdrs["Content-Type"] = "application/json"
        elif data is not None:
            body = urllib.parse.urlencode(data).encode()
        req = urllib.request.Request(self.base + path, data=body, headers=hdrs, method=method)
        try:
            with self.opener.open(req, timeout=60) as resp:
                return resp.status, resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode("utf-8", "replace")

    def rest(self, route: str, nonce: str = "", body: object = None, method: str | None = None) -> object:
        headers = {"X-WP-Nonce": nonce} if nonce else {}
        path, _, query = route.partition("?")
        url = "/?rest_route=" + urllib.parse.quote(path, safe="/") + ("&" + query if query else "")
        status, text = self.request(url, json_body=body, headers=headers, method=method)
        assert status < 400, (status, text[:2000])
        return json.loads(text)


@pytest.fixture(scope="module")
def wordpress(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wp")
    node = make_node(tmp / "node", extra_toml="verbose = true\n").start()
    c = connect(node, None)
    c.cursor().execute("CREATE DATABASE wordpress")
    # record WordPress's statement stream (bench/transpile.py replays it: MARMOT_RECORD_WORDPRESS=path)
    c.cursor().execute("SET GLOBAL general_log_file = %s", (str(tmp / "general.log"),))
    c.cursor().execute("SET GLOBAL general_log = ON")
    c.close()
    site = tmp / "site"
    shutil.copytree(WORDPRESS, site, symlinks=False, ignore=shutil.ignore_patterns(".htaccess"))
    salts = "\n".join(
        f"define('{k}', '{k.lower()}-marmot-test-salt');"
        for k in (
            "AUTH_KEY",
            "SECURE_AUTH_KEY",
            "LOGGED_IN_KEY",
            "NONCE_KEY",
            "AUTH_SALT",
            "SECURE_AUTH_SALT",
            "LOGGED_IN_SALT",
            "NONCE_SALT",
        )
    )
    (site / "wp-config.php").write_text(WP_CONFIG.format(port=node.mysql_port, salts=salts))
    shutil.copytree(THEME, site / "wp-content" / "themes" / "marmot-test")
    port = free_port()
    log = open(tmp / "php.log", "wb")  # noqa: SIM115 - closed below
    php = subprocess.Popen(
        ["php", "-S", f"127.0.0.1:{port}", "-t", str(site)], cwd=site, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(base + "/readme.html", timeout=2).read()
            break
        except OSError:
            time.sleep(0.1)
    try:
        yield base, node
    finally:
        record = os.environ.get("MARMOT_RECORD_WORDPRESS")
        if record and (tmp / "general.log").exists():
            shutil.copy(tmp / "general.log", record)
        php.terminate()
        php.wait(10)
        log.close()
        node.stop()


def _install(base: str) -> None:
    b = Browser(base)
    status, page = b.request(
        "/wp-admin/install.php?step=2",
        data={
            "weblog_title": "Marmot Blog",
            "user_name": "admin",
            "admin_password": "correct horse battery",
            "admin_password2": "correct horse battery",
            "pw_weak": "1",
            "admin_email": "admin@example.com",
            "blog_public": "0",
            "language": "",
        },
    )
    assert status == 200 and "Success!" in page, page[:3000]


def _login(base: str) -> tuple[Browser, str]:
    b = Browser(base)
    b.request("/wp-login.php")  # sets the test cookie
    status, page = b.request(
        "/wp-login.php",
        data={
            "log": "admin",
            "pwd": "correct horse battery",
            "testcookie": "1",
            "redirect_to": base + "/wp-admin/",
        },
    )
    assert status == 200 and "Dashboard" in page, page[:3000]
    status, nonce = b.request("/wp-admin/admin-ajax.php?action=rest-nonce")
    assert status == 200 and re.fullmatch(r"[0-9a-f]{10}", nonce.strip()), nonce
    return b, nonce.strip()


def test_wordpress_end_to_end(wordpress):
    base, node = wordpress
    _install(base)
    db = connect(node, "wordpress")
    db.cursor().execute(
        "UPDATE wp_options SET option_value = 'marmot-test' WHERE option_name IN ('template', 'stylesheet')"
    )
    admin, nonce = _login(base)

    # a category and a post in it, through the REST API
    category = admin.rest("/wp/v2/categories", nonce, {"name": "Rodents"}, "POST")
    post = admin.rest(
        "/wp/v2/posts",
        nonce,
        {
            "title": "Marmots replicate SQLite",
            "content": "<p>Leaderless and quorum-happy.</p>",
            "status": "publish",
            "categories": [category["id"]],
        },
        "POST",
    )
    post_id = post["id"]

    # a visitor comments; the first comment of an author is held for moderation
    visitor = Browser(base)
    status, _ = visitor.request(
        "/wp-comments-post.php",
        data={
            "comment_post_ID": str(post_id),
            "author": "Groundhog",
            "email": "gh@example.com",
            "comment": "Burrowing into the details!",
            "comment_parent": "0",
        },
    )
    assert status in (200, 302)
    held = admin.rest(f"/wp/v2/comments?post={post_id}&status=hold", nonce)
    assert [c["author_name"] for c in held] == ["Groundhog"]
    admin.rest(f"/wp/v2/comments/{held[0]['id']}", nonce, {"status": "approved"}, "POST")

    # front end: post page shows title, content and the approved comment
    status, page = visitor.request(f"/?p={post_id}")
    assert status == 200
    assert "Marmots replicate SQLite" in page and "Leaderless and quorum-happy." in page
    assert "Groundhog" in page and "Burrowing into the details!" in page

    # REST API, anonymous
    public = visitor.rest(f"/wp/v2/posts/{post_id}")
    assert public["title"]["rendered"] == "Marmots replicate SQLite"
    comments = visitor.rest(f"/wp/v2/comments?post={post_id}")
    assert [c["content"]["rendered"].strip() for c in comments] == ["<p>Burrowing into the details!</p>"]

    # more posts for search and pagination
    for i in range(12):
        admin.rest(
            "/wp/v2/posts",
            nonce,
            {"title": f"Filler number {i:02d}", "content": f"filler body {i}", "status": "publish"},
            "POST",
        )
    status, page = visitor.request("/?s=quorum")
    assert "Marmots replicate SQLite" in page and "Filler number" not in page and "Found: 1" in page
    status, page = visitor.request("/")
    first_page = re.findall(r'<h2 class="entry-title">([^<]+)</h2>', page)
    assert len(first_page) == 10 and "Older posts" in page
    status, page = visitor.request("/?paged=2")
    second_page = re.findall(r'<h2 class="entry-title">([^<]+)</h2>', page)
    # 13 user posts + WordPress's own "Hello world!" = 14: 10 on page one, 4 on page two, no overlap
    assert len(second_page) == 4 and not set(first_page) & set(second_page)
    assert "Found: 14" in page

    # category archive lists only the categorised post
    status, page = visitor.request(f"/?cat={category['id']}")
    titles = re.findall(r'<h2 class="entry-title">([^<]+)</h2>', page)
    assert titles == ["Marmots replicate SQLite"] and "Category: Rodents" in page
    db.close()
    # WordPress swallows some SQL errors: the node's log must show none but the installer's probes
    # for tables that do not exist yet.
    failures = [line for line in node.log_path.read_text().splitlines() if "statement failed" in line]
    unexpected = [line for line in failures if ": 1146 " not in line]
    assert unexpected == [], "\n".join(unexpected[:20])
