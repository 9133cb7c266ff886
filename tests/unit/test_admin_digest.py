"""Convergence checks at the edges of a node: the digest and replication-lag routes (``admin/http.py``)
answered by the real ``NodeControl`` over real database files, the ``marmot_table_*`` / lag metrics,
and ``marmot verify`` (``admin/commands.py``) against real HTTP servers on 127.0.0.1.

Why: the digests are only useful if what a node serves is exactly what its files hold, and if
``marmot verify`` tells matching nodes from diverging ones (exit code, tables and keys named). The
cluster test (tests/cluster/test_digest_verify.py) runs the same against real node processes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import apsw
import pytest
from prometheus_client.parser import text_string_to_metric_families

from marmot.admin import commands as client
from marmot.admin.control import NodeControl
from marmot.admin.http import make_app
from marmot.admin.metrics import Metrics
from marmot.replication.apply.applier import ApplyItem, apply_items
from marmot.storage import replication_tables as rt
from marmot.storage.databases import DatabaseManager
from marmot.storage.rowkey import SchemaCache
from tests.support import run_async
from tests.unit.test_admin_http import SECRET, LiveServer, auth, call
from tests.unit.test_replication_apply import W, item, key, ts, urow


def apply(dbs: DatabaseManager, db: str, *items: ApplyItem) -> None:
    conn = dbs.open(db)
    try:
        rt.ensure_tables(conn)
        conn.execute("BEGIN IMMEDIATE")
        out = apply_items(conn, SchemaCache(), list(items), lambda: None)
        conn.execute("COMMIT")
        assert not any(isinstance(o, Exception) for o in out), out
    finally:
        conn.close()


def make_node(tmp: Path, name: str = "n") -> tuple[DatabaseManager, NodeControl]:
    dbs = DatabaseManager(tmp / name)
    conn = dbs.open("marmot")
    conn.execute("CREATE TABLE kv(id INTEGER PRIMARY KEY, v TEXT, n INT)")
    conn.close()
    control = NodeControl(1, None, dbs, grace_s=0, request_stop=lambda: None)  # type: ignore[arg-type]
    return dbs, control


class FakeLogPull:
    def __init__(self) -> None:
        self.lag: dict[tuple[int, str], tuple[int, float]] = {}
        self.stats = {"rounds": 3, "pulled": 10, "applied": 7, "failed": 0, "databases_created": 0}


class FakeReplication:
    def __init__(self) -> None:
        self.log_pull = FakeLogPull()
        self.anti_entropy_interval = 30.0


@pytest.fixture
def node(tmp_path: Path) -> Any:
    dbs, control = make_node(tmp_path)
    yield dbs, control
    dbs.close()


# -- routes ------------------------------------------------------------------------------------------------


def test_digest_route_serves_what_the_file_holds(node: Any) -> None:
    dbs, control = node
    apply(dbs, "marmot", item(1, ts(10), [urow("kv", 1, v="a"), urow("kv", 2, v="b")]))
    r = call(control, "GET", "/admin/databases/marmot/digest", headers=auth())
    assert r.status == 200
    body = r.json
    want = rt.row_hash(key("kv", 1), W + 10, 0, 1) + rt.row_hash(key("kv", 2), W + 10, 0, 1)
    assert body == {
        "database": "marmot",
        "schema_version": 0,
        "tables": {"kv": {"digest": f"{want % (1 << 64):016x}", "rows": 2}},
    }
    assert call(control, "GET", "/admin/databases/nosuch/digest", headers=auth()).status == 404
    assert call(control, "GET", "/admin/databases/marmot/digest").status == 401  # same auth as the rest


def test_keys_route_pages_and_validates(node: Any) -> None:
    dbs, control = node
    apply(dbs, "marmot", item(1, ts(10), [urow("kv", i, v="a") for i in range(1, 4)]))
    r = call(control, "GET", "/admin/databases/marmot/digest/kv/keys?limit=2", headers=auth())
    assert r.status == 200
    page = r.json
    assert page["keys"] == [[key("kv", 1).hex(), [W + 10, 0, 1]], [key("kv", 2).hex(), [W + 10, 0, 1]]]
    assert page["next"] == key("kv", 2).hex()
    r = call(
        control, "GET", f"/admin/databases/marmot/digest/kv/keys?limit=2&after={page['next']}", headers=auth()
    )
    assert r.json["keys"] == [[key("kv", 3).hex(), [W + 10, 0, 1]]] and r.json["next"] is None
    assert (
        call(control, "GET", "/admin/databases/marmot/digest/nosuch/keys", headers=auth()).json["keys"] == []
    )
    for bad in ("limit=0", "limit=9999", "limit=x", "after=zz"):
        r = call(control, "GET", f"/admin/databases/marmot/digest/kv/keys?{bad}", headers=auth())
        assert r.status == 400, bad
        assert "error" in r.json
    assert call(control, "GET", "/admin/databases/nosuch/digest/kv/keys", headers=auth()).status == 404


def test_replication_route_and_lag_seconds(node: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _dbs, control = node
    assert call(control, "GET", "/admin/cluster/replication", headers=auth()).json == {
        "node_id": 1,
        "anti_entropy": {"enabled": False, "interval_seconds": None},
        "lag": [],
        "read_barriers": {},  # no replication layer: no barriers
    }
    repl = FakeReplication()
    control.replication = repl
    now = time.time()
    repl.log_pull.lag = {(2, "marmot"): (0, now - 5), (3, "marmot"): (4, now - 1)}
    body = call(control, "GET", "/admin/cluster/replication", headers=auth()).json
    assert body["anti_entropy"] == {
        "enabled": True,
        "interval_seconds": 30.0,
        "rounds": 3,
        "pulled": 10,
        "applied": 7,
        "failed": 0,
        "databases_created": 0,
    }
    lag = {e["peer"]: e for e in body["lag"]}
    assert lag[2]["behind_txns"] == 0 and 4.5 < lag[2]["lag_seconds"] < 10
    # never seen caught up with node 3: counted from this node's start
    assert lag[3]["behind_txns"] == 4 and lag[3]["lag_seconds"] >= lag[3]["last_round_unix"] - now
    control._started = now - 100
    # a later round found node 2 behind: the lag still counts from the round that found it caught up
    repl.log_pull.lag[(2, "marmot")] = (9, now)
    status = control.replication_status()
    lag = {e["peer"]: e for e in status["lag"]}
    assert lag[2]["behind_txns"] == 9 and lag[2]["lag_seconds"] >= 5
    assert lag[3]["lag_seconds"] >= 100


# -- metrics -----------------------------------------------------------------------------------------------


def samples(m: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(m.exposition().decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k != "node_id")))] = s.value
    return out


def test_metrics_follow_digests_and_lag(node: Any) -> None:
    dbs, control = node
    control.replication = repl = FakeReplication()
    repl.log_pull.lag = {(2, "marmot"): (3, time.time())}
    m = Metrics(1)
    apply(dbs, "marmot", item(1, ts(10), [urow("kv", 1, v="a")]))
    m.refresh_replication(control)
    first = control.table_digests()["marmot"]["kv"][0]
    s = samples(m)
    assert s[("marmot_table_rows", (("database", "marmot"), ("table", "kv")))] == 1
    assert (
        s[
            (
                "marmot_table_digest_info",
                (("database", "marmot"), ("digest", f"{first:016x}"), ("table", "kv")),
            )
        ]
        == 1
    )
    assert s[("marmot_replication_lag_transactions", (("database", "marmot"), ("peer", "2")))] == 3
    assert ("marmot_replication_lag_seconds", (("database", "marmot"), ("peer", "2"))) in s
    assert (
        s[("marmot_antientropy_rounds_total", ())] == 3 and s[("marmot_antientropy_applied_total", ())] == 7
    )
    # a write changes the digest: the old series goes, the new one is there; counters advance
    apply(dbs, "marmot", item(2, ts(20), [urow("kv", 2, v="b")]))
    repl.log_pull.stats["rounds"] = 5
    repl.log_pull.lag = {}
    m.refresh_replication(control)
    s = samples(m)
    infos = [k for k in s if k[0] == "marmot_table_digest_info"]
    assert len(infos) == 1 and ("digest", f"{first:016x}") not in infos[0][1]
    assert s[("marmot_table_rows", (("database", "marmot"), ("table", "kv")))] == 2
    assert not any(k[0].startswith("marmot_replication_lag") for k in s)
    assert s[("marmot_antientropy_rounds_total", ())] == 5
    # a dropped table's series disappear
    apply(dbs, "marmot", item(3, ts(30), ddl=['DROP TABLE "kv"']))
    m.refresh_replication(control)
    assert not any(k[0].startswith("marmot_table_") for k in samples(m))


def test_metrics_refresh_survives_a_failing_digest_read(node: Any) -> None:
    _dbs, control = node

    def boom() -> Any:
        raise apsw.BusyError("busy")

    control.table_digests = boom
    m = Metrics(1)
    m.refresh_replication(control)  # logged, not raised: the scrape still answers
    assert b"marmot_table_rows" in m.exposition()


# -- marmot verify -----------------------------------------------------------------------------------------


@pytest.fixture
def three(tmp_path: Path) -> Any:
    """Three nodes' admin APIs (real NodeControl, real files) on 127.0.0.1."""
    nodes = [make_node(tmp_path, f"n{i}") for i in (1, 2, 3)]
    with (
        LiveServer(make_app(nodes[0][1], secret=SECRET)) as a,
        LiveServer(make_app(nodes[1][1], secret=SECRET)) as b,
        LiveServer(make_app(nodes[2][1], secret=SECRET)) as c,
    ):
        yield [n[0] for n in nodes], [a.address, b.address, c.address]
    for dbs, _ in nodes:
        dbs.close()


