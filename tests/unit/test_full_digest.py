"""Full digests (``replication/catchup/full_digest.py``, ``marmot verify --full``): recomputed from what the tables
hold, so a row changed behind replication's back — same key, same version, other content — is found, by
table and key, where the kept digests see nothing. Real database files, the real ``NodeControl`` and
admin app on 127.0.0.1, the real ``marmot verify`` client."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import apsw
import pytest

from marmot.admin import commands as client
from marmot.replication.catchup import full_digest as fd
from marmot.storage import replication_tables as rt
from marmot.storage.rowkey import encode_row_key, load_table_schema
from tests.support import run_async
from tests.unit.test_admin_digest import apply, make_node, three  # noqa: F401 - ``three`` is a fixture
from tests.unit.test_admin_http import SECRET, auth, call
from tests.unit.test_replication_apply import W, item, key, ts, urow


def tamper(dbs: Any, sql: str, *args: object) -> None:
    """Change a node's file the way another program would: no version, no digest bookkeeping."""
    conn = apsw.Connection(str(dbs.path("marmot")))
    try:
        conn.execute(sql, args)
        assert conn.changes() == 1
    finally:
        conn.close()


@pytest.fixture
def node(tmp_path: Path) -> Any:
    dbs, control = make_node(tmp_path)
    yield dbs, control
    dbs.close()


def test_full_route_sees_content_the_kept_digest_does_not(node: Any) -> None:
    dbs, control = node
    apply(dbs, "marmot", item(1, ts(10), [urow("kv", 1, v="a"), urow("kv", 2, v="b")]))
    kept = call(control, "GET", "/admin/databases/marmot/digest", headers=auth()).json
    full = call(control, "GET", "/admin/databases/marmot/digest?full=1", headers=auth()).json
    assert full["full"] is True and full["schema_version"] == kept["schema_version"] and full["skipped"] == {}
    assert full["tables"]["kv"]["rows"] == 2
    conn = dbs.open("marmot")
    ts_kv = load_table_schema(conn, "kv")
    want = sum(
        fd.content_hash(key("kv", i), (W + 10, 0, 1, 0), (i, v, None)) for i, v in ((1, "a"), (2, "b"))
    )
    conn.close()
    assert full["tables"]["kv"]["digest"] == f"{want % (1 << 64):016x}"
    assert ts_kv.rowid_key

    tamper(dbs, "UPDATE kv SET v = 'changed' WHERE id = 2")
    assert call(control, "GET", "/admin/databases/marmot/digest", headers=auth()).json == kept
    after = call(control, "GET", "/admin/databases/marmot/digest?full=1", headers=auth()).json
    assert (
        after["tables"]["kv"]["rows"] == 2
        and after["tables"]["kv"]["digest"] != full["tables"]["kv"]["digest"]
    )

    # the storage class counts: 1, 1.0, '1' and x'31' are different contents
    k = key("kv", 1)
    assert len({fd.content_hash(k, None, (v,)) for v in (1, 1.0, "1", b"1", None)}) == 5
    assert fd.content_hash(k, (1, 0, 1, 0), (1,)) != fd.content_hash(k, (1, 0, 1, 1), (1,))  # tombstoned

    assert call(control, "GET", "/admin/databases/nosuch/digest?full=1", headers=auth()).status == 404
    assert call(control, "GET", "/admin/databases/marmot/digest?full=maybe", headers=auth()).status == 400


def test_full_keys_pages_in_key_order_over_composite_nocase_keys(node: Any) -> None:
    dbs, control = node
    conn = dbs.open("marmot")
    rt.ensure_tables(conn)
    conn.execute(
        "CREATE TABLE people (last TEXT COLLATE NOCASE, first TEXT, n INT, PRIMARY KEY (last, first)) "
        "WITHOUT ROWID"
    )
    names = [(f"Name{i % 7}", f"f{i:04d}", i) for i in range(2300)]
    with conn:
        conn.executemany("INSERT INTO people VALUES (?, ?, ?)", names)
    ts_people = load_table_schema(conn, "people")
    conn.close()
    seen: list[list[Any]] = []
    after = ""
    pages = 0
    while True:
        q = "limit=1000&full=1" + (f"&after={after}" if after else "")
        r = call(control, "GET", f"/admin/databases/marmot/digest/people/keys?{q}", headers=auth())
        assert r.status == 200, r.json
        seen += r.json["keys"]
        pages += 1
        after = r.json["next"]
        if not after:
            break
    assert pages == 3 and len(seen) == 2300
    assert len({k for k, _, _ in seen}) == 2300  # every row once
    want = {encode_row_key("people", [last.lower(), first]).hex() for last, first, _ in names}
    assert {k for k, _, _ in seen} == want  # keys as capture builds them (NOCASE folded)
    assert all(v is None for _, v, _ in seen)  # written outside replication: no versions
    total = sum(int(h, 16) for _, _, h in seen) % (1 << 64)
    full = call(control, "GET", "/admin/databases/marmot/digest?full=1", headers=auth()).json
    assert full["tables"]["people"] == {"digest": f"{total:016x}", "rows": 2300}
    assert ts_people.without_rowid

    bad = encode_row_key("kv", [1]).hex()
    for query in (f"full=1&after={bad}", "full=1&after=01ff"):
        r = call(control, "GET", f"/admin/databases/marmot/digest/people/keys?{query}", headers=auth())
        assert r.status == 400 and "error" in r.json, (query, r.json)
    r = call(control, "GET", "/admin/databases/marmot/digest/nosuch/keys?full=1", headers=auth())
    assert r.status == 200 and r.json["keys"] == []


