"""A small, fast MySQL lexer: statement splitting, classification and literal normalisation.

Why it exists: sqlglot costs 60–500 µs per parse, but a cache hit costs ~0.1 µs. Clients such as PyMySQL
and PHP interpolate literals into the SQL text, so a cache keyed on the raw text would almost never hit.
This lexer turns ``SELECT c FROM t WHERE id = 42`` into the *shape* ``SELECT c FROM t WHERE id = :__l0``
plus the values ``[42]``: every statement of one shape shares one transpiled plan and only the values
are bound (natively, never spliced back into SQL).

It is also the one place that knows MySQL's lexical rules (backslash escapes, ``"`` strings, backtick
identifiers, ``#`` and ``-- `` comments, ``/*! … */`` version comments), so statement splitting for
multi-statement COM_QUERY and the first-keyword classification live here too.

Literals are *not* replaced where the value changes the meaning of the statement rather than being data:
the outermost select list (MySQL names result columns after their text), ``ORDER BY``/``GROUP BY``
positions, ``INTERVAL`` quantities, type arguments (``CAST(x AS CHAR(10))``), charset introducers and
typed literals (``_utf8mb4'x'``, ``DATE '2024-01-01'``), and every statement that is not plain DML.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<comment>\#[^\n]*|--(?:[ \t][^\n]*)?(?=\n|$)|/\*(?!!)[\s\S]*?\*/)
  | (?P<vcomment>/\*![0-9]*)
  | (?P<vend>\*/)
  | (?P<sq>'(?:[^'\\]|\\[\s\S]|'')*')
  | (?P<dq>"(?:[^"\\]|\\[\s\S]|"")*")
  | (?P<bt>`(?:[^`]|``)*`)
  | (?P<hex>0x[0-9A-Fa-f]+\b|[xX]'[0-9A-Fa-f]*')
  | (?P<bit>0b[01]+\b|[bB]'[01]*')
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?![A-Za-z_$]))
  | (?P<param>\?)
  | (?P<named>:[A-Za-z_][A-Za-z0-9_]*)
  | (?P<var>@@?(?:[A-Za-z0-9_$.]+|`(?:[^`]|``)*`|'[^']*'|"[^"]*"))
  | (?P<word>[A-Za-z0-9_$\u0080-\uffff]+)
  | (?P<op><=>|<=|>=|<>|!=|\|\||&&|:=|<<|>>|->>|->)
  | (?P<punct>[\s\S])
    """,
    re.VERBOSE,
)

_ESCAPES = {
    "0": "\0",
    "'": "'",
    '"': '"',
    "b": "\b",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "Z": "\x1a",
    "\\": "\\",
}
_ESCAPE_RE = re.compile(r"\\([\s\S])")

# Statements whose literals are data and may be bound as parameters.
_DML = frozenset({"SELECT", "INSERT", "REPLACE", "UPDATE", "DELETE", "WITH"})
# A string after one of these words is part of the syntax, not a value.
_TYPED_LITERAL_WORDS = frozenset(
    {"DATE", "TIME", "TIMESTAMP", "N", "COLLATE", "CHARACTER", "CHARSET", "ESCAPE"}
)
# Clause keywords that end an ORDER BY / GROUP BY list.
_CLAUSE_WORDS = frozenset(
    {
        "LIMIT",
        "HAVING",
        "WINDOW",
        "UNION",
        "FOR",
        "LOCK",
        "INTO",
        "FROM",
        "WHERE",
        "ON",
        "SET",
        "VALUES",
        "EXCEPT",
        "INTERSECT",
        "PROCEDURE",
    }
)
_SURROGATE_RE = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8, escaped by the wire layer
MAX_BOUND_LITERALS = 30000  # SQLite (apsw build) allows 32766 variables per statement.


