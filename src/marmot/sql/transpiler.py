"""MySQL statement shape -> executable SQLite plan, behind an LRU cache.

The path of one statement: ``lexer.normalize`` gives the literal-free shape; ``Transpiler.plan`` looks the
shape up (key: shape, current database, that database's schema generation, transpilation flag) and on a
miss parses it with sqlglot's MySQL dialect, applies our rules and renders SQLite SQL. A plan is
immutable and shared by every session, so it holds no values: its ``binds`` say, for each ``?`` of the
SQLite text, which literal (``("l", i)``) or client parameter (``("p", i)``) to bind.

Rules applied here (issue 2 set; the dialect issue grows them):
- table qualifiers: ``db.t`` for the current database is stripped; another database stays qualified and
  is listed in ``attach`` so the engine ATTACHes it under its own name;
- internal ``__marmot*`` tables are invisible (1146) to client SQL;
- AUTO_INCREMENT ids: the auto-increment column's value is wrapped in ``__marmot_autoid(v)`` (a per-session
  SQLite function that returns ``v`` unless it is NULL/0), and added when the column is omitted;
- stored values: each value of an INSERT/REPLACE/UPDATE/upsert is wrapped in its column's check
  (``value_checks.py``; the engine applies sql_mode), ``Plan.checked`` says which table's checks;
- ``UPDATE/DELETE ... ORDER BY ... LIMIT`` (the apsw SQLite build lacks it) -> ``rowid IN (subquery)``;
- ``@@var``/``@var``/``DATABASE()``/``VERSION()`` become calls of per-session SQLite functions;
- unaliased select-list expressions get their MySQL column name (the original text) as alias.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from marmot.sql import decimal_rewrites, dml, function_rewrites, lexer, triggers, value_checks
from marmot.sql.alter import StoredTable, renamed_objects, translate_alter
from marmot.sql.ddl import DDLError, index_statement, translate_create_table

logging.getLogger("sqlglot").setLevel(logging.ERROR)

INTERNAL_PREFIX = "__marmot"

# Statement classes (Plan.kind)
READ = "read"
WRITE = "write"
DDL = "ddl"


class SQLSyntaxError(Exception):
    """MySQL error 1064: the statement does not parse."""

    def __init__(self, near: str, line: int) -> None:
        super().__init__(
            "You have an error in your SQL syntax; check the manual that corresponds to your MySQL server "
            f"version for the right syntax to use near '{near[:80]}' at line {line}"
        )


class NoSuchTable(Exception):
    """MySQL error 1146."""


class Unsupported(Exception):
    """A statement we parse but cannot run (MySQL error 1235 'not supported yet')."""


@dataclass(frozen=True, slots=True)
class Step:
    """One SQLite statement and how to bind it."""

    sql: str
    binds: tuple[tuple[str, int], ...] = ()
    role: str = ""  # "found_rows": run first, its single value is what FOUND_ROWS() returns


@dataclass(frozen=True, slots=True)
class Plan:
    kind: str  # READ | WRITE | DDL
    steps: tuple[Step, ...]
    tables: frozenset[str] = field(default_factory=frozenset)  # tables written or created (lower case)
    attach: frozenset[str] = field(default_factory=frozenset)  # other databases referenced
    autoinc: bool = False  # the statement may mint AUTO_INCREMENT ids
    # How MySQL counts affected rows for this statement, when SQLite's changes() differs:
    # "update" (changed rows only), "upsert" (1 per insert, 2 per changed update), "replace" (deleted + inserted)
    affected: str = ""
    rebuild: bool = False  # an ALTER that copies the table: run with foreign-key enforcement off
    needs_database: bool = True  # some table is named without a database (so one must be selected)
    # MySQL type of each result column SQLite cannot describe (NOW() is DATETIME, not text), or None
    result_types: tuple[str | None, ...] = ()
    # (database or "" for the current one, table) whose column checks the statement's values go through
    # (``value_checks.py``: the slot argument of ``__marmot_chk`` indexes this)
    checked: tuple[tuple[str, str], ...] = ()
    single_row: bool = False  # an INSERT of one VALUES row (MySQL: NULL into NOT NULL fails even non-strict)
    ignore: bool = False  # INSERT/UPDATE IGNORE: data errors become warnings, as without strict mode
    # per column position of the checked table, its place in the statement's column list: the order of
    # MySQL's warnings within a row (SQLite computes a row's values in table column order)
    value_order: tuple[int, ...] = ()


class SchemaInfo:
    """What the transpiler needs to know about tables; the engine supplies a live implementation."""

    def autoinc_column(self, database: str, table: str) -> tuple[str, int, bool] | None:
        """(column, position, zero_means_generate) of the table's AUTO_INCREMENT column, or None."""
        return None

    def table_schema(self, database: str, table: str) -> StoredTable | None:
        """The table as stored (for ALTER TABLE rebuilds), or None when it does not exist."""
        return None

    def column_facts(self, database: str, table: str) -> tuple[value_checks.ColumnFacts, ...] | None:
        """The table's columns in order, as ``value_checks`` needs them; None: do not check its values."""
        return None

    def column_types(self, database: str, table: str) -> dict[str, str] | None:
        """Lower-case column name -> MySQL column type (``decimal(10,2)``) of a table or view, or None:
        ``decimal_rewrites`` types arithmetic on DECIMAL columns with it."""
        return None


