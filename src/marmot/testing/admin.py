"""Calls to a node's admin HTTP API (on its cluster port), for launchers, tests and benchmarks.

Plain ``urllib``: a launcher must be able to ask "does every node see every member ALIVE?" without an
event loop or a client library. Every call sends the cluster secret in ``X-Marmot-Secret``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from marmot.testing.nodes import NodeProcess

# the ``[cluster] cluster_secret`` of every cluster marmot.testing starts unless told otherwise
SECRET = "replicated-test-secret"


def _request(node: NodeProcess, path: str, secret: str, method: str = "GET") -> urllib.request.Request:
    return urllib.request.Request(
        f"http://127.0.0.1:{node.grpc_port}{path}", method=method, headers={"X-Marmot-Secret": secret}
    )


def admin_json(node: NodeProcess, path: str, secret: str = SECRET, timeout: float = 5.0) -> Any:
    """GET an admin route of ``node`` (JSON); an HTTP error or a dead node raises."""
    with urllib.request.urlopen(_request(node, path, secret), timeout=timeout) as resp:
        return json.loads(resp.read())


def admin_call(
    node: NodeProcess, path: str, method: str = "GET", secret: str = SECRET, timeout: float = 15.0
) -> tuple[int, dict[str, Any]]:
    """Call an admin route of ``node``: (HTTP status, JSON body); an error status is returned, not raised."""
    try:
        with urllib.request.urlopen(_request(node, path, secret, method), timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def member_states(node: NodeProcess, secret: str = SECRET, timeout: float = 5.0) -> dict[int, str]:
    """The membership table as ``node`` sees it, ``{node_id: state}``; ``{}`` while it cannot answer."""
    try:
        body = admin_json(node, "/admin/cluster/members", secret, timeout)
    except (urllib.error.URLError, OSError, ValueError):
        return {}
    return {int(m["node_id"]): str(m["state"]) for m in body.get("members", [])}
