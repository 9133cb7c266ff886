"""Exact DECIMAL in statements: arithmetic, CAST, SUM and AVG on DECIMAL operands go to exact functions.

Why here: SQLite has no DECIMAL type; its arithmetic and SUM/AVG are binary floating point. MySQL
computes exactly whenever the operands are DECIMAL columns or exact-value literals (``0.1``, ``1.10``;
``1e-1`` is a DOUBLE). The transpiler knows the operands' types (literal text, the tables' column types
through ``SchemaInfo.column_types``), so this pass types every expression bottom-up, MySQL's way, and
rewrites the DECIMAL operations into calls of ``sql/functions/decimal.py`` (``__marmot_dec_add`` ...).
The types of the select list become the plan's result types (``DECIMAL(p,s)``: clients get NEWDECIMAL
with MySQL's precision and scale, and the wire layer prints the value with that scale).

MySQL's typing rules used (p = precision, s = scale):
- ``a + b``, ``a - b``: s = max(s1, s2), p = max(p1 - s1, p2 - s2) + s + 1;
- ``a * b``: s = s1 + s2, p = p1 + p2;
- ``a / b``: s = s1 + 4 (``div_precision_increment``), p = p1 - s1 + s2 + s; also for two integers;
- ``SUM``: p + 22; ``AVG``: p + 4 and s + 4; ``MIN``/``MAX``: the column's own type;
- an integer operand counts as DECIMAL(digits, 0) (a BIGINT column: DECIMAL(20,0)); a DOUBLE operand
  (a FLOAT/DOUBLE column, ``1e-1``) makes the operation DOUBLE, left to SQLite.
Precision is capped at 65 and scale at 30, as MySQL's DECIMAL.

Results are canonical text carrying the ``MARMOT_DECIMAL`` collation in the select list and ORDER BY /
GROUP BY, so they sort as numbers; a comparison of two such computed values (neither a stored column, whose
collation already compares numerically) goes through ``__marmot_dec_cmp``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

DECIMAL_COLLATION = "MARMOT_DECIMAL"
_MAX_PRECISION = 65
_MAX_SCALE = 30
_DIV_INCREMENT = 4

# (precision, scale) of a DECIMAL or an integer (scale 0); FLOAT: a double (left to SQLite)
Kind = tuple[int, int] | str | None
FLOAT = "float"
U64 = "u64"  # arithmetic on a BIGINT UNSIGNED column (``__marmot_u64_add`` ...): BIGINT UNSIGNED

_INT_DIGITS = {"tinyint": 4, "smallint": 6, "mediumint": 9, "int": 11, "integer": 11, "bigint": 20}
_TYPE_RE = re.compile(r"^\s*(\w+)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?")

ColumnTypes = Callable[[str, str], "dict[str, str] | None"]
"""(database, table) -> lower-case column name -> MySQL column type, or None if no such table."""


def _cap(p: int, s: int) -> tuple[int, int]:
    s = min(max(s, 0), _MAX_SCALE)
    return min(max(p, s, 1), _MAX_PRECISION), s


def type_of_column(mysql_type: str) -> Kind:
    """The arithmetic kind of a column of this MySQL type."""
    m = _TYPE_RE.match(mysql_type.lower())
    if m is None:
        return None
    base = m.group(1)
    if base in ("decimal", "numeric", "dec", "fixed", "decimaltext"):
        p = int(m.group(2)) if m.group(2) else 10
        s = int(m.group(3)) if m.group(3) else 0
        return _cap(p, s)
    if base in _INT_DIGITS:
        return (_INT_DIGITS[base], 0)
    if base in ("float", "double", "real"):
        return FLOAT
    return None


def _literal_kind(node: exp.Literal) -> Kind:
    t = str(node.this)
    if "e" in t or "E" in t:
        return FLOAT
    digits = t.lstrip("+-")
    if "." not in digits:
        return (max(len(digits.lstrip("0")), 1), 0)
    whole, frac = digits.split(".", 1)
    return _cap(len(whole.lstrip("0")) + len(frac), len(frac))


def _as_decimal(kind: Kind) -> tuple[int, int] | None:
    if isinstance(kind, tuple):
        return kind
    return None


def _sql_type(kind: tuple[int, int]) -> str:
    return f"DECIMAL({kind[0]},{kind[1]})"


class DecimalPass:
    """One statement's typing and rewriting (see the module docstring)."""

    def __init__(
        self, tree: exp.Expr, database: str, column_types: ColumnTypes, literal_texts: bool = True
    ) -> None:
        self.tree = tree
        # decimal literals given to the exact functions as their text (exact beyond 15 digits); a view's
        # body keeps them as numbers so its MySQL text can be given back (``restore_mysql``)
        self.literal_texts = literal_texts
        self.kinds: dict[int, Kind] = {}
        self._tables: dict[str, dict[str, str]] = {}  # alias or name (lower) -> column types
        self._all: list[dict[str, str]] = []
        for table in tree.find_all(exp.Table):
            cols = column_types(table.db or database, table.name) if table.name else None
            if cols is None:
                continue
            self._all.append(cols)
            self._tables[table.name.lower()] = cols
            if table.alias:
                self._tables[table.alias.lower()] = cols

    # -- typing --------------------------------------------------------------------------------------

    def lookup(self, col: exp.Column) -> str | None:
        """The MySQL type of a column reference: by its qualifier, else the one type every table of the
        statement that has such a column gives it (a table read again in a subquery counts once)."""
        name = col.name.lower()
        if col.table:
            cols = self._tables.get(col.table.lower())
            return cols[name].lower() if cols and name in cols else None
        found = {c[name].lower() for c in self._all if name in c}
        return found.pop() if len(found) == 1 else None

    def _column_kind(self, col: exp.Column) -> Kind:
        t = self.lookup(col)
        return type_of_column(t) if t is not None else None

    def kind(self, node: exp.Expression) -> Kind:
        return self.kinds.get(id(node))

    # -- rewriting -------------------------------------------------------------------------------------

    def run(self) -> exp.Expr:
        for node in reversed(list(self.tree.dfs())):
            new, kind = self._visit(node)
            if new is not node:
                if node is self.tree:
                    self.tree = new
                else:
                    node.replace(new)
            if kind is not None:
                self.kinds[id(new)] = kind
        return self.tree

    def _visit(self, node: exp.Expr) -> tuple[exp.Expr, Kind]:
        if isinstance(node, exp.Literal) and not node.is_string:
            return node, _literal_kind(node)
        if isinstance(node, exp.Column):
            return node, self._column_kind(node)
        if isinstance(node, exp.Paren):
            return node, self.kind(node.this)
        if isinstance(node, exp.Alias):
            return node, self.kind(node.this)
        if isinstance(node, exp.Neg):
            k = self.kind(node.this)
            if _as_decimal(k) and not isinstance(node.this, exp.Literal):
                return _call("__marmot_dec_neg", node.this), k
            return node, k
        if isinstance(node, (exp.Add, exp.Sub, exp.Mul, exp.Div)):
            return self._arithmetic(node)
        if isinstance(node, exp.Cast):
            return self._cast(node)
        if isinstance(node, (exp.Sum, exp.Avg)):
            return self._aggregate(node)
        if isinstance(node, (exp.Min, exp.Max)):
            if self._u64(node.this):
                return node, U64
            k = self.kind(node.this)
            return node, k if _as_decimal(k) else None
        if isinstance(node, (exp.Greatest, exp.Least)):
            return self._extremum(node)
        if isinstance(node, (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)):
            return self._comparison(node), None
        if _is_json_builder(node):
            return self._json_numbers(node), None
        if isinstance(node, (exp.In, exp.Between)):
            return self._u64_operands(node), None
        if isinstance(node, exp.Ordered):
            return self._collated(node), None
        return node, None

    def _operand(self, node: exp.Expression) -> exp.Expression:
        """An operand of an exact function: a decimal literal goes as its text (no double on the way)."""
        inner = node.this if isinstance(node, exp.Paren) else node
        if not self.literal_texts:
            return node
        if isinstance(inner, exp.Literal) and not inner.is_string and "." in str(inner.this):
            return exp.Literal.string(str(inner.this))
        if isinstance(inner, exp.Neg) and isinstance(inner.this, exp.Literal) and not inner.this.is_string:
            return exp.Literal.string("-" + str(inner.this.this))
        return node

    def _exact(self, node: exp.Expression) -> bool:
        """Is ``node`` a DECIMAL operand (a DECIMAL column, a fractional literal, an exact result)?"""
        k = _as_decimal(self.kind(node))
        return (k is not None and k[1] > 0) or _is_decimal_expr(node) or _is_decimal_column(self, node)

    def _arithmetic(self, node: exp.Expression) -> tuple[exp.Expression, Kind]:
        a, b = node.this, node.expression
        ka, kb = self.kind(a), self.kind(b)
        if FLOAT in (ka, kb):
            return node, FLOAT
        integers = isinstance(ka, tuple) and isinstance(kb, tuple)
        if isinstance(node, exp.Div) and integers:
            pass  # MySQL: integer / integer is a DECIMAL with 4 decimals (``10 / 4`` is 2.5000)
        elif not (self._exact(a) or self._exact(b)):
            if not isinstance(node, exp.Div) and (self._u64(a) or self._u64(b)):
                return _call(_U64_OPS[type(node)], a, b), U64  # values above 2**63-1 are BLOBs
            # integers (SQLite's integer arithmetic is exact) or unknown operands: left to SQLite
            return node, (_combine(node, ka, kb) if isinstance(ka, tuple) and isinstance(kb, tuple) else None)
        kind = _combine(node, _as_decimal(ka) or (20, 0), _as_decimal(kb))
        x, y = self._operand(a), self._operand(b)
        if isinstance(node, exp.Div):
            return _call("__marmot_dec_div", x, y, exp.Literal.number(kind[1])), kind
        return _call(_EXACT_OPS[type(node)], x, y), kind

    def _cast(self, node: exp.Cast) -> tuple[exp.Expression, Kind]:
        to = node.args.get("to")
        if not isinstance(to, exp.DataType) or to.this not in (
            exp.DataType.Type.DECIMAL,
            exp.DataType.Type.UDECIMAL,
        ):
            return node, None
        params = [int(p.name) for p in to.expressions if p.name.isdigit()]
        p = params[0] if params else 10
        s = params[1] if len(params) > 1 else 0
        kind = _cap(p, s)
        return (
            _call(
                "__marmot_dec_cast",
                self._operand(node.this),
                exp.Literal.number(kind[0]),
                exp.Literal.number(kind[1]),
            ),
            kind,
        )

    def _aggregate(self, node: exp.Expression) -> tuple[exp.Expression, Kind]:
        arg = node.this
        if isinstance(arg, exp.Distinct):
            return node, None
        d = _as_decimal(self.kind(arg))
        if d is None or not self._exact(arg):
            return node, None  # SUM/AVG of integers or doubles: SQLite's own
        if isinstance(node, exp.Sum):
            kind = _cap(d[0] + 22, d[1])
            return _call("__marmot_dec_sum", arg), kind
        kind = _cap(d[0] + _DIV_INCREMENT, d[1] + _DIV_INCREMENT)
        return _call("__marmot_dec_avg", arg, exp.Literal.number(kind[1])), kind

    def _extremum(self, node: exp.Expression) -> tuple[exp.Expression, Kind]:
        """GREATEST/LEAST (SQLite's multi-argument MAX/MIN) with a DECIMAL argument: MySQL compares as
        numbers, giving a DECIMAL when every argument is DECIMAL or integer, else a DOUBLE."""
        args = [node.this, *node.expressions]
        if not any(self._exact(a) for a in args):
            return node, None
        kinds = [_as_decimal(self.kind(a)) for a in args]
        if any(k is None for k in kinds):
            for a in args:
                if self._exact(a):
                    a.replace(exp.Cast(this=a.copy(), to=exp.DataType.build("DOUBLE")))
            return node, FLOAT
        known = [k for k in kinds if k is not None]
        scale = max(k[1] for k in known)
        kind = _cap(max(k[0] - k[1] for k in known) + scale, scale)
        for i, a in enumerate(args):
            cast = _call(
                "__marmot_dec_cast",
                self._operand(a.copy()),
                exp.Literal.number(kind[0]),
                exp.Literal.number(kind[1]),
            )
            a.replace(_collate(cast) if i == 0 else cast)
        return node, kind

    def _u64(self, node: exp.Expression) -> bool:
        """A BIGINT UNSIGNED column or the result of arithmetic on one."""
        return self.kind(node) == U64 or self._u64_column(node)

    def _u64_column(self, node: exp.Expression) -> bool:
        """Is ``node`` a BIGINT UNSIGNED column (values above 2**63-1 stored as BLOBs)?"""
        t = self._column_type(node)
        return t is not None and t.startswith("bigint") and "unsigned" in t

    def _column_type(self, node: exp.Expression) -> str | None:
        return self.lookup(node) if isinstance(node, exp.Column) else None

    def _u64_operands(self, node: exp.Expression) -> exp.Expression:
        """``n = 18446744073709551615``, ``n IN (...)``, ``n BETWEEN a AND b`` on a BIGINT UNSIGNED column:
        the values go through ``__marmot_u64`` (the stored form of a value above 2**63-1)."""
        if isinstance(node, exp.In):
            if self._u64_column(node.this):
                node.set("expressions", [_u64(e) for e in node.expressions])
            return node
        if isinstance(node, exp.Between):
            if self._u64_column(node.this):
                node.set("low", _u64(node.args["low"]))
                node.set("high", _u64(node.args["high"]))
            return node
        a, b = node.this, node.expression
        if self._u64_column(a) and not isinstance(b, exp.Column):
            node.set("expression", _u64(b))
        elif self._u64_column(b) and not isinstance(a, exp.Column):
            node.set("this", _u64(a))
        return node

    def _json_numbers(self, node: exp.Expr) -> exp.Expr:
        """A DECIMAL given to a JSON constructor stays a JSON number (as a double, as before exact storage)
        instead of becoming the JSON string of its stored text."""
        for child in list(node.iter_expressions()):
            if isinstance(child, exp.Expression) and (self._exact(child) or _is_decimal_column(self, child)):
                child.replace(exp.Cast(this=child.copy(), to=exp.DataType.build("DOUBLE")))
        return node

    def _comparison(self, node: exp.Expression) -> exp.Expression:
        node = self._u64_operands(node)
        a, b = node.this, node.expression
        if not (_is_decimal_expr(a) or _is_decimal_expr(b)):
            return node
        if _is_decimal_column(self, a) or _is_decimal_column(self, b):
            return node  # the column's collation compares the texts as numbers
        cmp = _call("__marmot_dec_cmp", a, b)
        return type(node)(this=cmp, expression=exp.Literal.number(0))

    def _collated(self, node: exp.Ordered) -> exp.Expression:
        if _is_decimal_expr(node.this):
            node.set("this", _collate(node.this))
        return node

    def select_types(self, select: exp.Select) -> tuple[str | None, ...]:
        """``DECIMAL(p,s)`` for each DECIMAL item of the select list (others None); the exact results get
        the DECIMAL collation so ORDER BY an alias or a position sorts them as numbers."""
        types: list[str | None] = []
        for item in select.expressions:
            inner = item.this if isinstance(item, exp.Alias) else item
            kind = _as_decimal(self.kind(item)) or _as_decimal(self.kind(inner))
            exact = _is_decimal_expr(inner) or (
                isinstance(inner, exp.Literal) and not inner.is_string and "." in str(inner.this)
            )
            if exact and kind is not None:
                if isinstance(inner, exp.Literal) and self.literal_texts:
                    inner.replace(exp.Literal.string(str(inner.this)))
                elif isinstance(inner, exp.Anonymous):
                    inner.replace(_collate(inner.copy()))
            if isinstance(inner, exp.Literal) and not inner.is_string and _beyond_int64(str(inner.this)):
                inner.replace(exp.Literal.string(str(inner.this)))  # SQLite would read it as a double
                types.append(
                    "BIGINT UNSIGNED"
                    if int(str(inner.this)) < 2**64
                    else f"DECIMAL({kind[0]},0)"
                    if kind
                    else None
                )
                continue
            if self.kind(inner) == U64:
                types.append("BIGINT UNSIGNED")  # its values above 2**63-1 are BLOBs the wire layer reads
                continue
            # a view's DECIMAL column has no declared type either
            typed = exact or _is_minmax(inner) or _is_decimal_column(self, inner)
            types.append(_sql_type(kind) if kind is not None and typed else None)
        return tuple(types)


