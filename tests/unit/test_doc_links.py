"""Every relative link in the repository's Markdown resolves inside the repository.

Why: a clone must make sense on its own. Links to files that moved (a refactor renames modules) or that
live outside the checkout (a design document beside it) leave a reader at a dead end; this test turns
such a link into a failing test instead of a surprise.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_SKIP = {".venv", ".git", "node_modules", ".pytest_cache", ".mypy_cache"}
_LINK = re.compile(r"(?<!!)\[[^\]\n]*\]\(([^)\s]+)\)")


def _markdown_files() -> list[Path]:
    return [
        p
        for p in REPO.rglob("*.md")
        if not _SKIP & set(p.relative_to(REPO).parts)
        and not any(part.endswith(".egg-info") for part in p.parts)
    ]


def test_relative_markdown_links_resolve_inside_the_repository() -> None:
    broken: list[str] = []
    for md in _markdown_files():
        for target in _LINK.findall(md.read_text(encoding="utf-8")):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                continue  # a URL or an anchor on the same page
            path = (md.parent / target.split("#", 1)[0]).resolve()
            if not path.exists() or REPO not in (path, *path.parents):
                broken.append(f"{md.relative_to(REPO)}: {target}")
    assert not broken, "links that do not resolve inside the repository:\n" + "\n".join(broken)


def test_nothing_points_outside_the_checkout() -> None:
    outside = [
        str(p.relative_to(REPO))
        for p in [*_markdown_files(), *REPO.joinpath("src").rglob("*.py")]
        if "../shared" in p.read_text(encoding="utf-8")
    ]
    assert not outside, outside
