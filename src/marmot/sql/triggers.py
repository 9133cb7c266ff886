"""MySQL CREATE TRIGGER -> SQLite CREATE TRIGGER.

Both have row triggers BEFORE/AFTER INSERT/UPDATE/DELETE with NEW/OLD, but SQLite cannot assign to
NEW. MySQL's ``SET NEW.col = expr`` in a BEFORE trigger is therefore turned into an AFTER trigger that
updates the row just written (``UPDATE t SET col = expr WHERE rowid = NEW.rowid``): the stored row ends
up as MySQL would store it. Other body statements (INSERT/UPDATE/DELETE/SELECT) are transpiled like any
statement; procedural bodies (DECLARE, IF, loops, SIGNAL) are not supported yet.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from marmot.sql import lexer


class TriggerError(Exception):
    """The trigger uses something SQLite cannot express."""


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def translate(sql: str, rewrite: Callable[[exp.Expr], exp.Expr]) -> tuple[str, str]:
    """(SQLite CREATE TRIGGER, table name) for a MySQL CREATE TRIGGER; ``rewrite`` fixes functions."""
    toks = lexer.code_tokens(sql)
    words = [t.text.upper() for t in toks]
    i = 1
    if words[i] == "DEFINER":  # DEFINER = user@host
        i += 2
        while i < len(toks) and words[i] != "TRIGGER":
            i += 1
    if words[i] != "TRIGGER":
        raise TriggerError("not a CREATE TRIGGER statement")
    i += 1
    exists = ""
    if words[i : i + 3] == ["IF", "NOT", "EXISTS"]:
        exists, i = "IF NOT EXISTS ", i + 3
    name = lexer.unquote_identifier(toks[i].text)
    timing, event = words[i + 1], words[i + 2]
    if (
        timing not in ("BEFORE", "AFTER")
        or event not in ("INSERT", "UPDATE", "DELETE")
        or words[i + 3] != "ON"
    ):
        raise TriggerError("expected {BEFORE|AFTER} {INSERT|UPDATE|DELETE} ON table")
    table = lexer.unquote_identifier(toks[i + 4].text)
    j = i + 5
    if toks[j].text == ".":
        table = lexer.unquote_identifier(toks[j + 1].text)
        j += 2
    if words[j : j + 3] != ["FOR", "EACH", "ROW"]:
        raise TriggerError("expected FOR EACH ROW")
    j += 3
    if j < len(words) and words[j] in ("FOLLOWS", "PRECEDES"):
        j += 2
    last = toks[-1]
    # up to the last code token: a dumped trigger is wrapped in /*!50003 ... */, whose closing */ is not body
    body = sql[toks[j].start : last.start + len(last.text)].strip().rstrip(";").strip()
    if body.upper().startswith("BEGIN"):
        inner = body[5:]
        if not inner.rstrip().upper().endswith("END"):
            raise TriggerError("BEGIN without END")
        statements = lexer.split_statements(inner.rstrip()[:-3])
    else:
        statements = [body]
    out: list[str] = []
    needs_after = False
    for stmt in statements:
        first = lexer.code_tokens(stmt)
        if not first:
            continue
        if first[0].text.upper() == "SET":
            out.append(_set_new(stmt, table, rewrite))
            needs_after = True
        else:
            out.append(_statement(stmt, rewrite))
    if needs_after:
        if event == "DELETE":
            raise TriggerError("SET NEW in a DELETE trigger")
        timing = "AFTER"
    body_sql = " ".join(s.rstrip(";") + ";" for s in out)
    return (
        f"CREATE TRIGGER {exists}{_q(name)} {timing} {event} ON {_q(table)} FOR EACH ROW BEGIN {body_sql} END",
        table,
    )


def _statement(stmt: str, rewrite: Callable[[exp.Expr], exp.Expr]) -> str:
    try:
        tree = sqlglot.parse_one(stmt, read="mysql")
    except (ParseError, TokenError) as err:
        raise TriggerError(f"cannot parse trigger statement: {stmt.strip()[:80]}") from err
    if not isinstance(tree, (exp.Insert, exp.Update, exp.Delete, exp.Select)):
        raise TriggerError(f"trigger statement not supported: {stmt.strip()[:80]}")
    return rewrite(tree).sql("sqlite")


def _set_new(stmt: str, table: str, rewrite: Callable[[exp.Expr], exp.Expr]) -> str:
    """``SET NEW.a = x, NEW.b = y`` -> ``UPDATE t SET a = x, b = y WHERE rowid = NEW.rowid``."""
    toks = lexer.code_tokens(stmt)[1:]
    assignments: list[str] = []
    depth = 0
    current: list[lexer.Token] = []
    for tok in [*toks, lexer.Token("punct", ",", -1)]:
        if tok.text == "(":
            depth += 1
        elif tok.text == ")":
            depth -= 1
        if tok.text == "," and depth == 0:
            if (
                len(current) < 5
                or current[0].text.upper() != "NEW"
                or current[1].text != "."
                or current[3].text not in ("=", ":=")
            ):
                raise TriggerError(f"only SET NEW.col = expr is supported in triggers: {stmt.strip()[:80]}")
            column = lexer.unquote_identifier(current[2].text)
            start = current[4].start
            end = current[-1].start + len(current[-1].text)
            value = stmt[start:end]
            try:
                expr = rewrite(sqlglot.parse_one(value, read="mysql"))
            except (ParseError, TokenError) as err:
                raise TriggerError(f"cannot parse {value!r}") from err
            assignments.append(f"{_q(column)} = {expr.sql('sqlite')}")
            current = []
            continue
        current.append(tok)
    return f"UPDATE {_q(table)} SET {', '.join(assignments)} WHERE rowid = NEW.rowid"
