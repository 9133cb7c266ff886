"""Rewrites of MySQL function calls that sqlglot parses into nodes SQLite renders wrongly.

``rewrite(node)`` is called by the transpiler for every node of a statement before the session-specific
rewrites; it returns the node unchanged or its replacement. sqlglot turns many MySQL calls into its own
nodes and renders them for SQLite with SQLite's built-ins, which differ from MySQL (``LENGTH`` counts
characters, ``SUBSTR('abc', 0)`` is 'abc', ``ROUND`` rounds binary doubles, ``x % y`` truncates to
integers, ``HEX(255)`` is the hex of the text '255', ``DATE_ADD`` becomes ``DATE(d, '+1 MONTH')`` ...).
Each such node becomes a call of a user function with MySQL semantics (``functions``,
``functions.datetime``), or of the SQLite built-in when that one is exact (``octet_length``,
``CURRENT_TIMESTAMP``, native ``TRIM`` without a remove-string).

Order: a replaced node's arguments must already be rewritten, so the tree is processed children first.
The transpiler's own traversal visits parents first and skips the arguments of a node it replaced, so
when ``rewrite`` sees the statement root it rewrites the whole tree bottom-up at once; later calls for
inner nodes find them already rewritten (every rule is idempotent). The same holds if the transpiler
switches to a bottom-up traversal.

Literal arguments outside the select list arrive as placeholders (bound values), so no rule may depend on
a literal's value, except where the syntax itself carries it (units, ``USING`` charsets, JSON paths in
the select list).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp
from sqlglot.dialects.mysql import MySQL

from marmot.sql.functions.date_format import str_to_date_type

_MYSQL = MySQL()
_MYSQL_GENERATOR = _MYSQL.generator()

Rule = Callable[[exp.Expression], exp.Expression]


def rewrite(node: exp.Expr) -> exp.Expr:
    if node.parent is None:
        return rewrite_tree(node)
    return _rewrite_one(node)


def rewrite_tree(root: exp.Expr) -> exp.Expr:
    """Rewrite every node of ``root``, children before parents; returns the (possibly new) root."""
    for node in reversed(list(root.dfs())):
        new = _rewrite_one(node)
        if new is not node:
            if node is root:
                root = new
            else:
                node.replace(new)
    return root


def rewrite_node(node: exp.Expr) -> exp.Expr:
    """One node's rewrite (the transpiler walks the tree itself, children first)."""
    return _rewrite_one(node)


def _rewrite_one(node: exp.Expr) -> exp.Expr:
    rule = _RULES.get(type(node))
    if rule is None or not isinstance(node, exp.Expression):  # (every node type with a rule is one)
        return node
    return rule(node)


# ----------------------------------------------------------------------------------------- helpers


def _call(name: str, *args: exp.Expression | None) -> exp.Anonymous:
    return exp.Anonymous(this=name, expressions=[a for a in args if a is not None])


def _s(value: str) -> exp.Literal:
    return exp.Literal.string(value)


_CASTS = (exp.TsOrDsToDate, exp.TsOrDsToTimestamp, exp.TsOrDsToDatetime)


def _unwrap(node: exp.Expression | None) -> exp.Expression | None:
    """Drop one DATE()/TIMESTAMP() cast sqlglot wrapped around a date function's argument."""
    if isinstance(node, _CASTS):
        inner: exp.Expression = node.this  # sqlglot types a node's children as Any
        return inner
    return node


def _unit(node: exp.Expression) -> str:
    unit = node.args.get("unit")
    if unit is None:
        return "DAY"
    return (unit.name if isinstance(unit, exp.Expression) else str(unit)).upper()


def _mysql_format(node: exp.Expression) -> exp.Expression:
    """The MySQL format string of a parsed DATE_FORMAT/STR_TO_DATE (sqlglot stores a converted one).

    sqlglot maps formats to strftime and back; ``%A``, ``%B``, ``%G`` (not MySQL specifiers) come back as
    ``%W``, ``%M``, ``%x``. Placeholders (bound formats) pass through untouched.
    """
    fmt = node.args.get("format")
    if not isinstance(fmt, exp.Literal):
        return fmt if fmt is not None else exp.null()
    text = _MYSQL_GENERATOR.format_time(node) or "''"
    return _s(text[1:-1].replace("''", "'"))


# ---------------------------------------------------------------------------------------- date/time

