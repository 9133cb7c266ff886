"""MySQL JSON functions (JSON_EXTRACT, ``->``, ``->>``, JSON_UNQUOTE and friends) as SQLite functions.

SQLite has JSON functions, but their results are not MySQL's: MySQL prints JSON with a space after ``:``
and ``,`` and its object keys sorted (shorter keys first, then byte order), returns every match of a
wildcard path (``$[*]``, ``$.*``, ``$**.k``) or of several paths as one array, supports ``$[last]`` and
``$[1 to 3]``, and treats ``$[0]`` of a non-array as the value itself. So documents are parsed with
Python's ``json`` (C-accelerated) and paths with the small parser below (cached per path text).

Invalid JSON and invalid paths are errors in MySQL (3141, 3143), raised here as ``FunctionError``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from marmot.sql.functions.conversions import FunctionError, float_text, text

# json's own (C-accelerated) JSON string scanner; undocumented, so typeshed does not declare it.
_scanstring: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]

Leg = tuple[Any, ...]
"""One step of a parsed JSON path: ``("key", name)``, ``("key*",)``, ``("idx", n, from_end)``, ``("idx*",)``,
``("range", a, a_from_end, b, b_from_end)`` or ``("**",)``."""

# ------------------------------------------------------------------------------------------ output


def _key_order(key: str) -> tuple[int, bytes]:
    raw = key.encode("utf-8", "surrogatepass")
    return len(raw), raw


def _quote(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def dumps(v: object) -> str:
    """A JSON value printed as MySQL prints it."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if type(v) is str:
        return _quote(v)
    if type(v) is int:
        return str(v)
    if type(v) is float:
        if v.is_integer() and abs(v) < 1e15:
            return f"{int(v)}.0"
        return float_text(v)
    if type(v) is list:
        return "[" + ", ".join(dumps(x) for x in v) + "]"
    if type(v) is dict:
        items = sorted(v.items(), key=lambda kv: _key_order(kv[0]))
        return "{" + ", ".join(f"{_quote(k)}: {dumps(x)}" for k, x in items) + "}"
    return _quote(str(v))


def _invalid_json(fn: str, arg: int, msg: str, pos: int) -> FunctionError:
    return FunctionError(
        3141, "22032", f'Invalid JSON text in argument {arg} to function {fn}: "{msg}" at position {pos}.'
    )


def _parse_constant(name: str) -> object:
    raise ValueError(name)


def loads(doc: object, fn: str, arg: int = 1) -> object:
    if type(doc) is bytes:
        doc = doc.decode("utf-8", "replace")
    elif type(doc) is not str:
        raise FunctionError(
            3146,
            "22032",
            f"Invalid data type for JSON data in argument {arg} to function {fn}; "
            "a JSON string or JSON type is required.",
        )
    try:
        return json.loads(doc, parse_constant=_parse_constant)
    except json.JSONDecodeError as err:
        msg = "The document is empty." if not str(doc).strip() else "Invalid value."
        raise _invalid_json(fn, arg, msg, err.pos) from None
    except ValueError:
        raise _invalid_json(fn, arg, "Invalid value.", 0) from None


# -------------------------------------------------------------------------------------------- paths

# A path is a tuple of legs: ("key", name) ("key*",) ("idx", n, from_end) ("idx*",) ("range", a, b) ("**",)
# where an index counted from the end ("last - n") has from_end=True.


def _path_error(pos: int) -> FunctionError:
    return FunctionError(
        3143, "42000", f"Invalid JSON path expression. The error is around character position {pos}."
    )


def _skip_ws(s: str, i: int) -> int:
    while i < len(s) and s[i] in " \t\n\r":
        i += 1
    return i


def _array_pos(s: str, i: int) -> tuple[tuple[int, bool], int]:
    """An array position: N, or last, or last - N."""
    i = _skip_ws(s, i)
    if s.startswith("last", i):
        i = _skip_ws(s, i + 4)
        if i < len(s) and s[i] == "-":
            i = _skip_ws(s, i + 1)
            j = i
            while j < len(s) and s[j].isdigit():
                j += 1
            if j == i:
                raise _path_error(j)
            return (int(s[i:j]), True), j
        return (0, True), i
    j = i
    while j < len(s) and s[j].isdigit():
        j += 1
    if j == i:
        raise _path_error(j)
    return (int(s[i:j]), False), j


