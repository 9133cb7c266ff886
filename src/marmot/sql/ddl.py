"""MySQL CREATE TABLE -> SQLite CREATE TABLE (+ CREATE INDEX statements).

Why keep MySQL type names: SQLite accepts any type name and derives the column affinity from it
(``VARCHAR(191)`` -> TEXT, ``BIGINT UNSIGNED(20)`` -> INTEGER), so keeping the MySQL name costs nothing and
lets the wire layer report real MySQL column types and metadata. Only the spelling is adjusted to SQLite's
grammar, which wants the ``(n)`` arguments last (``BIGINT UNSIGNED(20)``).

AUTO_INCREMENT becomes ``INTEGER PRIMARY KEY AUTOINCREMENT``: the column is then the rowid (fast point
look-ups) and the keyword marks it, in the schema itself, as the column Marmot fills with cluster-unique
ids (see ``sql/autoinc.py``). That mark survives restarts, snapshots and replication with the schema.
"""

from __future__ import annotations

from sqlglot import exp

_DROPPED_COLUMN_CONSTRAINTS = (
    exp.BinaryColumnConstraint,
    exp.CollateColumnConstraint,
    exp.CharacterSetColumnConstraint,
    exp.CommentColumnConstraint,
    exp.OnUpdateColumnConstraint,
    exp.AutoIncrementColumnConstraint,
)


class DDLError(Exception):
    """A MySQL DDL construct that has no SQLite translation."""


# Exact DECIMAL (docs/transpiler.md "Exact DECIMAL"): the type name SQLite sees says TEXT (so values are
# stored as the canonical text ``'2.50'``, never as a lossy REAL) and the column is compared and sorted
# numerically by the ``MARMOT_DECIMAL`` collation (``storage/collations.py``). Readers map the name back
# to ``decimal(p,s)``.
EXACT_DECIMAL_TYPE = "DECIMALTEXT"
DECIMAL_COLLATION = "MARMOT_DECIMAL"
_DECIMAL_TYPES = frozenset({exp.DataType.Type.DECIMAL, exp.DataType.Type.UDECIMAL})


def sqlite_type_name(kind: exp.DataType) -> str:
    """MySQL type rendered as a SQLite-legal type name: words first, ``(args)`` last."""
    text = kind.sql("mysql")
    if kind.this in _DECIMAL_TYPES:
        text = EXACT_DECIMAL_TYPE + text[len("DECIMAL") :] if text.startswith("DECIMAL") else text
    if "(" in text and kind.this in (exp.DataType.Type.ENUM, exp.DataType.Type.SET):
        return "TEXT"
    if "(" not in text:
        return text
    head, _, rest = text.partition("(")
    args, _, tail = rest.rpartition(")")
    words = " ".join(w for w in (head.strip(), tail.strip()) if w)
    return f"{words}({args.replace(' ', '')})"


def set_marker(kind: exp.DataType | None) -> str:
    """A SET column is stored as TEXT; its value list rides along as a comment in the stored DDL
    (``/* marmot:set('a','b') */``) so SHOW CREATE TABLE and INFORMATION_SCHEMA can give it back."""
    if kind is None or kind.this is not exp.DataType.Type.SET:
        return ""
    values = ",".join(v.sql("mysql") for v in kind.expressions)
    return f"/* marmot:set({values}) */"


def _enum_check(column: str, kind: exp.DataType) -> str | None:
    if kind.this is not exp.DataType.Type.ENUM:
        return None
    values = ", ".join(v.sql("sqlite") for v in kind.expressions)
    # '' is MySQL's error value of every ENUM: a non-strict session stores it for a value that is no member
    return f'CHECK ("{column}" IS NULL OR "{column}" IN ({values}) OR "{column}" = \'\')'


def _index_columns(items: list[exp.Expression]) -> str:
    """Index column list with MySQL prefix lengths (``col(191)``) removed: SQLite indexes whole values."""
    cols = []
    for item in items:
        node = item
        desc = ""
        if isinstance(node, exp.Ordered):
            desc = " DESC" if node.args.get("desc") else ""
            node = node.this
        if isinstance(node, exp.ColumnPrefix):
            node = node.this
        if (
            isinstance(node, exp.Anonymous)
            and node.expressions
            and isinstance(node.expressions[0], exp.Literal)
            or isinstance(node, (exp.Column, exp.Identifier))
        ):
            name = node.name
        else:
            name = node.sql("sqlite").strip('"')
        cols.append(f'"{name}"{desc}')
    return ", ".join(cols)


def index_statement(table: exp.Table, name: str, columns: list[exp.Expression], unique: bool) -> str:
    """A CREATE INDEX for an inline MySQL KEY; the index is named ``<table>__<key>`` to stay unique per db."""
    qual = f'"{table.db}".' if table.db else ""
    return (
        f'CREATE {"UNIQUE " if unique else ""}INDEX {qual}"{table.name}__{name}" '
        f'ON "{table.name}" ({_index_columns(columns)})'
    )


