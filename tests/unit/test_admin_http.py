"""Admin HTTP API: every route with and without auth, error shapes, /metrics, and the CLI client against a
real aiohttp server on 127.0.0.1 (fake ``ClusterControl``; membership and RPC are not involved)."""

from __future__ import annotations

import asyncio
import enum
import json
import socket
import threading
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from marmot.admin import commands as client
from marmot.admin.http import ClusterControl, make_app, quorum_size
from marmot.admin.metrics import Metrics
from tests.support import run_async

SECRET = "s3cret-psk"


class NodeState(enum.Enum):
    JOINING = 0
    ALIVE = 1
    SUSPECT = 2
    DEAD = 3
    LEAVING = 4
    REMOVED = 5


class FakeControl:
    """In-memory stand-in for the membership / replication layers."""

    def __init__(self, node_id: int = 1, *, async_io: bool = False) -> None:
        self.node_id = node_id
        self.async_io = async_io
        self.state = {1: NodeState.ALIVE, 2: NodeState.ALIVE, 3: NodeState.SUSPECT}
        self.decommissioning: set[int] = set()
        self.unreachable: set[int] = set()  # forwarding a decommission there fails
        self.calls: list[tuple[str, int]] = []
        self.dbs = [
            {"name": "marmot", "size_bytes": 8192, "tables": 3},
            {"name": "app", "size_bytes": 65536, "tables": 12},
        ]
        self.join: dict[str, Any] = {"joined": True, "seeds": ["127.0.0.1:8080"]}

    def members(self) -> list[dict[str, Any]]:
        return [
            {
                "node_id": n,
                "address": f"127.0.0.1:{8080 + n - 1}",
                "state": s,
                "incarnation": n,
                "last_seen_ms_ago": 0 if n == self.node_id else 250 * n,
                "mysql_address": f"127.0.0.1:{3306 + n}",
            }
            for n, s in sorted(self.state.items(), reverse=True)
        ]

    def total_members(self) -> int:
        return sum(1 for s in self.state.values() if s is not NodeState.REMOVED)

    def alive_members(self) -> list[int]:
        return [n for n, s in self.state.items() if s is NodeState.ALIVE]

    def has_quorum(self) -> bool:
        return len(self.alive_members()) >= quorum_size(self.total_members())

    def join_status(self) -> dict[str, Any]:
        return dict(self.join)

    def _maybe_async(self, value: Any) -> Any:
        if not self.async_io:
            return value

        async def later() -> Any:
            await asyncio.sleep(0)
            return value

        return later()

    def _known(self, node_id: int) -> None:
        if node_id not in self.state:
            raise KeyError(node_id)

    def remove(self, node_id: int) -> Any:
        self.calls.append(("remove", node_id))
        self._known(node_id)
        if node_id == self.node_id:
            raise ValueError("a node cannot remove itself; ask another node")
        self.state[node_id] = NodeState.REMOVED
        return self._maybe_async(None)

    def allow(self, node_id: int) -> Any:
        self.calls.append(("allow", node_id))
        self._known(node_id)
        self.state[node_id] = NodeState.DEAD
        return self._maybe_async(None)

    def _status(self, node_id: int) -> dict[str, Any]:
        active = node_id in self.decommissioning
        return {
            "state": self.state[node_id].name,
            "decommissioning": active,
            "phase": "draining" if active else "none",
            "pending_transactions": 2 if active else 0,
        }

    def decommission(self, node_id: int) -> Any:
        self.calls.append(("decommission", node_id))
        self._known(node_id)
        if node_id in self.unreachable:
            raise ConnectionRefusedError(111, "Connection refused")
        if node_id in self.decommissioning:
            raise ValueError("decommission already in progress")
        self.decommissioning.add(node_id)
        self.state[node_id] = NodeState.LEAVING
        return self._maybe_async(self._status(node_id))

    def decommission_status(self, node_id: int) -> Any:
        self._known(node_id)
        return self._maybe_async(self._status(node_id))

    def cancel_decommission(self, node_id: int) -> Any:
        self.calls.append(("cancel", node_id))
        self._known(node_id)
        if node_id not in self.decommissioning:
            raise ValueError("no decommission in progress")
        self.decommissioning.discard(node_id)
        self.state[node_id] = NodeState.ALIVE
        return self._maybe_async(self._status(node_id))

    def databases(self) -> Any:
        return self._maybe_async(list(self.dbs))