_DATE_PART_NAMES: dict[type, str] = {
    exp.Year: "YEAR",
    exp.Month: "MONTH",
    exp.Day: "DAY",
    exp.DayOfMonth: "DAYOFMONTH",
    exp.DayOfWeek: "DAYOFWEEK",
    exp.DayOfYear: "DAYOFYEAR",
    exp.Quarter: "QUARTER",
    exp.WeekOfYear: "WEEKOFYEAR",
    exp.Hour: "HOUR",
    exp.Minute: "MINUTE",
    exp.Second: "SECOND",
    exp.Dayname: "DAYNAME",
    exp.LastDay: "LAST_DAY",
}
# sqlglot wraps the argument of these in one TsOrDsToDate/TsOrDsToTimestamp of its own: their rules drop
# that one layer (a user's DATE() inside stays, as a second layer).
_WRAPPED = (
    exp.Year,
    exp.Month,
    exp.Day,
    exp.DayOfMonth,
    exp.DayOfWeek,
    exp.DayOfYear,
    exp.WeekOfYear,
    exp.Week,
    exp.TimeToStr,
)


def _date_part(node: exp.Expression) -> exp.Expression:
    arg = _unwrap(node.this) if isinstance(node, _WRAPPED) else node.this
    return _call(_DATE_PART_NAMES[type(node)], arg)


def _week(node: exp.Expression) -> exp.Expression:
    return _call("WEEK", _unwrap(node.this), node.args.get("mode"))


def _cast_call(node: exp.Expression) -> exp.Expression:
    """A user's DATE(x) / TIMESTAMP(x), unless it is the cast sqlglot put around a date function's argument."""
    parent = node.parent
    if (isinstance(parent, _WRAPPED) and node.arg_key == "this") or isinstance(parent, exp.DateDiff):
        return node  # the parent's rule drops it
    name = "__mysql_date" if isinstance(node, exp.TsOrDsToDate) else "__mysql_timestamp"
    return _call(name, node.this)


def _fsp_call(native: type[exp.Expression], name: str) -> Rule:
    """NOW()/CURTIME() and synonyms: SQLite's own clock value, or ours when a precision is asked for."""

    def rule(node: exp.Expression) -> exp.Expression:
        fsp = node.args.get("this")
        if fsp is not None:
            return _call(name, fsp)
        return node if type(node) is native else native()

    return rule


def _time_to_str(node: exp.Expression) -> exp.Expression:
    return _call("DATE_FORMAT", _unwrap(node.this), _mysql_format(node))


def _str_to_date(node: exp.Expression) -> exp.Expression:
    return _call("STR_TO_DATE", node.this, _mysql_format(node))


def _from_unixtime(node: exp.Expression) -> exp.Expression:
    if node.args.get("format") is not None:
        return _call("FROM_UNIXTIME", node.this, _mysql_format(node))
    return _call("FROM_UNIXTIME", node.this)


def _unix_timestamp(node: exp.Expression) -> exp.Expression:
    return _call("UNIX_TIMESTAMP", _unwrap(node.this))


def _datediff(node: exp.Expression) -> exp.Expression:
    a, b = node.this, node.expression
    while isinstance(a, exp.TsOrDsToDate):
        a = a.this
    while isinstance(b, exp.TsOrDsToDate):
        b = b.this
    return _call("DATEDIFF", a, b)


def _date_add(date: exp.Expression, amount: exp.Expression, unit: str, subtract: bool) -> exp.Expression:
    return _call("__mysql_date_add", date, amount, _s(("-" if subtract else "") + unit))


def _date_add_node(node: exp.Expression) -> exp.Expression:
    return _date_add(node.this, node.expression, _unit(node), isinstance(node, exp.DateSub))


def _interval_arith(node: exp.Expression) -> exp.Expression:
    """``d + INTERVAL n unit``, ``INTERVAL n unit + d``, ``d - INTERVAL n unit``."""
    left, right = node.this, node.expression
    if isinstance(left, exp.Interval) and isinstance(right, exp.Interval) and right.args.get("unit") is None:
        right = right.this  # sqlglot reads "INTERVAL 1 DAY + '2024-12-31'" as two intervals
    if isinstance(right, exp.Interval):
        return _date_add(left, right.this, _unit(right), isinstance(node, exp.Sub))
    if isinstance(left, exp.Interval) and isinstance(node, exp.Add):
        return _date_add(right, left.this, _unit(left), False)
    return node


def _timestamp_add(node: exp.Expression) -> exp.Expression:
    return _date_add(node.this, node.expression, _unit(node), False)


