"""PHP mysqli and PDO (Debian php-cli + php-mysql, i.e. mysqlnd) against a real node process.

Each scenario in ``php/client.php`` runs in its own ``php`` process, compares every value it reads with
``===`` against what MySQL 8.0 returns to the same call, and reports ``{"checks", "failures"}`` as JSON.
Covered: mysqli text queries with ``real_escape_string`` (also with MYSQLI_OPT_INT_AND_FLOAT_NATIVE, which
converts by column type), mysqli prepared statements (``bind_param`` once and re-``execute`` with changed
variables, ``get_result``, ``bind_result``/``fetch``, ``send_long_data``), ``insert_id``/``affected_rows``,
transactions, errors, ``multi_query``, the unix socket, and PDO with native (EMULATE_PREPARES false) and
emulated prepares (``bindValue``/``bindParam``, ``rowCount``, ``lastInsertId``, ``nextRowset``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

PHP = shutil.which("php")
SCRIPT = Path(__file__).parent / "php" / "client.php"


def _php_has(extension: str) -> bool:
    if PHP is None:
        return False
    out = subprocess.run([PHP, "-m"], capture_output=True, text=True, timeout=20, check=False).stdout
    return extension.lower() in {line.strip().lower() for line in out.splitlines()}


HAS_MYSQLI = _php_has("mysqli")
HAS_PDO_MYSQL = _php_has("pdo_mysql")


def _mysqli(name: str, *marks):
    skip = pytest.mark.skipif(not HAS_MYSQLI, reason="php-cli with the mysqli extension is not installed")
    return pytest.param(name, marks=(skip, *marks), id=name)


def _pdo(name: str, *marks):
    skip = pytest.mark.skipif(
        not HAS_PDO_MYSQL, reason="php-cli with the pdo_mysql extension is not installed"
    )
    return pytest.param(name, marks=(skip, *marks), id=name)


SCENARIOS = [
    _mysqli("mysqli_text"),
    _mysqli("mysqli_text_binary"),
    _mysqli("mysqli_text_min_bigint"),
    _mysqli("mysqli_prepared"),
    _mysqli("mysqli_insert_id_and_affected_rows"),
    _mysqli("mysqli_transactions"),
    _mysqli("mysqli_errors"),
    _mysqli("mysqli_multi_query"),
    _mysqli("mysqli_unix_socket"),
    _pdo("pdo_native"),
    _pdo("pdo_emulated"),
    _pdo("pdo_emulated_binary"),
    _pdo("pdo_emulated_min_bigint"),
]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_php(node, scenario):
    if scenario == "mysqli_unix_socket" and not node.unix_socket:
        pytest.skip("the node has no unix socket")
    proc = subprocess.run(
        [PHP, str(SCRIPT), scenario, str(node.mysql_port), node.unix_socket or ""],
        capture_output=True,
        timeout=30,
        check=False,
    )
    out = proc.stdout.decode("utf-8", "replace")
    assert proc.returncode == 0, (
        f"php exited {proc.returncode}: {out}{proc.stderr.decode('utf-8', 'replace')}"
    )
    report = json.loads(out.strip().splitlines()[-1])
    assert report["failures"] == []
    assert report["checks"] > 0
