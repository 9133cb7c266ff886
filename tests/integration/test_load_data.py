"""LOAD DATA LOCAL INFILE through real clients (PyMySQL and the mysql CLI)."""

from __future__ import annotations

import shutil
import subprocess

import pymysql
import pytest

from tests.support import connect


def test_load_data_local_tsv_defaults(node, tmp_path):
    c = connect(node)
    cur = c.cursor()
    cur.execute("DROP TABLE IF EXISTS loaded")
    cur.execute("CREATE TABLE loaded (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(40), note TEXT)")
    path = tmp_path / "rows.tsv"
    path.write_text("0\talice\tfirst\\tline\n0\tbob\t\\N\n0\tcarol\tback\\\\slash\n", encoding="utf-8")
    n = cur.execute(f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE loaded")
    assert n == 3
    cur.execute("SELECT name, note FROM loaded ORDER BY name")
    assert cur.fetchall() == (("alice", "first\tline"), ("bob", None), ("carol", "back\\slash"))
    cur.execute("SELECT COUNT(DISTINCT id) FROM loaded WHERE id > 1000000")
    assert cur.fetchone() == (3,)  # AUTO_INCREMENT ids generated for 0
    c.close()


def test_load_data_local_csv_options(node, tmp_path):
    c = connect(node)
    cur = c.cursor()
    cur.execute("DROP TABLE IF EXISTS csv_t")
    cur.execute("CREATE TABLE csv_t (id INT PRIMARY KEY, title VARCHAR(40), price DECIMAL(8,2))")
    path = tmp_path / "rows.csv"
    path.write_text(
        'id,title,price\r\n1,"Hello, world",1.50\r\n2,"She said ""hi""",2\r\n3,NULL,NULL\r\n',
        encoding="utf-8",
    )
    n = cur.execute(
        f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE csv_t FIELDS TERMINATED BY ',' "
        "OPTIONALLY ENCLOSED BY '\"' LINES TERMINATED BY '\\r\\n' IGNORE 1 LINES (id, title, price)"
    )
    assert n == 3
    cur.execute("SELECT id, title, price FROM csv_t ORDER BY id")
    rows = cur.fetchall()
    assert [r[:2] for r in rows] == [(1, "Hello, world"), (2, 'She said "hi"'), (3, None)]
    assert str(rows[0][2]) == "1.50" and rows[2][2] is None
    path.write_text("1,dup,9\n4,new,4\n", encoding="utf-8")
    n = cur.execute(f"LOAD DATA LOCAL INFILE '{path}' IGNORE INTO TABLE csv_t FIELDS TERMINATED BY ','")
    assert n == 1  # the duplicate key is skipped
    n = cur.execute(f"LOAD DATA LOCAL INFILE '{path}' REPLACE INTO TABLE csv_t FIELDS TERMINATED BY ','")
    cur.execute("SELECT title FROM csv_t WHERE id = 1")
    assert cur.fetchone() == ("dup",)
    c.close()


def test_load_data_refused_without_local_or_client_permission(node, tmp_path):
    c = connect(node)
    with pytest.raises(pymysql.err.MySQLError) as ei:
        c.cursor().execute(f"LOAD DATA INFILE '{tmp_path}/x' INTO TABLE csv_t")
    assert ei.value.args[0] == 1290
    c.close()
    c = connect(node, local_infile=False)  # the client does not allow LOCAL INFILE
    with pytest.raises(pymysql.err.MySQLError) as ei:
        c.cursor().execute(f"LOAD DATA LOCAL INFILE '{tmp_path}/x' INTO TABLE csv_t")
    assert ei.value.args[0] == 3948
    c.cursor().execute("SELECT 1")
    c.close()


@pytest.mark.skipif(shutil.which("mysql") is None, reason="needs the mysql client (mariadb-client)")
def test_load_data_with_mysql_cli(node, tmp_path):
    path = tmp_path / "cli.tsv"
    path.write_text("10\tcli row\n11\tanother\n", encoding="utf-8")
    sql = (
        "DROP TABLE IF EXISTS cli_load; CREATE TABLE cli_load (id INT PRIMARY KEY, v TEXT); "
        f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE cli_load; SELECT COUNT(*) FROM cli_load;"
    )
    out = subprocess.run(
        [
            "mysql",
            "--no-defaults",
            "-h127.0.0.1",
            f"-P{node.mysql_port}",
            "-uroot",
            "--skip-ssl",
            "--local-infile=1",
            "marmot",
            "-N",
            "-e",
            sql,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "2"
