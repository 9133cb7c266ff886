"""Hypothesis strategies for MySQL client packets: handshake responses, every command, COM_STMT_EXECUTE.

Shared by the in-process fuzzers of the codec (tests/unit/test_fuzz_mysql.py) and the fuzzer of a real
node (tests/integration/test_fuzz_node.py). Every strategy makes *well-formed* packets with random
content; ``tests.support.fuzzing.mutated`` breaks them. Payloads are without the 4-byte header
(``marmot.mysql.packets.frame`` adds it).
"""

from __future__ import annotations

import struct

from hypothesis import strategies as st

from marmot.mysql.constants import Capability, Command, FieldType
from marmot.mysql.packets import lenenc_bytes, lenenc_int

C = Capability

# What a modern client announces (PyMySQL-like): protocol 4.1, plugin auth, lenenc auth data, attributes.
CLIENT_CAPS = int(
    C.CLIENT_LONG_PASSWORD
    | C.CLIENT_LONG_FLAG
    | C.CLIENT_PROTOCOL_41
    | C.CLIENT_TRANSACTIONS
    | C.CLIENT_SECURE_CONNECTION
    | C.CLIENT_MULTI_STATEMENTS
    | C.CLIENT_MULTI_RESULTS
    | C.CLIENT_PLUGIN_AUTH
    | C.CLIENT_CONNECT_WITH_DB
    | C.CLIENT_CONNECT_ATTRS
    | C.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
    | C.CLIENT_DEPRECATE_EOF
)

names = st.one_of(
    st.sampled_from(("root", "marmot", "", "nobody", "mysql_native_password", "caching_sha2_password")),
    st.text(max_size=12).map(lambda s: s.replace("\x00", "")),
)
small_bytes = st.binary(max_size=40)


def nul(s: str | bytes) -> bytes:
    return (s.encode("utf-8", "surrogatepass") if isinstance(s, str) else s) + b"\x00"


@st.composite
def handshake_response(draw: st.DrawFn, caps: int | None = None, user: str | None = None) -> bytes:
    """HandshakeResponse41 with random capabilities, user, auth data, database, plugin and attributes."""
    if caps is None:
        caps = draw(
            st.one_of(st.just(CLIENT_CAPS), st.integers(0, 2**32 - 1).map(lambda c: c | C.CLIENT_PROTOCOL_41))
        )
    caps &= ~int(C.CLIENT_SSL)  # TLS is another stream (not configured on the fuzzed node)
    out = bytearray(struct.pack("<IIB23x", caps, draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 255))))
    out += nul(draw(names) if user is None else user)
    auth = draw(st.one_of(st.just(b""), st.binary(min_size=20, max_size=20), small_bytes))
    if caps & C.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA:
        out += lenenc_bytes(auth)
    elif caps & C.CLIENT_SECURE_CONNECTION:
        out += bytes([len(auth)]) + auth
    else:
        out += nul(auth.replace(b"\x00", b""))
    if caps & C.CLIENT_CONNECT_WITH_DB:
        out += nul(draw(st.sampled_from(("marmot", "", "nodb", "information_schema"))))
    if caps & C.CLIENT_PLUGIN_AUTH:
        out += nul(draw(st.sampled_from(("mysql_native_password", "caching_sha2_password", "", "x"))))
    if caps & C.CLIENT_CONNECT_ATTRS:
        attrs = draw(st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3))
        blob = b"".join(
            lenenc_bytes(k.encode("utf-8", "surrogatepass"))
            + lenenc_bytes(v.encode("utf-8", "surrogatepass"))
            for k, v in attrs.items()
        )
        out += lenenc_bytes(blob)
    return bytes(out)


def login(user: str = "root") -> bytes:
    """The handshake response a client with an empty password sends (no scramble depends on the salt)."""
    return (
        struct.pack("<IIB23x", CLIENT_CAPS, 1 << 24, 45)
        + nul(user)
        + lenenc_bytes(b"")
        + nul("marmot")
        + nul("mysql_native_password")
        + lenenc_bytes(b"")
    )


