"""Talking SQL to node processes: one client connection, "run these statements", and "poll every node
until they all answer the same".

Why ``wait_until_equal``: a write acknowledged at QUORUM is on a majority, not necessarily on the node a
test reads next (followers beyond the quorum apply asynchronously), so a single read on another node is
a race. It polls with a deadline and, when it gives up, shows what each node returned.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import pymysql

from marmot.testing.nodes import NodeProcess


def connect(node: NodeProcess, db: str | None = "marmot", **kw: Any) -> pymysql.connections.Connection:
    """A PyMySQL connection to ``node`` over TCP as root, autocommit on (MySQL's default) and LOCAL
    INFILE allowed. Keyword arguments override (``autocommit=False``, ``read_timeout=...``, ``user=...``)."""
    args: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": node.mysql_port,
        "user": "root",
        "password": "",
        "database": db,
        "autocommit": True,
        "local_infile": True,
        "connect_timeout": 5,
        "read_timeout": 60,
    }
    args.update(kw)
    return pymysql.connect(**args)


def run(node: NodeProcess, *stmts: str, db: str | None = "marmot") -> tuple:
    """Execute statements in order on one connection to ``node``; return the last one's rows."""
    c = connect(node, db)
    try:
        cur = c.cursor()
        for s in stmts:
            cur.execute(s)
        return tuple(cur.fetchall())
    finally:
        c.close()


def node_name(nodes: Sequence[NodeProcess], node: NodeProcess) -> str:
    return f"node {nodes.index(node) + 1} (127.0.0.1:{node.mysql_port})"


def wait_until_equal(
    nodes: Sequence[NodeProcess],
    sql: str,
    timeout: float = 10.0,
    db: str | None = "marmot",
    expected: Any = None,
    args: Any = None,
) -> list[tuple]:
    """Run ``sql`` on every node until all return identical rows (and, if ``expected`` is given, rows
    equal to it); return the per-node results. A node answering with an error (a table or database that
    has not arrived yet) never counts as agreeing. On timeout, fail with each node's last answer."""
    conns: dict[int, Any] = {}
    last: list[Any] = [None] * len(nodes)
    deadline = time.monotonic() + timeout
    try:
        while True:
            for i, node in enumerate(nodes):
                try:
                    if i not in conns:
                        conns[i] = connect(node, db)
                    cur = conns[i].cursor()
                    cur.execute(sql, args)
                    last[i] = tuple(cur.fetchall())
                except pymysql.err.MySQLError as err:
                    last[i] = err
                    c = conns.pop(i, None)
                    if c is not None:
                        c.close()
            ok = all(not isinstance(r, Exception) for r in last) and all(r == last[0] for r in last)
            if ok and (expected is None or last[0] == tuple(expected)):
                return list(last)
            if time.monotonic() >= deadline:
                lines = [f"  {node_name(nodes, node)}: {r!r}" for node, r in zip(nodes, last, strict=True)]
                want = "" if expected is None else f"\n  expected: {tuple(expected)!r}"
                raise AssertionError(
                    f"nodes did not agree within {timeout}s on {sql!r}{want}\n" + "\n".join(lines)
                )
            time.sleep(0.05)
    finally:
        for c in conns.values():
            c.close()
