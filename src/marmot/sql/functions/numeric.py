"""MySQL numeric, conversion, hash and network functions as SQLite user functions.

What differs from SQLite and why each function exists here:

- ROUND/TRUNCATE/FORMAT round exact values half away from zero (SQLite's ROUND works on the binary
  double: ``ROUND(2.675, 2)`` is 2.67 there, 2.68 in MySQL), and give integers for integer results.
- MOD/``%`` keep fractions (SQLite's ``%`` truncates both operands to integers) and ``DIV`` is exact
  integer division; a zero divisor gives NULL.
- CEIL/FLOOR return integers, SIGN reads strings as numbers, COT(0) is an error as in MySQL.
- HEX/UNHEX/BIN/OCT/CONV follow MySQL's 64-bit two's-complement rules (``HEX(-1)`` = 16 F's).
- Strings are hashed as their UTF-8 bytes; binary strings as they are.

A seeded ``RAND(N)`` uses MySQL's own generator, so ``RAND(3)`` is MySQL's 0.9057697559760601; MySQL
advances the sequence row by row within one statement, which a stateless SQLite function cannot, so every
call returns the sequence's first value.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import random
import uuid
import zlib
from collections.abc import Callable
from decimal import ROUND_DOWN, ROUND_HALF_UP, Context, Decimal, InvalidOperation

from marmot.sql.functions.conversions import (
    INT64_MAX,
    INT64_MIN,
    UINT64_MASK,
    clamp_int,
    out_of_range,
    text,
    to_bytes,
    to_float,
    to_int,
    to_number,
)

_CTX = Context(prec=80)
_QUANTS = {d: Decimal(1).scaleb(-d) for d in range(-40, 41)}

# ------------------------------------------------------------------------------------------ rounding


def _decimal(v: int | float) -> Decimal:
    return Decimal(v) if type(v) is int else Decimal(repr(v))


def _round(x: object, d: object, mode: str) -> int | float | None:
    if x is None or d is None:
        return None
    n = to_number(x)
    places = to_int(d)
    if type(n) is int:
        if places >= 0:
            return n
        if places < -40:
            return 0
        m = 10 ** (-places)
        q, r = divmod(abs(n), m)
        if mode == ROUND_HALF_UP and r * 2 >= m:
            q += 1
        return clamp_int(q * m if n >= 0 else -q * m)
    f = float(n)
    if not math.isfinite(f):
        return f
    if places > 30:
        return f
    if places < -40:
        return 0
    try:
        q = _decimal(f).quantize(_QUANTS[places], rounding=mode, context=_CTX)
    except InvalidOperation:
        return f
    if places <= 0:
        return clamp_int(int(q))
    return float(q)


def round_(x: object, d: object = 0) -> int | float | None:
    return _round(x, d, ROUND_HALF_UP)


def truncate(x: object, d: object) -> int | float | None:
    return _round(x, d, ROUND_DOWN)


def ceil(x: object) -> int | float | None:
    if x is None:
        return None
    n = to_number(x)
    if type(n) is int or not math.isfinite(n):
        return n
    return clamp_int(math.ceil(n))


def floor(x: object) -> int | float | None:
    if x is None:
        return None
    n = to_number(x)
    if type(n) is int or not math.isfinite(n):
        return n
    return clamp_int(math.floor(n))


# ---------------------------------------------------------------------------------------- arithmetic


def mod(a: object, b: object) -> int | float | None:
    """MOD(a, b) / a % b: the sign of the dividend, fractions kept, NULL for a zero divisor."""
    if a is None or b is None:
        return None
    x, y = to_number(a), to_number(b)
    if not y:
        return None
    if type(x) is int and type(y) is int:
        r = abs(x) % abs(y)
        return r if x >= 0 else -r
    if not (math.isfinite(x) and math.isfinite(y)):
        return None
    return float(_decimal(x) % _decimal(y))


def int_div(a: object, b: object) -> int | None:
    """a DIV b: integer division truncated toward zero; NULL for a zero divisor."""
    if a is None or b is None:
        return None
    x, y = to_number(a), to_number(b)
    if not y:
        return None
    if type(x) is int and type(y) is int:
        q = abs(x) // abs(y)
        q = q if (x >= 0) == (y >= 0) else -q
    else:
        if not (math.isfinite(x) and math.isfinite(y)):
            return None
        q = int((_decimal(x) / _decimal(y)).to_integral_value(rounding=ROUND_DOWN, context=_CTX))
    if q > INT64_MAX or q < INT64_MIN:
        raise out_of_range("BIGINT", "div")
    return q


def sign(x: object) -> int | None:
    if x is None:
        return None
    n = to_number(x)
    return (n > 0) - (n < 0)


def cot(x: object) -> float | None:
    if x is None:
        return None
    f = to_float(x)
    t = math.tan(f)
    if t == 0:
        raise out_of_range("DOUBLE", f"cot({text(x)})")
    return 1.0 / t


def _mysql_rand(seed: int) -> float:
    """The first value of MySQL's RAND(N) sequence (its own linear generator, not the C library's)."""
    top = 0x3FFFFFFF
    s1 = ((seed * 0x10001 + 55555555) & 0xFFFFFFFF) % top
    s2 = ((seed * 0x10000001) & 0xFFFFFFFF) % top
    s1 = (s1 * 3 + s2) % top
    return s1 / top


def rand(*seed: object) -> float:
    if seed:
        return _mysql_rand(to_int(seed[0]) if seed[0] is not None else 0)
    return random.random()


# ------------------------------------------------------------------------------------ number bases


def _parse_base(s: str, base: int, signed: bool) -> int:
    """MySQL's strtoll/strtoull: optional sign, digits of the base up to the first other character."""
    i, n = 0, len(s)
    while i < n and s[i] in " \t\n\r":
        i += 1
    neg = False
    if i < n and s[i] in "+-":
        neg = s[i] == "-"
        i += 1
    value = 0
    limit = 2**64
    while i < n:
        c = s[i]
        if "0" <= c <= "9":
            digit = ord(c) - 48
        elif "a" <= c <= "z":
            digit = ord(c) - 87
        elif "A" <= c <= "Z":
            digit = ord(c) - 55
        else:
            break
        if digit >= base:
            break
        value = value * base + digit
        if value >= limit:
            value = limit
        i += 1
    if signed:
        if neg:
            return max(-value, INT64_MIN)
        return min(value, INT64_MAX)
    if value >= limit:
        return UINT64_MASK
    return (-value) & UINT64_MASK if neg else value


