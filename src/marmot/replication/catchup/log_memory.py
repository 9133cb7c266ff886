"""This node's commit-log positions, kept in memory: what read barriers ask and answer without SQL.

Why in memory: a read at QUORUM (``read_barrier.py``) asks a peer where each database's commit log ends
and, when the peer is ahead, which transactions lie in between, then checks they are applied here. Both
questions come once per barrier read — hundreds per second under load — while the answers change only
when a transaction is applied. So the apply path tells this object about every commit-log row it writes
(``note``, from ``ApplyQueues.on_applied``, right after the write transaction commits and before any
participant acknowledges the transaction), and the questions are answered from a dict: the list of
databases, each log's id and last seq, the newest ``KEEP`` (seq, txn id) pairs of each log, and whether
a recent transaction is applied here.

What keeps it true. Every row of ``__marmot_txn_log`` is written by ``applier.apply_items`` inside
``ApplyQueues.write``, whose outcomes carry the row's seq; ``on_applied`` runs synchronously after the
COMMIT, so no answer can be given in between. Whenever a database file's generation moves
(``DatabaseManager.bump_generation``: DDL, create, drop, a snapshot replacing the file) its entry is
read again from SQL: the same log id (a DDL) keeps the remembered window and adds the rows written
since; another log id (a file swapped in gets a fresh one) starts over from ``MAX(seq)`` (entries after
that seq are the ones noted since). The list of names is read again whenever ``DatabaseManager.catalog_version``
moves (a file created, dropped or replaced). GC only deletes the oldest entries and always keeps the
newest, so seqs never go back.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import apsw

from marmot.storage import replication_tables as rt
from marmot.storage.databases import DatabaseManager

KEEP = 4096  # (seq, txn id) pairs remembered per log: a peer that fell further behind lists with SQL
TAIL_LIMIT = 1024  # most pairs one answer carries (``tail``): beyond that the asker pulls (log_list)


def _nothing() -> None:
    pass


class _Log:
    """One database's log as this node knows it: every entry after ``base`` is in ``recent``."""

    __slots__ = ("base", "generation", "last", "log_id", "recent", "txns")

    def __init__(self, generation: int, log_id: str, last: int) -> None:
        self.generation = generation
        self.log_id = log_id
        self.last = last
        self.base = last
        self.recent: deque[tuple[int, int]] = deque()
        self.txns: dict[int, int] = {}  # txn id -> seq, for the entries in ``recent``

    def add(self, seq: int, txn_id: int) -> None:
        self.recent.append((seq, txn_id))
        self.txns[txn_id] = seq
        self.last = max(self.last, seq)
        if len(self.recent) > KEEP:
            old_seq, old_txn = self.recent.popleft()
            self.txns.pop(old_txn, None)
            self.base = old_seq


