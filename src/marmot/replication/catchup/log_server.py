"""The serving side of anti-entropy: this node's commit logs, log positions, digests' repair rows and
snapshots, answered to peers that pull from it.

The other end of ``LogPull`` (log_pull.py, the pulling side): the two ends of one exchange, whose
messages are ``sync_messages``. Everything here only reads this node's databases — through the read
connections it shares with the pulling side (``ReadConnections``) — except ``log_list``, which records
how far the asking member has consumed this node's log (GC keeps what a member has not consumed,
``catchup/gc.py``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from marmot.replication.apply.queue import ApplyQueues
from marmot.replication.catchup import digest
from marmot.replication.catchup import snapshot as snap
from marmot.replication.catchup.gc import consumed_key
from marmot.replication.catchup.log_memory import LogMemory
from marmot.replication.catchup.sync_messages import (
    LIST_LIMIT,
    DigestRequest,
    KeyVersion,
    LogDatabases,
    LogDatabasesRequest,
    LogEntries,
    LogEntry,
    LogFetchRequest,
    LogHave,
    LogHaveRequest,
    LogList,
    LogListRequest,
    LogPosition,
    LogPositions,
    LogPositionsRequest,
    PeerRow,
    RepairKeys,
    RepairKeysRequest,
    RepairRows,
    RepairRowsRequest,
    SnapshotRequest,
    error,
)
from marmot.replication.messages import MessageError
from marmot.storage import replication_tables as rt
from marmot.storage.databases import DatabaseManager
from marmot.storage.node_state import NodeState
from marmot.transport import Router

FETCH_BYTES = 16 << 20  # bodies per log_fetch answer, at most (one entry always goes, whatever its size)


class ReadConnections:
    """One read connection per database, shared by both ends of the log exchange (the pulling side reads
    its own digests and row versions with them). ``forget`` before a snapshot replaces a file."""

    def __init__(self, databases: DatabaseManager) -> None:
        self.databases = databases
        self._conns: dict[str, Any] = {}

    def get(self, db: str) -> Any:
        conn = self._conns.get(db)
        if conn is None:
            conn = self._conns[db] = self.databases.open(db)
        return conn

    def forget(self, db: str) -> None:
        conn = self._conns.pop(db, None)
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def close(self) -> None:
        for db in list(self._conns):
            self.forget(db)


class LogServer:
    """RPC handlers peers call while catching up (see the module docstring; the messages are
    ``sync_messages``). A malformed request, or one for a database this node lacks, is answered with
    ``{"error": why}``. ``state`` (the node's durable key/value state) records what each member consumed."""

    def __init__(
        self,
        databases: DatabaseManager,
        queues: ApplyQueues,
        state: NodeState,
        chunk_size: int,
        readers: ReadConnections,
        memory: LogMemory | None = None,
    ) -> None:
        """``memory``: this node's log positions in memory (``catchup/log_memory.py``), kept current by
        the apply path (``ApplyQueues.on_applied``)."""
        self.databases = databases
        self.queues = queues
        self.state = state
        self.chunk_size = chunk_size  # [replication] stream_chunk_size_kb: snapshot chunks
        self.readers = readers
        self.memory = memory or LogMemory(databases, readers.get, queues.connection)

    async def handle_databases(self, payload: Any, _ctx: Any) -> Any:
        try:
            LogDatabasesRequest.decode(payload)
        except MessageError as e:
            return error(str(e))
        return LogDatabases({db: self.memory.position(db) for db in self.memory.names()}).encode()

    async def handle_positions(self, payload: Any, _ctx: Any) -> Any:
        """A read barrier's question, answered from memory: no glob, no query (``log_memory.py``)."""
        try:
            req = LogPositionsRequest.decode(payload)
        except MessageError as e:
            return error(str(e))
        names = self.memory.names()
        if req.dbs is not None:
            names = [db for db in req.dbs if self.databases.exists(db)]
        out: dict[str, LogPosition] = {}
        for db in names:
            log_id, last = self.memory.position(db)
            known = req.known.get(db)
            tail = None if known is None else self.memory.tail(db, known[0], known[1])
            out[db] = LogPosition(log_id, last, tail)
        return LogPositions(out).encode()

    async def handle_list(self, payload: Any, _ctx: Any) -> Any:
        """``after`` is how far the asking ``node`` has consumed this log: recorded for GC when its
        ``log_id`` is this log's."""
        try:
            req = LogListRequest.decode(payload)
        except MessageError as e:
            return error(str(e))
        if not self.databases.exists(req.db):
            return error(f"unknown database {req.db}")
        conn = self.readers.get(req.db)
        this_log = rt.log_id(conn)
        if req.node is not None and req.log_id == this_log:
            self.state.set(consumed_key(req.db, req.node), req.after)
        entries = rt.log_after(conn, req.after, max(1, min(req.limit, LIST_LIMIT)))
        first, last = conn.execute(f"SELECT MIN(seq), MAX(seq) FROM {rt.TXN_LOG}").fetchone()
        return LogList(this_log, entries, int(last or 0), int(first or 0)).encode()

    async def handle_fetch(self, payload: Any, _ctx: Any) -> Any:
        try:
            req = LogFetchRequest.decode(payload)
        except MessageError as e:
            return error(str(e))
        if not self.databases.exists(req.db):
            return error(f"unknown database {req.db}")
        out: list[LogEntry] = []
        size = 0
        for row in rt.log_entries(self.readers.get(req.db), req.seqs):
            entry = LogEntry.from_row(row)
            if out and size + len(entry.body) > FETCH_BYTES:
                break  # the caller asks again for the rest: one answer stays well under a frame
            out.append(entry)
            size += len(entry.body)
        return LogEntries(out).encode()

    def register(self, router: Router) -> None:
        router.unary(LogDatabasesRequest.method, self.handle_databases)
        router.unary(LogPositionsRequest.method, self.handle_positions)
        flush = getattr(router, "answer_at_once", None)  # a read is waiting on this answer: no cork
        if flush is not None:
            flush(LogPositionsRequest.method)
        router.unary(LogListRequest.method, self.handle_list)
        router.unary(LogFetchRequest.method, self.handle_fetch)
        router.unary(LogHaveRequest.method, self.handle_have)
        router.unary(RepairKeysRequest.method, self.handle_repair_keys)
        router.unary(RepairRowsRequest.method, self.handle_repair_rows)
        router.unary(DigestRequest.method, digest.make_rpc_handler(self.databases))  # convergence checks
        router.server_stream(SnapshotRequest.method, self.handle_snapshot)

    async def handle_have(self, payload: Any, _ctx: Any) -> Any:
        """``oldest_wall`` is the commit wall time of the oldest entry still kept (GC may have taken older
        ones: the caller cannot tell those apart from missing ones)."""
        try:
            req = LogHaveRequest.decode(payload)
        except MessageError as e:
            return error(str(e))
        if not self.databases.exists(req.db):
            return error(f"unknown database {req.db}")
        conn = self.readers.get(req.db)
        row = conn.execute(f"SELECT wall FROM {rt.TXN_LOG} ORDER BY seq LIMIT 1").fetchone()
        return LogHave(
            sorted(rt.applied_of(conn, req.txn_ids)), None if row is None else int(row[0])
        ).encode()

    async def handle_repair_keys(self, payload: Any, _ctx: Any) -> Any:
        """This node's row versions of a table, tombstones included, one page in key order."""
        try:
            req = RepairKeysRequest.decode(payload)
        except MessageError as e:
            return error(str(e))
        if not self.databases.exists(req.db):
            return error(f"unknown database {req.db}")
        limit = max(1, min(req.limit, digest.KEYS_LIMIT))
        page = digest.table_versions(self.readers.get(req.db), req.table, req.after, limit)
        return RepairKeys(
            [KeyVersion(k, v, d) for k, v, d in page], page[-1][0] if len(page) == limit else None
        ).encode()

    async def handle_repair_rows(self, payload: Any, _ctx: Any) -> Any:
        """This node's version of each key and, when the row is live, its full image (``digest.read_rows``)."""
        try:
            req = RepairRowsRequest.decode(payload)
        except MessageError as e:
            return error(str(e))
        if not self.databases.exists(req.db):
            return error(f"unknown database {req.db}")
        rows = digest.read_rows(self.readers.get(req.db), req.table, req.keys)
        return RepairRows([PeerRow(k, v, d, img) for k, v, d, img in rows]).encode()

    async def handle_snapshot(self, payload: Any, _ctx: Any) -> AsyncIterator[Any]:
        """A manifest, then chunks (``snapshot.serve``)."""
        try:
            req = SnapshotRequest.decode(payload)
        except MessageError as e:
            yield error(str(e))
            return
        if not self.databases.exists(req.db):
            yield error(f"unknown database {req.db}")
            return
        async for msg in snap.serve(self.databases, req.db, self.chunk_size):
            yield msg.encode()
