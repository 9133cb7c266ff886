"""One SQLite table or view described the way MySQL describes it: columns, keys, foreign keys, view text.

Why it is its own module: SHOW CREATE TABLE, SHOW COLUMNS / SHOW INDEX (``metadata.py``) and the
INFORMATION_SCHEMA tables (``information_schema.py``) must tell a client the same story — mysqldump reads
the first, JDBC drivers and GUIs the second, and a dump reloaded into another node is compared with both.
Before this module each of them decoded the SQLite schema on its own and they disagreed (foreign key
names, index order, parent columns).

What SQLite keeps and how it is read back (the translation itself lives in ``sql/ddl.py``):

- types keep their MySQL names (``VARCHAR(191)``, ``BIGINT UNSIGNED(20)``); ``ENUM(...)`` is stored as
  ``TEXT`` plus ``CHECK ("c" IS NULL OR "c" IN (...))`` and is rebuilt from that check;
- ``AUTO_INCREMENT`` is ``INTEGER PRIMARY KEY AUTOINCREMENT``;
- inline and separate keys are indexes named ``<table>__<key>``; MySQL lists them PRIMARY first, then
  unique keys, then the others, each group in creation order (``sqlite_schema`` rowid order);
- ``ON UPDATE CURRENT_TIMESTAMP`` is a trigger named ``<table>__<column>__on_update`` (not a user trigger);
- generated columns are SQLite generated columns (hidden 2 = VIRTUAL, 3 = STORED) and CHECK constraints
  stay CHECK constraints; both are read back from the stored DDL with sqlglot (cached per DDL text);
- a view's SQL and a user trigger's body are SQLite dialect and are rendered back to MySQL with sqlglot,
  close enough for a dump to recreate them on another node (the original MySQL text is not kept).
"""

from __future__ import annotations

import contextlib
import decimal
import functools
import re
from dataclasses import dataclass, field
from typing import Any

import apsw
import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from marmot.sql import decimal_rewrites
from marmot.sql.alter import split_create_table

# Types whose nullable columns MySQL shows without ``DEFAULT NULL`` (they cannot have a literal default).
_NO_DEFAULT_NULL = ("blob", "text", "json", "geometry", "point", "linestring", "polygon")
_FK_ACTIONS = {"CASCADE", "SET NULL", "SET DEFAULT"}  # RESTRICT / NO ACTION are the default: MySQL omits them
_DEFAULT_KEYWORDS = {"CURRENT_TIMESTAMP", "CURRENT_DATE", "CURRENT_TIME", "NULL"}
_DECIMAL_TYPE_RE = re.compile(r"^(?:decimal|numeric)\(\d+,(\d+)\)")
_NUMBER_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_FK_NAME_RE = re.compile(
    r"CONSTRAINT\s+(`(?:[^`]|``)+`|\"(?:[^\"]|\"\")+\"|[\w$]+)\s+FOREIGN\s+KEY\s*\(([^)]*)\)", re.IGNORECASE
)


@dataclass(slots=True)
class Column:
    name: str
    position: int  # 1-based, as ORDINAL_POSITION
    type: str  # MySQL COLUMN_TYPE spelling: ``varchar(191)``, ``bigint unsigned``, ``enum('a','b')``
    nullable: bool
    default: (
        str | None
    )  # COLUMN_DEFAULT: the value as text, ``CURRENT_TIMESTAMP``, or None (no default / NULL)
    default_clause: str  # what SHOW CREATE TABLE writes after DEFAULT ("" = no DEFAULT clause)
    key: str = ""  # PRI / UNI / MUL / ""
    auto_increment: bool = False
    on_update: bool = False  # ON UPDATE CURRENT_TIMESTAMP
    generated: str = ""  # generation expression (MySQL text) of a generated column
    stored: bool = False  # STORED (True) or VIRTUAL generated column

    @property
    def data_type(self) -> str:
        return self.type.split("(")[0].split()[0].lower()

    @property
    def extra(self) -> str:
        """EXTRA of INFORMATION_SCHEMA.COLUMNS / SHOW COLUMNS, spelled as MySQL 8.0 does."""
        if self.auto_increment:
            return "auto_increment"
        if self.generated:
            return "STORED GENERATED" if self.stored else "VIRTUAL GENERATED"
        words = []
        if (
            self.default_clause
            and self.default_clause not in ("NULL",)
            and not self.default_clause.startswith("'")
        ):
            words.append("DEFAULT_GENERATED")
        if self.on_update:
            words.append("on update CURRENT_TIMESTAMP")
        return " ".join(words)


