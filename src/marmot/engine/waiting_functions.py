"""The SQL functions that wait: ``SLEEP`` and the user-level locks (``GET_LOCK``, ``RELEASE_LOCK``,
``IS_FREE_LOCK``, ``IS_USED_LOCK``, ``RELEASE_ALL_LOCKS``), run by the session, not by SQLite.

Why not SQLite functions: SQLite calls a function synchronously on the node's event loop, so a function
that waits (for a timer, for other nodes to grant a lock) would stop every other session of the node.
The statements applications send with them are plain — ``SELECT GET_LOCK('migrations', 10)``, ``SELECT
RELEASE_LOCK(?)``, ``DO SLEEP(1)`` — so a ``SELECT`` or ``DO`` whose select list is only such calls with
constant or parameter arguments (each with an optional alias) is answered here, awaiting the cluster
(``replication/named_locks.py``) or a timer. Inside a larger statement (``SELECT SLEEP(1) FROM t``, a
lock name computed by an expression) the function is SQLite's and refuses with 1235, saying so.

``KILL QUERY`` sets the session's interrupt event: a SLEEP returns 1 at once, a GET_LOCK wait fails with
1317 (``Query execution was interrupted``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from marmot.engine.errors import MySQLError
from marmot.engine.results import OkResult, Result, ResultSet
from marmot.replication.named_locks import Interrupted
from marmot.sql import lexer
from marmot.sql.functions.conversions import FunctionError

if TYPE_CHECKING:
    from marmot.engine.session import Session

# name -> (min args, max args)
_ARITY = {
    "SLEEP": (1, 1),
    "GET_LOCK": (2, 2),
    "RELEASE_LOCK": (1, 1),
    "IS_FREE_LOCK": (1, 1),
    "IS_USED_LOCK": (1, 1),
    "RELEASE_ALL_LOCKS": (0, 0),
}
NAMES = frozenset(_ARITY)
_MAX_NAME = 64  # MySQL's limit on a user lock's name


@dataclass(slots=True)
class Call:
    name: str  # upper case
    args: list[object]  # literal values, or _Param(index) for a client '?'
    column: str  # the result column's name: the call as written, or its alias


@dataclass(slots=True)
class _Param:
    index: int


def may_be_call(words: list[str]) -> bool:
    """The per-statement gate, from the words the lexer already upper-cased: ``parse`` only accepts a
    ``SELECT``/``DO`` whose first code token after it is one of ``NAMES``, so nothing else is tokenised."""
    return len(words) > 1 and words[0] in ("SELECT", "DO") and words[1] in NAMES


def parse(sql: str) -> tuple[bool, list[Call]] | None:
    """``(is_do, calls)`` when ``sql`` is ``SELECT``/``DO`` of waiting-function calls only, else None."""
    try:
        toks = lexer.code_tokens(sql)
    except lexer.LexError:
        return None
    if toks and toks[-1].text == ";":
        toks = toks[:-1]
    if len(toks) > 2 and [t.text.upper() for t in toks[-2:]] == ["FROM", "DUAL"]:
        toks = toks[:-2]
    if len(toks) < 4 or toks[0].text.upper() not in ("SELECT", "DO"):
        return None
    calls: list[Call] = []
    param_index = 0
    i = 1
    while True:
        if i + 1 >= len(toks) or toks[i].kind != "word" or toks[i + 1].text != "(":
            return None
        name = toks[i].text.upper()
        if name not in NAMES:
            return None
        start = toks[i].start
        i += 2
        args: list[object] = []
        while i < len(toks) and toks[i].text != ")":
            negative = False
            if toks[i].text == "-" and i + 1 < len(toks) and toks[i + 1].kind == "num":
                negative, i = True, i + 1
            tok = toks[i]
            if tok.kind in ("sq", "dq"):
                args.append(lexer.unquote_string(tok.text))
            elif tok.kind == "num":
                value: float | int = float(tok.text) if any(c in tok.text for c in ".eE") else int(tok.text)
                args.append(-value if negative else value)
            elif tok.kind == "param":
                args.append(_Param(param_index))
                param_index += 1
            elif tok.kind == "word" and tok.text.upper() == "NULL":
                args.append(None)
            else:
                return None
            i += 1
            if i < len(toks) and toks[i].text == ",":
                i += 1
            elif i >= len(toks) or toks[i].text != ")":
                return None
        if i >= len(toks):
            return None
        end = toks[i].start + 1
        i += 1
        column = sql[start:end]
        if i < len(toks) and toks[i].text.upper() == "AS":
            i += 1
        if i < len(toks) and toks[i].kind in ("word", "bt", "sq", "dq") and toks[i].text != ",":
            t = toks[i]
            column = (
                lexer.unquote_identifier(t.text) if t.kind in ("word", "bt") else lexer.unquote_string(t.text)
            )
            i += 1
        lo, hi = _ARITY[name]
        if not lo <= len(args) <= hi:
            raise MySQLError(
                1582, "42000", f"Incorrect parameter count in the call to native function '{name}'"
            )
        calls.append(Call(name, args, column))
        if i == len(toks):
            return toks[0].text.upper() == "DO", calls
        if toks[i].text != ",":
            return None
        i += 1


def _lock_name(value: object) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    name = "" if value is None else str(value)
    if not name or len(name) > _MAX_NAME:
        raise MySQLError(3057, "42000", f"Incorrect user-level lock name '{name}'.")
    return name


def _number(value: object) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


async def run(session: Session, is_do: bool, calls: list[Call], params: list[object]) -> Result:
    """Evaluate the calls in order (MySQL evaluates a select list left to right) and answer one row."""
    row: list[object] = []
    for call in calls:
        args = [params[a.index] if isinstance(a, _Param) else a for a in call.args]
        row.append(await _evaluate(session, call.name, args))
    if is_do:
        return OkResult()
    return ResultSet([(c.column, "BIGINT") for c in calls], [tuple(row)])


async def _evaluate(session: Session, name: str, args: list[object]) -> object:
    locks = session.ctx.named_locks
    interrupt = session.interrupt
    if name == "SLEEP":
        seconds = _number(args[0])
        if args[0] is None or seconds < 0:
            raise MySQLError(1210, "HY000", "Incorrect arguments to sleep.")
        session.state = "User sleep"
        try:
            await asyncio.wait_for(interrupt.wait(), timeout=seconds)
        except TimeoutError:
            return 0
        finally:
            session.state = ""
        return 1
    if name == "RELEASE_ALL_LOCKS":
        return await locks.release_all(session.connection_id)
    lock = _lock_name(args[0])
    if name == "GET_LOCK":
        session.state = "User lock"
        try:
            return await locks.get_lock(lock, session.connection_id, _number(args[1]), interrupt)
        except Interrupted:
            raise MySQLError(1317, "70100", "Query execution was interrupted") from None
        finally:
            session.state = ""
    if name == "RELEASE_LOCK":
        return await locks.release_lock(lock, session.connection_id)
    holder = await locks.holder(lock)
    if name == "IS_FREE_LOCK":
        return 1 if holder is None else 0
    return None if holder is None else holder[1]  # IS_USED_LOCK: the holder's connection id (on its node)


def refusing(name: str) -> Callable[..., object]:
    """The SQLite function of ``name`` inside a larger statement: a clear refusal, never a wait that
    would stop the node's event loop."""

    def refuse(*_args: object) -> object:
        raise FunctionError(
            1235,
            "42000",
            f"This version of MySQL doesn't yet support '{name}() inside a larger statement' (Marmot runs "
            f"{name}() only as SELECT or DO of such calls with constant or ? arguments)",
        )

    return refuse
