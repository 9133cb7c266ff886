"""The replica's messages (``replica/messages.py``) and the engine's read-only classification
(``engine/read_only.py``): strict decoding (anything malformed is a ``MessageError``), and which
statements a replica refuses."""

from __future__ import annotations

import pytest

from marmot.engine.read_only import READ_ONLY_MESSAGE, read_only_error, writes
from marmot.engine.statement_router import command_of
from marmot.replica import messages as rm
from marmot.replica.follower import replicated
from marmot.replication.messages import MessageError
from marmot.sql import lexer


def test_heartbeat_and_cluster_nodes_round_trip() -> None:
    hb = rm.Heartbeat(
        "127.0.0.1:8091", "127.0.0.1:3310", 51, 2, "STREAMING", {"shop": rm.DatabasePosition(7, 1, 0.25)}
    )
    assert rm.Heartbeat.decode(hb.encode()) == hb
    nodes = rm.ClusterNodes(1, [rm.NodeInfo(1, "127.0.0.1:8081", "127.0.0.1:3307", "ALIVE")])
    assert rm.ClusterNodes.decode(nodes.encode()) == nodes


@pytest.mark.parametrize(
    "payload",
    [
        None,
        [],
        {"address": 1},
        {"address": "a", "mysql_address": "m", "node_id": True, "source": 1, "state": "S", "databases": {}},
        {"address": "a", "mysql_address": "m", "node_id": 1, "source": 1, "state": "S", "databases": []},
        {
            "address": "a",
            "mysql_address": "m",
            "node_id": 1,
            "source": 1,
            "state": "S",
            "databases": {"d": {"position": 1, "behind_txns": 0, "lag_seconds": "1"}},
        },
        {
            "pv": 99,
            "address": "a",
            "mysql_address": "m",
            "node_id": 1,
            "source": 1,
            "state": "S",
            "databases": {},
        },
    ],
)
def test_malformed_heartbeats_are_refused(payload: object) -> None:
    with pytest.raises(MessageError):
        rm.Heartbeat.decode(payload)


def test_malformed_or_refused_cluster_nodes() -> None:
    for payload in ({"error": "no"}, {"node_id": 1}, {"node_id": 1, "nodes": [{"node_id": "x"}]}):
        with pytest.raises(MessageError):
            rm.ClusterNodes.decode(payload)


@pytest.mark.parametrize(
    ("sql", "refused"),
    [
        ("SELECT 1", False),
        ("SHOW TABLES", False),
        ("BEGIN", False),
        ("SET @a = 1", False),
        ("USE shop", False),
        ("INSERT INTO t VALUES (1)", True),
        ("update t set a = 1", True),
        ("DELETE FROM t", True),
        ("REPLACE INTO t VALUES (1)", True),
        ("CREATE TABLE t (id INT)", True),
        ("ALTER TABLE t ADD COLUMN b INT", True),
        ("DROP TABLE t", True),
        ("TRUNCATE t", True),
        ("RENAME TABLE t TO u", True),
        ("CREATE DATABASE d", True),
        ("DROP SCHEMA d", True),
        ("LOAD DATA LOCAL INFILE 'x' INTO TABLE t", True),
    ],
)
def test_which_statements_a_replica_refuses(sql: str, refused: bool) -> None:
    norm = lexer.normalize(sql)
    for transpilation in (True, False):
        assert writes(command_of(sql, norm, transpilation).value, norm) is refused, (sql, transpilation)


def test_the_read_only_error_is_mysqls() -> None:
    err = read_only_error()
    assert (err.code, err.sqlstate, err.message) == (1290, "HY000", READ_ONLY_MESSAGE)
    assert READ_ONLY_MESSAGE.endswith("--read-only option so it cannot execute this statement")


def test_glob_filter() -> None:
    assert replicated((), "anything") and not replicated((), "__marmot_system")
    assert replicated(("shop_*",), "shop_eu") and not replicated(("shop_*",), "billing")
    assert replicated(("app?", "[xy]*"), "app1") and replicated(("app?", "[xy]*"), "yes")
    assert not replicated(("*",), "__marmot_system")