@dataclass(slots=True)
class Index:
    name: str  # MySQL key name (``PRIMARY`` for the primary key)
    columns: list[str]
    unique: bool
    primary: bool = False


@dataclass(slots=True)
class ForeignKey:
    name: str
    columns: list[str]
    parent: str
    parent_columns: list[str]
    on_update: str  # NO ACTION / RESTRICT / CASCADE / SET NULL / SET DEFAULT
    on_delete: str


@dataclass(slots=True)
class Check:
    name: str
    clause: str  # the condition in MySQL dialect, parenthesised as CHECK_CLAUSE shows it: ``(`qty` >= 0)``


@dataclass(slots=True)
class TableDescription:
    name: str
    kind: str  # "table" or "view"
    columns: list[Column] = field(default_factory=list)
    indexes: list[Index] = field(default_factory=list)  # PRIMARY first, then unique keys, then the others
    foreign_keys: list[ForeignKey] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)  # CHECK constraints (not the ones that make an ENUM)
    view_select: str = ""  # a view's SELECT in MySQL dialect

    @property
    def is_view(self) -> bool:
        return self.kind == "view"


def _rows(conn: apsw.Connection, sql: str, bindings: apsw.Bindings | None = None) -> list[tuple[Any, ...]]:
    """The rows of a query of SQLite's schema (``sqlite_schema``, PRAGMAs): each column holds the type
    SQLite documents for it (names are text, flags integers), which apsw's union of values cannot say."""
    return conn.execute(sql, bindings).fetchall()


def user_objects(conn: apsw.Connection, schema: str = "main") -> list[tuple[str, str]]:
    """(name, "table"|"view") of the tables and views a client may see, by name."""
    return [
        (n, t)
        for n, t in _rows(
            conn,
            f"SELECT name, type FROM \"{schema}\".sqlite_schema WHERE type IN ('table','view') "
            "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_\\_marmot%' ESCAPE '\\' ORDER BY name",
        )
    ]


@dataclass(slots=True)
class Trigger:
    name: str
    table: str
    timing: (
        str  # BEFORE / AFTER (a MySQL BEFORE trigger that sets NEW.x is stored as AFTER, see sql/triggers.py)
    )
    event: str  # INSERT / UPDATE / DELETE
    body: str  # ACTION_STATEMENT: ``BEGIN ...; END`` in MySQL dialect

    @property
    def create_statement(self) -> str:
        """SHOW CREATE TRIGGER's ``SQL Original Statement`` (mysqldump replays it)."""
        return (
            f"CREATE DEFINER=`root`@`%` TRIGGER `{self.name}` {self.timing} {self.event} ON `{self.table}` "
            f"FOR EACH ROW {self.body}"
        )