_JSON_BUILDERS = frozenset({"__mysql_json_object", "__mysql_json_array", "json_arrayagg"})


def _is_json_builder(node: exp.Expr) -> bool:
    """JSON_OBJECT / JSON_ARRAY and their aggregates, as the function rewrites left them."""
    if isinstance(node, exp.Anonymous):
        return node.name.lower() in _JSON_BUILDERS
    return isinstance(node, exp.JSONKeyValue)


def _beyond_int64(text: str) -> bool:
    return text.isdigit() and len(text) >= 19 and int(text) > 2**63 - 1


def _is_minmax(node: exp.Expression) -> bool:
    return isinstance(node, (exp.Min, exp.Max, exp.Greatest, exp.Least))


def _combine(node: exp.Expression, a: tuple[int, int], b: tuple[int, int] | None) -> tuple[int, int]:
    b = b or (20, 0)
    (p1, s1), (p2, s2) = a, b
    if isinstance(node, (exp.Add, exp.Sub)):
        s = max(s1, s2)
        return _cap(max(p1 - s1, p2 - s2) + s + 1, s)
    if isinstance(node, exp.Mul):
        return _cap(p1 + p2, s1 + s2)
    s = s1 + _DIV_INCREMENT
    return _cap(p1 - s1 + s2 + s, s)


