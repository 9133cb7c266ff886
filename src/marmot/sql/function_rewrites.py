"""Rewrites of MySQL function calls that sqlglot parses into nodes SQLite renders wrongly.

``rewrite(node)`` is called by the transpiler for every node of a statement (bottom-up) before the
session-specific rewrites; it returns the node unchanged or its replacement. Keep each rewrite small and
say which MySQL behaviour it preserves.
"""

from __future__ import annotations

from sqlglot import exp


def rewrite(node: exp.Expression) -> exp.Expression:
    return node
