"""Membership with real node processes on 127.0.0.1: join, failure detection, restart, remove/allow,
authentication, and the refusal of writes by a lone restarted node."""

from __future__ import annotations

import http.client
import json
import signal
import time
import urllib.error
import urllib.request

import pymysql
import pytest

from marmot.testing import SECRET, NodeProcess, admin_call, join_keys, make_node, member_states
from tests.support import connect, wait_for


@pytest.fixture
def cluster(tmp_path):
    nodes: list[NodeProcess] = []

    def start(node_id: int, seed: NodeProcess | None, secret: str = SECRET, name: str = "") -> NodeProcess:
        n = make_node(
            tmp_path / (name or f"n{node_id}"),
            node_id=node_id,
            cluster_extra=join_keys(seed, secret),
            unix_socket=False,
        )
        nodes.append(n.start())
        return n

    yield start, nodes
    for n in nodes:
        n.stop(signal.SIGKILL if n.proc and n.proc.poll() is None else signal.SIGTERM)


def test_join_failure_detection_restart_remove_allow(cluster):
    start, nodes = cluster
    n1 = start(1, None)
    n2 = start(2, n1)
    n3 = start(3, n1)
    everyone_alive = {1: "ALIVE", 2: "ALIVE", 3: "ALIVE"}
    for n in (n1, n2, n3):
        wait_for(lambda n=n: member_states(n) == everyone_alive)
    status, health = admin_call(n2, "/admin/cluster/health")
    assert status == 200 and health["has_quorum"] and health["total"] == 3

    # SIGKILL node 3: every survivor sees it SUSPECT, then DEAD, within the configured timeouts
    n3.stop(signal.SIGKILL)
    killed = time.monotonic()
    for n in (n1, n2):
        wait_for(lambda n=n: member_states(n).get(3) in ("SUSPECT", "DEAD"), timeout=5)
    for n in (n1, n2):
        wait_for(lambda n=n: member_states(n).get(3) == "DEAD", timeout=5)
    assert time.monotonic() - killed < 0.6 + 1.2 + 3.0  # suspect + dead timeouts + probe/gossip slack

    # restarted, it is ALIVE again everywhere
    n3.start()
    for n in (n1, n2, n3):
        wait_for(lambda n=n: member_states(n) == everyone_alive)

    # remove: excluded everywhere and cannot rejoin by itself; allow: it may rejoin after a restart
    status, _ = admin_call(n1, "/admin/cluster/remove/3", "POST")
    assert status == 200
    for n in (n1, n2):
        wait_for(lambda n=n: member_states(n).get(3) == "REMOVED")
    n3.stop()
    with pytest.raises(RuntimeError) as ei:  # refused by the cluster: the node says so and exits
        n3.start()
    assert "removed" in str(ei.value).lower()
    assert member_states(n1).get(3) == "REMOVED"
    status, _ = admin_call(n1, "/admin/cluster/allow/3", "POST")
    assert status == 200
    n3.start()
    for n in (n1, n2):
        wait_for(lambda n=n: member_states(n).get(3) == "ALIVE")


def test_wrong_secret_refused_and_admin_auth(cluster):
    start, nodes = cluster
    n1 = start(1, None)
    intruder = start(4, n1, secret="not-the-secret")
    time.sleep(1.0)
    assert 4 not in member_states(n1)
    assert set(member_states(intruder, secret="not-the-secret")) == {4}
    wait_for(lambda: "invalid cluster secret" in n1.log() and "invalid cluster secret" in intruder.log())
    status, body = admin_call(n1, "/admin/cluster/members", secret="wrong")
    assert status == 401 and "error" in body
    status, _ = admin_call(n1, "/admin/cluster/remove/4", "POST", secret="")
    assert status == 401


def test_lone_restarted_node_refuses_writes(cluster):
    start, nodes = cluster
    n1 = start(1, None)
    n2 = start(2, n1)
    n3 = start(3, n1)
    for n in (n1, n2, n3):
        wait_for(lambda n=n: len([s for s in member_states(n).values() if s == "ALIVE"]) == 3)
    c = connect(n1)
    c.cursor().execute("CREATE TABLE lone (id INT PRIMARY KEY)")
    c.close()
    for n in (n1, n2, n3):
        n.stop()
    n1.start()  # alone: it remembers a 3-node membership and must not act as a cluster of one
    c = connect(n1)
    cur = c.cursor()
    with pytest.raises(pymysql.err.MySQLError) as ei:
        cur.execute("INSERT INTO lone VALUES (1)")
    assert ei.value.args[0] == 1105 and "quorum" in ei.value.args[1]
    cur.execute("SELECT COUNT(*) FROM lone")  # reads still work
    assert cur.fetchone() == (0,)
    status, health = admin_call(n1, "/admin/cluster/health")
    assert status == 503 and not health["has_quorum"]
    n2.start()  # a majority again: writes are accepted
    wait_for(lambda: member_states(n1).get(2) == "ALIVE")
    cur.execute("INSERT INTO lone VALUES (1)")
    c.close()


