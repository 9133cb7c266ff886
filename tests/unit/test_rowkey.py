"""Row keys: exact byte layout, strict decoding, and "same row ⇔ same key" checked against SQLite itself.

The property tests are seeded random loops (no extra dependency); SQLite's own ``?1 IS ?2`` is the
oracle for "equal SQL values", so the encoding is checked against the engine whose rows it names.
"""

from __future__ import annotations

import math
import random
import struct

import apsw
import pytest

from marmot.storage.rowkey import (
    INT64_MAX,
    INT64_MIN,
    RowKeyError,
    SchemaCache,
    UnknownTableError,
    database_key,
    ddl_key,
    decode_row_key,
    encode_row_key,
    key_kind,
    load_table_schema,
    read_uvarint,
    uvarint,
)

SEED = 20260101


def q(v: int) -> bytes:
    return struct.pack(">q", v)


# -- layout ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "encoded"),
    [
        (0, b"\x00"),
        (1, b"\x01"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (300, b"\xac\x02"),
        (16384, b"\x80\x80\x01"),
        ((1 << 64) - 1, b"\xff" * 9 + b"\x01"),
    ],
)
def test_uvarint_is_leb128(n: int, encoded: bytes) -> None:
    assert uvarint(n) == encoded
    assert read_uvarint(encoded + b"xyz", 0) == (n, len(encoded))


def test_uvarint_rejects_out_of_range_and_malformed() -> None:
    with pytest.raises(RowKeyError):
        uvarint(-1)
    with pytest.raises(RowKeyError):
        uvarint(1 << 64)
    for bad in (b"", b"\x80", b"\xff" * 10 + b"\x01", b"\x80\x00", b"\xff" * 9 + b"\x02"):
        with pytest.raises(RowKeyError):
            read_uvarint(bad, 0)


def test_exact_bytes_of_every_tag() -> None:
    assert encode_row_key("users", [42]) == b"\x01\x05users\x01" + b"\x01" + q(42)
    assert encode_row_key("t", [None, -1, 1.5, "hé", b"\x00\xff"]) == (
        b"\x01\x01t\x05"
        + b"\x00"
        + b"\x01"
        + q(-1)
        + b"\x02"
        + struct.pack(">d", 1.5)
        + b"\x03\x03"
        + "hé".encode()
        + b"\x04\x02\x00\xff"
    )
    long_table = "x" * 200
    assert encode_row_key(long_table, [1]).startswith(b"\x01\xc8\x01" + long_table.encode() + b"\x01")


def test_float_normalisation() -> None:
    # -0.0 and integral reals are the integers they equal (SQL: 1 = 1.0, 0 = -0.0)
    assert encode_row_key("t", [-0.0]) == encode_row_key("t", [0.0]) == encode_row_key("t", [0])
    assert encode_row_key("t", [3.0]) == encode_row_key("t", [3])
    assert encode_row_key("t", [-(2.0**63)]) == encode_row_key("t", [INT64_MIN])
    # beyond int64: stays a real (no int64 equals it)
    assert encode_row_key("t", [2.0**63])[-9:] == b"\x02" + struct.pack(">d", 2.0**63)
    # every NaN is one NaN
    nan_a = struct.unpack(">d", b"\x7f\xf8\x00\x00\x00\x00\x00\x01")[0]
    nan_b = struct.unpack(">d", b"\xff\xf0\x00\x00\x00\x00\x10\x00")[0]
    keys = {encode_row_key("t", [x]) for x in (math.nan, -math.nan, nan_a, nan_b)}
    assert keys == {b"\x01\x01t\x01\x02\x7f\xf8\x00\x00\x00\x00\x00\x00"}
    assert math.isnan(decode_row_key(keys.pop())[1][0])
    assert encode_row_key("t", [math.inf]) != encode_row_key("t", [-math.inf])


def test_text_and_blob_never_share_a_key() -> None:
    # SQLite: 'abc' = x'616263' is false; a PRIMARY KEY may hold both. So: tag 3 vs tag 4.
    assert encode_row_key("t", ["abc"]) != encode_row_key("t", [b"abc"])
    assert decode_row_key(encode_row_key("t", ["abc"]))[1] == ["abc"]
    assert decode_row_key(encode_row_key("t", [b"abc"]))[1] == [b"abc"]
    assert encode_row_key("t", [bytearray(b"ab")]) == encode_row_key("t", [b"ab"])


