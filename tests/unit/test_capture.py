"""ChangeCapture: one net change per row key per transaction, from SQLite's preupdate hook."""

from __future__ import annotations

from collections.abc import Iterator

import apsw
import pytest

from marmot.engine.capture import CaptureError, ChangeCapture
from marmot.replication.changes import RowChange
from marmot.storage.rowkey import SchemaCache, decode_row_key, encode_row_key

SCHEMA = """
CREATE TABLE kv(id INTEGER PRIMARY KEY, k TEXT, v INT);
CREATE TABLE names(name TEXT PRIMARY KEY COLLATE NOCASE, n INT);
CREATE TABLE comp(a TEXT, b INT, v, PRIMARY KEY (b, a));
CREATE TABLE log(x, y);
CREATE TABLE parent(id INTEGER PRIMARY KEY, v);
CREATE TABLE child(id INTEGER PRIMARY KEY, pid INT REFERENCES parent(id) ON DELETE CASCADE ON UPDATE CASCADE);
CREATE TABLE uniq(id INTEGER PRIMARY KEY, u TEXT UNIQUE);
CREATE TABLE __marmot_internal(k PRIMARY KEY, v);
CREATE TABLE audit(id INTEGER PRIMARY KEY, what TEXT);
CREATE TRIGGER kv_audit AFTER DELETE ON kv BEGIN INSERT INTO audit(what) VALUES ('deleted ' || old.id); END;
"""


@pytest.fixture
def db() -> Iterator[apsw.Connection]:
    c = apsw.Connection(":memory:")
    c.execute("PRAGMA foreign_keys=ON")
    c.execute(SCHEMA)
    yield c
    c.close()


def run(db: apsw.Connection, *statements: str, setup: tuple[str, ...] = ()) -> list[RowChange]:
    """Run ``setup`` uncaptured, then ``statements`` in one captured transaction; return the changes."""
    for s in setup:
        db.execute(s)
    cap = ChangeCapture()
    cap.start(db, 0)
    db.execute("BEGIN")
    try:
        for s in statements:
            db.execute(s)
        return cap.changes()
    finally:
        db.execute("ROLLBACK")
        cap.stop()


def summary(changes: list[RowChange]) -> list[tuple[str, str, list[object]]]:
    return [(c.op, c.table, decode_row_key(c.key)[1]) for c in changes]


# -- single statements ----------------------------------------------------------------------------


def test_insert_update_delete_images(db: apsw.Connection) -> None:
    db.execute("INSERT INTO kv VALUES (1, 'a', 10), (2, 'b', 20)")
    ch = run(
        db,
        "INSERT INTO kv VALUES (3, 'c', 30)",
        "UPDATE kv SET v = 11 WHERE id = 1",
        "DELETE FROM kv WHERE id = 2",
    )
    by_op = {c.op: c for c in ch if c.table == "kv"}
    assert by_op["INSERT"] == RowChange(
        "kv", "INSERT", encode_row_key("kv", [3]), None, {"id": 3, "k": "c", "v": 30}
    )
    assert by_op["UPDATE"] == RowChange(
        "kv", "UPDATE", encode_row_key("kv", [1]), {"id": 1, "k": "a", "v": 10}, {"id": 1, "k": "a", "v": 11}
    )
    assert by_op["DELETE"] == RowChange(
        "kv", "DELETE", encode_row_key("kv", [2]), {"id": 2, "k": "b", "v": 20}, None
    )


def test_first_touch_order(db: apsw.Connection) -> None:
    db.execute("INSERT INTO kv VALUES (1, 'a', 1)")
    ch = run(
        db,
        "INSERT INTO kv VALUES (5, 'x', 0)",
        "UPDATE kv SET v = 2 WHERE id = 1",
        "INSERT INTO log VALUES (1, 2)",
        "UPDATE kv SET v = 9 WHERE id = 5",
    )
    assert summary(ch) == [("INSERT", "kv", [5]), ("UPDATE", "kv", [1]), ("INSERT", "log", [1])]
    assert ch[0].new == {"id": 5, "k": "x", "v": 9}


