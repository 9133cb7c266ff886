"""The typed replication messages (replication/commit/txn_messages.py, replication/catchup/sync_messages.py).

Why: every one of them comes off the network. Each must survive the trip (encode, msgpack, decode gives
the same message back), and anything malformed — a key missing, a value of another type (bool is not an
int), a protocol version this node does not speak, a peer's ``{"error"}`` refusal — must come out as
``MessageError`` and nothing else, or a handler would crash on a peer's bad frame instead of answering.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from marmot.config import load_config
from marmot.hlc import Timestamp
from marmot.replication.catchup import snapshot as snap
from marmot.replication.catchup import sync_messages as s
from marmot.replication.commit import txn_messages as t
from marmot.replication.messages import PROTOCOL_VERSION, MessageError
from marmot.replication.wiring import ReplicationSettings

TS = Timestamp(1_700_000_000_000_000_000, 3, 2)
CTS = Timestamp(1_700_000_000_000_000_001, 0, 1)
V = (1_700_000_000_000_000_000, 1, 3)


def wire(x: Any) -> Any:
    """What the other side of a cluster frame sees (cluster/frames.py packs the same way)."""
    return msgpack.unpackb(msgpack.packb(x, use_bin_type=True), raw=False, strict_map_key=False)


# Every request, with the keys a valid one may leave out.
REQUESTS: list[tuple[Any, set[str]]] = [
    (t.Prepare("app", 77, TS, 2, b"body", 4), {"bv", "tv", "dt"}),
    (
        t.Prepare("app", 77, TS, 2, b"body", 4, (V, None), {"kv": b"\x01" * 8, "gone": None}, ("kv",)),
        {"bv", "tv", "dt"},
    ),
    (t.Commit("app", 77, CTS), set()),
    (t.Settle("app", 77, CTS), set()),
    (t.Replay("app", 77, CTS, 2, b"body", 4), set()),
    (t.Abort("app", 77), set()),
    (t.StatusRequest("app", 77), set()),
    (s.LogDatabasesRequest(), set()),
    (s.LogListRequest("app", 10, 5000, 3, "abcd"), {"node", "log_id"}),
    (s.LogListRequest("app", 0, 1), {"node", "log_id"}),
    (s.LogFetchRequest("app", [1, 2, 3]), set()),
    (s.LogHaveRequest("app", [77, 78]), set()),
    (s.DigestRequest("app"), set()),
    (s.RepairKeysRequest("app", "kv", None, 100), {"after"}),
    (s.RepairKeysRequest("app", "kv", b"\x01key", 100), {"after"}),
    (s.RepairRowsRequest("app", "kv", [b"k1", b"k2"]), set()),
    (s.SnapshotRequest("app"), set()),
]

# Every answer (and streamed message), with the keys a valid one may leave out.
ANSWERS: list[tuple[Any, set[str]]] = [
    (t.PrepareAnswer(True, TS), {"ts", "conflict", "reject"}),
    (t.PrepareAnswer(False, TS, conflict="row locked"), {"ts", "conflict", "reject"}),
    (t.PrepareAnswer(False, reject="schema behind"), {"ts", "conflict", "reject"}),
    (t.Ack(True), {"err", "aborted"}),
    (t.Ack(False, "apply failed"), {"err", "aborted"}),
    (t.Ack(False, "given up", aborted=True), {"err", "aborted"}),
    (t.StatusAnswer("committed", CTS), set()),
    (t.StatusAnswer("pending"), set()),
    (s.LogDatabases({"app": ("abcd", 12), "other": ("ef01", 0)}), set()),
    (s.LogList("abcd", [(1, 77), (2, 78)], 9, 1), set()),
    (s.LogEntries([s.LogEntry(1, 77, CTS, 2, b"body"), s.LogEntry(2, 78, TS, 1, b"")]), set()),
    (s.LogHave([77], 1_700_000_000_000_000_000), {"oldest_wall"}),
    (s.LogHave([], None), {"oldest_wall"}),
    (s.RepairKeys([s.KeyVersion(b"k1", V, False), s.KeyVersion(b"k2", V, True)], b"k2"), {"next"}),
    (s.RepairKeys([], None), {"next"}),
    (
        s.RepairRows(
            [
                s.PeerRow(b"k1", V, False, {"id": 1, "v": "x", "b": b"\0", "f": 0.5, "n": None}),
                s.PeerRow(b"k2", V, True, None),
                s.PeerRow(b"k3", None, False, None),
            ]
        ),
        set(),
    ),
    (s.SnapshotManifest("app", 4096, "ab" * 32, "abcd", 12, 3, 1), set()),
    (s.SnapshotChunk(0, b"data", "cd" * 32), set()),
]


def _id(case: tuple[Any, set[str]]) -> str:
    return type(case[0]).__name__


@pytest.mark.parametrize("case", REQUESTS + ANSWERS, ids=_id)
def test_round_trip(case: tuple[Any, set[str]]) -> None:
    msg, _ = case
    assert type(msg).decode(wire(msg.encode())) == msg


def test_log_entry_round_trip_and_row() -> None:
    e = s.LogEntry(5, 77, CTS, 2, b"body")
    assert e.encode() == [5, 77, CTS.wall_ns, CTS.logical, CTS.node_id, 2, b"body"]  # the 7-value row
    assert s.LogEntry.decode(wire(e.encode())) == e
    assert s.LogEntry.from_row((5, 77, CTS.wall_ns, CTS.logical, CTS.node_id, 2, b"body")) == e


@pytest.mark.parametrize("case", REQUESTS, ids=_id)
def test_requests_carry_the_protocol_version(case: tuple[Any, set[str]]) -> None:
    msg, _ = case
    payload = msg.encode()
    assert payload["pv"] == PROTOCOL_VERSION
    del payload["pv"]  # no version: read as version 1
    assert type(msg).decode(payload) == msg
    for pv in (PROTOCOL_VERSION + 1, 0):
        with pytest.raises(MessageError, match=f"unsupported protocol version {pv}"):
            type(msg).decode({**msg.encode(), "pv": pv})
    for pv in (True, "1", None, 1.0):
        with pytest.raises(MessageError, match="pv"):
            type(msg).decode({**msg.encode(), "pv": pv})


@pytest.mark.parametrize("case", REQUESTS + ANSWERS, ids=_id)
def test_missing_required_keys(case: tuple[Any, set[str]]) -> None:
    msg, optional = case
    payload = msg.encode()
    for key in set(payload) - optional - {"pv"}:
        with pytest.raises(MessageError):
            type(msg).decode({k: v for k, v in payload.items() if k != key})
    for key in optional & set(payload):
        type(msg).decode({k: v for k, v in payload.items() if k != key})  # may be left out


def _wrong(v: Any) -> Any:
    """A value of another type than ``v`` — the nearest wrong one (bool for an int, an int for a bool)."""
    if type(v) is bool:
        return 1
    if type(v) is int:
        return True
    if type(v) is str:
        return 5
    if type(v) is bytes:
        return "text"
    if type(v) is list:
        return "list"
    if type(v) is dict:
        return [1]
    return {"x": 1}  # None -> a map


@pytest.mark.parametrize("case", REQUESTS + ANSWERS, ids=_id)
def test_wrongly_typed_values(case: tuple[Any, set[str]]) -> None:
    msg, _ = case
    payload = msg.encode()
    for key, value in payload.items():
        if value is None:
            continue  # None stands for "absent" in optional fields
        with pytest.raises(MessageError):
            type(msg).decode({**payload, key: _wrong(value)})


@pytest.mark.parametrize("case", REQUESTS + ANSWERS, ids=_id)
def test_not_a_map(case: tuple[Any, set[str]]) -> None:
    for payload in (None, [1, 2], "payload", b"payload", 7):
        with pytest.raises(MessageError):
            type(case[0]).decode(payload)


@pytest.mark.parametrize("case", ANSWERS, ids=_id)
def test_a_refusal_is_an_error_with_the_peers_reason(case: tuple[Any, set[str]]) -> None:
    if isinstance(case[0], s.SnapshotChunk):
        return  # chunks follow a manifest; a refusal comes instead of the manifest
    with pytest.raises(MessageError, match="unknown database app"):
        type(case[0]).decode({"error": "unknown database app"})


@pytest.mark.parametrize(
    "payload, why",
    [
        ({"ok": True, "ts": [1, 2]}, "timestamp"),
        ({"ok": True, "ts": [-1, 0, 1]}, "timestamp"),
        ({"ok": True, "ts": [True, 0, 1]}, "timestamp"),
        ({"ok": True, "ts": [1 << 63, 0, 1]}, "timestamp"),
        ({"ok": True, "ts": [1, 1 << 16, 1]}, "timestamp"),
    ],
)
def test_timestamps_are_wall_logical_node(payload: dict[str, Any], why: str) -> None:
    with pytest.raises(MessageError, match=why):
        t.PrepareAnswer.decode(payload)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: {**p, "bv": [[1, 2]]},  # a base version is [wall, logical, node]
        lambda p: {**p, "bv": {"a": 1}},
        lambda p: {**p, "tv": {"kv": "not bytes"}},
        lambda p: {**p, "tv": {5: b"x"}},
        lambda p: {**p, "dt": ["kv", 5]},
        lambda p: {**p, "txn": 1.5},
        lambda p: {**p, "coord": None},
    ],
    ids=["bv_short", "bv_map", "tv_value", "tv_key", "dt_entry", "txn_float", "coord_nil"],
)
def test_malformed_prepare_fields(mutate: Any) -> None:
    with pytest.raises(MessageError):
        t.Prepare.decode(mutate(REQUESTS[1][0].encode()))


@pytest.mark.parametrize(
    "payload",
    [
        {"state": "committed"},  # committed needs its commit timestamp
        {"state": "committed", "cts": "soon"},
        {"state": "done"},
        {"state": ["committed"]},
    ],
)
def test_malformed_status_answers(payload: dict[str, Any]) -> None:
    with pytest.raises(MessageError):
        t.StatusAnswer.decode(payload)


def test_read_status_never_takes_an_unreadable_commit_for_no_commit() -> None:
    assert t.read_status({"state": "prepared"}) == t.StatusAnswer("prepared")
    assert t.read_status(ConnectionError("down")) is None  # no answer
    assert t.read_status({"state": 5}) is None
    assert t.read_status("garbage") is None
    with pytest.raises(MessageError):
        t.read_status({"state": "committed", "cts": "soon"})


@pytest.mark.parametrize(
    "entry",
    [
        [1, 77, 1, 0, 2, 2],  # six values
        [1, 77, 1, 0, 2, 2, "body"],
        [True, 77, 1, 0, 2, 2, b""],
        [1, 77, -1, 0, 2, 2, b""],
        [1, 77, 1, 0, 2, None, b""],
        {"seq": 1},
    ],
)
def test_malformed_log_entries(entry: Any) -> None:
    with pytest.raises(MessageError):
        s.LogEntries.decode({"entries": [[1, 77, 1, 0, 2, 2, b"ok"], entry]})


@pytest.mark.parametrize(
    "cls, payload",
    [
        (s.LogList, {"log_id": "a", "entries": [[1, 2, 3]], "last": 1, "first": 1}),
        (s.LogList, {"log_id": "a", "entries": [[1, False]], "last": 1, "first": 1}),
        (s.LogDatabases, {"dbs": {"app": ["abcd"]}}),
        (s.LogDatabases, {"dbs": {"app": ["abcd", "12"]}}),
        (s.LogHave, {"have": [1, "2"], "oldest_wall": None}),
        (s.RepairKeys, {"keys": [[b"k", [1, 2], False]], "next": None}),
        (s.RepairKeys, {"keys": [[b"k", [1, 2, 3], 0]], "next": None}),
        (s.RepairRows, {"rows": [[b"k", [1, 2, 3], False, {}]]}),  # an image is a non-empty map
        (s.RepairRows, {"rows": [[b"k", [1, 2, 3], False, {"v": [1]}]]}),
        (s.RepairRows, {"rows": [[b"k", [1, 2, 3], False, {"v": 1 << 64}]]}),
        (s.RepairRows, {"rows": [["k", [1, 2, 3], False, {"v": 1}]]}),
        (s.LogFetchRequest, {"db": "app", "seqs": list(range(s.FETCH_BATCH + 1))}),
        (s.LogFetchRequest, {"db": "app", "seqs": [1, True]}),
        (s.LogHaveRequest, {"db": "app", "txn_ids": list(range(s.HAVE_SAMPLE + 1))}),
        (s.RepairRowsRequest, {"db": "app", "table": "kv", "keys": [b"k"] * (s.REPAIR_BATCH + 1)}),
        (s.RepairRowsRequest, {"db": "app", "table": "kv", "keys": ["k"]}),
        (s.RepairKeysRequest, {"db": "app", "table": "kv", "after": "k", "limit": 5}),
    ],
)
def test_malformed_sync_messages(cls: Any, payload: dict[str, Any]) -> None:
    with pytest.raises(MessageError):
        cls.decode(payload)


def test_fuzzed_payloads_raise_message_error_only() -> None:
    """Random values, and valid maps with random values put in: every decode gives a message of its
    type or raises MessageError — never anything else."""
    rng = random.Random(19)
    leaves = [
        None,
        True,
        False,
        0,
        1,
        -1,
        1 << 64,
        0.5,
        "",
        "x",
        "committed",
        b"",
        b"\x01",
        [],
        {},
        [1, 2, 3],
        [True, 0, 1],
        [1, 2, 3, 4, 5, 6, b""],
        {"x": 1},
        {"error": "no"},
    ]

    def value(depth: int = 0) -> Any:
        r = rng.random()
        if depth < 2 and r < 0.2:
            return [value(depth + 1) for _ in range(rng.randint(0, 7))]
        if depth < 2 and r < 0.35:
            return {rng.choice(["a", "db", "ts", 1]): value(depth + 1) for _ in range(rng.randint(0, 3))}
        return rng.choice(leaves)

    decoded = errors = 0
    for msg, _ in REQUESTS + ANSWERS:
        cls = type(msg)
        for _ in range(150):
            payload = msg.encode()
            if rng.random() < 0.2:
                payload = value()
            else:
                for key in rng.sample(sorted(payload), k=rng.randint(1, min(2, len(payload)))):
                    payload[key] = value()
            try:
                out = cls.decode(payload)
            except MessageError:
                errors += 1
                continue
            assert type(out) is cls
            decoded += 1
    assert decoded > 50 and errors > 1000  # both outcomes were really exercised


# -- large bodies as a client stream ----------------------------------------------------------------


async def _chunks(items: list[Any]) -> AsyncIterator[Any]:
    for c in items:
        yield c


def test_split_and_join_body() -> None:
    req = t.Replay("app", 77, CTS, 2, bytes(range(256)) * 10, 4)
    chunks = t.split_body(req.encode(), 1000)
    assert chunks[0] == {k: v for k, v in req.encode().items() if k != "body"} | {"size": 2560}
    assert [len(c) for c in chunks[1:]] == [1000, 1000, 560]
    assert t.Replay.decode(asyncio.run(t.join_body(_chunks(wire(chunks))))) == req
    for bad in (
        chunks[:-1],
        chunks + [b"x"],
        [chunks[0], "text", *chunks[1:]],
        chunks[1:],
        [],
        [{**chunks[0], "size": "2560"}, *chunks[1:]],
    ):
        assert asyncio.run(t.join_body(_chunks(bad))) is None


# -- snapshots: what the receiver makes of a refused or malformed stream ----------------------------


@pytest.mark.parametrize(
    "first",
    [
        {"error": "unknown database app"},
        {
            "db": "app",
            "size": "4096",
            "sha256": "ab",
            "log_id": "a",
            "last_seq": 1,
            "schema_version": 1,
            "chunks": 1,
        },
        "garbage",
    ],
)
def test_snapshot_receive_refuses_a_bad_manifest(tmp_path: Path, first: Any) -> None:
    with pytest.raises(snap.SnapshotError, match="manifest"):
        asyncio.run(snap.receive(_chunks([first]), tmp_path, "app"))
    assert list(tmp_path.iterdir()) == []  # nothing left behind


# -- one constructor from config --------------------------------------------------------------------


def test_settings_from_config() -> None:
    cfg = load_config(
        None,
        {
            "replication.stream_chunk_size_kb": 64,
            "replication.write_timeout_ms": 2500,
            "replication.enable_anti_entropy": False,
            "batch_commit.enabled": False,
            "replication.default_write_consistency": "ALL",
            "transaction.heartbeat_timeout_seconds": 7,
            "ddl.lock_lease_seconds": 40,
        },
        env={},
    )
    st = ReplicationSettings.from_config(cfg)
    assert (st.stream_chunk, st.write_timeout, st.anti_entropy_interval, st.max_batch) == (
        64 * 1024,
        2.5,
        None,
        1,
    )
    assert (st.default_level, st.heartbeat_timeout, st.ddl_lease) == ("ALL", 7.0, 40.0)
    assert st.progress_bar is True
    defaults = ReplicationSettings.from_config(load_config(None, env={}))
    r = load_config(None, env={}).replication
    assert defaults.anti_entropy_interval == float(r.anti_entropy_interval_seconds)
    assert defaults.snapshot_threshold == r.delta_sync_threshold_transactions
    assert defaults.gc_interval == float(r.gc_interval_seconds)
