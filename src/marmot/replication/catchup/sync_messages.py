"""The anti-entropy messages: what a node pulling from a peer asks (catchup/log_pull.py) and the peer answers
(catchup/log_server.py, catchup/snapshot.py).

One frozen dataclass per request and answer, as in ``commit/txn_messages.py``: ``encode()`` gives the msgpack
value that travels (request maps carry ``"pv"``), ``decode(payload)`` checks every field and raises
``MessageError`` on anything malformed — including an ``{"error": why}`` answer, a peer's refusal, whose
reason the error carries.

* ``log_databases`` ``LogDatabasesRequest {}`` → ``LogDatabases {dbs: {name: [log_id, last_seq]}}``.
* ``log_positions`` ``LogPositionsRequest {dbs?, known: {name: [log_id, seq]}}`` → ``LogPositions {dbs:
  {name: [log_id, last_seq, [[seq, txn_id], ...] or nil]}}``: a read barrier's single round trip.
* ``log_list`` ``LogListRequest {db, after, limit, node?, log_id?}`` → ``LogList {log_id, entries: [[seq,
  txn_id], ...], last, first}``: the peer's log after ``after``; ``node``/``log_id`` tell it how far this
  node consumed which log (GC keeps what a member has not consumed); ``first`` is the oldest kept seq.
* ``log_fetch`` ``LogFetchRequest {db, seqs}`` → ``LogEntries {entries: [LogEntry, ...]}``; a
  ``LogEntry`` is one commit-log record (seq, txn id, commit timestamp, origin node, encoded body), on the
  wire the list ``[seq, txn_id, wall, logical, node, origin, body]``.
* ``log_have`` ``LogHaveRequest {db, txn_ids}`` → ``LogHave {have, oldest_wall}``.
* ``repair_keys`` ``RepairKeysRequest {db, table, after, limit}`` → ``RepairKeys {keys: [[key, [wall,
  logical, node], deleted], ...], next}``.
* ``repair_rows`` ``RepairRowsRequest {db, table, keys}`` → ``RepairRows {rows: [[key, version or nil,
  deleted, image or nil], ...]}``.
* ``digest_get`` ``DigestRequest {db}`` → the digest document (``digest.digest_document``, also served
  over HTTP; read with ``digest.parse_document``).
* ``snapshot_stream`` ``SnapshotRequest {db}`` → a ``SnapshotManifest {db, size, sha256, log_id,
  last_seq, schema_version, chunks}``, then ``SnapshotChunk {i, data, sha256}`` messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from marmot.hlc import Timestamp
from marmot.replication.changes import ChangeFormatError, _check_image
from marmot.replication.messages import (
    MessageError,
    Version,
    answer,
    field,
    int_list,
    optional,
    request,
    ts_in,
    version_in,
    version_out,
    versioned,
)
from marmot.storage.rowkey import SqlValue

LIST_LIMIT = 5000  # most positions one ``log_list`` answer lists
FETCH_BATCH = 200  # most entries one ``log_fetch`` asks for
HAVE_SAMPLE = 1000  # most transaction ids one ``log_have`` asks about
REPAIR_BATCH = 500  # most rows one ``repair_rows`` request asks for


def _version(v: Any, what: str) -> Version:
    version = version_in(v)
    if version is None:
        raise MessageError(f"{what} must be [wall_ns, logical, node_id]")
    return version


# -- the commit log -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogDatabasesRequest:
    """Which databases the peer has, each with its log id and last log position."""

    method: ClassVar[str] = "log_databases"

    def encode(self) -> dict[str, Any]:
        return versioned({})

    @classmethod
    def decode(cls, payload: Any) -> LogDatabasesRequest:
        request(payload)
        return cls()


@dataclass(frozen=True, slots=True)
class LogDatabases:
    dbs: dict[str, tuple[str, int]]  # name -> (log id, last seq)

    def encode(self) -> dict[str, Any]:
        return {"dbs": {name: [log_id, last] for name, (log_id, last) in self.dbs.items()}}

    @classmethod
    def decode(cls, payload: Any) -> LogDatabases:
        dbs = field(answer(payload), "dbs", dict)
        out: dict[str, tuple[str, int]] = {}
        for name, info in dbs.items():
            if (
                type(name) is not str
                or type(info) is not list
                or len(info) != 2
                or type(info[0]) is not str
                or type(info[1]) is not int
            ):
                raise MessageError(f"dbs: bad entry for {name!r} (want [log_id, last_seq])")
            out[name] = (info[0], info[1])
        return cls(out)


@dataclass(frozen=True, slots=True)
class LogPositionsRequest:
    """A read barrier's one question (``read_barrier.py``): where the peer's logs of ``dbs`` (None: all)
    end and, for each log whose position this node already holds in ``known`` ({db: (log id, seq)}), the
    (seq, txn id) pairs after that seq. Answered from memory (``catchup/log_memory.py``)."""

    method: ClassVar[str] = "log_positions"
    dbs: list[str] | None
    known: dict[str, tuple[str, int]]

    def encode(self) -> dict[str, Any]:
        out = versioned({"known": {db: [log_id, seq] for db, (log_id, seq) in self.known.items()}})
        if self.dbs is not None:
            out["dbs"] = list(self.dbs)
        return out

    @classmethod
    def decode(cls, payload: Any) -> LogPositionsRequest:
        p = request(payload)
        dbs = optional(p, "dbs", list)
        if dbs is not None and not all(type(d) is str for d in dbs):
            raise MessageError("dbs must be a list of names")
        known: dict[str, tuple[str, int]] = {}
        for db, pos in field(p, "known", dict).items():
            if type(db) is not str or type(pos) is not list or len(pos) != 2:
                raise MessageError(f"known: bad entry for {db!r} (want [log_id, seq])")
            if type(pos[0]) is not str or type(pos[1]) is not int:
                raise MessageError(f"known: bad entry for {db!r} (want [log_id, seq])")
            known[db] = (pos[0], pos[1])
        return cls(dbs, known)


@dataclass(frozen=True, slots=True)
class LogPosition:
    """One database's log on the peer: id, last seq, and the entries after the asker's known seq (None:
    not asked, another log, or more than the peer keeps in memory: list them with ``log_list``)."""

    log_id: str
    last: int
    tail: list[tuple[int, int]] | None


@dataclass(frozen=True, slots=True)
class LogPositions:
    dbs: dict[str, LogPosition]

    def encode(self) -> dict[str, Any]:
        return {
            "dbs": {
                name: [p.log_id, p.last, None if p.tail is None else [[s, t] for s, t in p.tail]]
                for name, p in self.dbs.items()
            }
        }

    @classmethod
    def decode(cls, payload: Any) -> LogPositions:
        dbs = field(answer(payload), "dbs", dict)
        out: dict[str, LogPosition] = {}
        for name, info in dbs.items():
            if (
                type(name) is not str
                or type(info) is not list
                or len(info) != 3
                or type(info[0]) is not str
                or type(info[1]) is not int
                or (info[2] is not None and type(info[2]) is not list)
            ):
                raise MessageError(f"dbs: bad entry for {name!r} (want [log_id, last_seq, tail or nil])")
            tail = info[2]
            if tail is not None and not all(
                type(e) is list and len(e) == 2 and type(e[0]) is int and type(e[1]) is int for e in tail
            ):
                raise MessageError(f"dbs: {name!r}: tail must be [seq, txn_id] pairs")
            out[name] = LogPosition(info[0], info[1], None if tail is None else [(e[0], e[1]) for e in tail])
        return cls(out)


@dataclass(frozen=True, slots=True)
class LogListRequest:
    """The peer's log positions of ``db`` after ``after``, at most ``limit`` (the peer caps it at
    ``LIST_LIMIT``). ``node`` and ``log_id``: the asking member and the log its ``after`` is a position
    of (recorded for GC when it is the peer's current log)."""

    method: ClassVar[str] = "log_list"
    db: str
    after: int
    limit: int
    node: int | None = None
    log_id: str | None = None

    def encode(self) -> dict[str, Any]:
        out = versioned({"db": self.db, "after": self.after, "limit": self.limit})
        if self.node is not None:
            out["node"] = self.node
        if self.log_id is not None:
            out["log_id"] = self.log_id
        return out

    @classmethod
    def decode(cls, payload: Any) -> LogListRequest:
        p = request(payload)
        return cls(
            field(p, "db", str),
            field(p, "after", int),
            field(p, "limit", int),
            optional(p, "node", int),
            optional(p, "log_id", str),
        )


@dataclass(frozen=True, slots=True)
class LogList:
    log_id: str
    entries: list[tuple[int, int]]  # (seq, txn id), in seq order
    last: int  # the peer's last seq (0: empty log)
    first: int  # the oldest seq it still keeps (0: empty log)

    def encode(self) -> dict[str, Any]:
        return {
            "log_id": self.log_id,
            "entries": [[s, t] for s, t in self.entries],
            "last": self.last,
            "first": self.first,
        }

    @classmethod
    def decode(cls, payload: Any) -> LogList:
        p = answer(payload)
        entries = field(p, "entries", list)
        if not all(
            type(e) is list and len(e) == 2 and type(e[0]) is int and type(e[1]) is int for e in entries
        ):
            raise MessageError("entries must be [seq, txn_id] pairs")
        return cls(
            field(p, "log_id", str),
            [(e[0], e[1]) for e in entries],
            field(p, "last", int),
            field(p, "first", int),
        )


@dataclass(frozen=True, slots=True)
class LogFetchRequest:
    """The entries at ``seqs`` (at most ``FETCH_BATCH``)."""

    method: ClassVar[str] = "log_fetch"
    db: str
    seqs: list[int]

    def encode(self) -> dict[str, Any]:
        return versioned({"db": self.db, "seqs": list(self.seqs)})

    @classmethod
    def decode(cls, payload: Any) -> LogFetchRequest:
        p = request(payload)
        return cls(field(p, "db", str), int_list(p, "seqs", FETCH_BATCH))


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One record of a commit log (``__marmot_txn_log``): position, transaction, commit timestamp, the
    node that coordinated it, and its encoded body (``messages.decode_body``)."""

    seq: int
    txn_id: int
    cts: Timestamp
    origin: int
    body: bytes

    def encode(self) -> list[Any]:
        return [
            self.seq,
            self.txn_id,
            self.cts.wall_ns,
            self.cts.logical,
            self.cts.node_id,
            self.origin,
            self.body,
        ]

    @classmethod
    def from_row(cls, row: tuple[int, int, int, int, int, int, bytes]) -> LogEntry:
        """From ``replication_tables.log_entries`` (this node's own log)."""
        seq, txn, wall, logical, node, origin, body = row
        return cls(seq, txn, Timestamp(wall, logical, node), origin, body)

    @classmethod
    def decode(cls, payload: Any) -> LogEntry:
        if type(payload) is not list or len(payload) != 7:
            raise MessageError("log entry must be [seq, txn_id, wall, logical, node, origin, body]")
        seq, txn, wall, logical, node, origin, body = payload
        if type(seq) is not int or type(txn) is not int or type(origin) is not int:
            raise MessageError("log entry: seq, txn_id and origin must be int")
        if type(body) is not bytes:
            raise MessageError("log entry: body must be bytes")
        return cls(seq, txn, ts_in([wall, logical, node], "log entry commit timestamp"), origin, body)


@dataclass(frozen=True, slots=True)
class LogEntries:
    """A ``log_fetch`` answer: the entries asked for, in seq order — maybe only a prefix when the
    bodies are large (the caller asks again for the rest); empty when they are gone (GC)."""

    entries: list[LogEntry]

    def encode(self) -> dict[str, Any]:
        return {"entries": [e.encode() for e in self.entries]}

    @classmethod
    def decode(cls, payload: Any) -> LogEntries:
        return cls([LogEntry.decode(e) for e in field(answer(payload), "entries", list)])


@dataclass(frozen=True, slots=True)
class LogHaveRequest:
    """Which of ``txn_ids`` (at most ``HAVE_SAMPLE``) the peer's log holds (checked before a snapshot)."""

    method: ClassVar[str] = "log_have"
    db: str
    txn_ids: list[int]

    def encode(self) -> dict[str, Any]:
        return versioned({"db": self.db, "txn_ids": list(self.txn_ids)})

    @classmethod
    def decode(cls, payload: Any) -> LogHaveRequest:
        p = request(payload)
        return cls(field(p, "db", str), int_list(p, "txn_ids", HAVE_SAMPLE))


@dataclass(frozen=True, slots=True)
class LogHave:
    have: list[int]  # the asked-for transactions the peer has applied
    oldest_wall: int | None  # commit wall time of the oldest entry the peer's log keeps (None: empty)

    def encode(self) -> dict[str, Any]:
        return {"have": list(self.have), "oldest_wall": self.oldest_wall}

    @classmethod
    def decode(cls, payload: Any) -> LogHave:
        p = answer(payload)
        have = field(p, "have", list)
        if not all(type(t) is int for t in have):
            raise MessageError("have must list transaction ids")
        return cls(have, optional(p, "oldest_wall", int))


# -- row repair and digests -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DigestRequest:
    """The peer's table digests of ``db`` (its answer is ``digest.digest_document``)."""

    method: ClassVar[str] = "digest_get"
    db: str

    def encode(self) -> dict[str, Any]:
        return versioned({"db": self.db})

    @classmethod
    def decode(cls, payload: Any) -> DigestRequest:
        return cls(field(request(payload), "db", str))


@dataclass(frozen=True, slots=True)
class RepairKeysRequest:
    """One page of the peer's row versions of ``table``, tombstones included, in key order after
    ``after`` (None: from the start); the peer caps ``limit`` at ``digest.KEYS_LIMIT``."""

    method: ClassVar[str] = "repair_keys"
    db: str
    table: str
    after: bytes | None
    limit: int

    def encode(self) -> dict[str, Any]:
        return versioned({"db": self.db, "table": self.table, "after": self.after, "limit": self.limit})

    @classmethod
    def decode(cls, payload: Any) -> RepairKeysRequest:
        p = request(payload)
        db, table, limit = field(p, "db", str), field(p, "table", str), field(p, "limit", int)
        after = p.get("after")
        if after is not None and type(after) is not bytes:
            raise MessageError("after must be bytes or nil")
        return cls(db, table, after, limit)


@dataclass(frozen=True, slots=True)
class KeyVersion:
    key: bytes
    version: Version
    deleted: bool


@dataclass(frozen=True, slots=True)
class RepairKeys:
    keys: list[KeyVersion]
    next: bytes | None  # ``after`` of the following page (None: this was the last)

    def encode(self) -> dict[str, Any]:
        return {"keys": [[k.key, version_out(k.version), k.deleted] for k in self.keys], "next": self.next}

    @classmethod
    def decode(cls, payload: Any) -> RepairKeys:
        p = answer(payload)
        keys: list[KeyVersion] = []
        for e in field(p, "keys", list):
            if type(e) is not list or len(e) != 3 or type(e[0]) is not bytes or type(e[2]) is not bool:
                raise MessageError("keys must be [key, version, deleted] triples")
            keys.append(KeyVersion(e[0], _version(e[1], "key version"), e[2]))
        after = p.get("next")
        if after is not None and type(after) is not bytes:
            raise MessageError("next must be bytes or nil")
        return cls(keys, after)


@dataclass(frozen=True, slots=True)
class RepairRowsRequest:
    """The peer's version and full image of each of ``keys`` (at most ``REPAIR_BATCH``) of ``table``."""

    method: ClassVar[str] = "repair_rows"
    db: str
    table: str
    keys: list[bytes]

    def encode(self) -> dict[str, Any]:
        return versioned({"db": self.db, "table": self.table, "keys": list(self.keys)})

    @classmethod
    def decode(cls, payload: Any) -> RepairRowsRequest:
        p = request(payload)
        db, table, keys = field(p, "db", str), field(p, "table", str), field(p, "keys", list)
        if len(keys) > REPAIR_BATCH or not all(type(k) is bytes for k in keys):
            raise MessageError(f"keys must be at most {REPAIR_BATCH} byte strings")
        return cls(db, table, keys)


@dataclass(frozen=True, slots=True)
class PeerRow:
    """One row as the peer has it: ``version`` None when the key is gone there (e.g. tombstone GC),
    ``image`` (checked like a change's image) only for a live row."""

    key: bytes
    version: Version | None
    deleted: bool
    image: dict[str, SqlValue] | None


@dataclass(frozen=True, slots=True)
class RepairRows:
    rows: list[PeerRow]

    def encode(self) -> dict[str, Any]:
        return {"rows": [[r.key, version_out(r.version), r.deleted, r.image] for r in self.rows]}

    @classmethod
    def decode(cls, payload: Any) -> RepairRows:
        rows: list[PeerRow] = []
        for e in field(answer(payload), "rows", list):
            if type(e) is not list or len(e) != 4 or type(e[0]) is not bytes or type(e[2]) is not bool:
                raise MessageError("rows must be [key, version, deleted, image] lists")
            key, version, deleted, image = e[0], version_in(e[1]), e[2], e[3]
            try:
                image = (
                    None
                    if deleted or version is None or image is None
                    else _check_image(image, "repair image")
                )
            except ChangeFormatError as err:
                raise MessageError(str(err)) from None
            rows.append(PeerRow(key, version, deleted, image))
        return cls(rows)


# -- snapshots ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SnapshotRequest:
    """A consistent copy of the peer's ``db``, streamed (``snapshot.serve``)."""

    method: ClassVar[str] = "snapshot_stream"
    db: str

    def encode(self) -> dict[str, Any]:
        return versioned({"db": self.db})

    @classmethod
    def decode(cls, payload: Any) -> SnapshotRequest:
        return cls(field(request(payload), "db", str))


@dataclass(frozen=True, slots=True)
class SnapshotManifest:
    """The first message of a snapshot stream: what follows (``chunks`` chunks, ``size`` bytes in all,
    the whole file's ``sha256``) and what the copy holds (its log id and last log position, where delta
    sync continues, and its schema version)."""

    db: str
    size: int
    sha256: str
    log_id: str
    last_seq: int
    schema_version: int
    chunks: int

    def encode(self) -> dict[str, Any]:
        return {
            "db": self.db,
            "size": self.size,
            "sha256": self.sha256,
            "log_id": self.log_id,
            "last_seq": self.last_seq,
            "schema_version": self.schema_version,
            "chunks": self.chunks,
        }

    @classmethod
    def decode(cls, payload: Any) -> SnapshotManifest:
        p = answer(payload)
        return cls(
            field(p, "db", str),
            field(p, "size", int),
            field(p, "sha256", str),
            field(p, "log_id", str),
            field(p, "last_seq", int),
            field(p, "schema_version", int),
            field(p, "chunks", int),
        )


@dataclass(frozen=True, slots=True)
class SnapshotChunk:
    """Chunk ``i`` of the file, with its own sha256 (hex)."""

    i: int
    data: bytes
    sha256: str

    def encode(self) -> dict[str, Any]:
        return {"i": self.i, "data": self.data, "sha256": self.sha256}

    @classmethod
    def decode(cls, payload: Any) -> SnapshotChunk:
        if type(payload) is not dict:
            raise MessageError("snapshot chunk must be a map")
        return cls(field(payload, "i", int), field(payload, "data", bytes), field(payload, "sha256", str))


def error(why: str) -> dict[str, Any]:
    """A refusal: what a handler answers when it cannot serve a request (decoded as ``MessageError``)."""
    return {"error": why}
