"""The two-phase-commit messages (commit/coordinator.py sends them, commit/participant.py answers them).

One frozen dataclass per request and answer; ``encode()`` gives the msgpack map that travels (requests
carry ``"pv"``, ``messages.PROTOCOL_VERSION``), ``decode(payload)`` checks every field of a map that came
off the network and raises ``MessageError`` on anything malformed (bool is not int, timestamps are
``[wall_ns, logical, node_id]``).

* ``txn_prepare`` ``Prepare {db, txn, ts, coord, body, sv, bv?, tv?, dt?}`` → ``PrepareAnswer {ok, ts?,
  conflict?, reject?}``. ``ts`` is the coordinator's HLC at the start, ``bv`` the row version the
  coordinator's dry run saw for each change (nil: no version) — a participant holding a newer version
  for a key rejects with a conflict, because the coordinator computed its images from data that has
  been overwritten since. ``sv`` is the database's schema version the statement was planned against;
  ``tv`` (DML) maps every table the transaction changes (lower-cased) to its schema fingerprint as
  planned (``storage.schema_fingerprint``; nil: no such table); ``dt`` (DDL) lists the tables the DDL
  changes.
* ``txn_commit`` ``Commit {db, txn, cts}`` → ``Ack {ok, err?, aborted?}`` once the participant applied it
  durably. ``txn_settle`` ``Settle`` has the same fields and answer (see ``Participant.settle``).
* ``txn_replay`` ``Replay {db, txn, cts, coord, body, sv}`` → ``Ack``: the whole committed transaction,
  for a node that did not prepare it.
* ``txn_abort`` ``Abort {db, txn}`` → ``Ack``.
* ``txn_status`` ``StatusRequest {db, txn}`` → ``StatusAnswer {state, cts?}``.

A PREPARE or REPLAY whose body is larger than one chunk goes as a client stream
(``<method>_stream``): the request map without its body plus ``size``, then the body in chunks
(``split_body`` / ``join_body``), because one frame is capped and a big frame would hold the connection
for everyone else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, ClassVar

from marmot.hlc import Timestamp
from marmot.replication.messages import (
    MessageError,
    Version,
    answer,
    field,
    optional,
    request,
    ts_in,
    ts_out,
    version_in,
    version_out,
    versioned,
)

STATES = ("committed", "prepared", "pending", "aborted", "unknown")


@dataclass(frozen=True, slots=True)
class Prepare:
    """PREPARE: take intents for this transaction and keep its body until the decision."""

    method: ClassVar[str] = "txn_prepare"
    db: str
    txn: int
    ts: Timestamp
    coord: int
    body: bytes
    sv: int
    bv: tuple[Version | None, ...] = ()
    tv: dict[str, bytes | None] | None = None
    dt: tuple[str, ...] | None = None

    def encode(self) -> dict[str, Any]:
        out = versioned(
            {
                "db": self.db,
                "txn": self.txn,
                "ts": ts_out(self.ts),
                "coord": self.coord,
                "body": self.body,
                "sv": self.sv,
            }
        )
        if self.bv:
            out["bv"] = [version_out(v) for v in self.bv]
        if self.tv is not None:
            out["tv"] = dict(self.tv)
        if self.dt is not None:
            out["dt"] = list(self.dt)
        return out

    @classmethod
    def decode(cls, payload: Any) -> Prepare:
        p = request(payload)
        db, txn, ts = field(p, "db", str), field(p, "txn", int), ts_in(p.get("ts"))
        coord, body, sv = field(p, "coord", int), field(p, "body", bytes), field(p, "sv", int)
        bv = p.get("bv") or []
        if type(bv) is not list:
            raise MessageError("bv must list one base version per change")
        tv = p.get("tv")
        if tv is not None and (
            type(tv) is not dict
            or not all(type(k) is str and (v is None or type(v) is bytes) for k, v in tv.items())
        ):
            raise MessageError("tv must map table names to schema fingerprints (bytes or nil)")
        dt = p.get("dt")
        if dt is not None and (type(dt) is not list or not all(type(t) is str for t in dt)):
            raise MessageError("dt must list table names")
        return cls(
            db,
            txn,
            ts,
            coord,
            body,
            sv,
            tuple(version_in(v) for v in bv),
            tv,
            None if dt is None else tuple(dt),
        )


@dataclass(frozen=True, slots=True)
class PrepareAnswer:
    """A participant's vote: ``ok`` (prepared; ``ts`` its HLC), or a ``conflict`` (retryable: another
    transaction holds a row, or the statement was planned against an old schema; ``ts`` too) or a
    ``reject`` (this node cannot take part: database missing, schema behind, leaving, malformed).
    ``owner`` is local only (never sent): the transaction whose intent caused the conflict."""

    ok: bool
    ts: Timestamp | None = None
    conflict: str | None = None
    reject: str | None = None
    owner: int | None = None

    def encode(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": self.ok}
        if self.ts is not None:
            out["ts"] = ts_out(self.ts)
        if self.conflict is not None:
            out["conflict"] = self.conflict
        if self.reject is not None:
            out["reject"] = self.reject
        return out

    @classmethod
    def decode(cls, payload: Any) -> PrepareAnswer:
        p = answer(payload)
        ok = field(p, "ok", bool)
        ts = None if p.get("ts") is None else ts_in(p["ts"])
        return cls(ok, ts, optional(p, "conflict", str), optional(p, "reject", str))


@dataclass(frozen=True, slots=True)
class _Decision:
    """The fields of a decision about a prepared transaction: database, id and commit timestamp."""

    db: str
    txn: int
    cts: Timestamp

    def encode(self) -> dict[str, Any]:
        return versioned({"db": self.db, "txn": self.txn, "cts": ts_out(self.cts)})

    @classmethod
    def _fields(cls, payload: Any) -> tuple[str, int, Timestamp]:
        p = request(payload)
        return field(p, "db", str), field(p, "txn", int), ts_in(p.get("cts"), "commit timestamp")


@dataclass(frozen=True, slots=True)
class Commit(_Decision):
    """COMMIT: apply the prepared transaction with commit timestamp ``cts``."""

    method: ClassVar[str] = "txn_commit"

    @classmethod
    def decode(cls, payload: Any) -> Commit:
        return cls(*cls._fields(payload))


@dataclass(frozen=True, slots=True)
class Settle(_Decision):
    """SETTLE, from a coordinator whose COMMIT no majority confirmed: commit it if prepared here, say so
    if applied here, otherwise give it up for good."""

    method: ClassVar[str] = "txn_settle"

    @classmethod
    def decode(cls, payload: Any) -> Settle:
        return cls(*cls._fields(payload))


@dataclass(frozen=True, slots=True)
class Replay:
    """REPLAY: a committed transaction, whole, for a node that did not prepare it."""

    method: ClassVar[str] = "txn_replay"
    db: str
    txn: int
    cts: Timestamp
    coord: int
    body: bytes
    sv: int

    def encode(self) -> dict[str, Any]:
        return versioned(
            {
                "db": self.db,
                "txn": self.txn,
                "cts": ts_out(self.cts),
                "coord": self.coord,
                "body": self.body,
                "sv": self.sv,
            }
        )

    @classmethod
    def decode(cls, payload: Any) -> Replay:
        p = request(payload)
        return cls(
            field(p, "db", str),
            field(p, "txn", int),
            ts_in(p.get("cts"), "commit timestamp"),
            field(p, "coord", int),
            field(p, "body", bytes),
            field(p, "sv", int),
        )


@dataclass(frozen=True, slots=True)
class Abort:
    """ABORT: drop the prepared transaction and refuse it from now on."""

    method: ClassVar[str] = "txn_abort"
    db: str
    txn: int

    def encode(self) -> dict[str, Any]:
        return versioned({"db": self.db, "txn": self.txn})

    @classmethod
    def decode(cls, payload: Any) -> Abort:
        p = request(payload)
        return cls(field(p, "db", str), field(p, "txn", int))


@dataclass(frozen=True, slots=True)
class Ack:
    """The answer to COMMIT, REPLAY, SETTLE and ABORT: ``ok`` once it is durable here; otherwise ``err``,
    and ``aborted`` when the refusal is final (this node gave the transaction up for good)."""

    ok: bool
    err: str | None = None
    aborted: bool = False

    def encode(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": self.ok}
        if self.aborted:
            out["aborted"] = True
        if self.err is not None:
            out["err"] = self.err
        return out

    @classmethod
    def decode(cls, payload: Any) -> Ack:
        p = answer(payload)
        aborted = p.get("aborted", False)
        if type(aborted) is not bool:
            raise MessageError("aborted must be bool")
        return cls(field(p, "ok", bool), optional(p, "err", str), aborted)


@dataclass(frozen=True, slots=True)
class StatusRequest:
    """STATUS: what this node knows of a transaction (stale-transaction resolution asks every peer)."""

    method: ClassVar[str] = "txn_status"
    db: str
    txn: int

    def encode(self) -> dict[str, Any]:
        return versioned({"db": self.db, "txn": self.txn})

    @classmethod
    def decode(cls, payload: Any) -> StatusRequest:
        p = request(payload)
        return cls(field(p, "db", str), field(p, "txn", int))


@dataclass(frozen=True, slots=True)
class StatusAnswer:
    """``state``: committed (with its commit timestamp ``cts``), prepared, pending (its coordinator is
    still deciding), aborted, or unknown."""

    state: str
    cts: Timestamp | None = None

    def encode(self) -> dict[str, Any]:
        out: dict[str, Any] = {"state": self.state}
        if self.cts is not None:
            out["cts"] = ts_out(self.cts)
        return out

    @classmethod
    def decode(cls, payload: Any) -> StatusAnswer:
        p = answer(payload)
        state = p.get("state")
        if type(state) is not str or state not in STATES:
            raise MessageError(f"state must be one of {', '.join(STATES)}")
        if state == "committed":
            return cls(state, ts_in(p.get("cts"), "commit timestamp"))
        return cls(state)


def read_status(payload: Any) -> StatusAnswer | None:
    """A peer's STATUS answer as stale-transaction resolution reads it: None when there is none (an
    error instead of an answer) or it is malformed — except that an answer saying "committed" whose
    timestamp cannot be read raises ``MessageError``: someone committed the transaction, so it must
    never be taken for "not committed"."""
    try:
        return StatusAnswer.decode(payload)
    except MessageError:
        if type(payload) is dict and payload.get("state") == "committed":
            raise
        return None


# -- large bodies as a client stream ---------------------------------------------------------------


def split_body(payload: dict[str, Any], step: int) -> list[Any]:
    """An encoded PREPARE/REPLAY as stream chunks: the map without its body plus ``size``, then the body
    in pieces of ``step`` bytes."""
    body = payload["body"]
    head = {k: v for k, v in payload.items() if k != "body"}
    head["size"] = len(body)
    return [head] + [body[i : i + step] for i in range(0, len(body), step)]


async def join_body(chunks: AsyncIterator[Any]) -> dict[str, Any] | None:
    """The request map ``split_body`` cut up, whole again. None when the stream is malformed or not of
    the announced size (the map itself is checked by the message's ``decode``)."""
    head: dict[str, Any] | None = None
    parts: list[bytes] = []
    got = 0
    async for c in chunks:
        if head is None:
            if type(c) is not dict or type(c.get("size")) is not int:
                return None
            head = c
        elif type(c) is bytes:
            parts.append(c)
            got += len(c)
            if got > head["size"]:
                return None
        else:
            return None
    if head is None or got != head["size"]:
        return None
    req = dict(head)
    del req["size"]
    req["body"] = b"".join(parts)
    return req
