"""Operator commands on a running cluster: ``marmot remove | allow | decommission | databases | status``.

Why a command each: every membership change and every question an operator asks during an incident
must be one line that needs neither curl nor the secret in a header by hand. Each command is a thin
wrapper over one or two admin routes (docs/admin-api.md) and shares ``commands.py``'s client, options
(``--address``, ``--secret`` or ``MARMOT_CLUSTER_SECRET``, ``--timeout``, ``--json``) and exit codes:
0 done / healthy, 1 refused / unhealthy / unreachable (the node's reason on stderr), 2 authentication
failed or bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from marmot.admin.commands import (
    EXIT_AUTH,
    EXIT_FAIL,
    EXIT_OK,
    SECRET_ENV,
    AdminUnreachable,
    _error_text,
    _parser,
    _table,
    base_url_of,
    fetch_json,
    format_duration_ms,
    format_members,
)


class CommandFailed(Exception):
    """The command cannot go on; ``code`` is the exit code, the message goes to stderr."""

    def __init__(self, message: str, code: int = EXIT_FAIL) -> None:
        super().__init__(message)
        self.code = code


def _secret(args: argparse.Namespace) -> str:
    return str(args.secret) if args.secret is not None else os.environ.get(SECRET_ENV, "")


def call(args: argparse.Namespace, path: str, method: str = "GET", ok: tuple[int, ...] = (200,)) -> Any:
    """One admin request; the JSON answer when its status is in ``ok``, else ``CommandFailed`` carrying
    the node's own error message (401 -> exit 2 with a hint about the secret)."""
    secret = _secret(args)
    where = base_url_of(args.address)
    try:
        status, obj = fetch_json(args.address, path, secret, timeout=args.timeout, method=method)
    except AdminUnreachable as err:
        raise CommandFailed(f"node unreachable: {err}") from None
    if status == 401:
        hint = "pass --secret or set " + SECRET_ENV if not secret else "check --secret / " + SECRET_ENV
        raise CommandFailed(f"authentication failed at {where}: {_error_text(obj)} ({hint})", EXIT_AUTH)
    if status not in ok or not isinstance(obj, dict):
        raise CommandFailed(f"{where} refused {method} {path} ({status}): {_error_text(obj)}")
    return obj


def _run(args: argparse.Namespace, body: Any) -> int:
    """Run ``body(args)`` (prints, returns an exit code), turning ``CommandFailed`` into its message."""
    try:
        return int(body(args))
    except CommandFailed as err:
        print(f"marmot: {err}", file=sys.stderr)
        return err.code


def _node_parser(prog: str, description: str) -> argparse.ArgumentParser:
    p = _parser(prog, description)
    p.add_argument("node_id", type=int, metavar="NODE_ID", help="the node to act on (see 'marmot members')")
    return p


def _emit(args: argparse.Namespace, obj: Any, text: str) -> None:
    print(json.dumps(obj, indent=2) if args.json else text)


# ----------------------------------------------------------------------------------------------------------
# remove / allow


def main_remove(argv: list[str] | None = None) -> int:
    """``marmot remove NODE_ID``: mark a member REMOVED (out of the quorum, cannot rejoin until allowed)."""
    p = _node_parser(
        "marmot remove",
        "Remove a member from the cluster: it no longer counts towards quorum and cannot rejoin until "
        "'marmot allow'. For a dead node; a live one should be decommissioned instead.",
    )

    def body(args: argparse.Namespace) -> int:
        obj = call(args, f"/admin/cluster/remove/{args.node_id}", "POST")
        state = (obj.get("member") or {}).get("state", "REMOVED")
        _emit(args, obj, f"node {args.node_id} removed (state {state}); it cannot rejoin until allowed")
        return EXIT_OK

    return _run(p.parse_args(argv), body)


def main_allow(argv: list[str] | None = None) -> int:
    """``marmot allow NODE_ID``: let a removed member rejoin (it joins when next started)."""
    p = _node_parser("marmot allow", "Allow a removed member to rejoin; restart it afterwards to join.")

    def body(args: argparse.Namespace) -> int:
        obj = call(args, f"/admin/cluster/allow/{args.node_id}", "POST")
        _emit(args, obj, f"node {args.node_id} allowed to rejoin: {obj.get('message', 'restart it to join')}")
        return EXIT_OK

    return _run(p.parse_args(argv), body)


# ----------------------------------------------------------------------------------------------------------
# decommission


def format_decommission(obj: dict[str, Any]) -> str:
    return (
        f"node {obj.get('node_id', '?')}: phase {obj.get('phase', '?')}, state {obj.get('state', '?')}, "
        f"{obj.get('pending_transactions', '?')} transaction(s) in flight"
    )


