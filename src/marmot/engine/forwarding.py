"""The seam where a read-only replica hands a session's writes to the cluster instead of running them.

Why a protocol here: the engine must not import ``replica/`` (arrows point down, docs/DESIGN.md), yet on a
replica with ``[replica] forward_writes = true`` a session's writes go to a cluster node
(``replica/forward_client.py``). The engine only knows "someone may take this statement": ``Session.execute``
offers every statement to ``EngineContext.forwarder`` first, and a statement that reaches the replica's
read-only refusal anyway (a write the forwarder's first look did not recognise) raises
``WriteNeedsForwarding`` — MySQL's 1290, so without a forwarder it is the plain read-only error — which
the session catches and hands over as well.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from marmot.engine.errors import MySQLError

if TYPE_CHECKING:
    from marmot.engine.results import Result
    from marmot.engine.session import Session
    from marmot.sql import lexer

READ_ONLY_MESSAGE = (
    "The MySQL server is running with the --read-only option so it cannot execute this statement"
)


class WriteNeedsForwarding(MySQLError):
    """A write refused because this node is a read-only replica (1290 to a client when not forwarded)."""

    def __init__(self, message: str = READ_ONLY_MESSAGE) -> None:
        super().__init__(1290, "HY000", message)


class StatementForwarder(Protocol):
    """What a replica plugs into ``EngineContext.forwarder`` (``replica/forward_client.py``)."""

    async def intercept(
        self, session: Session, sql: str, norm: lexer.Normalized, params: list[object]
    ) -> Result | None:
        """The answer of a statement run elsewhere, or None: run it here (after waiting, if the session
        asked to read its own forwarded writes, until this node has applied them)."""
        ...

    async def forward(self, session: Session, sql: str, params: list[object]) -> Result:
        """Run ``sql`` on the cluster: a write that reached the read-only refusal."""
        ...

    def session_closed(self, session: Session) -> None:
        """The client is gone (or reset its session): an open forwarded transaction is rolled back."""
        ...