def _check_protocol(c: ClusterControl) -> None:  # static check: the fake satisfies the Protocol
    pass


_check_protocol(FakeControl())


class Reply:
    def __init__(self, status: int, headers: Any, text: str) -> None:
        self.status = status
        self.headers = headers
        self.text = text

    @property
    def json(self) -> Any:
        assert self.headers["Content-Type"].startswith("application/json"), self.headers["Content-Type"]
        return json.loads(self.text)


def call(
    control: Any,
    method: str,
    path: str,
    *,
    secret: str = SECRET,
    headers: dict | None = None,
    metrics: Metrics | None = None,
) -> Reply:
    """One request through aiohttp's test client, on a fresh app (apps are bound to one loop)."""

    async def go() -> Reply:
        app = make_app(control, secret=secret, metrics=metrics)
        async with TestClient(TestServer(app, host="127.0.0.1")) as c:
            resp = await c.request(method, path, headers=headers or {})
            return Reply(resp.status, resp.headers, await resp.text())

    return run_async(go())


def auth(kind: str = "header", secret: str = SECRET) -> dict[str, str]:
    return {"X-Marmot-Secret": secret} if kind == "header" else {"Authorization": f"Bearer {secret}"}


# (method, path, expected status with a valid secret on a fresh FakeControl)
ROUTES = [
    ("GET", "/admin/cluster/members", 200),
    ("GET", "/admin/cluster/health", 200),
    ("POST", "/admin/cluster/remove/2", 200),
    ("POST", "/admin/cluster/allow/3", 200),
    ("POST", "/admin/cluster/decommission/2", 200),
    ("GET", "/admin/cluster/decommission/2/status", 200),
    ("POST", "/admin/cluster/decommission/2/cancel", 409),  # nothing to cancel on a fresh control
    ("GET", "/admin/databases", 200),
]
MUTATIONS = [r for r in ROUTES if r[0] == "POST"]
READS = [r for r in ROUTES if r[0] == "GET"]


# ----------------------------------------------------------------------------------------------------------
# auth


@pytest.mark.parametrize(("method", "path", "expected"), ROUTES)
@pytest.mark.parametrize("style", ["header", "bearer"])
def test_valid_secret_in_either_header_style_is_accepted(
    method: str, path: str, expected: int, style: str
) -> None:
    r = call(FakeControl(), method, path, headers=auth(style))
    assert r.status == expected, r.text
    assert isinstance(r.json, dict)


@pytest.mark.parametrize(("method", "path", "expected"), ROUTES)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Marmot-Secret": "wrong"},
        {"Authorization": "Bearer wrong"},
        {"X-Marmot-Secret": ""},
        {"Authorization": f"Basic {SECRET}"},
        {"Authorization": "Bearer"},
        {"X-Marmot-Secret": SECRET[:-1]},
    ],
    ids=[
        "missing",
        "wrong-header",
        "wrong-bearer",
        "empty-header",
        "basic-scheme",
        "bearer-no-token",
        "prefix",
    ],
)
def test_missing_or_wrong_secret_is_401_and_changes_nothing(
    method: str, path: str, expected: int, headers: dict
) -> None:
    control = FakeControl()
    r = call(control, method, path, headers=headers)
    assert r.status == 401
    assert "error" in r.json and r.json["error"]
    assert r.headers.get("WWW-Authenticate", "").startswith("Bearer")
    assert control.calls == []


def test_one_matching_secret_of_two_offered_is_enough() -> None:
    headers = {"X-Marmot-Secret": "wrong", "Authorization": f"bearer {SECRET}"}
    assert call(FakeControl(), "GET", "/admin/cluster/members", headers=headers).status == 200


def test_unknown_route_needs_auth_before_it_is_404() -> None:
    for path in ("/admin/nope", "/nope", "/admin/cluster/members/", "/%61dmin/cluster/members"):
        assert call(FakeControl(), "GET", path).status == 401, path
    r = call(FakeControl(), "GET", "/admin/nope", headers=auth())
    assert r.status == 404
    assert "no such route" in r.json["error"]
    r = call(FakeControl(), "GET", "/nope", secret="")
    assert (r.status, "error" in r.json) == (404, True)


