"""Change entries: wire format round trip, strict decoding, and capture → encode → decode → apply.

The end-to-end tests run a transaction on one SQLite database under ChangeCapture, ship its changes
through the wire format, apply them to a second database with the same schema and starting rows, and
require both databases to have identical contents (every user table, rowids included, values compared
with their Python type so 1 ≠ 1.0, -0.0 ≠ 0.0 and TEXT ≠ BLOB).
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator

import apsw
import msgpack
import pytest

from marmot.engine.capture import ChangeCapture
from marmot.hlc import Timestamp, to_txn_id
from marmot.replication.apply.rows import ApplyError, apply_changes
from marmot.replication.changes import (
    ChangeFormatError,
    RowChange,
    TransactionChanges,
    decode_transaction,
    encode_transaction,
)
from marmot.storage.rowkey import SchemaCache, encode_row_key, load_table_schema

TS = Timestamp(1_767_225_600_123_456_789, 42, 3)

SCHEMA = """
CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT COLLATE NOCASE UNIQUE, score REAL, avatar BLOB);
CREATE TABLE counters(name TEXT PRIMARY KEY COLLATE NOCASE, n INT NOT NULL DEFAULT 0);
CREATE TABLE parent(id INTEGER PRIMARY KEY, v);
CREATE TABLE child(id INTEGER PRIMARY KEY, pid INT REFERENCES parent(id) ON DELETE CASCADE ON UPDATE CASCADE, v);
CREATE TABLE grandchild(id INTEGER PRIMARY KEY, cid INT REFERENCES child(id) ON DELETE CASCADE);
CREATE TABLE comp(tenant TEXT COLLATE NOCASE, day INT, tag BLOB, v, PRIMARY KEY (tenant, day, tag));
CREATE TABLE events(kind, payload);
CREATE TABLE vals(k TEXT PRIMARY KEY, t TEXT, b BLOB, i INTEGER, r REAL, a) WITHOUT ROWID;
CREATE TABLE seq(id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT);
CREATE TABLE posts(id INTEGER PRIMARY KEY, title TEXT, revision INT DEFAULT 0);
CREATE TABLE post_log(id INTEGER PRIMARY KEY, post INT, what TEXT);
CREATE TRIGGER posts_created AFTER INSERT ON posts BEGIN
  INSERT INTO post_log(post, what) VALUES (new.id, 'created');
END;
CREATE TRIGGER posts_revised AFTER UPDATE OF title ON posts BEGIN
  UPDATE posts SET revision = revision + 1 WHERE id = new.id;
