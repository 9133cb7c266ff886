"""Property-based fuzzing of the MySQL codec in-process (Hypothesis): every decoder a client's bytes reach.

The rule under test (packets.py): a parser returns a value or raises ``ProtocolError``, never anything
else, whatever the bytes. Well-formed packets with random content must parse, and parse to what was sent;
mutated ones (truncated, bit-flipped, spliced) must parse or fail with ``ProtocolError``. ``make fuzz``
runs these with the ``fuzz`` profile (many more examples); the real node gets the same packets over TCP in
tests/integration/test_fuzz_node.py.
"""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import example, given
from hypothesis import strategies as st

from marmot.mysql.packets import (
    PacketFramer,
    PacketTooLarge,
    ProtocolError,
    frame_many,
    parse_change_user,
    parse_field_list,
    parse_handshake_response,
    parse_send_long_data,
    parse_set_option,
    parse_stmt_close,
    parse_stmt_execute,
    parse_stmt_fetch,
    parse_stmt_reset,
    read_lenenc_bytes,
    read_lenenc_int,
)
from tests.support.fuzzing import mutated
from tests.support.mysql_fuzz import CLIENT_CAPS, COMMANDS, PARAM_VALUES, handshake_response, stmt_execute

PARSERS: dict[str, Callable[[bytes], object]] = {
    "change_user": lambda p: parse_change_user(p, CLIENT_CAPS),
    "long_data": parse_send_long_data,
    "close": parse_stmt_close,
    "reset": parse_stmt_reset,
    "fetch": parse_stmt_fetch,
    "set_option": parse_set_option,
    "field_list": parse_field_list,
}


def _only_protocol_error(parse: Callable[[bytes], object], data: bytes) -> object:
    try:
        return parse(data)
    except ProtocolError:
        return None


@given(handshake_response())
def test_handshake_response_well_formed_parses(payload: bytes) -> None:
    resp = parse_handshake_response(payload)
    assert resp.capabilities & 0x200 and not resp.is_ssl_request


@given(handshake_response().flatmap(mutated))
@example(b"\x00\x02\x00\x00" + bytes(28) + b"u\x00")  # 4.1 bit set, user, then nothing: auth data absent
def test_handshake_response_mutated_raises_only_protocol_error(payload: bytes) -> None:
    _only_protocol_error(parse_handshake_response, payload)


@given(
    st.sampled_from(sorted(PARSERS)).flatmap(
        lambda name: st.tuples(st.just(name), COMMANDS[name].flatmap(mutated))
    )
)
def test_command_parsers_raise_only_protocol_error(case: tuple[str, bytes]) -> None:
    name, payload = case
    _only_protocol_error(PARSERS[name], payload)


@given(st.binary(max_size=64), st.integers(0, 70))
def test_lenenc_readers_raise_only_protocol_error(data: bytes, pos: int) -> None:
    _only_protocol_error(lambda d: read_lenenc_int(d, pos), data)
    _only_protocol_error(lambda d: read_lenenc_bytes(d, pos), data)


@st.composite
def _execute_case(draw: st.DrawFn) -> tuple[bytes, int, list[tuple[int, bool]] | None, dict[int, bytes]]:
    n = draw(st.integers(0, 12))
    payload = draw(stmt_execute(num_params=n))
    previous = draw(
        st.none()
        | st.lists(st.tuples(st.sampled_from(sorted(PARAM_VALUES)), st.booleans()), min_size=n, max_size=n)
    )
    long_data = draw(st.dictionaries(st.integers(0, max(n - 1, 0)), st.binary(max_size=8), max_size=2))
    return payload, n, previous, long_data


@given(_execute_case().flatmap(lambda c: st.tuples(mutated(c[0]), st.just(c[1:]))))
def test_stmt_execute_mutated_raises_only_protocol_error(case: tuple[bytes, tuple[object, ...]]) -> None:
    payload, (n, previous, long_data) = case
    _only_protocol_error(lambda p: parse_stmt_execute(p, n, previous, long_data), payload)  # type: ignore[arg-type]


@given(st.data())
def test_stmt_execute_well_formed_decodes_every_parameter(data: st.DataObject) -> None:
    """Known types, types bound: one value per parameter, None exactly where the NULL bitmap says."""
    n = data.draw(st.integers(1, 12))
    payload = data.draw(stmt_execute(num_params=n))
    bound = payload[10 + (n + 7) // 8]
    types = [payload[11 + (n + 7) // 8 + 2 * i] for i in range(n)] if bound else []
    if not bound or any(t not in PARAM_VALUES for t in types):
        _only_protocol_error(lambda p: parse_stmt_execute(p, n, None, {}), payload)
        return
    req = parse_stmt_execute(payload, n, None, {})
    bitmap = payload[10 : 10 + (n + 7) // 8]
    assert len(req.params) == n
    for i, value in enumerate(req.params):
        if bitmap[i >> 3] & (1 << (i & 7)) or types[i] == 6:  # NULL bit, or MYSQL_TYPE_NULL
            assert value is None
    assert [t for t, _ in req.param_types] == types


@given(st.lists(st.binary(max_size=300), max_size=8), st.lists(st.integers(1, 64), min_size=1, max_size=20))
def test_framer_any_chunking_gives_the_same_packets(payloads: list[bytes], cuts: list[int]) -> None:
    wire, _ = frame_many(payloads, 0)
    framer = PacketFramer(1024)
    got: list[bytes] = []
    pos = i = 0
    while pos < len(wire):
        step = cuts[i % len(cuts)]
        i += 1
        framer.feed(wire[pos : pos + step])
        pos += step
        while (pkt := framer.next_packet()) is not None:
            got.append(pkt[1])
    assert got == payloads and framer.pending == 0


@given(st.binary(max_size=600), st.integers(4, 512))
@example(b"\xff\xff\xff\x00", 512)  # a full-size fragment header: refused from the header alone
def test_framer_random_bytes_raise_only_packet_too_large(data: bytes, limit: int) -> None:
    framer = PacketFramer(limit)
    framer.feed(data)
    try:
        while framer.next_packet() is not None:
            pass
    except PacketTooLarge:
        assert len(data) >= 4
    assert framer.pending <= len(data)