def test_no_spelling_of_a_protected_path_skips_auth() -> None:
    """Raw request lines, so no client normalises the path first: each is 401 (or 404 without a route,
    after auth) but never served."""
    control = FakeControl()
    paths = [
        "//admin/cluster/members",
        "/./admin/cluster/members",
        "/metrics/../admin/cluster/members",
        "/metrics/%2e%2e/admin/cluster/members",
        "/admin%2fcluster%2fmembers",
        "/%61dmin/cluster/members",
        "http://h/admin/cluster/members",
        "/metrics/",
        "/METRICS",
    ]
    with LiveServer(make_app(control, secret=SECRET, metrics=Metrics(1))) as server:
        host, port = server.address.rsplit(":", 1)
        for path in paths:
            with socket.create_connection((host, int(port)), timeout=5) as s:
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n".encode())
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
            assert data.split(b"\r\n", 1)[0] == b"HTTP/1.1 401 Unauthorized", (path, data[:200])


def test_wrong_method_is_405_json_with_allow() -> None:
    r = call(FakeControl(), "GET", "/admin/cluster/remove/2", headers=auth())
    assert r.status == 405
    assert "error" in r.json
    assert "POST" in r.headers.get("Allow", "")


@pytest.mark.parametrize(("method", "path", "expected"), MUTATIONS)
def test_empty_secret_refuses_membership_changes_with_403(method: str, path: str, expected: int) -> None:
    control = FakeControl()
    r = call(control, method, path, secret="", headers=auth())
    assert r.status == 403
    assert "requires cluster_secret" in r.json["error"]
    assert control.calls == []


@pytest.mark.parametrize(("method", "path", "expected"), READS)
def test_empty_secret_leaves_reads_open(method: str, path: str, expected: int) -> None:
    r = call(FakeControl(), method, path, secret="")
    assert r.status == expected
    assert "error" not in r.json


# ----------------------------------------------------------------------------------------------------------
# reads


def test_members_shape_and_quorum_info() -> None:
    body = call(FakeControl(), "GET", "/admin/cluster/members", headers=auth()).json
    assert body["node_id"] == 1
    assert [m["node_id"] for m in body["members"]] == [1, 2, 3]
    assert body["members"][0] == {
        "node_id": 1,
        "address": "127.0.0.1:8080",
        "state": "ALIVE",
        "incarnation": 1,
        "last_seen_ms_ago": 0,
        "mysql_address": "127.0.0.1:3307",
    }
    assert body["members"][2]["state"] == "SUSPECT"  # enum states leave as their names
    assert (body["total"], body["alive"], body["alive_nodes"]) == (3, 2, [1, 2])
    assert (body["quorum_size"], body["has_quorum"]) == (2, True)


def test_health_200_when_alive_with_quorum() -> None:
    r = call(FakeControl(), "GET", "/admin/cluster/health", headers=auth())
    assert r.status == 200
    assert r.json == {
        "node_id": 1,
        "state": "ALIVE",
        "ok": True,
        "total": 3,
        "alive": 2,
        "alive_nodes": [1, 2],
        "quorum_size": 2,
        "has_quorum": True,
        "join": {"joined": True, "seeds": ["127.0.0.1:8080"]},
        "reasons": [],
    }


def test_health_503_without_quorum() -> None:
    control = FakeControl()
    control.state[2] = NodeState.DEAD
    r = call(control, "GET", "/admin/cluster/health", headers=auth())
    assert r.status == 503
    assert r.json["ok"] is False and r.json["has_quorum"] is False
    assert r.json["reasons"] == ["no quorum: 1 of 3 members alive, 2 needed"]


def test_health_503_while_joining_or_leaving_even_with_quorum() -> None:
    for state in (NodeState.JOINING, NodeState.LEAVING):
        control = FakeControl(node_id=3)
        control.state[3] = state
        r = call(control, "GET", "/admin/cluster/health", headers=auth())
        assert r.status == 503
        assert r.json["state"] == state.name
        assert r.json["has_quorum"] is True
        assert r.json["reasons"] == [f"node state is {state.name}"]


def test_health_503_first_reason_not_joined_and_cli_lists_the_seeds() -> None:
    control = FakeControl(node_id=3)
    control.state = {3: NodeState.JOINING}
    why = "node 3 has not joined a cluster: no seed admitted it (seed 127.0.0.1:9: connection refused); ..."
    control.join = {
        "joined": False,
        "seeds": ["127.0.0.1:9"],
        "failures": {"127.0.0.1:9": "connection refused"},
        "attempts": 4,
        "last_attempt_ms_ago": 120,
        "not_joined_for_s": 3.5,
        "reason": why,
    }
    r = call(control, "GET", "/admin/cluster/health", headers=auth())
    assert r.status == 503
    assert r.json["join"] == control.join
    assert r.json["reasons"][0] == why
    text = client.format_health(r.json)
    assert "NOT JOINED after 4 attempts" in text and "seed 127.0.0.1:9: connection refused" in text


