"""MySQL string functions as SQLite user functions (registered by ``marmot.sql.functions.register``).

MySQL's string functions differ from SQLite's built-ins in ways applications notice: CONCAT is NULL if any
argument is NULL and binary if any argument is binary; SUBSTRING counts a negative position from the end
and gives '' for position 0; LOCATE/INSTR/FIELD/FIND_IN_SET compare case-insensitively under the default
``utf8mb4_general_ci`` collation (but binary strings compare bytes); TRIM removes a whole substring, not a
set of characters; UPPER/LOWER work on all of Unicode and leave binary strings alone. Bytes (binary
strings: BLOB/VARBINARY values, ``_binary'..'``) are handled byte-wise and give bytes back, as in MySQL.

Each function takes SQLite values and converts them with ``conversions``; results longer than
``max_allowed_packet`` are NULL, as MySQL returns them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import AnyStr

from marmot.sql.functions.conversions import MAX_STRING, fold, text, to_bytes, to_int, to_number

# ----------------------------------------------------------------------------------------- helpers


def _binary(*values: object) -> bool:
    return any(type(v) is bytes for v in values)


# ------------------------------------------------------------------------------------------ concat


def concat(*args: object) -> str | bytes | None:
    parts: list[str] = []
    for a in args:
        if a is None:
            return None
        if type(a) is bytes:  # binary result: every argument as its bytes
            return None if any(b is None for b in args) else b"".join(to_bytes(b) for b in args)
        parts.append(a if type(a) is str else text(a))
    return "".join(parts)


def concat_ws(sep: object, *args: object) -> str | bytes | None:
    if sep is None:
        return None
    items = [a for a in args if a is not None]
    if _binary(sep, *items):
        return to_bytes(sep).join(to_bytes(a) for a in items)
    return text(sep).join(a if type(a) is str else text(a) for a in items)


# -------------------------------------------------------------------------------------------- case


def upper(v: object) -> object:
    if v is None or type(v) is bytes:
        return v
    s = v if type(v) is str else text(v)
    u = s.upper()
    if len(u) == len(s) or s.isascii():
        return u
    return "".join(c if len(c.upper()) != 1 else c.upper() for c in s)


def lower(v: object) -> object:
    if v is None or type(v) is bytes:
        return v
    s = v if type(v) is str else text(v)
    lo = s.lower()
    if len(lo) == len(s) or s.isascii():
        return lo
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in s)


# ------------------------------------------------------------------------------------------ pieces


def _str_or_bytes(v: object) -> str | bytes:
    if type(v) is str or type(v) is bytes:
        return v
    return text(v)


def _start(p: int, n: int) -> int | None:
    """0-based start of a 1-based MySQL position (negative: from the end); None when it is out of range."""
    if p > 0:
        return p - 1
    if p < 0 and n + p >= 0:
        return n + p
    return None


def substring(s: object, pos: object) -> str | bytes | None:
    """SUBSTRING/SUBSTR/MID: 1-based, a negative position counts from the end, position 0 gives ''."""
    if s is None or pos is None:
        return None
    value = _str_or_bytes(s)
    start = _start(to_int(pos), len(value))
    return value[:0] if start is None else value[start:]


def substring3(s: object, pos: object, length: object) -> str | bytes | None:
    if s is None or pos is None or length is None:
        return None
    value = _str_or_bytes(s)
    start = _start(to_int(pos), len(value))
    k = to_int(length)
    if start is None or k <= 0:
        return value[:0]
    return value[start : start + k]


def left(s: object, n: object) -> str | bytes | None:
    if s is None or n is None:
        return None
    value = _str_or_bytes(s)
    k = to_int(n)
    return value[:k] if k > 0 else value[:0]


def right(s: object, n: object) -> str | bytes | None:
    if s is None or n is None:
        return None
    value = _str_or_bytes(s)
    k = to_int(n)
    return value[-k:] if k > 0 else value[:0]


def substring_index(s: object, delim: object, count: object) -> str | bytes | None:
    """Case-sensitive, as MySQL documents."""
    if s is None or delim is None or count is None:
        return None
    if _binary(s, delim):
        return _substring_index(to_bytes(s), to_bytes(delim), to_int(count))
    return _substring_index(text(s), text(delim), to_int(count))


def _substring_index(value: AnyStr, d: AnyStr, n: int) -> AnyStr:
    if not d or n == 0:
        return value[:0]
    parts = value.split(d)
    if n > 0:
        return d.join(parts[:n])
    return d.join(parts[n:])


def insert(s: object, pos: object, length: object, new: object) -> str | bytes | None:
    """INSERT(str, pos, len, newstr): str unchanged when pos is outside it; len past the end replaces the rest."""
    if s is None or pos is None or length is None or new is None:
        return None
    if _binary(s, new):
        return _insert(to_bytes(s), to_int(pos), to_int(length), to_bytes(new))
    return _insert(text(s), to_int(pos), to_int(length), text(new))


def _insert(value: AnyStr, p: int, k: int, repl: AnyStr) -> AnyStr:
    n = len(value)
    if p < 1 or p > n:
        return value
    if k < 0 or k > n - p + 1:
        k = n - p + 1
    return value[: p - 1] + repl + value[p - 1 + k :]


def reverse(s: object) -> str | bytes | None:
    if s is None:
        return None
    return _str_or_bytes(s)[::-1]


def repeat(s: object, count: object) -> str | bytes | None:
    if s is None or count is None:
        return None
    value = _str_or_bytes(s)
    n = to_int(count)
    if n <= 0 or not value:
        return value[:0]
    if len(value) * n > MAX_STRING:
        return None
    return value * n


def space(count: object) -> str | None:
    if count is None:
        return None
    n = to_int(count)
    if n <= 0:
        return ""
    if n > MAX_STRING:
        return None
    return " " * n


def _pad(s: object, length: object, pad: object, left_side: bool) -> str | bytes | None:
    if s is None or length is None or pad is None:
        return None
    if _binary(s, pad):
        return _pad_to(to_bytes(s), to_int(length), to_bytes(pad), left_side)
    return _pad_to(text(s), to_int(length), text(pad), left_side)


def _pad_to(value: AnyStr, n: int, fill: AnyStr, left_side: bool) -> AnyStr | None:
    if n < 0:
        return None
    if n <= len(value):
        return value[:n]
    if not fill:
        return None
    if n > MAX_STRING:
        return None
    need = n - len(value)
    padding = (fill * (need // len(fill) + 1))[:need]
    return padding + value if left_side else value + padding


def lpad(s: object, length: object, pad: object = " ") -> str | bytes | None:
    return _pad(s, length, pad, True)


def rpad(s: object, length: object, pad: object = " ") -> str | bytes | None:
    return _pad(s, length, pad, False)


def trim(s: object, remstr: object, where: str) -> str | bytes | None:
    """TRIM([BOTH | LEADING | TRAILING] remstr FROM s): removes whole copies of remstr (case-sensitive)."""
    if s is None or remstr is None:
        return None
    if _binary(s, remstr):
        return _trim(to_bytes(s), to_bytes(remstr), where)
    return _trim(text(s), text(remstr), where)


def _trim(value: AnyStr, r: AnyStr, where: str) -> AnyStr:
    if not r:
        return value
    k = len(r)
    if where != "TRAILING":
        while value.startswith(r):
            value = value[k:]
    if where != "LEADING":
        while value.endswith(r):
            value = value[:-k]
    return value


# ------------------------------------------------------------------------------------------- search


def locate(sub: object, s: object, *pos: object) -> int | None:
    """LOCATE(substr, str[, pos]); INSTR and POSITION are this with other argument orders."""
    if sub is None or s is None:
        return None
    if pos and pos[0] is None:
        return None
    start = to_int(pos[0]) if pos else 1
    if _binary(sub, s):
        return _locate(to_bytes(s), to_bytes(sub), start, bool(pos))
    return _locate(fold(text(s)), fold(text(sub)), start, bool(pos))


def _locate(hay: AnyStr, needle: AnyStr, start: int, explicit_start: bool) -> int:
    if explicit_start and (start < 1 or start > len(hay)):
        return 0
    return hay.find(needle, start - 1) + 1


def instr(s: object, sub: object) -> int | None:
    return locate(sub, s)


def strcmp(a: object, b: object) -> int | None:
    """STRCMP: -1, 0 or 1, case-insensitively (binary strings byte by byte)."""
    if a is None or b is None:
        return None
    if _binary(a, b):
        x, y = to_bytes(a), to_bytes(b)
        return (x > y) - (x < y)
    fa, fb = fold(text(a)), fold(text(b))
    return (fa > fb) - (fa < fb)


def find_in_set(needle: object, haystack: object) -> int | None:
    if needle is None or haystack is None:
        return None
    items = text(haystack)
    n = text(needle)
    if not items or "," in n:
        return 0
    n = fold(n)
    for i, item in enumerate(fold(items).split(","), 1):
        if item == n:
            return i
    return 0


def field(value: object, *items: object) -> int:
    """FIELD(s, s1, s2...): strings compare case-insensitively, numbers numerically."""
    if value is None:
        return 0
    everything = (value, *items)
    if all(type(v) is str or v is None for v in everything):
        key = fold(text(value))  # text() of a str is the str itself
        for i, item in enumerate(items, 1):
            if item is not None and fold(text(item)) == key:
                return i
        return 0
    if all(type(v) is bytes or type(v) is str or v is None for v in everything):
        raw = to_bytes(value)
        for i, item in enumerate(items, 1):
            if item is not None and to_bytes(item) == raw:
                return i
        return 0
    num = to_number(value)
    for i, item in enumerate(items, 1):
        if item is not None and to_number(item) == num:
            return i
    return 0


def elt(n: object, *items: object) -> str | bytes | None:
    if n is None:
        return None
    i = to_int(n)
    if i < 1 or i > len(items):
        return None
    item = items[i - 1]
    return None if item is None else _str_or_bytes(item)


# -------------------------------------------------------------------------------------- characters


def ascii_(s: object) -> int | None:
    if s is None:
        return None
    raw = to_bytes(s)
    return raw[0] if raw else 0


def ord_(s: object) -> int | None:
    """ORD: the first character's bytes as a number (multibyte: b1*256^(n-1) + ...)."""
    if s is None:
        return None
    if type(s) is bytes:
        return s[0] if s else 0
    value = text(s)
    if not value:
        return 0
    return int.from_bytes(value[0].encode("utf-8", "surrogateescape"), "big")


