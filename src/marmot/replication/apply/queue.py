"""One apply worker per database: committed transactions are applied in batches, in arrival order.

Why batched: a SQLite commit (WAL append, and the lock round trip) costs more than applying a few rows.
Whatever queued while the previous batch ran is applied in the next one, in one write transaction
(``[batch_commit] max_batch_size`` at most) — so batches grow exactly when load does, and a lone
transaction is not held back waiting for company.

Why its own connection: the worker never shares a connection with client sessions (their open
transactions and capture hooks are theirs). Triggers and foreign-key actions are off on it for good:
their effects are part of the captured changes (see ``rows.apply_changes``).

The write lock is taken with asyncio sleeps between attempts (``busy_timeout`` is 0 on every
connection), so an interactive client transaction holding the lock delays applies on this node without
blocking the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TypeVar

import apsw

from marmot.replication.apply.applier import ApplyItem, ApplyOutcome, apply_items
from marmot.storage import replication_tables as rt
from marmot.storage.databases import DatabaseManager
from marmot.storage.rowkey import SchemaCache

log = logging.getLogger("marmot.replication.apply")
T = TypeVar("T")
_FIRST_SLEEP = 0.0005
_MAX_SLEEP = 0.01


class ApplyQueues:
    """``await apply(db, item)`` returns once the item is durably applied (or raises why not)."""

    def __init__(
        self,
        databases: DatabaseManager,
        max_batch: int = 128,
        on_applied: Callable[[str, list[ApplyItem], list[ApplyOutcome | Exception]], None] | None = None,
    ) -> None:
        self.databases = databases
        self.max_batch = max_batch
        self.on_applied = on_applied
        self._queues: dict[str, asyncio.Queue[tuple[ApplyItem, asyncio.Future[ApplyOutcome]]]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._conns: dict[str, apsw.Connection] = {}
        self.schemas: dict[str, SchemaCache] = {}
        self._inline: set[str] = set()  # databases with an inline apply running
        self._epochs: dict[str, int] = {}  # db -> number of apply batches committed (see ``epoch``)

    async def apply(self, db: str, item: ApplyItem) -> ApplyOutcome:
        q = self._queues.get(db)
        if q is None:
            q = self._queues[db] = asyncio.Queue()
            self._workers[db] = asyncio.get_running_loop().create_task(self._work(db, q))
        if q.empty() and db not in self._inline and not self.databases.write_lock(db).locked():
            # Nothing queued and the lock is free: apply right here, sparing the hand-over to the worker
            # and back (two task switches per write, a fifth of a lone writer's CPU). Under load items
            # queue up and the worker batches them.
            self._inline.add(db)
            try:
                outcome = (await self._apply_batch(db, [item]))[0]
            finally:
                self._inline.discard(db)
            if isinstance(outcome, Exception):
                raise outcome
            return outcome
        fut: asyncio.Future[ApplyOutcome] = asyncio.get_running_loop().create_future()
        q.put_nowait((item, fut))
        return await fut

    def epoch(self, db: str) -> int:
        """Changes whenever an apply batch commits to ``db``: a row version read at epoch ``e`` is still
        current while ``epoch(db) == e`` (only the applier writes row versions)."""
        return self._epochs.get(db, 0)

    def connection(self, db: str) -> apsw.Connection:
        conn = self._conns.get(db)
        if conn is None:
            conn = self.databases.open(db)
            conn.execute("PRAGMA foreign_keys=OFF").fetchall()
            conn.config(apsw.SQLITE_DBCONFIG_ENABLE_TRIGGER, 0)
            rt.ensure_tables(conn)
            self._conns[db] = conn
        return conn

    def forget(self, db: str) -> None:
        """The database was dropped: stop its worker and close its connection."""
        task = self._workers.pop(db, None)
        if task is not None:
            task.cancel()
        q = self._queues.pop(db, None)
        while q is not None and not q.empty():
            _item, fut = q.get_nowait()
            if not fut.done():
                fut.set_exception(RuntimeError(f"database {db} was dropped"))
        conn = self._conns.pop(db, None)
        if conn is not None:
            with contextlib.suppress(apsw.Error):
                conn.close()
        self.schemas.pop(db, None)

    async def close(self) -> None:
        tasks = list(self._workers.values())
        for db in list(self._workers):
            self.forget(db)
        for task in tasks:  # let them finish cancelling before their connections' files are closed
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _work(self, db: str, q: asyncio.Queue[tuple[ApplyItem, asyncio.Future[ApplyOutcome]]]) -> None:
        while True:
            batch = [await q.get()]
            while len(batch) < self.max_batch and not q.empty():
                batch.append(q.get_nowait())
            try:
                outcomes = await self._apply_batch(db, [item for item, _ in batch])
            except asyncio.CancelledError:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(RuntimeError("apply worker stopped"))
                raise
            except Exception as e:  # the whole batch failed (I/O error, database gone): tell every waiter
                log.error("applying %d transaction(s) to %s failed: %s", len(batch), db, e)
                outcomes = [e] * len(batch)
            for (_, fut), outcome in zip(batch, outcomes, strict=True):
                if fut.done():
                    continue
                if isinstance(outcome, Exception):
                    fut.set_exception(outcome)
                else:
                    fut.set_result(outcome)

    def schema(self, db: str) -> SchemaCache:
        """The apply connection's schema cache of ``db``, current with its schema generation."""
        schema = self.schemas.get(db)
        if schema is None:
            schema = self.schemas[db] = SchemaCache()
        schema.check_generation(self.databases.generation(db))
        return schema

    async def write(self, db: str, work: Callable[[apsw.Connection], T]) -> T:
        """Run ``work(conn)`` in one write transaction on ``db``'s apply connection, under the writer
        lock's priority lane (applies, repairs and GC are all replication's writes); commit, or roll back
        if it raises. Advances the apply epoch: row versions may have changed."""
        conn = self.connection(db)
        lock = self.databases.write_lock(db)
        await lock.acquire(timeout=float("inf"), priority=True)
        try:
            delay = _FIRST_SLEEP
            while True:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    break
                except apsw.BusyError:  # another process writes this file
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, _MAX_SLEEP)
            try:
                result = work(conn)
                self._epochs[db] = self._epochs.get(db, 0) + 1
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(apsw.Error):
                    conn.execute("ROLLBACK")
                raise
        finally:
            lock.release()
        return result

    async def _apply_batch(self, db: str, items: list[ApplyItem]) -> list[ApplyOutcome | Exception]:
        schema = self.schema(db)
        outcomes = await self.write(
            db, lambda conn: apply_items(conn, schema, items, lambda: self.databases.bump_generation(db))
        )
        for item, outcome in zip(items, outcomes, strict=True):
            if isinstance(outcome, Exception):
                log.error("transaction %d could not be applied to %s: %s", item.txn_id, db, outcome)
        if self.on_applied is not None:
            self.on_applied(db, items, outcomes)
        schema.generation = self.databases.generation(db)
        return outcomes
