"""``SET marmot_read_after = '<token>'``: read-your-writes across nodes for a client that carries a token.

A client reads ``@@marmot_last_commit_ts`` after a write (``wall_ns.logical.node_id``, the commit
timestamp of its session's latest replicated transaction) and hands it to a session on any node. The SET
waits until that node has applied the transaction (``Replication.wait_applied``, ``replication/causal.py``),
at most ``[replication] read_timeout_ms``, so every statement after it sees that transaction's rows;
when the deadline passes the SET fails with 1105 and the client decides (retry, or read elsewhere). An
empty value or DEFAULT waits for nothing. The wait is local: no other node is asked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from marmot.engine.errors import MySQLError
from marmot.hlc import Timestamp

if TYPE_CHECKING:
    from marmot.replication.service import Replication


def parse_token(value: object) -> Timestamp | None:
    """The commit timestamp a token names; None for an empty token (or DEFAULT); 1231 when malformed."""
    text = "" if value is None else str(value).strip()
    if text.upper() in ("", "DEFAULT"):
        return None
    parts = text.split(".")
    if len(parts) == 3 and all(p.isdigit() for p in parts):
        wall, logical, node = (int(p) for p in parts)
        if node > 0:
            return Timestamp(wall, logical, node)
    raise MySQLError(
        1231,
        "42000",
        f"Variable 'marmot_read_after' can't be set to the value of '{text}' "
        "(expected a @@marmot_last_commit_ts token: wall_ns.logical.node_id)",
    )


async def read_after(replication: Replication | None, value: object) -> None:
    """Wait until this node has applied the transaction the token ``value`` names; 1105 when it has not
    within the read timeout. Without replication (the engine alone) every commit is local: no wait."""
    ts = parse_token(value)
    if ts is None or replication is None:
        return
    if not await replication.wait_applied(ts):
        ms = int(replication.settings.read_timeout * 1000)
        raise MySQLError(
            1105,
            "HY000",
            f"marmot_read_after: this node has not applied the transaction committed at "
            f"{ts.wall_ns}.{ts.logical}.{ts.node_id} (coordinator node {ts.node_id}) within {ms} ms "
            "([replication] read_timeout_ms); it may still be on its way, retry or read on another node",
        )