class LexError(Exception):
    """The text cannot be split into MySQL tokens (for example an unterminated string)."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.position = position


@dataclass(slots=True)
class Token:
    kind: str
    text: str
    start: int


def tokenize(sql: str) -> list[Token]:
    """All tokens including whitespace and comments; raises LexError on an unterminated literal."""
    tokens = [Token(m.lastgroup or "punct", m.group(), m.start()) for m in _TOKEN_RE.finditer(sql)]
    for tok in tokens:
        if tok.kind == "punct" and tok.text in "'\"`":
            raise LexError(f"unterminated {'identifier' if tok.text == '`' else 'string'} literal", tok.start)
        if tok.kind == "comment" and tok.text.startswith("/*") and not tok.text.endswith("*/"):
            raise LexError("unterminated comment", tok.start)
    if any(t.kind == "vcomment" and len(t.text) > 3 and int(t.text[3:]) > SERVER_VERSION_ID for t in tokens):
        tokens = _skip_newer_version_comments(sql, tokens)
    return tokens


# ``/*!NNNNN ... */`` runs only on a server whose version id is at least NNNNN (MySQL 8.0.36 here); a
# newer one is a comment. MariaDB's ``/*M!NNNNNN ... */`` is a comment for MySQL (the regex's ``comment``).
SERVER_VERSION_ID = 80036


def _skip_newer_version_comments(sql: str, tokens: list[Token]) -> list[Token]:
    """Turn each ``/*!NNNNN ... */`` with NNNNN above ``SERVER_VERSION_ID`` into one comment token."""
    out: list[Token] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.kind == "vcomment" and len(tok.text) > 3 and int(tok.text[3:]) > SERVER_VERSION_ID:
            j = i + 1
            while j < len(tokens) and tokens[j].kind != "vend":
                j += 1
            end = tokens[j].start + 2 if j < len(tokens) else len(sql)
            out.append(Token("comment", sql[tok.start : end], tok.start))
            i = j + 1
            continue
        out.append(tok)
        i += 1
    return out


def skipped_comment_only(sql: str) -> bool:
    """A statement made only of comments, one of them code for another server (``/*!NNNNN`` newer than
    this one, MariaDB's ``/*M!``): MySQL skips it without an error (``mariadb-dump`` writes such lines)."""
    try:
        tokens = tokenize(sql)
    except LexError:
        return False
    code = [t for t in tokens if t.kind not in ("ws", "comment") and t.text != ";"]
    return not code and any(
        t.kind == "comment" and (t.text.startswith("/*!") or t.text.upper().startswith("/*M!"))
        for t in tokens
    )


def unquote_string(text: str) -> str:
    """Value of a MySQL quoted string token: backslash escapes and doubled quotes resolved.

    MySQL keeps ``\\%`` and ``\\_`` as two characters (they are LIKE escapes), and an unknown escape
    ``\\x`` is just ``x``.
    """
    quote = text[0]
    body = text[1:-1]
    if "\\" in body:

        def repl(m: re.Match[str]) -> str:
            c = m.group(1)
            if c in "%_":
                return "\\" + c
            return _ESCAPES.get(c, c)

        body = _ESCAPE_RE.sub(repl, body)
    return body.replace(quote * 2, quote)


def unquote_identifier(text: str) -> str:
    """Name of an identifier token (backtick-quoted or bare)."""
    if text.startswith("`"):
        return text[1:-1].replace("``", "`")
    return text


def _expand_version_comments(tokens: list[Token]) -> list[Token]:
    """``/*!40101 SET NAMES utf8 */`` is executed by MySQL: drop the wrapper, keep the body tokens."""
    out: list[Token] = []
    depth = 0
    for tok in tokens:
        if tok.kind == "vcomment":
            depth += 1
            continue
        if tok.kind == "vend" and depth:
            depth -= 1
            continue
        out.append(tok)
    return out


def code_tokens(sql: str) -> list[Token]:
    """The tokens that carry meaning: whitespace and comments dropped, ``/*! ... */`` bodies kept."""
    tokens = tokenize(sql)
    if any(t.kind == "vcomment" for t in tokens):
        tokens = _expand_version_comments(tokens)
    return [t for t in tokens if t.kind not in ("ws", "comment")]


def split_statements(sql: str) -> list[str]:
    """Split a multi-statement COM_QUERY at top-level semicolons; empty statements are dropped.

    The body of a ``CREATE TRIGGER/PROCEDURE/FUNCTION/EVENT`` (``BEGIN ...; ...; END``) stays in one piece:
    BEGIN and CASE open a block, END closes one (``END IF``/``END WHILE``/... close none of ours).
    """
    if ";" not in sql:
        return [sql] if sql.strip() else []
    tokens = tokenize(sql)
    parts: list[str] = []
    start = 0
    first_word = ""
    depth = 0
    code = [t for t in tokens if t.kind not in ("ws", "comment")]
    for n, tok in enumerate(code):
        if tok.kind == "word":
            up = tok.text.upper()
            if not first_word:
                first_word = up
            elif first_word == "CREATE":
                if up in ("BEGIN", "CASE"):
                    depth += 1
                elif up == "END" and depth:
                    nxt = code[n + 1].text.upper() if n + 1 < len(code) else ""
                    if nxt not in ("IF", "WHILE", "LOOP", "REPEAT"):
                        depth -= 1
        if tok.kind == "punct" and tok.text == ";" and depth == 0:
            piece = sql[start : tok.start]
            if _has_code(piece):
                parts.append(piece)
            start = tok.start + 1
            first_word = ""
    piece = sql[start:]
    if _has_code(piece):
        parts.append(piece)
    return parts


def _has_code(piece: str) -> bool:
    if not piece.strip():
        return False
    return any(t.kind not in ("ws", "comment") for t in tokenize(piece))


@dataclass(slots=True)
class Normalized:
    """A statement split into its cacheable shape and the values that vary."""

    shape: str  # SQL with literals replaced by :__lN and client '?' by :__pN
    literals: list[object] = field(default_factory=list)
    param_count: int = 0  # client placeholders ('?'), for COM_STMT_PREPARE
    keyword: str = ""  # first keyword, upper case ("" for an empty statement)
    words: list[str] = field(default_factory=list)  # upper-cased leading words (up to 4) for routing


def literal_value(tok: Token) -> object:
    """Python value of a number or string token."""
    if tok.kind == "num":
        t = tok.text
        if "." not in t and "e" not in t and "E" not in t:
            return int(t)
        return float(t)
    return unquote_string(tok.text)


_CACHE: dict[str, Normalized] = {}
_CACHE_LIMIT = 4096


def normalize(sql: str) -> Normalized:
    """Shape + literals of one statement (see module docstring for what is left in place).

    Identical statement texts (prepared statements, driver probes, ``SELECT 1``) are answered from a
    small cache; callers must treat the result as read-only.
    """
    hit = _CACHE.get(sql)
    if hit is not None:
        return hit
    norm = _normalize(sql)
    if len(sql) < 2048:
        if len(_CACHE) >= _CACHE_LIMIT:
            _CACHE.clear()
        _CACHE[sql] = norm
    return norm


def _normalize(sql: str) -> Normalized:
    pairs = [(m.lastgroup, m.group()) for m in _TOKEN_RE.finditer(sql)]
    if "/*" in sql or (
        ("'" in sql or '"' in sql or "`" in sql) and any(k == "punct" and t in "'\"`" for k, t in pairs)
    ):
        tokens = tokenize(sql)  # validates unterminated literals and comments; the rare slow path
        if any(t.kind == "vcomment" for t in tokens):
            tokens = _expand_version_comments(tokens)
        pairs = [(t.kind, t.text) for t in tokens]
    words: list[str] = []
    first_two: list[tuple[str | None, str]] = []
    for kind, text in pairs:
        if kind == "ws" or kind == "comment":
            continue
        if len(first_two) < 2:
            first_two.append((kind, text))
        if kind != "word" or len(words) == 4:
            if len(first_two) == 2:
                break
            continue
        words.append(text.upper())
    keyword = words[0] if words else (first_two[0][1] if first_two else "")
    if keyword == "(" and len(first_two) > 1 and first_two[1][0] == "word":
        keyword = first_two[1][1].upper()
    bind = keyword in _DML
    out: list[str] = []
    literals: list[object] = []
    params = 0
    # Context tracking for the places where a literal is syntax, not data.
    depth = 0
    select_list_depth: int | None = None  # depth of the outermost select list while inside it
    seen_outer_select = False
    order_group_depth: int | None = None
    type_args_depth: int | None = None
    prev_word = ""
    prev2_word = ""
    introducer = ""
    append = out.append
    for kind, text in pairs:
        if kind == "ws":
            append(text)
            continue
        if kind == "comment":
            append(" ")
            continue
        if kind == "word":
            up = text.upper()
            if up in _INTRODUCERS and bind:
                # _binary'x' / _utf8mb4'x': the introducer only says how to read the string; SQLite gets
                # the value (bytes for _binary) as a parameter instead.
                introducer = up
                continue
            if up in _SELECT_NOOP_MODIFIERS and prev_word in _SELECT_MODIFIER_CONTEXT:
                continue  # SQL_NO_CACHE & co. (mysqldump sends them) steer MySQL's executor only
            if up == "SELECT" and not seen_outer_select and bind:
                seen_outer_select = True
                select_list_depth = depth
            elif select_list_depth is not None and depth == select_list_depth and up in ("FROM", "INTO"):
                select_list_depth = None
            if up == "BY" and prev_word in ("ORDER", "GROUP"):
                order_group_depth = depth
            elif order_group_depth is not None and depth == order_group_depth and up in _CLAUSE_WORDS:
                order_group_depth = None
            append(text)
            prev2_word, prev_word = prev_word, up
            continue
        if kind == "param":
            append(f":__p{params}")
            params += 1
            prev2_word, prev_word = prev_word, "?"
            continue
        if kind == "punct":
            if text == "(":
                depth += 1
                if prev2_word == "AS" and prev_word and type_args_depth is None:
                    type_args_depth = depth
            elif text == ")":
                if type_args_depth == depth:
                    type_args_depth = None
                depth -= 1
                if order_group_depth is not None and depth < order_group_depth:
                    order_group_depth = None
            append(text)
            prev2_word, prev_word = prev_word, text
            continue
        if bind and kind in ("num", "sq", "dq") and len(literals) < MAX_BOUND_LITERALS:
            keep = (
                select_list_depth is not None
                or type_args_depth is not None
                or prev_word == "INTERVAL"
                or (kind == "num" and order_group_depth is not None)
                or (kind != "num" and (prev_word in _TYPED_LITERAL_WORDS or prev_word.startswith("_")))
            )
            if keep and introducer and kind != "num":
                # a literal that stays in the text (select list): drop the introducer, keep the value
                value = _value(kind, text)
                append(
                    "X'" + value.encode("utf-8", "surrogateescape").hex() + "'"
                    if introducer == "_BINARY" and isinstance(value, str)
                    else text
                )
                introducer = ""
                prev2_word, prev_word = prev_word, text
                continue
            if not keep:
                append(f":__l{len(literals)}")
                value = _value(kind, text)
                if introducer == "_BINARY" and isinstance(value, str):
                    value = value.encode("utf-8", "surrogateescape")
                literals.append(value)
                introducer = ""
                prev2_word, prev_word = prev_word, "?"
                continue
        append(text)
        prev2_word, prev_word = prev_word, text
    return Normalized("".join(out).strip(), literals, params, keyword, words)


_SELECT_NOOP_MODIFIERS = frozenset(
    {
        "SQL_NO_CACHE",
        "SQL_CACHE",
        "HIGH_PRIORITY",
        "STRAIGHT_JOIN",
        "SQL_SMALL_RESULT",
        "SQL_BIG_RESULT",
        "SQL_BUFFER_RESULT",
    }
)
_SELECT_MODIFIER_CONTEXT = _SELECT_NOOP_MODIFIERS | {
    "SELECT",
    "DISTINCT",
    "ALL",
    "DISTINCTROW",
    "SQL_CALC_FOUND_ROWS",
}
_INTRODUCERS = frozenset({"_BINARY", "_UTF8", "_UTF8MB4", "_UTF8MB3", "_LATIN1", "_ASCII", "_UTF16", "_UCS2"})
_INT64_MAX = 2**63 - 1


def _exact_decimal_lost(text: str) -> bool:
    """Would binding this DECIMAL literal (``12345678901234567890.1234567890``) as a double lose digits?"""
    return Decimal(repr(float(text))) != Decimal(text)


def _out_of_int64(text: str) -> bool:
    """Integer literals beyond int64 stay in the SQL text: SQLite reads them itself (as REAL)."""
    return text.isdigit() and len(text) >= 19 and int(text) > _INT64_MAX


def _value(kind: str, text: str) -> object:
    if kind == "num":
        if "e" in text or "E" in text:
            return float(text)
        if "." not in text:
            # beyond int64 (BIGINT UNSIGNED reaches 2**64-1): bound as its text, which the column check and
            # ``__marmot_u64`` read exactly (SQLite would make the literal a REAL)
            return text if _out_of_int64(text) else int(text)
        if len(text) > 16 and _exact_decimal_lost(text):
            return text  # an exact-value literal a double cannot hold: bound as its text (DECIMAL columns)
        return float(text)
    value = unquote_string(text)
    if _SURROGATE_RE.search(value):
        # bytes that were not UTF-8 (surrogate-escaped by the wire layer) are binary data
        return value.encode("utf-8", "surrogateescape")
    return value