_EXACT_OPS: dict[type, str] = {
    exp.Add: "__marmot_dec_add",
    exp.Sub: "__marmot_dec_sub",
    exp.Mul: "__marmot_dec_mul",
}

_U64_OPS: dict[type, str] = {
    exp.Add: "__marmot_u64_add",
    exp.Sub: "__marmot_u64_sub",
    exp.Mul: "__marmot_u64_mul",
}

_EXACT_FUNCS = frozenset(
    {
        "__marmot_dec_add",
        "__marmot_dec_sub",
        "__marmot_dec_mul",
        "__marmot_dec_div",
        "__marmot_dec_neg",
        "__marmot_dec_cast",
        "__marmot_dec_sum",
        "__marmot_dec_avg",
    }
)


def _is_decimal_expr(node: exp.Expression) -> bool:
    """Is this an exact DECIMAL computation (a call of ours), possibly collated or parenthesised?"""
    while isinstance(node, (exp.Paren, exp.Collate)):
        node = node.this
    return isinstance(node, exp.Anonymous) and node.name.lower() in _EXACT_FUNCS


def _is_decimal_column(p: DecimalPass, node: exp.Expression) -> bool:
    t = p.lookup(node) if isinstance(node, exp.Column) else None
    return t is not None and t.startswith(("decimal", "numeric"))


