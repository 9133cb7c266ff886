"""Small durable key/value state of the node itself, in the system database.

Its first user is the AUTO_INCREMENT id lease: ids embed a millisecond timestamp, and a node restarted
after its clock stepped back would otherwise mint ids it already handed out before the restart. The
node records how far ahead ids may have been minted (a lease a few seconds in the future, renewed while
it runs) and, on start, never mints below it.
"""

from __future__ import annotations

import apsw

_SCHEMA = "CREATE TABLE IF NOT EXISTS __marmot_node_state (key TEXT PRIMARY KEY, value) WITHOUT ROWID"


class NodeState:
    def __init__(self, conn: apsw.Connection) -> None:
        self._conn = conn
        conn.execute(_SCHEMA)

    def get(self, key: str, default: object = None) -> object:
        row = self._conn.execute("SELECT value FROM __marmot_node_state WHERE key = ?", (key,)).fetchone()
        return default if row is None else row[0]

    def get_int(self, key: str, default: int = 0) -> int:
        """An integer value (a cursor, a log position); ``default`` when absent or not an integer."""
        v = self.get(key)
        return v if type(v) is int else default

    def set(self, key: str, value: object) -> None:
        self._conn.execute(
            "INSERT INTO __marmot_node_state (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )
