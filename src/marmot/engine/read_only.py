"""What a read-only node (a replica, ``src/marmot/replica/``) does with a statement that would write.

Why one module: a replica must refuse every write and DDL the same way, and the write-forwarding work
(issue #14 point 6) replaces "refuse" with "forward to the cluster" in exactly one place. That place is
``StatementRouter.route``: when the engine context is read-only, every statement ``writes`` says changes
data or schema goes to ``EngineContext.write_gate`` instead of its handler; with no gate set it gets
``read_only_error`` (MySQL's 1290). The plan runner and the raw-SQL path keep a second check with the
same error for statements whose leading words look like reads but write (``WITH ... DELETE``).
"""

from __future__ import annotations

from marmot.engine.errors import MySQLError
from marmot.sql import lexer

READ_ONLY_MESSAGE = (
    "The MySQL server is running with the --read-only option so it cannot execute this statement"
)

# Leading keywords of statements that change rows or schema (database DDL and LOAD DATA are commands of
# their own, see ``writes``).
WRITE_KEYWORDS = frozenset(
    {"INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER", "TRUNCATE", "RENAME"}
)


class ReadOnlyRefusal(MySQLError):
    """1290 for a write on a read-only node. Its own type so that ``Session.execute`` can hand a write
    that only the second check caught (``WITH ... DELETE``) to write forwarding (``engine/forwarding.py``)."""

    def __init__(self) -> None:
        super().__init__(1290, "HY000", READ_ONLY_MESSAGE)


def read_only_error() -> MySQLError:
    """MySQL's answer to a write on a ``--read-only`` server: 1290, SQLSTATE HY000."""
    return ReadOnlyRefusal()


def writes(command_name: str, norm: lexer.Normalized) -> bool:
    """Whether a statement routed as ``command_name`` (a ``statement_router.Command`` value) writes."""
    if command_name in ("database_ddl", "load_data"):
        return True
    return command_name in ("plan", "raw") and norm.keyword in WRITE_KEYWORDS
