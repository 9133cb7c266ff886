"""Client side of the admin API for the command line (``marmot members``, ``marmot health``).

Blocking ``urllib`` on purpose: a CLI call is one request, and it must work without an event loop or any
dependency beyond the standard library. ``fetch_json`` returns what the node said (status + JSON, error
bodies included) and raises ``AdminUnreachable`` only when there was no HTTP answer at all.

Exit codes of ``main_*``: 0 ok, 1 unhealthy / unreachable / unexpected answer, 2 authentication failed
(or bad usage, as argparse does).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any

DEFAULT_ADDRESS = "127.0.0.1:8080"
SECRET_ENV = "MARMOT_CLUSTER_SECRET"

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_AUTH = 2


class AdminUnreachable(Exception):
    """No HTTP answer from the node (refused, timed out, DNS, TLS ...)."""


def base_url_of(address: str) -> str:
    """``host:port`` or a full ``http(s)://`` URL -> base URL without a trailing slash."""
    address = address.strip()
    if "://" not in address:
        address = "http://" + address
    return address.rstrip("/")


def fetch_json(base_url: str, path: str, secret: str | None, timeout: float = 5,
               method: str = "GET") -> tuple[int, Any]:
    """Request ``path`` from a node's admin API; ``(HTTP status, decoded JSON)``.

    Error statuses are returned, not raised; a body that is not JSON comes back as ``{"error": text}``.
    Raises ``AdminUnreachable`` when the node gave no HTTP answer.
    """
    url = base_url_of(base_url) + "/" + path.lstrip("/")
    headers = {"Accept": "application/json"}
    if secret:
        headers["X-Marmot-Secret"] = secret
    req = urllib.request.Request(url, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, _decode(resp.read())
    except urllib.error.HTTPError as err:
        try:
            return err.code, _decode(err.read())
        finally:
            err.close()
    except urllib.error.URLError as err:
        reason = err.reason
        raise AdminUnreachable(f"cannot reach {url}: {_reason_text(reason)}") from err
    except TimeoutError as err:
        raise AdminUnreachable(f"cannot reach {url}: timed out after {timeout:g}s") from err
    except OSError as err:  # connection reset mid-answer and the like
        raise AdminUnreachable(f"cannot reach {url}: {_reason_text(err)}") from err


def _reason_text(reason: Any) -> str:
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    if isinstance(reason, TimeoutError):
        return "timed out"
    return str(reason) or type(reason).__name__


def _decode(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        text = body.decode("utf-8", "replace").strip()
        return {"error": text[:500] or "empty answer"}


# ----------------------------------------------------------------------------------------------------------
# formatting


def format_duration_ms(ms: Any) -> str:
    """``last_seen_ms_ago`` for people: ``-``, ``850ms``, ``3.2s``, ``4m05s``, ``2h03m``, ``3d04h``."""
    if ms is None or ms == "":
        return "-"
    try:
        ms = float(ms)
    except (TypeError, ValueError):
        return str(ms)
    if ms < 0:
        return "-"
    if ms < 1000:
        return f"{ms:.0f}ms"
    s = ms / 1000
    if s < 60:
        return f"{s:.1f}s"
    s = int(s)
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in [header, *rows]]


def _summary(obj: dict[str, Any]) -> str:
    total = obj.get("total", len(obj.get("members", [])))
    alive = obj.get("alive", "?")
    verdict = "OK" if obj.get("has_quorum") else "NO QUORUM"
    return f"{total} members, {alive} alive, quorum {obj.get('quorum_size', '?')}: {verdict}"


def format_members(obj: dict[str, Any]) -> str:
    """The ``/admin/cluster/members`` answer as an aligned table plus the summary line
    ``3 members, 3 alive, quorum 2: OK``. This node's id is marked ``*``."""
    members = sorted(obj.get("members") or [], key=lambda m: m.get("node_id", 0))
    self_id = obj.get("node_id")
    with_mysql = any(m.get("mysql_address") for m in members)
    header = ["NODE", "ADDRESS", "STATE", "INCARNATION", "LAST SEEN"] + (["MYSQL"] if with_mysql else [])
    rows = []
    for m in members:
        nid = m.get("node_id", "?")
        is_self = self_id is not None and nid == self_id
        row = [f"{nid}*" if is_self else str(nid), str(m.get("address") or "-"), str(m.get("state") or "?"),
               str(m.get("incarnation", "-")),
               "-" if is_self else format_duration_ms(m.get("last_seen_ms_ago"))]
        if with_mysql:
            row.append(str(m.get("mysql_address") or "-"))
        rows.append(row)
    lines = _table(header, rows)
    if self_id is not None and any(r[0].endswith("*") for r in rows):
        lines.append(f"(* = node {self_id}, which answered)")
    lines.append(_summary(obj))
    return "\n".join(lines)


def format_health(obj: dict[str, Any]) -> str:
    """The ``/admin/cluster/health`` answer in a few lines: verdict, state, quorum, reasons."""
    verdict = "healthy" if obj.get("ok") else "UNHEALTHY"
    lines = [f"node {obj.get('node_id', '?')}: {verdict}",
             f"  state:  {obj.get('state', '?')}",
             f"  quorum: {obj.get('alive', '?')} of {obj.get('total', '?')} members alive, "
             f"{obj.get('quorum_size', '?')} needed: {'OK' if obj.get('has_quorum') else 'NO QUORUM'}"]
    lines += [f"  reason: {r}" for r in obj.get("reasons") or []]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------
# command line


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--address", "-address", default=DEFAULT_ADDRESS, metavar="HOST:PORT",
                   help=f"a node's cluster port (admin API), or a URL (default {DEFAULT_ADDRESS})")
    p.add_argument("--secret", "-secret", default=None,
                   help=f"cluster secret (default: the {SECRET_ENV} environment variable)")
    p.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS", help="request timeout (default 5)")
    p.add_argument("--json", action="store_true", help="print the node's JSON answer unchanged")
    return p