def test_verify_matching_and_diverging_nodes(three: Any, capsys: pytest.CaptureFixture[str]) -> None:
    dbs, addresses = three
    common = [item(1, ts(10), [urow("kv", i, v="a") for i in range(1, 30)])]
    for d in dbs:
        apply(d, "marmot", *common)
    argv = ["--address", ",".join(addresses), "--secret", SECRET, "--settle", "0"]
    assert client.main_verify(argv) == 0
    out = capsys.readouterr().out
    assert (
        "MATCH" in out and "DIFFER" not in out and out.rstrip().endswith("1 table(s) on 3 node(s): all match")
    )

    # node 3 misses a delete and has a newer version of another row
    apply(dbs[0], "marmot", item(2, ts(20), [urow("kv", 7, v="x")]))  # (not on 2 and 3 either)
    apply(dbs[1], "marmot", item(2, ts(20), [urow("kv", 7, v="x")]))
    apply(dbs[2], "marmot", item(3, ts(30, node=3), [urow("kv", 5, v="newer")]))
    assert client.main_verify(argv) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert any(
        line.startswith("marmot") and "kv" in line and line.rstrip().endswith("DIFFER") for line in lines
    )
    assert "marmot.kv: 2 key(s) differ" in out
    assert "(5)" in out and "(7)" in out and "missing" not in out  # versions differ, no key is missing
    assert "@3" in out

    report = client.verify(addresses, SECRET, settle=0)
    assert not report.ok
    assert [k["key"] for k in report.keys["marmot.kv"]] == [key("kv", 5).hex(), key("kv", 7).hex()]
    k7 = report.keys["marmot.kv"][1]["versions"]
    assert k7[0] == k7[1] == [W + 20, 0, 1] and k7[2] == [W + 10, 0, 1]

    assert client.main_verify(argv + ["--json", "--max-keys", "1"]) == 1
    import json

    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False and doc["differing_keys_total"] == {"marmot.kv": 2}
    assert len(doc["differing_keys"]["marmot.kv"]) == 1


