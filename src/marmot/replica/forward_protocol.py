"""The messages of forwarded writes: what a replica sends a cluster node, and what comes back.

Why its own module: both halves — the replica's client (``forward_client.py``) and the cluster node's
forward sessions (``forward_server.py``) — must agree on every field, and the wire (msgpack maps over the
cluster RPC, ``cluster/rpc``) carries no types, so the one place that builds a message also checks one.

A request names the replica session (``session_id``: unique per replica connection, across replica
restarts) and its ``request_id`` (1, 2, 3 … per session; a retry reuses the id, and the cluster node
answers a retried id from memory instead of running it twice). It carries everything the statement's
meaning depends on that lives in the replica's session: the current database, the session-scope system
variables (``marmot_write_consistency``, ``foreign_key_checks``, ``sql_mode`` …), user variables,
``LAST_INSERT_ID()``, the transpilation switch and the client's FOUND_ROWS flag, and, for LOAD DATA LOCAL,
the file the replica already read from its client.

The answer is the statement's result as the cluster node's engine produced it — an OK (affected rows,
insert id, info), rows with their columns (reads inside a forwarded transaction), or the MySQL error
(code, SQLSTATE, message, unchanged) — plus the warnings, the session's ``LAST_INSERT_ID()``, whether a
transaction is open there now, and the causal token (``@@marmot_last_commit_ts``) with the database
whose commit log holds it when the request committed a transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from marmot.engine.errors import MySQLError
from marmot.engine.results import OkResult, Result, ResultSet
from marmot.hlc import Timestamp

METHOD = "forward"  # one statement (and its prelude) of one replica session
CLOSE_METHOD = "forward_close"  # the replica session ended: roll back what it left open
NOT_RUN = "forward_not_run"  # RPC error code: the node refused the request before running any of it
# Session variables that mean something only on the replica (never sent)
REPLICA_ONLY_VARIABLES = frozenset({"marmot_wait_for_replication", "marmot_read_after"})

_SCALARS = (str, int, float, bytes, bool, type(None))
_VALUES = (str, int, float, bytes, type(None))  # what SQLite returns; anything else is sent as text


def _scalars(values: dict[str, object]) -> dict[str, object]:
    """The entries of ``values`` the wire can carry (session variables hold only scalars)."""
    return {k: v for k, v in values.items() if isinstance(k, str) and isinstance(v, _SCALARS)}


@dataclass(slots=True)
class ForwardRequest:
    session_id: str
    request_id: int
    sql: str
    params: list[object] | None = None
    database: str | None = None
    variables: dict[str, object] = field(default_factory=dict)
    user_variables: dict[str, object] = field(default_factory=dict)
    transpilation: bool = True
    client_found_rows: bool = False
    last_insert_id: int = 0
    # statements run before ``sql`` when the session has no transaction open there: BEGIN and the
    # SAVEPOINTs the replica session took before its transaction's first write
    prelude: list[str] = field(default_factory=list)
    # the replica believes this session's forwarded transaction is open on that node
    in_transaction: bool = False
    local_file: bytes | None = None  # LOAD DATA LOCAL: the file's contents
    user: str = ""

    def to_wire(self) -> dict[str, Any]:
        return {
            "sid": self.session_id,
            "rid": self.request_id,
            "sql": self.sql,
            "params": self.params,
            "db": self.database,
            "vars": _scalars(self.variables),
            "uvars": _scalars(self.user_variables),
            "transpile": self.transpilation,
            "found_rows": self.client_found_rows,
            "lid": self.last_insert_id,
            "prelude": self.prelude,
            "in_txn": self.in_transaction,
            "file": self.local_file,
            "user": self.user,
        }

    @classmethod
    def from_wire(cls, msg: Any) -> ForwardRequest:
        """The request in ``msg``; ValueError names the first field that is missing or malformed."""
        if not isinstance(msg, dict):
            raise ValueError("a forward request is a map")
        req = cls(
            session_id=_typed(msg, "sid", str),
            request_id=_typed(msg, "rid", int),
            sql=_typed(msg, "sql", str),
            params=_typed(msg, "params", list, optional=True),
            database=_typed(msg, "db", str, optional=True),
            variables=_typed(msg, "vars", dict),
            user_variables=_typed(msg, "uvars", dict),
            transpilation=_typed(msg, "transpile", bool),
            client_found_rows=_typed(msg, "found_rows", bool),
            last_insert_id=_typed(msg, "lid", int),
            prelude=_typed(msg, "prelude", list),
            in_transaction=_typed(msg, "in_txn", bool),
            local_file=_typed(msg, "file", bytes, optional=True),
            user=_typed(msg, "user", str),
        )
        if not req.session_id or req.request_id < 1:
            raise ValueError("a forward request needs a session id and a request id >= 1")
        if not all(isinstance(s, str) for s in req.prelude):
            raise ValueError("field 'prelude' holds statements (strings)")
        return req


def _typed(msg: dict[str, Any], key: str, kind: type, optional: bool = False) -> Any:
    value = msg.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"field {key!r} of a forward request is missing or not a {kind.__name__}")
    return value


@dataclass(slots=True)
class ForwardAnswer:
    request_id: int
    result: Result | None = None
    error: MySQLError | None = None
    warnings: list[tuple[str, int, str]] = field(default_factory=list)
    session_last_insert_id: int = 0  # the session's LAST_INSERT_ID() after the statement
    in_transaction: bool = False  # a transaction of this session is open on the cluster node now
    commit_ts: Timestamp | None = None  # the request committed a transaction at this timestamp
    commit_db: str | None = None  # in this database's commit log (None: CREATE/DROP DATABASE)

    def to_wire(self) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "rid": self.request_id,
            "warnings": [list(w) for w in self.warnings],
            "lid": self.session_last_insert_id,
            "in_txn": self.in_transaction,
            "commit_ts": None if (ts := self.commit_ts) is None else [ts.wall_ns, ts.logical, ts.node_id],
            "commit_db": self.commit_db,
        }
        if self.error is not None:
            msg["error"] = [self.error.code, self.error.sqlstate, self.error.message]
        elif isinstance(self.result, ResultSet):
            msg["columns"] = [list(c) for c in self.result.columns]
            msg["rows"] = [[v if isinstance(v, _VALUES) else str(v) for v in r] for r in self.result.rows]
            msg["warning_count"] = self.result.warnings
        elif isinstance(self.result, OkResult):
            r = self.result
            msg["ok"] = [r.affected_rows, r.last_insert_id, r.warnings, r.info]
        return msg

    @classmethod
    def from_wire(cls, msg: Any) -> ForwardAnswer:
        """The answer in ``msg``; ValueError when it is not one (a node of another version)."""
        if not isinstance(msg, dict) or not isinstance(msg.get("rid"), int):
            raise ValueError("not a forward answer")
        ans = cls(
            request_id=msg["rid"],
            warnings=[(str(w[0]), int(w[1]), str(w[2])) for w in msg.get("warnings") or []],
            session_last_insert_id=int(msg.get("lid") or 0),
            in_transaction=bool(msg.get("in_txn")),
        )
        ts = msg.get("commit_ts")
        if ts is not None:
            ans.commit_ts = Timestamp(int(ts[0]), int(ts[1]), int(ts[2]))
            db = msg.get("commit_db")
            ans.commit_db = db if isinstance(db, str) else None
        if "error" in msg:
            code, sqlstate, message = msg["error"]
            ans.error = MySQLError(int(code), str(sqlstate), str(message))
        elif "rows" in msg:
            ans.result = ResultSet(
                [tuple(c) for c in msg["columns"]],
                [tuple(r) for r in msg["rows"]],
                int(msg.get("warning_count") or 0),
            )
        elif "ok" in msg:
            affected, insert_id, warnings, info = msg["ok"]
            ans.result = OkResult(int(affected), int(insert_id), int(warnings), str(info))
        else:
            raise ValueError("a forward answer without a result or an error")
        return ans