PlanKey = tuple[str, str, int]
"""(statement shape, database, schema generation): what a plan depends on."""


class PlanCache:
    """A thread-safe LRU of plans (``[query_pipeline] transpiler_cache_size`` entries)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._data: OrderedDict[PlanKey, Plan] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: PlanKey) -> Plan | None:
        plan = self._data.get(key)
        if plan is None:
            self.misses += 1
            return None
        self.hits += 1
        if len(self._data) > self.capacity // 2:  # recency bookkeeping only matters when near full
            with self._lock, contextlib.suppress(KeyError):
                self._data.move_to_end(key)
        return plan

    def put(self, key: PlanKey, plan: Plan) -> None:
        if self.capacity <= 0:
            return
        with self._lock:
            self._data[key] = plan
            while len(self._data) > self.capacity:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


_MODIFIERS = frozenset(
    {
        "DISTINCT",
        "ALL",
        "DISTINCTROW",
        "HIGH_PRIORITY",
        "STRAIGHT_JOIN",
        "SQL_SMALL_RESULT",
        "SQL_BIG_RESULT",
        "SQL_BUFFER_RESULT",
        "SQL_NO_CACHE",
        "SQL_CACHE",
        "SQL_CALC_FOUND_ROWS",
    }
)
_SELECT_END = frozenset(
    {
        "FROM",
        "INTO",
        "WHERE",
        "GROUP",
        "HAVING",
        "ORDER",
        "LIMIT",
        "UNION",
        "FOR",
        "LOCK",
        "WINDOW",
        "EXCEPT",
        "INTERSECT",
    }
)


def select_item_texts(shape: str) -> list[str] | None:
    """Original text of each outermost select-list item (MySQL names unaliased columns after it)."""
    toks = [t for t in lexer.tokenize(shape) if t.kind not in ("ws", "comment")]
    i = 0
    while i < len(toks) and not (toks[i].kind == "word" and toks[i].text.upper() == "SELECT"):
        if toks[i].text != "(":
            return None
        i += 1
    i += 1
    while i < len(toks) and toks[i].kind == "word" and toks[i].text.upper() in _MODIFIERS:
        i += 1
    items: list[str] = []
    depth = 0
    start = toks[i].start if i < len(toks) else len(shape)
    end = start
    for tok in toks[i:]:
        if tok.kind == "punct" and tok.text == "(":
            depth += 1
        elif tok.kind == "punct" and tok.text == ")":
            if depth == 0:
                break
            depth -= 1
        elif depth == 0 and tok.kind == "punct" and tok.text in ",;":
            items.append(shape[start:end])
            start = tok.start + 1
            if tok.text == ";":
                break
            continue
        elif depth == 0 and tok.kind == "word" and tok.text.upper() in _SELECT_END:
            break
        end = tok.start + len(tok.text)
    items.append(shape[start:end])
    return [s.strip() for s in items]


def _column_name_for(text: str, node: exp.Expression) -> str:
    if isinstance(node, exp.Literal) and node.is_string:
        return node.name  # a string literal's text (its ``this``)
    return _CLIENT_PARAM_RE.sub("?", text)  # placeholders of client prepared statements show as '?'


_CLIENT_PARAM_RE = re.compile(r":__p\d+")


class Transpiler:
    """Turns MySQL statements into cached SQLite plans."""

    def __init__(self, cache_size: int = 10000, schema: SchemaInfo | None = None) -> None:
        self.cache = PlanCache(cache_size)
        self.schema = schema or SchemaInfo()

    def plan(self, norm: lexer.Normalized, database: str, generation: int, original: str) -> Plan:
        key = (norm.shape, database, generation)
        plan = self.cache.get(key)
        if plan is None:
            plan = self._build(norm, database, original)
            self.cache.put(key, plan)
        return plan

    # -- building -------------------------------------------------------------------------------------

    def _build(self, norm: lexer.Normalized, database: str, original: str) -> Plan:
        self._unqualified = True  # set by _resolve_tables for statements that name tables
        plan = self._build_plan(norm, database, original)
        if not self._unqualified and plan.needs_database:
            plan = dataclasses.replace(plan, needs_database=False)
        return plan

    def _build_plan(self, norm: lexer.Normalized, database: str, original: str) -> Plan:
        shape = norm.shape
        if norm.keyword == "RENAME" and norm.words[1:2] == ["TABLE"]:
            return self._rename_tables(norm, original, database)
        if (
            norm.keyword == "CREATE"
            and "TRIGGER" in norm.words[1:4]
            or (norm.keyword == "CREATE" and norm.words[1:2] == ["DEFINER"])
        ):
            try:
                sql, table = triggers.translate(original, _rewrite_functions)
            except triggers.TriggerError as err:
                raise Unsupported(str(err)) from err
            except IndexError as err:
                raise _syntax_error(original) from err
            if table.lower().startswith(INTERNAL_PREFIX):
                raise NoSuchTable(f"Table '{database}.{table}' doesn't exist")
            return Plan(DDL, (Step(sql),), frozenset({table.lower()}))
        replace = norm.keyword == "REPLACE"
        if replace:  # sqlglot's MySQL parser gives up on REPLACE; it is INSERT with another conflict rule
            shape = "INSERT" + shape[len("REPLACE") :]
        try:
            trees = [t for t in sqlglot.parse(shape, read="mysql") if t is not None]
        except (ParseError, TokenError) as err:
            raise _syntax_error(original) from err
        if len(trees) != 1:
            raise _syntax_error(original)
        tree = trees[0]
        if isinstance(tree, exp.Command):
            raise _syntax_error(original)
        attach = self._resolve_tables(tree, database)
        autoinc = False
        affected = ""
        if isinstance(tree, exp.Create) and tree.args.get("kind") == "TABLE":
            try:
                sqls = translate_create_table(tree)
            except DDLError as err:
                raise Unsupported(str(err)) from err
            return self._finish(DDL, sqls, tree, attach)
        if isinstance(tree, exp.Alter) and (tree.args.get("kind") or "TABLE").upper() == "TABLE":
            table = tree.this
            try:
                sqls, rebuild = translate_alter(
                    tree, self.schema.table_schema(table.db or database, table.name)
                )
            except DDLError as err:
                if "doesn't exist" in str(err):
                    raise NoSuchTable(f"Table '{table.db or database}.{table.name}' doesn't exist") from err
                raise Unsupported(str(err)) from err
            plan = self._finish(DDL, sqls or ["SELECT 1"], tree, attach)
            return Plan(plan.kind, plan.steps, plan.tables, plan.attach, rebuild=rebuild)
        if isinstance(tree, exp.Create) and (tree.args.get("kind") or "").upper() == "INDEX":
            return self._finish(DDL, [_create_index(tree)], tree, attach)
        if isinstance(tree, exp.Drop) and (tree.args.get("kind") or "").upper() == "INDEX":
            return self._finish(DDL, [_drop_index(tree)], tree, attach)
        if (
            isinstance(tree, exp.Drop)
            and (tree.args.get("kind") or "").upper() == "TABLE"
            and tree.args.get("exists")
        ):
            # MySQL: DROP TABLE IF EXISTS skips names that are not tables (views included, with a note)
            kept = [
                t
                for t in tree.args.get("tables") or []
                if self.schema.table_schema(t.db or database, t.name) is not None
            ]
            if not kept:
                return Plan(DDL, (), frozenset())
            tree.set("tables", kept)
        if isinstance(tree, exp.Create) and (tree.args.get("kind") or "").upper() == "VIEW":
            decimal_rewrites.rewrite_view(tree, database, self.schema.column_types)
        if isinstance(tree, (exp.Create, exp.Drop, exp.Alter, exp.TruncateTable)):
            if isinstance(tree, exp.TruncateTable):
                sqls = [f"DELETE FROM {t.sql('sqlite')}" for t in tree.expressions]
            elif isinstance(tree, exp.Drop) and len(tree.args.get("tables") or []) > 1:
                # MySQL drops a list of tables in one statement; SQLite takes one per DROP
                sqls = []
                for t in tree.args["tables"]:
                    one = tree.copy()
                    one.set("tables", [t.copy()])
                    sqls.append(one.sql("sqlite"))
            else:
                sqls = [tree.sql("sqlite")]
            return self._finish(DDL, sqls, tree, attach)
        _refuse_negative_limit(tree, original)
        tree = _rewrite_functions(tree)
        tree, decimal_types = decimal_rewrites.rewrite(tree, database, self.schema.column_types)
        found_rows: exp.Select | None = None
        checks: dict[str, object] = {}
        if isinstance(tree, exp.Insert):
            if replace:
                tree.set("alternative", "REPLACE")
            insert = tree
            try:
                upsert = dml.on_duplicate_key_update(tree, lambda: self._table_columns(insert, database))
            except ValueError as err:
                raise Unsupported(str(err)) from err
            if upsert:
                affected = "upsert"
            elif replace:
                affected = "replace"
            value_checks.empty_values_as_column_list(tree)
            autoinc = self._inject_autoid(tree, database)
            checks = self._wrap_checks(tree, database)
            kind = WRITE
        elif isinstance(tree, exp.Update):
            own = _sets_own_columns(tree)
            dml.update_join(tree)
            _rewrite_order_limit(tree)
            checks = self._wrap_checks(tree, database) if own else {}
            affected = "update"
            kind = WRITE
        elif isinstance(tree, exp.Delete):
            tree = dml.delete_join(tree)
            _rewrite_order_limit(tree)
            kind = WRITE
        else:
            kind = READ
            if isinstance(tree, exp.Select):
                _drop_dual(tree)
                found_rows = dml.calc_found_rows(tree)
                _alias_select_list(tree, norm.shape)
        plan = self._finish(kind, [tree.sql("sqlite")], tree, attach, autoinc, affected)
        if checks:
            plan = dataclasses.replace(plan, **checks)  # type: ignore[arg-type]
        if isinstance(tree, exp.Select) and [type(e) for e in tree.expressions] == [exp.Star]:
            star_types = self._star_decimal_types(tree, database)
            if star_types:
                plan = dataclasses.replace(plan, result_types=star_types)
        elif isinstance(tree, exp.Select) and not any(
            isinstance(e, exp.Star) or e.find(exp.Star) for e in tree.expressions
        ):
            types = tuple(function_rewrites.result_type(e.unalias()) for e in tree.expressions)
            if len(decimal_types) == len(types):
                types = tuple(t or d for t, d in zip(types, decimal_types, strict=True))
            if any(types):
                plan = dataclasses.replace(plan, result_types=types)
        if found_rows is not None:
            count = _bind_step(found_rows.sql("sqlite"))
            plan = Plan(
                plan.kind,
                (Step(count.sql, count.binds, "found_rows"), *plan.steps),
                plan.tables,
                plan.attach,
                plan.autoinc,
                plan.affected,
            )
        return plan

    def _finish(
        self,
        kind: str,
        sqls: list[str],
        tree: exp.Expr,
        attach: set[str],
        autoinc: bool = False,
        affected: str = "",
    ) -> Plan:
        steps = tuple(_bind_step(s) for s in sqls)
        written: set[str] = set()
        if kind in (WRITE, DDL):
            target = tree.this if not isinstance(tree, exp.TruncateTable) else None
            if isinstance(target, exp.Schema):
                target = target.this
            if isinstance(target, exp.Table):
                written.add(target.name.lower())
            for t in tree.find_all(exp.Table) if isinstance(tree, (exp.Drop, exp.TruncateTable)) else ():
                written.add(t.name.lower())
        return Plan(kind, steps, frozenset(written), frozenset(attach), autoinc, affected)

    def _rename_tables(self, norm: lexer.Normalized, original: str, database: str) -> Plan:
        """``RENAME TABLE a TO b, c TO d`` (sqlglot does not parse it) -> one ALTER per pair, each followed
        by the re-creation of the table's indexes and triggers under its new name (``renamed_objects``)."""
        toks = [t for t in lexer.tokenize(norm.shape) if t.kind not in ("ws", "comment")][2:]
        sqls: list[str] = []
        names: set[str] = set()
        renamed: dict[str, StoredTable | None] = {}  # tables this statement renamed, by their new name
        i = 0
        while i + 2 < len(toks) + 0 and toks[i + 1].text.upper() == "TO":
            old, new = lexer.unquote_identifier(toks[i].text), lexer.unquote_identifier(toks[i + 2].text)
            if old.lower().startswith(INTERNAL_PREFIX) or new.lower().startswith(INTERNAL_PREFIX):
                raise NoSuchTable(f"Table '{old}' doesn't exist")
            sqls.append(f'ALTER TABLE "{old}" RENAME TO "{new}"')
            names.update((old.lower(), new.lower()))
            stored = (
                renamed.pop(old.lower())
                if old.lower() in renamed
                else self.schema.table_schema(database, old)
            )
            if stored is not None:
                extra, stored = renamed_objects(stored, new)
                sqls.extend(extra)
            renamed[new.lower()] = stored
            i += 3
            if i < len(toks) and toks[i].text == ",":
                i += 1
        if not sqls or i != len(toks):
            raise _syntax_error(original)
        return Plan(DDL, tuple(Step(s) for s in sqls), frozenset(names))

    def _resolve_tables(self, tree: exp.Expr, database: str) -> set[str]:
        attach: set[str] = set()
        self._unqualified = any(not t.db and t.name.upper() != "DUAL" for t in tree.find_all(exp.Table))
        for table in tree.find_all(exp.Table):
            name = table.name
            if name.upper() == "DUAL" and not table.db:
                continue
            if name.lower().startswith(INTERNAL_PREFIX):
                db = table.db or database
                raise NoSuchTable(f"Table '{db}.{name}' doesn't exist")
            db = table.db
            if not db:
                continue
            if db == database:
                table.set("db", None)
            elif db.lower() == "information_schema":
                table.set("db", exp.to_identifier("information_schema"))
                attach.add("information_schema")
            elif db.lower() in ("mysql", "performance_schema", "sys"):
                raise NoSuchTable(f"Table '{db}.{name}' doesn't exist")
            else:
                attach.add(db)
        return attach

    def _star_decimal_types(self, select: exp.Select, database: str) -> tuple[str | None, ...]:
        """``SELECT * FROM v`` of one view: the DECIMAL types of its computed columns (SQLite declares
        none); a table's columns are declared, so nothing is needed there."""
        src = select.args.get("from_")
        table = src.this if src is not None else None
        if not isinstance(table, exp.Table) or select.args.get("joins") or not table.name:
            return ()
        types = self.schema.column_types(table.db or database, table.name)
        if not types:
            return ()
        out = tuple(t.upper() if t.lower().startswith("decimal(") else None for t in types.values())
        return out if any(out) else ()

    def _wrap_checks(self, tree: exp.Insert | exp.Update, database: str) -> dict[str, object]:
        """Route the statement's values through their columns' checks (``value_checks.py``); the Plan
        fields that tell the engine which table's checks and how (empty when nothing is checked)."""
        target = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
        if not isinstance(target, exp.Table) or target.args.get("joins"):
            return {}
        facts = self.schema.column_facts(target.db or database, target.name)
        if not facts:
            return {}
        ignore = bool(tree.args.get("ignore"))
        if isinstance(tree, exp.Insert):
            single, order = value_checks.wrap_insert(tree, facts, 0)
        else:
            order = value_checks.wrap_update(tree, facts, 0)
            single = False
        return {
            "checked": ((target.db or "", target.name),),
            "single_row": single,
            "ignore": ignore,
            "value_order": order,
        }

    def _table_columns(self, insert: exp.Insert, database: str) -> list[str]:
        """The INSERT's target table's columns in order (generated ones take no value)."""
        target = insert.this.this if isinstance(insert.this, exp.Schema) else insert.this
        if not isinstance(target, exp.Table):
            return []
        facts = self.schema.column_facts(target.db or database, target.name)
        return [f.name for f in facts or () if not f.generated]

    def _inject_autoid(self, insert: exp.Insert, database: str) -> bool:
        target = insert.this
        cols: list[exp.Expression] | None = None
        if isinstance(target, exp.Schema):
            cols = list(target.expressions)
            table = target.this
        else:
            table = target
        if not isinstance(table, exp.Table):
            return False
        info = self.schema.autoinc_column(table.db or database, table.name)
        if info is None:
            return False
        column, position, zero_generates = info
        func = "__marmot_autoid" if zero_generates else "__marmot_autoid_null"
        source = insert.expression
        names = [c.name for c in cols] if cols is not None else None
        if names is None or column in names:
            idx = position if names is None else names.index(column)
            if isinstance(source, exp.Values):
                for row in source.expressions:
                    vals = row.expressions
                    if idx < len(vals):
                        vals[idx].replace(exp.Anonymous(this=func, expressions=[vals[idx].copy()]))
                return True
            return False
        assert cols is not None and isinstance(target, exp.Schema)
        target.set("expressions", [*cols, exp.to_identifier(column)])
        if isinstance(source, exp.Values):
            for row in source.expressions:
                row.set("expressions", [*row.expressions, exp.Anonymous(this=func, expressions=[exp.null()])])
            return True
        if isinstance(source, exp.Query):
            wrapped = exp.select(exp.Star(), exp.Anonymous(this=func, expressions=[exp.null()])).from_(
                source.subquery("__marmot_src")
            )
            insert.set("expression", wrapped)
            return True
        return False


