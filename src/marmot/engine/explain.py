"""``EXPLAIN SELECT | UPDATE | DELETE | INSERT | REPLACE ...`` in MySQL's table shape, built from SQLite's
``EXPLAIN QUERY PLAN`` of the transpiled statement.

Why: ORMs, GUIs and people paste EXPLAIN output and read MySQL's columns (id, select_type, table,
partitions, type, possible_keys, key, key_len, ref, rows, filtered, Extra). SQLite's plan is a tree of
lines (``SCAN t``, ``SEARCH t USING INDEX t__k (a=?)``, ``USE TEMP B-TREE FOR ORDER BY`` ...); each line
that reads a table becomes a row, with MySQL's access type (``const`` for a primary key equality, ``ref``
/ ``range`` for an index, ``index`` for a covering index scan, ``ALL`` for a full scan), the key under its
MySQL name, and the temp b-trees as ``Using filesort`` / ``Using temporary``. Nothing is run: EXPLAIN
QUERY PLAN only prepares the statement.

What SQLite does not say is NULL: ``key_len``, and ``rows`` except 1 for a primary key or unique
equality; ``filtered`` is 100.00. ``EXPLAIN ANALYZE`` and ``FORMAT=JSON|TREE`` are refused (1235).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import apsw

from marmot.engine import errors
from marmot.engine.errors import MySQLError
from marmot.engine.results import ResultSet, Row
from marmot.sql import lexer
from marmot.sql.transpiler import Plan

if TYPE_CHECKING:
    from marmot.engine.session import Session

COLUMNS = [
    ("id", "BIGINT"),
    ("select_type", "TEXT"),
    ("table", "TEXT"),
    ("partitions", "TEXT"),
    ("type", "TEXT"),
    ("possible_keys", "TEXT"),
    ("key", "TEXT"),
    ("key_len", "TEXT"),
    ("ref", "TEXT"),
    ("rows", "BIGINT"),
    ("filtered", "DOUBLE"),
    ("Extra", "TEXT"),
]
_ACCESS = re.compile(
    r"^(SCAN|SEARCH) (\S+)(?: AS (\S+))?(?: USING (COVERING INDEX|INDEX|INTEGER PRIMARY KEY|PRIMARY KEY)"
    r"(?: (\S+))?)?(?: \((.*)\))?"
)
_VERBS = {"SELECT": "SIMPLE"}


def statement_of(sql: str) -> str:
    """The statement an ``EXPLAIN [FORMAT=TRADITIONAL] ...`` explains."""
    toks = lexer.code_tokens(sql)
    i = 1
    words = [t.text.upper() for t in toks]
    if i < len(toks) and words[i] == "EXTENDED":
        i += 1
    if i < len(toks) and words[i] == "ANALYZE":
        raise MySQLError(1235, "42000", "This version of Marmot doesn't yet support 'EXPLAIN ANALYZE'")
    if i < len(toks) and words[i] == "FORMAT":
        fmt = words[i + 2] if i + 2 < len(toks) else ""
        if fmt.strip("'\"") != "TRADITIONAL":
            raise MySQLError(
                1235, "42000", f"This version of Marmot doesn't yet support 'EXPLAIN FORMAT={fmt}'"
            )
        i += 3
    if i >= len(toks):
        raise errors.syntax_error("You have an error in your SQL syntax near 'EXPLAIN'")
    return sql[toks[i].start :]


def _mysql_key(conn: apsw.Connection, table: str, index: str | None, how: str) -> str | None:
    """An index as MySQL names it: ``PRIMARY``, or the key name Marmot stored as ``<table>__<key>``."""
    if how in ("INTEGER PRIMARY KEY", "PRIMARY KEY"):
        return "PRIMARY"
    if not index:
        return None
    if index.lower().startswith(table.lower() + "__"):
        return index[len(table) + 2 :]
    if index.startswith("sqlite_autoindex_"):
        for _seq, name, _unique, origin, _partial in conn.execute(f'PRAGMA index_list("{table}")'):
            if name == index:
                if origin == "pk":
                    return "PRIMARY"
                cols = [c[2] for c in conn.execute(f'PRAGMA index_info("{index}")')]
                return str(cols[0]) if cols else index
    return index


def _unique_equality(conn: apsw.Connection, table: str, index: str | None, how: str, cond: str) -> bool:
    """Whether the access is an equality on every column of a primary key or unique index (MySQL const)."""
    if "=" not in cond or any(op in cond for op in (">", "<")):
        return False
    if how == "INTEGER PRIMARY KEY":
        return True
    names = {c.split("=")[0].strip() for c in cond.split(" AND ")}
    try:
        if how == "PRIMARY KEY":
            cols = {r[1] for r in conn.execute(f'PRAGMA table_info("{table}")') if r[5]}
            return cols <= names
        for _seq, name, unique, _origin, _partial in conn.execute(f'PRAGMA index_list("{table}")'):
            if name == index and unique:
                return {str(c[2]) for c in conn.execute(f'PRAGMA index_info("{index}")')} <= names
    except apsw.Error:
        return False
    return False


def rows_of(
    conn: apsw.Connection,
    plan_rows: list[tuple[int, int, int, str]],
    verb: str,
    has_where: bool,
    table: str | None = None,
) -> list[Row]:
    """MySQL's EXPLAIN rows from SQLite's ``EXPLAIN QUERY PLAN`` rows (id, parent, notused, detail)."""
    out: list[list[object]] = []
    select_id = 1
    subquery_of: dict[int, int] = {}  # plan node id -> MySQL select id
    kinds: dict[int, str] = {}
    first_type = _VERBS.get(verb, verb)
    for node, parent, _unused, detail in plan_rows:
        sid = subquery_of.get(parent, 1)
        if detail.startswith(
            ("CORRELATED ", "SCALAR SUBQUERY", "LIST SUBQUERY", "MATERIALIZE", "CO-ROUTINE")
        ):
            select_id += 1
            subquery_of[node] = select_id
            kinds[select_id] = (
                "DEPENDENT SUBQUERY"
                if detail.startswith("CORRELATED")
                else ("DERIVED" if detail.startswith(("MATERIALIZE", "CO-ROUTINE")) else "SUBQUERY")
            )
            continue
        if detail in ("RIGHT", "UNION ALL", "UNION USING TEMP B-TREE") or detail.startswith(
            ("RIGHT", "UNION")
        ):
            select_id += 1
            subquery_of[node] = select_id
            kinds[select_id] = "UNION"
            continue
        if detail.startswith(("LEFT", "MERGE", "COMPOUND")):
            subquery_of[node] = sid
            kinds.setdefault(sid, "PRIMARY")
            continue
        if detail.startswith("USE TEMP B-TREE"):
            extra = "Using filesort" if "ORDER BY" in detail else "Using temporary"
            target = next((r for r in reversed(out) if r[0] == sid), out[-1] if out else None)
            if target is not None:
                target[11] = extra if not target[11] else f"{target[11]}; {extra}"
            continue
        if detail == "SCAN CONSTANT ROW":
            out.append([sid, None, None, None, None, None, None, None, None, None, None, "No tables used"])
            continue
        m = _ACCESS.match(detail)
        if m is None:
            continue
        op, table, alias, how, index, cond = m.groups()
        how, cond = how or "", cond or ""
        key = _mysql_key(conn, table, index, how)
        joined = any(r[0] == sid and r[2] is not None for r in out)  # not the first table of its SELECT
        if op == "SCAN":
            access = "index" if how else "ALL"
        elif _unique_equality(conn, table, index, how, cond):
            access = ("eq_ref" if joined else "const") if verb == "SELECT" else "range"
        elif any(op_ in cond for op_ in (">", "<")):
            access = "range"
        else:
            access = "ref"
        extras = []
        if has_where and access not in ("const",):
            extras.append("Using where")
        if how == "COVERING INDEX":
            extras.append("Using index")
        ref = "const" if access in ("const", "ref") and op == "SEARCH" and not joined else None
        out.append(
            [
                sid,
                None,
                alias or table,
                None,
                access,
                key if op == "SEARCH" else None,
                key,
                None,
                ref,
                1 if access == "const" else None,
                100.0,
                "; ".join(extras) or None,
            ]
        )
    if not out and table is not None and verb in ("INSERT", "REPLACE", "UPDATE", "DELETE"):
        # an INSERT reads no table; a DELETE without WHERE empties the table without a scan in SQLite
        scan: str | None = None if verb in ("INSERT", "REPLACE") else "ALL"
        out.append([1, verb, table, None, scan, None, None, None, None, None, 100.0, None])
    for row in out:
        sid = int(str(row[0]))
        if sid == 1:
            row[1] = kinds.get(1, first_type) if row[2] is not None or row[11] else first_type
        else:
            row[1] = kinds.get(sid, "SUBQUERY")
    return [tuple(r) for r in out]


async def run(session: Session, sql: str, params: list[object]) -> ResultSet:
    """Answer an EXPLAIN of a statement: plan it as the session would, explain its main SQLite step."""
    inner = statement_of(sql)
    norm = lexer.normalize(inner)
    verb = norm.keyword
    plan: Plan = session.plans.plan(norm, inner)
    conn = session.plans.connection_for(plan)
    steps = [s for s in plan.steps if s.role != "found_rows"] or list(plan.steps)
    main = next(
        (s for s in steps if s.sql.lstrip()[:6].upper().startswith(verb[:6])), steps[-1] if steps else None
    )
    if main is None:
        return ResultSet(COLUMNS, [])
    binds = [norm.literals[i] if k == "l" else params[i] for k, i in main.binds]
    try:
        raw = conn.execute("EXPLAIN QUERY PLAN " + main.sql, binds).fetchall()
    except errors.STATEMENT_ERRORS as err:
        raise errors.from_sqlite(err, session.database or "") from err
    has_where = re.search(r"\bWHERE\b", inner, re.IGNORECASE) is not None
    plan_rows = [(int(str(r[0])), int(str(r[1])), int(str(r[2])), str(r[3])) for r in raw]
    table = next(iter(plan.tables)) if len(plan.tables) == 1 else None
    verb = "SELECT" if verb == "WITH" else verb
    return ResultSet(COLUMNS, rows_of(conn, plan_rows, verb, has_where, table))
