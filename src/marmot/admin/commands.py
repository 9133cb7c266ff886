"""Client side of the admin API for the command line (``marmot members``, ``marmot health``,
``marmot verify``).

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
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
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


def fetch_json(
    base_url: str, path: str, secret: str | None, timeout: float = 5, method: str = "GET"
) -> tuple[int, Any]:
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
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]


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
        row = [
            f"{nid}*" if is_self else str(nid),
            str(m.get("address") or "-"),
            str(m.get("state") or "?"),
            str(m.get("incarnation", "-")),
            "-" if is_self else format_duration_ms(m.get("last_seen_ms_ago")),
        ]
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
    lines = [
        f"node {obj.get('node_id', '?')}: {verdict}",
        f"  state:  {obj.get('state', '?')}",
        f"  quorum: {obj.get('alive', '?')} of {obj.get('total', '?')} members alive, "
        f"{obj.get('quorum_size', '?')} needed: {'OK' if obj.get('has_quorum') else 'NO QUORUM'}",
    ]
    join = obj.get("join") or {}
    if join.get("joined") is False:
        lines.append(f"  join:   NOT JOINED after {join.get('attempts', '?')} attempts; still retrying")
        lines += [f"    seed {seed}: {why}" for seed, why in (join.get("failures") or {}).items()]
    lines += [f"  reason: {r}" for r in obj.get("reasons") or []]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------
# command line


def _parser(prog: str, description: str, address_help: str = "") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument(
        "--address",
        "-address",
        default=DEFAULT_ADDRESS,
        metavar="HOST:PORT",
        help=address_help or f"a node's cluster port (admin API), or a URL (default {DEFAULT_ADDRESS})",
    )
    p.add_argument(
        "--secret",
        "-secret",
        default=None,
        help=f"cluster secret (default: the {SECRET_ENV} environment variable)",
    )
    p.add_argument(
        "--timeout", type=float, default=5.0, metavar="SECONDS", help="request timeout (default 5)"
    )
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
        print(
            f"marmot: authentication failed at {base_url_of(args.address)}: {_error_text(obj)} ({hint})",
            file=sys.stderr,
        )
        return EXIT_AUTH
    return status, obj


def _error_text(obj: Any) -> str:
    if isinstance(obj, dict) and "error" in obj:
        return str(obj["error"])
    return json.dumps(obj)[:300]


def main_members(argv: list[str] | None = None) -> int:
    """``marmot members``: print the cluster membership as this node sees it."""
    args = _parser("marmot members", "Show cluster members and quorum as one node sees them.").parse_args(
        argv
    )
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


# ----------------------------------------------------------------------------------------------------------
# marmot verify: compare every node's table digests (replication/catchup/digest.py)

KEYS_PAGE = 5000  # keys per request when listing a differing table (the route's maximum)
FULL_TIMEOUT = 600.0  # default request timeout of ``verify --full``: a node reads a whole database to answer


class VerifyFailed(Exception):
    """A node could not be asked (unreachable, refused, unexpected answer); the message says which."""


@dataclass
class VerifyReport:
    """What ``verify`` found. ``nodes`` are the labels of the nodes compared, in order; ``tables`` one
    row per (database, table) present on any node: ``{database, table, per_node: [[rows, digest] or
    None], match}``; ``keys`` per differing table the first keys that differ (``{key, versions}``, with
    ``full`` also ``contents``: each node's content hash of the row, None where it has none),
    ``keys_total`` how many differ in all; ``problems`` what could not be compared; ``not_compared``
    (``full``) the tables a node left out of its full digest, and why (virtual tables ...)."""

    nodes: list[str]
    full: bool = False
    tables: list[dict[str, Any]] = field(default_factory=list)
    keys: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    keys_total: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    not_compared: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems and all(t["match"] for t in self.tables)

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "full": self.full,
            "nodes": self.nodes,
            "tables": self.tables,
            "differing_keys": self.keys,
            "differing_keys_total": self.keys_total,
            "problems": self.problems,
            "not_compared": self.not_compared,
        }


def _get_ok(address: str, path: str, secret: str, timeout: float) -> Any:
    """GET ``path``; the JSON on 200, ``None`` on 404, ``VerifyFailed`` otherwise (``PermissionError``
    on 401, so the command can exit with the authentication code)."""
    try:
        status, obj = fetch_json(address, path, secret, timeout=timeout)
    except AdminUnreachable as err:
        raise VerifyFailed(f"node unreachable: {err}") from None
    if status == 401:
        raise PermissionError(f"authentication failed at {base_url_of(address)}: {_error_text(obj)}")
    if status == 404:
        return None
    if status != 200 or not isinstance(obj, dict):
        raise VerifyFailed(f"{base_url_of(address)}{path} answered {status}: {_error_text(obj)}")
    return obj


def verify_nodes(addresses: list[str], secret: str, timeout: float) -> list[tuple[str, str]]:
    """(label, admin address) of the nodes to compare: with one address, every member that node knows
    (REMOVED ones aside); with several, exactly those."""
    if len(addresses) > 1:
        return [(a, a) for a in addresses]
    members = _get_ok(addresses[0], "/admin/cluster/members", secret, timeout)
    if members is None:
        replica = _get_ok(addresses[0], "/admin/replica/status", secret, timeout)
        if replica is None:
            raise VerifyFailed(f"{base_url_of(addresses[0])} has no member list")
        # a replica (no member): the cluster nodes it knows, and the replica itself
        nodes = [
            (f"node {n.get('node_id')}", str(n["address"]))
            for n in sorted(replica.get("cluster_nodes") or [], key=lambda n: n.get("node_id", 0))
            if str(n.get("state", "")).upper() != "REMOVED" and n.get("address")
        ]
        return [*nodes, (f"replica {replica.get('node_id')}", addresses[0])]
    out = []
    for m in sorted(members.get("members") or [], key=lambda m: m.get("node_id", 0)):
        if str(m.get("state", "")).upper() == "REMOVED" or not m.get("address"):
            continue
        out.append((f"node {m.get('node_id')}", str(m["address"])))
    return out


def replicated_databases(nodes: list[tuple[str, str]], secret: str, timeout: float) -> list[str] | None:
    """With a replica among ``nodes``: the databases every such replica follows (a replica may follow
    only some, ``[replica] replicate_databases``), the ones to compare; None (every database) without one."""
    common: set[str] | None = None
    for _label, address in nodes:
        try:
            status = _get_ok(address, "/admin/replica/status", secret, timeout)
        except VerifyFailed:
            continue  # unreachable: collect_digests reports it
        if status is None:
            continue
        names = {str(d.get("database")) for d in status.get("databases") or [] if d.get("database")}
        common = names if common is None else common & names
    return None if common is None else sorted(common)


def _quote(part: str) -> str:
    return urllib.parse.quote(part, safe="")


def collect_digests(
    nodes: list[tuple[str, str]],
    databases: list[str] | None,
    secret: str,
    timeout: float,
    report: VerifyReport,
) -> dict[str, list[dict[str, tuple[int, str]] | None]]:
    """``{db: [per node: {table: (rows, digest hex)} or None (no such database / unreachable)]}``; with
    ``report.full`` the digests recomputed from the tables' contents (``?full=1``)."""
    suffix = "?full=1" if report.full else ""
    names: set[str] = set(databases or [])
    reachable = []
    for label, address in nodes:
        try:
            if databases is None:
                listing = _get_ok(address, "/admin/databases", secret, timeout) or {}
                names.update(str(d.get("name")) for d in listing.get("databases") or [] if d.get("name"))
            reachable.append((label, address))
        except VerifyFailed as err:
            report.problems.append(f"{label}: {err}")
    out: dict[str, list[dict[str, tuple[int, str]] | None]] = {}
    for db in sorted(names):
        per_node: list[dict[str, tuple[int, str]] | None] = []
        for label, address in nodes:
            if (label, address) not in reachable:
                per_node.append(None)
                continue
            try:
                doc = _get_ok(address, f"/admin/databases/{_quote(db)}/digest{suffix}", secret, timeout)
            except VerifyFailed as err:
                report.problems.append(f"{label}: {err}")
                per_node.append(None)
                continue
            if doc is None:
                report.problems.append(f"{label}: has no database {db!r}")
                per_node.append(None)
                continue
            per_node.append(
                {
                    str(t): (int(v.get("rows", 0)), str(v.get("digest", "")))
                    for t, v in (doc.get("tables") or {}).items()
                }
            )
            for t, why in (doc.get("skipped") or {}).items():
                report.not_compared.setdefault(f"{db}.{t}", str(why))
        out[db] = per_node
    return out


def _table_keys(
    address: str, db: str, table: str, secret: str, timeout: float, cap: int, full: bool = False
) -> dict[str, Any]:
    """Every live key of ``table`` on one node (hex -> version), at most ``cap``. With ``full``, every row
    the table holds (hex -> (version or None, content hash))."""
    keys: dict[str, Any] = {}
    after = ""
    while len(keys) < cap:
        query = f"limit={KEYS_PAGE}" + (f"&after={after}" if after else "") + ("&full=1" if full else "")
        doc = _get_ok(
            address, f"/admin/databases/{_quote(db)}/digest/{_quote(table)}/keys?{query}", secret, timeout
        )
        if doc is None:
            break
        for entry in doc.get("keys") or []:
            if full:
                k, v, h = entry
                keys[str(k)] = (tuple(int(x) for x in v) if v is not None else None, str(h))
            else:
                k, v = entry
                keys[str(k)] = tuple(int(x) for x in v)
        after = doc.get("next") or ""
        if not after:
            break
    return keys


def describe_key(hex_key: str) -> str:
    """A row key for people: ``(1)``, ``('bob', 2)`` when it decodes, else its hex."""
    try:
        from marmot.storage.rowkey import decode_row_key

        _table, values = decode_row_key(bytes.fromhex(hex_key))
    except Exception:  # not decodable here (or the storage layer unavailable): show it raw
        return hex_key
    return "(" + ", ".join(repr(v) for v in values) + ")"


def format_version(v: tuple[int, ...] | None) -> str:
    """``(wall_ns, logical, node)`` -> ``2026-01-01T00:00:00.000000010Z/0@1``; ``missing`` for None."""
    if v is None:
        return "missing"
    wall, logical, node = (list(v) + [0, 0, 0])[:3]
    secs, ns = divmod(int(wall), 1_000_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{ns:09d}Z"
    return f"{stamp}/{logical}@{node}"


def diff_table_keys(
    nodes: list[tuple[str, str]],
    db: str,
    table: str,
    secret: str,
    timeout: float,
    cap: int,
    full: bool = False,
) -> tuple[list[dict[str, Any]], int]:
    """The keys whose version is not the same on every node (missing counts), sorted; and how many.
    With ``full``, the keys whose row (version and content hash) is not the same on every node."""
    per_node = [_table_keys(address, db, table, secret, timeout, cap, full) for _, address in nodes]
    differing = []
    for k in sorted(set().union(*per_node)):
        values = [keys.get(k) for keys in per_node]
        if len(set(values)) <= 1:
            continue
        if full:
            differing.append(
                {
                    "key": k,
                    "versions": [list(v[0]) if v is not None and v[0] is not None else None for v in values],
                    "contents": [v[1] if v is not None else None for v in values],
                }
            )
        else:
            differing.append({"key": k, "versions": [list(v) if v is not None else None for v in values]})
    return differing, len(differing)


def verify(
    addresses: list[str],
    secret: str,
    *,
    databases: list[str] | None = None,
    timeout: float = 5.0,
    max_keys: int = 20,
    key_cap: int = 1_000_000,
    settle: float = 2.0,
    full: bool = False,
) -> VerifyReport:
    """Compare the digests of every table on every node. Tables that differ are fetched again after
    ``settle`` seconds (writes in flight reach followers a little later: a difference that persists is
    divergence), then their key lists are compared. ``full``: digests and keys recomputed by each node
    from its tables' contents (``replication/catchup/full_digest.py``: finds rows changed behind replication's
    back, at the cost of reading every row). Raises ``VerifyFailed`` when there is nothing to compare,
    ``PermissionError`` on a refused secret."""
    nodes = verify_nodes(addresses, secret, timeout)
    if not nodes:
        raise VerifyFailed("no nodes to compare")
    report = VerifyReport([label for label, _ in nodes], full=full)
    if databases is None:
        databases = replicated_databases(nodes, secret, timeout)
    digests = collect_digests(nodes, databases, secret, timeout, report)

    def rows_of(dbs: dict[str, list[dict[str, tuple[int, str]] | None]]) -> list[dict[str, Any]]:
        rows = []
        for db, per_node in dbs.items():
            tables = sorted(set().union(*(p.keys() for p in per_node if p is not None)))
            for table in tables:
                cells = [None if p is None else list(p.get(table, (0, "0" * 16))) for p in per_node]
                match = all(c is not None for c in cells) and len({tuple(c) for c in cells if c}) == 1
                rows.append({"database": db, "table": table, "per_node": cells, "match": match})
        return rows

    report.tables = rows_of(digests)
    if settle > 0 and not all(t["match"] for t in report.tables):
        time.sleep(settle)
        report.problems.clear()
        report.tables = rows_of(collect_digests(nodes, databases, secret, timeout, report))
    for t in report.tables:
        if t["match"] or any(c is None for c in t["per_node"]):
            continue
        name = f"{t['database']}.{t['table']}"
        try:
            keys, total = diff_table_keys(nodes, t["database"], t["table"], secret, timeout, key_cap, full)
        except VerifyFailed as err:
            report.problems.append(f"listing the keys of {name}: {err}")
            continue
        report.keys[name] = keys[:max_keys]
        report.keys_total[name] = total
    return report


def format_verify(report: VerifyReport) -> str:
    """The comparison as a table (rows and digest per node, MATCH/DIFFER), then the differing keys."""
    header = ["DATABASE", "TABLE", *(n.upper() for n in report.nodes), "STATUS"]
    rows = []
    for t in report.tables:
        cells = ["-" if c is None else f"{c[0]} {c[1]}" for c in t["per_node"]]
        rows.append([t["database"], t["table"], *cells, "MATCH" if t["match"] else "DIFFER"])
    lines = _table(header, rows) if rows else ["(no replicated rows in any table)"]
    for name, keys in report.keys.items():
        total = report.keys_total.get(name, len(keys))
        more = f", first {len(keys)} shown" if total > len(keys) else ""
        lines.append("")
        if total:
            lines.append(f"{name}: {total} key(s) differ{more}")
        elif report.full:
            lines.append(
                f"{name}: full digests differ but no row differs now (rows changed while they were "
                "read? run it again)"
            )
        else:
            lines.append(
                f"{name}: digests differ but every key has the same version on every node: a stored "
                "digest is stale (recompute it, replication/catchup/digest.py)"
            )
        key_rows = [[describe_key(k["key"]), *_key_cells(k)] for k in keys]
        lines += ["  " + line for line in _table(["KEY", *(n.upper() for n in report.nodes)], key_rows)]
    for table, why in sorted(report.not_compared.items()):
        lines.append(f"not compared: {table}: {why}")
    for p in report.problems:
        lines.append(f"problem: {p}")
    differ = sum(1 for t in report.tables if not t["match"])
    lines.append(
        f"{len(report.tables)} table(s) on {len(report.nodes)} node(s): "
        + (
            "all match"
            if report.ok
            else f"{differ} differ" + (", some nodes not compared" if report.problems else "")
        )
    )
    return "\n".join(lines)


def _key_cells(entry: dict[str, Any]) -> list[str]:
    """One node per cell: the key's version, and with ``--full`` the row's content hash (``missing``: the
    node holds no such row)."""
    versions = entry["versions"]
    contents = entry.get("contents")
    if contents is None:
        return [format_version(tuple(v) if v else None) for v in versions]
    return [
        "missing" if h is None else f"{format_version(tuple(v)) if v else 'no version'} row {h[:8]}"
        for v, h in zip(versions, contents, strict=True)
    ]


def main_verify(argv: list[str] | None = None) -> int:
    """``marmot verify``: exit 0 when every table matches on every node, 1 when not (or a node could not
    be compared), 2 when authentication failed."""
    p = _parser(
        "marmot verify",
        "Compare every node's table digests; list the keys of tables that differ.",
        "a node's cluster port (admin API); with one, every member it knows is compared (a replica's: "
        "the replica and the cluster nodes it knows, over the databases it follows), with several "
        f"(comma-separated) exactly those (default {DEFAULT_ADDRESS})",
    )
    p.add_argument(
        "--database",
        "-database",
        action="append",
        metavar="DB",
        help="compare only this database (repeatable; default: every database on any node)",
    )
    p.add_argument(
        "--max-keys", type=int, default=20, metavar="N", help="differing keys shown per table (20)"
    )
    p.add_argument(
        "--settle",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="before reporting a difference, look again after this long (writes in flight; 2)",
    )
    p.add_argument(
        "--full",
        action="store_true",
        help="recompute every digest from the tables' contents on each node (reads every row): "
        "also finds rows changed outside Marmot, which the kept digests cannot see; the "
        f"request timeout defaults to {FULL_TIMEOUT:g} s then",
    )
    p.set_defaults(timeout=None)
    args = p.parse_args(argv)
    if args.timeout is None:
        args.timeout = FULL_TIMEOUT if args.full else 5.0
    secret = args.secret if args.secret is not None else os.environ.get(SECRET_ENV, "")
    addresses = [a.strip() for a in args.address.split(",") if a.strip()]
    if not addresses:
        p.error("--address is empty")
    try:
        report = verify(
            addresses,
            secret,
            databases=args.database,
            timeout=args.timeout,
            max_keys=max(0, args.max_keys),
            settle=max(0.0, args.settle),
            full=args.full,
        )
    except PermissionError as err:
        hint = "pass --secret or set " + SECRET_ENV if not secret else "check --secret / " + SECRET_ENV
        print(f"marmot: {err} ({hint})", file=sys.stderr)
        return EXIT_AUTH
    except VerifyFailed as err:
        print(f"marmot: {err}", file=sys.stderr)
        return EXIT_FAIL
    print(json.dumps(report.as_json(), indent=2) if args.json else format_verify(report))
    return EXIT_OK if report.ok else EXIT_FAIL
