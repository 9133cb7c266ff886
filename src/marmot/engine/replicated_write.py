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

Inside an interactive transaction (BEGIN … COMMIT) statements run eagerly on the pinned connection, so
reads see the transaction's own writes; the capture accumulates (merged per row key) and the whole
transaction replicates at COMMIT. Failed statements and ROLLBACK TO SAVEPOINT drop their captured rows
(``ChangeCapture.mark``/``rollback_to``).

**Row versions seen by the dry run** travel with the changes: the version of each changed key read in the
same SQLite transaction as the dry run. A participant that holds a newer version refuses the PREPARE
(the images were computed from overwritten data), which turns lost updates into retryable 1213s.

Consistency level per statement or transaction: the hint comment ``/*+ MARMOT_CONSISTENCY(ALL) */``
(ONE, TWO, THREE, QUORUM or ALL) anywhere in a write statement, or ``SET marmot_write_consistency =
'ONE'`` for the session; otherwise ``[replication] default_write_consistency``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import apsw

from marmot.engine.capture import CaptureError, ChangeCapture
from marmot.engine.errors import MySQLError
from marmot.replication.errors import ReplicationError
from marmot.storage import replication_tables as rt
from marmot.storage.rowkey import SchemaCache

if TYPE_CHECKING:
    from marmot.replication.service import Replication

_HINT = re.compile(r"MARMOT_CONSISTENCY\s*\(\s*['\"]?(ONE|TWO|THREE|QUORUM|ALL|LOCAL_ONE)['\"]?\s*\)", re.IGNORECASE)
_TEMP_DDL = re.compile(r"^\s*CREATE\s+TEMP(?:ORARY)?\s", re.IGNORECASE)
_DROP_TABLE = re.compile(r"^\s*DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?(.+)$", re.IGNORECASE | re.DOTALL)
LEVELS = ("ONE", "TWO", "THREE", "QUORUM", "ALL", "LOCAL_ONE")


def consistency_hint(sql: str) -> str | None:
    """The level named by a ``MARMOT_CONSISTENCY(...)`` hint comment in ``sql``, if any."""
    if "/*" not in sql:
        return None
    m = _HINT.search(sql)
    return m.group(1).upper() if m else None


def replication_error(err: ReplicationError) -> MySQLError:
    return MySQLError(err.code, err.sqlstate, err.message)


class ReplicatedWrites:
    """Mixin for ``Session``: the capture lifecycle and the hand-over to the replication layer."""

    ctx: Any
    database: str | None
    variables: dict[str, object]
    _txn_level: str | None
    _capture: ChangeCapture | None
    _captures: dict[apsw.Connection, ChangeCapture]
    _schemas: dict[str, SchemaCache]

    @property
    def replication(self) -> Replication | None:
        return self.ctx.replication

    def _write_level(self) -> str | None:
        if self._txn_level:
            return self._txn_level
        v = self.variables.get("marmot_write_consistency")
        return str(v).upper() if v else None

    def _start_capture(self, conn: apsw.Connection, db: str) -> None:
        """At the first write of a transaction: the hook goes on the pinned connection."""
        cap = self._captures.get(conn)
        if cap is None:
            schema = self._schemas.get(db)
            if schema is None:
                schema = self._schemas[db] = SchemaCache()
            cap = self._captures[conn] = ChangeCapture(schema)
        cap.reset()
        cap.start(conn, self.ctx.databases.generation(db))
        self._capture = cap

    def _stop_capture(self) -> None:
        cap = self._capture
        if cap is not None:
            cap.stop()
            cap.reset()
            self._capture = None

    async def _replicate_transaction(self, conn: apsw.Connection, db: str) -> None:
        """COMMIT of a captured transaction: collect its net row changes and the versions its reads saw,
        roll the dry run back, and replicate. Raises the MySQL error the client should get."""
        rep = self.replication
        cap = self._capture
        assert rep is not None and cap is not None
        level = self._write_level()
        self._txn_level = None
        try:
            try:
                changes = cap.changes()
            except CaptureError as e:
                raise MySQLError(1105, "HY000", f"this write cannot be replicated: {e}") from e
            base: list[list[int] | None] = []
            if changes:
                seen = rt.row_versions(conn, [c.key for c in changes])
                base = [list(v) if (v := seen.get(c.key)) is not None else None for c in changes]
            schema_version = rep.schema_version(db)
        finally:
            self._stop_capture()
            if not conn.get_autocommit():
                conn.execute("ROLLBACK")
        if not changes:
            return
        try:
            await rep.commit_changes(db, changes, base, schema_version, level)
        except ReplicationError as e:
            raise replication_error(e) from e

    def _is_local_ddl(self, conn: apsw.Connection, sqls: list[str]) -> bool:
        """Temporary tables belong to the session: never replicated."""
        if all(_TEMP_DDL.match(s) for s in sqls):
            return True
        if len(sqls) == 1 and (m := _DROP_TABLE.match(sqls[0])) is not None:
            names = [n.strip().strip('"`') for n in m.group(1).split(",")]
            temp = {r[0].lower() for r in conn.execute("SELECT name FROM temp.sqlite_schema WHERE type = 'table'")}
            return all(n.lower() in temp for n in names)
        return False

    async def _replicate_ddl(self, conn: apsw.Connection, db: str, sqls: list[str], validate: Any) -> None:
        """DDL: validate it in a rolled-back SQLite transaction here (so errors reach the client before
        anything is sent), then replicate the SQLite statements; every node runs them idempotently."""
        rep = self.replication
        assert rep is not None
        level = self._write_level()
        self._txn_level = None
        schema_version = rep.schema_version(db)
        try:
            validate()
        finally:
            if not conn.get_autocommit():
                conn.execute("ROLLBACK")
        try:
            await rep.commit_ddl(db, sqls, schema_version, level)
        except ReplicationError as e:
            raise replication_error(e) from e

    async def _replicate_database_op(self, op: str, name: str) -> None:
        rep = self.replication
        assert rep is not None
        level = self._write_level()
        self._txn_level = None
        try:
            await rep.database_op(op, name, level)
        except ReplicationError as e:
            raise replication_error(e) from e