@lru_cache(maxsize=1024)
def parse_path(path: str) -> tuple[tuple[Leg, ...], bool]:
    """(legs, may_match_many) of a MySQL JSON path; raises FunctionError 3143 when it is invalid."""
    s = path
    i = _skip_ws(s, 0)
    if i >= len(s) or s[i] != "$":
        raise _path_error(i)
    i += 1
    legs: list[Leg] = []
    many = False
    while True:
        i = _skip_ws(s, i)
        if i >= len(s):
            break
        c = s[i]
        if c == ".":
            i = _skip_ws(s, i + 1)
            if i < len(s) and s[i] == "*":
                legs.append(("key*",))
                many = True
                i += 1
            elif i < len(s) and s[i] == '"':
                try:
                    name, end = _scanstring(s, i + 1)
                except json.JSONDecodeError:
                    raise _path_error(i) from None
                legs.append(("key", name))
                i = end
            else:
                j = i
                while j < len(s) and (s[j].isalnum() or s[j] in "_$" or ord(s[j]) > 127):
                    j += 1
                if j == i or s[i].isdigit():
                    raise _path_error(j)
                legs.append(("key", s[i:j]))
                i = j
        elif c == "[":
            i = _skip_ws(s, i + 1)
            if i < len(s) and s[i] == "*":
                legs.append(("idx*",))
                many = True
                i = _skip_ws(s, i + 1)
            else:
                (a, a_end), i = _array_pos(s, i)
                i = _skip_ws(s, i)
                if s.startswith("to", i):
                    (b, b_end), i = _array_pos(s, i + 2)
                    legs.append(("range", a, a_end, b, b_end))
                    many = True
                    i = _skip_ws(s, i)
                else:
                    legs.append(("idx", a, a_end))
            if i >= len(s) or s[i] != "]":
                raise _path_error(i)
            i += 1
        elif c == "*" and s.startswith("**", i):
            legs.append(("**",))
            many = True
            i += 2
        else:
            raise _path_error(i)
    if legs and legs[-1] == ("**",):
        raise _path_error(len(s))
    return tuple(legs), many


def _descendants(v: object, out: list[object]) -> None:
    out.append(v)
    if type(v) is dict:
        for x in v.values():
            _descendants(x, out)
    elif type(v) is list:
        for x in v:
            _descendants(x, out)


def _index(n: int, from_end: bool, size: int) -> int:
    return size - 1 - n if from_end else n


def evaluate(doc: object, legs: tuple[Leg, ...]) -> list[object]:
    """Every value of ``doc`` the path selects, in document order."""
    current = [doc]
    for leg in legs:
        kind = leg[0]
        nxt: list[object] = []
        if kind == "**":
            for v in current:
                _descendants(v, nxt)
            current = nxt
            continue
        for v in current:
            if kind == "key":
                if type(v) is dict and leg[1] in v:
                    nxt.append(v[leg[1]])
            elif kind == "key*":
                if type(v) is dict:
                    nxt.extend(x for _, x in sorted(v.items(), key=lambda kv: _key_order(kv[0])))
            elif kind == "idx*":
                if type(v) is list:
                    nxt.extend(v)
            else:
                arr: list[object] = (
                    v if type(v) is list else [v]
                )  # a non-array is a one-element array for [0]/[last]
                size = len(arr)
                if kind == "idx":
                    k = _index(leg[1], leg[2], size)
                    if 0 <= k < size:
                        nxt.append(arr[k])
                else:
                    a, b = _index(leg[1], leg[2], size), _index(leg[3], leg[4], size)
                    a = max(a, 0)
                    b = min(b, size - 1)
                    if a <= b:
                        nxt.extend(arr[a : b + 1])
        current = nxt
    return current


def _path_text(p: object) -> str:
    return p.decode("utf-8", "replace") if type(p) is bytes else text(p)


def _extract(doc: object, paths: tuple[object, ...], fn: str) -> tuple[bool, object]:
    """(found, value) for JSON_EXTRACT(doc, paths...)."""
    value = loads(doc, fn)
    results: list[object] = []
    many = len(paths) > 1
    for p in paths:
        legs, wild = parse_path(_path_text(p))
        many = many or wild
        results.extend(evaluate(value, legs))
    if not results:
        return False, None
    if many:
        return True, results
    return True, results[0]


# ----------------------------------------------------------------------------------------- functions


