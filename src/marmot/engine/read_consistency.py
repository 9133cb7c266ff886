"""The read level of a session's statements, and the read barrier run before a read that needs one.

Why its own part: reads are answered from this node's copy; a read at ONE, TWO, THREE, QUORUM or ALL
first catches this node up with enough peers (``replication/catchup/read_barrier.py``, which also says
why that makes a QUORUM read see every write acknowledged at QUORUM). The engine only decides *whether*
a statement needs a barrier, at which level, and for which databases:

- level: a ``/*+ MARMOT_CONSISTENCY(QUORUM) */`` hint in the statement (upstream has one hint for reads
  and writes), else ``SET marmot_read_consistency`` (session, or ``SET GLOBAL`` for the node), else
  ``[replication] default_read_consistency`` (LOCAL_ONE: no barrier);
- databases: the ones the read names (its current database when a table is unqualified, and every
  ``otherdb.table``); INFORMATION_SCHEMA and SHOW of the catalogue: every database. A read that names no
  table (``SELECT 1``, ``SELECT @@x``) needs none;
- inside BEGIN … COMMIT (or with autocommit off) the barrier runs once, before the transaction's first
  read that needs one; later reads of the transaction run locally.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from marmot.engine.errors import MySQLError
from marmot.engine.replicated_write import consistency_hint
from marmot.replication.catchup.read_barrier import READ_LEVELS
from marmot.replication.errors import ReplicationError

if TYPE_CHECKING:
    from marmot.engine.session import Session

VARIABLE = "marmot_read_consistency"
# SHOW statements that describe databases (a barrier first); SHOW VARIABLES, WARNINGS … need none
_CATALOGUE_SHOWS = frozenset(
    {"DATABASES", "SCHEMAS", "TABLES", "COLUMNS", "FIELDS", "CREATE", "INDEX", "INDEXES", "KEYS", "TABLE"}
)


def check_level(value: object) -> str:
    """The level ``SET marmot_read_consistency = value`` sets ("" for DEFAULT); 1231 otherwise."""
    level = str(value or "").upper()
    if level in ("", "DEFAULT"):
        return ""
    if level not in READ_LEVELS:
        raise MySQLError(
            1231,
            "42000",
            f"Variable '{VARIABLE}' can't be set to the value of '{value}' (use one of {', '.join(READ_LEVELS)})",
        )
    return level


def show_needs_barrier(words: list[str]) -> bool:
    """Whether a SHOW/DESCRIBE (its leading words) reads the catalogue of a database."""
    if not words or words[0] in ("DESCRIBE", "DESC", "EXPLAIN"):
        return True
    return any(w in _CATALOGUE_SHOWS for w in words[1:4])


class ReadConsistency:
    """One session's read level and read barriers."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def level(self, sql: str) -> str:
        """The statement's read level: hint, else the session's or node's variable, else the config."""
        s = self.session
        hinted = consistency_hint(sql)
        if hinted is not None:
            return hinted
        value = s.variables.get(VARIABLE) or s.ctx.global_variables.get(VARIABLE)
        if value:
            return str(value).upper()
        rep = s.ctx.replication
        return rep.default_read_level if rep is not None else "LOCAL_ONE"

    def needed(self, sql: str) -> str | None:
        """The level of a barrier this read needs now, or None (LOCAL_ONE, no replication, or the open
        transaction already had its barrier)."""
        s = self.session
        if s.ctx.replication is None:
            return None
        if s.txn.read_barrier_done and (s.txn.in_transaction or not s.txn.autocommit):
            return None
        level = self.level(sql)
        return None if level == "LOCAL_ONE" else level

    async def before_read(self, sql: str, dbs: Collection[str] | None) -> None:
        """Run the barrier a read of ``dbs`` (None: every database) needs, if any; 1105 when too few
        nodes answer within ``[replication] read_timeout_ms``."""
        level = self.needed(sql)
        if level is None:
            return
        s = self.session
        assert s.ctx.replication is not None
        try:
            await s.ctx.replication.read_barrier(dbs, level)
        except ReplicationError as err:
            raise MySQLError(err.code, err.sqlstate, err.message) from err
        if s.txn.in_transaction or not s.txn.autocommit:
            s.txn.read_barrier_done = True  # the level applies at the transaction's first read
