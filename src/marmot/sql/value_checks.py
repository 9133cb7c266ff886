"""Routing every value a write stores through its column's check (sql_mode, issue 13 points 1 and 4).

Why in the plan: SQLite stores almost anything anywhere (``'abc'`` in an INT column, NULL in a non-rowid
primary key), MySQL does not. The transpiler knows which column each value of an INSERT, REPLACE,
UPDATE or upsert goes to; the engine knows the column's MySQL type and the session's ``sql_mode``. So the
plan wraps each value in ``__marmot_chk(value, slot, column, row)``, a per-session SQLite function
(``engine/column_checks.py``) that returns the value MySQL would store (converted, truncated, clamped,
with a warning) or raises MySQL's error. The plan holds neither values nor the mode: one plan serves
strict and non-strict sessions, and the check runs on the node that takes the write, before the row is
captured — replicas apply the checked row images and never check again.

Arguments of the wrapper: ``slot`` is the index of the table in ``Plan.checked``; ``column`` the
column's position among the table's columns (``SchemaInfo.column_facts``); ``row`` is ``n > 0`` for the
n-th row of a VALUES list, ``0`` for "the next row" (the first checked value of each row of an
INSERT ... SELECT or UPDATE) and ``-1`` for "the current row" (MySQL's ``at row N`` in messages).

A column an INSERT leaves out that is NOT NULL and has no DEFAULT gets ``__marmot_nodef(slot, column,
row)``: MySQL's 1364 in strict mode, the type's implicit default with a warning otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

CHECK_FUNCTION = "__marmot_chk"
NO_DEFAULT_FUNCTION = "__marmot_nodef"
_ROWS_CTE = "__marmot_rows"


@dataclass(frozen=True, slots=True)
class ColumnFacts:
    """What the transpiler needs of one column to route values through its check."""

    name: str
    required: bool  # NOT NULL (or PRIMARY KEY) without DEFAULT: an INSERT must give it a value
    exempt: bool  # AUTO_INCREMENT or generated: Marmot or SQLite computes it, nothing to check
    generated: bool = False  # a generated column takes no value in ``INSERT INTO t VALUES (...)``
    default_sql: str | None = None  # the SQLite DEFAULT expression, for ``VALUES (DEFAULT)``


def _call(name: str, *args: exp.Expression) -> exp.Anonymous:
    return exp.Anonymous(this=name, expressions=list(args))


def _num(n: int) -> exp.Expression:
    return exp.Literal.number(n) if n >= 0 else exp.Neg(this=exp.Literal.number(-n))


def _check(value: exp.Expression, slot: int, column: int, row: int) -> exp.Expression:
    return _call(CHECK_FUNCTION, value, _num(slot), _num(column), _num(row))


def _no_default(slot: int, column: int, row: int) -> exp.Expression:
    return _call(NO_DEFAULT_FUNCTION, _num(slot), _num(column), _num(row))


def _default_value(fact: ColumnFacts, slot: int, column: int, row: int) -> exp.Expression:
    """``DEFAULT`` in a VALUES list: the column's default, or what a missing value gets."""
    if fact.default_sql is not None:
        try:
            return exp.maybe_parse(fact.default_sql, dialect="sqlite")
        except Exception:  # noqa: BLE001 - an unparsable default: let SQLite apply it by omission
            return exp.null()
    if fact.required:
        return _no_default(slot, column, row)
    return exp.null()


def _is_default_keyword(node: exp.Expression) -> bool:
    return (
        isinstance(node, (exp.Var, exp.Column))
        and node.name.upper() == "DEFAULT"
        and not node.args.get("table")
    )


def empty_values_as_column_list(insert: exp.Insert) -> None:
    """``INSERT INTO t VALUES ()`` is ``INSERT INTO t () VALUES ()`` (every column its default): given
    an empty column list, the AUTO_INCREMENT rule adds the id column and ``wrap_insert`` the columns that
    have no default. Run before both."""
    source = insert.expression
    if (
        isinstance(insert.this, exp.Table)
        and isinstance(source, exp.Values)
        and len(source.expressions) == 1
        and not source.expressions[0].expressions
    ):
        insert.set("this", exp.Schema(this=insert.this.copy(), expressions=[]))