END;
CREATE TABLE gen(id INTEGER PRIMARY KEY, v TEXT, n INT AS (length(v)) VIRTUAL, s INT AS (length(v) * 2) STORED);
CREATE TABLE slots(id INTEGER PRIMARY KEY, code TEXT UNIQUE);
CREATE TABLE __marmot_state(k PRIMARY KEY, v);
"""

BASE_ROWS = (
    "INSERT INTO users VALUES (1, 'ann', 1.5, x'00'), (2, 'bob', 2.0, NULL), (3, 'cid', NULL, x'ff00')",
    "INSERT INTO parent VALUES (1, 'p1'), (2, 'p2')",
    "INSERT INTO child VALUES (10, 1, 'c10'), (11, 1, 'c11'), (20, 2, 'c20')",
    "INSERT INTO grandchild VALUES (100, 10), (200, 20)",
    "INSERT INTO comp VALUES ('Acme', 1, x'01', 'a'), ('acme', 2, x'01', 'b'), ('Zed', 1, x'', NULL)",
    "INSERT INTO events VALUES ('boot', 1), ('tick', 2), ('tick', 3)",
    "INSERT INTO seq(v) VALUES ('one'), ('two')",
    "INSERT INTO slots VALUES (1, 'A'), (2, 'B'), (3, 'C')",
    "INSERT INTO gen(id, v) VALUES (1, 'x'), (2, 'yy')",
    "INSERT INTO counters VALUES ('hits', 1)",
)

SCENARIOS: dict[str, tuple[str, ...]] = {
    "insert_update_delete": (
        "INSERT INTO users VALUES (4, 'dee', 4.25, x'deadbeef')",
        "UPDATE users SET score = score * 2 WHERE id = 2",
        "DELETE FROM users WHERE id = 3",
    ),
    "replace": (
        "REPLACE INTO users VALUES (1, 'ANN', 9.0, NULL)",  # same key: DELETE + INSERT -> UPDATE
        "REPLACE INTO users VALUES (5, 'Bob', 0.5, NULL)",  # UNIQUE(name) NOCASE: removes row 2
    ),
    "upsert": (
        "INSERT INTO counters VALUES ('hits', 1) ON CONFLICT(name) DO UPDATE SET n = n + 1",
        "INSERT INTO counters VALUES ('HITS', 1) ON CONFLICT(name) DO UPDATE SET n = n + 1",
        "INSERT INTO counters VALUES ('misses', 1) ON CONFLICT(name) DO UPDATE SET n = n + 1",
        "INSERT INTO users(id, name) VALUES (2, 'bobby') ON CONFLICT(id) DO UPDATE SET name = excluded.name",
    ),
    "primary_key_change": (
        "UPDATE users SET id = id + 10 WHERE id IN (1, 2)",
        "UPDATE comp SET day = day + 10 WHERE tenant = 'ACME'",
        "UPDATE slots SET id = 4 WHERE id = 3",
    ),
    "fk_cascade": (
        "DELETE FROM parent WHERE id = 1",  # cascades to child 10, 11 and grandchild 100
        "UPDATE parent SET id = 22 WHERE id = 2",  # ON UPDATE CASCADE: child 20 follows; grandchild 200 stays
    ),
    "composite_keys": (
        "INSERT INTO comp VALUES ('acme', 1, x'02', 'c'), ('ACME', 3, x'01', 'd')",
        "UPDATE comp SET v = 'A!' WHERE tenant = 'ACME' AND day = 1 AND tag = x'01'",
        "DELETE FROM comp WHERE tenant = 'zed'",
        "REPLACE INTO comp VALUES ('ACME', 2, x'01', 'replaced')",
    ),
    "rowid_table": (
        "INSERT INTO events VALUES ('tock', 4)",
        "UPDATE events SET payload = payload * 10 WHERE kind = 'tick'",
        "DELETE FROM events WHERE kind = 'boot'",
        "UPDATE events SET rowid = 100 WHERE payload = 30",
    ),
    "value_types": (
        "INSERT INTO vals VALUES ('text', 'héllo' || char(0) || ' wörld', x'00ff', 9223372036854775807, -0.0, 'x')",
        "INSERT INTO vals VALUES ('blob', '', x'', -9223372036854775808, 1e308, x'0102')",
        "INSERT INTO vals VALUES ('null', NULL, NULL, NULL, NULL, NULL)",
        "INSERT INTO vals VALUES ('float', '1.0', x'31', 1, 0.1, 2.5)",
        "INSERT INTO vals VALUES ('typeless', 'a', x'61', 0, -1e-300, -0.0)",
        "INSERT INTO vals VALUES ('inf', 'a', x'61', 0, 9e999, -9e999)",
        "UPDATE vals SET a = 3.0 WHERE k = 'float'",
        "INSERT INTO users VALUES (9, 'neg', -0.0, x'')",
    ),
    "autoincrement": (
        "INSERT INTO seq(v) VALUES ('three')",
        "INSERT INTO seq(id, v) VALUES (NULL, 'four')",
        "DELETE FROM seq WHERE v = 'one'",
        "UPDATE seq SET v = 'TWO' WHERE id = 2",
    ),
    "unique_swap": (
        "UPDATE slots SET code = 'tmp' WHERE id = 1",
        "UPDATE slots SET code = 'A' WHERE id = 2",
        "UPDATE slots SET code = 'B' WHERE id = 1",
        "INSERT INTO slots VALUES (9, 'C2')",
        "UPDATE slots SET code = 'X' WHERE id = 3",
        "UPDATE slots SET code = 'C' WHERE id = 9",
    ),
    "triggers": (
        "INSERT INTO posts(id, title) VALUES (1, 'hello')",
        "UPDATE posts SET title = 'hello, world' WHERE id = 1",
        "INSERT INTO posts(id, title) VALUES (2, 'second')",
    ),
    "generated_columns": (
        "INSERT INTO gen(id, v) VALUES (3, 'zzz')",
        "UPDATE gen SET v = 'longer' WHERE id = 1",
        "DELETE FROM gen WHERE id = 2",
    ),
    "cancel_and_reinsert": (
        "INSERT INTO users VALUES (7, 'tmp', 0, NULL)",
        "DELETE FROM users WHERE id = 7",
        "DELETE FROM users WHERE id = 1",
        "INSERT INTO users VALUES (1, 'ann-again', 1.0, NULL)",
        "INSERT INTO events VALUES ('gone', 0)",
        "DELETE FROM events WHERE kind = 'gone'",
    ),
    "internal_tables_stay_local": (
        "INSERT INTO __marmot_state VALUES ('k', 1)",
        "INSERT INTO users VALUES (8, 'eve', NULL, NULL)",
    ),
    "many_rows": (
        "WITH RECURSIVE n(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM n WHERE value < 500) "
        "INSERT INTO events SELECT 'bulk', value FROM n",
        "UPDATE events SET payload = -payload WHERE kind = 'bulk' AND payload % 2 = 0",
        "DELETE FROM events WHERE kind = 'bulk' AND payload % 3 = 0",
        "WITH RECURSIVE n(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM n WHERE value < 200) "
        "INSERT INTO users SELECT 1000 + value, 'u' || value, value / 7.0, randomblob(4) FROM n",
    ),
}


def open_db() -> apsw.Connection:
    c = apsw.Connection(":memory:")
    c.execute("PRAGMA foreign_keys=ON")  # as DatabaseManager.open does: apply must cope with it on
    c.execute(SCHEMA)
    for s in BASE_ROWS:
        c.execute(s)
    return c


def dump(conn: apsw.Connection) -> dict[str, list[tuple[tuple[str, str], ...]]]:
    """Every user table, rows sorted, each value as (type, repr): 1 != 1.0, -0.0 != 0.0, 'a' != b'a'.

    The rowid is part of a row exactly when it is the row's key (a table without a declared primary
    key). A table with a declared non-INTEGER primary key also has a hidden rowid, but it is SQLite's
    internal detail (VACUUM may renumber it) and not replicated: a REPLACE merged into an UPDATE keeps
    the replica's rowid where the origin allocated a new one.
    """
    out: dict[str, list[tuple[tuple[str, str], ...]]] = {}
    tables = conn.execute(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite%' "
        "AND name NOT LIKE '__marmot%' ORDER BY name"
    ).fetchall()
    for (name,) in tables:
        ts = load_table_schema(conn, name)
        with_rowid = ts.rowid_key and ts.rowid_alias is None
        sql = f'SELECT _rowid_, * FROM "{name}"' if with_rowid else f'SELECT * FROM "{name}"'
        rows = [tuple((type(v).__name__, repr(v)) for v in row) for row in conn.execute(sql)]
        out[name] = sorted(rows)
    return out


def capture(conn: apsw.Connection, statements: tuple[str, ...]) -> list[RowChange]:
    cap = ChangeCapture()
    cap.start(conn, 0)
    with conn:  # BEGIN ... COMMIT: the origin keeps its writes, like a committer applying locally
        for s in statements:
            conn.execute(s)
        changes = cap.changes()
    cap.stop()
    return changes


@pytest.fixture
def pair() -> Iterator[tuple[apsw.Connection, apsw.Connection]]:
    a, b = open_db(), open_db()
    assert dump(a) == dump(b)
    yield a, b
    a.close()
    b.close()


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_replicated_transaction_gives_identical_databases(
    pair: tuple[apsw.Connection, apsw.Connection], name: str
) -> None:
    origin, replica = pair
    before = dump(origin)
    changes = capture(origin, SCENARIOS[name])
    assert changes, "scenario changed nothing"
    assert dump(origin) != before
    wire = encode_transaction("shop", TS, changes)
    txn = decode_transaction(wire)
    assert txn.changes == changes
    with replica:
        assert apply_changes(replica, txn.changes, SchemaCache()) == len(changes)
    assert dump(replica) == dump(origin)
    # apply restored the connection's switches
    assert replica.config(apsw.SQLITE_DBCONFIG_ENABLE_TRIGGER, -1) == 1
    assert replica.config(apsw.SQLITE_DBCONFIG_ENABLE_FKEY, -1) == 1
    assert replica.execute("PRAGMA foreign_key_check").fetchall() == []
    # applying the same transaction again changes nothing (replays are harmless)
    with replica:
        apply_changes(replica, txn.changes, SchemaCache())
    assert dump(replica) == dump(origin)


def test_all_scenarios_in_one_transaction(pair: tuple[apsw.Connection, apsw.Connection]) -> None:
    origin, replica = pair
    statements = tuple(
        s
        for name in (
            "insert_update_delete",
            "fk_cascade",
            "unique_swap",
            "triggers",
            "rowid_table",
            "composite_keys",
        )
        for s in SCENARIOS[name]
    )
    changes = capture(origin, statements)
    with replica:
        apply_changes(
            replica, decode_transaction(encode_transaction("shop", TS, changes)).changes, SchemaCache()
        )
    assert dump(replica) == dump(origin)


def test_cascade_on_apply_would_have_diverged(pair: tuple[apsw.Connection, apsw.Connection]) -> None:
    """Why apply turns FK actions off: a primary-key change arrives as DELETE + INSERT, and the DELETE
    would cascade to grandchildren the origin never touched."""
    origin, replica = pair
    changes = capture(origin, ("UPDATE parent SET id = 22 WHERE id = 2",))
    assert [c.op for c in changes] == ["DELETE", "INSERT", "UPDATE"]
    with replica:
        apply_changes(replica, changes, SchemaCache())
    assert replica.execute("SELECT id, cid FROM grandchild ORDER BY id").fetchall() == [(100, 10), (200, 20)]


# -- apply edge cases -----------------------------------------------------------------------------


def test_update_of_a_missing_row_upserts_the_new_image() -> None:
    db = open_db()
    key = encode_row_key("users", [50])
    change = RowChange(
        "users",
        "UPDATE",
        key,
        {"id": 50, "name": "old", "score": None, "avatar": None},
        {"id": 50, "name": "new", "score": 1.0, "avatar": None},
    )
    with db:
        apply_changes(db, [change], SchemaCache())
        apply_changes(
            db,
            [
                RowChange(
                    "events",
                    "UPDATE",
                    encode_row_key("events", [77]),
                    {"kind": "k", "payload": 1},
                    {"kind": "k", "payload": 2},
                )
            ],
            SchemaCache(),
        )
        apply_changes(
            db,
            [RowChange("users", "DELETE", encode_row_key("users", [404]), {"id": 404}, None)],
            SchemaCache(),
        )
    assert db.execute("SELECT id, name, score FROM users WHERE id = 50").fetchall() == [(50, "new", 1.0)]
    assert db.execute("SELECT rowid, kind, payload FROM events WHERE rowid = 77").fetchall() == [(77, "k", 2)]


def test_apply_addresses_collated_keys_by_the_column_collation() -> None:
    db = open_db()
    # the key of a NOCASE column is folded; apply must still find 'Acme'
    key = encode_row_key("comp", ["acme", 1, b"\x01"])
    with db:
        apply_changes(
            db,
            [RowChange("comp", "DELETE", key, {"tenant": "Acme", "day": 1, "tag": b"\x01", "v": "a"}, None)],
            SchemaCache(),
        )
    assert db.execute("SELECT count(*) FROM comp WHERE day = 1 AND tag = x'01'").fetchone()[0] == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (RowChange("nope", "DELETE", encode_row_key("nope", [1]), {"id": 1}, None), "no such table"),
        (RowChange("users", "INSERT", encode_row_key("users", [1]), None, {"id": 1, "ghost": 2}), "ghost"),
        (RowChange("users", "DELETE", encode_row_key("users", ["x"]), {"id": 1}, None), "one integer"),
        (RowChange("comp", "DELETE", encode_row_key("comp", [1]), {"day": 1}, None), "primary key"),
        (RowChange("users", "UPDATE", encode_row_key("users", [1]), {"id": 1}, None), "new image"),
        (RowChange("users", "DELETE", b"\x01junk", {"id": 1}, None), "bad row key"),
    ],
)
def test_apply_rejects_changes_that_do_not_fit(change: RowChange, message: str) -> None:
    db = open_db()
    db.execute("BEGIN")
    with pytest.raises(ApplyError, match=message):
        apply_changes(db, [change], SchemaCache())
    db.execute("ROLLBACK")
    assert db.config(apsw.SQLITE_DBCONFIG_ENABLE_TRIGGER, -1) == 1  # restored after a failure too
    assert db.config(apsw.SQLITE_DBCONFIG_ENABLE_FKEY, -1) == 1


def test_apply_to_a_table_whose_rowid_is_shadowed() -> None:
    db = apsw.Connection(":memory:")
    db.execute("CREATE TABLE odd(rowid, _rowid_, oid)")
    with pytest.raises(ApplyError, match="shadowed"):
        apply_changes(
            db, [RowChange("odd", "INSERT", encode_row_key("odd", [1]), None, {"rowid": 1})], SchemaCache()
        )


# -- wire format ----------------------------------------------------------------------------------

SAMPLE = [
    RowChange(
        "users",
        "INSERT",
        encode_row_key("users", [1]),
        None,
        {"id": 1, "name": "ann", "score": -0.0, "avatar": b"\x00", "big": 9223372036854775807},
    ),
    RowChange(
        "users", "UPDATE", encode_row_key("users", [2]), {"id": 2, "name": None}, {"id": 2, "name": "b"}
    ),
    RowChange("comp", "DELETE", encode_row_key("comp", ["acme", 1, b""]), {"tenant": "Acme", "v": 1.5}, None),
]


def test_round_trip_keeps_types_exactly() -> None:
    txn = decode_transaction(encode_transaction("shop", TS, SAMPLE))
    assert txn == TransactionChanges(to_txn_id(TS), "shop", TS, SAMPLE)
    assert repr(txn.changes[0].new) == repr(SAMPLE[0].new)  # -0.0 stays -0.0, bytes stay bytes
    assert decode_transaction(encode_transaction("shop", TS, SAMPLE, txn_id=123)).txn_id == 123
    assert decode_transaction(encode_transaction("shop", TS, [])).changes == []


def test_entries_use_upstream_short_keys() -> None:
    doc = msgpack.unpackb(encode_transaction("shop", TS, SAMPLE), raw=False)
    assert doc["hlc"] == [TS.wall_ns, TS.logical, TS.node_id]
    assert doc["changes"][0] == {"t": "users", "o": 1, "k": SAMPLE[0].key, "nv": SAMPLE[0].new}
    assert set(doc["changes"][1]) == {"t", "o", "k", "ov", "nv"}
    assert set(doc["changes"][2]) == {"t", "o", "k", "ov"}


def test_encode_rejects_values_sqlite_cannot_hold() -> None:
    bad = RowChange("t", "INSERT", encode_row_key("t", [1]), None, {"x": {1, 2}})  # type: ignore[dict-item]
    with pytest.raises(ChangeFormatError):
        encode_transaction("shop", TS, [bad])


def _valid_doc() -> dict[str, object]:
    return msgpack.unpackb(encode_transaction("shop", TS, SAMPLE), raw=False)


def _mutations() -> list[object]:
    """Structurally wrong documents, one defect each."""
    out: list[object] = [None, 1, "x", [], {}]

    def m(fn) -> None:  # type: ignore[no-untyped-def]
        d = copy.deepcopy(_valid_doc())
        fn(d)
        out.append(d)

    m(lambda d: d.pop("db"))
    m(lambda d: d.update(extra=1))
    m(lambda d: d.update(v=2))
    m(lambda d: d.update(v=True))
    m(lambda d: d.update(txn_id=-1))
    m(lambda d: d.update(txn_id=1.5))
    m(lambda d: d.update(db=""))
    m(lambda d: d.update(db=b"shop"))
    m(lambda d: d.update(hlc=[1, 2]))
    m(lambda d: d.update(hlc=[1, 70000, 3]))
    m(lambda d: d.update(hlc=[-1, 0, 3]))
    m(lambda d: d.update(hlc="now"))
    m(lambda d: d.update(changes={}))
    m(lambda d: d["changes"].append("entry"))
    m(lambda d: d["changes"][0].update(o=4))
    m(lambda d: d["changes"][0].update(o="INSERT"))
    m(lambda d: d["changes"][0].update(o=True))
    m(lambda d: d["changes"][0].update(t=""))
    m(lambda d: d["changes"][0].update(t="other"))  # key names another table
    m(lambda d: d["changes"][0].update(k="text"))
    m(lambda d: d["changes"][0].update(k=b"\x01\x05users\x01\x09"))
    m(lambda d: d["changes"][0].update(k=b"\xfeusers"))
    m(lambda d: d["changes"][0].update(ov={"id": 1}))  # INSERT with an old image
    m(lambda d: d["changes"][0].pop("nv"))
    m(lambda d: d["changes"][0].update(nv={}))
    m(lambda d: d["changes"][0].update(nv=[1, 2]))
    m(lambda d: d["changes"][0].update(nv={"id": [1]}))
    m(lambda d: d["changes"][0].update(nv={"id": True}))
    m(lambda d: d["changes"][0].update(nv={"": 1}))
    m(lambda d: d["changes"][0].update(nv={"id": 2**64 - 1}))
    m(lambda d: d["changes"][0].update(zz=1))
    m(lambda d: d["changes"][1].pop("ov"))
    m(lambda d: d["changes"][2].update(nv={"x": 1}))  # DELETE with a new image
    return out


def test_structurally_wrong_documents_raise_change_format_error() -> None:
    for doc in _mutations():
        data = msgpack.packb(doc, use_bin_type=True)
        with pytest.raises(ChangeFormatError):
            decode_transaction(data)


def test_broken_bytes_only_raise_change_format_error() -> None:
    valid = encode_transaction("shop", TS, SAMPLE)
    for i in range(len(valid)):  # every truncation
        with pytest.raises(ChangeFormatError):
            decode_transaction(valid[:i])
    with pytest.raises(ChangeFormatError, match="msgpack"):
        decode_transaction(valid + b"\x00")  # trailing bytes
    with pytest.raises(ChangeFormatError):
        decode_transaction(msgpack.packb(msgpack.ExtType(5, b"x")))
    with pytest.raises(ChangeFormatError):
        decode_transaction(b"\x91" * 100_000)  # deeply nested arrays
    with pytest.raises(ChangeFormatError):
        decode_transaction("not bytes")  # type: ignore[arg-type]
    rng = random.Random(7)
    for _ in range(5000):
        buf = bytearray(valid)
        for _ in range(rng.randrange(1, 6)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        try:
            txn = decode_transaction(bytes(buf))
        except ChangeFormatError:
            continue
        assert isinstance(txn, TransactionChanges)  # a flip that still decodes is a valid document
        encode_transaction(txn.db, txn.hlc, txn.changes, txn_id=txn.txn_id)
    for _ in range(5000):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
        try:
            decode_transaction(data)
        except ChangeFormatError:
            continue