def test_decommission_status_cancel_and_databases(cluster):
    start, nodes = cluster
    n1 = start(1, None)
    n2 = start(2, n1)
    wait_for(lambda: member_states(n1) == {1: "ALIVE", 2: "ALIVE"})
    status, body = admin_call(n1, "/admin/cluster/decommission/2", "POST")  # forwarded to node 2 over RPC
    assert status == 200 and body["phase"] == "draining"
    wait_for(lambda: member_states(n1).get(2) == "LEAVING")
    # nothing in flight: the drain ends at once (cancelling one that waits: tests/cluster/test_operations.py)
    wait_for(lambda: admin_call(n1, "/admin/cluster/decommission/2/status")[1].get("phase") == "done")
    assert n2.proc is not None and n2.proc.wait(10) == 0
    status, body = admin_call(n1, "/admin/cluster/decommission/2/cancel", "POST")
    assert status == 409 and "already completed" in body["error"]
    status, body = admin_call(n1, "/admin/databases")
    assert status == 200 and "marmot" in [d["name"] for d in body["databases"]]


def test_metrics_on_the_cluster_port(cluster):
    from prometheus_client.parser import text_string_to_metric_families

    start, nodes = cluster
    n1 = start(1, None)
    start(2, n1)
    wait_for(lambda: member_states(n1) == {1: "ALIVE", 2: "ALIVE"})
    c = connect(n1, autocommit=False)
    c.cursor().execute("SELECT 1")
    with pytest.raises(pymysql.err.MySQLError):
        c.cursor().execute("SELEC 1")
    c.close()
    time.sleep(0.5)
    with urllib.request.urlopen(f"http://127.0.0.1:{n1.grpc_port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }

    def value(name, **labels):
        return samples[(name, tuple(sorted({"node_id": "1", **labels}.items())))]

    assert value("marmot_cluster_members", state="ALIVE") == 2
    assert value("marmot_cluster_quorum_available") == 1
    assert value("marmot_gossip_rounds_total") > 0
    assert value("marmot_queries_total", type="select") >= 1
    assert value("marmot_query_errors_total", code="1064") == 1
    assert value("marmot_mysql_connections_accepted_total") >= 1


def test_cluster_port_over_tls(tmp_path):
    import ssl

    from tests.integration.test_server_features import _self_signed

    cert, key = _self_signed(tmp_path)
    tls = f'tls_cert_file = "{cert}"\ntls_key_file = "{key}"\ntls_ca_file = "{cert}"\n'
    n1 = make_node(tmp_path / "t1", node_id=1, unix_socket=False, cluster_extra=join_keys(None) + tls).start()
    n2 = make_node(tmp_path / "t2", node_id=2, unix_socket=False, cluster_extra=join_keys(n1) + tls).start()
    try:
        ctx = ssl.create_default_context(cafile=cert)
        ctx.check_hostname = False

        def tls_states() -> dict[int, str]:
            req = urllib.request.Request(
                f"https://127.0.0.1:{n1.grpc_port}/admin/cluster/members", headers={"X-Marmot-Secret": SECRET}
            )
            with urllib.request.urlopen(req, timeout=5, context=ctx) as resp:
                return {m["node_id"]: m["state"] for m in json.loads(resp.read())["members"]}

        wait_for(lambda: tls_states() == {1: "ALIVE", 2: "ALIVE"})
        with pytest.raises((urllib.error.URLError, http.client.HTTPException, ConnectionError)):
            # plain HTTP is not served on a TLS port
            urllib.request.urlopen(f"http://127.0.0.1:{n1.grpc_port}/metrics", timeout=2).read()
    finally:
        n2.stop()
        n1.stop()


def test_duplicate_node_id_refused(cluster):
    start, nodes = cluster
    n1 = start(1, None)
    start(2, n1)
    wait_for(lambda: member_states(n1) == {1: "ALIVE", 2: "ALIVE"})
    with pytest.raises(RuntimeError) as ei:  # another node 2 at another address: refused, says why, exits
        start(2, n1, name="impostor")
    assert "node 2" in str(ei.value) and "refused" in str(ei.value)
    assert member_states(n1) == {1: "ALIVE", 2: "ALIVE"}
