"""MySQL wire codec, byte for byte: framing, length-encoded data, builders, parsers, row encoding, fuzz."""

from __future__ import annotations

import contextlib
import datetime as dt
import random
import struct
from decimal import Decimal

import pymysql._auth
import pytest

from marmot.mysql import auth
from marmot.mysql.constants import MAX_PACKET_PAYLOAD, Capability, Command, FieldType
from marmot.mysql.packets import (
    BinaryRowEncoder,
    ExecuteRequest,
    PacketFramer,
    PacketTooLarge,
    ProtocolError,
    auth_more_data,
    auth_switch_request,
    binary_row,
    column_count,
    column_definition,
    encode_text_value,
    eof_packet,
    err_packet,
    execute_statement_id,
    frame,
    frame_many,
    handshake_v10,
    lenenc_bytes,
    lenenc_int,
    local_infile_request,
    ok_packet,
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
    read_nul_str,
    stmt_prepare_ok,
    text_row,
    text_row_values,
)

C = Capability
T = FieldType
SALT = bytes(range(1, 21))
MAX = MAX_PACKET_PAYLOAD


# ------------------------------------------------------------------------------------------------ framing


def test_frame_small_packet_and_seq_wrap() -> None:
    assert frame(b"abc", 0) == (b"\x03\x00\x00\x00abc", 1)
    assert frame(b"", 255) == (b"\x00\x00\x00\xff", 0)
    assert frame(b"x", 256 + 7) == (b"\x01\x00\x00\x07x", 8)


def test_frame_just_below_limit_is_one_fragment() -> None:
    wire, seq = frame(b"a" * (MAX - 1), 3)
    assert wire[:4] == b"\xfe\xff\xff\x03" and len(wire) == MAX + 3 and seq == 4


def test_frame_exact_limit_adds_empty_fragment() -> None:
    payload = b"q" * MAX
    wire, seq = frame(payload, 5)
    assert wire[:4] == b"\xff\xff\xff\x05"
    assert wire[4 : 4 + MAX] == payload
    assert wire[4 + MAX :] == b"\x00\x00\x00\x06"
    assert seq == 7


def test_frame_exact_double_limit_and_seq_wrap_inside() -> None:
    wire, seq = frame(b"z" * (2 * MAX), 254)
    assert wire[:4] == b"\xff\xff\xff\xfe"
    assert wire[4 + MAX : 8 + MAX] == b"\xff\xff\xff\xff"
    assert wire[8 + 2 * MAX :] == b"\x00\x00\x00\x00"
    assert seq == 1


def test_frame_above_limit_splits_remainder() -> None:
    wire, seq = frame(b"a" * MAX + b"tail", 0)
    assert wire[4 + MAX :] == b"\x04\x00\x00\x01tail"
    assert seq == 2