_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _render_base(n: int, base: int) -> str:
    if n == 0:
        return "0"
    neg = n < 0
    n = abs(n)
    out = []
    while n:
        n, r = divmod(n, base)
        out.append(_DIGITS[r])
    return ("-" if neg else "") + "".join(reversed(out))


def conv(n: object, from_base: object, to_base: object) -> str | None:
    if n is None or from_base is None or to_base is None:
        return None
    fb, tb = to_int(from_base), to_int(to_base)
    if not (2 <= abs(fb) <= 36 and 2 <= abs(tb) <= 36):
        return None
    value = _parse_base(text(n), abs(fb), fb < 0)
    if tb < 0:
        if value > INT64_MAX:
            value -= 2**64
    else:
        value &= UINT64_MASK
    return _render_base(value, abs(tb))


def bin_(n: object) -> str | None:
    return conv(n, 10, 2)


def oct_(n: object) -> str | None:
    return conv(n, 10, 8)


def hex_(v: object) -> str | None:
    """HEX: numbers as 64-bit two's complement in base 16, strings as the hex of their bytes."""
    if v is None:
        return None
    if type(v) is int:
        return format(v & UINT64_MASK, "X")
    if type(v) is float:
        if v != v or v >= 1.8446744073709552e19 or v <= -9.2233720368547758e18:  # noqa: PLR0124
            return "FFFFFFFFFFFFFFFF"
        return format(to_int(v) & UINT64_MASK, "X")
    return to_bytes(v).hex().upper()


def unhex(v: object) -> bytes | None:
    if v is None:
        return None
    s = text(v)
    if len(s) % 2:
        s = "0" + s
    try:
        return bytes.fromhex(s) if " " not in s else None
    except ValueError:
        return None


def bit_count(v: object) -> int | None:
    if v is None:
        return None
    if type(v) is bytes:
        return sum(bin(b).count("1") for b in v)
    return bin(to_int(v) & UINT64_MASK).count("1")


# ------------------------------------------------------------------------------------------ FORMAT

# locale -> (thousands separator, decimal point); other locales format as en_US, as MySQL does for
# locales it does not know.
_LOCALES = {
    "en_US": (",", "."),
    "de_DE": (".", ","),
    "de_AT": (".", ","),
    "de_CH": ("'", "."),
    "es_ES": (".", ","),
    "it_IT": (".", ","),
    "nl_NL": (".", ","),
    "pt_BR": (".", ","),
    "fr_FR": ("\u202f", ","),
    "ru_RU": ("\u00a0", ","),
    "en_GB": (",", "."),
    "ja_JP": (",", "."),
}