def _sets_own_columns(update: exp.Update) -> bool:
    """Does every SET of this UPDATE name a column of its (first) table? A multi-table UPDATE that sets
    another table's column is left unchecked (``dml.update_join`` writes the first table only)."""
    target = update.this
    if not isinstance(target, exp.Table) or not target.args.get("joins"):
        return True
    names = {target.name.lower(), target.alias_or_name.lower()}
    return all(
        not eq.this.table or eq.this.table.lower() in names
        for eq in update.expressions
        if isinstance(eq, exp.EQ) and isinstance(eq.this, exp.Column)
    )


_NEGATIVE_LIMIT = re.compile(r"\b(?:LIMIT|OFFSET)\s+(?:[^,\s]+\s*,\s*)?(-.*)$", re.IGNORECASE | re.DOTALL)


def _refuse_negative_limit(tree: exp.Expr, original: str) -> None:
    """``LIMIT -1`` is a syntax error in MySQL (SQLite reads it as "no limit")."""
    for node in tree.find_all(exp.Limit, exp.Offset):
        if any(isinstance(n, exp.Neg) for n in node.iter_expressions()):
            m = _NEGATIVE_LIMIT.search(original)
            raise SQLSyntaxError(m.group(1).strip() if m else original.strip(), 1)


def _syntax_error(original: str) -> SQLSyntaxError:
    """Locate the error in the original text (not the shape) so 'near' shows what the client sent."""
    line, near = 1, original.strip()
    try:
        sqlglot.parse(original, read="mysql")
    except (ParseError, TokenError) as err:
        info = (getattr(err, "errors", None) or [{}])[0]
        line = int(info.get("line") or 1)
        col = int(info.get("col") or 1)
        lines = original.split("\n")
        if 0 < line <= len(lines):
            offset = sum(len(x) + 1 for x in lines[: line - 1])
            token = info.get("highlight") or ""
            pos = max(0, offset + col - len(token))
            near = original[pos:]
    return SQLSyntaxError(near.strip(), line)