SQL = st.one_of(
    st.sampled_from(
        (
            "SELECT 1",
            "SELECT ?, ?",
            "SELECT ? + 1",
            "select 1; select 2",
            "",
            "SELECT * FROM fuzz_t WHERE id = ?",
            "INSERT INTO fuzz_t (id, v) VALUES (?, ?)",
            "SELECT @@version",
            "SET autocommit = 0",
            "BEGIN",
            "ROLLBACK",
            "SELECT 'a\\'b'",
            "SELECT",
        )
    ),
    st.text(max_size=40),
    st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
)


def sql_bytes(s: str) -> bytes:
    return s.encode("utf-8", "surrogatepass")


# Types a client may bind, and a value strategy for each (the binary-protocol encoding of it).
def _int_param(fmt: str) -> st.SearchStrategy[bytes]:
    size = struct.calcsize("<" + fmt)
    return st.integers(0, 2 ** (8 * size) - 1).map(lambda n: n.to_bytes(size, "little"))


def _temporal(lengths: tuple[int, ...]) -> st.SearchStrategy[bytes]:
    return st.sampled_from(lengths).flatmap(
        lambda n: st.binary(min_size=n, max_size=n).map(lambda b: bytes([n]) + b)
    )


PARAM_VALUES: dict[int, st.SearchStrategy[bytes]] = {
    FieldType.TINY: _int_param("b"),
    FieldType.SHORT: _int_param("h"),
    FieldType.YEAR: _int_param("h"),
    FieldType.LONG: _int_param("i"),
    FieldType.INT24: _int_param("i"),
    FieldType.LONGLONG: _int_param("q"),
    FieldType.FLOAT: st.binary(min_size=4, max_size=4),
    FieldType.DOUBLE: st.binary(min_size=8, max_size=8),
    FieldType.DATE: _temporal((0, 4, 7, 11)),
    FieldType.DATETIME: _temporal((0, 4, 7, 11)),
    FieldType.TIMESTAMP: _temporal((0, 4, 7, 11)),
    FieldType.TIME: _temporal((0, 8, 12)),
    FieldType.NULL: st.just(b""),
    **{
        t: st.one_of(small_bytes, st.text(max_size=20).map(sql_bytes)).map(lenenc_bytes)
        for t in (
            FieldType.DECIMAL,
            FieldType.NEWDECIMAL,
            FieldType.VARCHAR,
            FieldType.VAR_STRING,
            FieldType.STRING,
            FieldType.ENUM,
            FieldType.SET,
            FieldType.JSON,
            FieldType.TINY_BLOB,
            FieldType.MEDIUM_BLOB,
            FieldType.LONG_BLOB,
            FieldType.BLOB,
            FieldType.GEOMETRY,
            FieldType.BIT,
            FieldType.VECTOR,
        )
    },
}
# every byte value as a type code: the decoder must refuse the ones it does not know
param_type = st.one_of(st.sampled_from(sorted(PARAM_VALUES)), st.integers(0, 255))