def format_(x: object, d: object, locale: object = None) -> str | None:
    """FORMAT(X, D[, locale]): rounded to D decimals (half away from zero) with thousands separators."""
    if x is None or d is None:
        return None
    n = to_number(x)
    places = min(max(to_int(d), 0), 30)
    if type(n) is float and not math.isfinite(n):
        return text(n)
    q = _decimal(n).quantize(_QUANTS[places], rounding=ROUND_HALF_UP, context=_CTX)
    if q.is_zero():
        q = q.copy_abs()
    out = format(q, f",.{places}f")
    if locale is not None:
        seps = _LOCALES.get(text(locale))
        if seps is not None and seps != (",", "."):
            thousands, point = seps
            out = out.replace(",", "\0").replace(".", point).replace("\0", thousands)
    return out


# ------------------------------------------------------------------------------------- hash, codecs


def _hasher(algo: str) -> Callable[[object], str | None]:
    def fn(v: object) -> str | None:
        if v is None:
            return None
        return hashlib.new(algo, to_bytes(v)).hexdigest()

    fn.__name__ = algo
    return fn


_SHA2 = {0: "sha256", 224: "sha224", 256: "sha256", 384: "sha384", 512: "sha512"}


def sha2(v: object, bits: object) -> str | None:
    if v is None or bits is None:
        return None
    algo = _SHA2.get(to_int(bits))
    if algo is None:
        return None
    return hashlib.new(algo, to_bytes(v)).hexdigest()


def crc32(v: object) -> int | None:
    if v is None:
        return None
    return zlib.crc32(to_bytes(v)) & 0xFFFFFFFF


def to_base64(v: object) -> str | None:
    """TO_BASE64: MySQL breaks the output into lines of 76 characters."""
    if v is None:
        return None
    out = base64.b64encode(to_bytes(v)).decode("ascii")
    if len(out) <= 76:
        return out
    return "\n".join(out[i : i + 76] for i in range(0, len(out), 76))


_B64_SPACE = str.maketrans("", "", " \t\r\n")


def from_base64(v: object) -> bytes | None:
    if v is None:
        return None
    s = text(v).translate(_B64_SPACE)
    try:
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        return None


# ------------------------------------------------------------------------------------------ network


def inet_aton(v: object) -> int | None:
    """INET_ATON: 'a.b.c.d' (short forms 'a.b' = a.0.0.b as in MySQL) -> integer; NULL when invalid."""
    if v is None:
        return None
    s = text(v)
    if not s or s[-1] == ".":
        return None
    result = 0
    part = 0
    dots = 0
    digits = False
    for c in s:
        if "0" <= c <= "9":
            part = part * 10 + ord(c) - 48
            digits = True
            if part > 255:
                return None
        elif c == "." and digits:
            result = (result << 8) + part
            part = 0
            dots += 1
            digits = False
            if dots > 3:
                return None
        else:
            return None
    if dots == 1:
        result <<= 16
    elif dots == 2:
        result <<= 8
    return (result << 8) + part


def inet_ntoa(v: object) -> str | None:
    if v is None:
        return None
    n = to_int(v)
    if n < 0 or n > 0xFFFFFFFF:
        return None
    return f"{n >> 24}.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def uuid_() -> str:
    return str(uuid.uuid1())


# name -> (callable, number of args (-1 = any), deterministic)
FUNCTIONS: dict[str, tuple[Callable[..., object], int, bool]] = {
    "__mysql_round": (round_, -1, True),
    "__mysql_truncate": (truncate, 2, True),
    "__mysql_ceil": (ceil, 1, True),
    "__mysql_floor": (floor, 1, True),
    "__mysql_mod": (mod, 2, True),
    "__mysql_div": (int_div, 2, True),
    "__mysql_sign": (sign, 1, True),
    "__mysql_hex": (hex_, 1, True),
    "__mysql_unhex": (unhex, 1, True),
    "__mysql_format": (format_, -1, True),
    "COT": (cot, 1, True),
    "RAND": (rand, -1, False),
    "CONV": (conv, 3, True),
    "BIN": (bin_, 1, True),
    "OCT": (oct_, 1, True),
    "BIT_COUNT": (bit_count, 1, True),
    "MD5": (_hasher("md5"), 1, True),
    "SHA1": (_hasher("sha1"), 1, True),
    "SHA": (_hasher("sha1"), 1, True),
    "SHA2": (sha2, 2, True),
    "CRC32": (crc32, 1, True),
    "TO_BASE64": (to_base64, 1, True),
    "FROM_BASE64": (from_base64, 1, True),
    "INET_ATON": (inet_aton, 1, True),
    "INET_NTOA": (inet_ntoa, 1, True),
    "UUID": (uuid_, 0, False),
}
