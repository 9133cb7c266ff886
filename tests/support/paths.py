"""Where the repository is: scripts, examples and config.toml that tests run or read live there."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
