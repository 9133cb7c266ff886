"""An operator's abort of a stuck transaction (``POST /admin/{db}/transactions/{txn}/abort``).

A transaction prepared on this node holds its row intents (and, for DDL, the database's DDL lock) until
its decision arrives. If its coordinator died between PREPARE and COMMIT, every write to those rows is
refused with 1213 until the participant's own resolver gives up on it after
``heartbeat_timeout_seconds`` (DDL: ``[ddl] lock_lease_seconds``). This lets an operator take that
decision now instead of waiting — and nothing more: **the same rules as the resolver apply**, so an
abort never undoes a commit.

Refused (``AbortRefused``, 409) when:
  * it is being applied here (its COMMIT arrived), or it is already in this node's commit log;
  * this node coordinates it and its coordinator has not finished with it (still preparing, or a commit
    that no majority confirmed is being settled: a participant that cannot be reached may have applied
    it — remove a dead node from the cluster and the settlement finishes on its own);
  * any alive peer answers that it committed it (the resolver commits it here too);
  * its coordinator, alive, answers that it is still running it.

Otherwise — its coordinator is unreachable, does not know it or aborted it, and no alive node has it
committed — this node aborts it: its intents are released, it is remembered as aborted (a late COMMIT,
REPLAY or SETTLE is refused with a definite "aborted", which is what lets a coordinator that was only
cut off abort it too), and ABORT is sent to every alive peer, which drops its prepared copy unless it is
already applying a COMMIT. A commit held only by a node that is down is not seen; that is also true of
the resolver, and anti-entropy brings such a commit to every node later (last-writer-wins), as for any
committed transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from marmot.replication import messages as m
from marmot.replication.commit.coordinator import Coordinator
from marmot.replication.commit.participant import Participant
from marmot.replication.commit.txn_messages import Abort, StatusRequest, read_status

log = logging.getLogger("marmot.replication")


class AbortRefused(ValueError):
    """The transaction may not be aborted now; the message says why (admin answers 409)."""


class NotPending(LookupError):
    """The transaction is not pending on this node (admin answers 404)."""


AskPeers = Callable[[StatusRequest], Awaitable[dict[int, Any]]]
SendAbort = Callable[[Abort], Awaitable[dict[int, str]]]


async def abort_stuck(
    participant: Participant,
    coordinator: Coordinator,
    db: str,
    txn: int,
    *,
    ask_peers: AskPeers,
    send_abort: SendAbort,
) -> dict[str, Any]:
    """Abort ``txn`` of ``db`` if that is safe (module docstring); returns what was done."""
    p = participant.prepared.get(txn)
    if p is None or p.db != db:
        if participant.has_applied(db, txn):
            raise AbortRefused(f"transaction {txn} is committed on node {participant.node_id}")
        raise NotPending(f"transaction {txn} is not pending in '{db}' on node {participant.node_id}")
    if p.committing:
        raise AbortRefused(f"transaction {txn} is being committed on node {participant.node_id}")
    if p.coordinator == participant.node_id:
        state, _ = coordinator.state_of(txn)
        if state in ("pending", "committing", "committed"):
            raise AbortRefused(
                f"this node (node {participant.node_id}) coordinates transaction {txn} and has not "
                f"finished with it (state {state}): a commit no majority confirmed is settled with every "
                "participant; if one of them is gone for good, remove it "
                "(POST /admin/cluster/remove/{id}) and the settlement finishes"
            )
    answers = await ask_peers(StatusRequest(db, txn))
    peer_states: dict[int, str] = {}
    for nid, raw in sorted(answers.items()):
        if isinstance(raw, BaseException):
            peer_states[nid] = f"unreachable: {str(raw) or type(raw).__name__}"
            continue
        try:
            ans = read_status(raw)
        except m.MessageError as e:
            raise AbortRefused(f"node {nid} gave an unreadable status for transaction {txn}: {e}") from None
        peer_states[nid] = "unknown" if ans is None else ans.state
        if ans is not None and ans.state == "committed":
            raise AbortRefused(
                f"transaction {txn} is committed on node {nid}: it is not aborted (this node's resolver "
                "commits it here too)"
            )
        if nid == p.coordinator and ans is not None and ans.state in ("pending", "prepared"):
            raise AbortRefused(
                f"transaction {txn} is still running on its coordinator, node {nid} (state {ans.state})"
            )
    # Re-check after the awaits: its COMMIT may have arrived meanwhile.
    p = participant.prepared.get(txn)
    if p is not None and p.committing:
        raise AbortRefused(f"transaction {txn} is being committed on node {participant.node_id}")
    if p is None:
        if participant.has_applied(db, txn):
            raise AbortRefused(f"transaction {txn} was committed on node {participant.node_id} meanwhile")
        raise NotPending(f"transaction {txn} was resolved on node {participant.node_id} meanwhile")
    participant.abort_local(txn)
    participant.stats["operator_aborts"] += 1
    log.warning(
        "transaction %d in '%s': aborted by an operator (coordinator node %d; peers: %s)",
        txn,
        db,
        p.coordinator,
        peer_states or "none alive",
    )
    sent = await send_abort(Abort(db, txn))
    return {
        "txn_id": txn,
        "database": db,
        "status": "aborted",
        "coordinator": p.coordinator,
        "peers": {str(nid): state for nid, state in peer_states.items()},
        "abort_sent": {str(nid): result for nid, result in sorted(sent.items())},
    }