def _char_bytes(args: tuple[object, ...]) -> bytes:
    out = bytearray()
    for a in args:
        if a is None:
            continue
        # a hex literal (0x41 / X'41') reaches us as bytes: in CHAR() it is the number it spells
        n = (int.from_bytes(a, "big") if type(a) is bytes else to_int(a)) & 0xFFFFFFFF
        out += n.to_bytes(max(1, (n.bit_length() + 7) // 8), "big")
    return bytes(out)


def char(*args: object) -> bytes:
    """CHAR(N, ...): a binary string of the code values (256 -> 0x01 0x00), NULLs skipped."""
    return _char_bytes(args)


_CHARSETS = {
    "utf8mb4": "utf-8",
    "utf8": "utf-8",
    "utf8mb3": "utf-8",
    "latin1": "cp1252",
    "ascii": "ascii",
    "binary": "",
}


def char_using(charset: object, *args: object) -> str | bytes | None:
    """CHAR(N, ... USING charset): the bytes read in that character set; NULL when they are not valid."""
    raw = _char_bytes(args)
    codec = _CHARSETS.get(str(charset).lower(), "utf-8")
    if not codec:
        return raw
    try:
        return raw.decode(codec)
    except UnicodeDecodeError:
        return None


def convert_using(v: object, charset: object) -> str | bytes | None:
    """CONVERT(expr USING charset): text in that character set (invalid bytes become '?'), or bytes."""
    if v is None:
        return None
    codec = _CHARSETS.get(str(charset).lower(), "utf-8")
    if not codec:
        return to_bytes(v)
    if type(v) is bytes:
        return v.decode(codec, "replace").replace("\ufffd", "?")
    value = text(v)
    if codec == "utf-8":
        return value
    return value.encode(codec, "replace").decode(codec)


# name -> (callable, number of args (-1 = any), deterministic)
FUNCTIONS: dict[str, tuple[Callable[..., object], int, bool]] = {
    "__mysql_concat": (concat, -1, True),
    "__mysql_concat_ws": (concat_ws, -1, True),
    "__mysql_upper": (upper, 1, True),
    "__mysql_lower": (lower, 1, True),
    "__mysql_substring": (substring, 2, True),
    "__mysql_substring3": (substring3, 3, True),
    "__mysql_trim": (trim, 3, True),
    "__mysql_insert": (insert, 4, True),
    "__mysql_locate": (locate, -1, True),
    "__mysql_char": (char, -1, True),
    "__mysql_char_using": (char_using, -1, True),
    "__mysql_convert_using": (convert_using, 2, True),
    "LEFT": (left, 2, True),
    "RIGHT": (right, 2, True),
    "SUBSTRING_INDEX": (substring_index, 3, True),
    "REVERSE": (reverse, 1, True),
    "REPEAT": (repeat, 2, True),
    "SPACE": (space, 1, True),
    "LPAD": (lpad, -1, True),
    "RPAD": (rpad, -1, True),
    "FIND_IN_SET": (find_in_set, 2, True),
    "STRCMP": (strcmp, 2, True),
    "FIELD": (field, -1, True),
    "ELT": (elt, -1, True),
    "ASCII": (ascii_, 1, True),
    "ORD": (ord_, 1, True),
    "MID": (substring3, 3, True),
}