def test_values_that_cannot_be_keys() -> None:
    with pytest.raises(RowKeyError):
        encode_row_key("t", [INT64_MAX + 1])
    with pytest.raises(RowKeyError):
        encode_row_key("t", [[1]])  # type: ignore[list-item]
    with pytest.raises(RowKeyError):
        encode_row_key("", [1])
    assert encode_row_key("t", [True]) == encode_row_key("t", [1])


# -- special keys ---------------------------------------------------------------------------------


def test_special_keys() -> None:
    assert ddl_key("users") == b"\xfeusers"
    assert ddl_key("Users") == ddl_key("USERS") == ddl_key("users")  # SQLite names ignore ASCII case
    assert database_key("shop") == b"\xffshop"
    assert database_key("Shop") != database_key("shop")  # database names are file names
    assert key_kind(ddl_key("t")) == "ddl"
    assert key_kind(database_key("d")) == "database"
    assert key_kind(encode_row_key("t", [1])) == "row"
    for special in (ddl_key("t"), database_key("d")):
        with pytest.raises(RowKeyError, match="not a row key"):
            decode_row_key(special)
    with pytest.raises(RowKeyError):
        ddl_key("")
    with pytest.raises(RowKeyError):
        database_key("")
    with pytest.raises(RowKeyError):
        key_kind(b"\x07")


# -- property tests -------------------------------------------------------------------------------

_EDGE_INTS = [0, 1, -1, INT64_MIN, INT64_MAX, 2**53, 2**53 + 1, -(2**53) - 1, 255, 256]
_EDGE_FLOATS = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.5,
    1e-300,
    -1e300,
    math.inf,
    -math.inf,
    2.0**53,
    2.0**63,
    -(2.0**63),
    9007199254740993.0,
    5e-324,
    1.7976931348623157e308,
]


def _random_value(rng: random.Random) -> object:
    kind = rng.randrange(8)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice(_EDGE_INTS)
    if kind == 2:
        return rng.randint(INT64_MIN, INT64_MAX)
    if kind == 3:
        return rng.choice(_EDGE_FLOATS)
    if kind == 4:
        return rng.choice([rng.uniform(-1e6, 1e6), float(rng.randint(-(2**60), 2**60)), rng.random()])
    if kind == 5:
        return "".join(rng.choice("aZ0 é\u0000\U0001f600\u00df") for _ in range(rng.randrange(6)))
    if kind == 6:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(6)))
    return rng.choice(["", b"", "abc", b"abc", "1", b"1"])


def _variant(rng: random.Random, v: object) -> object:
    """Another value that is often SQL-equal to ``v`` (or deliberately a near miss)."""
    if isinstance(v, bool) or v is None:
        return rng.choice([None, 0, ""])
    if isinstance(v, int):
        return rng.choice([v, float(v), min(v + 1, INT64_MAX), str(v), -v if v != INT64_MIN else v])
    if isinstance(v, float):
        opts: list[object] = [v, -v, math.nextafter(v, math.inf)]
        if v.is_integer() and -(2.0**63) <= v < 2.0**63:
            opts.append(int(v))
        return rng.choice(opts)
    if isinstance(v, str):
        return rng.choice([v, v.encode(), v + " ", v.upper()])
    assert isinstance(v, bytes)
    return rng.choice([v, bytes(reversed(v)), v + b"\x00"])


def _sql_values_equal(db: apsw.Connection, a: object, b: object) -> bool:
    return bool(db.execute("SELECT ?1 IS ?2", (a, b)).fetchone()[0])


def test_round_trip_random() -> None:
    rng = random.Random(SEED)
    db = apsw.Connection(":memory:")
    for _ in range(3000):
        table = rng.choice(["t", "users", "Ünïcode", "x" * 130, 'a b"c'])
        values = [_random_value(rng) for _ in range(rng.randrange(5))]
        key = encode_row_key(table, values)
        got_table, got = decode_row_key(key)
        assert got_table == table
        assert len(got) == len(values)
        for a, b in zip(values, got, strict=True):
            # decode may turn an integral real into the int it equals; SQL-equal and same key again
            assert _sql_values_equal(db, a, b), (a, b)
            assert type(b) is type(a) or (isinstance(a, float) and isinstance(b, int))
        assert encode_row_key(got_table, got) == key


