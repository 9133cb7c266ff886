"""Write intents (replication/commit/intents.py): row intents and the database-wide DDL intent.

Why: intents are what turns two concurrent writes of one row into a 1213 instead of a lost update,
and what serialises DDL against everything else in a database. A conflict must take nothing, release
must free exactly the owner's keys, and databases must not interfere. The last test drives random
operations against a small reference model with the documented rules.
"""

from __future__ import annotations

import random

from marmot.replication.commit.intents import IntentTable
from marmot.storage.rowkey import encode_row_key

K1, K2, K3 = (encode_row_key("t", [i]) for i in (1, 2, 3))


def test_acquire_and_owner() -> None:
    it = IntentTable()
    assert it.acquire("db", 10, [K1, K2], ddl=False) is None
    assert it.owner("db", K1) == 10 and it.owner("db", K2) == 10
    assert it.owner("db", K3) is None
    assert it.owner("other", K1) is None
    assert it.count() == 2


def test_conflict_returns_owner_and_takes_nothing() -> None:
    it = IntentTable()
    it.acquire("db", 10, [K2], ddl=False)
    assert it.acquire("db", 11, [K1, K2, K3], ddl=False) == 10
    assert it.owner("db", K1) is None and it.owner("db", K3) is None  # all or nothing
    assert it.owner("db", K2) == 10
    assert it.count() == 1
    it.release("db", 11)  # releasing the loser does not touch the winner's keys
    assert it.owner("db", K2) == 10


def test_reacquire_own_keys_is_allowed() -> None:
    it = IntentTable()
    assert it.acquire("db", 10, [K1], ddl=False) is None
    assert it.acquire("db", 10, [K1, K2], ddl=False) is None
    assert it.count() == 2
    it.release("db", 10)
    assert it.count() == 0
    assert it.owner("db", K1) is None and it.owner("db", K2) is None


def test_release_frees_keys_for_others_and_is_idempotent() -> None:
    it = IntentTable()
    it.acquire("db", 10, [K1, K2], ddl=False)
    it.acquire("db", 11, [K3], ddl=False)
    it.release("db", 10)
    it.release("db", 10)
    it.release("nodb", 10)
    it.release("db", 999)
    assert it.owner("db", K3) == 11
    assert it.acquire("db", 12, [K1, K2], ddl=False) is None
    assert it.owner("db", K1) == 12


def test_databases_are_independent() -> None:
    it = IntentTable()
    assert it.acquire("a", 10, [K1], ddl=False) is None
    assert it.acquire("b", 11, [K1], ddl=False) is None
    assert it.acquire("c", 12, [], ddl=True) is None  # DDL in c ignores a and b
    assert it.acquire("a", 13, [K2], ddl=False) is None  # and a ignores c's DDL
    it.release("b", 10)  # wrong database: nothing happens
    assert it.owner("a", K1) == 10


def test_ddl_conflicts_with_live_dml() -> None:
    it = IntentTable()
    it.acquire("db", 10, [K1], ddl=False)
    assert it.acquire("db", 20, [], ddl=True) == 10
    # the failed DDL left no database-wide intent behind: other DML still prepares
    assert it.acquire("db", 11, [K2], ddl=False) is None
    it.release("db", 10)
    it.release("db", 11)
    assert it.acquire("db", 20, [], ddl=True) is None


def test_keyless_dml_still_blocks_ddl() -> None:
    """A prepared DML transaction with no row changes is still undecided: DDL must wait for it."""
    it = IntentTable()
    assert it.acquire("db", 10, [], ddl=False) is None
    assert it.acquire("db", 20, [], ddl=True) == 10
    it.release("db", 10)
    assert it.acquire("db", 20, [], ddl=True) is None


def test_dml_and_second_ddl_conflict_with_live_ddl() -> None:
    it = IntentTable()
    assert it.acquire("db", 20, [], ddl=True) is None
    assert it.acquire("db", 10, [K1], ddl=False) == 20
    assert it.acquire("db", 21, [], ddl=True) == 20
    assert it.owner("db", K1) is None
    assert it.acquire("db", 20, [K1], ddl=False) is None  # the DDL owner itself may take rows
    it.release("db", 20)
    assert it.owner("db", K1) is None
    assert it.acquire("db", 10, [K1], ddl=False) is None
    assert it.acquire("db", 21, [], ddl=True) == 10


