"""Per-table digests (replication/catchup/digest.py, kept by replication/apply/applier.py).

Why these tests: a digest is only useful if two nodes holding the same rows hold the same digest,
whatever order they applied transactions in, and if the number kept incrementally by the applier —
the one served and compared — always equals the one computed from the row versions. So the central
test applies random histories (inserts, updates, deletes, several tables, UNIQUE collisions, stale
changes, duplicates) in random orders and batches, and after every batch holds the stored digests to
a full recompute; two replicas given the same transactions in different orders must end equal.
"""

from __future__ import annotations

import random
from pathlib import Path

import apsw
import pytest

from marmot.replication.apply.applier import ApplyItem
from marmot.replication.catchup import digest
from marmot.replication.changes import RowChange
from marmot.storage import replication_tables as rt
from tests.unit.test_replication_apply import Replica, W, item, key, ts, urow


def nrow(name: str, n: int = 1) -> RowChange:
    return RowChange("names", "INSERT", key("names", name), None, {"name": name, "n": n})


def stored(r: Replica) -> dict[str, tuple[int, int]]:
    return digest.table_digests(r.conn)


def computed(r: Replica) -> dict[str, tuple[int, int]]:
    return {t: v for t, v in rt.compute_digests(r.conn).items() if v != (0, 0)}


def assert_consistent(r: Replica) -> None:
    """The incremental digests equal a recompute from the row versions."""
    assert stored(r) == computed(r)
    assert digest.verify_digests(r.conn) == {}


# -- random histories ---------------------------------------------------------------------------------


def random_change(rng: random.Random, table: str, pk: object) -> RowChange:
    """A change of one key; the images are plausible, their exact old values do not matter to apply."""
    if table == "names":
        k, col = key("names", pk), "name"
        image = {"name": pk, "n": rng.randrange(100)}
    elif table == "slots":
        k, col = key("slots", pk), "id"
        image = {"id": pk, "code": rng.choice(["A", "B", "C", None])}
    else:
        k, col = key(table, pk), "id"
        image = {"id": pk, "v": f"v{rng.randrange(1000)}", "n": rng.randrange(100)}
    op = rng.choice(["INSERT", "INSERT", "UPDATE", "DELETE"])
    if op == "INSERT":
        return RowChange(table, op, k, None, image)
    old = {**image, col: pk}
    return RowChange(table, op, k, old, image if op == "UPDATE" else None)


def random_history(rng: random.Random, tables: tuple[str, ...], n: int = 120) -> list[ApplyItem]:
    items = []
    stamps = rng.sample(range(1, 50 * n), n)  # distinct walls; ties are broken by node id anyway
    for i, wall in enumerate(stamps):
        changes: dict[bytes, RowChange] = {}
        for _ in range(rng.choice([1, 1, 1, 2, 3, 5])):
            table = rng.choice(tables)
            pk: object = (
                rng.choice(["al", "bob", "cy", "dee", "ed"]) if table == "names" else rng.randrange(12)
            )
            c = random_change(rng, table, pk)
            changes.setdefault(c.key, c)  # a transaction's changes are merged per key
        at = ts(wall, node=rng.randrange(1, 4), logical=rng.randrange(3))
        items.append(item(100 + i, at, list(changes.values())))
    return items


def apply_in_random_batches(rng: random.Random, r: Replica, items: list[ApplyItem]) -> None:
    pos = 0
    while pos < len(items):
        size = rng.choice([1, 1, 2, 5, 11])
        out = r.apply(*items[pos : pos + size])
        assert not any(isinstance(o, Exception) for o in out), out
        assert_consistent(r)
        pos += size


@pytest.mark.parametrize("seed", range(6))
def test_incremental_equals_recompute_and_order_does_not_matter(
    pair: tuple[Replica, Replica], seed: int
) -> None:
    """Tables without UNIQUE indexes: LWW converges exactly, so the digests must be equal too."""
    rng = random.Random(seed)
    a, b = pair
    history = random_history(rng, ("kv", "names"))
    dupes = rng.sample(history, 10)  # transactions delivered twice (COMMIT retried, fetched twice)
    order_a = history + dupes
    order_b = history[:] + dupes
    rng.shuffle(order_a)
    rng.shuffle(order_b)
    apply_in_random_batches(rng, a, order_a)
    apply_in_random_batches(rng, b, order_b)
    assert a.versions() == b.versions()
    assert stored(a) == stored(b)
    assert set(stored(a)) == {"kv", "names"}
    live = a.conn.execute(
        f"SELECT COUNT(*) FROM {rt.ROW_VERSION} WHERE deleted = 0 AND tbl = 'kv'"
    ).fetchone()[0]
    assert stored(a)["kv"][1] == live == len(a.rows("kv"))


