"""Shared fixtures (``tests/support/fixtures.py``) and the markers every test gets from its directory.

tests/unit → ``unit``, tests/cluster → ``cluster``, tests/integration → ``integration``, tests/chaos →
``chaos``; the tests in ``SLOW`` (a minute or more on a loaded 2-core machine) also get ``slow``. So
``pytest -m unit`` (``make test-unit``) or ``pytest -m "not slow"`` need no list to remember.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.support.fixtures"]

TESTS = Path(__file__).resolve().parent
BY_DIRECTORY = {"unit": "unit", "cluster": "cluster", "integration": "integration", "chaos": "chaos"}
# test files (relative to tests/) whose tests are the long ones
SLOW: set[str] = set()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        rel = Path(item.path).resolve().relative_to(TESTS)
        marker = BY_DIRECTORY.get(rel.parts[0])
        if marker:
            item.add_marker(marker)
        if rel.as_posix() in SLOW or item.nodeid in SLOW:
            item.add_marker(pytest.mark.slow)
