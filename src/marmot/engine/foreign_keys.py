"""Foreign keys as InnoDB enforces them (issue 13 point 3): the refusals and messages SQLite lacks.

Why here: SQLite enforces the constraint itself (``PRAGMA foreign_keys``, switched by ``SET
foreign_key_checks``) but differs from InnoDB where a client can tell:

* ``DROP TABLE p`` of a parent that another table references: SQLite drops it (after an implicit
  ``DELETE FROM p`` that fires the children's ON DELETE actions), InnoDB refuses with 3730 naming the
  constraint and its table. ``TRUNCATE`` of such a parent is InnoDB's 1701.
* A violation is SQLite's bare ``FOREIGN KEY constraint failed``; InnoDB says which side failed (1452 a
  child row, 1451 a parent row) and which constraint, in the words of SHOW CREATE TABLE. SQLite does
  not say which constraint fired, so it is found afterwards from the schema: the statement's verb and
  table tell the side; a child-side constraint is the one whose parent lacks the values the statement's
  column checks last stored (exact for a one-row write), a parent-side one the one whose rows actually
  meet (a child row referencing a row of the table); else the first declared.
* A ``CREATE``/``ALTER TABLE`` whose foreign key references a missing table or columns that are not a
  key: SQLite accepts it and fails every later write (``no such table: main.p``, ``foreign key
  mismatch``); InnoDB refuses the DDL (1824, 1822).

All of it applies only while ``foreign_key_checks`` is on, as in MySQL. Replicas never run these checks:
they apply the coordinator's row images and statements with enforcement off (``replication/apply``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

import apsw

from marmot.engine.errors import MySQLError
from marmot.engine.table_description import ForeignKey, describe, foreign_key_clause

_IDENT = r'(?:"(?:[^"]|"")+"|`(?:[^`]|``)+`|\[[^\]]+\]|[\w$]+)'
_DROP = re.compile(rf"^\s*DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?((?:{_IDENT}\s*\.\s*)?{_IDENT})\s*$", re.I)
_DELETE_ALL = re.compile(rf"^\s*DELETE\s+FROM\s+((?:{_IDENT}\s*\.\s*)?{_IDENT})\s*$", re.I)
_VERB = re.compile(r"^\s*(?:WITH\b.*?\)\s*)?(INSERT|REPLACE|UPDATE|DELETE)\b", re.I | re.S)
_RESTRICTING = ("NO ACTION", "RESTRICT")


def _unquote(name: str) -> str:
    name = name.strip()
    if name[:1] in ('"', "`"):
        q = name[0]
        return name[1:-1].replace(q + q, q)
    if name[:1] == "[":
        return name[1:-1]
    return name


def _main_table(qualified: str) -> str | None:
    """The table of ``[schema.]table`` when it is in the connection's main database, else None."""
    parts = re.findall(_IDENT, qualified)
    if len(parts) == 2 and _unquote(parts[0]).lower() != "main":
        return None
    return _unquote(parts[-1])


def referencing(conn: apsw.Connection, parent: str) -> list[tuple[str, ForeignKey]]:
    """(child table, constraint) of every foreign key of the main database that references ``parent``."""
    children = conn.execute(
        "SELECT DISTINCT m.name FROM sqlite_schema m, pragma_foreign_key_list(m.name) f "
        "WHERE m.type = 'table' AND f.\"table\" = ? COLLATE NOCASE ORDER BY m.name",
        (parent,),
    ).fetchall()
    out: list[tuple[str, ForeignKey]] = []
    for (child,) in children:
        described = describe(conn, str(child))
        if described is None:
            continue
        out.extend(
            (described.name, fk) for fk in described.foreign_keys if fk.parent.lower() == parent.lower()
        )
    return out


def refuse_drop(conn: apsw.Connection, sqls: Iterable[str]) -> None:
    """3730 when a ``DROP TABLE`` of ``sqls`` drops a table that a table it does not drop references."""
    matches = [_DROP.match(sql) for sql in sqls]
    if not matches or not all(matches):
        return  # not a DROP TABLE statement (an ALTER's table rebuild drops and re-creates its table)
    dropped = [t for t in (_main_table(m.group(1)) for m in matches if m) if t]
    gone = {t.lower() for t in dropped}
    for table in dropped:
        for child, fk in referencing(conn, table):
            if child.lower() not in gone:
                raise MySQLError(
                    3730,
                    "HY000",
                    f"Cannot drop table '{table}' referenced by a foreign key constraint '{fk.name}' on "
                    f"table '{child}'.",
                )


def drops_several(sqls: list[str]) -> bool:
    """Whether ``sqls`` is a DROP TABLE of several tables (one SQLite DROP each)."""
    return len(sqls) > 1 and all(_DROP.match(sql) for sql in sqls)