@st.composite
def stmt_execute(draw: st.DrawFn, stmt_id: int | None = None, num_params: int | None = None) -> bytes:
    """COM_STMT_EXECUTE: statement id, flags, iterations, NULL bitmap, maybe types, the values."""
    n = draw(st.integers(0, 12)) if num_params is None else num_params
    sid = draw(st.integers(0, 4)) if stmt_id is None else stmt_id
    out = bytearray(struct.pack("<BIBI", Command.COM_STMT_EXECUTE, sid, draw(st.integers(0, 255)), 1))
    if n == 0:
        return bytes(out)
    nulls = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    bitmap = bytearray((n + 7) // 8)
    for i, is_null in enumerate(nulls):
        if is_null:
            bitmap[i >> 3] |= 1 << (i & 7)
    out += bitmap
    bound = draw(st.booleans()) or draw(st.booleans())
    out.append(1 if bound else 0)
    types = draw(st.lists(param_type, min_size=n, max_size=n))
    if bound:
        for t in types:
            out += bytes([t, draw(st.sampled_from((0, 0x80)))])
    for t, is_null in zip(types, nulls, strict=True):
        if not is_null and t in PARAM_VALUES:
            out += draw(PARAM_VALUES[t])
    return bytes(out)


def _cmd(code: int, body: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    return body.map(lambda b: bytes([code]) + b)


u32 = st.integers(0, 4).map(lambda n: struct.pack("<I", n)) | st.binary(min_size=4, max_size=4)

# One strategy per command byte we implement, plus every other byte (answered 1047 "Unknown command").
COMMANDS: dict[str, st.SearchStrategy[bytes]] = {
    "query": _cmd(Command.COM_QUERY, SQL.map(sql_bytes)),
    "prepare": _cmd(Command.COM_STMT_PREPARE, SQL.map(sql_bytes)),
    "execute": stmt_execute(),
    "long_data": st.builds(
        lambda sid, pid, data: bytes([Command.COM_STMT_SEND_LONG_DATA]) + sid + struct.pack("<H", pid) + data,
        u32,
        st.integers(0, 3),
        small_bytes,
    ),
    "close": _cmd(Command.COM_STMT_CLOSE, u32),
    "reset": _cmd(Command.COM_STMT_RESET, u32),
    "fetch": _cmd(Command.COM_STMT_FETCH, st.builds(lambda a, b: a + b, u32, u32)),
    "ping": st.just(bytes([Command.COM_PING])),
    "statistics": st.just(bytes([Command.COM_STATISTICS])),
    "init_db": _cmd(
        Command.COM_INIT_DB, st.sampled_from((b"marmot", b"", b"nodb", b"\xff\xfe")) | small_bytes
    ),
    "field_list": _cmd(
        Command.COM_FIELD_LIST,
        st.builds(
            lambda t, w: nul(t) + w, st.sampled_from((b"fuzz_t", b"", b"nope")) | small_bytes, small_bytes
        ),
    ),
    "set_option": _cmd(
        Command.COM_SET_OPTION, st.integers(0, 3).map(lambda n: struct.pack("<H", n)) | small_bytes
    ),
    "reset_connection": st.just(bytes([Command.COM_RESET_CONNECTION])),
    "change_user": st.builds(
        lambda user, auth, db, tail: (
            bytes([Command.COM_CHANGE_USER]) + nul(user) + bytes([len(auth)]) + auth + nul(db) + tail
        ),
        st.sampled_from(("root", "nobody", "")),
        st.just(b"") | st.binary(max_size=20),
        st.sampled_from(("marmot", "", "nodb")),
        st.sampled_from(
            (b"\x2d\x00mysql_native_password\x00", b"", b"\x21\x00caching_sha2_password\x00", b"\x2d")
        ),
    ),
    "other": st.integers(0, 255).flatmap(lambda c: small_bytes.map(lambda b: bytes([c]) + b)),
}
IMPLEMENTED = frozenset(
    {
        Command.COM_QUIT,
        Command.COM_INIT_DB,
        Command.COM_QUERY,
        Command.COM_FIELD_LIST,
        Command.COM_STATISTICS,
        Command.COM_PING,
        Command.COM_CHANGE_USER,
        Command.COM_STMT_PREPARE,
        Command.COM_STMT_EXECUTE,
        Command.COM_STMT_SEND_LONG_DATA,
        Command.COM_STMT_CLOSE,
        Command.COM_STMT_RESET,
        Command.COM_SET_OPTION,
        Command.COM_RESET_CONNECTION,
    }
)
any_command = st.one_of(*COMMANDS.values())
lenenc_ints = st.integers(0, 2**64 - 1).map(lenenc_int)