def test_autoassigned_integer_primary_key_is_in_key_and_image(db: apsw.Connection) -> None:
    ch = run(db, "INSERT INTO kv(k, v) VALUES ('auto', 1)")
    assert summary(ch) == [("INSERT", "kv", [1])]
    assert ch[0].new == {"id": 1, "k": "auto", "v": 1}


def test_rowid_table_keys_are_rowids(db: apsw.Connection) -> None:
    ch = run(db, "INSERT INTO log VALUES ('a', 1), ('b', 2)", "DELETE FROM log WHERE x = 'a'")
    assert summary(ch) == [("INSERT", "log", [2])]  # rowid 1 was inserted and deleted: cancelled


def test_composite_primary_key_in_declared_order(db: apsw.Connection) -> None:
    ch = run(db, "INSERT INTO comp VALUES ('x', 7, NULL)")
    assert summary(ch) == [("INSERT", "comp", [7, "x"])]


# -- merging per key ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statements", "expected_op", "old_v", "new_v"),
    [
        (("INSERT INTO kv VALUES (9, 'n', 1)", "UPDATE kv SET v = 2 WHERE id = 9"), "INSERT", None, 2),
        (("UPDATE kv SET v = 2 WHERE id = 1", "UPDATE kv SET v = 3 WHERE id = 1"), "UPDATE", 1, 3),
        (("UPDATE kv SET v = 2 WHERE id = 1", "DELETE FROM kv WHERE id = 1"), "DELETE", 1, None),
        (("DELETE FROM kv WHERE id = 1", "INSERT INTO kv VALUES (1, 'again', 5)"), "UPDATE", 1, 5),
        (("REPLACE INTO kv VALUES (1, 'r', 7)",), "UPDATE", 1, 7),
        (("INSERT INTO kv VALUES (1, 'u', 8) ON CONFLICT(id) DO UPDATE SET v = excluded.v",), "UPDATE", 1, 8),
        (
            ("INSERT OR REPLACE INTO kv VALUES (1, 'r', 1)", "REPLACE INTO kv VALUES (1, 'r', 4)"),
            "UPDATE",
            1,
            4,
        ),
    ],
)
def test_merge_rules(
    db: apsw.Connection, statements: tuple[str, ...], expected_op: str, old_v: int | None, new_v: int | None
) -> None:
    ch = [c for c in run(db, *statements, setup=("INSERT INTO kv VALUES (1, 'a', 1)",)) if c.table == "kv"]
    assert len(ch) == 1
    c = ch[0]
    assert c.op == expected_op
    assert (c.old or {}).get("v") == old_v
    assert (c.new or {}).get("v") == new_v


def test_insert_then_delete_cancels(db: apsw.Connection) -> None:
    assert run(db, "INSERT INTO comp VALUES ('q', 1, 0)", "DELETE FROM comp") == []


def test_insert_delete_insert_is_an_insert(db: apsw.Connection) -> None:
    ch = run(
        db, "INSERT INTO comp VALUES ('q', 1, 0)", "DELETE FROM comp", "INSERT INTO comp VALUES ('q', 1, 5)"
    )
    assert [(c.op, c.new) for c in ch] == [("INSERT", {"a": "q", "b": 1, "v": 5})]


def test_replace_on_a_collated_key_is_one_update(db: apsw.Connection) -> None:
    # 'Bob' and 'bob' are one primary key under NOCASE: REPLACE fires DELETE('Bob') + INSERT('bob')
    ch = run(db, "REPLACE INTO names VALUES ('bob', 2)", setup=("INSERT INTO names VALUES ('Bob', 1)",))
    assert len(ch) == 1
    assert (ch[0].op, ch[0].old, ch[0].new) == ("UPDATE", {"name": "Bob", "n": 1}, {"name": "bob", "n": 2})


def test_replace_that_removes_another_row_via_unique(db: apsw.Connection) -> None:
    ch = run(db, "REPLACE INTO uniq VALUES (2, 'taken')", setup=("INSERT INTO uniq VALUES (1, 'taken')",))
    assert summary(ch) == [("DELETE", "uniq", [1]), ("INSERT", "uniq", [2])]