class LogMemory:
    """The in-memory view of this node's commit logs (see the module docstring)."""

    def __init__(
        self,
        databases: DatabaseManager,
        read: Callable[[str], apsw.Connection],
        prepare: Callable[[str], Any],
    ) -> None:
        """``read(db)``: a read connection (``ReadConnections.get``); ``prepare(db)``: makes sure the
        replication tables exist (the apply queue's connection does, ``ApplyQueues.connection``)."""
        self.databases = databases
        self.read = read
        self.prepare = prepare
        self._logs: dict[str, _Log] = {}
        self._names: list[str] = []
        self._names_version = -1
        self.loads = 0  # entries loaded from SQL (tests: the answers do not query per call)
        # db -> [(transactions not applied yet, called once they all are)] (``when_applied``)
        self._waiters: dict[str, list[tuple[set[int], Callable[[], None]]]] = {}

    def names(self) -> list[str]:
        """This node's databases, sorted (a glob of the data directory only after the catalogue changed)."""
        version = self.databases.catalog_version
        if version != self._names_version:
            self._names = self.databases.names()
            self._names_version = version
        return self._names

    def _log(self, db: str) -> _Log:
        generation = self.databases.generation(db)
        entry = self._logs.get(db)
        if entry is not None and entry.generation == generation:
            return entry
        self.prepare(db)
        conn = self.read(db)
        log_id = rt.log_id(conn)
        self.loads += 1
        if entry is not None and entry.log_id == log_id:
            # the same log (a DDL, not another file: a file swapped in has a log id of its own): keep the
            # window and add what was written since, so askers can still be answered from memory
            since = rt.log_after(conn, entry.last, KEEP)
            if len(since) < KEEP:
                for seq, txn in since:
                    entry.add(seq, txn)
                entry.generation = generation
                return entry
        entry = self._logs[db] = _Log(generation, log_id, rt.last_seq(conn))
        return entry

    def position(self, db: str) -> tuple[str, int]:
        """(log id, last seq) of ``db``'s commit log."""
        entry = self._log(db)
        return entry.log_id, entry.last

    def tail(self, db: str, log_id: str, after: int) -> list[tuple[int, int]] | None:
        """(seq, txn id) of every entry after ``after`` in log ``log_id``, or None when this node cannot
        say from memory (another log, entries before the remembered window, or more than ``TAIL_LIMIT``)."""
        entry = self._log(db)
        if log_id != entry.log_id or after < entry.base or entry.last - after > TAIL_LIMIT:
            return None
        if after >= entry.last:
            return []
        out: list[tuple[int, int]] = []
        for seq, txn in reversed(entry.recent):
            if seq <= after:
                break
            out.append((seq, txn))
        out.reverse()
        return out

    def applied(self, db: str, txn_ids: Sequence[int]) -> set[int]:
        """The ones among ``txn_ids`` applied here: recent ones from memory, the rest with one query."""
        known = self._log(db).txns
        found = {t for t in txn_ids if t in known}
        rest = [t for t in txn_ids if t not in found]
        if rest:
            found |= rt.applied_of(self.read(db), rest)
        return found

    def when_applied(self, db: str, txn_ids: Sequence[int], done: Callable[[], None]) -> Callable[[], None]:
        """Call ``done`` (from the apply path, right after the COMMIT) once every one of ``txn_ids`` is
        applied here — at once if they are. Returns a function that forgets the wait (a caller that
        stopped waiting)."""
        rest = set(txn_ids) - self.applied(db, txn_ids)
        if not rest:
            done()
            return _nothing
        waiter = (rest, done)
        self._waiters.setdefault(db, []).append(waiter)

        def forget() -> None:
            waiting = self._waiters.get(db)
            if waiting is not None and waiter in waiting:
                waiting.remove(waiter)

        return forget

    def _wake(self, db: str, entry: _Log) -> None:
        waiting = self._waiters.get(db)
        if not waiting:
            return
        ready = []
        for waiter in waiting:
            waiter[0].difference_update([t for t in waiter[0] if t in entry.txns])
            if not waiter[0]:
                ready.append(waiter)
        for waiter in ready:
            waiting.remove(waiter)
            waiter[1]()

    def note(self, db: str, items: Sequence[Any], outcomes: Sequence[Any]) -> None:
        """The apply path committed ``items`` to ``db`` (``ApplyQueues.on_applied``): remember the
        commit-log rows it wrote. A file whose generation moved meanwhile is loaded again on next use."""
        entry = self._logs.get(db)
        if entry is None:
            return
        if entry.generation != self.databases.generation(db):
            entry = self._log(db)  # a DDL among them: read what was written since from SQL (once per DDL)
        else:
            for item, outcome in zip(items, outcomes, strict=True):
                seq = getattr(outcome, "seq", 0)
                if seq and getattr(outcome, "applied", False):
                    entry.add(seq, item.txn_id)
        self._wake(db, entry)

    def forget(self, db: str) -> None:
        self._logs.pop(db, None)