@pytest.mark.parametrize("size", [MAX - 1, MAX, MAX + 4, 2 * MAX])
def test_framer_joins_fragments(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + b"e" * (size % 256)
    wire, next_seq = frame(payload, 9)
    framer = PacketFramer(max_payload=3 * MAX)
    framer.feed(wire)
    seq, got = framer.next_packet()  # type: ignore[misc]
    assert got == payload
    assert seq == (next_seq - 1) & 0xFF  # sequence id of the LAST fragment
    assert framer.next_packet() is None
    assert framer.pending == 0


def test_framer_byte_at_a_time() -> None:
    payloads = [b"", b"a", b"hello world", bytes(300), b"\x03SELECT 1"]
    wire, _ = frame_many(payloads, 0)
    framer = PacketFramer()
    got = []
    for b in wire:
        framer.feed(bytes((b,)))
        while (pkt := framer.next_packet()) is not None:
            got.append(pkt)
    assert got == [(i, p) for i, p in enumerate(payloads)]


def test_framer_many_small_packets_in_one_feed() -> None:
    payloads = [b"%d" % i for i in range(50_000)]
    wire, _ = frame_many(payloads, 0)
    framer = PacketFramer()
    framer.feed(wire[:-3])
    out = []
    while (pkt := framer.next_packet()) is not None:
        out.append(pkt[1])
    framer.feed(wire[-3:])
    out.append(framer.next_packet()[1])  # type: ignore[index]
    assert out == payloads
    assert framer.pending == 0


def test_framer_partial_header_and_payload() -> None:
    framer = PacketFramer()
    framer.feed(b"\x05\x00")
    assert framer.next_packet() is None
    framer.feed(b"\x00\x02ab")
    assert framer.next_packet() is None
    assert framer.pending == 6
    framer.feed(b"cde\x01\x00\x00\x03")
    assert framer.next_packet() == (2, b"abcde")
    assert framer.next_packet() is None
    framer.feed(b"z")
    assert framer.next_packet() == (3, b"z")


def test_framer_rejects_oversize_from_the_header_alone() -> None:
    framer = PacketFramer(max_payload=100)
    framer.feed(b"\x65\x00\x00\x00")  # announces 101 bytes; no payload sent yet
    with pytest.raises(PacketTooLarge):
        framer.next_packet()
    assert issubclass(PacketTooLarge, ProtocolError)


def test_framer_accepts_exact_limit() -> None:
    framer = PacketFramer(max_payload=100)
    framer.feed(frame(b"x" * 100, 0)[0])
    assert framer.next_packet() == (0, b"x" * 100)


def test_framer_rejects_oversize_continuation_before_buffering_it() -> None:
    framer = PacketFramer(max_payload=MAX + 10)
    framer.feed(b"\xff\xff\xff\x00" + bytes(MAX))  # a full fragment: more must follow
    assert framer.next_packet() is None
    framer.feed(b"\x0b\x00\x00\x01")  # 11 more bytes announced: 0xFFFFFF + 11 > limit
    with pytest.raises(PacketTooLarge):
        framer.next_packet()


def test_framer_exact_multiple_at_limit() -> None:
    framer = PacketFramer(max_payload=MAX)
    framer.feed(frame(b"m" * MAX, 0)[0])
    seq, payload = framer.next_packet()  # type: ignore[misc]
    assert seq == 1 and len(payload) == MAX


# ------------------------------------------------------------------------------------- length-encoded

LENENC_CASES = [
    (0, b"\x00"),
    (250, b"\xfa"),
    (251, b"\xfc\xfb\x00"),
    (0xFFFF, b"\xfc\xff\xff"),
    (0x10000, b"\xfd\x00\x00\x01"),
    (0xFFFFFF, b"\xfd\xff\xff\xff"),
    (0x1000000, b"\xfe\x00\x00\x00\x01\x00\x00\x00\x00"),
    (2**64 - 1, b"\xfe" + b"\xff" * 8),
]


@pytest.mark.parametrize(("n", "wire"), LENENC_CASES)
def test_lenenc_int_round_trip(n: int, wire: bytes) -> None:
    assert lenenc_int(n) == wire
    assert read_lenenc_int(b"pre" + wire + b"post", 3) == (n, 3 + len(wire))
    for cut in range(1, len(wire)):
        with pytest.raises(ProtocolError):
            read_lenenc_int(wire[:cut], 0)


@pytest.mark.parametrize("n", [-1, 2**64])
def test_lenenc_int_out_of_range(n: int) -> None:
    with pytest.raises(ValueError):
        lenenc_int(n)


def test_read_lenenc_int_null_and_invalid() -> None:
    assert read_lenenc_int(b"\xfb", 0) == (None, 1)
    assert read_lenenc_bytes(b"\xfb", 0) == (None, 1)
    with pytest.raises(ProtocolError):
        read_lenenc_int(b"\xff", 0)
    with pytest.raises(ProtocolError):
        read_lenenc_int(b"", 0)


@pytest.mark.parametrize("size", [0, 1, 250, 251, 70000])
def test_lenenc_bytes_round_trip(size: int) -> None:
    data = bytes(i % 256 for i in range(size))
    wire = lenenc_bytes(data)
    assert wire == lenenc_int(size) + data
    assert read_lenenc_bytes(wire, 0) == (data, len(wire))
    with pytest.raises(ProtocolError):
        read_lenenc_bytes(wire[:-1] if size else b"", 0)


def test_read_nul_str() -> None:
    assert read_nul_str(b"ab\x00cd\x00", 0) == (b"ab", 3)
    assert read_nul_str(b"ab\x00cd\x00", 3) == (b"cd", 6)
    assert read_nul_str(b"\x00", 0) == (b"", 1)
    with pytest.raises(ProtocolError):
        read_nul_str(b"abc", 0)
    with pytest.raises(ProtocolError):
        read_nul_str(b"abc", 9)


# --------------------------------------------------------------------------------------------- builders


def test_ok_packet_bytes() -> None:
    assert ok_packet() == b"\x00\x00\x00\x00\x00\x00\x00"
    assert ok_packet(1, 300, 2, 1) == b"\x00\x01\xfc\x2c\x01\x02\x00\x01\x00"
    assert ok_packet(0, 0, 0x22, 0, header=0xFE) == b"\xfe\x00\x00\x22\x00\x00\x00"
    assert ok_packet(3, 0, 2, 0, b"Rows matched: 3") == b"\x00\x03\x00\x02\x00\x00\x00Rows matched: 3"
    assert ok_packet(0, 0, 2, 0, b"hi", session_track=True) == b"\x00\x00\x00\x02\x00\x00\x00\x02hi"
    assert ok_packet(0, 2**40) == b"\x00\x00\xfe" + struct.pack("<Q", 2**40) + b"\x00" * 4


def test_err_packet_bytes() -> None:
    assert err_packet(1064, "42000", "bad") == b"\xff\x28\x04#42000bad"
    assert err_packet(1105, "nope", "x") == b"\xff\x51\x04#HY000x"


def test_err_packet_truncates_on_a_character_boundary() -> None:
    pkt = err_packet(1105, "HY000", "é" * 600)  # 1200 bytes of UTF-8
    msg = pkt[9:]
    assert len(msg) <= 512
    assert msg.decode("utf-8") == "é" * 256


def test_eof_packet_bytes() -> None:
    assert eof_packet() == b"\xfe\x00\x00\x00\x00"
    assert eof_packet(1, 0x0A) == b"\xfe\x01\x00\x0a\x00"


SERVER_CAPS = (
    C.CLIENT_LONG_PASSWORD
    | C.CLIENT_FOUND_ROWS
    | C.CLIENT_CONNECT_WITH_DB
    | C.CLIENT_PROTOCOL_41
    | C.CLIENT_TRANSACTIONS
    | C.CLIENT_SECURE_CONNECTION
    | C.CLIENT_MULTI_STATEMENTS
    | C.CLIENT_MULTI_RESULTS
    | C.CLIENT_PLUGIN_AUTH
    | C.CLIENT_CONNECT_ATTRS
    | C.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
    | C.CLIENT_DEPRECATE_EOF
)


def test_handshake_v10_bytes() -> None:
    pkt = handshake_v10(7, "8.0.36-marmot", SALT, int(SERVER_CAPS), 45, 2, "mysql_native_password")
    caps = int(SERVER_CAPS)
    expected = (
        b"\x0a8.0.36-marmot\x00"
        + b"\x07\x00\x00\x00"
        + SALT[:8]
        + b"\x00"
        + struct.pack("<H", caps & 0xFFFF)
        + b"\x2d"
        + b"\x02\x00"
        + struct.pack("<H", caps >> 16)
        + b"\x15"
        + bytes(10)
        + SALT[8:]
        + b"\x00"
        + b"mysql_native_password\x00"
    )
    assert pkt == expected
    assert len(SALT[8:]) == 12


def test_handshake_v10_rejects_bad_salt() -> None:
    with pytest.raises(ValueError):
        handshake_v10(1, "x", b"short", int(SERVER_CAPS), 45, 2, "mysql_native_password")


def _client_view_of_handshake(pkt: bytes) -> tuple[int, bytes, str]:
    """What a client extracts from our handshake: capabilities, 20-byte salt, plugin name."""
    assert pkt[0] == 10
    pos = pkt.index(b"\x00", 1) + 1 + 4
    salt1 = pkt[pos : pos + 8]
    pos += 9
    lo, _charset, _status, hi, salt_len = struct.unpack_from("<HBHHB", pkt, pos)
    pos += 8 + 10
    salt2_len = max(13, salt_len - 8)
    salt2 = pkt[pos : pos + salt2_len - 1]
    plugin = pkt[pos + salt2_len :].split(b"\x00")[0].decode()
    return lo | hi << 16, salt1 + salt2, plugin


def _attrs(pairs: dict[str, str]) -> bytes:
    blob = b"".join(lenenc_bytes(k.encode()) + lenenc_bytes(v.encode()) for k, v in pairs.items())
    return lenenc_bytes(blob)


def _response(
    caps: int, user: bytes, auth_part: bytes, db: bytes | None = None, plugin: bytes | None = None, tail=b""
) -> bytes:
    out = struct.pack("<IIB", caps, 16 * 1024 * 1024, 45) + bytes(23) + user + b"\x00" + auth_part
    if db is not None:
        out += db + b"\x00"
    if plugin is not None:
        out += plugin + b"\x00"
    return out + tail


def test_handshake_round_trip_with_pymysql_native_scramble() -> None:
    server_salt = auth.new_salt()
    pkt = handshake_v10(1, "8.0.36", server_salt, int(SERVER_CAPS), 45, 2, "mysql_native_password")
    caps, salt, plugin = _client_view_of_handshake(pkt)
    assert salt == server_salt and plugin == "mysql_native_password"
    scramble = pymysql._auth.scramble_native_password(b"pw", salt)
    client_caps = int(
        C.CLIENT_PROTOCOL_41
        | C.CLIENT_SECURE_CONNECTION
        | C.CLIENT_PLUGIN_AUTH
        | C.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
        | C.CLIENT_CONNECT_WITH_DB
        | C.CLIENT_CONNECT_ATTRS
    )
    resp = parse_handshake_response(
        _response(
            client_caps,
            b"root",
            lenenc_bytes(scramble),
            b"marmot",
            b"mysql_native_password",
            _attrs({"_client_name": "pymysql", "_pid": "42"}),
        )
    )
    assert resp.capabilities == client_caps and resp.max_packet == 16 * 1024 * 1024 and resp.charset == 45
    assert resp.username == "root" and resp.database == "marmot"
    assert resp.auth_plugin == "mysql_native_password"
    assert resp.attributes == {"_client_name": "pymysql", "_pid": "42"}
    assert not resp.is_ssl_request
    assert auth.verify_native("pw", server_salt, resp.auth_response)
    assert not auth.verify_native("pw2", server_salt, resp.auth_response)


def test_handshake_response_caching_sha2_secure_connection_form() -> None:
    scramble = pymysql._auth.scramble_caching_sha2(b"pw", SALT)
    caps = int(C.CLIENT_PROTOCOL_41 | C.CLIENT_SECURE_CONNECTION | C.CLIENT_PLUGIN_AUTH)
    resp = parse_handshake_response(
        _response(caps, b"app", bytes([len(scramble)]) + scramble, None, b"caching_sha2_password")
    )
    assert resp.username == "app" and resp.database is None
    assert resp.auth_plugin == "caching_sha2_password" and resp.attributes == {}
    assert auth.verify_caching_sha2_fast("pw", SALT, resp.auth_response)


def test_handshake_response_old_nul_terminated_auth() -> None:
    caps = int(C.CLIENT_PROTOCOL_41 | C.CLIENT_CONNECT_WITH_DB)
    resp = parse_handshake_response(_response(caps, b"u", b"secret\x00", b"db1"))
    assert (resp.auth_response, resp.database, resp.auth_plugin) == (b"secret", "db1", None)


def test_handshake_response_unterminated_plugin_and_empty_db() -> None:
    caps = int(
        C.CLIENT_PROTOCOL_41 | C.CLIENT_SECURE_CONNECTION | C.CLIENT_PLUGIN_AUTH | C.CLIENT_CONNECT_WITH_DB
    )
    payload = _response(caps, b"u", b"\x00", b"") + b"mysql_native_password"
    resp = parse_handshake_response(payload)
    assert resp.auth_response == b"" and resp.database is None
    assert resp.auth_plugin == "mysql_native_password"


def test_ssl_request() -> None:
    caps = int(C.CLIENT_PROTOCOL_41 | C.CLIENT_SSL | C.CLIENT_SECURE_CONNECTION)
    payload = struct.pack("<IIB", caps, 1 << 24, 45) + bytes(23)
    resp = parse_handshake_response(payload)
    assert resp.is_ssl_request and resp.username == "" and resp.auth_response == b""
    assert resp.capabilities == caps and resp.database is None and resp.auth_plugin is None


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        bytes(31),
        struct.pack("<IIB", int(C.CLIENT_PROTOCOL_41), 0, 45) + bytes(23),  # 32 bytes without CLIENT_SSL
        struct.pack("<IIB", int(C.CLIENT_SECURE_CONNECTION), 0, 45) + bytes(23) + b"u\x00\x00",  # pre-4.1
        struct.pack("<IIB", int(C.CLIENT_PROTOCOL_41), 0, 45) + bytes(23) + b"no-terminator",
    ],
)
def test_handshake_response_malformed(payload: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_handshake_response(payload)


def test_handshake_response_truncated_auth_and_attrs() -> None:
    caps = int(C.CLIENT_PROTOCOL_41 | C.CLIENT_SECURE_CONNECTION)
    with pytest.raises(ProtocolError):
        parse_handshake_response(_response(caps, b"u", b"\x14abc"))
    caps = int(C.CLIENT_PROTOCOL_41 | C.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA | C.CLIENT_CONNECT_ATTRS)
    with pytest.raises(ProtocolError):
        parse_handshake_response(_response(caps, b"u", b"\x00", tail=_attrs({"a": "b"})[:-1]))


def test_parse_change_user() -> None:
    scramble = pymysql._auth.scramble_native_password(b"pw", SALT)
    caps = int(C.CLIENT_PROTOCOL_41 | C.CLIENT_SECURE_CONNECTION | C.CLIENT_PLUGIN_AUTH)
    payload = (
        b"\x11bob\x00" + bytes([20]) + scramble + b"shop\x00" + b"\x2d\x00" + b"mysql_native_password\x00"
    )
    user, resp, db, charset, plugin = parse_change_user(payload, caps)
    assert (user, db, charset, plugin) == ("bob", "shop", 45, "mysql_native_password")
    assert auth.verify_native("pw", SALT, resp)
    # old clients stop after the database name; an empty database is None
    assert parse_change_user(b"\x11bob\x00\x00\x00", caps) == ("bob", b"", None, None, None)
    assert parse_change_user(b"\x11bob\x00pw\x00db\x00", int(C.CLIENT_PROTOCOL_41))[:3] == (
        "bob",
        b"pw",
        "db",
    )
    for bad in (b"", b"\x03x\x00", b"\x11bob", b"\x11bob\x00\x05ab", b"\x11bob\x00\x00db\x00\x2d"):
        with pytest.raises(ProtocolError):
            parse_change_user(bad, caps)


def test_small_builders() -> None:
    assert auth_switch_request("mysql_native_password", SALT) == (
        b"\xfemysql_native_password\x00" + SALT + b"\x00"
    )
    assert auth_more_data(b"\x03") == b"\x01\x03"
    assert column_count(3) == b"\x03"
    assert column_count(300) == b"\xfc\x2c\x01"
    assert stmt_prepare_ok(1, 2, 3) == b"\x00\x01\x00\x00\x00\x02\x00\x03\x00\x00\x00\x00"
    assert stmt_prepare_ok(0x01020304, 0, 0, 5) == b"\x00\x04\x03\x02\x01\x00\x00\x00\x00\x00\x05\x00"
    assert local_infile_request("a.csv") == b"\xfba.csv"


def test_column_definition_bytes() -> None:
    pkt = column_definition(
        "id", T.LONGLONG, schema="s", table="t", org_table="t", org_name="id", charset=63, length=20, flags=3
    )
    assert pkt == (
        b"\x03def\x01s\x01t\x01t\x02id\x02id" + b"\x0c\x3f\x00\x14\x00\x00\x00\x08\x03\x00\x00\x00\x00"
    )
    minimal = column_definition("é", T.VAR_STRING)
    assert (
        minimal == b"\x03def\x00\x00\x00\x02\xc3\xa9\x00\x0c\x2d\x00\x00\x00\x00\x00\xfd\x00\x00\x00\x00\x00"
    )
    big = column_definition("c", T.BLOB, length=2**40, flags=0x1_0010, decimals=31)
    assert big[-10:] == b"\xff\xff\xff\xff\xfc\x10\x00\x1f\x00\x00"  # clamped length, 16-bit flags


def test_column_definition_field_list_default() -> None:
    base = column_definition("c", T.LONG)
    assert column_definition("c", T.LONG, field_list_default=None) == base + b"\xfb"
    assert column_definition("c", T.LONG, field_list_default=b"7") == base + b"\x017"


# ------------------------------------------------------------------------------------------- text rows

TEXT_VALUES = [
    (None, None),
    (0, b"0"),
    (-5, b"-5"),
    (2**63 - 1, b"9223372036854775807"),
    (True, b"1"),
    (False, b"0"),
    (2.0, b"2"),
    (-3.0, b"-3"),
    (0.5, b"0.5"),
    (0.1 + 0.2, b"0.30000000000000004"),
    (1e15, b"1e15"),
    (1e20, b"1e20"),
    (123456789012345.0, b"123456789012345"),
    (1e-5, b"0.00001"),
    (2.5e-20, b"2.5e-20"),
    (float("inf"), b"inf"),
    (float("-inf"), b"-inf"),
    (float("nan"), None),
    ("héllo", "héllo".encode()),
    ("", b""),
    (b"\xff\x00", b"\xff\x00"),
    (bytearray(b"ab"), b"ab"),
    (Decimal("1.50"), b"1.50"),
    (dt.datetime(2024, 1, 2, 3, 4, 5), b"2024-01-02 03:04:05"),
    (dt.date(2024, 1, 2), b"2024-01-02"),
    (dt.timedelta(hours=-1, minutes=-30), b"-01:30:00"),
]


@pytest.mark.parametrize(("value", "wire"), TEXT_VALUES)
def test_encode_text_value(value: object, wire: bytes | None) -> None:
    assert encode_text_value(value) == wire


def test_encode_text_value_never_fails_on_lone_surrogates() -> None:
    assert encode_text_value("a\udcff") == b"a\xff"  # surrogateescape'd byte comes back as the byte
    assert encode_text_value("a\ud800") == b"a?"


def test_text_row() -> None:
    assert text_row([b"a", None, b""]) == b"\x01a\xfb\x00"
    long = b"x" * 300
    assert text_row([long]) == b"\xfc\x2c\x01" + long
    row = [1, None, 2.0, "é", b"x" * 300, 1.5]
    assert text_row_values(row) == text_row([encode_text_value(v) for v in row])


# ----------------------------------------------------------------------------------------- binary rows


def test_binary_row_ints_and_null_bitmap() -> None:
    row = binary_row([1, -1, 255, None], [T.TINY, T.TINY, T.TINY, T.LONGLONG], [False, False, True, False])
    assert row == b"\x00\x20\x01\xff\xff"  # NULL in column 3 -> bit 3+2 = 5


def test_binary_row_bitmap_offset_two_spans_bytes() -> None:
    types = [T.LONG] * 7
    row = binary_row([None, 1, 2, 3, 4, 5, None], types)
    assert row[1:3] == b"\x04\x01"  # column 0 -> bit 2, column 6 -> bit 8 (second byte)
    assert row[3:] == b"".join(struct.pack("<i", i) for i in range(1, 6))
    assert binary_row([], []) == b"\x00\x00"
    assert len(binary_row([None] * 6, [T.LONG] * 6)) == 1 + 1
    assert len(binary_row([None] * 7, [T.LONG] * 7)) == 1 + 2


@pytest.mark.parametrize(
    ("type_code", "unsigned", "value", "wire"),
    [
        (T.TINY, False, -128, b"\x80"),
        (T.SHORT, False, -2, b"\xfe\xff"),
        (T.SHORT, True, 65535, b"\xff\xff"),
        (T.YEAR, True, 2024, b"\xe8\x07"),
        (T.LONG, False, -3, b"\xfd\xff\xff\xff"),
        (T.INT24, False, 70000, struct.pack("<i", 70000)),
        (T.LONG, True, 2**32 - 1, b"\xff\xff\xff\xff"),
        (T.LONGLONG, False, -2, b"\xfe" + b"\xff" * 7),
        (T.LONGLONG, True, 2**64 - 1, b"\xff" * 8),
        (T.LONGLONG, False, 2**63 - 1, struct.pack("<q", 2**63 - 1)),
        (T.DOUBLE, False, 1.5, struct.pack("<d", 1.5)),
        (T.FLOAT, False, 0.5, struct.pack("<f", 0.5)),
        (T.VAR_STRING, False, "abc", b"\x03abc"),
        (T.BLOB, False, b"\x00\xff", b"\x02\x00\xff"),
        (T.NEWDECIMAL, False, "12.50", b"\x0512.50"),
        (T.NEWDECIMAL, False, 2.5, b"\x032.5"),
        (T.JSON, False, '{"a":1}', b'\x07{"a":1}'),
    ],
)
def test_binary_value_encoding(type_code: int, unsigned: bool, value: object, wire: bytes) -> None:
    assert binary_row([value], [type_code], [unsigned]) == b"\x00\x00" + wire


@pytest.mark.parametrize(
    ("type_code", "value", "wire"),
    [
        (T.DATETIME, "2024-01-02 03:04:05", b"\x07\xe8\x07\x01\x02\x03\x04\x05"),
        (T.DATETIME, "2024-01-02T03:04:05.5", b"\x0b\xe8\x07\x01\x02\x03\x04\x05\x20\xa1\x07\x00"),
        (T.DATETIME, "2024-01-02 03:04:05.000001Z", b"\x0b\xe8\x07\x01\x02\x03\x04\x05\x01\x00\x00\x00"),
        (T.TIMESTAMP, "2024-01-02", b"\x04\xe8\x07\x01\x02"),
        (T.DATETIME, "2024-01-02 00:00:00", b"\x04\xe8\x07\x01\x02"),
        (T.DATE, "2024-01-02 03:04:05", b"\x04\xe8\x07\x01\x02"),
        (T.DATETIME, "0000-00-00 00:00:00", b"\x00"),
        (T.DATETIME, "not a date", b"\x00"),
        (T.DATETIME, "2024-13-01", b"\x00"),
        (T.DATETIME, 1700000000, b"\x00"),
        (T.DATETIME, 1.5, b"\x00"),
        (T.DATETIME, b"2024-01-02", b"\x04\xe8\x07\x01\x02"),
        (
            T.DATETIME,
            dt.datetime(2024, 1, 2, 3, 4, 5, 6),
            b"\x0b\xe8\x07\x01\x02\x03\x04\x05\x06\x00\x00\x00",
        ),
        (T.DATE, dt.date(2024, 1, 2), b"\x04\xe8\x07\x01\x02"),
        (T.TIME, "12:34:56", b"\x08\x00\x00\x00\x00\x00\x0c\x22\x38"),
        (T.TIME, "-838:59:59", b"\x08\x01\x22\x00\x00\x00\x16\x3b\x3b"),
        (T.TIME, "01:02:03.000004", b"\x0c\x00\x00\x00\x00\x00\x01\x02\x03\x04\x00\x00\x00"),
        (T.TIME, "1 01:00:00", b"\x08\x00\x01\x00\x00\x00\x01\x00\x00"),
        (T.TIME, "00:00:00", b"\x00"),
        (T.TIME, "2024-01-02 03:04:05", b"\x08\x00\x00\x00\x00\x00\x03\x04\x05"),
        (T.TIME, "junk", b"\x00"),
        (T.TIME, 5, b"\x00"),
        (T.TIME, dt.timedelta(days=-1), b"\x08\x01\x01\x00\x00\x00\x00\x00\x00"),
    ],
)
def test_binary_temporal_encoding(type_code: int, value: object, wire: bytes) -> None:
    assert binary_row([value], [type_code]) == b"\x00\x00" + wire


@pytest.mark.parametrize(
    ("type_code", "unsigned", "value", "expected"),
    [
        (T.LONGLONG, False, "12", 12),
        (T.LONGLONG, False, " -7 ", -7),
        (T.LONGLONG, False, "12abc", 12),
        (T.LONGLONG, False, "abc", 0),
        (T.LONGLONG, False, "", 0),
        (T.LONGLONG, False, b"42", 42),
        (T.LONGLONG, False, "2.5e3", 2500),
        (T.LONG, False, 2.6, 3),
        (T.LONG, False, -2.6, -3),
        (T.LONGLONG, False, 1e30, 2**63 - 1),
        (T.LONGLONG, False, float("-inf"), -(2**63)),
        (T.LONGLONG, False, float("nan"), 0),
        (T.LONGLONG, False, "1e999", 2**63 - 1),
        (T.LONGLONG, True, 1.8446744073709552e19, 2**64 - 1),
        (T.TINY, False, 300, 127),
        (T.TINY, True, -5, 0),
        (T.SHORT, False, True, 1),
        (T.LONGLONG, False, Decimal("9.7"), 10),
        (T.LONGLONG, False, object(), 0),
    ],
)
def test_binary_int_coercion(type_code: int, unsigned: bool, value: object, expected: int) -> None:
    row = binary_row([value], [type_code], [unsigned])
    size = {T.TINY: 1, T.SHORT: 2, T.LONG: 4, T.LONGLONG: 8}[type_code]
    assert int.from_bytes(row[2:], "little", signed=not unsigned) == expected
    assert len(row) == 2 + size


@pytest.mark.parametrize(
    ("type_code", "value", "expected"),
    [
        (T.DOUBLE, "3.5", 3.5),
        (T.DOUBLE, "x", 0.0),
        (T.DOUBLE, 7, 7.0),
        (T.DOUBLE, 2**1100, float("inf")),
        (T.FLOAT, 1e300, float("inf")),
        (T.FLOAT, -1e300, float("-inf")),
        (T.FLOAT, "0.25", 0.25),
    ],
)
def test_binary_float_coercion(type_code: int, value: object, expected: float) -> None:
    row = binary_row([value], [type_code])
    fmt = "<d" if type_code == T.DOUBLE else "<f"
    assert struct.unpack(fmt, row[2:])[0] == expected


def test_binary_row_odd_values() -> None:
    assert binary_row([7], [T.VAR_STRING]) == b"\x00\x00\x017"
    assert binary_row([float("nan")], [T.VAR_STRING]) == b"\x00\x04"  # NaN is NULL, as in SQLite
    assert binary_row(["x"], [T.NULL]) == b"\x00\x04"  # NULL-typed column cannot carry a value
    assert binary_row([5], [T.BIT]) == b"\x00\x00\x01\x05"
    assert binary_row([b"\x01"], [T.BIT]) == b"\x00\x00\x01\x01"


def test_binary_row_encoder_matches_wrapper() -> None:
    types = [T.LONGLONG, T.VAR_STRING, T.DOUBLE, T.DATETIME]
    unsigned = [True, False, False, False]
    enc = BinaryRowEncoder(types, unsigned)
    rows = [(1, "a", 1.0, "2024-01-01 00:00:01"), (None, None, None, None), (2**64 - 1, "é", -0.5, "x")]
    for r in rows:
        assert enc.encode(r) == binary_row(r, types, unsigned)
    with pytest.raises(ValueError):
        enc.encode((1, 2))
    with pytest.raises(ValueError):
        BinaryRowEncoder([T.LONG], [True, False])


# ----------------------------------------------------------------------------------- prepared statements


def _execute(
    stmt_id: int, types: list[tuple[int, bool]] | None, values: bytes, nulls: set[int], n: int, flags: int = 0
) -> bytes:
    bitmap = bytearray((n + 7) // 8)
    for i in nulls:
        bitmap[i // 8] |= 1 << (i % 8)
    out = b"\x17" + struct.pack("<IBI", stmt_id, flags, 1) + bytes(bitmap)
    if types is None:
        return out + b"\x00" + values
    return out + b"\x01" + b"".join(bytes((t, 0x80 if u else 0)) for t, u in types) + values


ALL_TYPES: list[tuple[tuple[int, bool], bytes, object]] = [
    ((T.TINY, False), b"\xff", -1),
    ((T.TINY, True), b"\xff", 255),
    ((T.SHORT, False), b"\xfe\xff", -2),
    ((T.SHORT, True), b"\xfe\xff", 65534),
    ((T.YEAR, False), b"\xe8\x07", 2024),
    ((T.LONG, False), struct.pack("<i", -3), -3),
    ((T.LONG, True), b"\xff\xff\xff\xff", 2**32 - 1),
    ((T.INT24, False), struct.pack("<i", -70000), -70000),
    ((T.LONGLONG, False), struct.pack("<q", -(2**63)), -(2**63)),
    ((T.LONGLONG, True), b"\xff" * 8, 2**64 - 1),
    ((T.FLOAT, False), struct.pack("<f", 0.1), 0.1),
    ((T.DOUBLE, False), struct.pack("<d", 2.5), 2.5),
    ((T.DECIMAL, False), b"\x041.50", "1.50"),
    ((T.NEWDECIMAL, False), b"\x02-1", "-1"),
    ((T.VARCHAR, False), b"\x01v", "v"),
    ((T.VAR_STRING, False), lenenc_bytes("héllo".encode()), "héllo"),
    ((T.STRING, False), b"\x02\xff\xfe", b"\xff\xfe"),  # invalid UTF-8 in a string: the raw bytes (a BLOB)
    ((T.ENUM, False), b"\x01a", "a"),
    ((T.SET, False), b"\x03a,b", "a,b"),
    ((T.JSON, False), b"\x02{}", "{}"),
    ((T.BLOB, False), b"\x02\xff\x00", b"\xff\x00"),
    ((T.TINY_BLOB, False), b"\x00", b""),
    ((T.MEDIUM_BLOB, False), b"\x01m", b"m"),
    ((T.LONG_BLOB, False), lenenc_bytes(b"L" * 300), b"L" * 300),
    ((T.GEOMETRY, False), b"\x01g", b"g"),
    ((T.BIT, False), b"\x01\x05", b"\x05"),
    ((T.DATE, False), b"\x04\xe8\x07\x01\x02", "2024-01-02"),
    ((T.DATE, False), b"\x00", "0000-00-00"),
    ((T.DATETIME, False), b"\x07\xe8\x07\x01\x02\x03\x04\x05", "2024-01-02 03:04:05"),
    ((T.DATETIME, False), b"\x0b\xe8\x07\x01\x02\x03\x04\x05\x20\xa1\x07\x00", "2024-01-02 03:04:05.500000"),
    ((T.DATETIME, False), b"\x04\xe8\x07\x01\x02", "2024-01-02"),
    ((T.TIMESTAMP, False), b"\x00", "0000-00-00 00:00:00"),
    ((T.TIMESTAMP, False), b"\x0b\xe8\x07\x01\x02\x03\x04\x05\x00\x00\x00\x00", "2024-01-02 03:04:05"),
    ((T.TIME, False), b"\x08\x00\x00\x00\x00\x00\x0c\x22\x38", "12:34:56"),
    ((T.TIME, False), b"\x0c\x01\x22\x00\x00\x00\x16\x3b\x3b\x01\x00\x00\x00", "-838:59:59.000001"),
    ((T.TIME, False), b"\x00", "00:00:00"),
    ((T.NULL, False), b"", None),
    ((T.LONG, False), b"\x2a\x00\x00\x00", 42),  # last one non-NULL so every truncation is detectable
]


def _all_types_packet() -> bytes:
    types = [t for t, _, _ in ALL_TYPES]
    return _execute(9, types, b"".join(w for _, w, _ in ALL_TYPES), set(), len(types))


def test_parse_stmt_execute_every_type() -> None:
    n = len(ALL_TYPES)
    req = parse_stmt_execute(_all_types_packet(), n, None, {})
    assert isinstance(req, ExecuteRequest)
    assert req.statement_id == 9 and req.flags == 0
    assert req.param_types == [t for t, _, _ in ALL_TYPES]
    assert req.params == [v for _, _, v in ALL_TYPES]
    assert all(type(got) is type(want) for got, (_, _, want) in zip(req.params, ALL_TYPES, strict=True))


def test_parse_stmt_execute_null_bitmap_over_eight_params() -> None:
    types = [(T.LONGLONG, False)] * 11
    nulls = {0, 7, 8, 10}
    values = b"".join(struct.pack("<q", i) for i in range(11) if i not in nulls)
    req = parse_stmt_execute(_execute(1, types, values, nulls, 11), 11, None, {})
    assert req.params == [None if i in nulls else i for i in range(11)]


def test_reexecute_without_rebind_uses_previous_types() -> None:
    types = [(T.VAR_STRING, False), (T.LONGLONG, True)]
    first = parse_stmt_execute(_execute(2, types, b"\x01a\x05" + bytes(7), set(), 2), 2, None, {})
    assert first.params == ["a", 5]
    again = _execute(2, None, b"\x02bc" + b"\xff" * 8, set(), 2)
    second = parse_stmt_execute(again, 2, first.param_types, {})
    assert second.params == ["bc", 2**64 - 1] and second.param_types == types
    with pytest.raises(ProtocolError):
        parse_stmt_execute(again, 2, None, {})
    with pytest.raises(ProtocolError):
        parse_stmt_execute(again, 2, [], {})
    with pytest.raises(ProtocolError):
        parse_stmt_execute(again, 2, types[:1], {})


def test_parse_stmt_execute_long_data() -> None:
    types = [(T.LONG, False), (T.VAR_STRING, False), (T.BLOB, False), (T.LONG, False)]
    # params 1 and 2 come from COM_STMT_SEND_LONG_DATA and are absent from the packet
    payload = _execute(3, types, struct.pack("<i", 1) + struct.pack("<i", 4), set(), 4)
    long_data = {1: "héllo".encode(), 2: b"\xff\x00"}
    req = parse_stmt_execute(payload, 4, None, long_data)
    assert req.params == [1, "héllo", b"\xff\x00", 4]
    # a NULL bit on a long-data parameter does not hide the data (as in MySQL)
    payload = _execute(3, types, struct.pack("<i", 1), {1, 3}, 4)
    assert parse_stmt_execute(payload, 4, None, long_data).params == [1, "héllo", b"\xff\x00", None]


def test_parse_stmt_execute_without_params_and_statement_id() -> None:
    payload = b"\x17\x05\x00\x00\x00\x01\x01\x00\x00\x00"
    assert parse_stmt_execute(payload, 0, None, {}) == ExecuteRequest(5, 1, [], [])
    assert execute_statement_id(payload) == 5
    with pytest.raises(ProtocolError):
        execute_statement_id(b"\x17\x05")
    with pytest.raises(ProtocolError):
        execute_statement_id(b"\x03\x05\x00\x00\x00")


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x03" + bytes(9),
        b"\x17" + bytes(8),
        _execute(1, [(T.LONG, False)], b"\x01\x00", set(), 1),  # truncated value
        _execute(1, [(99, False)], b"\x00", set(), 1),  # unknown type
        _execute(1, [(T.DATETIME, False)], b"\x05" + bytes(5), set(), 1),  # invalid temporal length
        _execute(1, [(T.TIME, False)], b"\x07" + bytes(7), set(), 1),
        _execute(1, [(T.VAR_STRING, False)], b"\xff", set(), 1),  # invalid lenenc
        _execute(1, [(T.VAR_STRING, False)], b"\xfc\x05", set(), 1),
    ],
)
def test_parse_stmt_execute_malformed(payload: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_stmt_execute(payload, 1, None, {})


def test_other_statement_commands() -> None:
    assert parse_send_long_data(b"\x18\x07\x00\x00\x00\x02\x00chunk") == (7, 2, b"chunk")
    assert parse_send_long_data(b"\x18\x07\x00\x00\x00\x02\x00") == (7, 2, b"")
    assert parse_stmt_close(b"\x19\x01\x02\x00\x00") == 0x201
    assert parse_stmt_reset(b"\x1a\x09\x00\x00\x00") == 9
    assert parse_stmt_fetch(b"\x1c\x01\x00\x00\x00\x10\x00\x00\x00") == (1, 16)
    assert parse_set_option(b"\x1b\x01\x00") == 1
    assert parse_field_list(b"\x04users\x00c%") == ("users", "c%")
    assert parse_field_list(b"\x04users") == ("users", "")
    bad = [
        (parse_send_long_data, b"\x18\x07\x00\x00\x00\x02"),
        (parse_send_long_data, b"\x19\x07\x00\x00\x00\x02\x00"),
        (parse_stmt_close, b"\x19\x01"),
        (parse_stmt_close, b"\x1a\x01\x00\x00\x00"),
        (parse_stmt_reset, b"\x19\x01\x00\x00\x00"),
        (parse_stmt_fetch, b"\x1c\x01\x00\x00\x00\x10"),
        (parse_set_option, b"\x1b\x01"),
        (parse_field_list, b""),
    ]
    for parser, payload in bad:
        with pytest.raises(ProtocolError):
            parser(payload)


# ------------------------------------------------------------------------------------------------- fuzz


def _valid_packets() -> list[tuple[str, object, bytes]]:
    caps_full = int(
        C.CLIENT_PROTOCOL_41
        | C.CLIENT_SECURE_CONNECTION
        | C.CLIENT_PLUGIN_AUTH
        | C.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
        | C.CLIENT_CONNECT_WITH_DB
        | C.CLIENT_CONNECT_ATTRS
    )
    scramble = pymysql._auth.scramble_native_password(b"pw", SALT)
    handshake = _response(
        caps_full, b"root", lenenc_bytes(scramble), b"db", b"mysql_native_password", _attrs({"k": "v" * 30})
    )
    secure = _response(int(C.CLIENT_PROTOCOL_41 | C.CLIENT_SECURE_CONNECTION), b"u", b"\x03abc")
    change_user = b"\x11bob\x00\x14" + scramble + b"db\x00\x2d\x00mysql_native_password\x00"
    n = len(ALL_TYPES)
    types = [t for t, _, _ in ALL_TYPES]

    def change(p: bytes) -> object:
        return parse_change_user(p, caps_full)

    def execute(p: bytes) -> object:
        return parse_stmt_execute(p, n, types, {})

    long_types = [(T.LONG, False), (T.VAR_STRING, False), (T.LONG, False)]

    def execute_long(p: bytes) -> object:
        return parse_stmt_execute(p, 3, long_types, {1: b"x"})

    def lenenc_pair(p: bytes) -> object:
        v, pos = read_lenenc_bytes(p, 0)
        return read_lenenc_int(p, pos)

    return [
        ("handshake", parse_handshake_response, handshake),
        ("handshake-secure", parse_handshake_response, secure),
        ("change_user", change, change_user),
        ("execute", execute, _all_types_packet()),
        ("execute-long-data", execute_long, _execute(4, long_types, bytes(8), set(), 3)),
        ("execute-rebind", execute, _execute(4, None, b"".join(w for _, w, _ in ALL_TYPES), set(), n)),
        ("long_data", parse_send_long_data, b"\x18\x07\x00\x00\x00\x02\x00chunk"),
        ("close", parse_stmt_close, b"\x19\x01\x02\x00\x00"),
        ("reset", parse_stmt_reset, b"\x1a\x09\x00\x00\x00"),
        ("fetch", parse_stmt_fetch, b"\x1c\x01\x00\x00\x00\x10\x00\x00\x00"),
        ("set_option", parse_set_option, b"\x1b\x01\x00"),
        ("field_list", parse_field_list, b"\x04users\x00c%"),
        ("lenenc", lenenc_pair, lenenc_bytes(b"q" * 300) + b"\xfd\x01\x02\x03"),
        ("nul_str", lambda p: read_nul_str(p, 0), b"abc\x00"),
    ]


@pytest.mark.parametrize(("name", "parser", "payload"), _valid_packets())
def test_every_truncation_raises_only_protocol_error(name: str, parser, payload: bytes) -> None:
    parser(payload)  # the untouched packet is valid
    for cut in range(len(payload)):
        with contextlib.suppress(ProtocolError):
            parser(payload[:cut])


def test_execute_truncations_are_all_detected() -> None:
    payload = _all_types_packet()
    for cut in range(len(payload)):
        with pytest.raises(ProtocolError):
            parse_stmt_execute(payload[:cut], len(ALL_TYPES), None, {})


def _mutate(rng: random.Random, payload: bytes) -> bytes:
    data = bytearray(payload)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(4)
        if op == 0 and data:
            del data[rng.randrange(len(data)) :]
        elif op == 1 and data:
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        elif op == 2 and data:
            data[rng.randrange(len(data))] = rng.choice((0x00, 0xFB, 0xFC, 0xFD, 0xFE, 0xFF))
        else:
            data.insert(rng.randrange(len(data) + 1), rng.randrange(256))
    return bytes(data)


def test_fuzz_mutations_raise_only_protocol_error() -> None:
    rng = random.Random(20240601)
    cases = _valid_packets()
    for i in range(2000):
        name, parser, payload = cases[i % len(cases)]
        mutated = _mutate(rng, payload)
        try:
            parser(mutated)
        except ProtocolError:
            pass
        except Exception as exc:  # pragma: no cover - the failure message is the point
            pytest.fail(f"{name}: {type(exc).__name__}: {exc} on {mutated!r}")


def test_fuzz_framer_round_trip_random_chunking() -> None:
    rng = random.Random(7)
    payloads = [
        bytes(rng.randrange(256) for _ in range(rng.choice((0, 1, 5, 250, 251, 3000)))) for _ in range(200)
    ]
    wire, _ = frame_many(payloads, 0)
    framer = PacketFramer()
    got: list[bytes] = []
    pos = 0
    while pos < len(wire):
        step = rng.randint(1, 700)
        framer.feed(wire[pos : pos + step])
        pos += step
        while (pkt := framer.next_packet()) is not None:
            got.append(pkt[1])
    assert got == payloads


def test_command_bytes_used_by_parsers() -> None:
    assert Command.COM_STMT_EXECUTE == 0x17 and Command.COM_CHANGE_USER == 0x11
