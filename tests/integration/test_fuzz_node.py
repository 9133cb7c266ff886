"""Fuzzing a real node over TCP (Hypothesis): mutated MySQL sessions and RPC streams, then a normal client.

Each example opens a fresh connection, sends a whole byte stream (a login and random commands, maybe
mutated; or an RPC handshake and random frames), half-closes, and reads what the node answers until it
closes. Checked per example: the node closes (it never hangs on garbage once the client is gone), every
error it sent is one of MySQL's codes for the input (never 1105 "Internal error"). Checked after each
test: a fresh PyMySQL connection still gets ``SELECT 1`` and the node's log has no traceback and no
"never retrieved" task. ``make fuzz`` runs many more examples (tests/support/fuzzing.py).
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator

import msgpack
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from marmot.cluster.rpc.frames import AUTH, HELLO, REQUEST, encode_frame
from marmot.cluster.rpc.handshake import NONCE_SIZE, PREAMBLE, client_mac
from marmot.mysql.constants import Command
from marmot.mysql.packets import frame
from marmot.testing.nodes import NodeProcess, make_node
from tests.support.fuzzing import mutated, node_examples
from tests.support.mysql_fuzz import IMPLEMENTED, any_command, handshake_response, login
from tests.support.rawwire import command_stream, errors_in, exchange, log_problems, read_all, split_packets
from tests.support.sql import connect

SECRET = "fuzz-secret"
MAX_PACKET = 65536
# What a node may answer to fuzzed input: MySQL's codes for bad statements, unknown objects, bad
# commands and packets, denied logins. 1105 is allowed only with a message other than "Internal error".
EXPECTED_CODES = {
    1043,  # bad handshake
    1044,
    1045,  # access denied
    1046,  # no database selected
    1047,  # unknown command
    1049,  # unknown database
    1054,
    1064,  # syntax
    1065,  # query was empty
    1105,
    1146,  # no such table
    1153,  # packet too large
    1193,
    1210,  # incorrect arguments to EXECUTE (parameter count)
    1231,
    1232,
    1243,  # unknown prepared statement
    1295,
    1300,  # statement text not UTF-8
    1366,
    1835,  # malformed packet
}


@pytest.fixture(scope="module")
def fuzz_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    n = make_node(
        tmp_path_factory.mktemp("fuzz"),
        mysql_extra=f"max_allowed_packet = {MAX_PACKET}\n",
        cluster_extra=f'cluster_secret = "{SECRET}"\n',
    ).start()
    try:
        c = connect(n)
        with c.cursor() as cur:
            cur.execute("CREATE TABLE fuzz_t (id INT PRIMARY KEY, v TEXT)")
            cur.execute("INSERT INTO fuzz_t VALUES (1, 'one')")
        c.close()
        yield n
    finally:
        n.stop()


@pytest.fixture
def healthy_after(fuzz_node: NodeProcess) -> Iterator[NodeProcess]:
    """After the test: the node runs, answers SELECT 1 on a fresh connection, and logged no crash path."""
    start = fuzz_node.log_path.stat().st_size
    yield fuzz_node
    assert fuzz_node.running(), fuzz_node.log()
    c = connect(fuzz_node, connect_timeout=10)
    with c.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchall() == ((1,),)
    c.close()
    with open(fuzz_node.log_path, "rb") as f:
        f.seek(start)
        added = f.read().decode("utf-8", "replace")
    assert not log_problems(added), "\n".join(log_problems(added)[:20]) + "\n---\n" + added[-4000:]


def _check_answer(data: bytes, closed: bool) -> None:
    assert closed, f"the node neither answered to the end nor closed: {data[-200:]!r}"
    for code, _state, message in errors_in(data):
        assert code in EXPECTED_CODES, (code, message)
        assert "Internal error" not in message, message


# ---------------------------------------------------------------------------------------------- MySQL


@node_examples(ci=80, fuzz=10_000)
@given(st.lists(any_command, max_size=6))
@example([b"\x16SELECT ?, ?", b"\x17\x01\x00\x00\x00\x00\x01\x00\x00\x00\x00\x01\xfe\x00\xfe\x00\x01a\x01b"])
@example([b"\x03SELECT '\xed\xa0\x80'"])  # a lone surrogate's UTF-8 form (not valid UTF-8)
@example([b"\x03SELECT ?, ?"])  # markers outside a prepared statement
def test_random_command_sessions(healthy_after: NodeProcess, commands: list[bytes]) -> None:
    """A logged-in client sends random well-formed commands: each gets its answer, none crashes anything."""
    data, closed = exchange(healthy_after.mysql_port, command_stream(login(), commands))
    _check_answer(data, closed)


@node_examples(ci=10, fuzz=200)
@given(
    st.sampled_from(
        ("SELECT ?", "SELECT ?, ?", "SET @a = ?", "SELECT * FROM fuzz_t WHERE id = ?", "SELECT 1\x00")
    )
)
@example("SELECT ?, ?")  # was an IndexError and 1105 "Internal error"
@example("\x00")  # was a ValueError "null character in query" and 1105 "Internal error"
@example("SELECT '\x00'")  # a NUL kept in the statement text (select list)
def test_marker_or_nul_outside_a_literal_is_1064(healthy_after: NodeProcess, sql: str) -> None:
    data, closed = exchange(healthy_after.mysql_port, command_stream(login(), [b"\x03" + sql.encode()]))
    _check_answer(data, closed)
    assert [e[:2] for e in errors_in(data)] == [(1064, "42000")]


@node_examples(ci=5, fuzz=100)
@given(st.lists(st.integers(0x80, 0xFF), min_size=1, max_size=4).map(lambda b: b"\xed\xa0" + bytes(b)))
@example(b"\xed\xa0\x80")  # was a UnicodeEncodeError and 1105 "Internal error"
def test_statement_text_not_utf8_is_1300(healthy_after: NodeProcess, raw: bytes) -> None:
    """Non-UTF-8 bytes a literal cannot carry (here: in the select list, kept in the SQL text)."""
    data, closed = exchange(healthy_after.mysql_port, command_stream(login(), [b"\x03SELECT '" + raw + b"'"]))
    _check_answer(data, closed)
    assert [e[:2] for e in errors_in(data)] == [(1300, "HY000")]


@node_examples(ci=80, fuzz=5_000)
@given(
    st.lists(any_command, max_size=4).flatmap(lambda cmds: mutated(command_stream(login(), cmds), max_ops=6))
)
def test_mutated_sessions(healthy_after: NodeProcess, stream: bytes) -> None:
    """The same sessions after random edits of the raw bytes (headers included)."""
    data, closed = exchange(healthy_after.mysql_port, stream)
    _check_answer(data, closed)


@node_examples(ci=40, fuzz=2_000)
@given(handshake_response().flatmap(lambda p: mutated(p) | st.just(p)))
def test_random_handshakes(healthy_after: NodeProcess, response: bytes) -> None:
    """Random (and broken) handshake responses: access denied, bad handshake, or logged in; never a crash."""
    data, closed = exchange(healthy_after.mysql_port, frame(response, 1)[0] + frame(b"\x0e", 0)[0])
    _check_answer(data, closed)


@node_examples(ci=20, fuzz=256)
@given(st.integers(0, 255).filter(lambda c: c not in IMPLEMENTED))
def test_unknown_command_is_1047_and_the_connection_stays(healthy_after: NodeProcess, code: int) -> None:
    data, closed = exchange(healthy_after.mysql_port, command_stream(login(), [bytes([code]), b"\x0e"]))
    _check_answer(data, closed)
    packets = split_packets(data)
    assert errors_in(data) == [(1047, "08S01", "Unknown command")], packets
    assert packets[-1][:1] == b"\x00", "the PING after it was answered OK"


@node_examples(ci=5, fuzz=100)
@given(st.integers(MAX_PACKET + 1025, 0xFFFFFF))  # the framer allows 1 KiB of command header
def test_packet_too_large_is_1153(healthy_after: NodeProcess, announced: int) -> None:
    """A header announcing more than max_allowed_packet: 1153 and a close, before the body arrives."""
    head, _ = frame(login(), 1)
    data, closed = exchange(
        healthy_after.mysql_port, head + struct.pack("<I", announced)[:3] + b"\x00" + b"\x03SELECT 1"
    )
    _check_answer(data, closed)
    assert [e[0] for e in errors_in(data)] == [1153]


@node_examples(ci=30, fuzz=1_000)
@given(st.integers(0, 12), st.data())
def test_malformed_execute_is_1835(healthy_after: NodeProcess, n: int, data: st.DataObject) -> None:
    """A COM_STMT_EXECUTE cut short, for a prepared statement with n markers: ERR 1835, then a close."""
    sql = "SELECT " + ", ".join(["?"] * n) if n else "SELECT 1"
    full = data.draw(st.just(b"\x17\x01\x00\x00\x00\x00\x01\x00\x00\x00"))
    cut = data.draw(st.integers(1, 9))
    stream = command_stream(login(), [bytes([Command.COM_STMT_PREPARE]) + sql.encode(), full[:cut]])
    got, closed = exchange(healthy_after.mysql_port, stream)
    _check_answer(got, closed)
    assert errors_in(got)[-1][:2] == (1835, "HY000"), split_packets(got)


def test_long_data_is_bounded_by_max_allowed_packet(healthy_after: NodeProcess) -> None:
    """COM_STMT_SEND_LONG_DATA accumulates up to max_allowed_packet; past it the execute gets 1153 and
    the connection stays usable (the chunks were once joined by bytes + bytes, without a bound)."""

    def long_data(chunk: bytes) -> bytes:
        return b"\x18\x01\x00\x00\x00\x00\x00" + chunk  # statement 1, parameter 0

    execute = b"\x17\x01\x00\x00\x00\x00\x01\x00\x00\x00\x00\x01\xfd\x00"  # VAR_STRING from long data
    fits = [long_data(b"b" * 20_000), long_data(b"b" * 20_000), execute]
    too_big = [long_data(b"a" * 60_000), long_data(b"a" * 60_000), execute]
    stream = command_stream(login(), [b"\x16SELECT ?", *too_big, *fits, b"\x0e"])
    data, closed = exchange(healthy_after.mysql_port, stream)
    _check_answer(data, closed)
    assert [e[0] for e in errors_in(data)] == [1153]
    assert any(b"b" * 40_000 in p for p in split_packets(data)), "the value that fits came back whole"
    assert split_packets(data)[-1][:1] == b"\x00", "the PING after them was answered"


# ------------------------------------------------------------------------------------------------ RPC

RPC_METHODS = (
    "gossip",
    "ping",
    "ping_req",
    "txn_prepare",
    "txn_status",
    "txn_abort",
    "log_databases",
    "log_list",
    "log_fetch",
    "log_have",
    "digest_get",
    "repair_keys",
    "repair_rows",
    "snapshot_stream",
    "txn_prepare_stream",
    "no_such_method",
)
msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=10)
    | st.binary(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=5) | st.integers(0, 9), inner, max_size=4)
    ),
    max_leaves=12,
)
rpc_frames = st.one_of(
    st.builds(
        lambda rid, m, p, t: [REQUEST, rid, m, p, t],
        st.integers(0, 5),
        st.sampled_from(RPC_METHODS),
        msgpack_values,
        st.none() | st.floats() | st.integers(-5, 5),
    ),
    st.lists(msgpack_values, min_size=0, max_size=6).map(lambda f: f),
    st.tuples(st.integers(0, 20), st.integers(0, 5)).map(list),
)


def _frame_bytes(f: object) -> bytes:
    body = msgpack.packb(f, use_bin_type=True)
    return struct.pack(">I", len(body)) + body


@node_examples(ci=60, fuzz=3_000)
@given(st.binary(max_size=64).flatmap(lambda b: mutated(PREAMBLE + b) | st.just(b)))
def test_rpc_unauthenticated_garbage(healthy_after: NodeProcess, stream: bytes) -> None:
    """Bytes on the cluster port from a stranger: HTTP's 400, an RPC abort, or a close; never a crash."""
    _data, closed = exchange(healthy_after.grpc_port, stream)
    assert closed