def test_equal_sql_values_iff_equal_keys() -> None:
    rng = random.Random(SEED + 1)
    db = apsw.Connection(":memory:")
    equal_pairs = 0
    for _ in range(20000):
        a = _random_value(rng)
        b = _variant(rng, a) if rng.random() < 0.7 else _random_value(rng)
        same_key = encode_row_key("t", [a]) == encode_row_key("t", [b])
        assert same_key == _sql_values_equal(db, a, b), (a, b)
        equal_pairs += same_key
    assert equal_pairs > 3000  # the generator does exercise the "equal" side


def test_nan_is_one_key_and_apsw_stores_nan_as_null() -> None:
    # NaN cannot come from a stored row (SQLite binds NaN as NULL), but if a caller hands one in, all
    # NaNs give one key.
    db = apsw.Connection(":memory:")
    assert db.execute("SELECT ? IS NULL", (math.nan,)).fetchone()[0] == 1
    assert encode_row_key("t", [math.nan]) == encode_row_key("t", [-math.nan])


# -- strict decoding ------------------------------------------------------------------------------


def test_every_truncation_and_extension_is_rejected() -> None:
    key = encode_row_key("orders", [7, "abc", b"\x01\x02", 2.5, None])
    decode_row_key(key)
    for i in range(len(key)):
        with pytest.raises(RowKeyError):
            decode_row_key(key[:i])
    with pytest.raises(RowKeyError, match="trailing"):
        decode_row_key(key + b"\x00")


@pytest.mark.parametrize(
    "bad",
    [
        b"\x02\x01t\x00",  # unknown version
        b"\x01\x00\x00",  # empty table name
        b"\x01\x01t\x01\x09",  # unknown tag
        b"\x01\x02\xff\xfe\x00",  # table name not utf-8
        b"\x01\x01t\x01\x03\x01\xff",  # text not utf-8
        b"\x01\x01t\x01\x02" + struct.pack(">d", 1.0),  # integral real: must be tag 1
        b"\x01\x01t\x01\x02" + struct.pack(">d", -0.0),
        b"\x01\x01t\x01\x02\x7f\xf8\x00\x00\x00\x00\x00\x01",  # non-canonical NaN
        b"\x01\x01t\x80\x00",  # non-minimal count
        b"\x01\x01t\xff\xff\xff\xff\x0f",  # absurd count
    ],
)
def test_malformed_keys(bad: bytes) -> None:
    with pytest.raises(RowKeyError):
        decode_row_key(bad)


def test_random_garbage_only_raises_row_key_error() -> None:
    rng = random.Random(SEED + 2)
    valid = encode_row_key("t", [1, "x", b"y", 0.25, None])
    for _ in range(20000):
        if rng.random() < 0.5:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(24)))
        else:
            buf = bytearray(valid)
            for _ in range(rng.randrange(1, 4)):
                buf[rng.randrange(len(buf))] = rng.randrange(256)
            data = bytes(buf)
        try:
            table, values = decode_row_key(data)
        except RowKeyError:
            continue
        assert encode_row_key(table, values) == data  # whatever decodes is canonical
    with pytest.raises(RowKeyError):
        decode_row_key("text")  # type: ignore[arg-type]


# -- table schema ---------------------------------------------------------------------------------


@pytest.fixture
def db() -> apsw.Connection:
    c = apsw.Connection(":memory:")
    c.execute(
        """
        CREATE TABLE ipk(id INTEGER PRIMARY KEY, v);
        CREATE TABLE auto(id INTEGER PRIMARY KEY AUTOINCREMENT, v);
        CREATE TABLE intpk(id INT PRIMARY KEY, v);
        CREATE TABLE descpk(id INTEGER PRIMARY KEY DESC, v);
        CREATE TABLE nopk(a, b);
        CREATE TABLE comp(b BLOB, a TEXT COLLATE NOCASE, c INTEGER, v, PRIMARY KEY (a, b, c));
        CREATE TABLE wr(k TEXT COLLATE RTRIM PRIMARY KEY, v) WITHOUT ROWID;
        CREATE TABLE gen(id INTEGER PRIMARY KEY, v TEXT, s INT AS (length(v)) STORED, g INT AS (v || 'x'));
        CREATE TABLE shadowed(rowid, _rowid_, oid);
        CREATE TABLE half(rowid, x);
        CREATE VIEW vw AS SELECT 1;
        """
    )
    return c