def test_verify_missing_row_and_database(three: Any, capsys: pytest.CaptureFixture[str]) -> None:
    dbs, addresses = three
    for d in dbs[:2]:
        apply(d, "marmot", item(1, ts(10), [urow("kv", 1, v="a")]))
    dbs[0].create("extra")
    argv = ["--address", ",".join(addresses), "--secret", SECRET, "--settle", "0"]
    assert client.main_verify(argv) == 1
    out = capsys.readouterr().out
    assert "missing" in out and "(1)" in out
    assert "has no database 'extra'" in out
    assert client.main_verify(argv + ["--database", "marmot"]) == 1  # still node 3's missing row
    assert client.main_verify(["--address", addresses[0], "--secret", "wrong"]) == 2
    assert "authentication failed" in capsys.readouterr().err


def test_verify_unreachable_node_fails(three: Any, capsys: pytest.CaptureFixture[str]) -> None:
    _dbs, addresses = three
    from tests.unit.test_admin_http import closed_port

    argv = [
        "--address",
        ",".join([*addresses, f"127.0.0.1:{closed_port()}"]),
        "--secret",
        SECRET,
        "--settle",
        "0",
        "--timeout",
        "2",
    ]
    assert client.main_verify(argv) == 1
    assert "node unreachable" in capsys.readouterr().out


def test_format_version_and_describe_key() -> None:
    assert client.format_version((W + 10, 2, 3)) == "2026-01-01T00:00:00.000000010Z/2@3"
    assert client.format_version(None) == "missing"
    assert client.describe_key(key("kv", 5).hex()) == "(5)"
    assert client.describe_key("zz") == "zz"


def test_digest_get_rpc(node: Any) -> None:
    """The RPC peers call (anti-entropy): the same document as the HTTP route, errors as ``{"error"}``."""

    from marmot.replication.catchup import digest

    dbs, control = node
    apply(dbs, "marmot", item(1, ts(10), [urow("kv", 1, v="a")]))
    handler = digest.make_rpc_handler(dbs)
    assert run_async(handler({"db": "marmot"}, None)) == control.digest("marmot")
    assert run_async(handler({"db": "nosuch"}, None)) == {"error": "unknown database nosuch"}
    assert "error" in run_async(handler({"db": 5}, None))
    assert "error" in run_async(handler("junk", None))
