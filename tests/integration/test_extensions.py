"""LOAD EXTENSION and [extensions] always_loaded, with the sqlite-vec wheel as a real extension."""

from __future__ import annotations

import shutil
from pathlib import Path

import pymysql
import pytest

from marmot.testing import make_node
from tests.support import connect

sqlite_vec = pytest.importorskip("sqlite_vec")


@pytest.fixture(scope="module")
def ext_node(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ext")
    ext_dir = tmp / "extensions"
    ext_dir.mkdir()
    shutil.copy(Path(sqlite_vec.loadable_path() + ".so"), ext_dir / "vec0.so")
    (tmp / "outside.so").write_bytes(b"not an extension")
    (ext_dir / "escape.so").symlink_to(tmp / "outside.so")
    n = make_node(tmp, extra_toml=f'[extensions]\ndirectory = "{ext_dir}"\n').start()
    yield n
    n.stop()


def test_load_extension_and_use_it(ext_node):
    c = connect(ext_node)
    cur = c.cursor()
    with pytest.raises(pymysql.err.MySQLError):
        cur.execute("SELECT vec_version()")  # not loaded yet
    cur.execute("LOAD EXTENSION vec0")
    cur.execute("SELECT vec_version()")
    assert cur.fetchone()[0].startswith("v0.")
    cur.execute("CREATE TABLE docs (id INT PRIMARY KEY, title TEXT)")  # a new connection keeps it too
    cur.execute("SET marmot_transpilation = OFF")
    # The nodes apply replicated DDL without session extensions: a vec0 table in the database is refused
    # (it could be created on no other node), a TEMPORARY one belongs to the session and works
    with pytest.raises(pymysql.err.MySQLError) as ei:
        cur.execute("CREATE VIRTUAL TABLE vecs USING vec0(embedding float[2])")
    assert ei.value.args[0] == 1105 and "vec0" in ei.value.args[1]
    cur.execute("CREATE VIRTUAL TABLE temp.vecs USING vec0(embedding float[2])")
    cur.execute("INSERT INTO temp.vecs(rowid, embedding) VALUES (1, '[0.0, 1.0]'), (2, '[1.0, 0.0]')")
    cur.execute("SELECT rowid FROM vecs WHERE embedding MATCH '[0.9, 0.1]' AND k = 1")
    assert cur.fetchone() == (2,)
    c.close()


@pytest.mark.parametrize("name", ["../outside", "/etc/passwd", "sub/dir", "escape", "missing"])
def test_path_safety(ext_node, name):
    c = connect(ext_node)
    with pytest.raises(pymysql.err.MySQLError) as ei:
        c.cursor().execute(f"LOAD EXTENSION {name}")
    assert ei.value.args[0] == 1105
    c.cursor().execute("SELECT 1")  # connection still usable
    c.close()


def test_always_loaded(tmp_path):
    ext_dir = tmp_path / "extensions"
    ext_dir.mkdir()
    shutil.copy(Path(sqlite_vec.loadable_path() + ".so"), ext_dir / "vec0.so")
    n = make_node(
        tmp_path, extra_toml=f'[extensions]\ndirectory = "{ext_dir}"\nalways_loaded = ["vec0"]\n'
    ).start()
    try:
        c = connect(n)
        cur = c.cursor()
        cur.execute("SELECT vec_version()")
        assert cur.fetchone()[0].startswith("v0.")
        c.close()
    finally:
        n.stop()


def test_disabled_without_directory(conn):
    with pytest.raises(pymysql.err.MySQLError) as ei:
        conn.cursor().execute("LOAD EXTENSION vec0")
    assert "disabled" in ei.value.args[1]
