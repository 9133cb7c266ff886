"""MySQL DML constructs SQLite spells differently, as rewrites of the sqlglot tree.

Each rule takes the parsed MySQL statement and changes it in place (or returns extra statements); the
transpiler applies them before rendering SQLite SQL. The rules, and why SQLite needs them:

- ``INSERT ... ON DUPLICATE KEY UPDATE c = VALUES(c)`` -> ``ON CONFLICT DO UPDATE SET c = excluded.c``
  (SQLite >= 3.35 allows the target-less form, which fires on any uniqueness conflict, like MySQL).
  MySQL 8.0.19's row alias ``VALUES (...) AS new [(a, b, ...)] ON DUPLICATE KEY UPDATE c = new.c`` (or
  ``= b``, a column alias) is the same ``excluded`` row.
- ``UPDATE a JOIN b ON .. SET a.x = ..`` -> ``UPDATE a SET x = .. FROM b WHERE on AND where``.
- ``DELETE a FROM a JOIN b ..`` -> ``DELETE FROM a WHERE rowid IN (SELECT a.rowid FROM a JOIN b ..)``.
- ``SELECT SQL_CALC_FOUND_ROWS ..`` -> a COUNT(*) over the un-limited query, run first, whose value
  ``FOUND_ROWS()`` returns.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp


def on_duplicate_key_update(insert: exp.Insert, table_columns: Callable[[], list[str]] | None = None) -> bool:
    """Rewrite MySQL's upsert; True if the statement had one. ``table_columns``: the target table's
    columns in order (a row alias with column aliases and no INSERT column list maps them by position)."""
    conflict = insert.args.get("conflict")
    if not isinstance(conflict, exp.OnConflict) or not conflict.args.get("duplicate"):
        return False
    _row_alias(insert, conflict, table_columns)
    for values_call in list(conflict.find_all(exp.Anonymous)):
        if values_call.name.upper() == "VALUES" and len(values_call.expressions) == 1:
            target = values_call.expressions[0]
            values_call.replace(exp.column(target.name, table="excluded"))
    for eq in conflict.expressions:
        col = eq.this
        if isinstance(col, exp.Column):
            col.set("table", None)
    conflict.set("duplicate", None)
    conflict.set("action", exp.var("DO UPDATE"))
    source = insert.expression
    if isinstance(source, exp.Select) and not source.args.get("where"):
        # SQLite's parser needs a WHERE to tell "SELECT ... ON CONFLICT" from a join's ON.
        source.set("where", exp.Where(this=exp.true()))
    return True


def _row_alias(
    insert: exp.Insert, conflict: exp.OnConflict, table_columns: Callable[[], list[str]] | None
) -> None:
    """``VALUES (...) AS new [(a, b)]``: ``new.c`` and the column aliases become ``excluded.<column>``."""
    source = insert.expression
    alias = source.args.get("alias") if isinstance(source, exp.Values) else None
    if not isinstance(alias, exp.TableAlias):
        return
    source.set("alias", None)
    name = alias.name.lower()
    aliases = [c.name for c in alias.args.get("columns") or []]
    mapping: dict[str, str] = {}
    if aliases:
        target = insert.this
        if isinstance(target, exp.Schema) and target.expressions:
            columns = [c.name for c in target.expressions]
        else:
            columns = table_columns() if table_columns is not None else []
        if len(columns) != len(aliases):
            raise ValueError("a row alias needs one column alias per inserted column")
        mapping = {a.lower(): c for a, c in zip(aliases, columns, strict=True)}
    for eq in conflict.expressions:
        value = eq.expression
        if value is None:
            continue
        for col in list(value.find_all(exp.Column)):
            qualifier = col.table.lower()
            if qualifier == name:
                col.replace(exp.column(mapping.get(col.name.lower(), col.name), table="excluded"))
            elif not qualifier and col.name.lower() in mapping:
                col.replace(exp.column(mapping[col.name.lower()], table="excluded"))


def _strip_qualifier(node: exp.Expression, alias: str) -> None:
    for col in node.find_all(exp.Column):
        if col.table == alias:
            col.set("table", None)


def update_join(update: exp.Update) -> None:
    """MySQL multi-table UPDATE -> SQLite UPDATE ... FROM."""
    target = update.this
    joins = target.args.get("joins") if isinstance(target, exp.Table) else None
    if not joins:
        return
    table = target.copy()
    table.set("joins", None)
    conds = [j.args["on"] for j in joins if j.args.get("on")]
    sources = [j.this.copy() for j in joins]
    where = update.args.get("where")
    if where is not None:
        conds.append(where.this)
    for eq in update.expressions:
        if isinstance(eq.this, exp.Column):
            eq.this.set("table", None)
    update.set("this", table)
    update.set("from_", exp.From(this=sources[0]))
    if len(sources) > 1:
        update.args["from_"].this.set("joins", [exp.Join(this=s) for s in sources[1:]])
    if conds:
        update.set("where", exp.Where(this=exp.and_(*conds)))


def delete_join(delete: exp.Delete) -> exp.Delete:
    """MySQL ``DELETE t FROM t JOIN ..`` -> ``DELETE FROM t WHERE rowid IN (SELECT t.rowid ...)``."""
    tables = delete.args.get("tables")
    source = delete.this
    if not tables or not isinstance(source, exp.Table):
        return delete
    target = tables[0]
    alias = target.name
    real = source if (source.alias_or_name == alias) else None
    if real is None:
        for j in source.args.get("joins") or []:
            if j.this.alias_or_name == alias:
                real = j.this
    real_name = real.name if real is not None else alias
    sub = exp.select(exp.column("rowid", table=alias)).from_(source.copy())
    where = delete.args.get("where")
    if where is not None:
        sub.set("where", where.copy())
    new = exp.Delete(this=exp.table_(real_name, db=real.args.get("db") if real is not None else None))
    new.set("where", exp.Where(this=exp.In(this=exp.column("rowid"), query=sub.subquery())))
    return new


def calc_found_rows(select: exp.Select) -> exp.Select | None:
    """Strip SQL_CALC_FOUND_ROWS; return the COUNT(*) query FOUND_ROWS() must report, or None."""
    mods = select.args.get("operation_modifiers") or []
    keep = [m for m in mods if m.name.upper() != "SQL_CALC_FOUND_ROWS"]
    if len(keep) == len(mods):
        return None
    select.set("operation_modifiers", keep or None)
    inner = select.copy()
    inner.set("limit", None)
    inner.set("offset", None)
    inner.set("order", None)
    return exp.select(exp.Count(this=exp.Star())).from_(inner.subquery("__marmot_found"))