def test_primary_key_change_is_delete_plus_insert(db: apsw.Connection) -> None:
    ch = run(db, "UPDATE kv SET id = 2 WHERE id = 1", setup=("INSERT INTO kv VALUES (1, 'a', 1)",))
    assert summary(ch) == [("DELETE", "kv", [1]), ("INSERT", "kv", [2])]
    assert ch[0].old == {"id": 1, "k": "a", "v": 1}
    assert ch[1].new == {"id": 2, "k": "a", "v": 1}


def test_primary_key_change_and_back_is_one_update(db: apsw.Connection) -> None:
    ch = run(
        db,
        "UPDATE kv SET id = 2, v = 5 WHERE id = 1",
        "UPDATE kv SET id = 1 WHERE id = 2",
        setup=("INSERT INTO kv VALUES (1, 'a', 1)",),
    )
    assert [(c.op, c.old, c.new) for c in ch] == [
        ("UPDATE", {"id": 1, "k": "a", "v": 1}, {"id": 1, "k": "a", "v": 5})
    ]


def test_composite_and_rowid_key_changes(db: apsw.Connection) -> None:
    ch = run(
        db,
        "UPDATE comp SET a = 'z' WHERE b = 1",
        "UPDATE log SET rowid = 10",
        setup=("INSERT INTO comp VALUES ('a', 1, 0)", "INSERT INTO log VALUES ('l', 1)"),
    )
    assert summary(ch) == [
        ("DELETE", "comp", [1, "a"]),
        ("INSERT", "comp", [1, "z"]),
        ("DELETE", "log", [1]),
        ("INSERT", "log", [10]),
    ]


def test_case_only_change_of_a_nocase_key_is_an_update(db: apsw.Connection) -> None:
    ch = run(db, "UPDATE names SET name = 'ALICE'", setup=("INSERT INTO names VALUES ('alice', 1)",))
    assert [(c.op, c.new) for c in ch] == [("UPDATE", {"name": "ALICE", "n": 1})]


# -- what is and is not captured ------------------------------------------------------------------


def test_fk_cascades_and_triggers_are_captured(db: apsw.Connection) -> None:
    ch = run(
        db,
        "DELETE FROM parent WHERE id = 1",
        "DELETE FROM kv WHERE id = 3",
        setup=(
            "INSERT INTO parent VALUES (1, 'p')",
            "INSERT INTO child VALUES (10, 1), (11, 1)",
            "INSERT INTO kv VALUES (3, 'x', 0)",
        ),
    )
    assert summary(ch) == [
        ("DELETE", "parent", [1]),
        ("DELETE", "child", [10]),
        ("DELETE", "child", [11]),
        ("DELETE", "kv", [3]),
        ("INSERT", "audit", [1]),
    ]


def test_on_update_cascade_is_captured(db: apsw.Connection) -> None:
    ch = run(
        db,
        "UPDATE parent SET id = 2",
        setup=("INSERT INTO parent VALUES (1, 'p')", "INSERT INTO child VALUES (10, 1)"),
    )
    assert summary(ch) == [("DELETE", "parent", [1]), ("INSERT", "parent", [2]), ("UPDATE", "child", [10])]
    assert ch[2].new == {"id": 10, "pid": 2}


def test_internal_and_temp_tables_are_ignored(db: apsw.Connection) -> None:
    db.execute("CREATE TEMP TABLE scratch(x)")
    db.execute("ATTACH ':memory:' AS information_schema")
    db.execute("CREATE TABLE information_schema.tables(x)")
    ch = run(
        db,
        "INSERT INTO __marmot_internal VALUES (1, 2)",
        "INSERT INTO __MARMOT_internal VALUES (2, 2)",
        "INSERT INTO scratch VALUES (1)",
        "INSERT INTO information_schema.tables VALUES (1)",
    )
    assert ch == []


def test_write_to_another_attached_database_fails_loudly(db: apsw.Connection) -> None:
    db.execute("ATTACH ':memory:' AS other")
    db.execute("CREATE TABLE other.t(x)")
    with pytest.raises(CaptureError, match="other.t"):
        run(db, "INSERT INTO other.t VALUES (1)")


