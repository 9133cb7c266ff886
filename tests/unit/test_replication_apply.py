"""The LWW applier (replication/apply/applier.py) and the replication tables it keeps in each database file.

Why these tests: every node applies every committed transaction through ``apply_items``, in whatever
order and however often the transactions reach it (COMMIT retries, replays, anti-entropy). The nodes
only converge if applying is exactly-once per txn id and last-writer-wins per row key by the commit
HLC, independent of arrival order. So the central tests apply the same transactions in both orders to
two separate database files and require identical tables *and* identical row versions.
"""

from __future__ import annotations

from pathlib import Path

import apsw
import pytest

from marmot.engine.capture import ChangeCapture
from marmot.hlc import Timestamp
from marmot.replication.apply.applier import ApplyItem, ApplyOutcome, apply_items
from marmot.replication.apply.rows import ApplyError
from marmot.replication.changes import RowChange, encode_transaction
from marmot.replication.messages import decode_body, encode_body
from marmot.storage import replication_tables as rt
from marmot.storage.rowkey import SchemaCache, encode_row_key, load_table_schema

DB = "marmot"
W = 1_767_225_600_000_000_000  # 2026-01-01 in ns: a realistic commit wall clock

SCHEMA = """
CREATE TABLE kv(id INTEGER PRIMARY KEY, v TEXT, n INT);
CREATE TABLE names(name TEXT PRIMARY KEY COLLATE NOCASE, n INT) WITHOUT ROWID;
CREATE TABLE strict_t(id INTEGER PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE slots(id INTEGER PRIMARY KEY, code TEXT UNIQUE);
CREATE TABLE nc(id INTEGER PRIMARY KEY, code TEXT UNIQUE COLLATE NOCASE);
CREATE TABLE pair(id INTEGER PRIMARY KEY, a INT, b TEXT, UNIQUE(a, b));
CREATE TABLE people(name TEXT PRIMARY KEY COLLATE NOCASE, email TEXT UNIQUE) WITHOUT ROWID;
CREATE TABLE nopk(code TEXT UNIQUE, n INT);
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


def item(
    txn_id: int, at: Timestamp, changes: list[RowChange] | None = None, ddl: list[str] | None = None
) -> ApplyItem:
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
        return self.conn.execute(
            f"SELECT pk, tbl, wall, logical, node, deleted FROM {rt.ROW_VERSION} ORDER BY pk"
        ).fetchall()

    def version(self, k: bytes) -> tuple[int, int, int, int] | None:
        row = self.conn.execute(
            f"SELECT wall, logical, node, deleted FROM {rt.ROW_VERSION} WHERE pk = ?", (k,)
        ).fetchone()
        return None if row is None else tuple(row)  # type: ignore[return-value]

    def logged(self) -> list[int]:
        return [r[0] for r in self.conn.execute(f"SELECT txn_id FROM {rt.TXN_LOG} ORDER BY txn_id")]

    def columns(self, table: str) -> list[str]:
        return [r[1] for r in self.conn.execute(f'PRAGMA table_info("{table}")')]

    def tables(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}


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
    row = r.conn.execute(
        f"SELECT wall, logical, node, origin, payload FROM {rt.TXN_LOG} WHERE txn_id = 42"
    ).fetchone()
    assert row == (at.wall_ns, 9, 3, 3, it.payload)
    assert rt.is_applied(r.conn, 42) and not rt.is_applied(r.conn, 43)
    assert rt.committed_timestamp(r.conn, 42) == (at.wall_ns, 9, 3)
    assert rt.committed_timestamp(r.conn, 43) is None


# -- last writer wins, any order --------------------------------------------------------------------

SEED = item(1, ts(0, node=9), [ins(1, "seed"), ins(2, "seed"), ins(3, "seed")])

# name -> (transaction A, transaction B, expected kv rows after both, expected (key id, deleted) winners)
ORDER_CASES: dict[
    str, tuple[ApplyItem, ApplyItem, list[tuple[int, str, int]], dict[int, tuple[Timestamp, int]]]
] = {
    "insert_vs_newer_delete": (  # the tombstone keeps the late older INSERT from resurrecting the row
        item(10, ts(100, node=1), [ins(5, "inserted")]),
        item(
            11,
            ts(200, node=2),
            [RowChange("kv", "DELETE", key("kv", 5), {"id": 5, "v": "inserted", "n": 0}, None)],
        ),
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
    d = outcome(
        r.apply(item(20, ts(500, node=2), [RowChange("kv", "DELETE", k, {"id": 9, "v": "x", "n": 0}, None)]))[
            0
        ]
    )
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


# -- UNIQUE collisions between different keys --------------------------------------------------------
#
# Two transactions writing the same UNIQUE value under different keys: no intent conflict, no per-key
# LWW between them, and INSERT OR REPLACE alone keeps whichever arrived last. The applier's rule: the
# newest version holding the value wins on every node; older rows are deleted and tombstoned at their
# own versions; a losing change is not written, its key tombstoned at its version.

USER_TABLES = ("kv", "names", "strict_t", "slots", "nc", "pair", "people")


def urow(table: str, pk: object, **cols: object) -> RowChange:
    """An INSERT into a table keyed by ``pk`` (``id`` for rowid tables, ``name`` for people)."""
    col = "name" if table == "people" else "id"
    k = key(table, pk.lower() if isinstance(pk, str) else pk)  # people's key is NOCASE-folded
    return RowChange(table, "INSERT", k, None, {col: pk, **cols})


def uupd(table: str, pk: int, old: dict[str, object], **cols: object) -> RowChange:
    return RowChange(table, "UPDATE", key(table, pk), {"id": pk, **old}, {"id": pk, **old, **cols})


def snapshot(r: Replica) -> tuple[dict[str, object], list[tuple[object, ...]]]:
    """Every user table (nopk with its rowid, which is its key) and every row version."""
    tables: dict[str, object] = {t: r.rows(t) for t in USER_TABLES}
    tables["nopk"] = r.conn.execute("SELECT rowid, code, n FROM nopk ORDER BY rowid").fetchall()
    return tables, r.versions()


def converge(
    replicas: tuple[Replica, Replica],
    a: ApplyItem,
    b: ApplyItem,
    seed: ApplyItem | None = None,
    local_sql: str | None = None,
) -> tuple[Replica, list[ApplyOutcome]]:
    """Apply A, B on one node and B, A on the other (after the same seed); both must end identical —
    tables and row versions — and every change is counted once (applied or skipped) in both orders.
    Returns the first replica and the outcomes of the B, A order."""
    r1, r2 = replicas
    for r in replicas:
        if local_sql:
            r.conn.execute(local_sql)  # rows that never went through replication
        if seed is not None:
            r.apply(seed)
    out1 = [outcome(o) for o in r1.apply(a) + r1.apply(b)]
    out2 = [outcome(o) for o in r2.apply(b) + r2.apply(a)]
    assert snapshot(r1) == snapshot(r2)
    n = len(a.body.changes) + len(b.body.changes)
    for out in (out1, out2):
        assert sum(o.rows + o.skipped for o in out) == n
    return r1, out2


def vers(at: Timestamp, deleted: int) -> tuple[int, int, int, int]:
    return (at.wall_ns, at.logical, at.node_id, deleted)


def test_unique_collision_between_different_keys_converges(replicas: tuple[Replica, Replica]) -> None:
    """INSERT id=1 code='X' vs INSERT id=2 code='X': the newer row stays on both nodes, the older
    key ends tombstoned at its own version (not the winner's, see the applier docstring)."""
    a = item(40, ts(10, node=1), [urow("slots", 1, code="X")])
    b = item(41, ts(20, node=2), [urow("slots", 2, code="X")])
    r, out_ba = converge(replicas, a, b)
    assert r.rows("slots") == [(("int", 2), ("str", "X"))]
    assert r.version(key("slots", 1)) == vers(ts(10, node=1), 1)
    assert r.version(key("slots", 2)) == vers(ts(20, node=2), 0)
    # Order B, A: A arrives after the newer row and loses — not written, counted as skipped.
    assert [(o.rows, o.skipped) for o in out_ba] == [(1, 0), (0, 1)]


@pytest.mark.parametrize("update_newer", [False, True])
def test_update_to_taken_value_vs_insert(replicas: tuple[Replica, Replica], update_newer: bool) -> None:
    """An UPDATE moving row 1 onto 'X' vs an INSERT of row 2 with 'X'. A losing UPDATE removes its
    row: that is the state of a node where it arrived first and the newer INSERT replaced it."""
    seed = item(1, ts(0, node=9), [urow("slots", 1, code="A")])
    t_upd, t_ins = (ts(20, node=1), ts(10, node=2)) if update_newer else (ts(10, node=1), ts(20, node=2))
    a = item(10, t_upd, [uupd("slots", 1, {"code": "A"}, code="X")])
    b = item(11, t_ins, [urow("slots", 2, code="X")])
    r, _ = converge(replicas, a, b, seed)
    if update_newer:
        assert r.rows("slots") == [(("int", 1), ("str", "X"))]
        assert r.version(key("slots", 1)) == vers(t_upd, 0)
        assert r.version(key("slots", 2)) == vers(t_ins, 1)
    else:
        assert r.rows("slots") == [(("int", 2), ("str", "X"))]
        assert r.version(key("slots", 1)) == vers(t_upd, 1)
        assert r.version(key("slots", 2)) == vers(t_ins, 0)


def test_unversioned_preexisting_row_loses(replicas: tuple[Replica, Replica]) -> None:
    """A row written outside replication (no stored version) is older than any commit: it is
    deleted and its key tombstoned at (0, 0, 0) — any later real write of that key still wins."""
    a = item(40, ts(10, node=1), [urow("slots", 1, code="X")])
    b = item(41, ts(20, node=2), [urow("slots", 2, code="X")])
    r, _ = converge(replicas, a, b, local_sql="INSERT INTO slots VALUES (3, 'X'), (4, 'Y')")
    assert r.rows("slots") == [(("int", 2), ("str", "X")), (("int", 4), ("str", "Y"))]
    assert r.version(key("slots", 3)) == (0, 0, 0, 1)
    assert r.version(key("slots", 4)) is None
    r.apply(item(42, ts(30), [urow("slots", 3, code="Z")]))
    assert r.rows("slots")[1] == (("int", 3), ("str", "Z"))


def test_nocase_unique_values_collide(replicas: tuple[Replica, Replica]) -> None:
    """'x' and 'X' are one value of a UNIQUE ... COLLATE NOCASE column, as SQLite's index sees it."""
    a = item(40, ts(20, node=1), [urow("nc", 1, code="x")])
    b = item(41, ts(10, node=2), [urow("nc", 2, code="X")])
    r, _ = converge(replicas, a, b)
    assert r.rows("nc") == [(("int", 1), ("str", "x"))]
    assert r.version(key("nc", 2)) == vers(ts(10, node=2), 1)


def test_nulls_never_collide(replicas: tuple[Replica, Replica]) -> None:
    a = item(40, ts(10, node=1), [urow("slots", 1, code=None), urow("pair", 1, a=1, b=None)])
    b = item(41, ts(20, node=2), [urow("slots", 2, code=None), urow("pair", 2, a=1, b=None)])
    r, out = converge(replicas, a, b)
    assert [row[0][1] for row in r.rows("slots")] == [1, 2]
    assert [row[0][1] for row in r.rows("pair")] == [1, 2]
    assert all(o.skipped == 0 for o in out)
    assert {v[5] for v in r.versions()} == {0}


def test_composite_unique_index(replicas: tuple[Replica, Replica]) -> None:
    """(a, b) collides only when both are equal; one transaction may lose on one row and win another."""
    a = item(40, ts(20, node=1), [urow("pair", 1, a=1, b="p"), urow("pair", 3, a=2, b="p")])
    b = item(
        41,
        ts(10, node=2),
        [urow("pair", 2, a=1, b="p"), urow("pair", 4, a=1, b="q"), urow("pair", 5, a=2, b="p")],
    )
    r, out = converge(replicas, a, b)
    assert [tuple(v for _, v in row) for row in r.rows("pair")] == [(1, 1, "p"), (3, 2, "p"), (4, 1, "q")]
    assert r.version(key("pair", 2)) == vers(ts(10, node=2), 1)
    assert r.version(key("pair", 5)) == vers(ts(10, node=2), 1)
    assert [(o.rows, o.skipped) for o in out] == [(3, 0), (2, 0)]  # order B, A: A wins, deletes 2 and 5


def test_without_rowid_nocase_key_tombstone_uses_captured_key(replicas: tuple[Replica, Replica]) -> None:
    """The losing row's key is computed as capture computes it (declared PK, NOCASE-folded): its
    tombstone lands on the key its version is stored under, not on a second key for the same row."""
    a = item(40, ts(10, node=1), [urow("people", "Bob", email="e@x")])
    b = item(41, ts(20, node=2), [urow("people", "Al", email="e@x")])
    r, _ = converge(replicas, a, b)
    assert r.rows("people") == [(("str", "Al"), ("str", "e@x"))]
    assert r.versions() == [
        (key("people", "al"), "people", W + 20, 0, 2, 0),
        (key("people", "bob"), "people", W + 10, 0, 1, 1),
    ]


def test_rowid_table_without_primary_key(replicas: tuple[Replica, Replica]) -> None:
    """A table without a declared PK is keyed by rowid: the loser is found and tombstoned by rowid."""
    a = item(40, ts(10, node=1), [RowChange("nopk", "INSERT", key("nopk", 7), None, {"code": "X", "n": 1})])
    b = item(41, ts(20, node=2), [RowChange("nopk", "INSERT", key("nopk", 8), None, {"code": "X", "n": 2})])
    r, _ = converge(replicas, a, b)
    assert r.conn.execute("SELECT rowid, code, n FROM nopk").fetchall() == [(8, "X", 2)]
    assert r.version(key("nopk", 7)) == vers(ts(10, node=1), 1)


def test_same_transaction_swap_of_unique_values(replicas: tuple[Replica, Replica]) -> None:
    """A swap captured on an origin (via a temporary value, as SQLite's immediate UNIQUE check needs)
    arrives as two UPDATEs whose first image collides with the second row's *current* value. The
    collision resolution removes that row (older) and its own change restores it right after."""
    origin = apsw.Connection(":memory:")
    origin.execute(SCHEMA)
    origin.execute("INSERT INTO slots VALUES (1, 'A'), (2, 'B')")
    swap = _capture(
        origin,
        "UPDATE slots SET code = 'tmp' WHERE id = 1; UPDATE slots SET code = 'A' WHERE id = 2;"
        " UPDATE slots SET code = 'B' WHERE id = 1",
    )
    assert [(c.key, c.new) for c in swap] == [
        (key("slots", 1), {"id": 1, "code": "B"}),
        (key("slots", 2), {"id": 2, "code": "A"}),
    ]
    seed = item(1, ts(0, node=9), [urow("slots", 1, code="A"), urow("slots", 2, code="B")])
    concurrent = item(11, ts(5, node=2), [urow("slots", 3, code="A")])  # older than the swap: loses
    r, out = converge(replicas, item(10, ts(10, node=1), swap), concurrent, seed)
    assert r.rows("slots") == [(("int", 1), ("str", "B")), (("int", 2), ("str", "A"))]
    assert r.version(key("slots", 1)) == r.version(key("slots", 2)) == vers(ts(10, node=1), 0)
    assert r.version(key("slots", 3)) == vers(ts(5, node=2), 1)
    assert [(o.rows, o.skipped) for o in out] == [(1, 0), (2, 0)]
    # A later swap arriving as plain UPDATEs (first image colliding with the second row) applies too.
    r.apply(
        item(
            12,
            ts(30, node=1),
            [uupd("slots", 1, {"code": "B"}, code="A"), uupd("slots", 2, {"code": "A"}, code="B")],
        )
    )
    assert r.rows("slots") == [(("int", 1), ("str", "A")), (("int", 2), ("str", "B"))]


def test_table_without_unique_indexes_is_unaffected(replicas: tuple[Replica, Replica]) -> None:
    """kv has no UNIQUE index: applying runs no collision lookup at all (the hot path stays as it was)."""
    r, _ = replicas
    assert r.schema.get(r.conn, "kv").unique == ()
    statements: list[str] = []
    r.conn.exec_trace = lambda _cur, sql, _bind: statements.append(sql) or True
    try:
        out = outcome(r.apply(item(1, ts(10), [ins(1, "a"), ins(2, "a")]))[0])
    finally:
        r.conn.exec_trace = None
    assert (out.rows, out.skipped) == (2, 0)
    assert not [q for q in statements if q.startswith("SELECT") and "kv" in q]
    assert len(r.rows()) == 2


def test_unique_index_created_by_ddl_is_seen_in_the_same_batch(replicas: tuple[Replica, Replica]) -> None:
    """The unique-index list lives in TableSchema, so a replicated CREATE UNIQUE INDEX (which
    invalidates the schema cache) makes the very next item resolve collisions on it."""
    r, _ = replicas
    r.apply(item(1, ts(10), [ins(1, "X")]))
    assert r.schema.get(r.conn, "kv").unique == ()
    out = r.apply(item(2, ts(20), ddl=["CREATE UNIQUE INDEX kv_v ON kv(v)"]), item(3, ts(5), [ins(2, "X")]))
    assert outcome(out[1]).skipped == 1  # older than row 1's version: loses (a stale cache: replaces it)
    assert [row[0][1] for row in r.rows()] == [1]
    assert r.version(key("kv", 2)) == vers(ts(5), 1)


def test_unique_index_metadata() -> None:
    """Which indexes the applier checks: UNIQUE, not the PK, not partial, not on expressions or
    VIRTUAL generated columns, not covering the key; with the collation the index compares by."""
    conn = apsw.Connection(":memory:")
    conn.execute("""
        CREATE TABLE t(id INTEGER PRIMARY KEY UNIQUE, a TEXT UNIQUE COLLATE NOCASE, b INT, c TEXT, d TEXT,
                       g INT GENERATED ALWAYS AS (b * 2) VIRTUAL, s INT GENERATED ALWAYS AS (b + 1) STORED,
                       UNIQUE(b, c));
        CREATE UNIQUE INDEX t_c_nocase ON t(c COLLATE NOCASE);
        CREATE UNIQUE INDEX t_partial ON t(d) WHERE b > 0;
        CREATE UNIQUE INDEX t_expr ON t(lower(d));
        CREATE UNIQUE INDEX t_g ON t(g);
        CREATE UNIQUE INDEX t_s ON t(s);
        CREATE UNIQUE INDEX t_id_a ON t(a, id);
        CREATE INDEX t_plain ON t(d);
        CREATE TABLE w(k TEXT COLLATE NOCASE, j INT, u INT UNIQUE, PRIMARY KEY (k, j)) WITHOUT ROWID;
        CREATE UNIQUE INDEX w_covers ON w(j, k);
        CREATE UNIQUE INDEX w_other_collation ON w(k COLLATE BINARY, j);
    """)
    assert set(load_table_schema(conn, "t").unique) == {
        (("a", "NOCASE"),),
        (("b", "BINARY"), ("c", "BINARY")),
        (("c", "NOCASE"),),
        (("s", "BINARY"),),
    }
    assert set(load_table_schema(conn, "w").unique) == {
        (("u", "BINARY"),),
        (("k", "BINARY"), ("j", "BINARY")),
    }
    assert load_table_schema(conn, "t").pk == ("id",)


# -- a failing item fails alone -------------------------------------------------------------------


def test_failing_item_returns_its_error_and_others_apply(replicas: tuple[Replica, Replica]) -> None:
    r, _ = replicas
    good1 = item(1, ts(10), [ins(1, "one")])
    bad = item(
        2, ts(20), [ins(5, "partial"), RowChange("nosuch", "INSERT", key("nosuch", 1), None, {"id": 1})]
    )
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
    it = item(
        50, ts(10), ddl=["CREATE TABLE extra(id INTEGER PRIMARY KEY)", "CREATE INDEX extra_i ON extra(id)"]
    )
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
    out = r.apply(
        item(70, ts(10), ddl=drop),
        item(71, ts(20), ddl=drop),
        item(72, ts(30), ddl=rename),
        item(73, ts(40), ddl=rename),
    )
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
    after = item(
        3, ts(30), [RowChange("kv", "INSERT", key("kv", 2), None, {"id": 2, "v": "b", "n": 0, "w": "new"})]
    )
    out = r.apply(before, ddl, after)
    assert all(isinstance(o, ApplyOutcome) for o in out), out
    assert r.conn.execute("SELECT w FROM kv WHERE id = 2").fetchone() == ("new",)


def test_failing_ddl_rolls_back_all_its_statements(replicas: tuple[Replica, Replica]) -> None:
    r, _ = replicas
    bad = item(
        80, ts(10), ddl=["CREATE TABLE half(id INTEGER PRIMARY KEY)", "ALTER TABLE nosuch ADD COLUMN c INT"]
    )
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
