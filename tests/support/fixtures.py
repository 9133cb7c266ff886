"""The shared pytest fixtures (registered by ``tests/conftest.py``): a real node process per test module,
and a client connection to it per test."""

from __future__ import annotations

from collections.abc import Iterator

import pymysql
import pytest

from marmot.testing.nodes import NodeProcess, make_node
from tests.support.sql import connect


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """One node (fresh data directory, free ports, a unix socket) shared by the tests of a module."""
    n = make_node(tmp_path_factory.mktemp("node")).start()
    yield n
    n.stop()


@pytest.fixture
def conn(node: NodeProcess) -> Iterator[pymysql.connections.Connection]:
    """A connection to the module's node, database ``marmot``, autocommit on."""
    c = connect(node)
    yield c
    c.close()