# SQLite text (no backslash escapes): string literals and quoted identifiers are skipped whole, so a
# placeholder-looking sequence inside them is left alone.
_SQLITE_PLACEHOLDER_RE = re.compile(r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|`(?:[^`]|``)*`|:__([lp])(\d+)""")


def _bind_step(sql: str) -> Step:
    """Replace our named placeholders with positional '?' and record what each one binds."""
    if ":__" not in sql:
        return Step(sql)
    binds: list[tuple[str, int]] = []

    def repl(m: re.Match[str]) -> str:
        if m.group(1) is None:
            return m.group(0)
        binds.append((m.group(1), int(m.group(2))))
        return "?"

    return Step(_SQLITE_PLACEHOLDER_RE.sub(repl, sql), tuple(binds))


_SESSION_FUNCS: dict[type, str] = {
    exp.CurrentSchema: "DATABASE",
    exp.CurrentVersion: "VERSION",
    exp.CurrentUser: "CURRENT_USER",
}


def _rewrite_functions(tree: exp.Expr) -> exp.Expr:
    """Every node, children before parents: MySQL function rewrites, then the session-bound ones."""

    def fix(node: exp.Expr) -> exp.Expr:
        replaced = function_rewrites.rewrite_node(node)
        if replaced is not node:
            return replaced
        name = _SESSION_FUNCS.get(type(node))
        if name:
            return exp.Anonymous(this=name, expressions=[])
        if isinstance(node, exp.Like) and not isinstance(node.parent, exp.Escape):
            # MySQL's LIKE treats backslash as the escape character by default; SQLite's has none.
            return exp.Escape(this=node.copy(), expression=exp.Literal.string("\\"))
        if isinstance(node, exp.Collate):
            return _collate(node)
        if isinstance(node, exp.SessionParameter):
            scope = (node.args.get("kind") or "").lower()
            return exp.Anonymous(
                this="__marmot_sysvar", expressions=[exp.Literal.string(node.name), exp.Literal.string(scope)]
            )
        if isinstance(node, exp.Parameter):
            return exp.Anonymous(this="__marmot_uservar", expressions=[exp.Literal.string(node.name)])
        return node

    for node in reversed(list(tree.dfs())):
        new = fix(node)
        if new is not node:
            if node is tree:
                tree = new
            else:
                node.replace(new)
    return tree


def _create_index(create: exp.Create) -> str:
    """MySQL CREATE INDEX: name scoped to its table (``t__ix``), prefix lengths dropped."""
    index = create.this
    table = index.args.get("table")
    params = index.args.get("params")
    columns = params.args.get("columns") if params is not None else None
    if table is None or not columns:
        return create.sql("sqlite")
    sql = index_statement(table, index.name, list(columns), bool(create.args.get("unique")))
    if create.args.get("exists"):
        sql = sql.replace("INDEX ", "INDEX IF NOT EXISTS ", 1)
    return sql


def _drop_index(drop: exp.Drop) -> str:
    """MySQL ``DROP INDEX ix ON t`` -> SQLite ``DROP INDEX t__ix``."""
    target = (drop.args.get("tables") or [drop.this])[0]
    cluster = drop.args.get("cluster")
    table = cluster.this if cluster is not None and hasattr(cluster, "this") else None
    name = target.name
    exists = "IF EXISTS " if drop.args.get("exists") else ""
    if isinstance(table, exp.Table):
        qual = f'"{table.db}".' if table.db else ""
        return f'DROP INDEX {exists}{qual}"{table.name}__{name}"'
    return f'DROP INDEX {exists}"{name}"'


def _collate(node: exp.Collate) -> exp.Expression:
    """MySQL collations -> SQLite's: ``*_bin`` compare bytes (BINARY), ``*_ci`` ignore case (NOCASE)."""
    name = node.expression.name.lower() if node.expression is not None else ""
    if name.endswith("_bin") or name == "binary":
        return exp.Collate(this=node.this.copy(), expression=exp.var("BINARY"))
    if name.endswith("_ci"):
        return exp.Collate(this=node.this.copy(), expression=exp.var("NOCASE"))
    collated: exp.Expression = node.this  # sqlglot types a node's children as Any
    return collated.copy()


def _drop_dual(select: exp.Select) -> None:
    """``SELECT ... FROM DUAL`` is MySQL for a select without tables, which SQLite writes without FROM."""
    src = select.args.get("from_")
    if (
        src is not None
        and isinstance(src.this, exp.Table)
        and src.this.name.upper() == "DUAL"
        and not src.this.args.get("joins")
        and not src.this.db
    ):
        select.set("from_", None)


def _rewrite_order_limit(tree: exp.Update | exp.Delete) -> None:
    """``... ORDER BY o LIMIT n`` -> ``WHERE rowid IN (SELECT rowid FROM t WHERE ... ORDER BY o LIMIT n)``."""
    limit = tree.args.get("limit")
    order = tree.args.get("order")
    if limit is None and order is None:
        return
    table = tree.this
    if not isinstance(table, exp.Table) or tree.args.get("joins") or tree.args.get("from_"):
        return
    sub = exp.select(exp.column("rowid")).from_(table.copy())
    where = tree.args.get("where")
    if where is not None:
        sub.set("where", where.copy())
    if order is not None:
        sub.set("order", order.copy())
    if limit is not None:
        sub.set("limit", limit.copy())
    tree.set("where", exp.Where(this=exp.In(this=exp.column("rowid"), query=sub.subquery())))
    tree.set("order", None)
    tree.set("limit", None)


def _alias_select_list(select: exp.Select, shape: str) -> None:
    items = select.expressions
    if not any(not isinstance(e, (exp.Alias, exp.Column, exp.Star)) for e in items):
        return
    texts = select_item_texts(shape)
    if texts is None or len(texts) != len(items):
        return
    for node, text in zip(items, texts, strict=True):
        if isinstance(node, (exp.Alias, exp.Column, exp.Star)):
            continue
        node.replace(exp.alias_(node.copy(), _column_name_for(text, node), quoted=True))
