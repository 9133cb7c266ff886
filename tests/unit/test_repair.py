"""Row-by-row repair of silent divergence (``applier.repair_rows``, served by ``digest.read_rows`` and
``digest.table_versions``; driven by anti-entropy).

Why: anti-entropy finds a table whose digest differs from a peer's for good, and pulls back from that
peer every key the peer holds at a newer version. The write must be last-writer-wins exactly like
applying a change at that version (older versions skipped, tombstones honoured, UNIQUE collisions
resolved by version), keep the incremental digest equal to a full recompute, and log no transaction —
so that two replicas repairing from each other end with equal rows and equal digests.
"""

from __future__ import annotations

from marmot.replication.apply.applier import RepairOutcome, RepairRow, repair_rows
from marmot.replication.catchup import digest
from marmot.storage import replication_tables as rt
from tests.unit.test_replication_apply import Replica, dele, ins, item, key, ts, upd


def repair(r: Replica, table: str, rows: list[RepairRow]) -> RepairOutcome:
    r.conn.execute("BEGIN IMMEDIATE")
    try:
        out = repair_rows(r.conn, r.schema, table, rows)
    except BaseException:
        r.conn.execute("ROLLBACK")
        raise
    r.conn.execute("COMMIT")
    return out


def v3(t) -> tuple[int, int, int]:  # noqa: ANN001
    return (t.wall_ns, t.logical, t.node_id)


def assert_consistent(r: Replica) -> None:
    stored = digest.table_digests(r.conn)
    assert stored == {t: v for t, v in rt.compute_digests(r.conn).items() if v != (0, 0)}
    assert digest.verify_digests(r.conn) == {}


def pull(dst: Replica, src: Replica, table: str) -> RepairOutcome:
    """What anti-entropy does: keys newer (or missing) on ``src`` are read there and repaired on ``dst``."""
    remote = digest.all_table_versions(src.conn, table)
    local = digest.all_table_versions(dst.conn, table)
    wanted = [k for k, (v, _d) in sorted(remote.items()) if (m := local.get(k)) is None or v > m[0]]
    rows = [(k, v, d, img) for k, v, d, img in digest.read_rows(src.conn, table, wanted) if v is not None]
    return repair(dst, table, rows)


def test_older_skipped_newer_applied_deleted_tombstoned(pair: tuple[Replica, Replica]) -> None:
    r, _ = pair
    r.apply(item(1, ts(10), [ins(1, "a", 1), ins(2, "b", 2), ins(3, "c", 3)]))
    logged = r.logged()
    out = repair(
        r,
        "kv",
        [
            (key("kv", 1), v3(ts(5)), False, {"id": 1, "v": "old", "n": 9}),  # older: skipped
            (key("kv", 2), v3(ts(20)), False, {"id": 2, "v": "new", "n": 7}),  # newer: applied
            (key("kv", 3), v3(ts(20, node=2)), True, None),  # newer delete: tombstone
            (key("kv", 4), v3(ts(15)), False, {"id": 4, "v": "missing", "n": 0}),  # missing here: applied
            (key("kv", 5), v3(ts(15)), True, None),  # tombstone of an unknown key
        ],
    )
    assert (out.repaired, out.skipped, out.failed) == (4, 1, 0)
    assert [row[1][1] for row in r.rows()] == ["a", "new", "missing"]
    assert r.version(key("kv", 1)) == (*v3(ts(10)), 0)
    assert r.version(key("kv", 2)) == (*v3(ts(20)), 0)
    assert r.version(key("kv", 3)) == (*v3(ts(20, node=2)), 1)
    assert r.version(key("kv", 5)) == (*v3(ts(15)), 1)
    assert r.logged() == logged  # a repair is not a transaction
    assert digest.table_digests(r.conn)["kv"][1] == 3
    assert_consistent(r)
    # the same version again: nothing to do
    again = repair(r, "kv", [(key("kv", 2), v3(ts(20)), False, {"id": 2, "v": "other", "n": 0})])
    assert (again.repaired, again.skipped) == (0, 1)


