"""The ``mysql`` command-line client (Debian's mariadb-client) against a real node process.

Batch mode (``-e`` or a script on stdin) prints tab-separated rows with ``\\``, NUL, tab and newline
escaped (``\\\\``, ``\\0``, ``\\t``, ``\\n``) and NULL as ``NULL``; ``--raw`` turns the escaping off. The
tests compare stdout byte for byte, so a wrong column value, NULL or escape shows up directly.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

MYSQL = shutil.which("mysql")
pytestmark = pytest.mark.skipif(
    MYSQL is None, reason="the mysql client (Debian mariadb-client) is not installed"
)


def mysql(
    node,
    *args: str,
    stdin: bytes | None = None,
    tcp: bool = True,
    check: bool = True,
    database: str | None = "marmot",
) -> subprocess.CompletedProcess[bytes]:
    """Run the CLI; ``--no-defaults`` keeps any local my.cnf out of the test."""
    cmd = [MYSQL, "--no-defaults", "-uroot", "--connect-timeout=5"]
    if tcp:
        cmd += ["-h127.0.0.1", f"-P{node.mysql_port}", "--skip-ssl", "--protocol=TCP"]
    else:
        cmd += [f"-S{node.unix_socket}", "--protocol=SOCKET"]
    if database:
        cmd.append(f"-D{database}")
    proc = subprocess.run(
        [*cmd, *args], input=stdin if stdin is not None else b"", capture_output=True, timeout=20, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"mysql exited {proc.returncode}: {proc.stderr.decode(errors='replace')}")
    return proc


def test_show_databases(node):
    out = mysql(node, "-e", "SHOW DATABASES", database=None).stdout.decode().splitlines()
    assert out[0] == "Database" and "marmot" in out[1:]
    assert not any(line.startswith("__marmot") for line in out)


def test_batch_output_quoting_and_escaping(node):
    setup = (
        "DROP TABLE IF EXISTS cli_vals; "
        "CREATE TABLE cli_vals (id INT PRIMARY KEY, s VARCHAR(100), b VARBINARY(16), n BIGINT, f DOUBLE, "
        "d DECIMAL(10,2), dd DATE, ts DATETIME); "
        "INSERT INTO cli_vals VALUES "
        "(1, 'it''s', X'00FF41', 9007199254740991, 1.5, 12345.67, '2024-02-29', '2024-01-02 03:04:05'), "
        "(2, 'say \"hi\"', '', -9007199254740991, -0.1, -0.05, NULL, NULL), "
        "(3, 'back\\\\slash', NULL, NULL, NULL, 1.1, '1970-01-01', '1999-12-31 23:59:59'), "
        "(4, '\\\\n is not \\n', 'x', 0, 1e300, 0, NULL, NULL), "
        "(5, 'trail\\\\', NULL, NULL, NULL, NULL, NULL, NULL), "
        "(6, 'é中文🦫\\ttab', NULL, NULL, NULL, NULL, NULL, NULL), "
        "(7, '', NULL, NULL, NULL, NULL, NULL, NULL), "
        "(8, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"
    )
    mysql(node, "-e", setup)
    query = "SELECT id, s, b, n, f, d, dd, ts FROM cli_vals ORDER BY id"
    escaped = mysql(node, "-e", query).stdout
    assert escaped.split(b"\n") == [
        b"id\ts\tb\tn\tf\td\tdd\tts",
        b"1\tit's\t\\0\xffA\t9007199254740991\t1.5\t12345.67\t2024-02-29\t2024-01-02 03:04:05",
        b'2\tsay "hi"\t\t-9007199254740991\t-0.1\t-0.05\tNULL\tNULL',
        b"3\tback\\\\slash\tNULL\tNULL\tNULL\t1.10\t1970-01-01\t1999-12-31 23:59:59",
        b"4\t\\\\n is not \\n\tx\t0\t1e300\t0.00\tNULL\tNULL",
        b"5\ttrail\\\\\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL",
        "6\té中文🦫\\ttab\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL".encode(),
        b"7\t\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL",
        b"8\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL",
        b"",
    ]
    raw = mysql(
        node, "--raw", "-N", "-e", "SELECT s, b FROM cli_vals WHERE id IN (1, 3, 4, 5, 6) ORDER BY id"
    ).stdout
    assert raw == (
        b"it's\t\x00\xffA\nback\\slash\tNULL\n\\n is not \n\tx\ntrail\\\tNULL\n"
        + "é中文🦫\ttab\tNULL\n".encode()
    )
    assert (
        mysql(node, "-N", "-e", "SELECT HEX(b), LENGTH(b) FROM cli_vals WHERE id = 1").stdout
        == b"00FF41\t3\n"
    )


def test_unix_socket(node):
    if not node.unix_socket:
        pytest.skip("the node has no unix socket")
    out = mysql(node, "-N", "-e", "SELECT DATABASE(), 1 + 1, 'é中文🦫'", tcp=False).stdout
    assert out == "marmot\t2\té中文🦫\n".encode()
    out = mysql(node, "-e", "SHOW DATABASES", tcp=False, database=None).stdout.decode().splitlines()
    assert out[0] == "Database" and "marmot" in out


def test_default_auth_native_password(node):
    out = mysql(
        node, "--default-auth=mysql_native_password", "-N", "-e", "SELECT CURRENT_USER() LIKE 'root@%'"
    )
    assert out.stdout == b"1\n"


SCRIPT = b"""-- a small script, as `mysql < file.sql` runs it
DROP TABLE IF EXISTS cli_script;
CREATE TABLE cli_script (
  id BIGINT AUTO_INCREMENT PRIMARY KEY,
  note VARCHAR(50) NOT NULL  # MySQL comment styles
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO cli_script (note) VALUES ('a;b'), ('c''d');  /* a ; inside a string does not split */
SELECT note FROM cli_script ORDER BY id;
START TRANSACTION;
INSERT INTO cli_script (note) VALUES ('rolled back');
ROLLBACK;
BEGIN;
UPDATE cli_script SET note = CONCAT(note, '!') WHERE note = 'a;b';
COMMIT;
SELECT COUNT(*) AS n, MAX(note) AS last FROM cli_script;
SELECT LAST_INSERT_ID() > (SELECT MAX(id) FROM cli_script) AS kept;  -- a rollback keeps LAST_INSERT_ID()
DROP TABLE cli_script;
"""


def test_script_on_stdin(node):
    out = mysql(node, stdin=SCRIPT).stdout
    assert out == b"note\na;b\nc'd\nn\tlast\n2\tc'd\nkept\n1\n"


def test_errors(node):
    proc = mysql(node, "-e", "SELEC 1", check=False)
    assert proc.returncode == 1 and b"ERROR 1064 (42000)" in proc.stderr
    script = (
        b"DROP TABLE IF EXISTS cli_err; CREATE TABLE cli_err (id INT PRIMARY KEY);\n"
        b"INSERT INTO cli_err VALUES (1);\nINSERT INTO cli_err VALUES (1);\nINSERT INTO cli_err VALUES (2);\n"
    )
    proc = mysql(node, stdin=script, check=False)
    assert proc.returncode == 1
    assert b"ERROR 1062 (23000) at line 3" in proc.stderr
    assert mysql(node, "-N", "-e", "SELECT COUNT(*) FROM cli_err").stdout == b"1\n"  # stopped at line 3
    proc = mysql(node, "--force", stdin=script.replace(b"(2)", b"(3)"), check=False)
    assert b"ERROR 1062 (23000) at line 3" in proc.stderr  # reported, then the script goes on
    assert mysql(node, "-N", "-e", "SELECT id FROM cli_err ORDER BY id").stdout == b"1\n3\n"
    proc = mysql(node, "-e", "SELECT 1", database="no_such_db", check=False)
    assert proc.returncode == 1 and b"1049" in proc.stderr


def test_vertical_output(node):
    out = mysql(node, "-E", "-e", "SELECT 1 AS a, 'x''y' AS b, NULL AS c").stdout.decode()
    assert out.splitlines() == [
        "*************************** 1. row ***************************",
        "a: 1",
        "b: x'y",
        "c: NULL",
    ]
