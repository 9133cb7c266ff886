"""The parser of the statements a session answers itself: SET, USE, transaction control, database DDL,
LOAD EXTENSION and the no-op ``ALTER TABLE … DISABLE KEYS`` (SHOW/DESCRIBE: ``metadata.py``, LOAD DATA:
``load_data.py``; everything else goes to the transpiler).

Why one module, on ``marmot.sql.lexer`` tokens, and not sqlglot: each of these statements used to be
picked apart where it was handled, in four files. sqlglot (the transpiler's parser, 30.x) reads SET and
USE, but not all the MySQL forms of SHOW clients send — ``SHOW KEYS``/``INDEXES``/``FIELDS``, ``SHOW
LOCAL VARIABLES`` and ``SHOW CREATE SCHEMA`` fall back to an unparsed command, ``SHOW CREATE DATABASE IF
NOT EXISTS`` (mariadb-dump) is an error — so SHOW needs our parser anyway, and moving SET alone would
give the session two parsers and hand the engine a regenerated value text (``0x41`` comes back as
``x'41'``) where it evaluates the client's own. So the engine keeps one tokenizer-based parser for them,
here, and the router (``statement_router.py``) decides from the first words which handler gets the statement.
Parsing errors are MySQL's 1064 (``errors.syntax_error``), raised when the handler parses its statement.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from marmot.engine import errors
from marmot.sql import lexer


def use_target(sql: str) -> str:
    """``USE db``: the database named."""
    toks = lexer.code_tokens(sql)
    if len(toks) < 2:
        raise errors.syntax_error("You have an error in your SQL syntax near 'USE'")
    return lexer.unquote_identifier(toks[1].text)


def check_begin(sql: str, words: list[str]) -> None:
    """``BEGIN [WORK]`` or ``START TRANSACTION [...]`` (``words``: the statement's leading words)."""
    if words[0] == "START" and words[1:2] != ["TRANSACTION"]:
        raise errors.syntax_error(f"You have an error in your SQL syntax near '{sql}'")


def savepoint_name(sql: str) -> str:
    """The savepoint of ``SAVEPOINT x``, ``RELEASE SAVEPOINT x`` or ``ROLLBACK TO [SAVEPOINT] x``."""
    toks = lexer.code_tokens(sql)
    if len(toks) < 2:
        raise errors.syntax_error("You have an error in your SQL syntax; savepoint name missing")
    return lexer.unquote_identifier(toks[-1].text).replace('"', "")


def rollback_target(sql: str) -> str | None:
    """``ROLLBACK [WORK]``: None; ``ROLLBACK [WORK] TO [SAVEPOINT] x``: x."""
    if "TO" in (t.text.upper() for t in lexer.code_tokens(sql)):
        return savepoint_name(sql)
    return None


@dataclass(frozen=True, slots=True)
class DatabaseDDL:
    """``CREATE DATABASE [IF NOT EXISTS] x`` or ``DROP DATABASE [IF EXISTS] x`` (SCHEMA alike)."""

    verb: str  # CREATE | DROP
    name: str
    if_clause: bool


def database_ddl(sql: str, verb: str) -> DatabaseDDL:
    rest = lexer.code_tokens(sql)[2:]
    words = [t.text.upper() for t in rest]
    if_clause = False
    if verb == "CREATE" and words[:3] == ["IF", "NOT", "EXISTS"]:
        if_clause, rest = True, rest[3:]
    elif verb == "DROP" and words[:2] == ["IF", "EXISTS"]:
        if_clause, rest = True, rest[2:]
    if not rest:
        raise errors.syntax_error("You have an error in your SQL syntax; a database name is missing")
    return DatabaseDDL(verb, lexer.unquote_identifier(rest[0].text), if_clause)


def extension_name(sql: str) -> str:
    """``LOAD EXTENSION name`` (quoted or not, may contain dots): the name."""
    toks = lexer.code_tokens(sql)[2:]
    return "".join(lexer.unquote_string(t.text) if t.kind in ("sq", "dq") else t.text for t in toks).strip()


def is_keys_toggle(sql: str) -> bool:
    """``ALTER TABLE t DISABLE|ENABLE KEYS``: MyISAM index maintenance, a no-op here."""
    words = [t.text.upper() for t in lexer.code_tokens(sql)]
    return (
        len(words) >= 5 and words[1] == "TABLE" and words[-1] == "KEYS" and words[-2] in ("DISABLE", "ENABLE")
    )


# -- SET -----------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Assignment:
    """One ``target = value`` of a SET statement."""

    kind: str  # "system" | "user" | "names" | "charset" | "transaction"
    name: str
    scope: str  # "session" | "global" | ""
    value_sql: str  # the value expression as MySQL text ("" for NAMES/CHARSET/TRANSACTION)
    extra: str = ""  # NAMES collation / TRANSACTION characteristics


_SCOPE_WORDS = {
    "SESSION": "session",
    "LOCAL": "session",
    "GLOBAL": "global",
    "PERSIST": "global",
    "PERSIST_ONLY": "global",
}


def _split_top_level(tokens: list[lexer.Token]) -> Iterator[list[lexer.Token]]:
    depth = 0
    part: list[lexer.Token] = []
    for tok in tokens:
        if tok.kind == "punct" and tok.text == "(":
            depth += 1
        elif tok.kind == "punct" and tok.text == ")":
            depth -= 1
        if depth == 0 and tok.kind == "punct" and tok.text == ",":
            yield part
            part = []
            continue
        part.append(tok)
    if part:
        yield part


def parse_set(sql: str) -> list[Assignment]:
    """Parse ``SET ...`` into assignments; raises ValueError on malformed input."""
    toks = lexer.code_tokens(sql)  # mysqldump writes ``/*!40101 SET @OLD_X=@@X */``: MySQL runs the body
    if not toks or toks[0].text.upper() != "SET":
        raise ValueError("not a SET statement")
    body = toks[1:]
    if body and body[0].kind == "word" and body[0].text.upper() == "NAMES":
        rest = body[1:]
        if not rest:
            raise ValueError("SET NAMES needs a character set")
        charset = lexer.unquote_string(rest[0].text) if rest[0].kind in ("sq", "dq") else rest[0].text
        collation = ""
        if len(rest) >= 3 and rest[1].text.upper() == "COLLATE":
            collation = lexer.unquote_string(rest[2].text) if rest[2].kind in ("sq", "dq") else rest[2].text
        return [Assignment("names", charset, "session", "", collation)]
    words = [t.text.upper() for t in body[:3]]
    if words[:2] == ["CHARACTER", "SET"] or words[:1] == ["CHARSET"]:
        rest = body[2:] if words[0] == "CHARACTER" else body[1:]
        if not rest:
            raise ValueError("SET CHARACTER SET needs a character set")
        cs = lexer.unquote_string(rest[0].text) if rest[0].kind in ("sq", "dq") else rest[0].text
        return [Assignment("charset", cs, "session", "")]
    if "TRANSACTION" in words[:2]:
        scope = _SCOPE_WORDS.get(words[0], "next")
        characteristics = " ".join(t.text for t in body[(2 if scope != "next" else 1) :])
        return [Assignment("transaction", "", scope, "", characteristics)]
    out: list[Assignment] = []
    for part in _split_top_level(body):
        eq = next((i for i, t in enumerate(part) if t.text in ("=", ":=")), None)
        if eq is None or eq == 0 or eq == len(part) - 1:
            raise ValueError("malformed assignment")
        target = part[:eq]
        value_sql = sql[part[eq + 1].start : part[-1].start + len(part[-1].text)]
        scope = "session"
        first = target[0]
        if first.kind == "var" and first.text.startswith("@@"):
            name = first.text[2:]
            low = name.lower()
            for pfx in ("session.", "local.", "global.", "persist.", "persist_only."):
                if low.startswith(pfx):
                    scope = "global" if pfx[0] in "gp" else "session"
                    name = name[len(pfx) :]
                    break
            out.append(Assignment("system", name.strip("`").lower(), scope, value_sql))
            continue
        if first.kind == "var":
            name = first.text[1:]
            if name[:1] in "`'\"":
                name = name[1:-1]
            out.append(Assignment("user", name.lower(), "", value_sql))
            continue
        if first.kind == "word" and first.text.upper() in _SCOPE_WORDS and len(target) > 1:
            scope = _SCOPE_WORDS[first.text.upper()]
            target = target[1:]
        name = "".join(t.text for t in target)
        out.append(Assignment("system", lexer.unquote_identifier(name).lower(), scope, value_sql))
    return out
