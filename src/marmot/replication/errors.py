"""Why a replicated write failed, with the MySQL error the client gets (code, SQLSTATE, message).

The replication layer does not know the MySQL protocol; the engine turns these into MySQL error packets.
"""

from __future__ import annotations


class ReplicationError(Exception):
    """A write could not be replicated. ``code``/``sqlstate`` are what the MySQL client sees."""

    code = 1105
    sqlstate = "HY000"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class WriteConflict(ReplicationError):
    """Another undecided transaction holds one of the rows, or the rows changed since they were read:
    nothing was applied anywhere; the client should retry (MySQL's deadlock error, retryable)."""

    code = 1213
    sqlstate = "40001"


class QuorumNotReached(ReplicationError):
    """Too few nodes acknowledged the PREPARE: the transaction was aborted everywhere."""


class NotJoined(ReplicationError):
    """This node has seeds but none has admitted it into a cluster yet (``cluster/join.py``): it refuses
    every write at every level rather than make data no cluster knows about."""


class CommitIncomplete(ReplicationError):
    """The transaction was decided and applied here, but fewer nodes than the consistency level requires
    confirmed the COMMIT in time; the rest get it from anti-entropy."""


class Rejected(ReplicationError):
    """This node's own participant refused the PREPARE (schema behind, unknown database, leaving)."""


class CommitUnknown(ReplicationError):
    """The transaction was decided, but no majority confirmed the COMMIT in time and this node has not
    applied it: participants that could not reach this node may have given up on it. It is settled in
    the background — committed everywhere if any node applied it, aborted if every participant had
    given up — so the client cannot be told which (MySQL has no better code than 1105 for it)."""


class TransactionAborted(QuorumNotReached):
    """Every participant had given up on the transaction before its COMMIT reached them (its
    coordinator was unreachable for longer than ``heartbeat_timeout_seconds``): aborted everywhere."""