def test_health_503_when_self_is_not_listed() -> None:
    r = call(FakeControl(node_id=9), "GET", "/admin/cluster/health", headers=auth())
    assert (r.status, r.json["state"]) == (503, "UNKNOWN")


def test_databases() -> None:
    body = call(FakeControl(), "GET", "/admin/databases", headers=auth()).json
    assert body == {
        "node_id": 1,
        "databases": [
            {"name": "marmot", "size_bytes": 8192, "tables": 3},
            {"name": "app", "size_bytes": 65536, "tables": 12},
        ],
    }


# ----------------------------------------------------------------------------------------------------------
# membership changes


def test_remove_then_allow() -> None:
    control = FakeControl()
    r = call(control, "POST", "/admin/cluster/remove/2", headers=auth())
    assert r.status == 200
    assert r.json["node_id"] == 2 and r.json["status"] == "removed"
    assert r.json["member"]["state"] == "REMOVED"
    assert control.state[2] is NodeState.REMOVED
    r = call(control, "POST", "/admin/cluster/allow/2", headers=auth("bearer"))
    assert r.status == 200
    assert (r.json["node_id"], r.json["status"], r.json["member"]["state"]) == (2, "allowed", "DEAD")
    assert "restart" in r.json["message"]


@pytest.mark.parametrize(
    "path",
    [
        "/admin/cluster/remove/{}",
        "/admin/cluster/allow/{}",
        "/admin/cluster/decommission/{}",
        "/admin/cluster/decommission/{}/cancel",
    ],
)
def test_unknown_node_id_is_404(path: str) -> None:
    r = call(FakeControl(), "POST", path.format(42), headers=auth())
    assert r.status == 404
    assert r.json == {"error": "unknown node id 42"}


def test_unknown_node_id_status_is_404() -> None:
    r = call(FakeControl(), "GET", "/admin/cluster/decommission/42/status", headers=auth())
    assert (r.status, r.json) == (404, {"error": "unknown node id 42"})


@pytest.mark.parametrize("bad", ["abc", "-1", "1.5", "0x2", "%20 2", "99999999999999999999", "٣"])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/admin/cluster/remove/{}"),
        ("POST", "/admin/cluster/allow/{}"),
        ("POST", "/admin/cluster/decommission/{}"),
        ("GET", "/admin/cluster/decommission/{}/status"),
        ("POST", "/admin/cluster/decommission/{}/cancel"),
    ],
)
def test_non_integer_node_id_is_400(bad: str, method: str, path: str) -> None:
    control = FakeControl()
    r = call(control, method, path.format(bad), headers=auth())
    assert r.status == 400
    assert "invalid node id" in r.json["error"]
    assert control.calls == []


def test_refused_change_is_409_with_the_reason() -> None:
    r = call(FakeControl(), "POST", "/admin/cluster/remove/1", headers=auth())
    assert r.status == 409
    assert r.json == {"error": "cannot remove node 1: a node cannot remove itself; ask another node"}


@pytest.mark.parametrize("async_io", [False, True], ids=["sync", "async"])
def test_decommission_status_and_cancel(async_io: bool) -> None:
    control = FakeControl(async_io=async_io)
    r = call(control, "POST", "/admin/cluster/decommission/2", headers=auth())
    assert r.status == 200
    assert r.json == {
        "node_id": 2,
        "state": "LEAVING",
        "decommissioning": True,
        "phase": "draining",
        "pending_transactions": 2,
    }
    r = call(control, "POST", "/admin/cluster/decommission/2", headers=auth())
    assert (r.status, r.json["error"]) == (
        409,
        "cannot decommission node 2: decommission already in progress",
    )
    r = call(control, "GET", "/admin/cluster/decommission/2/status", headers=auth())
    assert (r.status, r.json["phase"]) == (200, "draining")
    r = call(control, "POST", "/admin/cluster/decommission/2/cancel", headers=auth())
    assert (r.status, r.json["decommissioning"], r.json["state"]) == (200, False, "ALIVE")
    r = call(control, "GET", "/admin/databases", headers=auth())
    assert len(r.json["databases"]) == 2