def test_schema_rowid_and_primary_keys(db: apsw.Connection) -> None:
    s = load_table_schema(db, "ipk")
    assert (s.pk, s.rowid_key, s.rowid_alias, s.rowid_name) == (("id",), True, "id", "id")
    assert load_table_schema(db, "auto").rowid_alias == "id"
    s = load_table_schema(db, "intpk")  # INT is not INTEGER: a real primary key, not the rowid
    assert (s.pk, s.rowid_key, s.rowid_alias) == (("id",), False, None)
    s = load_table_schema(db, "descpk")  # SQLite quirk: INTEGER PRIMARY KEY DESC is not a rowid alias
    assert (s.rowid_key, s.rowid_alias) == (False, None)
    s = load_table_schema(db, "nopk")
    assert (s.pk, s.rowid_key, s.rowid_alias, s.rowid_name) == ((), True, None, "rowid")
    s = load_table_schema(db, "comp")
    assert s.pk == ("a", "b", "c")  # declared PK order, not column order
    assert s.pk_index == (1, 0, 2)
    assert not s.rowid_key
    s = load_table_schema(db, "wr")
    assert (s.without_rowid, s.rowid_key, s.rowid_name, s.pk) == (True, False, None, ("k",))
    assert load_table_schema(db, "shadowed").rowid_name is None
    assert load_table_schema(db, "half").rowid_name == "_rowid_"
    assert load_table_schema(db, "IPK").name == "ipk"


def test_schema_columns_skip_virtual_generated(db: apsw.Connection) -> None:
    s = load_table_schema(db, "gen")
    assert s.columns == ("id", "v", "s")
    assert s.writable == frozenset({"id", "v"})
    assert s.has_virtual


def test_schema_unknown_and_non_tables(db: apsw.Connection) -> None:
    with pytest.raises(UnknownTableError):
        load_table_schema(db, "nope")
    with pytest.raises(UnknownTableError):
        load_table_schema(db, "vw")


def test_key_values_follow_the_column_collation(db: apsw.Connection) -> None:
    comp = load_table_schema(db, "comp")
    # NOCASE folds ASCII only, exactly like SQLite; BLOB and INTEGER columns are untouched
    assert comp.key_of((b"B", "ABC", 1, "v")) == comp.key_of((b"B", "abc", 1, "w"))
    assert comp.key_of((b"B", "ÄBC", 1, "v")) != comp.key_of((b"B", "äbc", 1, "v"))
    assert comp.key_of((b"B", "abc", 1, "v")) != comp.key_of((b"b", "abc", 1, "v"))
    assert decode_row_key(comp.key_of((b"B", "MiXeD", 5, None))) == ("comp", ["mixed", b"B", 5])
    wr = load_table_schema(db, "wr")
    assert wr.key_of(("a  ", 1)) == wr.key_of(("a", 2))
    # and SQLite agrees that these are the same primary key
    db.execute("INSERT INTO comp VALUES (x'42', 'ABC', 1, 'v')")
    with pytest.raises(apsw.ConstraintError):
        db.execute("INSERT INTO comp VALUES (x'42', 'abc', 1, 'w')")
    db.execute("INSERT INTO wr VALUES ('a  ', 1)")
    with pytest.raises(apsw.ConstraintError):
        db.execute("INSERT INTO wr VALUES ('a', 2)")
    ipk = load_table_schema(db, "ipk")
    assert ipk.rowid_key_of(9) == encode_row_key("ipk", [9])


def test_schema_cache_generation(db: apsw.Connection) -> None:
    cache = SchemaCache(generation=1)
    first = cache.get(db, "ipk")
    assert cache.get(db, "ipk") is first
    db.execute("ALTER TABLE ipk ADD COLUMN w")
    cache.check_generation(1)
    assert cache.get(db, "ipk").columns == ("id", "v")  # same generation: cached
    cache.check_generation(2)
    assert cache.get(db, "ipk").columns == ("id", "v", "w")
    cache.invalidate("ipk")
    assert cache.get(db, "ipk") is not first
    cache.invalidate()
