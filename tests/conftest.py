"""Shared fixtures: a real node process per test module, and client connections to it."""

from __future__ import annotations

import pymysql
import pytest

from tests.nodeproc import NodeProcess, make_node


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> NodeProcess:
    n = make_node(tmp_path_factory.mktemp("node")).start()
    yield n
    n.stop()


@pytest.fixture
def conn(node: NodeProcess):
    c = pymysql.connect(host="127.0.0.1", port=node.mysql_port, user="root", password="", database="marmot",
                        autocommit=True)
    yield c
    c.close()
