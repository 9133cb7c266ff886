"""Schema follows: a statement that names a table or database created through another node waits
(bounded) for that schema here instead of answering 1146 / 1049.

Why: a DDL acknowledged at QUORUM is applied on a majority; the other nodes get its COMMIT a moment
later (or through catch-up when they missed it). A client that creates a table through node 1 and at
once uses it through node 3 would see "no such table" for that moment. The engine, on 1146 or 1049,
asks ``SchemaFollower.follow(db)`` whether the schema of ``db`` is newer somewhere, waits for it, and
runs the statement once more.

"Newer somewhere" is one of two kinds of evidence, both cheap and local:

* an ALIVE peer gossiped a schema version of ``db`` higher than this node's, or has ``db`` while this
  node has not (``Membership.peer_schema_versions``: every node publishes its versions); then a
  catch-up round is kicked (``LogPull.kick``) in case the COMMIT never comes, and the wait lasts until
  the local version reaches what gossip showed;
* this node holds a PREPAREd, undecided DDL of ``db`` (or a CREATE/DROP DATABASE of it): its COMMIT is
  on its way (gossip may not have spread the coordinator's new version yet); the wait lasts until it is
  decided.

Either way the wait ends at the deadline (``[replication] read_timeout_ms``); with no evidence there is
no wait at all, so a table that exists nowhere still answers 1146 at once. What it cannot see: a DDL
whose PREPARE has not reached this node and whose new version no gossip round has brought yet (a few
gossip intervals at most after the DDL was acknowledged).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from marmot.replication.commit.participant import Participant
from marmot.replication.wiring import Membership
from marmot.storage.databases import DatabaseManager

POLL_S = 0.05  # re-check at least this often (a gossip round can bring a higher target meanwhile)


class SchemaFollower:
    """Waits for a newer schema of one database that gossip or a pending PREPARE shows exists."""

    def __init__(
        self,
        participant: Participant,
        databases: DatabaseManager,
        membership: Membership,
        kick: Callable[[], None] | None,
    ) -> None:
        self.participant = participant
        self.databases = databases
        self.membership = membership
        self.kick = kick  # start a catch-up round now (None: anti-entropy is off)

    def local_version(self, db: str) -> int | None:
        """This node's schema version of ``db``, None when it has no such database."""
        return self.participant.schema_version(db) if self.databases.exists(db) else None

    def gossiped_version(self, db: str) -> int | None:
        """The highest schema version of ``db`` an ALIVE peer gossiped, None when none has ``db``."""
        versions = [v[db] for v in self.membership.peer_schema_versions().values() if db in v]
        return max(versions) if versions else None

    def pending_ddl(self, db: str) -> bool:
        """A DDL of ``db``, or a database operation on it, is PREPAREd here and not yet decided."""
        for p in list(self.participant.prepared.values()):
            if p.body.kind == "ddl" and p.db == db:
                return True
            if p.body.kind == "dbop" and p.body.dbop is not None and p.body.dbop[1] == db:
                return True
        return False

    def _behind(self, db: str, local: int | None) -> int | None:
        """The gossiped version to reach, when it is newer than ``local``; else None."""
        target = self.gossiped_version(db)
        if target is not None and (local is None or target > local):
            return target
        return None

    async def follow(self, db: str, timeout: float) -> bool:
        """Wait until ``db``'s schema here caught up with what gossip and pending PREPAREs show, at most
        ``timeout`` seconds. True when the schema changed here meanwhile (the caller runs its statement
        again); False at once when there was nothing newer to wait for."""
        start = self.local_version(db)
        target = self._behind(db, start)
        if target is None and not self.pending_ddl(db):
            return False
        if target is not None and self.kick is not None:
            self.kick()
        deadline = time.monotonic() + timeout
        while True:
            now = self.local_version(db)
            newer = self._behind(db, now)
            if newer is None and not self.pending_ddl(db):
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.participant.schema_changed(), min(remaining, POLL_S))
        return self.local_version(db) != start
