"""Upstream's per-database inspection routes (``/admin/{db}/metadata/...``) and the operator's abort of a
stuck transaction (``POST /admin/{db}/transactions/{txn}/abort``).

Separate from ``http.py`` because they form one family with one shape of request (a database, then a
transaction id, table or peer) and one error rule: an unknown database is 404, a malformed id 400. The
``ClusterControl`` methods they call return None for an unknown database. docs/admin-api.md documents
every route and its JSON; keep it in step.

Transaction ids are 64-bit integers and are sent as JSON numbers (as upstream does). JavaScript's
``JSON.parse`` rounds numbers above 2**53, so the dashboard quotes them before parsing.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from marmot.admin.http import ClusterControl, json_response
from marmot.admin.http import _Refused as Refused
from marmot.admin.http import _resolve as resolve

COMMITTED_DEFAULT = 100
COMMITTED_MAX = 1000
TXN_ID_MAX = (1 << 64) - 1


def _int_arg(request: web.Request, name: str, what: str, maximum: int = TXN_ID_MAX) -> int:
    raw = request.match_info[name]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 20 or int(raw) > maximum:
        raise Refused(400, f"invalid {what} {raw[:40]!r}: expected a non-negative integer")
    return int(raw)


def _found(value: Any, db: str) -> Any:
    if value is None:
        raise Refused(404, f"unknown database {db!r}")
    return value


class TxnRoutes:
    def __init__(self, control: ClusterControl) -> None:
        self.control = control

    def _head(self, db: str) -> dict[str, Any]:
        return {"node_id": self.control.node_id, "database": db}

    async def pending(self, request: web.Request) -> web.Response:
        db = request.match_info["db"]
        txns = _found(await resolve(self.control.pending_transactions(db)), db)
        return json_response({**self._head(db), "transactions": txns})

    async def committed(self, request: web.Request) -> web.Response:
        db = request.match_info["db"]
        raw = request.query.get("limit", str(COMMITTED_DEFAULT))
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= COMMITTED_MAX:
            raise Refused(400, f"invalid limit {raw[:20]!r}: expected 1 to {COMMITTED_MAX}")
        txns = _found(await resolve(self.control.committed_transactions(db, int(raw))), db)
        return json_response({**self._head(db), "transactions": txns})

    async def transaction(self, request: web.Request) -> web.Response:
        db = request.match_info["db"]
        txn = _int_arg(request, "txn", "transaction id")
        _found(await resolve(self.control.pending_transactions(db)), db)  # 404 for the database first
        doc = await resolve(self.control.transaction(db, txn))
        if doc is None:
            raise Refused(404, f"transaction {txn} is not known in {db!r} on node {self.control.node_id}")
        return json_response({"node_id": self.control.node_id, **doc})

    async def _intents(self, request: web.Request, table: str | None, txn: int | None) -> web.Response:
        db = request.match_info["db"]
        doc = _found(await resolve(self.control.intents(db, table=table, txn=txn)), db)
        return json_response({**self._head(db), **doc})

    async def intents(self, request: web.Request) -> web.Response:
        return await self._intents(request, None, None)

    async def intents_table(self, request: web.Request) -> web.Response:
        return await self._intents(request, request.match_info["table"], None)

    async def intents_txn(self, request: web.Request) -> web.Response:
        return await self._intents(request, None, _int_arg(request, "txn", "transaction id"))

    async def replication_states(self, request: web.Request) -> web.Response:
        db = request.match_info["db"]
        states = _found(await resolve(self.control.replication_states(db)), db)
        return json_response({**self._head(db), "peers": states})

    async def replication_state(self, request: web.Request) -> web.Response:
        db = request.match_info["db"]
        peer = _int_arg(request, "peer", "peer id", maximum=1 << 32)
        states = _found(await resolve(self.control.replication_states(db)), db)
        for state in states:
            if int(state["peer"]) == peer:
                return json_response({**self._head(db), **state})
        raise Refused(
            404, f"no replication state for peer {peer} in {db!r}: no anti-entropy round with it yet"
        )

    async def schema_version(self, request: web.Request) -> web.Response:
        db = request.match_info["db"]
        doc = _found(await resolve(self.control.schema_version(db)), db)
        return json_response({"node_id": self.control.node_id, **doc})

    async def abort(self, request: web.Request) -> web.Response:
        db = request.match_info["db"]
        txn = _int_arg(request, "txn", "transaction id")
        try:
            doc = await resolve(self.control.abort_transaction(db, txn))
        except KeyError as err:
            raise Refused(
                404, str(err.args[0]) if err.args else f"transaction {txn} is not pending"
            ) from None
        except ValueError as err:
            raise Refused(409, f"cannot abort transaction {txn}: {err}") from None
        return json_response(_found(doc, db))


def add_routes(app: web.Application, control: ClusterControl, require_secret: Any) -> None:
    """Register the routes on ``app``. ``require_secret(action)`` refuses (403) a change when the node
    has no ``cluster_secret``, as for the membership changes."""
    r = TxnRoutes(control)

    async def abort(request: web.Request) -> web.Response:
        require_secret("aborting a transaction")
        return await r.abort(request)

    base = "/admin/{db}/metadata"
    app.add_routes(
        [
            web.get(base + "/transactions/pending", r.pending),
            web.get(base + "/transactions/committed", r.committed),
            web.get(base + "/transactions/{txn}", r.transaction),
            web.get(base + "/intents", r.intents),
            web.get(base + "/intents/table/{table}", r.intents_table),
            web.get(base + "/intents/txn/{txn}", r.intents_txn),
            web.get(base + "/replication/states", r.replication_states),
            web.get(base + "/replication/state/{peer}", r.replication_state),
            web.get(base + "/schema/version", r.schema_version),
            web.post("/admin/{db}/transactions/{txn}/abort", abort),
        ]
    )
