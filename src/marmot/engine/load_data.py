"""``LOAD DATA [LOCAL] INFILE``: parse the statement, split the file into rows the way MySQL does.

Only LOCAL is supported: the client sends the file over the connection (``[mysql] local_infile_enabled``
and the client's CLIENT_LOCAL_FILES must both allow it). Reading files from the server's own disk is what
MySQL guards with ``secure_file_priv``; we refuse it.

Field/line rules follow MySQL: FIELDS TERMINATED BY (default TAB), [OPTIONALLY] ENCLOSED BY (default
none), ESCAPED BY (default backslash: ``\\N`` is NULL, ``\\t \\n \\r \\0 \\b \\Z`` and ``\\<char>``), LINES
STARTING BY / TERMINATED BY (default newline), IGNORE n LINES, an optional column list (``@var`` entries
discard the field) and SET assignments are not supported (1235).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from marmot.engine.errors import MySQLError, syntax_error
from marmot.sql import lexer

_ESCAPES = {"N": None, "t": "\t", "n": "\n", "r": "\r", "0": "\0", "b": "\b", "Z": "\x1a"}


@dataclass
class LoadSpec:
    local: bool
    filename: str
    table: str
    database: str | None = None
    mode: str = ""  # "", "REPLACE", "IGNORE"
    field_sep: str = "\t"
    enclosed: str = ""
    escaped: str = "\\"
    line_start: str = ""
    line_sep: str = "\n"
    ignore_lines: int = 0
    columns: list[str] = field(default_factory=list)


def _string(tok: lexer.Token) -> str:
    if tok.kind not in ("sq", "dq"):
        raise syntax_error(f"You have an error in your SQL syntax near '{tok.text}': a string was expected")
    return lexer.unquote_string(tok.text).replace("\\%", "%").replace("\\_", "_")


def parse(sql: str) -> LoadSpec:
    toks = lexer.code_tokens(sql)
    i = 2  # LOAD DATA

    def words(j: int) -> str:
        return toks[j].text.upper() if j < len(toks) else ""

    while words(i) in ("LOW_PRIORITY", "CONCURRENT"):
        i += 1
    local = words(i) == "LOCAL"
    if local:
        i += 1
    if words(i) != "INFILE":
        raise syntax_error("You have an error in your SQL syntax; expected INFILE")
    spec = LoadSpec(local, _string(toks[i + 1]), "")
    i += 2
    if words(i) in ("REPLACE", "IGNORE"):
        spec.mode = words(i)
        i += 1
    if words(i) != "INTO" or words(i + 1) != "TABLE":
        raise syntax_error("You have an error in your SQL syntax; expected INTO TABLE")
    i += 2
    name = lexer.unquote_identifier(toks[i].text)
    i += 1
    if i < len(toks) and toks[i].text == ".":
        spec.database, name = name, lexer.unquote_identifier(toks[i + 1].text)
        i += 2
    spec.table = name
    while i < len(toks):
        w = words(i)
        if w in ("CHARACTER", "CHARSET"):
            i += 3 if w == "CHARACTER" else 2
        elif w in ("FIELDS", "COLUMNS", "LINES"):
            section = w
            i += 1
            while words(i) in ("TERMINATED", "ENCLOSED", "OPTIONALLY", "ESCAPED", "STARTING"):
                sub = words(i)
                if sub == "OPTIONALLY":
                    i += 1
                    sub = words(i)
                value = _string(toks[i + 2])
                if section == "LINES":
                    if sub == "STARTING":
                        spec.line_start = value
                    else:
                        spec.line_sep = value
                elif sub == "TERMINATED":
                    spec.field_sep = value
                elif sub == "ENCLOSED":
                    spec.enclosed = value
                elif sub == "ESCAPED":
                    spec.escaped = value
                i += 3
        elif w == "IGNORE":
            spec.ignore_lines = int(toks[i + 1].text)
            i += 3
        elif toks[i].text == "(":
            i += 1
            while i < len(toks) and toks[i].text != ")":
                if toks[i].text != ",":
                    spec.columns.append(
                        toks[i].text if toks[i].kind == "var" else lexer.unquote_identifier(toks[i].text)
                    )
                i += 1
            i += 1
        elif w == "SET":
            raise MySQLError(1235, "42000", "This version of Marmot doesn't yet support: LOAD DATA ... SET")
        else:
            raise syntax_error(f"You have an error in your SQL syntax near '{toks[i].text}'")
    return spec


def split_rows(data: str, spec: LoadSpec) -> list[list[str | None]]:
    """Rows of fields; ``None`` for SQL NULL (``\\N``, or the word NULL when fields are enclosed)."""
    rows: list[list[str | None]] = []
    i, n = 0, len(data)
    fs, ls, enc, esc = spec.field_sep, spec.line_sep, spec.enclosed, spec.escaped
    line_no = 0
    while i < n:
        if spec.line_start:
            j = data.find(spec.line_start, i)
            if j < 0:
                break
            i = j + len(spec.line_start)
        fields: list[str | None] = []
        while True:
            value, i, quoted = _field(data, i, fs, ls, enc, esc)
            if not quoted and value == "\\N" and esc or value is _NULL:
                fields.append(None)
            else:
                fields.append(value)  # type: ignore[arg-type]
            if data.startswith(fs, i) and fs:
                i += len(fs)
                continue
            if data.startswith(ls, i):
                i += len(ls)
            elif i < n:
                i += 1
            break
        line_no += 1
        if line_no > spec.ignore_lines:
            rows.append(fields)
    return rows


_NULL = object()


def _field(data: str, i: int, fs: str, ls: str, enc: str, esc: str) -> tuple[object, int, bool]:
    """One field starting at ``i``: (value, position after it, was it enclosed)."""
    n = len(data)
    if enc and data.startswith(enc, i):
        i += len(enc)
        out: list[str] = []
        while i < n:
            if esc and data.startswith(esc, i) and i + 1 < n:
                c = data[i + 1]
                out.append(_ESCAPES.get(c, c) or "")
                i += 2
            elif data.startswith(enc, i):
                if data.startswith(enc + enc, i):
                    out.append(enc)
                    i += 2 * len(enc)
                else:
                    i += len(enc)
                    break
            else:
                out.append(data[i])
                i += 1
        return "".join(out), i, True
    out = []
    start = i
    while i < n:
        if esc and data.startswith(esc, i) and i + 1 < n:
            c = data[i + 1]
            if c == "N" and i == start:
                end = i + 2
                if end >= n or data.startswith(fs, end) or data.startswith(ls, end):
                    return _NULL, end, False
            value = _ESCAPES.get(c, c)
            out.append("" if value is None else value)
            i += 2
            continue
        if (fs and data.startswith(fs, i)) or data.startswith(ls, i):
            break
        out.append(data[i])
        i += 1
    text = "".join(out)
    if enc and text == "NULL":
        return _NULL, i, False
    return text, i, False