_TRIGGER_RE = re.compile(
    r"^\s*CREATE\s+(?:TEMP\w*\s+)?TRIGGER\s+(?:IF\s+NOT\s+EXISTS\s+)?\S+\s+(BEFORE|AFTER|INSTEAD\s+OF)?\s*"
    r"(INSERT|UPDATE|DELETE)\b.*?\bFOR\s+EACH\s+ROW\s+(?:WHEN\s+.*?\s+)?BEGIN\b(.*)\bEND\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)


def user_triggers(conn: apsw.Connection) -> list[Trigger]:
    """Triggers a client created (not Marmot's ON UPDATE triggers), by name, rendered in MySQL dialect."""
    out = []
    for name, table, sql in _rows(
        conn,
        "SELECT name, tbl_name, sql FROM sqlite_schema WHERE type = 'trigger' "
        "AND name NOT LIKE '\\_\\_marmot%' ESCAPE '\\' AND name NOT LIKE '%\\_\\_on\\_update' ESCAPE '\\' "
        "ORDER BY name",
    ):
        m = _TRIGGER_RE.match(sql or "")
        if m is None:
            continue
        timing = (m.group(1) or "BEFORE").upper()
        out.append(
            Trigger(
                name,
                table,
                "BEFORE" if timing.startswith("INSTEAD") else timing,
                m.group(2).upper(),
                _trigger_body_mysql(m.group(3)),
            )
        )
    return out


@functools.lru_cache(maxsize=256)
def _trigger_body_mysql(body: str) -> str:
    """``BEGIN stmt; ...; END`` with each SQLite statement rendered as MySQL (unchanged if it does not parse)."""
    statements = []
    for stmt in _split_semicolons(body):
        try:
            statements.append(sqlglot.transpile(stmt, read="sqlite", write="mysql")[0])
        except (ParseError, TokenError, ValueError, IndexError):
            statements.append(stmt.strip())
    return "BEGIN " + " ".join(s + ";" for s in statements) + " END"


def _split_semicolons(body: str) -> list[str]:
    """Top-level statements of a trigger body (semicolons inside quotes do not split)."""
    parts, current, quote = [], [], ""
    for ch in body:
        if quote:
            current.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "'\"`[":
            quote = "]" if ch == "[" else ch
            current.append(ch)
        elif ch == ";":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def mysql_column_type(decl: str) -> str:
    """The MySQL spelling of a stored declared type (``BIGINT UNSIGNED(20)`` -> ``bigint(20) unsigned``)."""
    text = (decl or "text").strip()
    m = re.match(r"^([A-Za-z ]+?)\s*(\([^)]*\))?$", text)
    if not m:
        return text.lower()
    words = m.group(1).lower().split()
    args = m.group(2) or ""
    if words == ["integer"]:
        words = ["bigint"]
    if words[:1] == ["decimaltext"]:  # an exact DECIMAL as sql/ddl.py spells it for SQLite
        words[0] = "decimal"
    base, mods = words[0], [w for w in words[1:] if w in ("unsigned", "zerofill")]
    rest = [w for w in words[1:] if w not in ("unsigned", "zerofill")]
    return " ".join([base + (" " + " ".join(rest) if rest else "") + args, *mods])


def quote_string(value: str) -> str:
    """A MySQL string literal as SHOW CREATE TABLE writes one (reloadable with the default sql_mode)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def describe(conn: apsw.Connection, name: str) -> TableDescription | None:
    """The table or view ``name`` (case-insensitive) of ``conn``'s main database, or None."""
    row: tuple[Any, ...] | None = conn.execute(
        "SELECT name, type, sql FROM sqlite_schema WHERE type IN ('table','view') AND name = ? COLLATE NOCASE "
        "AND name NOT LIKE '\\_\\_marmot%' ESCAPE '\\'",
        (name,),
    ).fetchone()
    if row is None:
        return None
    name, kind, sql = row[0], row[1], row[2] or ""
    table = TableDescription(name, kind)
    info = _rows(conn, f'PRAGMA table_xinfo("{name}")')
    parsed, checks = _parsed_table(sql) if kind == "table" else ({}, [])
    unnamed = 0
    for check_name, clause in checks:
        if check_name is None:
            unnamed += 1
            check_name = f"{name}_chk_{unnamed}"  # MySQL's name for an unnamed CHECK
        table.checks.append(Check(check_name, clause))
    if kind == "view":
        table.view_select = view_select_mysql(sql)
    else:
        table.indexes = _indexes(conn, name, info)
        table.foreign_keys = _foreign_keys(conn, name, sql)
    on_update = {
        r[0][len(name) + 2 : -len("__on_update")]
        for r in _rows(
            conn,
            "SELECT name FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = ? AND name LIKE ? ESCAPE '\\'",
            (name, name.replace("_", "\\_") + "\\_\\_%\\_\\_on\\_update"),
        )
    }
    auto = "AUTOINCREMENT" in sql.upper()
    unique_single = {
        ix.columns[0] for ix in table.indexes if ix.unique and not ix.primary and len(ix.columns) == 1
    }
    multiple = {
        ix.columns[0] for ix in table.indexes if not ix.primary and not (ix.unique and len(ix.columns) == 1)
    }
    position = 0
    for _cid, col, decl, notnull, default, pk, hidden in info:
        if hidden == 1:
            continue
        position += 1
        extra = parsed.get(col.lower(), {})
        ctype = extra.get("enum") or mysql_column_type(decl)
        nullable = not (notnull or pk)
        c = Column(col, position, ctype, nullable, None, "")
        c.auto_increment = bool(pk) and auto and str(decl).upper() == "INTEGER"
        c.on_update = col in on_update
        if hidden in (2, 3):
            c.generated, c.stored = extra.get("generated", ""), hidden == 3
        c.default, c.default_clause = _default(
            default, ctype, nullable, bool(c.generated or c.auto_increment)
        )
        c.key = "PRI" if pk else "UNI" if col in unique_single else "MUL" if col in multiple else ""
        table.columns.append(c)
    return table


def _default(stored: str | None, ctype: str, nullable: bool, computed: bool) -> tuple[str | None, str]:
    """(COLUMN_DEFAULT, SHOW CREATE TABLE default clause) from SQLite's ``dflt_value`` text."""
    if computed:
        return None, ""
    if stored is None:
        if nullable and not any(t in ctype for t in _NO_DEFAULT_NULL):
            return None, "NULL"
        return None, ""
    text = stored.strip()
    up = text.upper()
    if up in _DEFAULT_KEYWORDS:
        return (None, "NULL") if up == "NULL" else (up, up)
    if len(text) >= 2 and text[0] == text[-1] == "'":
        value = text[1:-1].replace("''", "'")
        return value, quote_string(value)
    if _NUMBER_RE.match(text):
        m = _DECIMAL_TYPE_RE.match(ctype)
        if m:  # MySQL stores a DECIMAL default with the column's scale: DEFAULT 0 -> '0.00'
            with contextlib.suppress(decimal.InvalidOperation):
                text = format(
                    decimal.Decimal(text).quantize(decimal.Decimal(1).scaleb(-int(m.group(1)))), "f"
                )
        return text, quote_string(text)  # MySQL quotes numeric defaults too: DEFAULT '0'
    if text.startswith("(") and text.endswith(")"):
        text = text[1:-1]
    return text, f"({text})"


def _indexes(conn: apsw.Connection, table: str, info: list[tuple[Any, ...]]) -> list[Index]:
    out: list[Index] = []
    pk_cols = [c[1] for c in sorted(info, key=lambda c: c[5]) if c[5]]
    if pk_cols:
        out.append(Index("PRIMARY", pk_cols, True, True))
    order = {
        n: i
        for i, (n,) in enumerate(
            _rows(
                conn,
                "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = ? ORDER BY rowid",
                (table,),
            )
        )
    }
    listed = sorted(
        _rows(conn, f'PRAGMA index_list("{table}")'),
        key=lambda r: (not r[2], order.get(r[1], len(order)), r[1]),
    )
    for _seq, sqlite_name, unique, origin, _partial in listed:
        if origin == "pk":
            continue
        cols = [c[2] for c in _rows(conn, f'PRAGMA index_info("{sqlite_name}")')]
        if not cols or any(c is None for c in cols):
            continue  # an expression index has no MySQL column list
        if sqlite_name.startswith(table + "__"):
            name = sqlite_name[len(table) + 2 :]
        elif sqlite_name.startswith("sqlite_autoindex_"):
            # UNIQUE written inside the SQLite table definition: MySQL names it after the column
            name = cols[0]
        elif "__" in sqlite_name.strip("_"):
            # named after the table's earlier name (renamed before RENAME re-created its indexes)
            name = sqlite_name.split("__", 1)[1]
        else:
            name = sqlite_name
        out.append(Index(name, cols, bool(unique)))
    return out


def _foreign_keys(conn: apsw.Connection, table: str, create_sql: str) -> list[ForeignKey]:
    groups: dict[int, list[tuple[Any, ...]]] = {}
    for row in _rows(conn, f'PRAGMA foreign_key_list("{table}")'):
        groups.setdefault(row[0], []).append(row)
    names: dict[tuple[str, ...], str] = {}
    for m in _FK_NAME_RE.finditer(create_sql):
        key_cols = tuple(c.strip().strip('`"').lower() for c in m.group(2).split(","))
        names[key_cols] = m.group(1).strip('`"')
    out = []
    unnamed = 0
    # SQLite numbers foreign keys last-declared first; MySQL numbers unnamed ones in declaration order.
    for fk_id in sorted(groups, reverse=True):
        rows = sorted(groups[fk_id], key=lambda r: r[1])
        parent = rows[0][2]
        cols = [r[3] for r in rows]
        parent_cols = [r[4] for r in rows]
        if any(c is None for c in parent_cols):  # REFERENCES parent without columns: its primary key
            pk = [
                c[1]
                for c in sorted(_rows(conn, f'PRAGMA table_info("{parent}")'), key=lambda c: c[5])
                if c[5]
            ]
            parent_cols = pk if len(pk) == len(cols) else [c or "id" for c in parent_cols]
        name = names.get(tuple(c.lower() for c in cols))
        if name is None:
            unnamed += 1
            name = f"{table}_ibfk_{unnamed}"  # MySQL's name for an unnamed foreign key
        out.append(ForeignKey(name, cols, parent, parent_cols, rows[0][5].upper(), rows[0][6].upper()))
    return out


def foreign_key_clause(fk: ForeignKey) -> str:
    """The ``CONSTRAINT ... FOREIGN KEY`` line of SHOW CREATE TABLE (without indentation)."""
    line = (
        f"CONSTRAINT `{fk.name}` FOREIGN KEY ({', '.join(f'`{c}`' for c in fk.columns)}) "
        f"REFERENCES `{fk.parent}` ({', '.join(f'`{c}`' for c in fk.parent_columns)})"
    )
    if fk.on_delete in _FK_ACTIONS:
        line += f" ON DELETE {fk.on_delete}"
    if fk.on_update in _FK_ACTIONS:
        line += f" ON UPDATE {fk.on_update}"
    return line


_ARGS_AFTER_WORDS = re.compile(
    r"((?:\b(?:UNSIGNED|ZEROFILL|SIGNED)\b\s*)+)\((\d+(?:\s*,\s*\d+)?)\)", re.IGNORECASE
)


_EXACT_DECIMAL = re.compile(r"\bDECIMALTEXT\b", re.IGNORECASE)


@functools.lru_cache(maxsize=256)
def _parsed_table(create_sql: str) -> tuple[dict[str, dict[str, str]], list[tuple[str | None, str]]]:
    """From the stored DDL: per column (lower-case name) its ``enum`` type text and ``generated`` expression;
    and the CHECK constraints as (name or None, MySQL condition), in declaration order."""
    columns: dict[str, dict[str, str]] = {}
    checks: list[tuple[str | None, str]] = []
    try:
        # ``BIGINT UNSIGNED(20)`` (how sql/ddl.py spells ``bigint(20) unsigned`` for SQLite) does not parse
        # as SQLite: the arguments go back before the words for this reading only, and the exact DECIMAL's
        # SQLite spelling (``DECIMALTEXT``) back to DECIMAL
        readable = _EXACT_DECIMAL.sub("DECIMAL", _ARGS_AFTER_WORDS.sub(r"(\2) \1", create_sql))
        tree = sqlglot.parse_one(readable, read="sqlite")
    except (ParseError, TokenError, ValueError):
        return columns, checks
    schema = tree.this if isinstance(tree, exp.Create) else None
    if not isinstance(schema, exp.Schema):
        return columns, checks
    for item in schema.expressions:
        if isinstance(item, exp.Constraint):
            checks.extend(
                (item.name, _mysql(c.this))
                for c in item.expressions
                if isinstance(c, exp.CheckColumnConstraint)
            )
            continue
        if isinstance(item, exp.CheckColumnConstraint):
            checks.append((None, _mysql(item.this)))
            continue
        if not isinstance(item, exp.ColumnDef):
            continue
        entry: dict[str, str] = {}
        for constraint in item.args.get("constraints") or []:
            kind = constraint.args.get("kind")
            if isinstance(kind, exp.ComputedColumnConstraint) and kind.this is not None:
                entry["generated"] = _mysql(kind.this)
            elif isinstance(kind, exp.CheckColumnConstraint):
                values = _enum_values(kind.this, item.name)
                if values is not None:
                    entry["enum"] = "enum(" + ",".join(quote_string(v) for v in values) + ")"
                else:
                    name = constraint.name or None  # CONSTRAINT name CHECK (...) on the column
                    checks.append((name, _mysql(kind.this)))
        if entry:
            columns[item.name.lower()] = entry
    for column, text in split_create_table("", create_sql):
        if not column:
            continue
        marker = _SET_MARKER.search(text)
        if marker:
            columns.setdefault(column.lower(), {})["enum"] = marker.group(1)
    return columns, checks


_SET_MARKER = re.compile(r"/\* marmot:(set\(.*\)) \*/")


def _mysql(node: exp.Expression) -> str:
    """An expression as MySQL prints it in CHECK_CLAUSE / GENERATION_EXPRESSION: in one pair of parentheses."""
    while isinstance(node, exp.Paren):
        node = node.this
    return f"({node.sql('mysql', identify=True)})"


def _enum_values(check: exp.Expression | None, column: str) -> list[str] | None:
    """The values of ``CHECK ("c" IS NULL OR "c" IN ('a', 'b'))`` (how ddl.py stores an ENUM), else None."""
    if not isinstance(check, exp.Or):
        return None
    error_value = check.expression
    if (
        isinstance(check.this, exp.Or)
        and isinstance(error_value, exp.EQ)
        and isinstance(error_value.expression, exp.Literal)
        and error_value.expression.this == ""
    ):
        check = check.this  # ``OR c = ''``: MySQL's error value of the ENUM (sql/ddl.py)
    test = check.expression
    if isinstance(test, exp.Paren):
        test = test.this
    if not (isinstance(check.this, exp.Is) and isinstance(test, exp.In)):
        return None
    if test.this.name.lower() != column.lower() or check.this.this.name.lower() != column.lower():
        return None
    values = test.expressions
    if not values or not all(isinstance(v, exp.Literal) and v.is_string for v in values):
        return None
    return [v.this for v in values]


@functools.lru_cache(maxsize=256)
def view_select_mysql(create_view_sql: str) -> str:
    """The SELECT of a stored (SQLite dialect) CREATE VIEW, rendered as MySQL with quoted identifiers."""
    try:
        tree = sqlglot.parse_one(create_view_sql, read="sqlite")
        query = tree.expression if isinstance(tree, exp.Create) else None
        if query is not None:
            # exact DECIMAL computations are stored as calls of Marmot's functions: MySQL's text back
            rendered: str = decimal_rewrites.restore_mysql(query).sql("mysql", identify=True)
            return rendered
    except (ParseError, TokenError, ValueError):
        pass
    m = re.search(r"\bAS\b", create_view_sql, re.IGNORECASE)
    return create_view_sql[m.end() :].strip() if m else create_view_sql
