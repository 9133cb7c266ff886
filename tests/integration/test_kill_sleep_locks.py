"""Statements applications send (issue 13 point 5) on one node: SLEEP, KILL [CONNECTION | QUERY] with the
ids of SHOW PROCESSLIST (Command, Time, State, Info), the user-level lock functions' MySQL answers and
errors, and version comments (``/*!NNNNN`` newer than 8.0.36 and MariaDB's ``/*M!`` are comments)."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time

import pymysql
import pytest

from tests.support import connect, wait_for


def _one(cur, sql: str) -> object:
    cur.execute(sql)
    return cur.fetchone()[0]


def _in_background(conn, sql: str) -> tuple[threading.Thread, list[object]]:
    out: list[object] = []

    def run() -> None:
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                out.append(cur.fetchone()[0])
        except pymysql.MySQLError as err:
            out.append(err.args)

    t = threading.Thread(target=run)
    t.start()
    return t, out


def _process(cur, cid: int) -> tuple:
    cur.execute("SHOW PROCESSLIST")
    return next(r for r in cur.fetchall() if r[0] == cid)


def test_sleep_returns_0_and_kill_query_makes_it_return_1(node):
    sleeper, admin = connect(node), connect(node)
    try:
        cur = admin.cursor()
        started = time.monotonic()
        assert _one(sleeper.cursor(), "SELECT SLEEP(0.3)") == 0
        assert time.monotonic() - started >= 0.25
        sid = _one(sleeper.cursor(), "SELECT CONNECTION_ID()")
        t, out = _in_background(sleeper, "SELECT SLEEP(60)")
        wait_for(lambda: _process(cur, sid)[6] == "User sleep", 10, "the sleep shows in the processlist")
        row = _process(cur, sid)
        assert row[4] == "Query" and row[7] == "SELECT SLEEP(60)"
        time.sleep(1.2)
        assert _process(cur, sid)[5] >= 1  # Time: seconds in the command
        cur.execute(f"KILL QUERY {sid}")
        t.join(10)
        assert out == [1]
        assert _one(sleeper.cursor(), "SELECT 5") == 5  # the connection lives on
        row = _process(cur, sid)
        assert (row[4], row[6], row[7]) == ("Sleep", "", None)
    finally:
        sleeper.close()
        admin.close()


def test_kill_query_interrupts_a_lock_wait_with_1317(node):
    holder, waiter, admin = connect(node), connect(node), connect(node)
    try:
        assert _one(holder.cursor(), "SELECT GET_LOCK('kq', 0)") == 1
        wid = _one(waiter.cursor(), "SELECT CONNECTION_ID()")
        t, out = _in_background(waiter, "SELECT GET_LOCK('kq', 60)")
        cur = admin.cursor()
        wait_for(lambda: _process(cur, wid)[6] == "User lock", 10, "the wait shows in the processlist")
        cur.execute(f"KILL QUERY {wid}")
        t.join(10)
        assert out == [(1317, "Query execution was interrupted")]
        assert _one(waiter.cursor(), "SELECT IS_USED_LOCK('kq')") == _one(
            holder.cursor(), "SELECT CONNECTION_ID()"
        )
    finally:
        for c in (holder, waiter, admin):
            c.close()


def test_kill_connection_closes_it_and_frees_its_locks(node):
    victim, admin = connect(node), connect(node)
    try:
        cur = admin.cursor()
        vid = _one(victim.cursor(), "SELECT CONNECTION_ID()")
        assert _one(victim.cursor(), "SELECT GET_LOCK('kc', 0)") == 1
        cur.execute(f"KILL {vid}")
        with pytest.raises(pymysql.MySQLError):
            victim.cursor().execute("SELECT 1")
        wait_for(lambda: _one(cur, "SELECT IS_FREE_LOCK('kc')") == 1, 10, "the lock is freed")
        cur.execute("SHOW PROCESSLIST")
        assert vid not in [r[0] for r in cur.fetchall()]
        with pytest.raises(pymysql.MySQLError) as info:
            cur.execute("KILL CONNECTION 999999")
        assert info.value.args == (1094, "Unknown thread id: 999999")
    finally:
        admin.close()


def test_com_process_kill(node):
    victim, admin = connect(node), connect(node)
    vid = _one(victim.cursor(), "SELECT CONNECTION_ID()")
    admin.kill(vid)  # PyMySQL sends COM_PROCESS_KILL
    with pytest.raises(pymysql.MySQLError):
        victim.cursor().execute("SELECT 1")
    admin.close()


def test_lock_function_answers_and_errors(conn):
    cur = conn.cursor()
    cur.execute("SELECT GET_LOCK('a', 0) AS got, IS_USED_LOCK('a') used, IS_FREE_LOCK('b')")
    assert [d[0] for d in cur.description] == ["got", "used", "IS_FREE_LOCK('b')"]
    assert cur.fetchall() == ((1, _one(conn.cursor(), "SELECT CONNECTION_ID()"), 1),)
    cur.execute("DO GET_LOCK('b', 0)")
    assert _one(cur, "SELECT IS_FREE_LOCK('b') FROM DUAL") == 0
    assert _one(cur, "SELECT RELEASE_ALL_LOCKS()") == 2
    assert _one(cur, "SELECT RELEASE_LOCK('a')") is None
    for bad in ("SELECT GET_LOCK('', 1)", f"SELECT GET_LOCK('{'x' * 65}', 1)"):
        with pytest.raises(pymysql.MySQLError) as info:
            cur.execute(bad)
        assert info.value.args[0] == 3057
    with pytest.raises(pymysql.MySQLError) as info:
        cur.execute("SELECT SLEEP(1) FROM (SELECT 1) AS t")
    assert info.value.args[0] == 1235 and "SLEEP" in info.value.args[1]


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT 1 /*!80036 + 1 */", 2),
        ("SELECT 1 /*!80037 + 1 */", 1),
        ("SELECT 1 /*!90000 + 1 */", 1),
        ("SELECT 1 /*!40101 + 1 */", 2),
        ("SELECT 1 /*!+ 1 */", 2),
        ("SELECT 1 /*M!100100 + 1 */", 1),
    ],
)
def test_version_comments(conn, sql, expected):
    assert _one(conn.cursor(), sql) == expected


def test_comment_only_statements_of_other_servers_are_no_error(conn):
    cur = conn.cursor()
    cur.execute("/*M!999999\\- enable the sandbox mode */")
    cur.execute("/*!90000 SET @x = 1 */")
    assert _one(cur, "SELECT @x") is None
    with pytest.raises(pymysql.MySQLError) as info:
        cur.execute("/* just a comment */")
    assert info.value.args[0] == 1065


def test_lock_functions_as_prepared_statements(node):
    connector = pytest.importorskip("mysql.connector", reason="mysql-connector-python is not installed")
    c = connector.connect(
        host="127.0.0.1",
        port=node.mysql_port,
        user="root",
        password="",
        database="marmot",
        use_pure=True,
        autocommit=True,
    )
    other = connect(node)
    try:
        cur = c.cursor(prepared=True)  # COM_STMT_PREPARE / EXECUTE, '?' bound in the binary protocol
        cur.execute("SELECT GET_LOCK(?, ?)", ("prepared_lock", 0))
        assert cur.fetchall() == [(1,)]
        assert _one(other.cursor(), "SELECT IS_FREE_LOCK('prepared_lock')") == 0
        cur.execute("SELECT RELEASE_LOCK(?)", ("prepared_lock",))
        assert cur.fetchall() == [(1,)]
        assert _one(other.cursor(), "SELECT IS_FREE_LOCK('prepared_lock')") == 1
    finally:
        c.close()
        other.close()


def test_kill_query_of_itself_and_sleep_arguments(conn):
    cur = conn.cursor()
    cur.execute("KILL QUERY CONNECTION_ID()")  # nothing of its own is waiting: no effect
    assert _one(cur, "SELECT SLEEP(0)") == 0
    with pytest.raises(pymysql.MySQLError) as info:
        cur.execute("SELECT SLEEP(-1)")
    assert info.value.args[0] == 1210
    with pytest.raises(pymysql.MySQLError) as info:
        cur.execute("SELECT GET_LOCK('only_one_argument')")
    assert info.value.args[0] == 1582


def test_version_comments_through_the_mariadb_client(node):
    """What mariadb-dump writes (its sandbox line first, MariaDB-only and newer-MySQL-only statements)
    loads through the ``mysql`` CLI without an error."""
    mysql = shutil.which("mysql")
    if mysql is None:
        pytest.skip("the mysql client (Debian mariadb-client) is not installed")
    script = (
        b"/*M!999999\\- enable the sandbox mode */\n"
        b"/*!90000 SET @newer = 1 */;\n"
        b"/*M!100616 SET @maria = 1 */;\n"
        b"/*!40101 SET @older = 1 */;\n"
        b"SELECT @newer IS NULL, @maria IS NULL, @older;\n"
    )
    proc = subprocess.run(
        [
            mysql,
            "--no-defaults",
            "-uroot",
            "-h127.0.0.1",
            f"-P{node.mysql_port}",
            "--skip-ssl",
            "--protocol=TCP",
        ]
        + ["-Dmarmot", "-N"],
        input=script,
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert (proc.returncode, proc.stderr) == (0, b"")
    assert proc.stdout == b"1\t1\t1\n"