def _u64(node: exp.Expression) -> exp.Expression:
    if isinstance(node, (exp.Null, exp.Column, exp.Subquery, exp.Select)):
        return node
    return _call("__marmot_u64", node)


def _call(name: str, *args: exp.Expression) -> exp.Anonymous:
    return exp.Anonymous(this=name, expressions=list(args))


def _collate(node: exp.Expression) -> exp.Expression:
    return exp.Collate(this=node, expression=exp.var(DECIMAL_COLLATION))


def rewrite(
    tree: exp.Expr, database: str, column_types: ColumnTypes
) -> tuple[exp.Expr, tuple[str | None, ...]]:
    """(rewritten tree, DECIMAL result types of its select list or ``()``)."""
    p = DecimalPass(tree, database, column_types)
    tree = p.run()
    if isinstance(tree, exp.Select):
        types = p.select_types(tree)
        return tree, types if any(types) else ()
    return tree, ()


def view_column_types(create_view_sql: str, database: str, column_types: ColumnTypes) -> dict[str, str]:
    """Lower-case column name -> ``decimal(p,s)`` for the DECIMAL columns of a stored view (SQLite
    dialect ``CREATE VIEW``): SQLite declares no type for a view's computed columns (``SUM(total)``), so
    a ``SELECT *`` from the view learns MySQL's DECIMAL type here."""
    try:
        tree = sqlglot.parse_one(create_view_sql, read="sqlite")
    except (ParseError, TokenError):
        return {}
    select = tree.expression if isinstance(tree, exp.Create) else None
    if not isinstance(select, exp.Select):
        return {}
    select = restore_mysql(select)
    if not isinstance(select, exp.Select):
        return {}
    p = DecimalPass(select, database, column_types)
    select = p.run()
    if not isinstance(select, exp.Select):
        return {}
    out: dict[str, str] = {}
    for item, sql_type in zip(select.expressions, p.select_types(select), strict=True):
        if sql_type is not None and item.alias_or_name:
            out[item.alias_or_name.lower()] = sql_type.lower()
    return out