def test_failed_forward_is_502() -> None:
    control = FakeControl()
    control.unreachable.add(3)
    r = call(control, "POST", "/admin/cluster/decommission/3", headers=auth())
    assert r.status == 502
    assert r.json["error"].startswith("cannot decommission node 3:")


def test_unexpected_control_error_is_500_json(caplog: pytest.LogCaptureFixture) -> None:
    control = FakeControl()

    def boom() -> list[dict]:
        raise RuntimeError("membership exploded")

    control.members = boom  # type: ignore[method-assign]
    r = call(control, "GET", "/admin/cluster/members", headers=auth())
    assert r.status == 500
    assert r.json == {"error": "internal error (see the node's log)"}
    assert "membership exploded" in caplog.text


# ----------------------------------------------------------------------------------------------------------
# /metrics


@pytest.mark.parametrize("async_io", [False, True], ids=["sync", "async"])
def test_metrics_is_open_and_parses_with_node_id(async_io: bool) -> None:
    control = FakeControl(async_io=async_io)
    metrics = Metrics(1)
    metrics.observe_query("select", 0.001)
    r = call(control, "GET", "/metrics", metrics=metrics)  # no secret sent: /metrics stays open
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    values = {}
    for fam in text_string_to_metric_families(r.text):
        for s in fam.samples:
            assert s.labels["node_id"] == "1"
            values[(s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k != "node_id")))] = s.value
    assert values[("marmot_cluster_members", (("state", "ALIVE"),))] == 2
    assert values[("marmot_cluster_members", (("state", "SUSPECT"),))] == 1
    assert values[("marmot_cluster_quorum_available", ())] == 1
    assert values[("marmot_databases", ())] == 2
    assert values[("marmot_database_size_bytes", (("database", "app"),))] == 65536
    assert values[("marmot_queries_total", (("type", "select"),))] == 1


def test_metrics_survives_a_failing_database_listing() -> None:
    control = FakeControl()

    def boom() -> list[dict]:
        raise OSError("disk busy")

    control.databases = boom  # type: ignore[method-assign]
    r = call(control, "GET", "/metrics", metrics=Metrics(1))
    assert r.status == 200
    assert "marmot_cluster_quorum_available" in r.text


def test_no_metrics_route_without_metrics() -> None:
    r = call(FakeControl(), "GET", "/metrics")
    assert r.status == 404
    assert "error" in r.json


# ----------------------------------------------------------------------------------------------------------
# CLI client against a real server on 127.0.0.1


