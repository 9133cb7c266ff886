"""The engine's half of a replicated write: capture on the session's connection, roll back, replicate.

Why roll back instead of committing locally and replicating afterwards (upstream's model, kept after
weighing the other): the session's SQLite transaction is a *dry run*. Its preupdate hook yields the row
images; then the SQLite transaction is rolled back and the images go through 2PC; every node — this one
included — applies them through the replication apply queue. So

* no SQLite write lock is held across network round trips (two nodes coordinating at once can never
  wait on each other's locks: a COMMIT ack needs the participant's apply, which needs its lock);
* a write that loses the 2PC (conflict, no quorum) leaves no trace to undo;
* every node's copy is written by the same code path, with row versions and the applied marker.

The price — the statement's SQLite work runs twice on this node — is small next to the Python cost of
the protocol and the 2PC.

Inside an interactive transaction (BEGIN … COMMIT) statements run eagerly, so reads see the
transaction's own writes; each statement's net changes are kept (``PendingTransaction``) and the whole
transaction, merged per row key, replicates at COMMIT. The transaction's SQLite transaction (its *view*,
own writes in place, holding the node's writer lock) stays open between statements only until another
writer has waited ``storage.write_lock.DEFAULT_PATIENCE``; then it is rolled back and rebuilt from the
kept changes at the next statement. Measured on the 3-node benchmark (16 clients, 10 statements per
transaction): holding the lock for the whole transaction gave the same throughput (~3,300 ops/s) but a
statement p99 of 76-92 ms, and an idle client stalled every other writer and the applying of replicated
transactions on its node; rolling back after every statement cost 40 % of the throughput. A failed
statement and ROLLBACK TO SAVEPOINT drop their changes (and the view).

**Row versions seen by the dry run** travel with the changes: the version of each changed key read in the
same SQLite transaction as the dry run. A participant that holds a newer version refuses the PREPARE
(the images were computed from overwritten data), which turns lost updates into retryable 1213s.

Consistency level per statement or transaction: the hint comment ``/*+ MARMOT_CONSISTENCY(ALL) */``
(ONE, TWO, THREE, QUORUM or ALL) anywhere in a write statement, or ``SET marmot_write_consistency =
'ONE'`` for the session; otherwise ``[replication] default_write_consistency``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import apsw

from marmot.engine import errors
from marmot.engine.capture import CaptureError, ChangeCapture
from marmot.engine.errors import MySQLError
from marmot.engine.locking import retry_busy
from marmot.engine.transaction_state import PendingTransaction, TransactionState
from marmot.replication.apply.rows import ApplyError, apply_changes
from marmot.replication.errors import ReplicationError
from marmot.storage import replication_tables as rt
from marmot.storage.rowkey import SchemaCache
from marmot.storage.schema_fingerprint import all_fingerprints, changed_tables
from marmot.storage.write_lock import LockTimeout

if TYPE_CHECKING:
    from marmot.engine.context import EngineContext
    from marmot.hlc import Timestamp
    from marmot.replication.service import Replication

_HINT = re.compile(
    r"MARMOT_CONSISTENCY\s*\(\s*['\"]?(ONE|TWO|THREE|QUORUM|ALL|LOCAL_ONE)['\"]?\s*\)", re.IGNORECASE
)
_TEMP_DDL = re.compile(r"^\s*CREATE\s+TEMP(?:ORARY)?\s", re.IGNORECASE)
_DROP_TABLE = re.compile(r"^\s*DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?(.+)$", re.IGNORECASE | re.DOTALL)
_STATEMENT_ERRORS = errors.STATEMENT_ERRORS
LEVELS = ("ONE", "TWO", "THREE", "QUORUM", "ALL", "LOCAL_ONE")


def _changed_tables(rep: Replication, db: str, planned: dict[str, bytes | None]) -> list[str]:
    """The tables among ``planned`` whose schema is no longer the one recorded."""
    here = rep.table_fingerprints(db, frozenset(planned))
    return sorted(t for t, fp in planned.items() if here.get(t) != fp)


def consistency_hint(sql: str) -> str | None:
    """The level named by a ``MARMOT_CONSISTENCY(...)`` hint comment in ``sql``, if any."""
    if "/*" not in sql:
        return None
    m = _HINT.search(sql)
    return m.group(1).upper() if m else None


def replication_error(err: ReplicationError) -> MySQLError:
    return MySQLError(err.code, err.sqlstate, err.message)


class ReplicatedWriter:
    """Statement-scoped capture, the open transaction's view and kept changes (in ``TransactionState``),
    and the hand-over to the replication layer, for one session."""

    def __init__(
        self, ctx: EngineContext, state: TransactionState, session_level: Callable[[], str | None]
    ) -> None:
        self.ctx = ctx
        self.state = state
        self._session_level = session_level  # SET marmot_write_consistency, if set
        self._captures: dict[apsw.Connection, ChangeCapture] = {}  # one capture per connection
        self._schemas: dict[str, SchemaCache] = {}  # per database
        self._view: apsw.Connection | None = None  # the connection holding this transaction's view, if open
        self.view_db = ""
        # this session created TEMPORARY tables: writes check whether they only touch those (never replicated)
        self.made_temp_tables = False
        # @@marmot_last_commit_ts: of this session's latest replicated commit, so a client (the fault-test
        # checker) can order its writes exactly as last-writer-wins does; formatted only when read
        self.last_commit_ts: Timestamp | None = None
        # the database whose commit log holds that commit (None: CREATE/DROP DATABASE, logged in none),
        # so a replica that forwarded it knows whether it will ever apply it (replica/forward_writes.py)
        self.last_commit_db: str | None = None

    @property
    def replication(self) -> Replication | None:
        return self.ctx.replication

    def _write_level(self) -> str | None:
        if self.state.level:
            return self.state.level
        return self._session_level()

    def _schema(self, db: str) -> SchemaCache:
        schema = self._schemas.get(db)
        if schema is None:
            schema = self._schemas[db] = SchemaCache()
        schema.check_generation(self.ctx.databases.generation(db))
        return schema

    async def lock_for_write(self, conn: apsw.Connection, db: str) -> None:
        """This node's writer lock of ``db`` (``storage/write_lock.py``: FIFO, idle holders preempted),
        then SQLite's. ``unlock`` gives both back."""
        lock = self.ctx.databases.write_lock(db)
        try:
            await lock.acquire(self.ctx.lock_wait_timeout_s)
        except LockTimeout:
            raise errors.lock_wait_timeout() from None
        try:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except apsw.BusyError:  # another process writes the file
                await retry_busy(lambda: conn.execute("BEGIN IMMEDIATE"), self.ctx.lock_wait_timeout_s)
        except BaseException:
            lock.release()
            raise

    def unlock(self, conn: apsw.Connection, db: str) -> None:
        try:
            if not conn.get_autocommit():
                conn.execute("ROLLBACK")
        finally:
            self.ctx.databases.write_lock(db).release()

    # The open transaction's *view*: its SQLite transaction with its own writes in place, holding the
    # node's writer lock. It stays open between statements (nothing is re-done per statement) until
    # COMMIT/ROLLBACK, a failed statement, or another writer preempts it while it waits for its client;
    # then the next statement puts the writes back (``enter_view``).

    async def enter_view(self, conn: apsw.Connection, db: str) -> None:
        """Make ``conn`` hold the writer lock with this transaction's own earlier writes in place."""
        if self._view is conn:
            self.ctx.databases.write_lock(db).set_busy()
            return
        self.close_view()
        await self.lock_for_write(conn, db)
        pending = self.state.replicated
        if pending is not None and pending.statements:
            try:
                apply_changes(conn, pending.merged(), self._schema(db))
            except (apsw.Error, ApplyError) as e:
                self.unlock(conn, db)
                raise MySQLError(
                    1105,
                    "HY000",
                    f"this transaction's earlier writes no longer fit the table (schema changed?): {e}",
                ) from e
        self._view = conn

    def reads_in_view(self, db: str | None) -> bool:
        """Must a read of ``db`` run in the view (this transaction wrote to ``db``: its reads see its own
        writes)? Then ``enter_view_to_read`` before the read and ``park_view`` after it."""
        pending = self.state.replicated
        return pending is not None and pending.db == db and bool(pending.statements)

    async def enter_view_to_read(self, conn: apsw.Connection, db: str) -> None:
        await self.enter_view(conn, db)
        self.view_db = db

    def park_view(self) -> None:
        """Between statements of a transaction: keep the view, but let other writers preempt it."""
        if self._view is not None and self.state.replicated is not None:
            self.ctx.databases.write_lock(self.state.replicated.db).set_idle(self._preempt_view)

    def _preempt_view(self) -> None:
        view, self._view = self._view, None
        if view is not None and self.state.replicated is not None:
            self.unlock(view, self.state.replicated.db)

    def close_view(self) -> None:
        """Roll the view back and release the lock (COMMIT, ROLLBACK, a failed statement)."""
        view, self._view = self._view, None
        if view is not None:
            db = self.state.replicated.db if self.state.replicated is not None else self.view_db
            self.unlock(view, db)

    async def run_captured(
        self,
        conn: apsw.Connection,
        db: str,
        body: Callable[[], int],
        observer: Callable[[apsw.PreUpdate], None] | None,
        errors_of: Callable[[Exception], MySQLError],
    ) -> int:
        """Run one write statement in the view with the hook on; keep its net changes and the row
        versions it saw. In autocommit mode the view is rolled back at once (the 2PC follows)."""
        state = self.state
        pending = state.replicated
        if pending is not None and pending.db != db:
            raise MySQLError(
                1105,
                "HY000",
                "A Marmot transaction can write to one database only "
                f"(this one already wrote to '{pending.db}')",
            )
        if not state.autocommit:
            state.in_transaction = True
        await self.enter_view(conn, db)
        self.view_db = db
        rep = self.replication
        if (
            rep is not None
            and pending is not None
            and pending.table_schemas
            and (changed := _changed_tables(rep, db, pending.table_schemas))
        ):
            # A DDL on a table this transaction wrote landed between its statements: its earlier images
            # were computed against the old schema. MySQL would have blocked the DDL; here the
            # transaction loses. (DDL on other tables leaves it alone.)
            self.close_view()
            state.replicated = None
            state.in_transaction = False
            raise MySQLError(
                1213,
                "40001",
                "Deadlock found when trying to get lock; try restarting "
                f"transaction (the schema of {', '.join(changed)} in '{db}' "
                "changed during it)",
            )
        ok = False
        try:
            cap = self._captures.get(conn)
            if cap is None:
                cap = self._captures[conn] = ChangeCapture(self._schema(db))
            cap.schema = self._schema(db)
            cap.reset()
            cap.start(conn)
            try:
                if observer is not None:
                    cap.set_observer(observer)
                try:
                    affected = body()
                except _STATEMENT_ERRORS as err:
                    raise errors_of(err) from err
                try:
                    changes = cap.changes()
                except CaptureError as e:
                    raise MySQLError(1105, "HY000", f"this write cannot be replicated: {e}") from e
            finally:
                cap.stop()
                cap.reset()
            if pending is None:
                pending = state.replicated = PendingTransaction(db)
                pending.schema_version = rep.schema_version(db) if rep is not None else None
            if rep is not None and changes:
                known = pending.table_schemas
                if new_tables := frozenset(t.lower() for t in {c.table for c in changes}).difference(known):
                    known.update(rep.table_fingerprints(db, new_tables))
            new_keys = [c.key for c in changes if c.key not in pending.base]
            if pending.epoch is None:
                pending.epoch = rep.apply_epoch(db) if rep is not None else None
            elif rep is not None and pending.epoch != rep.apply_epoch(db):
                pending.epoch = -1  # something was applied between this transaction's statements
            if new_keys:
                seen = rt.row_versions(conn, new_keys)
                for k in new_keys:
                    v = seen.get(k)
                    pending.base[k] = list(v) if v is not None else None
            pending.add(changes)
            ok = True
        finally:
            if ok and state.in_transaction:
                self.park_view()
            else:
                # autocommit (2PC next), or a failed statement: SQLite may hold part of its effects,
                # so the view goes; the next statement rebuilds it from the changes kept so far
                view, self._view = self._view, None
                if view is not None:
                    self.unlock(view, db)
        return affected

    def savepoint_mark(self) -> int:
        pending = self.state.replicated
        return len(pending.statements) if pending is not None else 0

    def rollback_to_mark(self, mark: int) -> None:
        pending = self.state.replicated
        if pending is not None and mark < len(pending.statements):
            self.close_view()  # it holds the statements being dropped
            pending.truncate(mark)

    async def replicate_transaction(self) -> None:
        """COMMIT: replicate the open transaction's net changes (nothing to do when it changed nothing)."""
        self.close_view()
        pending, self.state.replicated = self.state.replicated, None
        level = self._write_level()
        self.state.level = None
        if pending is None:
            return
        changes = pending.merged()
        if not changes:
            return
        rep = self.replication
        assert rep is not None
        base = [pending.base.get(c.key) for c in changes]
        try:
            sv = (
                pending.schema_version
                if pending.schema_version is not None
                else rep.schema_version(pending.db)
            )
            result = await rep.commit_changes(
                pending.db,
                changes,
                base,
                sv,
                level,
                epoch=pending.epoch if pending.epoch is not None and pending.epoch >= 0 else None,
                table_schemas=pending.table_schemas,
            )
        except ReplicationError as e:
            raise replication_error(e) from e
        self.last_commit_ts, self.last_commit_db = result.commit_ts, pending.db

    @staticmethod
    def is_local_ddl(conn: apsw.Connection, sqls: list[str]) -> bool:
        """Temporary tables belong to the session: never replicated."""
        if all(_TEMP_DDL.match(s) for s in sqls):
            return True
        if len(sqls) == 1 and (m := _DROP_TABLE.match(sqls[0])) is not None:
            names = [n.strip().strip('"`') for n in m.group(1).split(",")]
            temp = {
                r[0].lower() for r in conn.execute("SELECT name FROM temp.sqlite_schema WHERE type = 'table'")
            }
            return all(n.lower() in temp for n in names)
        return False

    async def replicate_ddl(
        self, conn: apsw.Connection, db: str, sqls: list[str], validate: Callable[[], None]
    ) -> None:
        """DDL: validate it in a rolled-back SQLite transaction here (so errors reach the client before
        anything is sent), then replicate the SQLite statements; every node runs them idempotently.
        The caller holds the lock (``lock_for_write``); it is given back here."""
        rep = self.replication
        assert rep is not None
        try:
            level = self._write_level()
            self.state.level = None
            schema_version = rep.schema_version(db)
            before = all_fingerprints(conn)
            validate()
            tables = changed_tables(before, all_fingerprints(conn))  # its intents cover only these
        finally:
            self.unlock(conn, db)
        try:
            result = await rep.commit_ddl(db, sqls, schema_version, level, tables=tables)
        except ReplicationError as e:
            raise replication_error(e) from e
        self.last_commit_ts, self.last_commit_db = result.commit_ts, db

    async def replicate_database_op(self, op: str, name: str) -> None:
        """CREATE / DROP DATABASE, through 2PC."""
        rep = self.replication
        assert rep is not None
        level = self._write_level()
        self.state.level = None
        try:
            result = await rep.database_op(op, name, level)
        except ReplicationError as e:
            raise replication_error(e) from e
        self.last_commit_ts, self.last_commit_db = result.commit_ts, None