@pytest.mark.parametrize("seed", range(6))
def test_incremental_equals_recompute_with_unique_collisions(
    pair: tuple[Replica, Replica], seed: int
) -> None:
    """``slots`` has a UNIQUE column drawn from three values: collisions, losers, rows tombstoned at
    their own versions. Whatever the applier decides, the digest must describe the versions it wrote."""
    rng = random.Random(1000 + seed)
    a, b = pair
    history = random_history(rng, ("slots", "kv", "slots"))
    apply_in_random_batches(rng, a, history)
    shuffled = history[:]
    rng.shuffle(shuffled)
    apply_in_random_batches(rng, b, shuffled)


# -- single behaviours ------------------------------------------------------------------------------------


def test_insert_update_delete_contributions(pair: tuple[Replica, Replica]) -> None:
    r, _ = pair
    k = key("kv", 1)
    r.apply(item(1, ts(10), [urow("kv", 1, v="a", n=1)]))
    assert stored(r) == {"kv": (rt.row_hash(k, W + 10, 0, 1), 1)}
    r.apply(
        item(2, ts(20, node=2, logical=3), [RowChange("kv", "UPDATE", k, {"id": 1}, {"id": 1, "v": "b"})])
    )
    assert stored(r) == {"kv": (rt.row_hash(k, W + 20, 3, 2), 1)}
    # the tombstone removes the contribution; a table without live replicated rows has no digest
    r.apply(item(3, ts(30), [RowChange("kv", "DELETE", k, {"id": 1}, None)]))
    assert stored(r) == {}
    assert r.conn.execute(f"SELECT digest, rows FROM {rt.TABLE_DIGEST} WHERE tbl = 'kv'").fetchone() == (0, 0)
    # an older change arriving late is skipped: nothing changes
    r.apply(item(4, ts(15), [urow("kv", 1, v="late")]))
    assert stored(r) == {}
    assert_consistent(r)


def test_same_transaction_twice_counts_once(pair: tuple[Replica, Replica]) -> None:
    r, _ = pair
    it = item(1, ts(10), [urow("kv", 1, v="a"), urow("kv", 2, v="b"), nrow("al")])
    r.apply(it, it)
    r.apply(it)
    assert stored(r)["kv"][1] == 2 and stored(r)["names"][1] == 1
    assert_consistent(r)


def test_unique_collision_loser_in_both_orders(pair: tuple[Replica, Replica]) -> None:
    """Row 1 (older) and row 2 (newer) both take code 'X'. Winner first: row 1's change loses and is
    tombstoned; loser first: row 1 is deleted and tombstoned when row 2 arrives. Either way only row 2
    counts."""
    a, b = pair
    old = item(40, ts(10, node=1), [urow("slots", 1, code="X")])
    new = item(41, ts(20, node=2), [urow("slots", 2, code="X")])
    a.apply(old)
    assert stored(a) == {"slots": (rt.row_hash(key("slots", 1), W + 10, 0, 1), 1)}
    a.apply(new)
    b.apply(new)
    b.apply(old)
    want = {"slots": (rt.row_hash(key("slots", 2), W + 20, 0, 2), 1)}
    assert stored(a) == stored(b) == want
    assert_consistent(a)
    assert_consistent(b)


def test_unversioned_row_removed_by_collision_never_counted(pair: tuple[Replica, Replica]) -> None:
    """A row written outside replication has no version, so it never counted; removing it on a
    collision (tombstone at (0, 0, 0)) must not subtract anything."""
    r, _ = pair
    r.conn.execute("INSERT INTO slots VALUES (3, 'X')")
    r.apply(item(41, ts(20, node=2), [urow("slots", 2, code="X")]))
    assert stored(r) == {"slots": (rt.row_hash(key("slots", 2), W + 20, 0, 2), 1)}
    assert_consistent(r)


