"""AUTO_INCREMENT ids stay unique cluster-wide while three nodes insert into one table at once.

Why: every node accepts INSERTs, so a per-node counter (SQLite's rowid) would hand the same id to rows
written concurrently on two nodes — and with replication, one would silently overwrite the other. Ids
are minted from time and the node id instead. This test drives one client per node concurrently (single
and multi-row INSERTs), then checks that every node holds every row, all ids are distinct and identical
on every node, and that what each client was told (OK packet insert id and LAST_INSERT_ID(), the first
row's id for a multi-row INSERT, as in MySQL) is the id its rows carry.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import pymysql

from marmot.ids import MAX_SAFE_INTEGER, decode_compact_id
from marmot.testing import NodeProcess
from tests.support import cluster_fixture, connect, wait_until_equal

cluster = cluster_fixture(n=3)

SINGLE = 200  # single-row INSERTs per client
MULTI = 20  # 3-row INSERTs per client
ROWS_PER_MULTI = 3
RETRYABLE = 1213  # write conflict: MySQL's deadlock code, the client retries


@dataclass
class Client:
    """One node's writer and what it was told: (first seq of the statement, rows) -> reported id."""

    writer: int
    node: NodeProcess
    told: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)
    retries: int = 0
    error: BaseException | None = None

    def insert(self, cur, seq: int, rows: int) -> None:
        values = ", ".join(["(%s, %s, %s)"] * rows)
        args = [a for k in range(rows) for a in (self.writer, seq + k, f"w{self.writer}-{seq + k}")]
        for attempt in range(50):
            try:
                cur.execute(f"INSERT INTO ai_load (writer, seq, note) VALUES {values}", args)
                break
            except pymysql.err.OperationalError as err:
                if err.args[0] != RETRYABLE or attempt == 49:
                    raise
                self.retries += 1
                time.sleep(0.005 * (attempt + 1))
        ok_id = cur.lastrowid
        cur.execute("SELECT LAST_INSERT_ID()")
        self.told[(seq, rows)] = (ok_id, cur.fetchone()[0])

    def run(self, start: threading.Barrier) -> None:
        try:
            c = connect(self.node)
            cur = c.cursor()
            start.wait(30)
            seq = 0
            for i in range(SINGLE + MULTI):
                rows = ROWS_PER_MULTI if i % ((SINGLE + MULTI) // MULTI) == 0 else 1
                self.insert(cur, seq, rows)
                seq += rows
            c.close()
        except BaseException as err:  # reported by the main thread
            self.error = err


def test_auto_increment_unique_under_concurrent_inserts(cluster):
    n1 = cluster[0]
    c = connect(n1)
    c.cursor().execute(
        "CREATE TABLE ai_load (id BIGINT AUTO_INCREMENT PRIMARY KEY, writer INT NOT NULL, "
        "seq INT NOT NULL, note VARCHAR(20), UNIQUE KEY uk_ws (writer, seq))"
    )
    c.close()
    wait_until_equal(cluster, "SHOW TABLES LIKE 'ai_load'", expected=[("ai_load",)])

    clients = [Client(i + 1, node) for i, node in enumerate(cluster)]
    start = threading.Barrier(len(clients))
    threads = [threading.Thread(target=cl.run, args=(start,)) for cl in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(100)
    for cl in clients:
        assert cl.error is None, f"client on node {cl.writer} failed: {cl.error!r}"
    per_client = SINGLE + MULTI * ROWS_PER_MULTI
    total = per_client * len(clients)

    rows = wait_until_equal(cluster, "SELECT id, writer, seq FROM ai_load ORDER BY id", timeout=30)[0]
    assert len(rows) == total, f"{len(rows)} rows on every node, expected {total}"
    ids = [r[0] for r in rows]
    assert len(set(ids)) == total, "duplicate AUTO_INCREMENT ids"
    assert all(0 < i <= MAX_SAFE_INTEGER for i in ids)  # compact mode: JavaScript-safe
    id_of = {(w, s): i for i, w, s in rows}
    assert len(id_of) == total

    for cl in clients:
        assert len(cl.told) == SINGLE + MULTI
        reported = []
        for (seq, n), (ok_id, last_id) in sorted(cl.told.items()):
            assert ok_id == last_id, (
                f"node {cl.writer} seq {seq}: OK packet id {ok_id} != LAST_INSERT_ID {last_id}"
            )
            # LAST_INSERT_ID() of a multi-row INSERT is the first row's id (MySQL)
            assert id_of[(cl.writer, seq)] == last_id, f"node {cl.writer} seq {seq}: told {last_id}"
            mine = [id_of[(cl.writer, seq + k)] for k in range(n)]
            assert mine == sorted(mine) and len(set(mine)) == n
            reported.append(last_id)
        assert reported == sorted(reported), f"node {cl.writer}: ids not increasing for one client"
        # minted by the node that took the INSERT: its id sits in the id's node bits
        assert {decode_compact_id(id_of[(cl.writer, s)]).node_bits for s in range(per_client)} == {cl.writer}
    print(f"retries on {RETRYABLE}: {[cl.retries for cl in clients]}")
