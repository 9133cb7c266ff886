"""The serving side of anti-entropy: this node's commit logs, log positions, digests' repair rows and
snapshots, answered to peers that pull from it.

A mixin of ``AntiEntropy`` (anti_entropy.py, the pulling side), split out so each file keeps one job.
Everything here only reads this node's databases — through one read connection per database — except
``log_list``, which records how far the asking member has consumed this node's log (GC keeps what a
member has not consumed, ``gc.py``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from marmot.replication import digest
from marmot.replication import messages as m
from marmot.replication import snapshot as snap
from marmot.replication.apply_queue import ApplyQueues
from marmot.replication.gc import consumed_key
from marmot.storage import replication_tables as rt
from marmot.storage.databases import DatabaseManager

LIST_LIMIT = 5000
FETCH_BATCH = 200
FETCH_BYTES = 16 << 20  # bodies per log_fetch answer, at most (one entry always goes, whatever its size)
HAVE_SAMPLE = 1000


class LogServer:
    """RPC handlers peers call while catching up (see the module docstring)."""

    databases: DatabaseManager
    queues: ApplyQueues
    state: Any
    chunk_size: int
    _readers: dict[str, Any]


    def _reader(self, db: str) -> Any:
        conn = self._readers.get(db)
        if conn is None:
            conn = self._readers[db] = self.databases.open(db)
        return conn

    def forget_database(self, db: str) -> None:
        conn = self._readers.pop(db, None)
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    async def handle_databases(self, payload: Any, _ctx: Any) -> Any:
        """``log_databases {}`` → ``{dbs: {name: [log_id, last_seq]}}``."""
        out: dict[str, list[Any]] = {}
        for db in self.databases.names():
            conn = self._reader(db)
            self.queues.connection(db)  # makes sure the replication tables exist
            row = conn.execute(f"SELECT MAX(seq) FROM {rt.TXN_LOG}").fetchone()
            out[db] = [rt.log_id(conn), int(row[0] or 0)]
        return {"dbs": out}

    async def handle_list(self, payload: Any, _ctx: Any) -> Any:
        """``log_list {db, after, limit, node, log_id}`` → ``{log_id, entries: [[seq, txn_id], ...], last,
        first}``. ``after`` is how far ``node`` has consumed this log (recorded for GC, when the caller's
        ``log_id`` is this log's); ``first`` is the oldest position still kept (GC)."""
        try:
            db = m.field(payload, "db", str)
            after = m.field(payload, "after", int)
            limit = max(1, min(m.field(payload, "limit", int), LIST_LIMIT))
        except m.MessageError as e:
            return {"error": str(e)}
        if not self.databases.exists(db):
            return {"error": f"unknown database {db}"}
        conn = self._reader(db)
        this_log = rt.log_id(conn)
        node = payload.get("node")
        if type(node) is int and payload.get("log_id") == this_log:
            self.state.set(consumed_key(db, node), after)
        entries = rt.log_after(conn, after, limit)
        first, last = conn.execute(f"SELECT MIN(seq), MAX(seq) FROM {rt.TXN_LOG}").fetchone()
        return {"log_id": this_log, "entries": [list(e) for e in entries], "last": int(last or 0),
                "first": int(first or 0)}

    async def handle_fetch(self, payload: Any, _ctx: Any) -> Any:
        """``log_fetch {db, seqs}`` → ``{entries: [[seq, txn_id, wall, logical, node, origin, body], ...]}``."""
        try:
            db = m.field(payload, "db", str)
            seqs = _int_list(payload, "seqs", FETCH_BATCH)
        except m.MessageError as e:
            return {"error": str(e)}
        if not self.databases.exists(db):
            return {"error": f"unknown database {db}"}
        out: list[list[Any]] = []
        size = 0
        for e in rt.log_entries(self._reader(db), seqs):
            if out and size + len(e[6]) > FETCH_BYTES:
                break  # the caller asks again for the rest: one answer stays well under a frame
            out.append(list(e))
            size += len(e[6])
        return {"entries": out}

    def register(self, router: Any) -> None:
        router.unary("log_databases", self.handle_databases)
        router.unary("log_list", self.handle_list)
        router.unary("log_fetch", self.handle_fetch)
        router.unary("log_have", self.handle_have)
        router.unary("repair_keys", self.handle_repair_keys)
        router.unary("repair_rows", self.handle_repair_rows)
        router.server_stream("snapshot_stream", self.handle_snapshot)

    async def handle_have(self, payload: Any, _ctx: Any) -> Any:
        """``log_have {db, txn_ids}`` → ``{have: [txn ids in this node's log], oldest_wall}``; ``oldest_wall``
        is the commit wall time of the oldest entry still kept (GC may have taken older ones: the caller
        cannot tell those apart from missing ones)."""
        try:
            db = m.field(payload, "db", str)
            ids = _int_list(payload, "txn_ids", HAVE_SAMPLE)
        except m.MessageError as e:
            return {"error": str(e)}
        if not self.databases.exists(db):
            return {"error": f"unknown database {db}"}
        conn = self._reader(db)
        row = conn.execute(f"SELECT wall FROM {rt.TXN_LOG} ORDER BY seq LIMIT 1").fetchone()
        return {"have": sorted(rt.applied_of(conn, ids)), "oldest_wall": None if row is None else int(row[0])}

    async def handle_repair_keys(self, payload: Any, _ctx: Any) -> Any:
        """``repair_keys {db, table, after, limit}`` → ``{keys: [[key, [wall, logical, node], deleted], ...],
        next}``: this node's row versions of ``table``, tombstones included, in key order after ``after``
        (bytes, or nil for the start); ``next`` is the ``after`` of the following page (nil: last page)."""
        try:
            db = m.field(payload, "db", str)
            table = m.field(payload, "table", str)
            limit = max(1, min(m.field(payload, "limit", int), digest.KEYS_LIMIT))
            after = payload.get("after")
            if after is not None and type(after) is not bytes:
                raise m.MessageError("after must be bytes or nil")
        except m.MessageError as e:
            return {"error": str(e)}
        if not self.databases.exists(db):
            return {"error": f"unknown database {db}"}
        page = digest.table_versions(self._reader(db), table, after, limit)
        return {"keys": [[k, list(v), d] for k, v, d in page], "next": page[-1][0] if len(page) == limit else None}

    async def handle_repair_rows(self, payload: Any, _ctx: Any) -> Any:
        """``repair_rows {db, table, keys}`` → ``{rows: [[key, [wall, logical, node] or nil, deleted,
        {column: value} or nil], ...]}``: this node's version of each key and, when the row is live,
        its full image (``digest.read_rows``)."""
        try:
            db = m.field(payload, "db", str)
            table = m.field(payload, "table", str)
            keys = m.field(payload, "keys", list)
            if len(keys) > digest.REPAIR_BATCH or not all(type(k) is bytes for k in keys):
                raise m.MessageError(f"keys must be at most {digest.REPAIR_BATCH} byte strings")
        except m.MessageError as e:
            return {"error": str(e)}
        if not self.databases.exists(db):
            return {"error": f"unknown database {db}"}
        rows = digest.read_rows(self._reader(db), table, keys)
        return {"rows": [[k, None if v is None else list(v), d, img] for k, v, d, img in rows]}

    async def handle_snapshot(self, payload: Any, _ctx: Any) -> AsyncIterator[Any]:
        """``snapshot_stream {db}`` → manifest, then chunks (``snapshot.serve``)."""
        db = payload.get("db") if isinstance(payload, dict) else None
        if type(db) is not str:
            yield {"error": "db must be a string"}
            return
        async for msg in snap.serve(self.databases, db, self.chunk_size):
            yield msg


def _int_list(payload: Any, name: str, limit: int) -> list[int]:
    """``payload[name]``: a list of at most ``limit`` integers (``MessageError`` otherwise)."""
    values = m.field(payload, name, list)
    if len(values) > limit or not all(type(v) is int for v in values):
        raise m.MessageError(f"{name} must be at most {limit} integers")
    return values
