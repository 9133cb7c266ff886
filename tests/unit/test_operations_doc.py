"""docs/operations.md promises only commands that exist: every ``marmot <command>`` line of its shell
examples names a command of the CLI, and every ``--flag`` on it is one that command's ``--help`` lists."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from marmot import cli

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
ADMIN = ("members", "health", "verify")


def command_lines() -> list[str]:
    """The ``marmot ...`` invocations inside the doc's ```bash blocks (one per line)."""
    blocks = re.findall(r"```bash\n(.*?)```", DOC.read_text(), re.S)
    lines = []
    for block in blocks:
        for line in block.splitlines():
            for part in re.split(r"\|\||&&|;|\$\(|\bdo\b|\bthen\b|\buntil\b", line):
                part = part.strip()
                if part.startswith("marmot "):
                    lines.append(part.split("#")[0].strip())
    return lines


def help_of(argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as done:
        cli.main([*argv, "--help"])
    assert done.value.code == 0
    return out.getvalue()


def test_the_doc_has_examples_of_every_operator_command() -> None:
    used = {line.split()[1] for line in command_lines() if not line.split()[1].startswith("-")}
    assert set(cli.OPERATOR_COMMANDS) <= used | {"databases"}, set(cli.OPERATOR_COMMANDS) - used
    assert {"status", "backup", "restore", "remove", "allow", "decommission", "verify", "health"} <= used


@pytest.mark.parametrize("line", command_lines())
def test_every_documented_command_and_flag_exists(line: str) -> None:
    words = line.split()
    sub = words[1]
    if sub.startswith("-"):  # starting a node: marmot --config PATH -daemon -pid-file PATH
        text = help_of([])
    else:
        assert sub in cli.OPERATOR_COMMANDS or sub in ADMIN, f"no command {sub!r}: {line}"
        text = help_of([sub])
    for flag in (w for w in words[2:] if w.startswith("-")):
        name = flag.split("=")[0]
        assert name in text or "-" + name in text, f"{name} is not an option of {line!r}"
