"""Per-table schema fingerprints (storage/schema_fingerprint.py).

Why: a replicated write is refused by a participant whose fingerprint of a table it changes differs from
the coordinator's, and a DDL's intents cover the tables whose fingerprints it changes. So a DDL must
change exactly the fingerprints of the tables it touches (its indexes and triggers included), equal
schemas must give equal fingerprints on different files, and names compare case-insensitively.
"""

from __future__ import annotations

import apsw

from marmot.storage.schema_fingerprint import all_fingerprints, changed_tables, table_fingerprints


def _db(*ddl: str) -> apsw.Connection:
    conn = apsw.Connection(":memory:")
    for sql in ddl:
        conn.execute(sql)
    return conn


BASE = ("CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT)", "CREATE TABLE b (id INTEGER PRIMARY KEY, w INT)")


def _changes(conn: apsw.Connection, sql: str) -> list[str]:
    before = all_fingerprints(conn)
    conn.execute(sql)
    return changed_tables(before, all_fingerprints(conn))


def test_same_schema_same_fingerprint_across_files() -> None:
    one, two = _db(*BASE), _db(*BASE)
    assert table_fingerprints(one, ["a", "b"]) == table_fingerprints(two, ["A", "B"])
    assert table_fingerprints(one, ["a"])["a"] != table_fingerprints(one, ["b"])["b"]


def test_missing_table_is_none() -> None:
    assert table_fingerprints(_db(*BASE), ["nope"]) == {"nope": None}
    assert table_fingerprints(_db(), []) == {}


def test_ddl_changes_only_the_tables_it_touches() -> None:
    conn = _db(*BASE)
    assert _changes(conn, "CREATE INDEX a_v ON a (v)") == ["a"]
    assert _changes(conn, "ALTER TABLE b ADD COLUMN x TEXT") == ["b"]
    assert _changes(conn, "CREATE TABLE c (id INTEGER PRIMARY KEY)") == ["c"]
    assert _changes(conn, "CREATE TRIGGER tr AFTER INSERT ON a BEGIN INSERT INTO c VALUES (NEW.id); END") == [
        "a"
    ]
    # the rename rewrites a's trigger, which names c: a's schema changed too
    assert _changes(conn, "ALTER TABLE c RENAME TO d") == ["a", "c", "d"]
    assert _changes(conn, "DROP TABLE d") == ["d"]
    assert _changes(conn, "CREATE TABLE IF NOT EXISTS a (id INTEGER PRIMARY KEY, v TEXT)") == []


def test_index_changes_the_fingerprint_of_its_table_only() -> None:
    conn = _db(*BASE)
    before = table_fingerprints(conn, ["a", "b"])
    conn.execute("CREATE UNIQUE INDEX b_w ON b (w)")
    after = table_fingerprints(conn, ["a", "b"])
    assert after["a"] == before["a"] and after["b"] != before["b"]