def _timestamp_diff(node: exp.Expression) -> exp.Expression:
    # sqlglot stores TIMESTAMPDIFF(unit, a, b) as this=b, expression=a
    return _call("__mysql_timestampdiff", _s(_unit(node)), node.expression, node.this)


def _extract(node: exp.Expression) -> exp.Expression:
    unit = node.this
    name = unit.name if isinstance(unit, exp.Expression) else str(unit)
    return _call("__mysql_extract", _s(name.upper()), node.expression)


def _timestamp_fn(node: exp.Expression) -> exp.Expression:
    return _call("__mysql_timestamp", node.this, node.args.get("zone"))


def _maketime(node: exp.Expression) -> exp.Expression:
    return _call("MAKETIME", node.args.get("hour"), node.args.get("min"), node.args.get("sec"))


def _convert_tz(node: exp.Expression) -> exp.Expression:
    return _call(
        "CONVERT_TZ", node.args.get("timestamp"), node.args.get("source_tz"), node.args.get("target_tz")
    )


_CAST_FUNCS = {
    exp.DataType.Type.DATE: "__mysql_date",
    exp.DataType.Type.DATETIME: "__mysql_timestamp",
    exp.DataType.Type.TIMESTAMP: "__mysql_timestamp",
    exp.DataType.Type.TIME: "__mysql_time",
}


def _cast(node: exp.Expression) -> exp.Expression:
    to = node.args.get("to")
    if not isinstance(to, exp.DataType):
        return node
    if to.this == exp.DataType.Type.CHARACTER_SET:
        kind = to.args.get("kind")
        charset = kind.name if isinstance(kind, exp.Expression) else str(kind or "utf8mb4")
        return _call("__mysql_convert_using", node.this, _s(charset))
    name = _CAST_FUNCS.get(to.this)
    if name is None:
        return node
    return _call(name, node.this)


_UNQUOTED_FUNCTION_WORDS = {"UTC_DATE": "UTC_DATE", "UTC_TIME": "UTC_TIME", "UTC_TIMESTAMP": "UTC_TIMESTAMP"}


def _column(node: exp.Expression) -> exp.Expression:
    """``UTC_DATE`` / ``UTC_TIME`` / ``UTC_TIMESTAMP`` without parentheses (reserved words in MySQL)."""
    if node.args.get("table") is not None:
        return node
    ident = node.this
    if not isinstance(ident, exp.Identifier) or ident.quoted:
        return node
    name = _UNQUOTED_FUNCTION_WORDS.get(ident.name.upper())
    if name == "UTC_TIMESTAMP":
        return exp.CurrentTimestamp()
    if name is not None:
        return _call(name)
    return node


# ------------------------------------------------------------------------------------------ strings


def _concat(node: exp.Expression) -> exp.Expression:
    return _call("__mysql_concat", *node.expressions)


def _concat_ws(node: exp.Expression) -> exp.Expression:
    return _call("__mysql_concat_ws", *node.expressions)


def _length(node: exp.Expression) -> exp.Expression:
    """LENGTH counts bytes (sqlglot marks it binary); CHAR_LENGTH stays SQLite's character count."""
    if node.args.get("binary"):
        return _call("OCTET_LENGTH", node.this)
    return node


def _bit_length(node: exp.Expression) -> exp.Expression:
    return exp.Paren(this=exp.Mul(this=_call("OCTET_LENGTH", node.this), expression=exp.Literal.number(8)))


def _substring(node: exp.Expression) -> exp.Expression:
    length = node.args.get("length")
    if length is None:
        return _call("__mysql_substring", node.this, node.args.get("start") or exp.Literal.number(1))
    return _call("__mysql_substring3", node.this, node.args.get("start") or exp.Literal.number(1), length)


def _locate(node: exp.Expression) -> exp.Expression:
    return _call("__mysql_locate", node.args.get("substr"), node.this, node.args.get("position"))


def _trim(node: exp.Expression) -> exp.Expression:
    remove = node.args.get("expression")
    if remove is None:
        return node  # spaces only: SQLite's TRIM/LTRIM/RTRIM do exactly that
    position = (node.text("position") or "BOTH").upper()
    return _call("__mysql_trim", node.this, remove, _s(position))


def _stuff(node: exp.Expression) -> exp.Expression:
    return _call(
        "__mysql_insert", node.this, node.args.get("start"), node.args.get("length"), node.expression
    )


def _chr(node: exp.Expression) -> exp.Expression:
    charset = node.args.get("charset")
    if not isinstance(charset, exp.Expression):
        return _call("__mysql_char", *node.expressions)
    return _call("__mysql_char_using", _s(charset.name), *node.expressions)