def test_bad_rows_fail_alone(pair: tuple[Replica, Replica]) -> None:
    r, _ = pair
    out = repair(
        r,
        "kv",
        [
            (key("kv", 1), v3(ts(10)), False, {"id": 1, "nosuch": 1}),  # unknown column
            (key("names", "x"), v3(ts(10)), False, {"name": "x", "n": 1}),  # key of another table
            (key("kv", 2), v3(ts(10)), False, None),  # live without an image
            (key("kv", 3), v3(ts(10)), False, {"id": 3, "v": "ok", "n": 0}),
        ],
    )
    assert (out.repaired, out.failed) == (1, 3)
    assert [row[0][1] for row in r.rows()] == [3]
    assert_consistent(r)


def test_unique_collision_resolved_by_version(pair: tuple[Replica, Replica]) -> None:
    r, _ = pair
    r.apply(item(1, ts(10), [ins(1, "X", table="slots")._replace(new={"id": 1, "code": "X"})]))
    out = repair(r, "slots", [(key("slots", 2), v3(ts(20)), False, {"id": 2, "code": "X"})])
    assert out.repaired == 1
    assert r.rows("slots") == [(("int", 2), ("str", "X"))]
    assert r.version(key("slots", 1)) == (*v3(ts(10)), 1)  # tombstoned at its own version
    assert_consistent(r)


def test_two_replicas_repairing_from_each_other_converge(pair: tuple[Replica, Replica]) -> None:
    a, b = pair
    common = item(1, ts(10), [ins(i, f"v{i}", i) for i in range(1, 9)])
    a.apply(common)
    b.apply(common)
    a.apply(item(2, ts(20), [upd(1, "a-new"), dele(2)]))  # only a saw these
    b.apply(item(3, ts(30), [upd(3, "b-new"), ins(9, "b9")]))  # only b saw these
    a.apply(item(4, ts(40), [upd(3, "a-newest")]))  # newer than b's update of 3
    b.apply(item(5, ts(50), [dele(1)]))  # newer than a's update of 1
    assert digest.table_digests(a.conn) != digest.table_digests(b.conn)
    pull(a, b, "kv")
    pull(b, a, "kv")
    assert a.rows() == b.rows()
    assert digest.table_digests(a.conn) == digest.table_digests(b.conn)
    assert a.versions() == b.versions()
    assert [row[0][1] for row in a.rows()] == [3, 4, 5, 6, 7, 8, 9]
    assert a.rows()[0][1][1] == "a-newest"
    assert_consistent(a)
    assert_consistent(b)
    assert digest.recompute_digests(a.conn) == digest.table_digests(a.conn)


def test_served_versions_and_rows(pair: tuple[Replica, Replica]) -> None:
    """``table_versions`` pages through live keys and tombstones; ``read_rows`` answers full images."""
    r, _ = pair
    r.apply(item(1, ts(10), [ins(i, f"v{i}", i) for i in range(1, 6)]))
    r.apply(item(2, ts(20), [dele(2)]))
    r.conn.execute("INSERT INTO nopk VALUES ('c', 1)")  # a rowid table without a declared key
    rid = r.conn.last_insert_rowid()
    page = digest.table_versions(r.conn, "kv", None, 3)
    assert [k for k, _v, _d in page] == [key("kv", i) for i in (1, 2, 3)]
    assert page[1] == (key("kv", 2), v3(ts(20)), True)
    rest = digest.table_versions(r.conn, "kv", page[-1][0], 3)
    assert [k for k, _v, _d in rest] == [key("kv", 4), key("kv", 5)]
    got = digest.read_rows(r.conn, "kv", [key("kv", 1), key("kv", 2), key("kv", 99)])
    assert got == [
        (key("kv", 1), v3(ts(10)), False, {"id": 1, "v": "v1", "n": 1}),
        (key("kv", 2), v3(ts(20)), True, None),
        (key("kv", 99), None, False, None),
    ]
    # a rowid table: the key carries the rowid, the image the columns; repair writes both back
    r.conn.execute(
        f"INSERT INTO {rt.ROW_VERSION} (pk, tbl, wall, logical, node, deleted) VALUES (?, 'nopk', ?, ?, ?, 0)",
        (key("nopk", rid), *v3(ts(10))),
    )
    (row,) = digest.read_rows(r.conn, "nopk", [key("nopk", rid)])
    assert row[3] == {"code": "c", "n": 1}
    _, other = pair
    assert repair(other, "nopk", [row]).repaired == 1
    assert other.conn.execute("SELECT rowid, code, n FROM nopk").fetchall() == [(rid, "c", 1)]