class LiveServer:
    """The admin app on a real 127.0.0.1 socket, its loop in a thread, for the blocking urllib client."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None
        self.address = ""

    def __enter__(self) -> LiveServer:
        self.thread.start()

        async def start() -> str:
            self.runner = web.AppRunner(self.app, access_log=None)
            await self.runner.setup()
            await web.TCPSite(self.runner, "127.0.0.1", 0).start()
            host, port = self.runner.addresses[0][:2]
            return f"{host}:{port}"

        self.address = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.runner is not None
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def live() -> Any:
    control = FakeControl()
    with LiveServer(make_app(control, secret=SECRET, metrics=Metrics(1))) as server:
        server.control = control  # type: ignore[attr-defined]
        yield server


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fetch_json_ok_auth_error_and_unreachable(live: LiveServer) -> None:
    status, body = client.fetch_json(live.address, "/admin/cluster/members", SECRET)
    assert status == 200 and body["quorum_size"] == 2
    status, body = client.fetch_json(f"http://{live.address}/", "admin/cluster/members", "nope")
    assert status == 401 and body["error"] == "invalid cluster secret"
    status, body = client.fetch_json(live.address, "/admin/cluster/members", None)
    assert status == 401 and "authentication required" in body["error"]
    status, body = client.fetch_json(live.address, "/admin/cluster/remove/2", SECRET, method="POST")
    assert status == 200 and body["status"] == "removed"
    status, text = client.fetch_json(live.address, "/metrics", None)
    assert status == 200 and "marmot_cluster_members" in text["error"]  # not JSON: handed back as text
    with pytest.raises(client.AdminUnreachable, match="Connection refused|cannot reach"):
        client.fetch_json(f"127.0.0.1:{closed_port()}", "/admin/cluster/health", SECRET, timeout=2)


def test_main_members_and_health_exit_codes(
    live: LiveServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(client.SECRET_ENV, raising=False)
    assert client.main_members(["--address", live.address, "--secret", SECRET]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["NODE", "ADDRESS", "STATE", "INCARNATION", "LAST", "SEEN", "MYSQL"]
    assert out.rstrip().endswith("3 members, 2 alive, quorum 2: OK")

    assert client.main_health(["--address", live.address, "--secret", SECRET]) == 0
    assert "node 1: healthy" in capsys.readouterr().out

    assert client.main_members(["--address", live.address]) == 2
    err = capsys.readouterr().err
    assert "authentication failed" in err and "MARMOT_CLUSTER_SECRET" in err
    assert client.main_health(["--address", live.address, "--secret", "wrong"]) == 2
    assert "invalid cluster secret" in capsys.readouterr().err

    monkeypatch.setenv(client.SECRET_ENV, SECRET)  # the default secret comes from the environment
    assert client.main_health(["--address", live.address, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True

    live.control.state[2] = NodeState.DEAD  # type: ignore[attr-defined]
    assert client.main_health(["--address", live.address]) == 1
    out = capsys.readouterr().out
    assert "UNHEALTHY" in out and "no quorum: 1 of 3 members alive, 2 needed" in out
    assert client.main_members(["--address", live.address]) == 0
    assert capsys.readouterr().out.rstrip().endswith("3 members, 1 alive, quorum 2: NO QUORUM")

    unreachable = f"127.0.0.1:{closed_port()}"
    assert client.main_health(["--address", unreachable, "--timeout", "2"]) == 1
    assert "node unreachable" in capsys.readouterr().err
    assert client.main_members(["--address", unreachable, "--timeout", "2"]) == 1


def test_main_reports_a_non_json_or_unexpected_answer(capsys: pytest.CaptureFixture[str]) -> None:
    async def teapot(request: web.Request) -> web.Response:
        return web.Response(status=500, text="kaputt")

    app = web.Application()
    app.router.add_get("/admin/cluster/health", teapot)
    app.router.add_get("/admin/cluster/members", teapot)
    with LiveServer(app) as server:
        assert client.main_health(["--address", server.address]) == 1
        assert "answered 500: kaputt" in capsys.readouterr().err
        assert client.main_members(["--address", server.address]) == 1
        assert "answered 500: kaputt" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------------------
# formatting


MEMBERS = {
    "node_id": 1,
    "members": [
        {
            "node_id": 3,
            "address": "10.0.0.3:8080",
            "state": "SUSPECT",
            "incarnation": 7,
            "last_seen_ms_ago": 6200,
        },
        {"node_id": 1, "address": "10.0.0.1:8080", "state": "ALIVE", "incarnation": 2, "last_seen_ms_ago": 0},
        {
            "node_id": 12,
            "address": "node-twelve.example:8080",
            "state": "ALIVE",
            "incarnation": 14,
            "last_seen_ms_ago": 310,
        },
    ],
    "total": 3,
    "alive": 2,
    "alive_nodes": [1, 12],
    "quorum_size": 2,
    "has_quorum": True,
}


def test_format_members_table() -> None:
    assert client.format_members(MEMBERS) == "\n".join(
        [
            "NODE  ADDRESS                   STATE    INCARNATION  LAST SEEN",
            "1*    10.0.0.1:8080             ALIVE    2            -",
            "3     10.0.0.3:8080             SUSPECT  7            6.2s",
            "12    node-twelve.example:8080  ALIVE    14           310ms",
            "(* = node 1, which answered)",
            "3 members, 2 alive, quorum 2: OK",
        ]
    )


def test_format_members_with_mysql_column_and_no_quorum() -> None:
    obj = {
        "node_id": 5,
        "members": [
            {
                "node_id": 2,
                "address": "a:1",
                "state": "DEAD",
                "incarnation": 1,
                "last_seen_ms_ago": None,
                "mysql_address": "a:3306",
            }
        ],
        "total": 3,
        "alive": 0,
        "quorum_size": 2,
        "has_quorum": False,
    }
    assert client.format_members(obj) == "\n".join(
        [
            "NODE  ADDRESS  STATE  INCARNATION  LAST SEEN  MYSQL",
            "2     a:1      DEAD   1            -          a:3306",
            "3 members, 0 alive, quorum 2: NO QUORUM",
        ]
    )


def test_format_health() -> None:
    assert client.format_health(
        {
            "node_id": 2,
            "state": "ALIVE",
            "ok": True,
            "total": 3,
            "alive": 3,
            "quorum_size": 2,
            "has_quorum": True,
            "reasons": [],
        }
    ) == "\n".join(
        [
            "node 2: healthy",
            "  state:  ALIVE",
            "  quorum: 3 of 3 members alive, 2 needed: OK",
        ]
    )
    text = client.format_health(
        {
            "node_id": 2,
            "state": "JOINING",
            "ok": False,
            "total": 3,
            "alive": 1,
            "quorum_size": 2,
            "has_quorum": False,
            "reasons": ["node state is JOINING", "no quorum: 1 of 3 members alive, 2 needed"],
        }
    )
    assert text.splitlines() == [
        "node 2: UNHEALTHY",
        "  state:  JOINING",
        "  quorum: 1 of 3 members alive, 2 needed: NO QUORUM",
        "  reason: node state is JOINING",
        "  reason: no quorum: 1 of 3 members alive, 2 needed",
    ]


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (None, "-"),
        (-1, "-"),
        (0, "0ms"),
        (999, "999ms"),
        (1000, "1.0s"),
        (59_940, "59.9s"),
        (61_000, "1m01s"),
        (3_600_000, "1h00m"),
        (90_061_000, "1d01h"),
        ("junk", "junk"),
    ],
)
def test_format_duration(ms: Any, text: str) -> None:
    assert client.format_duration_ms(ms) == text


def test_base_url_of() -> None:
    assert client.base_url_of("127.0.0.1:8080") == "http://127.0.0.1:8080"
    assert client.base_url_of("https://n1:8443/") == "https://n1:8443"
    assert client.base_url_of("[::1]:8080") == "http://[::1]:8080"


# -- the dashboard's open paths and the per-database routes' auth (admin/dashboard.py, admin/txn_routes.py)


@pytest.mark.parametrize(
    ("path", "ctype"),
    [
        ("/admin/", "text/html"),
        ("/admin/assets/dashboard.js", "text/javascript"),
        ("/admin/assets/dashboard.css", "text/css"),
    ],
)
def test_dashboard_page_and_assets_are_served_without_the_secret(path: str, ctype: str) -> None:
    r = call(FakeControl(), "GET", path)
    assert r.status == 200 and r.headers["Content-Type"].startswith(ctype)
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Frame-Options"] == "DENY" and r.headers["Cache-Control"] == "no-store"


def test_only_the_dashboards_exact_paths_are_open() -> None:
    for path in ("/admin/assets/other.js", "/admin/assets/", "/admin//", "/admin/index.html"):
        assert call(FakeControl(), "GET", path).status == 401, path
    assert call(FakeControl(), "GET", "/admin/assets/other.js", headers=auth()).status == 404
    r = call(FakeControl(), "GET", "/admin")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/html")  # followed the redirect


def test_transaction_abort_needs_a_secret_and_the_reads_need_auth() -> None:
    control = FakeControl()
    r = call(control, "POST", "/admin/marmot/transactions/12/abort", secret="", headers=auth())
    assert r.status == 403 and "aborting a transaction requires cluster_secret" in r.json["error"]
    for path in ("/admin/marmot/metadata/transactions/pending", "/admin/marmot/metadata/intents"):
        assert call(control, "GET", path).status == 401, path
    r = call(control, "POST", "/admin/marmot/transactions/abc/abort", headers=auth())
    assert r.status == 400 and "invalid transaction id" in r.json["error"]


def test_publisher_route_needs_auth_and_says_when_the_publisher_is_off() -> None:
    assert call(FakeControl(), "GET", "/admin/publisher").status == 401
    r = call(FakeControl(), "GET", "/admin/publisher", headers=auth())
    assert r.status == 200 and r.json == {"node_id": 1, "enabled": False, "sinks": []}

    async def go() -> Reply:
        app = make_app(
            FakeControl(), secret=SECRET, publisher_status=lambda: {"enabled": True, "sinks": [{"name": "n"}]}
        )
        async with TestClient(TestServer(app, host="127.0.0.1")) as c:
            resp = await c.get("/admin/publisher", headers=auth())
            return Reply(resp.status, resp.headers, await resp.text())

    r = run_async(go())
    assert r.status == 200 and r.json["sinks"] == [{"name": "n"}]