def _format(node: exp.Expression) -> exp.Expression:
    return _call("__mysql_format", node.this, node.args.get("format"), node.args.get("culture"))


def _simple(name: str, *keys: str) -> Rule:
    """A node whose arguments map in order onto the call of ``name``."""

    def rule(node: exp.Expression) -> exp.Expression:
        return _call(name, *(node.args.get(k) for k in keys))

    return rule


# ------------------------------------------------------------------------------------------ numbers


def _rand(node: exp.Expression) -> exp.Expression:
    return _call("RAND", node.this)


# --------------------------------------------------------------------------------------------- JSON


def _json_path(p: exp.Expression | None) -> exp.Expression | None:
    """A JSON path argument as the path text MySQL would see (sqlglot parses literal paths)."""
    if isinstance(p, exp.JSONPath):
        text = p.sql(dialect="mysql")
        if len(text) >= 2 and text[0] == text[-1] == "'":
            text = text[1:-1].replace("''", "'")
        return _s(text)
    return p


def _json_extract(node: exp.Expression) -> exp.Expression:
    paths = [_json_path(node.expression), *(_json_path(e) for e in node.expressions)]
    return _call("__mysql_json_extract", node.this, *paths)


def _json_extract_scalar(node: exp.Expression) -> exp.Expression:
    if node.expressions:
        return _call("JSON_UNQUOTE", _json_extract(node))
    return _call("__mysql_json_unquoted", node.this, _json_path(node.expression))


def _json_object(node: exp.Expression) -> exp.Expression:
    args: list[exp.Expression] = []
    for kv in node.expressions:
        if isinstance(kv, exp.JSONKeyValue):
            args.extend((kv.this, kv.expression))
        else:
            return node
    return _call("__mysql_json_object", *args)


# ------------------------------------------------------------------------------------ by name (anon)

_RENAMED = {  # MySQL functions sqlglot leaves anonymous but SQLite has with another meaning
    "TIMEDIFF": "__mysql_timediff",
    "JSON_ARRAY": "__mysql_json_array",
    "JSON_VALID": "__mysql_json_valid",
    "JSON_LENGTH": "__mysql_json_length",
    "JSON_QUOTE": "__mysql_json_quote",
    "JSON_TYPE": "__mysql_json_type",
    "JSON_KEYS": "__mysql_json_keys",
    "JSON_OBJECT": "__mysql_json_object",
}


def _anonymous(node: exp.Expression) -> exp.Expression:
    name = node.name.upper()
    args = list(node.expressions)
    if name in _RENAMED:
        return _call(_RENAMED[name], *args)
    if name == "NOW" or name == "LOCALTIME" or name == "LOCALTIMESTAMP":
        return _call("__mysql_now", args[0]) if args else exp.CurrentTimestamp()
    if name in ("ADDDATE", "SUBDATE") and len(args) == 2:
        date, amount = args
        unit = "DAY"
        if isinstance(amount, exp.Interval):
            unit, amount = _unit(amount), amount.this
        return _date_add(date, amount, unit, name == "SUBDATE")
    return node


