"""The publisher's durable state: per-sink cursors and the peers' published watermarks.

Kept in the node's key/value state (``storage.node_state``, the system database) rather than in each
user database: moving a cursor must not take a database's writer lock, which client writes and the
apply queue contend for. Losing the newest cursor move (a crash between publishing and persisting) only
re-publishes a few events, which carry the same ``event_id`` as before (at least once).

Keys (``{log}`` is the database file's commit-log id, so a file replaced by a snapshot, whose log is a
different one, never inherits a cursor that meant something else):

* ``pub:since:{sink}`` — when the sink first ran on this node (its presence: "not a new sink").
* ``pub:cur:{sink}:{db}:{log}`` — own cursor: every entry of this log up to this seq that this node must
  publish for the sink has been published.
* ``pub:wm:{sink}:{db}:{origin}`` — the watermark node ``origin`` last reported (commit wall ns): it had
  published every transaction it coordinated with an earlier commit time.
* ``pub:take:{sink}:{db}:{origin}:{log}`` — takeover cursor: how far this node has re-published
  ``origin``'s transactions from its own log while ``origin`` was not ALIVE.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import apsw

from marmot.storage.node_state import NodeState


class PublisherState:
    def __init__(self, conn: apsw.Connection) -> None:
        self.conn = conn
        self.kv = NodeState(conn)

    def _int(self, key: str) -> int | None:
        v = self.kv.get(key)
        return v if type(v) is int else None

    def since(self, sink: str) -> int | None:
        return self._int(f"pub:since:{sink}")

    def set_since(self, sink: str, wall_ns: int) -> None:
        self.kv.set(f"pub:since:{sink}", wall_ns)

    def cursor(self, sink: str, db: str, log: str) -> int | None:
        return self._int(f"pub:cur:{sink}:{db}:{log}")

    def set_cursor(self, sink: str, db: str, log: str, seq: int) -> None:
        self.kv.set(f"pub:cur:{sink}:{db}:{log}", seq)

    def watermark(self, sink: str, db: str, origin: int) -> int | None:
        return self._int(f"pub:wm:{sink}:{db}:{origin}")

    def watermark_origins(self, sink: str, db: str) -> list[int]:
        """The members whose watermark of ``sink`` and ``db`` this node keeps."""
        rows = self.conn.execute(
            "SELECT key FROM __marmot_node_state WHERE key LIKE ? ESCAPE '\\'",
            (f"pub:wm:{_like(sink)}:{_like(db)}:%",),
        )
        out = []
        for (key,) in rows:
            with contextlib.suppress(ValueError):
                out.append(int(str(key).rsplit(":", 1)[1]))
        return out

    def set_watermarks(self, origin: int, marks: Iterable[tuple[str, str, int]]) -> None:
        """Store ``(sink, db, wall_ns)`` watermarks of ``origin`` in one transaction."""
        with self.conn:
            for sink, db, wall in marks:
                self.kv.set(f"pub:wm:{sink}:{db}:{origin}", wall)

    def takeover(self, sink: str, db: str, origin: int, log: str) -> int | None:
        return self._int(f"pub:take:{sink}:{db}:{origin}:{log}")

    def set_takeover(self, sink: str, db: str, origin: int, log: str, seq: int) -> None:
        self.kv.set(f"pub:take:{sink}:{db}:{origin}:{log}", seq)

    def drop_takeovers(self, sink: str, origin: int) -> None:
        """``origin`` is back: a later takeover starts again from its newest watermark."""
        self.conn.execute(
            "DELETE FROM __marmot_node_state WHERE key LIKE ? ESCAPE '\\'",
            (f"pub:take:{_like(sink)}:%:{origin}:%",),
        )


def _like(s: str) -> str:
    return s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
