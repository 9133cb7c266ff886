"""This node's commit logs in memory (replication/catchup/log_memory.py), which read barriers ask.

Why these tests: a peer answers a read barrier's ``log_positions`` from this memory, and the asker
skips its pull when the memory says everything up to the peer's position is applied. If the memory ever
lagged the SQLite log (a row written without being noted, a file replaced without being reloaded), a
QUORUM read could miss an acknowledged write. So every figure is checked against the log itself, on a
real database file written by the real apply queue, also across DDL, a duplicate, a dropped and a
replaced file — and repeated questions must not go back to SQL.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from marmot.hlc import Timestamp
from marmot.replication.apply.applier import ApplyItem
from marmot.replication.apply.queue import ApplyQueues
from marmot.replication.catchup.log_memory import KEEP, TAIL_LIMIT, LogMemory
from marmot.replication.catchup.log_server import ReadConnections
from marmot.replication.changes import RowChange, encode_transaction
from marmot.replication.messages import decode_body, encode_body
from marmot.storage import replication_tables as rt
from marmot.storage.databases import DatabaseManager
from marmot.storage.rowkey import encode_row_key
from tests.support import run_async

DB = "app"
W = 1_767_225_600_000_000_000


def _item(txn_id: int, changes: list[RowChange] | None = None, ddl: list[str] | None = None) -> ApplyItem:
    at = Timestamp(W + txn_id, 0, 2)
    if ddl is not None:
        payload = encode_body("ddl", ddl=ddl)
    else:
        payload = encode_body("dml", rows=encode_transaction(DB, at, changes or [], txn_id))
    return ApplyItem(txn_id, at, 2, payload, decode_body(payload))


def _ins(pk: int) -> RowChange:
    return RowChange("kv", "INSERT", encode_row_key("kv", [pk]), None, {"id": pk, "v": f"v{pk}"})


class Node:
    """The parts of one node the memory lives among: files, apply queue, read connections."""

    def __init__(self, path: Path) -> None:
        self.dbs = DatabaseManager(path)
        self.dbs.create(DB)
        self.readers = ReadConnections(self.dbs)
        self.queues = ApplyQueues(self.dbs)
        self.queues.connection(DB)  # the replication tables, as the node makes them at start
        self.memory = LogMemory(self.dbs, self.readers.get, self.queues.connection)
        self.queues.on_applied = self.memory.note

    def sql(self) -> tuple[str, int, list[tuple[int, int]]]:
        conn = self.readers.get(DB)
        return rt.log_id(conn), rt.last_seq(conn), rt.log_after(conn, 0, 1_000_000)

    def check(self) -> None:
        """Every answer the memory gives equals what the SQLite log says."""
        log_id, last, entries = self.sql()
        assert self.memory.position(DB) == (log_id, last)
        for after in {0, last // 2, max(0, last - 3), last}:
            tail = self.memory.tail(DB, log_id, after)
            if tail is not None:  # None: "ask SQL" — allowed, never a wrong answer
                assert tail == [(s, t) for s, t in entries if s > after]
        txns = [t for _s, t in entries]
        assert self.memory.applied(DB, [*txns, 999_999]) == set(txns)

    def close(self) -> None:
        run_async(self.queues.close())
        self.readers.close()
        self.dbs.close()


def test_memory_follows_the_apply_path(tmp_path: Path) -> None:
    node = Node(tmp_path / "n")
    try:
        node.check()  # an empty log
        loads = node.memory.loads

        async def apply(*items: ApplyItem) -> None:
            for it in items:
                await node.queues.apply(DB, it)

        run_async(apply(_item(1, ddl=["CREATE TABLE kv (id INTEGER PRIMARY KEY, v TEXT)"])))
        node.check()  # DDL moved the file's generation: loaded again
        assert node.memory.loads == loads + 1
        loads = node.memory.loads
        run_async(apply(*[_item(t, [_ins(t)]) for t in range(2, 12)]))
        node.check()
        for _ in range(50):  # questions between applies: no SQL
            node.memory.position(DB)
            node.memory.tail(DB, node.sql()[0], 3)
        assert node.memory.loads == loads
        run_async(apply(_item(5, [_ins(5)])))  # a duplicate: no new log row
        node.check()
        log_id, last, entries = node.sql()
        assert node.memory.tail(DB, log_id, entries[2][0]) == entries[3:]
        assert node.memory.tail(DB, "another-log", 0) is None  # another log: the asker lists with SQL
        assert node.memory.tail(DB, log_id, last) == []
        run_async(apply(_item(20, ddl=["CREATE TABLE kv2 (id INTEGER PRIMARY KEY)"]), _item(21, [_ins(21)])))
        node.check()
        _, last, entries = node.sql()
        # a DDL keeps the window: an asker whose mark is older than the DDL is still answered from memory
        assert node.memory.tail(DB, log_id, entries[2][0]) == entries[3:]
    finally:
        node.close()


def test_a_long_gap_is_not_answered_from_memory(tmp_path: Path) -> None:
    node = Node(tmp_path / "n")
    try:

        async def fill() -> None:
            await node.queues.apply(DB, _item(1, ddl=["CREATE TABLE kv (id INTEGER PRIMARY KEY, v TEXT)"]))
            node.memory.position(DB)  # loaded: from here on every row is noted
            for t in range(2, KEEP + 50):
                await node.queues.apply(DB, _item(t, [_ins(t)]))

        run_async(fill())
        log_id, last, entries = node.sql()
        assert node.memory.tail(DB, log_id, 1) is None  # older than the remembered window
        assert node.memory.tail(DB, log_id, last - TAIL_LIMIT - 1) is None  # more than one answer carries
        assert node.memory.tail(DB, log_id, last - 10) == entries[-10:]
        node.check()
    finally:
        node.close()


def test_replaced_and_new_files_are_seen(tmp_path: Path) -> None:
    """A snapshot swaps the file (new log id, other seqs); a database created or dropped changes the
    list of names: the memory follows without being told."""
    a, b = Node(tmp_path / "a"), Node(tmp_path / "b")
    try:

        async def fill(node: Node, txns: range) -> None:
            await node.queues.apply(
                DB, _item(txns[0], ddl=["CREATE TABLE kv (id INTEGER PRIMARY KEY, v TEXT)"])
            )
            for t in txns[1:]:
                await node.queues.apply(DB, _item(t, [_ins(t)]))

        run_async(fill(a, range(1, 4)))
        run_async(fill(b, range(100, 120)))
        a.check()
        assert a.memory.names() == ["app", "marmot"]
        copy = tmp_path / "copy.db"
        b.queues.connection(DB).execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        shutil.copy(b.dbs.path(DB), copy)
        run_async(b.queues.close())
        a.readers.forget(DB)
        a.queues.forget(DB)
        a.dbs.replace_file(DB, copy)
        assert a.memory.position(DB) == (b.sql()[0], b.sql()[1])
        a.check()
        a.dbs.create("other")
        assert a.memory.names() == ["app", "marmot", "other"]
        a.dbs.drop("other")
        assert a.memory.names() == ["app", "marmot"]
    finally:
        a.close()
        b.close()


def test_when_applied_is_called_by_the_apply_path(tmp_path: Path) -> None:
    """A read barrier that finds a peer ahead only by transactions PREPAREd here waits for this node's
    own COMMIT of them: the apply path calls it back right after its COMMIT, not at a poll."""
    node = Node(tmp_path / "n")
    try:

        async def main() -> list[str]:
            calls: list[str] = []
            await node.queues.apply(DB, _item(1, ddl=["CREATE TABLE kv (id INTEGER PRIMARY KEY, v TEXT)"]))
            node.memory.when_applied(DB, [1], lambda: calls.append("already"))
            node.memory.when_applied(DB, [2, 3], lambda: calls.append("both"))
            forget = node.memory.when_applied(DB, [4], lambda: calls.append("forgotten"))
            forget()
            await node.queues.apply(DB, _item(2, [_ins(2)]))
            assert calls == ["already"]  # 3 is not applied yet
            await node.queues.apply(DB, _item(3, [_ins(3)]))
            await node.queues.apply(DB, _item(4, [_ins(4)]))
            return calls

        assert run_async(main()) == ["already", "both"]
    finally:
        node.close()
