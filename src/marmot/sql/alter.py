"""MySQL ALTER TABLE / RENAME TABLE / CREATE INDEX / DROP INDEX -> SQLite.

SQLite's own ALTER TABLE can add, drop and rename columns and rename tables; everything else MySQL
allows (MODIFY / CHANGE COLUMN, ADD PRIMARY KEY, ADD FOREIGN KEY, column positions) needs the table to be
rebuilt: create the new shape under a temporary name, copy the rows, drop the old table, rename, and
recreate its indexes and triggers — the procedure SQLite documents for "other kinds of table schema
changes". The engine runs a rebuild with foreign-key enforcement switched off around the transaction
(``Plan.rebuild``), because dropping the old table must not fire ON DELETE actions on other tables.

The current shape of the table comes from ``SchemaInfo.table_schema`` (the stored CREATE TABLE text,
split into column/constraint items); the plan cache is keyed on the schema generation, so a plan never
rebuilds from a stale shape.

MySQL index names are per table, SQLite's per database, so an index ``k`` on table ``t`` is stored as
``t__k`` (the same naming CREATE TABLE uses for inline keys). Renaming the table (RENAME TABLE, ALTER
TABLE ... RENAME TO) re-creates those indexes, and the ``t__c__on_update`` triggers, under the new name
(``renamed_objects``), so SHOW INDEX and DROP INDEX keep MySQL's key names afterwards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlglot import exp

from marmot.sql import lexer
from marmot.sql.ddl import DDLError, column_definition, index_statement, on_update_trigger

REBUILD_PREFIX = "__marmot_rebuild_"


@dataclass
class StoredTable:
    """A table as SQLite stores it: its column and constraint items, indexes and triggers."""

    name: str
    items: list[tuple[str | None, str]]  # (column name or None for a table constraint, SQL text)
    index_sql: list[str] = field(default_factory=list)
    trigger_sql: list[str] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        return [n for n, _ in self.items if n is not None]


_CONSTRAINT_WORDS = {"PRIMARY", "UNIQUE", "FOREIGN", "CHECK", "CONSTRAINT"}


def split_create_table(name: str, create_sql: str) -> list[tuple[str | None, str]]:
    """Split a stored CREATE TABLE into its top-level items."""
    toks = lexer.tokenize(create_sql)
    depth = 0
    start = None
    items: list[tuple[str | None, str]] = []
    for tok in toks:
        if tok.kind == "punct" and tok.text == "(":
            depth += 1
            if depth == 1:
                start = tok.start + 1
                continue
        elif tok.kind == "punct" and tok.text == ")":
            depth -= 1
            if depth == 0 and start is not None:
                items.append(_item(create_sql[start : tok.start]))
                break
        elif tok.kind == "punct" and tok.text == "," and depth == 1 and start is not None:
            items.append(_item(create_sql[start : tok.start]))
            start = tok.start + 1
    return items


def _item(text: str) -> tuple[str | None, str]:
    text = text.strip()
    first = next((t for t in lexer.tokenize(text) if t.kind not in ("ws", "comment")), None)
    if first is None:
        return None, text
    if first.kind == "word" and first.text.upper() in _CONSTRAINT_WORDS:
        return None, text
    name = first.text
    if name[:1] in ('"', "`", "["):
        name = name[1:-1]
    return name, text


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _mentions(text: str, column: str) -> bool:
    words = {t.text.strip('"`').lower() for t in lexer.tokenize(text) if t.kind in ("word", "dq", "bt")}
    return column.lower() in words


class AlterBuilder:
    """Collects the SQLite statements for one MySQL ALTER TABLE."""

    def __init__(self, table: exp.Table, current: StoredTable | None) -> None:
        self.table = table
        self.current = current
        self.items = list(current.items) if current else []
        self.renames: dict[str, str] = {}  # new column name -> old column name (for the row copy)
        self.added: set[str] = set()
        self.rebuild = False
        self.before: list[str] = []  # statements run before a rebuild (or instead of one)
        self.after: list[str] = []  # statements run after the table has its new shape
        self.dropped_indexes: set[str] = set()

    def _need_table(self) -> StoredTable:
        if self.current is None:
            raise DDLError(f"Table '{self.table.name}' doesn't exist")
        return self.current

    def _position(self, cd: exp.ColumnDef) -> int:
        pos = cd.args.get("position")
        if pos is None:
            return len(self.items)
        if str(pos.args.get("position") or "").upper() == "FIRST":
            return 0
        after = pos.this.name if isinstance(pos.this, exp.Expression) else str(pos.this)
        for i, (n, _) in enumerate(self.items):
            if n is not None and n.lower() == after.lower():
                return i + 1
        raise DDLError(f"Unknown column '{after}' in '{self.table.name}'")

    def add_column(self, cd: exp.ColumnDef) -> None:
        self._need_table()
        text, indexes, is_pk = column_definition(cd, self.table)
        positioned = cd.args.get("position") is not None
        if is_pk or positioned or "PRIMARY KEY" in text.upper():
            self.rebuild = True
        elif "NOT NULL" in text.upper() and "DEFAULT" not in text.upper():
            text += " DEFAULT " + _implicit_default(cd)
        self.items.insert(self._position(cd), (cd.name, text))
        self.added.add(cd.name)
        if not self.rebuild:
            self.before.append(f"ALTER TABLE {self._qualified()} ADD COLUMN {text}")
        self.after.extend(indexes)

    def drop_column(self, name: str) -> None:
        current = self._need_table()
        if name.lower() not in (c.lower() for c in current.columns):
            raise DDLError(f"Can't DROP '{name}'; check that column/key exists")
        self.items = [
            (n, t)
            for n, t in self.items
            if not ((n is not None and n.lower() == name.lower()) or (n is None and _mentions(t, name)))
        ]
        self.rebuild = True

    def modify_column(self, old: str, cd: exp.ColumnDef) -> None:
        current = self._need_table()
        if old.lower() not in (c.lower() for c in current.columns):
            raise DDLError(f"Unknown column '{old}' in '{self.table.name}'")
        text, indexes, _is_pk = column_definition(cd, self.table)
        idx = next(i for i, (n, _) in enumerate(self.items) if n is not None and n.lower() == old.lower())
        del self.items[idx]
        position = self._position(cd) if cd.args.get("position") is not None else idx
        self.items.insert(position, (cd.name, text))
        if cd.name != old:
            self.renames[cd.name] = old
        self.after.extend(indexes)
        self.rebuild = True

    def add_constraint(self, constraint: exp.Expression) -> None:
        self._need_table()
        for node in constraint.expressions if isinstance(constraint, exp.AddConstraint) else [constraint]:
            if isinstance(node, exp.Constraint):
                inner = node.expressions[0] if node.expressions else None
                name = node.name
            else:
                inner, name = node, ""
            if isinstance(inner, exp.IndexColumnConstraint):
                self.after.append(
                    index_statement(self.table, inner.name or name or "idx", inner.expressions, False)
                )
            elif isinstance(inner, exp.UniqueColumnConstraint):
                target = inner.this
                cols = target.expressions if isinstance(target, exp.Schema) else [target]
                key = (
                    (target.this.name if isinstance(target, exp.Schema) and target.this else "")
                    or name
                    or "uniq"
                )
                self.after.append(index_statement(self.table, key, cols, True))
            elif isinstance(inner, exp.PrimaryKey):
                key_cols = ", ".join(_quote(c.name) for c in inner.expressions)
                self.items = [
                    (n, t.replace(" PRIMARY KEY", "") if n else t)
                    for n, t in self.items
                    if not (n is None and t.upper().startswith("PRIMARY KEY"))
                ]
                self.items.append((None, f"PRIMARY KEY ({key_cols})"))
                self.rebuild = True
            elif isinstance(inner, exp.ForeignKey) and name:
                # keep the constraint's name: SHOW CREATE TABLE and the 1452/1451/3730 messages show it
                self.items.append((None, f"CONSTRAINT {_quote(name)} {inner.sql('sqlite')}"))
                self.rebuild = True
            elif isinstance(inner, exp.ForeignKey) or inner is not None:
                self.items.append((None, inner.sql("sqlite")))
                self.rebuild = True

    def drop_index(self, name: str) -> None:
        if name.upper() == "PRIMARY":
            raise DDLError("dropping a PRIMARY KEY is not supported")
        self.dropped_indexes.add(f"{self.table.name}__{name}".lower())
        self.before.append(f"DROP INDEX {self._qualified_index(name)}")

    def _qualified(self) -> str:
        return (f"{_quote(self.table.db)}." if self.table.db else "") + _quote(self.table.name)

    def _qualified_index(self, name: str) -> str:
        return (f"{_quote(self.table.db)}." if self.table.db else "") + _quote(f"{self.table.name}__{name}")

    def statements(self) -> list[str]:
        if not self.rebuild:
            return self.before + self.after
        current = self._need_table()
        schema = f"{_quote(self.table.db)}." if self.table.db else ""
        tmp = f"{REBUILD_PREFIX}{self.table.name}"
        body = ",\n  ".join(t for _, t in self.items)
        out = [s for s in self.before if s.startswith("DROP INDEX")]
        out.append(f"CREATE TABLE {schema}{_quote(tmp)} (\n  {body}\n)")
        old_cols = {c.lower() for c in current.columns}
        targets, sources = [], []
        for name in (n for n, _ in self.items if n is not None):
            src = self.renames.get(name, name)
            if src.lower() in old_cols and name not in self.added:
                targets.append(_quote(name))
                sources.append(_quote(src))
        if targets:
            out.append(
                f"INSERT INTO {schema}{_quote(tmp)} ({', '.join(targets)}) "
                f"SELECT {', '.join(sources)} FROM {self._qualified()}"
            )
        out.append(f"DROP TABLE {self._qualified()}")
        out.append(f"ALTER TABLE {schema}{_quote(tmp)} RENAME TO {_quote(self.table.name)}")
        remaining = {n.lower() for n, _ in self.items if n is not None}
        for sql in current.index_sql:
            cols = _index_columns(sql)
            name = _index_name(sql)
            if name.lower() in self.dropped_indexes:
                continue
            if all(c.lower() in remaining or c in self.renames.values() for c in cols):
                for new, old in self.renames.items():
                    sql = sql.replace(f'"{old}"', f'"{new}"')
                out.append(sql)
        out.extend(current.trigger_sql)
        return out + self.after


def _index_name(sql: str) -> str:
    toks = lexer.code_tokens(sql)
    for i, t in enumerate(toks):
        if t.text.upper() == "INDEX":
            nxt = toks[i + 1 : i + 5]
            names = [x for x in nxt if x.text.upper() not in ("IF", "NOT", "EXISTS")]
            return names[0].text.strip('"`') if names else ""
    return ""


def _index_columns(sql: str) -> list[str]:
    inside = sql[sql.rfind("(") + 1 : sql.rfind(")")]
    return [c.strip().split()[0].strip('"`') for c in inside.split(",") if c.strip()]


def _implicit_default(cd: exp.ColumnDef) -> str:
    """The value MySQL gives existing rows for a new NOT NULL column without a DEFAULT."""
    kind = cd.args.get("kind")
    t = kind.this if kind is not None else None
    if t is not None and (
        t in exp.DataType.INTEGER_TYPES
        or t in exp.DataType.REAL_TYPES
        or t in (exp.DataType.Type.DECIMAL, exp.DataType.Type.UDECIMAL)
    ):
        return "0"
    if t in (exp.DataType.Type.DATETIME, exp.DataType.Type.TIMESTAMP, exp.DataType.Type.TIMESTAMPTZ):
        return "'0000-00-00 00:00:00'"
    if t == exp.DataType.Type.DATE:
        return "'0000-00-00'"
    return "''"


def translate_alter(alter: exp.Alter, current: StoredTable | None) -> tuple[list[str], bool]:
    """(SQLite statements, needs a rebuild) for one MySQL ALTER TABLE."""
    table = alter.this
    builder = AlterBuilder(table, current)
    for action in alter.args.get("actions") or []:
        if isinstance(action, exp.ColumnDef):
            builder.add_column(action)
        elif isinstance(action, exp.ModifyColumn):
            new = action.this
            if not isinstance(new, exp.ColumnDef):
                raise DDLError("unsupported MODIFY/CHANGE COLUMN form")
            rename_from = action.args.get("rename_from")
            builder.modify_column(rename_from.name if rename_from is not None else new.name, new)
        elif isinstance(action, exp.Drop):
            kind = (action.args.get("kind") or "").upper()
            targets = action.args.get("tables") or [action.this]
            name = targets[0].name if isinstance(targets[0], exp.Expression) else str(targets[0])
            if kind in ("INDEX", "KEY"):
                builder.drop_index(name)
            elif kind in ("", "COLUMN"):
                builder.drop_column(name)
            elif kind == "FOREIGN KEY":
                continue
            else:
                raise DDLError(f"ALTER TABLE DROP {kind} is not supported")
        elif isinstance(action, exp.AddConstraint):
            builder.add_constraint(action)
        elif isinstance(action, exp.AlterRename):
            builder.before.append(f"ALTER TABLE {builder._qualified()} RENAME TO {_quote(action.this.name)}")
            if current is not None and not builder.rebuild:
                builder.after.extend(renamed_objects(current, action.this.name)[0])
        elif isinstance(action, exp.RenameColumn):
            builder.before.append(
                f"ALTER TABLE {builder._qualified()} RENAME COLUMN "
                f"{_quote(action.this.name)} TO {_quote(action.args['to'].name)}"
            )
        else:
            continue  # table options (ENGINE=, AUTO_INCREMENT=, COMMENT=, CHARSET): nothing to do in SQLite
    return builder.statements(), builder.rebuild


_ON_UPDATE_NAME = re.compile(r'^\s*CREATE\s+TRIGGER\s+(?:IF\s+NOT\s+EXISTS\s+)?"?([^"\s]+)"?', re.IGNORECASE)


def renamed_objects(current: StoredTable, new: str) -> tuple[list[str], StoredTable]:
    """After SQLite's ``ALTER TABLE old RENAME TO new``: the statements that re-create the indexes and
    ON UPDATE triggers named after the table (``old__key``, ``old__col__on_update``) under ``new``'s
    name, and the table as it then stands (a RENAME TABLE with several pairs renames it again)."""
    prefix = current.name.lower() + "__"
    out: list[str] = []
    indexes: list[str] = []
    for sql in current.index_sql:
        name = _index_name(sql)
        on = re.search(r"\sON\s", sql, re.IGNORECASE)
        if not name.lower().startswith(prefix) or on is None or "(" not in sql[on.end() :]:
            indexes.append(sql)
            continue
        unique = "UNIQUE " if re.match(r"\s*CREATE\s+UNIQUE\b", sql, re.IGNORECASE) else ""
        columns = sql[sql.index("(", on.end()) :]
        created = (
            f"CREATE {unique}INDEX {_quote(new + '__' + name[len(prefix) :])} ON {_quote(new)} {columns}"
        )
        out += [f"DROP INDEX {_quote(name)}", created]
        indexes.append(created)
    triggers: list[str] = []
    for sql in current.trigger_sql:
        m = _ON_UPDATE_NAME.match(sql)
        name = m.group(1) if m else ""
        if not (name.lower().startswith(prefix) and name.endswith("__on_update")):
            triggers.append(sql)
            continue
        created = on_update_trigger(
            exp.Table(this=exp.to_identifier(new)), name[len(prefix) : -len("__on_update")]
        )
        out += [f"DROP TRIGGER {_quote(name)}", created]
        triggers.append(created)
    return out, StoredTable(new, current.items, indexes, triggers)