def wrap_insert(
    insert: exp.Insert, facts: tuple[ColumnFacts, ...], slot: int
) -> tuple[bool, tuple[int, ...]]:
    """Wrap the values of an INSERT/REPLACE (VALUES or SELECT source, and its ON DUPLICATE KEY UPDATE
    assignments) in their columns' checks; add the required columns it leaves out. Returns: does the
    statement insert exactly one VALUES row (MySQL's rule for NULL into NOT NULL differs for those), and
    ``value_order`` — per column position, its place in the statement's column list (SQLite computes a
    row's values in table order, MySQL warns in the statement's order)."""
    target = insert.this
    position = {f.name.lower(): i for i, f in enumerate(facts)}
    source = insert.expression
    if isinstance(target, exp.Schema):
        given = [c.name for c in target.expressions]
    else:
        given = [f.name for f in facts if not f.generated]
    columns = [position.get(name.lower()) for name in given]
    listed = {c for c in columns if c is not None}
    missing = [
        i for i, f in enumerate(facts) if f.required and not f.exempt and not f.generated and i not in listed
    ]
    if missing and not isinstance(target, exp.Schema):
        missing = []  # without a column list every column is given (or SQLite reports the count)
    single_row = False
    if isinstance(source, exp.Values):
        rows = source.expressions
        single_row = len(rows) == 1
        for r, row in enumerate(rows, start=1):
            values = row.expressions
            for j, column in enumerate(columns):
                if column is None or j >= len(values):
                    continue
                fact = facts[column]
                value = values[j]
                if _is_default_keyword(value):
                    value.replace(_default_value(fact, slot, column, r))
                elif fact.exempt:
                    for arg in list(value.find_all(exp.Var, exp.Column)):
                        if _is_default_keyword(arg):
                            arg.replace(exp.null())  # ``__marmot_autoid(DEFAULT)``: a new id
                else:
                    value.replace(_check(value.copy(), slot, column, r))
            if missing:
                row.set("expressions", [*row.expressions, *(_no_default(slot, i, r) for i in missing)])
    elif isinstance(source, exp.Query) and (any(c is not None for c in columns) or missing):
        names = [f"c{j}" for j in range(len(columns))]
        items: list[exp.Expression] = []
        first = True
        for j, column in enumerate(columns):
            ref: exp.Expression = exp.column(names[j])
            if column is not None and not facts[column].exempt:
                ref = _check(ref, slot, column, 0 if first else -1)
                first = False
            items.append(ref)
        for i in missing:
            items.append(_no_default(slot, i, 0 if first else -1))
            first = False
        rows_cte = exp.CTE(
            this=source.copy(),
            alias=exp.TableAlias(
                this=exp.to_identifier(_ROWS_CTE), columns=[exp.to_identifier(n) for n in names]
            ),
        )
        wrapped = exp.select(*items).from_(_ROWS_CTE)
        if insert.args.get("conflict") is not None:
            wrapped.set("where", exp.Where(this=exp.true()))  # SQLite: "SELECT ... ON CONFLICT" needs a WHERE
        insert.set("expression", wrapped)
        insert.set("with_", exp.With(expressions=[rows_cte]))
    if missing and isinstance(target, exp.Schema):
        target.set("expressions", [*target.expressions, *(exp.to_identifier(facts[i].name) for i in missing)])
    elif (
        isinstance(target, exp.Schema)
        and not target.expressions
        and isinstance(source, exp.Values)
        and len(source.expressions) == 1
        and not source.expressions[0].expressions
    ):
        # ``INSERT INTO t () VALUES ()``: every column takes its default (SQLite: DEFAULT VALUES)
        insert.set("this", target.this)
        insert.set("expression", None)
        insert.set("default", True)
    conflict = insert.args.get("conflict")
    if isinstance(conflict, exp.OnConflict):
        _wrap_assignments(conflict.expressions, facts, slot, position, -1)
    listed_order = [c for c in columns if c is not None] + missing
    return single_row, _order(len(facts), listed_order)


def _order(count: int, listed: list[int]) -> tuple[int, ...]:
    """Per column position, its place among ``listed`` (the ones not listed after them, in table order)."""
    order = [len(listed) + i for i in range(count)]
    for place, column in enumerate(listed):
        order[column] = place
    return tuple(order)


def wrap_update(update: exp.Update, facts: tuple[ColumnFacts, ...], slot: int) -> tuple[int, ...]:
    """Wrap the assigned values of an UPDATE in their columns' checks; the ``value_order`` of its SET."""
    position = {f.name.lower(): i for i, f in enumerate(facts)}
    _wrap_assignments(update.expressions, facts, slot, position, 0)
    listed = [
        position[eq.this.name.lower()]
        for eq in update.expressions
        if isinstance(eq, exp.EQ) and isinstance(eq.this, exp.Column) and eq.this.name.lower() in position
    ]
    return _order(len(facts), list(dict.fromkeys(listed)))


def _wrap_assignments(
    assignments: list[exp.Expression],
    facts: tuple[ColumnFacts, ...],
    slot: int,
    position: dict[str, int],
    row: int,
) -> None:
    """``col = expr`` items: SQLite computes a row's new values in table column order, so the
    assignment of the lowest column position counts the row (``row`` 0) when ``row`` is 0."""
    targets: list[tuple[int, exp.Expression]] = []
    for eq in assignments:
        if not isinstance(eq, exp.EQ) or not isinstance(eq.this, exp.Column):
            continue
        column = position.get(eq.this.name.lower())
        if column is None or facts[column].exempt:
            continue
        targets.append((column, eq))
    checked = [c for c, eq in targets if not _is_default_keyword(eq.expression)]
    first = min(checked) if checked else -1
    for column, eq in targets:
        value = eq.expression
        if _is_default_keyword(value):
            value.replace(_default_value(facts[column], slot, column, -1))
            continue
        r = row if (row == 0 and column == first) else -1
        value.replace(_check(value.copy(), slot, column, r))