def test_drop_table_forgets_versions_and_digest(pair: tuple[Replica, Replica]) -> None:
    r, _ = pair
    r.apply(item(1, ts(10), [urow("kv", i, v="x") for i in range(5)] + [nrow("al")]))
    r.apply(item(2, ts(20), [RowChange("kv", "DELETE", key("kv", 0), {"id": 0}, None)]))  # a tombstone too
    assert set(stored(r)) == {"kv", "names"}
    r.apply(item(3, ts(30), ddl=['DROP TABLE "kv"']))
    assert set(stored(r)) == {"names"}
    assert r.conn.execute(f"SELECT COUNT(*) FROM {rt.ROW_VERSION} WHERE tbl = 'kv'").fetchone() == (0,)
    assert r.conn.execute(f"SELECT tbl FROM {rt.TABLE_DIGEST}").fetchall() == [("names",)]
    assert_consistent(r)
    # a new table of the same name starts from nothing
    r.apply(
        item(4, ts(40), ddl=["CREATE TABLE kv(id INTEGER PRIMARY KEY, v TEXT, n INT)"]),
        item(5, ts(50), [urow("kv", 1, v="again")]),
    )
    assert stored(r)["kv"] == (rt.row_hash(key("kv", 1), W + 50, 0, 1), 1)
    assert_consistent(r)


def test_rename_drops_the_old_names_versions(pair: tuple[Replica, Replica]) -> None:
    """Keys embed the table name, so after a RENAME the rows live on without versions (like rows that
    never went through replication) and the old name's versions and digest are forgotten."""
    r, _ = pair
    r.apply(item(1, ts(10), [urow("kv", 1, v="x"), urow("kv", 2, v="y")]))
    r.apply(item(2, ts(20), ddl=['ALTER TABLE "kv" RENAME TO "kv2"']))
    assert stored(r) == {}
    assert len(r.rows("kv2")) == 2
    assert r.versions() == []
    r.apply(
        item(3, ts(30), [RowChange("kv2", "UPDATE", key("kv2", 1), {"id": 1}, {"id": 1, "v": "z", "n": 0})])
    )
    assert stored(r) == {"kv2": (rt.row_hash(key("kv2", 1), W + 30, 0, 1), 1)}
    assert_consistent(r)


def test_other_ddl_keeps_digests(pair: tuple[Replica, Replica]) -> None:
    r, _ = pair
    r.apply(item(1, ts(10), [urow("kv", 1, v="x")]))
    before = stored(r)
    r.apply(item(2, ts(20), ddl=['ALTER TABLE "kv" ADD COLUMN "w" TEXT', "CREATE TABLE other(id INT)"]))
    assert stored(r) == before


def test_file_made_before_digests_gets_them_computed(tmp_path: Path) -> None:
    """ensure_tables on a file with row versions but no digest table computes the digests once."""
    r = Replica(tmp_path / "old.db")
    r.apply(item(1, ts(10), [urow("kv", 1, v="x"), nrow("al")]))
    want = stored(r)
    r.conn.execute(f"DROP TABLE {rt.TABLE_DIGEST}")
    assert stored(r) == {}
    rt.ensure_tables(r.conn)
    assert stored(r) == want
    rt.ensure_tables(r.conn)  # and then nothing more
    assert stored(r) == want
    r.conn.close()


def test_recompute_repairs_and_verify_reports(pair: tuple[Replica, Replica]) -> None:
    r, _ = pair
    r.apply(item(1, ts(10), [urow("kv", 1, v="x"), urow("kv", 2, v="y"), nrow("al")]))
    good = stored(r)
    r.conn.execute(f"UPDATE {rt.TABLE_DIGEST} SET digest = digest + 1 WHERE tbl = 'kv'")
    bad = digest.verify_digests(r.conn)
    assert list(bad) == ["kv"] and bad["kv"][1] == good["kv"]
    assert digest.recompute_digests(r.conn, ["kv"]) == {"kv": good["kv"]}
    assert stored(r) == good
    assert digest.recompute_digests(r.conn) == good


def test_stored_sum_wraps_modulo_2_64(tmp_path: Path) -> None:
    """SQLite turns an overflowing integer sum into a REAL: the stored sum must wrap exactly instead."""
    conn = apsw.Connection(str(tmp_path / "w.db"))
    rt.ensure_tables(conn)
    rng = random.Random(7)
    total = 0
    edges = [0, 1, -1, (1 << 63) - 1, 1 << 63, (1 << 64) - 1, 1 << 62]
    for i in range(3000):
        d = rng.choice(edges) if i % 3 == 0 else rng.getrandbits(64) - rng.getrandbits(64)
        total += d
        rt.add_digests(conn, {"t": [d, 1], "u": [-d, 0]} if i % 5 == 0 else {"t": [d, 1]})
        row = conn.execute(f"SELECT digest, typeof(digest) FROM {rt.TABLE_DIGEST} WHERE tbl = 't'").fetchone()
        assert row == (rt.to_signed(total), "integer")
    assert digest.table_digests(conn)["t"] == (total % (1 << 64), 3000)
    conn.close()


