"""The seam where a read-only replica hands a session's statements to the cluster instead of running them.

Why a protocol here: the engine must not import ``replica/`` (arrows point down, docs/DESIGN.md), yet on a
replica with ``[replica] forward_writes = true`` a session's writes go to a cluster node
(``replica/forward_writes.py``). Writes reach it through the read-only seam (``read_only.py``: the
router's ``write_gate``, set to ``forward_gate``); a write only the plan runner's second check caught
raises ``ReadOnlyRefusal``, which ``Session.execute`` hands over too. What the gate cannot see is offered
to ``intercept`` before routing: once a transaction has forwarded a write, its later statements (reads,
COMMIT, ROLLBACK, savepoints) belong on the same cluster node, and a read after a forwarded commit may
have to wait until the replica has applied it (``marmot_wait_for_replication``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from marmot.engine.results import Result
    from marmot.engine.session import Session
    from marmot.sql import lexer


class StatementForwarder(Protocol):
    """What a replica plugs into ``EngineContext.forwarder`` (``replica/forward_writes.py``)."""

    async def intercept(
        self, session: Session, sql: str, norm: lexer.Normalized, params: list[object]
    ) -> Result | None:
        """The answer of a statement run elsewhere, or None: route it here as usual (after waiting, if the
        session asked to read its own forwarded writes, until this node has applied them)."""
        ...

    async def forward(self, session: Session, sql: str, params: list[object]) -> Result:
        """Run the write ``sql`` on the cluster and return its answer as if local."""
        ...

    def session_closed(self, session: Session) -> None:
        """The client is gone (or reset its session): an open forwarded transaction is rolled back."""
        ...
