"""``KILL [CONNECTION | QUERY] id`` (and the wire protocol's COM_PROCESS_KILL): end another session's
statement or connection, by the id ``SHOW PROCESSLIST`` and ``CONNECTION_ID()`` show.

What can be interrupted: the node runs every session's SQLite work on one event loop, so another
session's KILL is read only while the target *waits* — in SLEEP or for a GET_LOCK (a SQLite step in
progress finishes before any KILL is read, so ``sqlite3_interrupt`` would have nothing to stop). KILL QUERY
sets the target's interrupt event: SLEEP returns 1 at once, a GET_LOCK wait fails with 1317. KILL
[CONNECTION] also closes the client's connection, which rolls back its transaction and frees its locks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from marmot.engine.errors import MySQLError, syntax_error
from marmot.engine.results import OkResult
from marmot.sql import lexer

if TYPE_CHECKING:
    from marmot.engine.session import Session


def run(session: Session, sql: str, params: list[object]) -> OkResult:
    """Run a KILL statement of ``session``."""
    toks = lexer.code_tokens(sql)
    words = [t.text.upper() for t in toks]
    if words and words[-1] == ";":
        toks, words = toks[:-1], words[:-1]
    query = len(words) > 1 and words[1] == "QUERY"
    rest = toks[2:] if len(words) > 1 and words[1] in ("QUERY", "CONNECTION") else toks[1:]
    if [t.text.upper() for t in rest] == ["CONNECTION_ID", "(", ")"]:
        kill(session, session.connection_id, query)
        return OkResult()
    if len(rest) != 1 or rest[0].kind not in ("num", "param"):
        raise syntax_error(
            "You have an error in your SQL syntax; check the manual that corresponds to your MySQL server "
            f"version for the right syntax to use near '{sql[len('KILL') :].strip()[:80]}' at line 1"
        )
    raw = params[0] if rest[0].kind == "param" and params else rest[0].text
    try:
        target_id = int(str(raw))
    except ValueError:
        raise syntax_error("You have an error in your SQL syntax near 'KILL'") from None
    kill(session, target_id, query)
    return OkResult()


def kill(session: Session, target_id: int, query_only: bool) -> None:
    """Interrupt the statement of session ``target_id`` of this node, and close its connection unless
    ``query_only``; 1094 when there is no such session."""
    target = session.ctx.sessions.get(target_id)
    if target is None:
        raise MySQLError(1094, "HY000", f"Unknown thread id: {target_id}")
    target.interrupt.set()
    if not query_only and target.kill_connection is not None:
        target.kill_connection()