_TEXT_TYPES = frozenset(
    {
        exp.DataType.Type.CHAR,
        exp.DataType.Type.VARCHAR,
        exp.DataType.Type.NCHAR,
        exp.DataType.Type.NVARCHAR,
        exp.DataType.Type.TEXT,
        exp.DataType.Type.TINYTEXT,
        exp.DataType.Type.MEDIUMTEXT,
        exp.DataType.Type.LONGTEXT,
        exp.DataType.Type.ENUM,
        exp.DataType.Type.SET,
    }
)


def collation_clause(cd: exp.ColumnDef, table_binary: bool = False) -> str:
    """``COLLATE NOCASE`` for text columns: MySQL's default collations (``*_ci``) compare, sort and
    enforce UNIQUE case-insensitively; ``*_bin`` collations and the BINARY attribute keep SQLite's
    byte-wise BINARY. (SQLite's NOCASE folds ASCII letters only.)"""
    kind = cd.args.get("kind")
    if kind is not None and kind.this in _DECIMAL_TYPES:
        return f"COLLATE {DECIMAL_COLLATION}"
    if kind is None or kind.this not in _TEXT_TYPES:
        return ""
    binary = table_binary
    for c in cd.args.get("constraints") or []:
        k = c.args.get("kind")
        if isinstance(k, exp.BinaryColumnConstraint):
            binary = True
        elif isinstance(k, exp.CollateColumnConstraint):
            name = k.this.name.lower() if k.this is not None else ""
            binary = name.endswith("_bin") or name == "binary"
    return "" if binary else "COLLATE NOCASE"


def _table_is_binary(create: exp.Create) -> bool:
    props = create.args.get("properties")
    for p in props.expressions if props is not None else []:
        if isinstance(p, exp.CollateProperty):
            name = p.this.name.lower() if isinstance(p.this, exp.Expression) else str(p.this).lower()
            return name.endswith("_bin") or name == "binary"
    return False


