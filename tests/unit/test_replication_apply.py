"""The LWW applier (replication/applier.py) and the replication tables it keeps in each database file.

Why these tests: every node applies every committed transaction through ``apply_items``, in whatever
order and however often the transactions reach it (COMMIT retries, replays, anti-entropy). The nodes
only converge if applying is exactly-once per txn id and last-writer-wins per row key by the commit
HLC, independent of arrival order. So the central tests apply the same transactions in both orders to
two separate database files and require identical tables *and* identical row versions.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import apsw
import pytest

from marmot.engine.capture import ChangeCapture
from marmot.hlc import Timestamp
from marmot.replication.applier import ApplyItem, ApplyOutcome, apply_items
from marmot.replication.changes import ApplyError, RowChange, encode_transaction
from marmot.replication.messages import decode_body, encode_body
from marmot.storage import replication_tables as rt
from marmot.storage.rowkey import SchemaCache, encode_row_key

DB = "marmot"
W = 1_767_225_600_000_000_000  # 2026-01-01 in ns: a realistic commit wall clock

SCHEMA = """
CREATE TABLE kv(id INTEGER PRIMARY KEY, v TEXT, n INT);
CREATE TABLE names(name TEXT PRIMARY KEY COLLATE NOCASE, n INT) WITHOUT ROWID;
CREATE TABLE strict_t(id INTEGER PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE slots(id INTEGER PRIMARY KEY, code TEXT UNIQUE);
"""


def ts(offset: int, node: int = 1, logical: int = 0) -> Timestamp:
    return Timestamp(W + offset, logical, node)


def key(table: str, pk: object) -> bytes:
    return encode_row_key(table, [pk])  # type: ignore[list-item]


def ins(pk: int, v: str | None, n: int | None = 0, table: str = "kv") -> RowChange:
    return RowChange(table, "INSERT", key(table, pk), None, {"id": pk, "v": v, "n": n})


def upd(pk: int, v: str, n: int = 0, old: str = "seed") -> RowChange:
    return RowChange("kv", "UPDATE", key("kv", pk), {"id": pk, "v": old, "n": 0}, {"id": pk, "v": v, "n": n})


def dele(pk: int, old: str = "seed") -> RowChange:
    return RowChange("kv", "DELETE", key("kv", pk), {"id": pk, "v": old, "n": 0}, None)


def item(txn_id: int, at: Timestamp, changes: list[RowChange] | None = None,
         ddl: list[str] | None = None) -> ApplyItem:
    """An item exactly as the participant builds it: encoded body, decoded again."""
    if ddl is not None:
        payload = encode_body("ddl", ddl=ddl)
    else:
        payload = encode_body("dml", rows=encode_transaction(DB, at, changes or [], txn_id))
    return ApplyItem(txn_id, at, at.node_id, payload, decode_body(payload))


class Replica:
    """One node's copy of the database: a real SQLite file in WAL mode with the replication tables."""

    def __init__(self, path: Path) -> None:
        self.conn = apsw.Connection(str(path))
        self.conn.execute("PRAGMA journal_mode=WAL").fetchall()
        self.conn.execute(SCHEMA)
        rt.ensure_tables(self.conn)
        self.schema = SchemaCache()
        self.ddl_calls = 0

    def _on_ddl(self) -> None:
        self.ddl_calls += 1

    def apply(self, *items: ApplyItem) -> list[ApplyOutcome | Exception]:
        """One batch in one write transaction, as the apply queue runs it."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            out = apply_items(self.conn, self.schema, list(items), self._on_ddl)
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")
        return out

    def rows(self, table: str = "kv") -> list[tuple[tuple[str, object], ...]]:
        """Rows with each value's Python type, so 1 != 1.0 and TEXT != BLOB."""
        cur = self.conn.execute(f"SELECT * FROM {table} ORDER BY 1")
        return [tuple((type(v).__name__, v) for v in row) for row in cur]

    def versions(self) -> list[tuple[object, ...]]:
        return self.conn.execute(f"SELECT pk, tbl, wall, logical, node, deleted FROM {rt.ROW_VERSION} "
                                 "ORDER BY pk").fetchall()

    def version(self, k: bytes) -> tuple[int, int, int, int] | None:
        row = self.conn.execute(f"SELECT wall, logical, node, deleted FROM {rt.ROW_VERSION} WHERE pk = ?",
                                (k,)).fetchone()
        return None if row is None else tuple(row)  # type: ignore[return-value]

    def logged(self) -> list[int]:
        return [r[0] for r in self.conn.execute(f"SELECT txn_id FROM {rt.TXN_LOG} ORDER BY txn_id")]

    def columns(self, table: str) -> list[str]:
        return [r[1] for r in self.conn.execute(f'PRAGMA table_info("{table}")')]

    def tables(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[tuple[Replica, Replica]]:
    a, b = Replica(tmp_path / "a.db"), Replica(tmp_path / "b.db")
    yield a, b
    a.conn.close()
    b.conn.close()


def outcome(x: ApplyOutcome | Exception) -> ApplyOutcome:
    assert isinstance(x, ApplyOutcome), f"expected an outcome, got {x!r}"
    return x


# -- exactly once ---------------------------------------------------------------------------------


def test_same_transaction_applied_twice_is_applied_once(replicas: tuple[Replica, Replica]) -> None:
    """A retried COMMIT or a transaction fetched twice must not write again (nor bump anything)."""
    r, _ = replicas
    it = item(1, ts(10), [ins(1, "a", 1), ins(2, "b", 2)])
    first = outcome(r.apply(it)[0])
    assert (first.applied, first.rows, first.skipped) == (True, 2, 0)
    rows, versions = r.rows(), r.versions()
    # Change the row by hand: a second apply that wrote again would restore the replicated image.
    r.conn.execute("UPDATE kv SET v = 'local' WHERE id = 1")
    second = outcome(r.apply(it)[0])
    assert (second.applied, second.rows, second.skipped) == (False, 0, 0)
    assert r.rows()[0] == (("int", 1), ("str", "local"), ("int", 1))
    assert r.rows()[1:] == rows[1:]
    assert r.versions() == versions
    assert r.logged() == [1]


def test_duplicate_inside_one_batch_is_applied_once(replicas: tuple[Replica, Replica]) -> None:
    """The marker written by the first copy is visible to the second copy in the same transaction."""
    r, _ = replicas
    it = item(7, ts(10), [ins(1, "a")])
    out = [outcome(o) for o in r.apply(it, it)]
    assert [o.applied for o in out] == [True, False]
    assert r.logged() == [7]


def test_txn_log_keeps_commit_timestamp_origin_and_payload(replicas: tuple[Replica, Replica]) -> None:
    """The log row is what anti-entropy serves and STATUS answers from: it must be exact."""
    r, _ = replicas
    at = ts(5, node=3, logical=9)
    it = item(42, at, [ins(1, "a")])
    r.apply(it)
    row = r.conn.execute(f"SELECT wall, logical, node, origin, payload FROM {rt.TXN_LOG} WHERE txn_id = 42").fetchone()
    assert row == (at.wall_ns, 9, 3, 3, it.payload)
    assert rt.is_applied(r.conn, 42) and not rt.is_applied(r.conn, 43)
    assert rt.committed_timestamp(r.conn, 42) == (at.wall_ns, 9, 3)
    assert rt.committed_timestamp(r.conn, 43) is None


# -- last writer wins, any order --------------------------------------------------------------------

SEED = item(1, ts(0, node=9), [ins(1, "seed"), ins(2, "seed"), ins(3, "seed")])

# name -> (transaction A, transaction B, expected kv rows after both, expected (key id, deleted) winners)
ORDER_CASES: dict[str, tuple[ApplyItem, ApplyItem, list[tuple[int, str, int]], dict[int, tuple[Timestamp, int]]]] = {
    "insert_vs_newer_delete": (  # the tombstone keeps the late older INSERT from resurrecting the row
        item(10, ts(100, node=1), [ins(5, "inserted")]),
        item(11, ts(200, node=2), [RowChange("kv", "DELETE", key("kv", 5), {"id": 5, "v": "inserted", "n": 0}, None)]),
        [(1, "seed", 0), (2, "seed", 0), (3, "seed", 0)],
        {5: (ts(200, node=2), 1)},
    ),
    "delete_vs_newer_insert": (
        item(10, ts(100, node=1), [dele(1)]),
        item(11, ts(200, node=2), [ins(1, "reborn", 7)]),
        [(1, "reborn", 7), (2, "seed", 0), (3, "seed", 0)],
        {1: (ts(200, node=2), 0)},
    ),
    "update_vs_update": (
        item(10, ts(100, node=1), [upd(2, "first", 1)]),
        item(11, ts(200, node=2), [upd(2, "second", 2)]),
        [(1, "seed", 0), (2, "second", 2), (3, "seed", 0)],
        {2: (ts(200, node=2), 0)},
    ),
    "tie_broken_by_node_id": (  # same wall and logical: the higher node id wins on every node
        item(10, ts(100, node=2, logical=5), [upd(2, "node2", 2)]),
        item(11, ts(100, node=1, logical=5), [upd(2, "node1", 1)]),
        [(1, "seed", 0), (2, "node2", 2), (3, "seed", 0)],
        {2: (ts(100, node=2, logical=5), 0)},
    ),
    "logical_breaks_wall_tie": (
        item(10, ts(100, node=7, logical=1), [upd(2, "low", 1)]),
        item(11, ts(100, node=1, logical=2), [upd(2, "high", 2)]),
        [(1, "seed", 0), (2, "high", 2), (3, "seed", 0)],
        {2: (ts(100, node=1, logical=2), 0)},
    ),
    "newer_update_vs_older_delete": (  # delete first: the UPDATE finds no row and upserts its image
        item(10, ts(200, node=1), [upd(3, "kept", 3)]),
        item(11, ts(100, node=2), [dele(3)]),
        [(1, "seed", 0), (2, "seed", 0), (3, "kept", 3)],
        {3: (ts(200, node=1), 0)},
    ),
    "overlapping_keys": (  # per key, not per transaction: each txn wins where it is newest
        item(10, ts(300, node=1), [upd(1, "A1", 1), upd(2, "A2", 1)]),
        item(11, ts(200, node=2), [upd(2, "B2", 2), upd(3, "B3", 2)]),
        [(1, "A1", 1), (2, "A2", 1), (3, "B3", 2)],
        {1: (ts(300, node=1), 0), 2: (ts(300, node=1), 0), 3: (ts(200, node=2), 0)},
    ),
}


@pytest.mark.parametrize("case", list(ORDER_CASES))
def test_both_orders_converge(replicas: tuple[Replica, Replica], case: str) -> None:
    """Two nodes receiving A, B and B, A end with identical rows and versions, and the newer one won."""
    a_item, b_item, want_rows, winners = ORDER_CASES[case]
    r1, r2 = replicas
    for r in replicas:
        r.apply(SEED)
    out1 = [outcome(o) for o in (r1.apply(a_item) + r1.apply(b_item))]
    out2 = [outcome(o) for o in (r2.apply(b_item) + r2.apply(a_item))]
    assert all(o.applied for o in out1 + out2)
    assert r1.rows() == r2.rows()
    assert [tuple(v for _, v in row) for row in r1.rows()] == want_rows
    assert r1.versions() == r2.versions()
    for pk, (win, deleted) in winners.items():
        assert r1.version(key("kv", pk)) == (win.wall_ns, win.logical, win.node_id, deleted)
    assert r1.logged() == r2.logged() == [1, 10, 11]
    # Every change is counted exactly once, as applied or as skipped, in either order.
    n_changes = len(a_item.body.changes) + len(b_item.body.changes)
    for out in (out1, out2):
        assert sum(o.rows + o.skipped for o in out) == n_changes


def test_late_older_insert_does_not_resurrect_deleted_row(replicas: tuple[Replica, Replica]) -> None:
    """The DELETE's tombstone outranks an INSERT that was committed earlier but arrives later."""
    r, _ = replicas
    k = key("kv", 9)
    d = outcome(r.apply(item(20, ts(500, node=2), [RowChange("kv", "DELETE", k, {"id": 9, "v": "x", "n": 0}, None)]))[0])
    assert (d.applied, d.rows) == (True, 1)
    assert r.version(k) == (W + 500, 0, 2, 1)
    late = outcome(r.apply(item(19, ts(400, node=1), [ins(9, "zombie")]))[0])
    assert (late.applied, late.rows, late.skipped) == (True, 0, 1)
    assert r.rows() == []
    assert r.version(k) == (W + 500, 0, 2, 1)
    assert r.logged() == [19, 20]  # the loser is still marked applied: it must not be retried forever


def test_newer_insert_clears_tombstone(replicas: tuple[Replica, Replica]) -> None:
    r, _ = replicas
    k = key("kv", 9)
    r.apply(item(20, ts(500), [RowChange("kv", "DELETE", k, {"id": 9, "v": "x", "n": 0}, None)]))
    r.apply(item(21, ts(600), [ins(9, "again")]))
    assert r.rows() == [(("int", 9), ("str", "again"), ("int", 0))]
    assert r.version(k) == (W + 600, 0, 1, 0)


def test_equal_version_from_another_txn_is_not_reapplied(replicas: tuple[Replica, Replica]) -> None:
    """Only strictly newer versions win: a change carrying the stored version exactly is skipped."""
    r, _ = replicas
    r.apply(item(1, ts(10), [ins(1, "first")]))
    out = outcome(r.apply(item(2, ts(10), [ins(1, "same-version")]))[0])
    assert (out.rows, out.skipped) == (0, 1)
    assert r.rows()[0][1] == ("str", "first")


def test_mixed_winners_and_losers_in_one_transaction(replicas: tuple[Replica, Replica]) -> None:
    r, _ = replicas
    r.apply(item(1, ts(100), [ins(1, "new")]))
    out = outcome(r.apply(item(2, ts(50), [ins(1, "old"), ins(2, "fresh")]))[0])
    assert (out.applied, out.rows, out.skipped) == (True, 1, 1)
    assert [row[1][1] for row in r.rows()] == ["new", "fresh"]
    assert r.version(key("kv", 2)) == (W + 50, 0, 1, 0)


def _capture(conn: apsw.Connection, sql: str) -> list[RowChange]:
    cap = ChangeCapture()
    cap.start(conn, 0)
    conn.execute("BEGIN")
    try:
        conn.execute(sql)
        return cap.changes()
    finally:
        conn.execute("ROLLBACK")
        cap.stop()


def test_captured_nocase_keys_from_two_origins_converge(replicas: tuple[Replica, Replica]) -> None:
    """'Bob' and 'bob' are one NOCASE primary key: captured on two origins they must meet in LWW."""
    origin = apsw.Connection(":memory:")
    origin.execute(SCHEMA)
    a = _capture(origin, "INSERT INTO names VALUES ('Bob', 1)")
    b = _capture(origin, "INSERT INTO names VALUES ('bob', 2)")
    assert a[0].key == b[0].key
    ia, ib = item(30, ts(10, node=1), a), item(31, ts(20, node=2), b)
    r1, r2 = replicas
    r1.apply(ia)
    r1.apply(ib)
    r2.apply(ib)
    r2.apply(ia)
    assert r1.rows("names") == r2.rows("names") == [(("str", "bob"), ("int", 2))]
    assert r1.versions() == r2.versions()


@pytest.mark.xfail(strict=True, reason=(
    "applier LWW is per row key only: apply_changes' INSERT OR REPLACE silently deletes a row with a "
    "*different* key that holds the same UNIQUE value, without consulting or tombstoning that row's version. "
    "Two concurrent txns inserting id=1 code='X' and id=2 code='X' (different keys: no intent conflict) "
    "leave {2:'X'} on a node that applied them in order and {1:'X'} on one that applied them reversed "
    "- the nodes diverge, and the removed row's version still says it is live"))
def test_unique_collision_between_different_keys_converges(replicas: tuple[Replica, Replica]) -> None:
    r1, r2 = replicas
    a = item(40, ts(10, node=1), [RowChange("slots", "INSERT", key("slots", 1), None, {"id": 1, "code": "X"})])
    b = item(41, ts(20, node=2), [RowChange("slots", "INSERT", key("slots", 2), None, {"id": 2, "code": "X"})])
    r1.apply(a)
    r1.apply(b)
    r2.apply(b)
    r2.apply(a)
    assert r1.rows("slots") == r2.rows("slots")


# -- a failing item fails alone -------------------------------------------------------------------


def test_failing_item_returns_its_error_and_others_apply(replicas: tuple[Replica, Replica]) -> None:
    r, _ = replicas
    good1 = item(1, ts(10), [ins(1, "one")])
    bad = item(2, ts(20), [ins(5, "partial"), RowChange("nosuch", "INSERT", key("nosuch", 1), None, {"id": 1})])
    good2 = item(3, ts(30), [ins(2, "two")])
    out = r.apply(good1, bad, good2)
    assert isinstance(out[1], ApplyError) and "nosuch" in str(out[1])
    assert outcome(out[0]).rows == 1 and outcome(out[2]).rows == 1
    assert [row[1][1] for row in r.rows()] == ["one", "two"]  # the bad item's kv row 5 was rolled back
    assert r.version(key("kv", 5)) is None
    assert r.logged() == [1, 3]  # no marker: it can be applied once the table exists
    r.conn.execute("CREATE TABLE nosuch(id INTEGER PRIMARY KEY)")
    r.schema.invalidate()
    again = outcome(r.apply(bad)[0])
    assert (again.applied, again.rows) == (True, 2)
    assert r.logged() == [1, 2, 3]


def test_constraint_error_is_returned_for_that_item(replicas: tuple[Replica, Replica]) -> None:
    """SQLite errors (apsw.Error) are caught per item like ApplyError."""
    r, _ = replicas
    bad = item(1, ts(10), [RowChange("strict_t", "INSERT", key("strict_t", 1), None, {"id": 1, "v": None})])
    good = item(2, ts(20), [RowChange("strict_t", "INSERT", key("strict_t", 2), None, {"id": 2, "v": "ok"})])
    out = r.apply(bad, good)
    assert isinstance(out[0], apsw.ConstraintError)
    assert outcome(out[1]).rows == 1
    assert r.rows("strict_t") == [(("int", 2), ("str", "ok"))]
    assert r.version(key("strict_t", 1)) is None


def test_unknown_column_is_an_apply_error(replicas: tuple[Replica, Replica]) -> None:
    r, _ = replicas
    bad = item(1, ts(10), [RowChange("kv", "INSERT", key("kv", 1), None, {"id": 1, "v": "a", "ghost": 1})])
    out = r.apply(bad)
    assert isinstance(out[0], ApplyError) and "ghost" in str(out[0])
    assert r.rows() == [] and r.logged() == []


# -- DDL items ------------------------------------------------------------------------------------


def test_create_table_via_two_txn_ids_is_idempotent(replicas: tuple[Replica, Replica]) -> None:
    """The same CREATE TABLE arriving as two transactions (hand-run, snapshot) must not fail."""
    r, _ = replicas
    sql = "CREATE TABLE extra(id INTEGER PRIMARY KEY, x TEXT)"
    out = [outcome(o) for o in r.apply(item(50, ts(10), ddl=[sql]), item(51, ts(20), ddl=[sql]))]
    assert [(o.applied, o.ddl) for o in out] == [(True, True), (True, True)]
    assert "extra" in r.tables()
    assert rt.schema_version(r.conn) == 2  # one bump per applied DDL transaction
    assert r.ddl_calls == 2


def test_ddl_txn_replayed_is_not_reapplied(replicas: tuple[Replica, Replica]) -> None:
    r, _ = replicas
    it = item(50, ts(10), ddl=["CREATE TABLE extra(id INTEGER PRIMARY KEY)", "CREATE INDEX extra_i ON extra(id)"])
    first = outcome(r.apply(it)[0])
    second = outcome(r.apply(it)[0])
    assert (first.applied, first.ddl) == (True, True)
    assert (second.applied, second.ddl) == (False, False)
    assert rt.schema_version(r.conn) == 1  # one bump for one transaction with two statements
    assert r.ddl_calls == 1


def test_add_column_replayed_where_column_exists_is_skipped(replicas: tuple[Replica, Replica]) -> None:
    """Upstream #158: ADD COLUMN replayed on a node that already had the column diverged the node."""
    r, _ = replicas
    r.conn.execute("ALTER TABLE kv ADD COLUMN extra INT")  # e.g. a snapshot that already had it
    out = outcome(r.apply(item(60, ts(10), ddl=['ALTER TABLE "kv" ADD COLUMN "extra" INT']))[0])
    assert (out.applied, out.ddl) == (True, True)
    assert r.columns("kv") == ["id", "v", "n", "extra"]
    assert rt.schema_version(r.conn) == 1


def test_drop_column_and_rename_replayed(replicas: tuple[Replica, Replica]) -> None:
    r, _ = replicas
    drop = ['ALTER TABLE "kv" DROP COLUMN "n"']
    rename = ['ALTER TABLE "kv" RENAME TO "kv2"']
    out = r.apply(item(70, ts(10), ddl=drop), item(71, ts(20), ddl=drop),
                  item(72, ts(30), ddl=rename), item(73, ts(40), ddl=rename))
    assert all(isinstance(o, ApplyOutcome) and o.applied for o in out), out
    assert "kv" not in r.tables() and "kv2" in r.tables()
    assert r.columns("kv2") == ["id", "v"]
    assert rt.schema_version(r.conn) == 4
    assert r.ddl_calls == 4


def test_dml_after_ddl_in_one_batch_sees_new_schema(replicas: tuple[Replica, Replica]) -> None:
    """The schema cache is invalidated by a DDL item, so a later item in the same batch can use the
    new column (a stale cache would reject it as an unknown column)."""
    r, _ = replicas
    before = item(1, ts(10), [ins(1, "a")])
    ddl = item(2, ts(20), ddl=['ALTER TABLE "kv" ADD COLUMN "w" TEXT'])
    after = item(3, ts(30), [RowChange("kv", "INSERT", key("kv", 2), None, {"id": 2, "v": "b", "n": 0, "w": "new"})])
    out = r.apply(before, ddl, after)
    assert all(isinstance(o, ApplyOutcome) for o in out), out
    assert r.conn.execute("SELECT w FROM kv WHERE id = 2").fetchone() == ("new",)


def test_failing_ddl_rolls_back_all_its_statements(replicas: tuple[Replica, Replica]) -> None:
    r, _ = replicas
    bad = item(80, ts(10), ddl=["CREATE TABLE half(id INTEGER PRIMARY KEY)", "ALTER TABLE nosuch ADD COLUMN c INT"])
    good = item(81, ts(20), [ins(1, "still applied")])
    out = r.apply(bad, good)
    assert isinstance(out[0], apsw.SQLError)
    assert outcome(out[1]).rows == 1
    assert "half" not in r.tables()
    assert rt.schema_version(r.conn) == 0
    assert r.ddl_calls == 0
    assert r.logged() == [81]


# -- replication tables ---------------------------------------------------------------------------


def test_ensure_tables_is_idempotent_and_keeps_state(tmp_path: Path) -> None:
    conn = apsw.Connection(str(tmp_path / "x.db"))
    rt.ensure_tables(conn)
    assert rt.schema_version(conn) == 0
    with conn:
        assert rt.bump_schema_version(conn) == 1
        assert rt.bump_schema_version(conn) == 2
    rt.ensure_tables(conn)
    conn.close()
    conn = apsw.Connection(str(tmp_path / "x.db"))
    rt.ensure_tables(conn)
    assert rt.schema_version(conn) == 2
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE name LIKE '__marmot%'")}
    assert {rt.ROW_VERSION, rt.TXN_LOG, rt.SCHEMA_VERSION} <= names


def test_row_versions_beyond_one_chunk(replicas: tuple[Replica, Replica]) -> None:
    """row_versions queries in chunks of 500 keys: all 1200 stored keys come back, absent ones don't."""
    r, _ = replicas
    changes = [ins(i, f"v{i}") for i in range(1, 1201)]
    r.apply(item(1, ts(10), changes))
    wanted = [c.key for c in changes] + [key("kv", 5000), key("names", "nobody")]
    got = rt.row_versions(r.conn, wanted)
    assert len(got) == 1200
    assert set(got) == {c.key for c in changes}
    assert set(got.values()) == {(W + 10, 0, 1)}
    assert rt.row_versions(r.conn, []) == {}
