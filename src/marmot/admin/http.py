"""Admin HTTP API (``/admin/...``) and Prometheus ``/metrics`` as one ``aiohttp`` application.

The node serves this app on its cluster port next to the RPC protocol (DESIGN.md, HTTP row); this module
only builds the ``web.Application``. It knows the rest of the node through one narrow interface,
``ClusterControl``, so it can be tested with a fake and does not import the membership or RPC layers.

Path of a request: ``_errors`` middleware (every error body is ``{"error": "..."}``) -> ``_auth``
middleware (PSK on every path but ``/metrics``, which stays open like upstream, and the dashboard's page
and assets, ``dashboard.OPEN_PATHS``) -> handler -> one or two
``ClusterControl`` calls -> JSON. docs/admin-api.md documents every route; keep it in step.

Auth (upstream §11.2, tightened): with a non-empty ``cluster_secret`` every ``/admin`` request needs
``X-Marmot-Secret: <secret>`` or ``Authorization: Bearer <secret>`` (constant-time compare) or gets 401.
With an empty secret reads stay open but membership changes (remove, allow, decommission, cancel) are
refused with 403: an unauthenticated endpoint that can evict nodes is worse than none. So are backups
(``/admin/databases/{db}/backup`` hands out every row).

Threading: handlers run on the node's event loop and call ``ClusterControl`` there. Methods that may do
I/O (``remove``, ``allow``, the decommission trio, ``databases``) may return an awaitable instead of a
value -- a decommission of another node is forwarded over RPC -- and the handlers await it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hmac
import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, TypeVar, cast

from aiohttp import web

from marmot.admin import dashboard
from marmot.admin.backup import BACKUP_HEADER
from marmot.admin.metrics import CONTENT_TYPE_LATEST, state_name

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    from marmot.admin.metrics import Metrics

log = logging.getLogger("marmot.admin")

T = TypeVar("T")
Maybe: TypeAlias = T | Awaitable[T]  # a value, or an awaitable of it (for methods that may need RPC)

SECRET_HEADER = "X-Marmot-Secret"
HEALTHY_STATES = frozenset({"ALIVE"})
# served without the secret: /metrics like upstream, and the dashboard's page and assets (no data in them;
# the page asks for the secret and sends it with each API call it makes)
OPEN_PATHS = frozenset({"/metrics"}) | dashboard.OPEN_PATHS
KEYS_PAGE = 1000  # default ``limit`` of ``…/digest/{table}/keys``
KEYS_PAGE_MAX = 5000  # replication/catchup/digest.py KEYS_LIMIT


class ClusterControl(Protocol):
    """What the admin API needs from a node. The lead wires the membership / replication layers to it.

    Error contract: an unknown node id raises ``KeyError`` (-> 404); a request the node refuses in its
    current state (removing itself, decommission already running, nothing to cancel ...) raises
    ``ValueError`` with a message for the operator (-> 409); a failed forward to another node raises
    ``OSError`` / ``TimeoutError`` (-> 502). Anything else is a bug (-> 500, logged).
    """

    node_id: int

    def members(self) -> list[dict[str, Any]]:
        """Every known node: ``{node_id, address, state, incarnation, last_seen_ms_ago, mysql_address?}``."""
        ...

    def total_members(self) -> int:
        """Quorum denominator: persisted total membership, REMOVED excluded."""
        ...

    def alive_members(self) -> list[int]:
        """Ids of the nodes counted towards quorum now (self included when alive)."""
        ...

    def has_quorum(self) -> bool: ...

    def join_status(self) -> dict[str, Any]:
        """``{joined: bool, seeds: [...]}``; while not joined also ``failures: {seed: reason}``,
        ``attempts``, ``last_attempt_ms_ago``, ``not_joined_for_s`` and ``reason`` (the writes' 1105)."""
        ...

    def remove(self, node_id: int) -> Maybe[None]: ...

    def allow(self, node_id: int) -> Maybe[None]: ...

    def decommission(self, node_id: int) -> Maybe[dict[str, Any]]:
        """Start decommissioning ``node_id`` (self, or forward to that node); returns its status dict."""
        ...

    def decommission_status(self, node_id: int) -> Maybe[dict[str, Any]]:
        """``{state, decommissioning: bool, phase: none|draining|leaving|done, pending_transactions}``
        (docs/admin-api.md); more keys pass through to the client unchanged."""
        ...

    def cancel_decommission(self, node_id: int) -> Maybe[dict[str, Any]]: ...

    async def export_database(self, database: str) -> tuple[Path, dict[str, Any]] | None:
        """A consistent copy of ``database`` in a temporary file and its manifest; None when unknown."""
        ...

    def databases(self) -> Maybe[list[dict[str, Any]]]:
        """``[{name, size_bytes, tables}, ...]``."""
        ...

    def digest(self, database: str, full: bool = False) -> Maybe[dict[str, Any] | None]:
        """``{database, tables: {table: {digest: 16 hex, rows}}, schema_version}``; None: no such database.
        ``full``: recomputed from the tables' contents (also ``full: true`` and ``skipped: {table: why}``)."""
        ...

    def digest_keys(
        self, database: str, table: str, after: bytes | None, limit: int, full: bool = False
    ) -> Maybe[dict[str, Any] | None]:
        """``{database, table, keys: [[hex key, [wall, logical, node]], ...], next}``; None: no such database.
        ``full``: the rows the table holds, ``[hex key, [wall, logical, node] or null, content hash]``; a
        bad ``after`` raises ``ValueError``."""
        ...

    def replication_status(self) -> Maybe[dict[str, Any]]:
        """``{node_id, anti_entropy: {...}, lag: [{peer, database, behind_txns, last_round_unix,
        lag_seconds}, ...]}``."""
        ...

    # The per-database routes (admin/txn_routes.py): None means no such database (404).

    def pending_transactions(self, database: str) -> Maybe[list[dict[str, Any]] | None]:
        """Transactions of ``database`` prepared here and not yet applied or aborted."""
        ...

    def transaction(self, database: str, txn: int) -> Maybe[dict[str, Any] | None]:
        """One transaction as this node knows it (pending, committed, aborted); None: not known."""
        ...

    def committed_transactions(self, database: str, limit: int) -> Maybe[list[dict[str, Any]] | None]: ...

    def intents(
        self, database: str, table: str | None = None, txn: int | None = None
    ) -> Maybe[dict[str, Any] | None]:
        """``{intents: [{key, table, txn_id, ...}], ddl_lock: {...} | None}``."""
        ...

    def replication_states(self, database: str) -> Maybe[list[dict[str, Any]] | None]: ...

    def schema_version(self, database: str) -> Maybe[dict[str, Any] | None]: ...

    def abort_transaction(self, database: str, txn: int) -> Maybe[dict[str, Any] | None]:
        """Abort a stuck transaction if safe: ``KeyError`` not pending (404), ``ValueError`` refused (409)."""
        ...


async def _resolve(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def quorum_size(total: int) -> int:
    """Majority of the total membership (upstream's QUORUM rule)."""
    return max(int(total), 0) // 2 + 1


def _json_default(obj: Any) -> Any:
    if isinstance(obj, enum.Enum):
        return obj.name
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    if isinstance(obj, bytes | bytearray):
        return obj.hex()
    return str(obj)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=_json_default)


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(obj, status=status, headers=headers, dumps=_dumps)


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return json_response({"error": message}, status=status, headers=headers)


class _Refused(Exception):
    """Raised inside a handler to answer ``status`` with ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# ----------------------------------------------------------------------------------------------------------
# middlewares


@web.middleware
async def _errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every error leaves as ``{"error": "..."}`` JSON, including aiohttp's own 404 / 405."""
    try:
        return await handler(request)
    except _Refused as err:
        return error_response(err.status, err.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "www-authenticate")}
        message = exc.reason if exc.status != 404 else f"no such route: {request.method} {request.path}"
        return error_response(exc.status, message, headers)
    except Exception:
        log.exception("admin API: %s %s failed", request.method, request.path)
        return error_response(500, "internal error (see the node's log)")