def test_virtual_generated_columns_fall_back_to_reads(db: apsw.Connection) -> None:
    db.execute(
        "CREATE TABLE g(id INTEGER PRIMARY KEY, v TEXT, n INT AS (length(v)) VIRTUAL, s INT AS (length(v) * 2) STORED)"
    )
    ch = run(
        db,
        "INSERT INTO g(id, v) VALUES (2, 'abc')",
        "UPDATE g SET v = 'hello' WHERE id = 1",
        "UPDATE g SET v = 'xy' WHERE id = 2",
        "DELETE FROM g WHERE id = 3",
        setup=("INSERT INTO g(id, v) VALUES (1, 'a'), (3, 'zzz')",),
    )
    assert [(c.op, c.old, c.new) for c in ch] == [
        ("INSERT", None, {"id": 2, "v": "xy", "s": 4}),
        ("UPDATE", {"id": 1, "v": "a", "s": 2}, {"id": 1, "v": "hello", "s": 10}),
        ("DELETE", {"id": 3, "v": "zzz", "s": 6}, None),
    ]


def test_shadow_tables_of_virtual_tables_fail_loudly(db: apsw.Connection) -> None:
    db.execute("CREATE VIRTUAL TABLE docs USING fts5(body)")
    with pytest.raises(CaptureError, match="virtual table"):
        run(db, "INSERT INTO docs VALUES ('hello world')")


def test_errors_in_the_hook_never_raise_into_sqlite(db: apsw.Connection) -> None:
    db.execute("CREATE TABLE wg(k TEXT PRIMARY KEY, v TEXT, n INT AS (length(v))) WITHOUT ROWID")
    cap = ChangeCapture()
    cap.start(db)
    db.execute("BEGIN")
    db.execute("INSERT INTO wg(k, v) VALUES ('a', 'b')")  # must not raise here
    with pytest.raises(CaptureError, match="wg"):
        cap.changes()
    db.execute("ROLLBACK")
    cap.stop()


# -- lifecycle ------------------------------------------------------------------------------------


def test_mark_and_rollback_to_drop_a_failed_statement(db: apsw.Connection) -> None:
    db.execute("INSERT INTO uniq VALUES (100, 'dup')")
    cap = ChangeCapture()
    cap.start(db)
    db.execute("BEGIN")
    db.execute("INSERT INTO uniq VALUES (1, 'one')")
    m = cap.mark()
    with pytest.raises(apsw.ConstraintError):
        # rows 2 and 3 fire the hook before the UNIQUE failure rolls the statement back
        db.execute("INSERT INTO uniq VALUES (2, 'two'), (3, 'three'), (4, 'dup')")
    assert len(cap) == 3
    cap.rollback_to(m)
    assert summary(cap.changes()) == [("INSERT", "uniq", [1])]
    db.execute("ROLLBACK")
    cap.stop()


def test_stop_reset_and_restart(db: apsw.Connection) -> None:
    cap = ChangeCapture()
    cap.start(db)
    assert cap.active
    with pytest.raises(RuntimeError):
        cap.start(db)
    db.execute("INSERT INTO kv VALUES (1, 'a', 1)")
    cap.stop()
    assert not cap.active
    db.execute("INSERT INTO kv VALUES (2, 'b', 2)")  # not captured
    assert summary(cap.changes()) == [("INSERT", "kv", [1])]
    cap.reset()
    assert cap.changes() == []
    cap.start(db)
    db.execute("UPDATE kv SET v = 3 WHERE id = 2")
    assert summary(cap.changes()) == [("UPDATE", "kv", [2])]
    cap.stop()
    assert ChangeCapture().changes() == []


def test_schema_generation_invalidates_the_cache(db: apsw.Connection) -> None:
    schema = SchemaCache()
    cap = ChangeCapture(schema)
    cap.start(db, 1)
    db.execute("INSERT INTO kv VALUES (1, 'a', 1)")
    assert cap.changes()[0].new == {"id": 1, "k": "a", "v": 1}
    cap.stop()
    cap.reset()
    db.execute("ALTER TABLE kv ADD COLUMN extra DEFAULT 'd'")
    cap.start(db, 1)  # stale generation: images no longer match the cached columns
    db.execute("UPDATE kv SET v = 2")
    with pytest.raises(CaptureError, match="schema"):
        cap.changes()
    cap.stop()
    cap.start(db, 2)
    assert cap.changes()[0].new == {"id": 1, "k": "a", "v": 2, "extra": "d"}
    cap.stop()