def test_virtual_tables_are_listed_as_not_compared(node: Any) -> None:
    dbs, control = node
    conn = dbs.open("marmot")
    conn.execute("CREATE VIRTUAL TABLE docs USING fts5(body)")
    conn.execute("INSERT INTO docs VALUES ('hello')")
    conn.close()
    full = call(control, "GET", "/admin/databases/marmot/digest?full=1", headers=auth()).json
    assert "docs" not in full["tables"] and not any(t.startswith("docs_") for t in full["tables"])
    assert "virtual table" in full["skipped"]["docs"]
    assert "storage table" in full["skipped"]["docs_content"]


def test_verify_full_names_the_table_and_key(three: Any, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    dbs, addresses = three
    common = [item(1, ts(10), [urow("kv", i, v=f"v{i}") for i in range(1, 30)])]
    for d in dbs:
        apply(d, "marmot", *common)
    tamper(dbs[1], "UPDATE kv SET v = 'edited by hand' WHERE id = 17")
    argv = ["--address", ",".join(addresses), "--secret", SECRET, "--settle", "0"]

    # the kept digests cover keys and versions: this change is invisible to them
    assert client.main_verify(argv) == 0, capsys.readouterr().out
    capsys.readouterr()

    assert client.main_verify([*argv, "--full"]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert any(ln.split()[:2] == ["marmot", "kv"] and ln.rstrip().endswith("DIFFER") for ln in lines), out
    assert "marmot.kv: 1 key(s) differ" in out
    row = next(ln for ln in lines if ln.split()[:1] == ["(17)"])
    assert row.count("2026-01-01T00:00:00.000000010Z/0@1") == 3  # same version everywhere ...
    cells = row.split(" row ")[1:]
    assert len(cells) == 3 and cells[0][:8] == cells[2][:8] != cells[1][:8]  # ... node 2's content differs

    report = client.verify(addresses, SECRET, settle=0, full=True)
    assert not report.ok and report.full
    assert [k["key"] for k in report.keys["marmot.kv"]] == [key("kv", 17).hex()]
    entry = report.keys["marmot.kv"][0]
    assert entry["versions"] == [[W + 10, 0, 1]] * 3
    assert entry["contents"][0] == entry["contents"][2] != entry["contents"][1]

    # a row deleted by hand on node 3: missing there
    tamper(dbs[2], "DELETE FROM kv WHERE id = 3")
    assert client.main_verify([*argv, "--full", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["full"] is True and doc["differing_keys_total"] == {"marmot.kv": 2}
    k3 = next(k for k in doc["differing_keys"]["marmot.kv"] if k["key"] == key("kv", 3).hex())
    assert k3["contents"][2] is None and k3["versions"][2] is None and k3["contents"][0] == k3["contents"][1]


def test_a_scan_nobody_waits_for_stops(node: Any) -> None:
    """A cancelled request (client gone, node stopping) sets the scan's stop event, and a scan stops at
    its next page; scans run one at a time in their own thread, not in the shared pool."""
    import asyncio
    import threading

    dbs, _control = node
    apply(dbs, "marmot", item(1, ts(10), [urow("kv", i, v="a") for i in range(1, 6)]))
    conn = dbs.open("marmot")
    ts_kv = load_table_schema(conn, "kv")
    stop = threading.Event()
    pages = fd.content_pages(conn, ts_kv, page=2, stop=stop)
    assert len(next(pages)) == 2
    stop.set()
    with pytest.raises(fd.ScanStopped):
        next(pages)
    conn.close()

    seen: dict[str, Any] = {}
    started = threading.Event()

    def scan(*, stop: threading.Event) -> None:
        seen["thread"] = threading.current_thread().name
        started.set()
        seen["stopped"] = stop.wait(10)

    async def cancel_it() -> None:
        task = asyncio.ensure_future(fd.off_loop(scan))
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run_async(cancel_it())
    deadline = time.monotonic() + 10
    while "stopped" not in seen and time.monotonic() < deadline:
        time.sleep(0.05)
    assert seen["stopped"] is True and seen["thread"].startswith("marmot-full-digest")