def _auth_middleware(secret: str) -> Callable[..., Awaitable[web.StreamResponse]]:
    expected = secret.encode("utf-8")

    @web.middleware
    async def _auth(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        # Deny by default: only the exact open paths skip the check, so no spelling of a path
        # ("//admin/...", "/%61dmin/...") can reach a protected route unauthenticated.
        if not expected or request.path in OPEN_PATHS:
            return await handler(request)
        offered = _offered_secrets(request)
        if not offered:
            return error_response(
                401,
                f"authentication required: send header '{SECRET_HEADER}: <secret>' "
                "or 'Authorization: Bearer <secret>'",
                {"WWW-Authenticate": 'Bearer realm="marmot"'},
            )
        ok = False
        for candidate in offered:  # compare all, constant time each, no early exit on the first match
            ok |= hmac.compare_digest(candidate.encode("utf-8"), expected)
        if not ok:
            return error_response(
                401, "invalid cluster secret", {"WWW-Authenticate": 'Bearer realm="marmot"'}
            )
        return await handler(request)

    return _auth


def _offered_secrets(request: web.Request) -> list[str]:
    offered = []
    header = request.headers.get(SECRET_HEADER)
    if header is not None:
        offered.append(header.strip())
    authorization = request.headers.get("Authorization", "")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        offered.append(token.strip())
    return offered


# ----------------------------------------------------------------------------------------------------------
# handlers


def _node_id_arg(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise _Refused(400, f"invalid node id {raw!r}: expected a positive integer")
    return int(raw)


def _flag(request: web.Request, name: str) -> bool:
    """A boolean query parameter: ``1``/``true``/``yes`` on, absent/``0``/``false``/``no`` off, else 400."""
    raw = request.query.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise _Refused(400, f"invalid {name} {raw[:20]!r}: expected 1 or 0")


def _member_json(m: dict[str, Any]) -> dict[str, Any]:
    out = dict(m)
    if "state" in out:
        out["state"] = state_name(out["state"])
    return out


class _Handlers:
    def __init__(self, control: ClusterControl, secret: str, metrics: Metrics | None) -> None:
        self.control = control
        self.secret = secret
        self.metrics = metrics

    # -- helpers -------------------------------------------------------------------------------------------

    def _require_secret(self, action: str) -> None:
        if not self.secret:
            raise _Refused(
                403,
                f"{action} requires cluster_secret: set [cluster] cluster_secret (or the "
                "MARMOT_CLUSTER_SECRET environment variable) on this node",
            )

    async def _call(self, fn: Callable[..., Any], node_id: int, what: str) -> Any:
        try:
            return await _resolve(fn(node_id))
        except KeyError:
            raise _Refused(404, f"unknown node id {node_id}") from None
        except ValueError as err:
            raise _Refused(409, f"cannot {what} node {node_id}: {err}") from None
        except OSError as err:  # TimeoutError and ConnectionError included: a forward failed
            raise _Refused(502, f"cannot {what} node {node_id}: {err or type(err).__name__}") from None

    def _quorum_info(self) -> dict[str, Any]:
        c = self.control
        total = int(c.total_members())
        alive = sorted(int(n) for n in c.alive_members())
        return {
            "total": total,
            "alive": len(alive),
            "alive_nodes": alive,
            "quorum_size": quorum_size(total),
            "has_quorum": bool(c.has_quorum()),
        }

    def _member(self, node_id: int) -> dict[str, Any] | None:
        for m in self.control.members():
            if int(m.get("node_id", -1)) == node_id:
                return _member_json(m)
        return None

    # -- reads ---------------------------------------------------------------------------------------------

    async def members(self, request: web.Request) -> web.Response:
        members = sorted((_member_json(m) for m in self.control.members()), key=lambda m: m.get("node_id", 0))
        return json_response({"node_id": self.control.node_id, "members": members, **self._quorum_info()})

    async def health(self, request: web.Request) -> web.Response:
        me = self._member(int(self.control.node_id))
        state = me["state"] if me and "state" in me else "UNKNOWN"
        info = self._quorum_info()
        reasons = []
        if state not in HEALTHY_STATES:
            reasons.append(f"node state is {state}")
        if not info["has_quorum"]:
            reasons.append(
                f"no quorum: {info['alive']} of {info['total']} members alive, {info['quorum_size']} needed"
            )
        join = self.control.join_status()
        if not join.get("joined", True):
            reasons.insert(0, str(join.get("reason") or "not joined to a cluster"))
        ok = not reasons
        body = {
            "node_id": self.control.node_id,
            "state": state,
            "ok": ok,
            **info,
            "join": join,
            "reasons": reasons,
        }
        return json_response(body, status=200 if ok else 503)

    async def decommission_status(self, request: web.Request) -> web.Response:
        node_id = _node_id_arg(request)
        status = await self._call(
            self.control.decommission_status, node_id, "read the decommission status of"
        )
        return json_response({"node_id": node_id, **dict(status or {})})

    async def databases(self, request: web.Request) -> web.Response:
        dbs = await _resolve(self.control.databases())
        return json_response({"node_id": self.control.node_id, "databases": list(dbs)})

    async def digest(self, request: web.Request) -> web.Response:
        db = request.match_info["db"]
        doc = await _resolve(self.control.digest(db, full=_flag(request, "full")))
        if doc is None:
            raise _Refused(404, f"unknown database {db!r}")
        return json_response(doc)

    async def digest_keys(self, request: web.Request) -> web.Response:
        db, table = request.match_info["db"], request.match_info["table"]
        raw_limit = request.query.get("limit", str(KEYS_PAGE))
        if not (raw_limit.isascii() and raw_limit.isdigit()) or not 1 <= int(raw_limit) <= KEYS_PAGE_MAX:
            raise _Refused(400, f"invalid limit {raw_limit!r}: expected 1 to {KEYS_PAGE_MAX}")
        raw_after = request.query.get("after")
        after = None
        if raw_after:
            try:
                after = bytes.fromhex(raw_after)
            except ValueError:
                raise _Refused(400, f"invalid after {raw_after[:40]!r}: expected a row key in hex") from None
        try:
            doc = await _resolve(
                self.control.digest_keys(db, table, after, int(raw_limit), full=_flag(request, "full"))
            )
        except ValueError as err:  # a full page's ``after`` that is not a key of the table
            raise _Refused(400, str(err)) from None
        if doc is None:
            raise _Refused(404, f"unknown database {db!r}")
        return json_response(doc)

    async def backup(self, request: web.Request) -> web.StreamResponse:
        """A consistent copy of one database as a SQLite file (``marmot backup``); its manifest (log
        position, sha256, size) in the ``X-Marmot-Backup`` header. Needs the secret even when reads are
        open: it hands out every row."""
        self._require_secret("a backup")
        db = request.match_info["db"]
        got = await self.control.export_database(db)
        if got is None:
            raise _Refused(404, f"unknown database {db!r}")
        path, manifest = got
        try:
            resp = web.StreamResponse(
                headers={
                    "Content-Type": "application/vnd.sqlite3",
                    "Content-Length": str(manifest["size"]),
                    BACKUP_HEADER: _dumps(manifest),
                }
            )
            await resp.prepare(request)
            with open(path, "rb") as f:
                while chunk := await asyncio.to_thread(f.read, 1 << 20):
                    await resp.write(chunk)
            await resp.write_eof()
            return resp
        finally:
            with contextlib.suppress(OSError):
                path.unlink()

    async def replication(self, request: web.Request) -> web.Response:
        return json_response(await _resolve(self.control.replication_status()))

    async def metrics_text(self, request: web.Request) -> web.Response:
        assert self.metrics is not None
        try:
            dbs = await _resolve(self.control.databases())
        except Exception:  # a scrape must not fail because storage is busy: keep the last sizes
            log.warning("metrics: listing databases failed; database gauges not refreshed", exc_info=True)
            dbs = None
        if dbs is None:
            self.metrics.refresh_membership(self.control)
        else:
            self.metrics.refresh(self.control, dbs)
        return web.Response(body=self.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    # -- membership changes ----------------------------------------------------------------------------------

    async def remove(self, request: web.Request) -> web.Response:
        self._require_secret("removing a node")
        node_id = _node_id_arg(request)
        await self._call(self.control.remove, node_id, "remove")
        log.warning("admin API: node %d marked REMOVED (excluded from quorum, cannot auto-rejoin)", node_id)
        return json_response({"node_id": node_id, "status": "removed", "member": self._member(node_id)})

    async def allow(self, request: web.Request) -> web.Response:
        self._require_secret("allowing a node")
        node_id = _node_id_arg(request)
        await self._call(self.control.allow, node_id, "allow")
        log.warning("admin API: node %d allowed to rejoin", node_id)
        return json_response(
            {
                "node_id": node_id,
                "status": "allowed",
                "member": self._member(node_id),
                "message": "the node may rejoin; restart it to join",
            }
        )

    async def decommission(self, request: web.Request) -> web.Response:
        self._require_secret("decommissioning a node")
        node_id = _node_id_arg(request)
        status = await self._call(self.control.decommission, node_id, "decommission")
        log.warning("admin API: decommission of node %d requested", node_id)
        return json_response({"node_id": node_id, **dict(status or {})})

    async def cancel_decommission(self, request: web.Request) -> web.Response:
        self._require_secret("cancelling a decommission")
        node_id = _node_id_arg(request)
        status = await self._call(self.control.cancel_decommission, node_id, "cancel the decommission of")
        log.warning("admin API: decommission of node %d cancelled", node_id)
        return json_response({"node_id": node_id, **dict(status or {})})


class DatabaseControl(Protocol):
    """The part of ``ClusterControl`` the database routes use (what a replica has)."""

    node_id: int

    def databases(self) -> Maybe[list[dict[str, Any]]]: ...

    def digest(self, database: str, full: bool = False) -> Maybe[dict[str, Any] | None]: ...

    def digest_keys(
        self, database: str, table: str, after: bytes | None, limit: int, full: bool = False
    ) -> Maybe[dict[str, Any] | None]: ...


def make_database_app(control: DatabaseControl, *, secret: str) -> web.Application:
    """The admin application of a node that is no member (a replica, ``marmot.replica.admin``): the
    same authentication and error bodies, and only the database routes (list, digests, keys) that
    ``marmot verify`` reads. ``control`` needs ``node_id``, ``databases``, ``digest`` and ``digest_keys``."""
    h = _Handlers(cast("ClusterControl", control), secret or "", None)  # only the database handlers run
    app = web.Application(middlewares=[_errors, _auth_middleware(secret or "")])
    app.add_routes(
        [
            web.get("/admin/databases", h.databases),
            web.get("/admin/databases/{db}/digest", h.digest),
            web.get("/admin/databases/{db}/digest/{table}/keys", h.digest_keys),
        ]
    )
    return app


def make_app(
    control: ClusterControl,
    *,
    secret: str,
    metrics: Metrics | None = None,
    publisher_status: Callable[[], dict[str, Any]] | None = None,
) -> web.Application:
    """The admin application: ``/admin/...`` routes, and ``GET /metrics`` when ``metrics`` is given.
    ``publisher_status``: the CDC publisher's ``GET /admin/publisher`` (absent: the publisher is off)."""
    h = _Handlers(control, secret or "", metrics)
    app = web.Application(middlewares=[_errors, _auth_middleware(secret or "")])
    app.add_routes(
        [
            web.get("/admin/cluster/members", h.members),
            web.get("/admin/cluster/health", h.health),
            web.post("/admin/cluster/remove/{id}", h.remove),
            web.post("/admin/cluster/allow/{id}", h.allow),
            web.post("/admin/cluster/decommission/{id}", h.decommission),
            web.get("/admin/cluster/decommission/{id}/status", h.decommission_status),
            web.post("/admin/cluster/decommission/{id}/cancel", h.cancel_decommission),
            web.get("/admin/databases", h.databases),
            web.get("/admin/databases/{db}/digest", h.digest),
            web.get("/admin/databases/{db}/backup", h.backup),
            web.get("/admin/databases/{db}/digest/{table}/keys", h.digest_keys),
            web.get("/admin/cluster/replication", h.replication),
        ]
    )
    from marmot.admin import txn_routes  # imports this module: registered here to avoid the cycle

    txn_routes.add_routes(app, control, h._require_secret)
    dashboard.add_routes(app)
    if metrics is not None:
        app.router.add_get("/metrics", h.metrics_text)

    async def publisher(request: web.Request) -> web.Response:
        if publisher_status is None:
            return json_response({"node_id": control.node_id, "enabled": False, "sinks": []})
        return json_response(publisher_status())

    app.router.add_get("/admin/publisher", publisher)
    return app