def _get(args: argparse.Namespace, path: str) -> tuple[int, Any] | int:
    """Fetch ``path``; an exit code when there is nothing to show."""
    secret = args.secret if args.secret is not None else os.environ.get(SECRET_ENV, "")
    try:
        status, obj = fetch_json(args.address, path, secret, timeout=args.timeout)
    except AdminUnreachable as err:
        print(f"marmot: node unreachable: {err}", file=sys.stderr)
        return EXIT_FAIL
    if status == 401:
        hint = "pass --secret or set " + SECRET_ENV if not secret else "check --secret / " + SECRET_ENV
        print(f"marmot: authentication failed at {base_url_of(args.address)}: {_error_text(obj)} ({hint})",
              file=sys.stderr)
        return EXIT_AUTH
    return status, obj


def _error_text(obj: Any) -> str:
    if isinstance(obj, dict) and "error" in obj:
        return str(obj["error"])
    return json.dumps(obj)[:300]


def main_members(argv: list[str] | None = None) -> int:
    """``marmot members``: print the cluster membership as this node sees it."""
    args = _parser("marmot members", "Show cluster members and quorum as one node sees them.").parse_args(argv)
    got = _get(args, "/admin/cluster/members")
    if isinstance(got, int):
        return got
    status, obj = got
    if status != 200 or not isinstance(obj, dict):
        print(f"marmot: {base_url_of(args.address)} answered {status}: {_error_text(obj)}", file=sys.stderr)
        return EXIT_FAIL
    print(json.dumps(obj, indent=2) if args.json else format_members(obj))
    return EXIT_OK


def main_health(argv: list[str] | None = None) -> int:
    """``marmot health``: exit 0 when the node is healthy (ALIVE with quorum), 1 when not or unreachable."""
    args = _parser("marmot health", "Check one node's health (ALIVE and quorum).").parse_args(argv)
    got = _get(args, "/admin/cluster/health")
    if isinstance(got, int):
        return got
    status, obj = got
    if status not in (200, 503) or not isinstance(obj, dict) or "ok" not in obj:
        print(f"marmot: {base_url_of(args.address)} answered {status}: {_error_text(obj)}", file=sys.stderr)
        return EXIT_FAIL
    print(json.dumps(obj, indent=2) if args.json else format_health(obj))
    return EXIT_OK if status == 200 and obj.get("ok") else EXIT_FAIL