def test_row_hash_is_fixed() -> None:
    """The hash is part of the wire contract between nodes (digests are compared across versions of
    Marmot): first 8 bytes, big-endian, of blake2b(key · >QHQ version)."""
    import hashlib
    import struct

    k = key("kv", 1)
    want = int.from_bytes(hashlib.blake2b(k + struct.pack(">QHQ", W, 3, 2)).digest()[:8], "big")
    assert rt.row_hash(k, W, 3, 2) == want
    assert rt.hash_packed(k, rt.packed_version(W, 3, 2)) == want
    assert rt.row_hash(k, W, 1 << 20, 2) == rt.row_hash(k, W, (1 << 20) & 0xFFFF, 2)  # wrapped, not refused


# -- keys, documents, comparisons ------------------------------------------------------------------------


def test_table_keys_pages_and_diff(pair: tuple[Replica, Replica]) -> None:
    a, b = pair
    a.apply(item(1, ts(10), [urow("kv", i, v="x") for i in range(1, 8)] + [nrow("al")]))
    b.apply(item(1, ts(10), [urow("kv", i, v="x") for i in range(1, 8)] + [nrow("al")]))
    b.apply(item(2, ts(20), [RowChange("kv", "DELETE", key("kv", 3), {"id": 3}, None)]))
    b.apply(item(3, ts(30), [urow("kv", 5, v="newer")]))
    pages, after = [], None
    while True:
        page = digest.table_keys(a.conn, "kv", after, limit=3)
        pages.append(page)
        if len(page) < 3:
            break
        after = page[-1][0]
    keys_a = [k for p in pages for k in p]
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [k for k, _ in keys_a] == sorted(key("kv", i) for i in range(1, 8))
    assert all(v == (W + 10, 0, 1) for _, v in keys_a)
    keys_b = digest.table_keys(b.conn, "kv")
    assert digest.diff_keys(keys_a, keys_b) == [
        (key("kv", 3), (W + 10, 0, 1), None),
        (key("kv", 5), (W + 10, 0, 1), (W + 30, 0, 1)),
    ]
    assert digest.diff_keys(keys_a, keys_a) == []
    assert digest.table_keys(a.conn, "nosuch") == []
    assert digest.differing_tables(stored(a), stored(b)) == ["kv"]


def test_documents_round_trip(pair: tuple[Replica, Replica]) -> None:
    r, _ = pair
    r.apply(item(1, ts(10), [urow("kv", 1, v="x"), urow("kv", 2, v="y")]))
    doc = digest.digest_document(r.conn, "marmot")
    assert doc["database"] == "marmot" and doc["schema_version"] == 0
    assert set(doc["tables"]) == {"kv"} and doc["tables"]["kv"]["rows"] == 2
    assert len(doc["tables"]["kv"]["digest"]) == 16
    assert digest.parse_document(doc) == stored(r)
    keys = digest.keys_document(r.conn, "marmot", "kv", None, 1)
    assert keys["keys"] == [[key("kv", 1).hex(), [W + 10, 0, 1]]] and keys["next"] == key("kv", 1).hex()
    last = digest.keys_document(r.conn, "marmot", "kv", bytes.fromhex(keys["next"]), 1)
    assert last["keys"][0][0] == key("kv", 2).hex()
    assert digest.keys_document(r.conn, "marmot", "kv", key("kv", 2), 1) == {
        "database": "marmot",
        "table": "kv",
        "keys": [],
        "next": None,
    }
    for bad in (
        None,
        {"tables": []},
        {"tables": {"t": {"digest": 5, "rows": 1}}},
        {"tables": {"t": {"digest": "zz", "rows": 1}}},
    ):
        with pytest.raises(ValueError):
            digest.parse_document(bad)


def test_file_without_replication_tables_has_no_digests(tmp_path: Path) -> None:
    conn = apsw.Connection(str(tmp_path / "plain.db"))
    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY)")
    assert digest.table_digests(conn) == {}
    assert digest.table_keys(conn, "t") == []
    assert digest.digest_document(conn, "plain") == {"database": "plain", "schema_version": 0, "tables": {}}
    conn.close()
