"""MySQL functions SQLite lacks, registered on every connection as SQLite functions with MySQL semantics.

This package holds the runtime side (the transpiler's side is ``marmot.sql.function_rewrites``); this
module is its registry: ``FUNCTIONS`` gathers the string (``strings``), numeric/hash/network
(``numeric``) and JSON (``json``) functions; ``register(conn)`` installs them. The date/time functions
live in ``datetime`` (helpers: ``date_format``, ``temporal``) and are registered by the session from that
module's own ``FUNCTIONS``. ``conversions`` holds the MySQL value conversions every function uses and
``FunctionError``.

Naming: a function SQLite does not have is registered under its MySQL name (``FIND_IN_SET``, ``LPAD``),
so the transpiler can leave such calls as they are. Where SQLite has a built-in of the same name with
other semantics (``length``, ``substr``, ``round``, ``upper``, ``trim``, ``hex``, ``concat``, ``date``,
``timediff`` ...), the MySQL version is registered as ``__mysql_<name>`` and ``function_rewrites`` sends
the call there; SQLite's built-ins are never overridden, so internal SQL keeps SQLite's meaning.

Functions whose value changes between calls (RAND, UUID, NOW ...) are registered non-deterministic so
SQLite never constant-folds them into an index or a view.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

import apsw

from marmot.sql.functions import decimal, json, numeric, strings, unsigned
from marmot.sql.functions.conversions import FunctionError, text

__all__ = ["FUNCTIONS", "FunctionError", "register", "register_stored_view_functions"]


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


def _regexp(pattern: object, value: object) -> int | None:
    # SQLite calls regexp(pattern, value) for "value REGEXP pattern".
    if pattern is None or value is None:
        return None
    return 1 if _regex(text(pattern)).search(text(value)) else 0


# name -> (callable, number of args (-1 = any), deterministic)
FUNCTIONS: dict[str, tuple[Callable[..., object], int, bool]] = {
    **strings.FUNCTIONS,
    **numeric.FUNCTIONS,
    **json.FUNCTIONS,
    **decimal.FUNCTIONS,
    **unsigned.FUNCTIONS,
    "REGEXP": (_regexp, 2, True),
}


def register(conn: apsw.Connection) -> None:
    """Install every MySQL function on ``conn``."""
    for name, (fn, nargs, deterministic) in FUNCTIONS.items():
        conn.create_scalar_function(name, fn, nargs, deterministic=deterministic)
    for name, (factory, nargs) in decimal.AGGREGATES.items():
        conn.create_aggregate_function(name, factory, nargs)


def register_stored_view_functions(conn: apsw.Connection) -> None:
    """Install the functions a stored view may call: the exact DECIMAL ones (``sql/decimal_rewrites.py``
    rewrites a view's DECIMAL arithmetic into them) and ``__marmot_u64``. Every connection that reads a
    view's columns needs them, not only the sessions' (``DatabaseManager.add_connection_setup``)."""
    for name, (fn, nargs, deterministic) in {**decimal.FUNCTIONS, **unsigned.FUNCTIONS}.items():
        conn.create_scalar_function(name, fn, nargs, deterministic=deterministic)
    for name, (factory, nargs) in decimal.AGGREGATES.items():
        conn.create_aggregate_function(name, factory, nargs)