def _authenticated(port: int, secret: str) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(PREAMBLE)
    head = b""
    while len(head) < 4 or len(head) < 4 + struct.unpack(">I", head[:4])[0]:
        chunk = s.recv(4096)
        assert chunk, "no HELLO"
        head += chunk
    hello = msgpack.unpackb(head[4:], raw=False)
    assert hello[0] == HELLO
    cnonce = os.urandom(NONCE_SIZE)
    s.sendall(encode_frame([AUTH, 0, 99, cnonce, client_mac(secret.encode(), hello[2], cnonce, 99)]))
    return s


@node_examples(ci=40, fuzz=2_000)
@given(st.lists(rpc_frames, max_size=5), st.data())
def test_rpc_authenticated_random_frames(
    healthy_after: NodeProcess, frames: list[object], data: st.DataObject
) -> None:
    """A peer that knows the secret sends random frames (random methods, payloads, field types), maybe
    mutated: each is answered or the connection is aborted; the node serves on."""
    stream = data.draw(
        mutated(b"".join(_frame_bytes(f) for f in frames))
        | st.just(b"".join(_frame_bytes(f) for f in frames))
    )
    with _authenticated(healthy_after.grpc_port, SECRET) as s:
        try:
            s.sendall(stream)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        _data, closed = read_all(s, 15)
    assert closed


@node_examples(ci=20, fuzz=1_000)
@given(st.binary(min_size=0, max_size=48), st.integers(0, 2**64 - 1), st.binary(max_size=40))
def test_rpc_auth_step_with_a_wrong_proof_is_refused(
    healthy_after: NodeProcess, cnonce: bytes, node_id: int, mac: bytes
) -> None:
    """The PSK step: an AUTH frame with any other proof gets "invalid cluster secret" (or an abort for a
    malformed one) and the connection ends."""
    with socket.create_connection(("127.0.0.1", healthy_after.grpc_port), timeout=10) as s:
        s.sendall(PREAMBLE + encode_frame([AUTH, 0, node_id, cnonce, mac]))
        s.shutdown(socket.SHUT_WR)
        got, closed = read_all(s, 10)
    assert closed
    assert b"WELCOME" not in got and b"\x93\x02" not in got[:40]