def json_extract(doc: object, *paths: object) -> str | None:
    if doc is None or not paths or any(p is None for p in paths):
        return None
    found, value = _extract(doc, paths, "json_extract")
    return dumps(value) if found else None


def json_value_unquoted(doc: object, path: object) -> str | None:
    """``doc ->> path``: JSON_UNQUOTE(JSON_EXTRACT(doc, path))."""
    if doc is None or path is None:
        return None
    found, value = _extract(doc, (path,), "json_extract")
    if not found:
        return None
    if type(value) is str:
        return value
    return dumps(value)


def json_unquote(v: object) -> str | None:
    if v is None:
        return None
    s = v.decode("utf-8", "replace") if type(v) is bytes else text(v)
    if len(s) >= 2 and s[0] == '"' and s[-1] == '"':
        try:
            out, end = _scanstring(s, 1)
        except json.JSONDecodeError as err:
            raise _invalid_json(
                "json_unquote", 1, "Missing a closing quotation mark in string.", err.pos
            ) from None
        if end != len(s):
            raise _invalid_json(
                "json_unquote", 1, "The document root must not be followed by other values.", end
            )
        return out
    return s


def json_quote(v: object) -> str | None:
    if v is None:
        return None
    return _quote(text(v))


def json_valid(v: object) -> int | None:
    if v is None:
        return None
    if type(v) not in (str, bytes):
        return 0
    try:
        loads(v, "json_valid")
    except FunctionError:
        return 0
    return 1


_TYPES = {bool: "BOOLEAN", int: "INTEGER", float: "DOUBLE", str: "STRING", list: "ARRAY", dict: "OBJECT"}


def json_type(v: object) -> str | None:
    if v is None:
        return None
    value = loads(v, "json_type")
    if value is None:
        return "NULL"
    if type(value) is int and value > 2**63 - 1:
        return "UNSIGNED INTEGER"
    return _TYPES[type(value)]


def json_length(doc: object, *path: object) -> int | None:
    if doc is None or any(p is None for p in path):
        return None
    value = loads(doc, "json_length")
    if path:
        legs, wild = parse_path(_path_text(path[0]))
        if wild:
            raise FunctionError(
                3149,
                "42000",
                "In this situation, path expressions may not contain the * and ** tokens or an array range.",
            )
        found = evaluate(value, legs)
        if not found:
            return None
        value = found[0]
    if type(value) is dict or type(value) is list:
        return len(value)
    return 1


def json_keys(doc: object, *path: object) -> str | None:
    if doc is None or any(p is None for p in path):
        return None
    value = loads(doc, "json_keys")
    if path:
        legs, _ = parse_path(_path_text(path[0]))
        found = evaluate(value, legs)
        if not found:
            return None
        value = found[0]
    if type(value) is not dict:
        return None
    return dumps(sorted(value, key=_key_order))


def _sql_to_json(v: object) -> object:
    if type(v) is bytes:
        return v.decode("utf-8", "replace")
    if type(v) is float and not math.isfinite(v):
        return None
    return v


def json_array(*values: object) -> str:
    return dumps([_sql_to_json(v) for v in values])


def json_object(*args: object) -> str:
    if len(args) % 2:
        raise FunctionError(
            1582, "42000", "Incorrect parameter count in the call to native function 'json_object'"
        )
    out: dict[str, object] = {}
    for k, v in zip(args[::2], args[1::2], strict=True):
        if k is None:
            raise FunctionError(3158, "22032", "JSON documents may not contain NULL member names.")
        out[text(k)] = _sql_to_json(v)
    return dumps(out)


# name -> (callable, number of args (-1 = any), deterministic)
FUNCTIONS: dict[str, tuple[Callable[..., object], int, bool]] = {
    "__mysql_json_extract": (json_extract, -1, True),
    "__mysql_json_unquoted": (json_value_unquoted, 2, True),
    "__mysql_json_array": (json_array, -1, True),
    "__mysql_json_object": (json_object, -1, True),
    "__mysql_json_valid": (json_valid, 1, True),
    "__mysql_json_type": (json_type, 1, True),
    "__mysql_json_length": (json_length, -1, True),
    "__mysql_json_keys": (json_keys, -1, True),
    "__mysql_json_quote": (json_quote, 1, True),
    "JSON_UNQUOTE": (json_unquote, 1, True),
}