_RULES: dict[type, Rule] = {
    **dict.fromkeys(_DATE_PART_NAMES, _date_part),
    exp.Week: _week,
    exp.TsOrDsToDate: _cast_call,
    exp.TsOrDsToTimestamp: _cast_call,
    exp.TsOrDsToDatetime: _cast_call,
    exp.CurrentTimestamp: _fsp_call(exp.CurrentTimestamp, "__mysql_now"),
    exp.UtcTimestamp: _fsp_call(exp.CurrentTimestamp, "__mysql_now"),
    exp.Localtimestamp: _fsp_call(exp.CurrentTimestamp, "__mysql_now"),
    exp.Localtime: _fsp_call(exp.CurrentTimestamp, "__mysql_now"),
    exp.CurrentTime: _fsp_call(exp.CurrentTime, "__mysql_curtime"),
    exp.UtcTime: _fsp_call(exp.CurrentTime, "__mysql_curtime"),
    exp.UtcDate: lambda node: exp.CurrentDate(),
    exp.TimeToStr: _time_to_str,
    exp.StrToDate: _str_to_date,
    exp.StrToTime: _str_to_date,
    exp.UnixToTime: _from_unixtime,
    exp.StrToUnix: _unix_timestamp,
    exp.TimeToUnix: _unix_timestamp,
    exp.DateDiff: _datediff,
    exp.DateAdd: _date_add_node,
    exp.DateSub: _date_add_node,
    exp.Add: _interval_arith,
    exp.Sub: _interval_arith,
    exp.TimestampAdd: _timestamp_add,
    exp.TimestampDiff: _timestamp_diff,
    exp.Extract: _extract,
    exp.Time: _simple("__mysql_time", "this"),
    exp.Timestamp: _timestamp_fn,
    exp.TimeFromParts: _maketime,
    exp.ConvertTimezone: _convert_tz,
    exp.Cast: _cast,
    exp.Column: _column,
    exp.Concat: _concat,
    exp.ConcatWs: _concat_ws,
    exp.Length: _length,
    exp.BitLength: _bit_length,
    exp.Upper: _simple("__mysql_upper", "this"),
    exp.Lower: _simple("__mysql_lower", "this"),
    exp.Substring: _substring,
    exp.StrPosition: _locate,
    exp.Trim: _trim,
    exp.Stuff: _stuff,
    exp.Space: _simple("SPACE", "this"),
    exp.Chr: _chr,
    exp.Hex: _simple("__mysql_hex", "this"),
    exp.Unhex: _simple("__mysql_unhex", "this"),
    exp.NumberToStr: _format,
    exp.BitwiseCount: _simple("BIT_COUNT", "this"),
    exp.Round: _simple("__mysql_round", "this", "decimals"),
    exp.Trunc: _simple("__mysql_truncate", "this", "decimals"),
    exp.Ceil: _simple("__mysql_ceil", "this"),
    exp.Floor: _simple("__mysql_floor", "this"),
    exp.Mod: _simple("__mysql_mod", "this", "expression"),
    exp.IntDiv: _simple("__mysql_div", "this", "expression"),
    exp.Sign: _simple("__mysql_sign", "this"),
    exp.Rand: _rand,
    exp.JSONExtract: _json_extract,
    exp.JSONExtractScalar: _json_extract_scalar,
    exp.JSONObject: _json_object,
    exp.JSONType: _simple("__mysql_json_type", "this"),
    exp.JSONKeys: _simple("__mysql_json_keys", "this", "expression"),
    exp.Anonymous: _anonymous,
}


# ------------------------------------------------------------------------------ result column types

_RESULT_TYPES = {
    "NOW": "DATETIME",
    "SYSDATE": "DATETIME",
    "LOCALTIME": "DATETIME",
    "LOCALTIMESTAMP": "DATETIME",
    "UTC_TIMESTAMP": "DATETIME",
    "__MYSQL_TIMESTAMP": "DATETIME",
    "CONVERT_TZ": "DATETIME",
    "CURDATE": "DATE",
    "UTC_DATE": "DATE",
    "__MYSQL_DATE": "DATE",
    "LAST_DAY": "DATE",
    "MAKEDATE": "DATE",
    "FROM_DAYS": "DATE",
    "__MYSQL_NOW": "DATETIME",
    "CURTIME": "TIME",
    "UTC_TIME": "TIME",
    "__MYSQL_CURTIME": "TIME",
    "__MYSQL_TIME": "TIME",
    "MAKETIME": "TIME",
    "SEC_TO_TIME": "TIME",
    "__MYSQL_TIMEDIFF": "TIME",
}


def result_type(node: exp.Expression) -> str | None:
    """The MySQL column type of a rewritten select-list item when MySQL answers a DATE/DATETIME/TIME.

    SQLite returns these values as text, so a result set would otherwise describe them as strings
    (clients then hand out ``str`` where MySQL gives ``datetime``/``date``/``timedelta``). None when the
    type is not a temporal one or depends on argument types this layer cannot see (``DATE_ADD`` of a
    DATETIME column is a DATETIME, of a string literal a string).
    """
    if isinstance(node, exp.Alias):
        node = node.this
    if isinstance(node, exp.CurrentTimestamp):
        return "DATETIME"
    if isinstance(node, exp.CurrentDate):
        return "DATE"
    if isinstance(node, exp.CurrentTime):
        return "TIME"
    if not isinstance(node, exp.Anonymous):
        return None
    name = node.name.upper()
    if name == "FROM_UNIXTIME":
        return "DATETIME" if len(node.expressions) == 1 else None
    if name == "STR_TO_DATE" and len(node.expressions) == 2:
        fmt = node.expressions[1]
        if isinstance(fmt, exp.Literal) and fmt.is_string:
            return str_to_date_type(fmt.this)
        return None
    return _RESULT_TYPES.get(name)
