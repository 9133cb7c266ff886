"""MySQL functions SQLite lacks, registered on every connection as SQLite functions with MySQL semantics.

Times are UTC (the node's ``time_zone`` is reported as SYSTEM with ``system_time_zone`` UTC). Functions
whose value changes between calls are registered non-deterministic so SQLite never constant-folds them
into an index or a view.
"""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import random
import re
import time
from collections.abc import Callable
from functools import lru_cache

import apsw


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _parse_datetime(v: object) -> dt.datetime | None:
    if v is None:
        return None
    if isinstance(v, (int, float)):
        return None
    s = v.decode() if isinstance(v, bytes) else str(v)
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
        try:
            return dt.datetime.strptime(s, fmt)
        except ValueError:
            continue
    return None


def _unix_timestamp(*args: object) -> int | float | None:
    if not args:
        return int(time.time())
    d = _parse_datetime(args[0])
    if d is None:
        return None if args[0] is None else 0
    return calendar.timegm(d.timetuple())


def _from_unixtime(v: object, fmt: object = None) -> str | None:
    if v is None:
        return None
    try:
        stamp = dt.datetime.fromtimestamp(float(v), dt.UTC)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None
    return stamp.strftime("%Y-%m-%d %H:%M:%S")


def _concat_ws(sep: object, *args: object) -> str | None:
    if sep is None:
        return None
    return str(sep).join(_text(a) for a in args if a is not None)


def _text(v: object) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return str(v)


def _hash(algo: str) -> Callable[[object], str | None]:
    def fn(v: object) -> str | None:
        if v is None:
            return None
        data = v if isinstance(v, bytes) else _text(v).encode()
        return hashlib.new(algo, data).hexdigest()

    return fn


def _find_in_set(needle: object, haystack: object) -> int | None:
    if needle is None or haystack is None:
        return None
    items = _text(haystack).split(",")
    try:
        return items.index(_text(needle)) + 1
    except ValueError:
        return 0


def _substring_index(s: object, delim: object, count: object) -> str | None:
    if s is None or delim is None or count is None:
        return None
    text, d, n = _text(s), _text(delim), int(count)  # type: ignore[call-overload]
    if not d or n == 0:
        return ""
    parts = text.split(d)
    return d.join(parts[:n]) if n > 0 else d.join(parts[n:])


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


def _regexp(pattern: object, value: object) -> int | None:
    # SQLite calls regexp(pattern, value) for "value REGEXP pattern".
    if pattern is None or value is None:
        return None
    return 1 if _regex(_text(pattern)).search(_text(value)) else 0


def _left(s: object, n: object) -> str | None:
    if s is None or n is None:
        return None
    return _text(s)[: max(0, int(n))]  # type: ignore[call-overload]


def _right(s: object, n: object) -> str | None:
    if s is None or n is None:
        return None
    k = max(0, int(n))  # type: ignore[call-overload]
    return _text(s)[-k:] if k else ""


# name -> (callable, number of args (-1 = any), deterministic)
FUNCTIONS: dict[str, tuple[Callable[..., object], int, bool]] = {
    "NOW": (lambda *a: _now(), -1, False),
    "SYSDATE": (lambda *a: _now(), -1, False),
    "CURDATE": (lambda: dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"), 0, False),
    "CURTIME": (lambda *a: dt.datetime.now(dt.UTC).strftime("%H:%M:%S"), -1, False),
    "UTC_TIMESTAMP": (lambda *a: _now(), -1, False),
    "UTC_DATE": (lambda: dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"), 0, False),
    "UNIX_TIMESTAMP": (_unix_timestamp, -1, False),
    "FROM_UNIXTIME": (_from_unixtime, -1, True),
    "CONCAT_WS": (_concat_ws, -1, True),
    "MD5": (_hash("md5"), 1, True),
    "SHA1": (_hash("sha1"), 1, True),
    "SHA": (_hash("sha1"), 1, True),
    "RAND": (lambda *a: random.random(), -1, False),
    "FIND_IN_SET": (_find_in_set, 2, True),
    "SUBSTRING_INDEX": (_substring_index, 3, True),
    "REGEXP": (_regexp, 2, True),
    "LEFT": (_left, 2, True),
    "RIGHT": (_right, 2, True),
}


def register(conn: apsw.Connection) -> None:
    """Install every MySQL function on ``conn``."""
    for name, (fn, nargs, deterministic) in FUNCTIONS.items():
        conn.create_scalar_function(name, fn, nargs, deterministic=deterministic)