def refuse_truncate(conn: apsw.Connection, database: str, sqls: Iterable[str]) -> None:
    """1701 when ``TRUNCATE`` (planned as ``DELETE FROM t``) empties a table another table references."""
    for sql in sqls:
        m = _DELETE_ALL.match(sql)
        table = _main_table(m.group(1)) if m else None
        if table is None:
            continue
        for child, fk in referencing(conn, table):
            if child.lower() != table.lower():
                raise MySQLError(
                    1701,
                    "42000",
                    "Cannot truncate a table referenced in a foreign key constraint "
                    f"(`{database}`.`{child}`, CONSTRAINT `{fk.name}`)",
                )


def declared(conn: apsw.Connection, tables: Iterable[str]) -> set[tuple[str, str]]:
    """(table, constraint) of the foreign keys ``tables`` have now (before a DDL runs)."""
    out: set[tuple[str, str]] = set()
    for table in tables:
        described = describe(conn, table)
        if described is not None and not described.is_view:
            out.update((table.lower(), fk.name.lower()) for fk in described.foreign_keys)
    return out


def refuse_definition(
    conn: apsw.Connection, database: str, tables: Iterable[str], before: set[tuple[str, str]]
) -> None:
    """For each foreign key a DDL added to ``tables`` (not in ``before``; checked in the still-open
    transaction of the DDL's validation): 1824 / 1822 when it references a missing table or columns that
    are not its key, 1830 when its SET NULL action names a NOT NULL column, 1452 when rows already in the
    table break it (ALTER TABLE ... ADD FOREIGN KEY)."""
    for table in tables:
        described = describe(conn, table)
        if described is None or described.is_view:
            continue
        for fk in described.foreign_keys:
            if (table.lower(), fk.name.lower()) in before:
                continue
            nullable = {c.name.lower(): c.nullable for c in described.columns}
            if "SET NULL" in (fk.on_delete, fk.on_update):
                for col in fk.columns:
                    if not nullable.get(col.lower(), True):
                        raise MySQLError(
                            1830,
                            "HY000",
                            f"Column '{col}' cannot be NOT NULL: needed in a foreign key constraint '{fk.name}' "
                            "SET NULL",
                        )
            parent = described if fk.parent.lower() == table.lower() else describe(conn, fk.parent)
            if parent is None or parent.is_view:
                raise MySQLError(1824, "HY000", f"Failed to open the referenced table '{fk.parent}'")
            wanted = sorted(c.lower() for c in fk.parent_columns)
            keys = [sorted(c.lower() for c in ix.columns) for ix in parent.indexes if ix.unique]
            if wanted not in keys:
                raise MySQLError(
                    1822,
                    "HY000",
                    f"Failed to add the foreign key constraint. Missing index for constraint '{fk.name}' "
                    f"in the referenced table '{parent.name}'",
                )
            if _breaks(conn, described.name, fk):
                raise _child_message(database, described.name, fk)


def _breaks(conn: apsw.Connection, table: str, fk: ForeignKey) -> bool:
    """Whether a row of ``table`` with every column of the foreign key set has no parent row."""
    on = " AND ".join(
        f"p.{_quoted(b)} = c.{_quoted(a)}" for a, b in zip(fk.columns, fk.parent_columns, strict=False)
    )
    set_ = " AND ".join(f"c.{_quoted(a)} IS NOT NULL" for a in fk.columns)
    try:
        row = conn.execute(
            f"SELECT 1 FROM {_quoted(table)} c WHERE {set_} AND NOT EXISTS "
            f"(SELECT 1 FROM {_quoted(fk.parent)} p WHERE {on}) LIMIT 1"
        ).fetchone()
    except apsw.Error:
        return False
    return row is not None


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _rows_meet(conn: apsw.Connection, child: str, fk: ForeignKey) -> bool:
    """Whether a row of ``child`` references a row of the constraint's parent right now."""
    on = " AND ".join(
        f"c.{_quoted(a)} = p.{_quoted(b)}" for a, b in zip(fk.columns, fk.parent_columns, strict=False)
    )
    try:
        return (
            conn.execute(
                f"SELECT 1 FROM {_quoted(child)} c JOIN {_quoted(fk.parent)} p ON {on} LIMIT 1"
            ).fetchone()
            is not None
        )
    except apsw.Error:
        return False