def rewrite_view(create: exp.Create, database: str, column_types: ColumnTypes) -> None:
    """``CREATE VIEW ... AS <select>``: the select computes its DECIMALs exactly too; literals stay numbers
    so ``restore_mysql`` gives SHOW CREATE VIEW the text back."""
    query = create.expression
    if not isinstance(query, exp.Select):
        return
    p = DecimalPass(query, database, column_types, literal_texts=False)
    query = p.run()
    if isinstance(query, exp.Select):
        p.select_types(query)
    create.set("expression", query)


_RESTORE_BINARY: dict[str, type[exp.Binary]] = {
    "__marmot_dec_add": exp.Add,
    "__marmot_dec_sub": exp.Sub,
    "__marmot_dec_mul": exp.Mul,
    "__marmot_dec_div": exp.Div,
}


_RESTORE_U64: dict[str, type[exp.Binary]] = {
    "__marmot_u64_add": exp.Add,
    "__marmot_u64_sub": exp.Sub,
    "__marmot_u64_mul": exp.Mul,
}


def restore_mysql(tree: exp.Expr) -> exp.Expr:
    """The MySQL expressions behind this pass's rewrites (for a stored view's SQL): exact calls back to
    operators, CAST, SUM and AVG; the collation and ``__marmot_u64`` dropped; ``__marmot_dec_cmp(a, b) op 0``
    back to ``a op b``."""

    def back(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Collate) and node.expression is not None:
            if node.expression.name.upper() == DECIMAL_COLLATION:
                inner: exp.Expr = node.this
                return inner
            return node
        if isinstance(node, (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)):
            left = node.this
            if isinstance(left, exp.Anonymous) and left.name.lower() == "__marmot_dec_cmp":
                a, b = left.expressions
                return type(node)(this=a, expression=b)
            return node
        if not isinstance(node, exp.Anonymous):
            return node
        name, args = node.name.lower(), node.expressions
        if name in _RESTORE_BINARY and len(args) >= 2:
            return exp.Paren(this=_RESTORE_BINARY[name](this=args[0], expression=args[1]))
        if name == "__marmot_dec_neg" and args:
            return exp.Neg(this=args[0])
        if name == "__marmot_dec_sum" and args:
            return exp.Sum(this=args[0])
        if name == "__marmot_dec_avg" and args:
            return exp.Avg(this=args[0])
        if name in _RESTORE_U64 and len(args) == 2:
            return exp.Paren(this=_RESTORE_U64[name](this=args[0], expression=args[1]))
        if name == "__marmot_u64" and args:
            value: exp.Expr = args[0]
            return value
        if name == "__marmot_dec_cast" and len(args) == 3:
            to = exp.DataType.build(f"DECIMAL({args[1].name}, {args[2].name})")
            return exp.Cast(this=args[0], to=to)
        return node

    root = tree.copy()
    for node in reversed(list(root.dfs())):  # children before parents, as the rewrite went
        new = back(node)
        if new is not node:
            if node is root:
                root = new
            else:
                node.replace(new)
    return root