class KeyNames:
    """MySQL's names for unnamed keys: the first column's name, then ``name_2``, ``name_3`` on repeats."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def take(self, wanted: str) -> str:
        name, n = wanted, 2
        while name.lower() in self.used:
            name, n = f"{wanted}_{n}", n + 1
        self.used.add(name.lower())
        return name


def _first_column(items: list[exp.Expression]) -> str:
    node = items[0] if items else None
    while isinstance(node, (exp.Ordered, exp.ColumnPrefix)):
        node = node.this
    if isinstance(node, exp.Anonymous):  # col(10) parsed as a call
        return node.name
    return node.name if node is not None else "key"


def _not_null(parts: list[str]) -> list[str]:
    """A primary key column is NOT NULL in MySQL; SQLite lets a non-rowid primary key hold NULL unless
    told (``id INT PRIMARY KEY`` stored NULLs before), so the constraint is written out."""
    return parts if any(p.upper() == "NOT NULL" for p in parts) else ["NOT NULL", *parts]


def column_definition(cd: exp.ColumnDef, table: exp.Table) -> tuple[str, list[str], bool]:
    """One column as SQLite DDL: (definition text, index statements it implies, is it a primary key).

    Used by ALTER TABLE; CREATE TABLE applies the same rules with the table-level key information.
    """
    parts: list[str] = []
    indexes: list[str] = []
    auto = False
    pk = False
    for c in cd.args.get("constraints") or []:
        k = c.args.get("kind")
        if isinstance(k, exp.AutoIncrementColumnConstraint):
            auto = True
        elif isinstance(k, exp.PrimaryKeyColumnConstraint):
            pk = True
        elif isinstance(k, exp.UniqueColumnConstraint):
            indexes.append(index_statement(table, cd.name, [exp.column(cd.name)], True))
        elif not isinstance(k, _DROPPED_COLUMN_CONSTRAINTS):
            parts.append(c.sql("sqlite"))
    kind = cd.args.get("kind")
    if kind is not None:
        check = _enum_check(cd.name, kind)
        if check:
            parts.append(check)
    if auto and pk:
        type_name = "INTEGER"
        parts = [p for p in parts if p.upper() != "NOT NULL"] + ["PRIMARY KEY AUTOINCREMENT"]
    else:
        type_name = sqlite_type_name(kind) if kind is not None else ""
        if pk:
            parts = _not_null(parts) + ["PRIMARY KEY"]
    collate = collation_clause(cd)
    marker = set_marker(kind)
    return " ".join(x for x in (f'"{cd.name}"', type_name, collate, marker, *parts) if x), indexes, pk


def translate_create_table(create: exp.Create) -> list[str]:
    """SQLite statements for one MySQL CREATE TABLE (the table first, then its secondary indexes)."""
    schema = create.this
    if not isinstance(schema, exp.Schema):  # CREATE TABLE ... LIKE / AS SELECT
        return [create.sql("sqlite")]
    table = schema.this
    columns: list[str] = []
    extra: list[str] = []
    pk_cols: list[str] = []
    auto_col: str | None = None
    table_pk = False  # PRIMARY KEY (...) given as a table constraint rather than on a column
    names = KeyNames()
    table_binary = _table_is_binary(create)
    defs: list[tuple[exp.ColumnDef, list[str]]] = []
    others: list[str] = []
    for item in schema.expressions:
        if isinstance(item, exp.ColumnDef):
            parts: list[str] = []
            kind = item.args.get("kind")
            for c in item.args.get("constraints") or []:
                k = c.args.get("kind")
                if isinstance(k, exp.AutoIncrementColumnConstraint):
                    auto_col = item.name
                elif isinstance(k, exp.PrimaryKeyColumnConstraint):
                    pk_cols = [item.name]
                elif isinstance(k, exp.UniqueColumnConstraint):
                    extra.append(index_statement(table, names.take(item.name), [exp.column(item.name)], True))
                elif not isinstance(k, _DROPPED_COLUMN_CONSTRAINTS):
                    parts.append(c.sql("sqlite"))
            if kind is not None:
                check = _enum_check(item.name, kind)
                if check:
                    parts.append(check)
            defs.append((item, parts))
        elif isinstance(item, exp.PrimaryKey):
            pk_cols = [e.name for e in item.expressions]
            table_pk = True
        elif isinstance(item, exp.IndexColumnConstraint):
            name = names.take(item.name or _first_column(item.expressions))
            extra.append(index_statement(table, name, item.expressions, False))
        elif isinstance(item, exp.UniqueColumnConstraint):
            target = item.this
            if isinstance(target, exp.Schema):
                cols = target.expressions
                name = names.take(target.this.name if target.this else _first_column(cols))
            else:
                cols = [target]
                name = names.take(_first_column(cols))
            extra.append(index_statement(table, name, cols, True))
        else:
            others.append(item.sql("sqlite"))
    rowid_pk = auto_col is not None and pk_cols == [auto_col]
    for item, parts in defs:
        kind = item.args.get("kind")
        if rowid_pk and item.name == auto_col:
            type_name = "INTEGER"
            parts = [p for p in parts if p.upper() != "NOT NULL"] + ["PRIMARY KEY AUTOINCREMENT"]
        else:
            type_name = sqlite_type_name(kind) if kind is not None else ""
            if item.name in pk_cols:
                parts = _not_null(parts)
            if not table_pk and pk_cols == [item.name]:
                parts.append("PRIMARY KEY")
        collate = collation_clause(item, table_binary)
        marker = set_marker(kind)
        columns.append(" ".join(x for x in (f'"{item.name}"', type_name, collate, marker, *parts) if x))
    if table_pk and not rowid_pk:
        columns.append("PRIMARY KEY (" + ", ".join(f'"{c}"' for c in pk_cols) + ")")
    columns.extend(others)
    exists = " IF NOT EXISTS" if create.args.get("exists") else ""
    temp = (
        " TEMPORARY"
        if any(
            isinstance(p, exp.TemporaryProperty)
            for p in (create.args.get("properties") or exp.Properties()).expressions
        )
        else ""
    )
    qual = f'"{table.db}".' if table.db else ""
    body = ",\n  ".join(columns)
    stmt = f'CREATE{temp} TABLE{exists} {qual}"{table.name}" (\n  {body}\n)'
    if exists:
        extra = [e.replace("INDEX ", "INDEX IF NOT EXISTS ", 1) for e in extra]
    for item, _parts in defs:
        if any(
            isinstance(c.args.get("kind"), exp.OnUpdateColumnConstraint)
            for c in item.args.get("constraints") or []
        ):
            extra.append(on_update_trigger(table, item.name, bool(exists)))
    return [stmt, *extra]


def on_update_trigger(table: exp.Table, column: str, if_not_exists: bool = False) -> str:
    """``ON UPDATE CURRENT_TIMESTAMP`` as a trigger: stamp the column when an UPDATE did not set it.

    Named ``<table>__<column>__on_update`` so SHOW CREATE TABLE and ALTER TABLE can find it again.
    """
    qual = f'"{table.db}".' if table.db else ""
    name = f'{qual}"{table.name}__{column}__on_update"'
    exists = "IF NOT EXISTS " if if_not_exists else ""
    return (
        f'CREATE TRIGGER {exists}{name} AFTER UPDATE ON "{table.name}" FOR EACH ROW '
        f'WHEN NEW."{column}" IS OLD."{column}" '
        f'BEGIN UPDATE "{table.name}" SET "{column}" = CURRENT_TIMESTAMP WHERE rowid = NEW.rowid; END'
    )