def test_ddl_after_own_dml() -> None:
    it = IntentTable()
    assert it.acquire("db", 10, [K1], ddl=False) is None
    assert it.acquire("db", 10, [], ddl=True) is None
    assert it.acquire("db", 11, [K2], ddl=False) == 10
    it.release("db", 10)
    assert it.acquire("db", 11, [K2], ddl=False) is None


A1, B1 = encode_row_key("a", [1]), encode_row_key("b", [1])
A, B = frozenset({"a"}), frozenset({"b"})


def test_table_scoped_ddl_leaves_dml_on_other_tables_alone() -> None:
    """A DDL that changes table a conflicts with DML on a, not with DML on b (sysbench's parallel prepare:
    CREATE INDEX on one table while rows go into the next)."""
    it = IntentTable()
    assert it.acquire("db", 10, [B1], ddl=False, tables=B) is None
    assert it.acquire("db", 20, [], ddl=True, tables=A) is None  # DML on b does not block DDL on a
    assert it.acquire("db", 11, [A1], ddl=False, tables=A) == 20  # DML on a waits for the DDL on a
    assert it.acquire("db", 12, [encode_row_key("b", [2])], ddl=False, tables=B) is None
    assert it.acquire("db", 13, [A1], ddl=False) == 20  # DML whose tables are unknown: conflicts
    assert it.acquire("db", 21, [], ddl=True, tables=B) == 20  # DDLs stay serialised per database
    it.release("db", 20)
    assert it.acquire("db", 11, [A1], ddl=False, tables=A) is None


def test_table_scoped_ddl_conflicts_with_live_dml_on_its_tables() -> None:
    it = IntentTable()
    assert it.acquire("db", 10, [A1], ddl=False, tables=A) is None
    assert it.acquire("db", 20, [], ddl=True, tables=A | B) == 10
    assert it.acquire("db", 21, [], ddl=True) == 10  # a DDL of unknown tables covers the database
    assert it.acquire("db", 22, [], ddl=True, tables=B) is None
    it.release("db", 22)
    it.release("db", 10)
    assert it.acquire("db", 20, [], ddl=True, tables=A | B) is None
    assert it.acquire("db", 11, [B1], ddl=False, tables=B) == 20


def test_dml_registered_without_tables_blocks_every_ddl() -> None:
    it = IntentTable()
    assert it.acquire("db", 10, [A1], ddl=False) is None
    assert it.acquire("db", 20, [], ddl=True, tables=B) == 10
    it.release("db", 10)
    assert it.acquire("db", 20, [], ddl=True, tables=B) is None


class Model:
    """The documented rules, written plainly: the reference the table is compared with."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, bytes], int] = {}
        self.live: dict[str, set[int]] = {}  # db -> txns holding anything (rows or a DML registration)
        self.ddl: dict[str, int] = {}

    def acquire(self, db: str, txn: int, keys: list[bytes], ddl: bool) -> int | None:
        live = self.live.setdefault(db, set())
        if db in self.ddl and self.ddl[db] != txn:
            return self.ddl[db]
        if ddl:
            others = sorted(live - {txn})
            if others:
                return -1  # some other live txn; which one is reported is not specified
        for k in keys:
            owner = self.rows.get((db, k))
            if owner is not None and owner != txn:
                return owner
        if ddl:
            self.ddl[db] = txn
        for k in keys:
            self.rows[(db, k)] = txn
        if keys or not ddl:
            live.add(txn)
        return None

    def release(self, db: str, txn: int) -> None:
        if self.ddl.get(db) == txn:
            del self.ddl[db]
        self.live.get(db, set()).discard(txn)
        for k in [k for k, t in self.rows.items() if k[0] == db and t == txn]:
            del self.rows[k]


def test_random_operations_match_model() -> None:
    """Seeded random acquire/release sequences: same answers and same owners as the model."""
    rng = random.Random(1234)
    keys = [encode_row_key("t", [i]) for i in range(6)]
    for _round in range(40):
        it, model = IntentTable(), Model()
        for _step in range(60):
            db = rng.choice(("a", "b"))
            txn = rng.randint(1, 5)
            if rng.random() < 0.35:
                it.release(db, txn)
                model.release(db, txn)
            else:
                ddl = rng.random() < 0.15
                ks = rng.sample(keys, rng.randint(0, 0 if ddl else 3))
                got, want = it.acquire(db, txn, ks, ddl), model.acquire(db, txn, ks, ddl)
                if want == -1:
                    assert got is not None and got != txn and got in model.live[db]
                else:
                    assert got == want
            for d in ("a", "b"):
                for k in keys:
                    assert it.owner(d, k) == model.rows.get((d, k))
            assert it.count() == len(model.rows)
