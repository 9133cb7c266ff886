"""Fixtures shared by the replication unit tests (apply, digests, repair)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.test_replication_apply import Replica


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[tuple[Replica, Replica]]:
    """Two empty replicas (one SQLite file each, replication tables in place)."""
    a, b = Replica(tmp_path / "a.db"), Replica(tmp_path / "b.db")
    yield a, b
    a.conn.close()
    b.conn.close()


@pytest.fixture
def pair(replicas: tuple[Replica, Replica]) -> tuple[Replica, Replica]:
    """The same two replicas, under the name the digest and repair tests use."""
    return replicas