def main_decommission(argv: list[str] | None = None) -> int:
    """``marmot decommission NODE_ID [--wait | --status | --cancel]``."""
    p = _node_parser(
        "marmot decommission",
        "Decommission a live member: it announces LEAVING, drains its in-flight transactions (at most "
        "shutdown_grace_period_ms) and stops. Ask any node; the command is forwarded to the target.",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--wait", action="store_true", help="start it and wait until the node has left")
    mode.add_argument("--status", action="store_true", help="only show where a decommission stands")
    mode.add_argument("--cancel", action="store_true", help="cancel a decommission still draining")
    p.add_argument(
        "--wait-timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="with --wait: give up (exit 1) after this long (120)",
    )

    def body(args: argparse.Namespace) -> int:
        base = f"/admin/cluster/decommission/{args.node_id}"
        if args.status:
            obj = call(args, base + "/status")
        elif args.cancel:
            obj = call(args, base + "/cancel", "POST")
        else:
            asked = call(args, "/admin/cluster/members").get("node_id") if args.wait else None
            obj = call(args, base, "POST")
            if args.wait:
                obj = _wait_done(args, base + "/status", itself=asked == args.node_id)
        _emit(args, obj, format_decommission(obj))
        return EXIT_OK

    return _run(p.parse_args(argv), body)


def _wait_done(args: argparse.Namespace, status_path: str, itself: bool = False) -> dict[str, Any]:
    """Poll the status (asking the node given, which forwards) until the phase is ``done``. ``itself``:
    the node asked is the one leaving, so once it no longer answers it has stopped: that is done too."""
    deadline = time.monotonic() + args.wait_timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            last = call(args, status_path)
        except CommandFailed as err:
            if err.code == EXIT_AUTH:
                raise
            if itself and "node unreachable" in str(err):
                return {
                    "node_id": args.node_id,
                    "phase": "done",
                    "state": "stopped",
                    "pending_transactions": 0,
                }
            last = {"error": str(err)}  # the target stopping may drop a forward: ask again
        if last.get("phase") == "done":
            return last
        time.sleep(0.5)
    raise CommandFailed(
        f"node {args.node_id} has not finished its decommission after {args.wait_timeout:g}s "
        f"(last answer: {json.dumps(last)[:300]})"
    )


# ----------------------------------------------------------------------------------------------------------
# databases


def format_size(n: Any) -> str:
    """Bytes for people: ``812 B``, ``4.0 KiB``, ``12.5 MiB``, ``3.1 GiB``."""
    try:
        size = float(n)
    except (TypeError, ValueError):
        return str(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"  # pragma: no cover


def format_databases(obj: dict[str, Any]) -> str:
    dbs = sorted(obj.get("databases") or [], key=lambda d: str(d.get("name")))
    rows = [[str(d.get("name")), str(d.get("tables", "?")), format_size(d.get("size_bytes"))] for d in dbs]
    lines = _table(["DATABASE", "TABLES", "SIZE"], rows) if rows else ["(no databases)"]
    lines.append(f"{len(rows)} database(s) on node {obj.get('node_id', '?')}")
    return "\n".join(lines)


def main_databases(argv: list[str] | None = None) -> int:
    """``marmot databases``: the databases of one node, with table counts and sizes."""
    p = _parser("marmot databases", "List the databases of one node (tables, size on disk).")

    def body(args: argparse.Namespace) -> int:
        obj = call(args, "/admin/databases")
        _emit(args, obj, format_databases(obj))
        return EXIT_OK

    return _run(p.parse_args(argv), body)


# ----------------------------------------------------------------------------------------------------------
# status


def format_lag(obj: dict[str, Any]) -> list[str]:
    entries = sorted(obj.get("lag") or [], key=lambda e: (str(e.get("database")), int(e.get("peer", 0))))
    if not entries:
        return ["replication: no anti-entropy round yet (or no peers)"]
    rows = [
        [
            str(e.get("database")),
            str(e.get("peer")),
            str(e.get("behind_txns", "?")),
            format_duration_ms(float(e.get("lag_seconds") or 0) * 1000),
            ",".join(e.get("divergent_tables") or []) or "-",
        ]
        for e in entries
    ]
    return ["replication:"] + [
        "  " + line for line in _table(["DATABASE", "PEER", "BEHIND", "LAG", "DIVERGENT"], rows)
    ]


def main_status(argv: list[str] | None = None) -> int:
    """``marmot status``: one node's health, the members it sees, its databases and its replication lag;
    exit 0 when healthy (ALIVE with quorum), 1 otherwise."""
    p = _parser(
        "marmot status",
        "One screen about a node: health, members, databases, replication lag per peer and database.",
    )

    def body(args: argparse.Namespace) -> int:
        health = call(args, "/admin/cluster/health", ok=(200, 503))
        members = call(args, "/admin/cluster/members")
        dbs = call(args, "/admin/databases")
        repl = call(args, "/admin/cluster/replication")
        doc = {"health": health, "members": members, "databases": dbs, "replication": repl}
        verdict = "healthy" if health.get("ok") else "UNHEALTHY"
        lines = [f"node {health.get('node_id', '?')} at {base_url_of(args.address)}: {verdict}"]
        lines += [f"  reason: {r}" for r in health.get("reasons") or []]
        lines += ["", format_members(members), "", format_databases(dbs), "", *format_lag(repl)]
        _emit(args, doc, "\n".join(lines))
        return EXIT_OK if health.get("ok") else EXIT_FAIL

    return _run(p.parse_args(argv), body)


__all__ = [
    "CommandFailed",
    "call",
    "main_allow",
    "main_databases",
    "main_decommission",
    "main_remove",
    "main_status",
]
