"""Values and helpers shared by the real-client tests: byte strings that stress escaping, and tables
recreated per test."""

from __future__ import annotations

# Quotes, backslash, NUL, CR, LF, Ctrl-Z: every character a client escapes.
SAFE_BYTES = b"\x00\x01'\"\\\n\r\x1a"
# Not UTF-8 at all: 0xFF/0xFE never occur in UTF-8, 0x80 is a lone continuation byte, C3 28 a broken pair.
RAW_BYTES = b"\x00\xff\xfe\x80\xc3\x28'\\"


def fresh_table(cur, name: str, ddl: str) -> None:
    """Drop and create ``name`` from ``ddl`` (a format string with ``{name}``)."""
    cur.execute(f"DROP TABLE IF EXISTS {name}")
    cur.execute(ddl.format(name=name))