def _parent_side(conn: apsw.Connection, table: str, action: str) -> tuple[str, ForeignKey] | None:
    """The restricting constraint a DELETE (``action`` on_delete) or UPDATE (on_update) of ``table`` hit:
    direct children first, then through the children its CASCADE actions reach."""
    seen: set[str] = set()
    todo = [table]
    first: tuple[str, ForeignKey] | None = None
    while todo:
        parent = todo.pop(0)
        if parent.lower() in seen:
            continue
        seen.add(parent.lower())
        for child, fk in referencing(conn, parent):
            rule = fk.on_delete if action == "on_delete" else fk.on_update
            if rule in _RESTRICTING:
                if _rows_meet(conn, child, fk):
                    return child, fk
                first = first or (child, fk)
            elif rule == "CASCADE":
                todo.append(child)
    return first


def _child_side(
    conn: apsw.Connection, table: str, sql: str, value_of: Callable[[int], object | None] | None = None
) -> tuple[str, ForeignKey] | None:
    """The constraint of ``table`` an INSERT or UPDATE broke: the first whose parent lacks the values the
    statement's column checks last stored (``value_of(position)``: the failing row of a one-row write),
    else for an UPDATE the first whose columns it sets, else the first declared."""
    described = describe(conn, table)
    if described is None or not described.foreign_keys:
        return None
    fks = described.foreign_keys
    if value_of is not None:
        position = {c.name.lower(): i for i, c in enumerate(described.columns)}
        for fk in fks:
            values = [value_of(position[c.lower()]) if c.lower() in position else None for c in fk.columns]
            if values and all(v is not None for v in values) and not _parent_has(conn, fk, values):
                return described.name, fk
    if sql.lstrip()[:6].upper() == "UPDATE":
        for fk in fks:
            if _sets_columns(sql, fk.columns):
                return described.name, fk
    return described.name, fks[0]


def _parent_has(conn: apsw.Connection, fk: ForeignKey, values: list[object]) -> bool:
    where = " AND ".join(f"{_quoted(c)} = ?" for c in fk.parent_columns)
    try:
        return (
            conn.execute(f"SELECT 1 FROM {_quoted(fk.parent)} WHERE {where} LIMIT 1", values).fetchone()
            is not None
        )
    except apsw.Error:
        return True


def _child_message(database: str, child: str, fk: ForeignKey) -> MySQLError:
    return MySQLError(
        1452,
        "23000",
        "Cannot add or update a child row: a foreign key constraint fails "
        f"(`{database}`.`{child}`, {foreign_key_clause(fk)})",
    )


def _parent_message(database: str, child: str, fk: ForeignKey) -> MySQLError:
    return MySQLError(
        1451,
        "23000",
        "Cannot delete or update a parent row: a foreign key constraint fails "
        f"(`{database}`.`{child}`, {foreign_key_clause(fk)})",
    )


def violation(
    err: MySQLError,
    conn: apsw.Connection,
    database: str,
    tables: Iterable[str],
    sqls: list[str],
    value_of: Callable[[int], object | None] | None = None,
) -> MySQLError:
    """``err`` (SQLite's foreign key failure, mapped to a bare 1452) as InnoDB's 1451 or 1452 naming the
    constraint. ``tables``: the tables the statement writes; ``sqls``: its SQLite steps."""
    written = list(tables)
    if len(written) != 1 or not sqls:
        return err
    table = written[0]
    m = _VERB.match(sqls[-1])
    verb = m.group(1).upper() if m else ""
    try:
        if verb == "DELETE":
            found = _parent_side(conn, table, "on_delete")
            return _parent_message(database, *found) if found else err
        if verb == "UPDATE":
            # an UPDATE breaks a child row (its own foreign key) or a parent row (a key others reference)
            child = _child_side(conn, table, sqls[-1], value_of)
            if child is not None and _sets_columns(sqls[-1], child[1].columns):
                return _child_message(database, *child)
            found = _parent_side(conn, table, "on_update")
            if found is not None:
                return _parent_message(database, *found)
            return _child_message(database, *child) if child else err
        if verb in ("INSERT", "REPLACE"):
            child = _child_side(conn, table, sqls[-1], value_of)
            if child is not None:
                return _child_message(database, *child)
            found = _parent_side(conn, table, "on_delete")  # REPLACE deletes the row it replaces
            return _parent_message(database, *found) if found else err
    except apsw.Error:
        return err
    return err


def _sets_columns(sql: str, columns: list[str]) -> bool:
    """Whether the SET clause of UPDATE ``sql`` assigns one of ``columns`` (text between SET and WHERE)."""
    m = re.search(r"\bSET\b(.*?)(?:\bWHERE\b|\bORDER\b|\bLIMIT\b|$)", sql, re.I | re.S)
    text = m.group(1).lower() if m else ""
    return any(re.search(rf'(?:^|[\s,(])["`]?{re.escape(c.lower())}["`]?\s*=(?!=)', text) for c in columns)
