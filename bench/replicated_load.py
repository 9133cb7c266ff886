"""Replicated-write load generator: YCSB-style transactions spread over every node of a cluster.

What it measures: the write path of a multi-node cluster as a client sees it. Client processes send
explicit transactions (``BEGIN``, ``--batch-size`` statements, ``COMMIT``) to the nodes in turn, so every
node acts as a write coordinator; the tool reports committed operations and transactions per second,
latency percentiles per statement type, for ``COMMIT`` and per whole transaction, retries, and errors
left after retries by category. At the end it checks that all nodes converged to the same table: row
count and a content checksum per node (exit status 1 when they differ or when errors remain).

Why this shape: it follows upstream Marmot v2's ``pika`` benchmark (go-ycsb-like), whose published
figures (3 nodes on one host, QUORUM writes, 10 operations per transaction) are the comparison point
for ours. As there: a ``benchmarks`` table with a VARCHAR(64) key ``rec_%012d`` and ten TEXT fields of
100 random alphanumeric characters; a ``load`` phase then a ``run`` phase; the workload mixes ``mixed``
(read 20 / update 30 / insert 35 / delete 5 / upsert 10), ``write-only``, ``read-only``, ``update-heavy``;
16 clients; transactions retried on MySQL errors 1213 / 1205 with exponential backoff; errors counted
as conflict (1213), constraint (1062), timeout (1205), connection, other; a ``verify`` step comparing
``COUNT(*)`` and row contents across nodes (pika samples rows; this hashes every row). Statements are
COM_QUERY text with client-side parameter interpolation, like go-sql-driver/mysql with
``interpolateParams=true``.

By default it starts its own cluster (``marmot.testing.LocalCluster``: real node processes on 127.0.0.1,
free ports, a temporary data directory, every process stopped by PID at the end); ``--hosts`` drives an
existing one. It prints figures; it never asserts a speed.

    .venv/bin/python bench/replicated_load.py --nodes 1 --records 2000 --duration 10
    .venv/bin/python bench/replicated_load.py --hosts 127.0.0.1:3307,127.0.0.1:3308 --skip-load --verify-only
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import random
import re
import signal
import string
import sys
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from workers import run_workers  # noqa: E402  (bench/ is not a package)

# the cluster this tool starts: its own secret, and gossip timers looser than the tests' (a node busy
# with the load must not be suspected); no debug logging
CLUSTER_SECRET = "marmot-bench-secret"
CLUSTER_TIMERS = "gossip_interval_ms = 100\nsuspect_timeout_ms = 1500\ndead_timeout_ms = 3000\n"
ALPHABET = string.ascii_letters + string.digits
VALUE_LEN = 100
NFIELDS = 10
FIELDS = tuple(f"field{i}" for i in range(NFIELDS))
KEY_FORMAT = "rec_%012d"
KEY_RE = re.compile(r"^rec_(\d+)$")
OPS = ("read", "update", "insert", "delete", "upsert")
WORKLOADS: dict[str, tuple[int, int, int, int, int]] = {  # read, update, insert, delete, upsert (%)
    "mixed": (20, 30, 35, 5, 10),
    "write-only": (0, 35, 35, 10, 20),
    "read-only": (100, 0, 0, 0, 0),
    "update-heavy": (10, 60, 10, 5, 15),
}
CATEGORIES = ("conflict", "constraint", "timeout", "connection", "other")
CONNECTION_CODES = frozenset({1040, 1053, 2002, 2003, 2005, 2006, 2013, 2055})
MAX_MESSAGES = 5
MAX_FAILED_TXNS = 50  # failed transactions whose keys are kept (JSON), to compare with verify's diff
PERCENTILES = (("p50", 0.50), ("p90", 0.90), ("p95", 0.95), ("p99", 0.99))
UPSERT_SQL = {"insert-or-replace": "INSERT OR REPLACE INTO", "replace": "REPLACE INTO"}


# -- driver -----------------------------------------------------------------------------------------------


class Driver:
    """mysqlclient (``MySQLdb``, C: less client CPU) when importable, else PyMySQL."""

    def __init__(self, preferred: str = "auto") -> None:
        module: Any = None
        if preferred in ("auto", "mysqlclient"):
            try:
                import MySQLdb

                module, self.name = MySQLdb, "mysqlclient"
            except ImportError:
                if preferred == "mysqlclient":
                    raise
        if module is None:
            import pymysql

            module, self.name = pymysql, "pymysql"
        self.module = module
        self.error: type[Exception] = module.MySQLError

    def connect(self, endpoint: tuple[str, int], user: str, password: str, database: str | None) -> Any:
        host, port = endpoint
        if self.name == "mysqlclient":
            kw: dict[str, Any] = {
                "host": host,
                "port": port,
                "user": user,
                "passwd": password,
                "autocommit": True,
                "connect_timeout": 10,
                "charset": "utf8mb4",
            }
            if database:
                kw["db"] = database
            return self.module.connect(**kw)
        return self.module.connect(
            host=host,
            port=port,
            user=user,
            password=password,
            database=database,
            autocommit=True,
            connect_timeout=10,
            charset="utf8mb4",
        )


def error_code(err: BaseException) -> int:
    args = getattr(err, "args", ())
    return args[0] if args and isinstance(args[0], int) else 0


def error_text(err: BaseException) -> str:
    code = error_code(err)
    args = getattr(err, "args", ())
    msg = str(args[1]) if code and len(args) > 1 else (str(err) or type(err).__name__)
    return f"{code}: {msg}" if code else f"{type(err).__name__}: {msg}"


def is_retryable(err: BaseException) -> bool:
    text = error_text(err).lower()
    return error_code(err) in (1213, 1205) or "conflict" in text or "retry" in text


def classify(err: BaseException, driver_error: type[Exception]) -> str:
    code = error_code(err)
    text = error_text(err).lower()
    if not isinstance(err, driver_error):
        return "connection" if isinstance(err, OSError | EOFError) else "other"
    if code == 1213 or "conflict" in text:
        return "conflict"
    if code == 1062:
        return "constraint"
    if code == 1205:
        return "timeout"
    if code in CONNECTION_CODES or "lost connection" in text or "gone away" in text:
        return "connection"
    return "other"


def parse_hosts(spec: str) -> list[tuple[str, int]]:
    out = []
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not port.isdigit():
            raise argparse.ArgumentTypeError(f"expected host:port, got {item!r}")
        out.append((host or "127.0.0.1", int(port)))
    if not out:
        raise argparse.ArgumentTypeError("no host given")
    return out


# -- SQL --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Statements:
    table: str
    upsert: str = "insert-or-replace"

    @property
    def read(self) -> str:
        return f"SELECT {','.join(FIELDS)} FROM {self.table} WHERE id=%s"

    @property
    def update(self) -> str:
        return f"UPDATE {self.table} SET field0=%s WHERE id=%s"

    @property
    def insert(self) -> str:
        return f"INSERT INTO {self.table} (id, {', '.join(FIELDS)}) VALUES ({', '.join(['%s'] * 11)})"

    @property
    def delete(self) -> str:
        return f"DELETE FROM {self.table} WHERE id=%s"

    @property
    def upsert_sql(self) -> str:
        return f"{UPSERT_SQL[self.upsert]} {self.table} (id, {', '.join(FIELDS)}) VALUES ({', '.join(['%s'] * 11)})"

    @property
    def create(self) -> str:
        cols = ", ".join(f"{f} TEXT" for f in FIELDS)
        return f"CREATE TABLE IF NOT EXISTS {self.table} (id VARCHAR(64) PRIMARY KEY, {cols})"


# -- worker (one process per client) ----------------------------------------------------------------------


@dataclass
class WorkerConfig:
    client: int
    clients: int
    endpoints: list[tuple[str, int]]
    driver: str
    user: str
    password: str
    database: str
    stmts: Statements
    mode: str  # "load" or "run"
    mix: tuple[int, ...]  # read, update, insert, delete, upsert (%)
    batch: int
    retries: int
    records: int  # load: keys 1..records; run: non-insert keys uniform in 1..max_key
    max_key: int
    duration: float | None
    operations: int | None
    seed: int


def new_stats(nodes: int) -> dict[str, Any]:
    return {
        "ops": dict.fromkeys(OPS, 0),
        "lat": {op: array("q") for op in (*OPS, "commit")},
        "txn_lat": array("q"),
        "txns": 0,
        "txns_failed": 0,
        "ops_failed": 0,
        "retries": 0,
        "read_misses": 0,
        "retry_reasons": {},
        "failed_keys": [],
        "errors": dict.fromkeys(CATEGORIES, 0),
        "messages": {c: [] for c in CATEGORIES},
        "per_node": [{"txns": 0, "errors": 0, "retries": 0} for _ in range(nodes)],
        "t_end": 0.0,
        "fatal": "",
    }


def _note_error(stats: dict[str, Any], cat: str, text: str) -> None:
    stats["errors"][cat] += 1
    msgs = stats["messages"][cat]
    if len(msgs) < MAX_MESSAGES and text not in msgs:
        msgs.append(text)


class Client:
    """One client: a connection per node, transactions to the next node in turn, retries."""

    def __init__(self, cfg: WorkerConfig, stats: dict[str, Any]) -> None:
        self.cfg = cfg
        self.stats = stats
        self.driver = Driver(cfg.driver)
        self.conns: list[Any] = [None] * len(cfg.endpoints)
        self.rng = random.Random(cfg.seed * 1_000_003 + cfg.client)
        self.node = cfg.client % len(cfg.endpoints)
        self.next_fresh = 0  # k of the next fresh key: max_key + 1 + client + k * clients
        cum, total = [], 0
        for pct in cfg.mix:
            total += pct
            cum.append(total)
        self.cum = cum

    def value(self) -> str:
        return "".join(self.rng.choices(ALPHABET, k=VALUE_LEN))

    def conn(self, node: int) -> Any:
        if self.conns[node] is None:
            self.conns[node] = self.driver.connect(
                self.cfg.endpoints[node], self.cfg.user, self.cfg.password, self.cfg.database
            )
        return self.conns[node]

    def drop_conn(self, node: int) -> None:
        c, self.conns[node] = self.conns[node], None
        if c is not None:
            with contextlib.suppress(Exception):
                c.close()

    def close(self) -> None:
        for node in range(len(self.conns)):
            self.drop_conn(node)

    # -- transactions --------------------------------------------------------------------------------------

    def random_txn(self, size: int) -> list[tuple[str, str, tuple]]:
        s, cfg, rng = self.cfg.stmts, self.cfg, self.rng
        out = []
        for _ in range(size):
            r = rng.random() * 100
            op = next((OPS[i] for i, c in enumerate(self.cum) if r < c), OPS[-1])
            if op == "insert":
                key = KEY_FORMAT % (cfg.max_key + 1 + cfg.client + self.next_fresh * cfg.clients)
                self.next_fresh += 1
                v = self.value()
                out.append((op, s.insert, (key,) + (v,) * NFIELDS))
                continue
            key = KEY_FORMAT % rng.randint(1, cfg.max_key)
            if op == "read":
                out.append((op, s.read, (key,)))
            elif op == "update":
                out.append((op, s.update, (self.value(), key)))
            elif op == "delete":
                out.append((op, s.delete, (key,)))
            else:
                v = self.value()
                out.append((op, s.upsert_sql, (key,) + (v,) * NFIELDS))
        return out

    def load_txn(self, keys: Sequence[int]) -> list[tuple[str, str, tuple]]:
        sql = self.cfg.stmts.insert
        out = []
        for k in keys:
            v = self.value()
            out.append(("insert", sql, (KEY_FORMAT % k,) + (v,) * NFIELDS))
        return out

    def run_txn(self, ops: list[tuple[str, str, tuple]]) -> bool:
        """Run ``ops`` as one transaction on the next node; retry it whole on conflicts / lock timeouts."""
        node = self.node
        self.node = (self.node + 1) % len(self.cfg.endpoints)
        stats, clock = self.stats, time.perf_counter_ns
        per_node = stats["per_node"][node]
        t0 = clock()
        attempt = 0
        while True:
            lats: list[tuple[str, int]] = []
            misses = 0
            try:
                cur = self.conn(node).cursor()
                cur.execute("BEGIN")
                for op, sql, params in ops:
                    s = clock()
                    cur.execute(sql, params)
                    if op == "read" and not cur.fetchall():
                        misses += 1
                    lats.append((op, clock() - s))
                s = clock()
                cur.execute("COMMIT")
                lats.append(("commit", clock() - s))
            except Exception as err:
                cat = classify(err, self.driver.error)
                if cat == "connection":
                    self.drop_conn(node)  # reconnect for the next transaction on this node
                else:
                    try:
                        self.conns[node].rollback()
                    except Exception:
                        self.drop_conn(node)
                if is_retryable(err) and attempt < self.cfg.retries:
                    attempt += 1
                    stats["retries"] += 1
                    per_node["retries"] += 1
                    reason = re.sub(r"\d{8,}", "N", error_text(err))[:160]  # grouped: no txn ids
                    stats["retry_reasons"][reason] = stats["retry_reasons"].get(reason, 0) + 1
                    base = 0.010 * 2 ** (attempt - 1)
                    time.sleep(base + self.rng.uniform(0, base / 2))
                    continue
                _note_error(stats, cat, f"node {node + 1}: {error_text(err)}")
                stats["txns_failed"] += 1
                if len(stats["failed_keys"]) < MAX_FAILED_TXNS:
                    stats["failed_keys"].append(
                        [node + 1, cat, [(op, p[0] if op != "update" else p[1]) for op, _, p in ops]]
                    )
                stats["ops_failed"] += len(ops)
                per_node["errors"] += 1
                if cat == "connection":
                    time.sleep(0.05)  # a node that is down: do not spin on it
                return False
            lat, counts = stats["lat"], stats["ops"]
            for op, ns in lats:
                lat[op].append(ns)
                if op != "commit":
                    counts[op] += 1
            stats["read_misses"] += misses
            stats["txn_lat"].append(clock() - t0)
            stats["txns"] += 1
            per_node["txns"] += 1
            return True


def _worker(cfg: WorkerConfig, start_ev: Any, start_at: Any, out: Any) -> None:
    # The parent owns Ctrl-C and cleanup; a worker just ends on SIGTERM (the parent terminates it by PID).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    stats = new_stats(len(cfg.endpoints))
    client = None
    ready_sent = False
    try:
        client = Client(cfg, stats)
        for node in range(len(cfg.endpoints)):
            try:
                client.conn(node)
            except Exception as err:  # counted; the transaction loop tries to reconnect
                _note_error(stats, "connection", f"node {node + 1}: connect: {error_text(err)}")
        out.put(("ready", cfg.client))
        ready_sent = True
        if not start_ev.wait(120):
            raise TimeoutError("no start signal")
        t0 = start_at.value
        while time.monotonic() < t0:
            time.sleep(0.0005)
        if cfg.mode == "load":
            keys = range(cfg.client + 1, cfg.records + 1, cfg.clients)
            for i in range(0, len(keys), cfg.batch):
                client.run_txn(client.load_txn(keys[i : i + cfg.batch]))
        elif cfg.operations is not None:
            quota = cfg.operations // cfg.clients + (1 if cfg.client < cfg.operations % cfg.clients else 0)
            while quota > 0:
                n = min(cfg.batch, quota)
                client.run_txn(client.random_txn(n))
                quota -= n
        else:
            t_end = t0 + (cfg.duration or 0.0)
            now = time.monotonic
            while now() < t_end:
                client.run_txn(client.random_txn(cfg.batch))
    except Exception as err:
        stats["fatal"] = f"client {cfg.client}: {error_text(err)}"
        _note_error(stats, "other", stats["fatal"])
    finally:
        stats["t_end"] = time.monotonic()
        if client is not None:
            client.close()
    if not ready_sent:
        out.put(("ready", cfg.client))  # do not make the parent wait for a dead worker
    out.put(("result", stats))


# -- phases (parent) --------------------------------------------------------------------------------------


def _summary(ns: array | list[int]) -> dict[str, float]:
    if not ns:
        return {"count": 0}
    s = sorted(ns)
    n = len(s)
    out: dict[str, float] = {"count": n, "mean": round(sum(s) / n / 1e6, 3)}
    for name, q in PERCENTILES:
        out[name] = round(s[max(0, math.ceil(q * n) - 1)] / 1e6, 3)
    out["max"] = round(s[-1] / 1e6, 3)
    return out


def merge_stats(results: list[dict[str, Any]], nodes: int) -> dict[str, Any]:
    total = new_stats(nodes)
    for r in results:
        for op in OPS:
            total["ops"][op] += r["ops"][op]
        for op, arr in r["lat"].items():
            total["lat"][op].extend(arr)
        total["txn_lat"].extend(r["txn_lat"])
        for k in ("txns", "txns_failed", "ops_failed", "retries", "read_misses"):
            total[k] += r[k]
        total["failed_keys"].extend(r["failed_keys"][: MAX_FAILED_TXNS - len(total["failed_keys"])])
        for reason, n in r["retry_reasons"].items():
            total["retry_reasons"][reason] = total["retry_reasons"].get(reason, 0) + n
        for c in CATEGORIES:
            total["errors"][c] += r["errors"][c]
            for m in r["messages"][c]:
                if len(total["messages"][c]) < MAX_MESSAGES and m not in total["messages"][c]:
                    total["messages"][c].append(m)
        for i, pn in enumerate(r["per_node"]):
            for k in pn:
                total["per_node"][i][k] += pn[k]
        total["t_end"] = max(total["t_end"], r["t_end"])
    return total


def run_phase(base: WorkerConfig, clients: int) -> dict[str, Any]:
    """Run ``clients`` worker processes from one start instant; return the phase's figures."""
    configs = [WorkerConfig(**{**base.__dict__, "client": c, "clients": clients}) for c in range(clients)]
    results, t_start = run_workers(_worker, configs)
    total = merge_stats(results, len(base.endpoints))
    if len(results) < clients:
        missing = clients - len(results)
        total["errors"]["other"] += missing
        total["messages"]["other"].append(f"{missing} client process(es) returned no result")
    elapsed = max(0.0, total["t_end"] - t_start) if results else 0.0
    return phase_report(total, elapsed)


def phase_report(t: dict[str, Any], elapsed: float) -> dict[str, Any]:
    ops_total = sum(t["ops"].values())
    return {
        "elapsed_s": round(elapsed, 3),
        "txns": t["txns"],
        "txns_failed": t["txns_failed"],
        "ops_total": ops_total,
        "ops_failed": t["ops_failed"],
        "ops_per_s": round(ops_total / elapsed, 1) if elapsed else 0.0,
        "txn_per_s": round(t["txns"] / elapsed, 1) if elapsed else 0.0,
        "ops": t["ops"],
        "read_misses": t["read_misses"],
        "latency_ms": {op: _summary(arr) for op, arr in t["lat"].items() if arr},
        "txn_latency_ms": _summary(t["txn_lat"]),
        "retries": t["retries"],
        "retry_reasons": dict(sorted(t["retry_reasons"].items(), key=lambda kv: -kv[1])),
        "errors": {c: {"count": t["errors"][c], "messages": t["messages"][c]} for c in CATEGORIES},
        "errors_total": sum(t["errors"].values()),
        "per_node": [{"node": i + 1, **pn} for i, pn in enumerate(t["per_node"])],
        "failed_txns_sample": [
            {"node": n, "category": c, "ops": [f"{op} {key}" for op, key in ops]}
            for n, c, ops in t["failed_keys"]
        ],
    }


# -- schema and verification (parent) ---------------------------------------------------------------------


def _table_present(driver: Driver, ep: tuple[str, int], args: argparse.Namespace) -> bool:
    try:
        conn = driver.connect(ep, args.user, args.password, args.database)
    except driver.error as err:
        if error_code(err) == 1049:  # the database is not there (yet)
            return False
        raise
    try:
        cur = conn.cursor()
        cur.execute("SHOW TABLES")
        return any(str(r[0]).lower() == args.table.lower() for r in cur.fetchall())
    finally:
        conn.close()


def wait_table(
    driver: Driver, endpoints: list[tuple[str, int]], args: argparse.Namespace, present: bool, timeout: float
) -> tuple[float, list[int]]:
    """Poll ``SHOW TABLES`` on every node until the table is (``present``) or is not there.

    Returns (seconds waited, 1-based nodes still not in that state at the timeout)."""
    t0 = time.monotonic()
    pending = list(range(len(endpoints)))
    while True:
        pending = [i for i in pending if _table_present(driver, endpoints[i], args) != present]
        if not pending or time.monotonic() - t0 >= timeout:
            return time.monotonic() - t0, [i + 1 for i in pending]
        time.sleep(0.2)


def _exec(
    driver: Driver, ep: tuple[str, int], args: argparse.Namespace, *sql: str, database: str | None = None
) -> list[tuple]:
    conn = driver.connect(ep, args.user, args.password, database)
    try:
        cur = conn.cursor()
        rows: list[tuple] = []
        for s in sql:
            cur.execute(s)
            rows = list(cur.fetchall()) if cur.description else []
        return rows
    finally:
        conn.close()


def setup_schema(
    driver: Driver, endpoints: list[tuple[str, int]], args: argparse.Namespace, stmts: Statements
) -> dict[str, Any]:
    """(Optionally drop and) create the table on node 1, then wait until every node has it.

    When a node still lacks it after ``--schema-timeout`` (DDL not replicated), the table is created there
    directly so that the run can go on; that fallback is reported and makes the exit status 1."""
    info: dict[str, Any] = {"dropped": False, "fallback_nodes": []}
    create_db = f"CREATE DATABASE IF NOT EXISTS {args.database}"
    if args.drop:
        _exec(driver, endpoints[0], args, create_db, f"DROP TABLE IF EXISTS {args.database}.{args.table}")
        waited, missing = wait_table(driver, endpoints, args, False, args.schema_timeout)
        for node in missing:
            _exec(
                driver,
                endpoints[node - 1],
                args,
                f"DROP TABLE IF EXISTS {args.table}",
                database=args.database,
            )
        info.update(dropped=True, drop_wait_s=round(waited, 3), drop_fallback_nodes=missing)
    t0 = time.monotonic()
    _exec(driver, endpoints[0], args, create_db, f"USE {args.database}", stmts.create)
    waited, missing = wait_table(driver, endpoints, args, True, args.schema_timeout)
    info["create_s"] = round(time.monotonic() - t0, 3)
    info["visible_everywhere_s"] = None if missing else round(waited, 3)
    if missing:
        print(
            f"!! table {args.table} not visible on node(s) {missing} after {args.schema_timeout:.0f}s "
            "(DDL not replicated): creating it there directly so the run can go on",
            flush=True,
        )
        for node in missing:
            _exec(driver, endpoints[node - 1], args, create_db, f"USE {args.database}", stmts.create)
        info["fallback_nodes"] = missing
    return info


def max_existing_key(driver: Driver, ep: tuple[str, int], args: argparse.Namespace) -> tuple[int, int]:
    """(row count, highest ``rec_N`` number) of the table on one node."""
    rows = _exec(driver, ep, args, f"SELECT COUNT(*) FROM {args.table}", database=args.database)
    count = int(rows[0][0])
    rows = _exec(
        driver, ep, args, f"SELECT id FROM {args.table} ORDER BY id DESC LIMIT 1", database=args.database
    )
    m = KEY_RE.match(str(rows[0][0])) if rows else None
    return count, int(m.group(1)) if m else 0


def _row_bytes(row: Sequence[Any]) -> bytes:
    parts = []
    for v in row:
        if v is None:
            parts.append(b"\\N")
        elif isinstance(v, bytes | bytearray):
            parts.append(bytes(v))
        else:
            parts.append(str(v).encode())
    return b"\x1f".join(parts) + b"\x1e"


def node_digest(
    driver: Driver, ep: tuple[str, int], args: argparse.Namespace, per_row: bool = False
) -> dict[str, Any]:
    """COUNT(*) and a SHA-256 over every row (``id, field0..field9``) in id order, fetched in chunks."""
    t0 = time.monotonic()
    conn = driver.connect(ep, args.user, args.password, args.database)
    try:
        cur = conn.cursor()
        cur.execute(f"SELECT COUNT(*) FROM {args.table}")
        count = int(cur.fetchone()[0])
        h = hashlib.sha256()
        rows_map: dict[str, bytes] = {}
        hashed = 0
        last = ""
        cols = ",".join(("id", *FIELDS))
        while True:
            cur.execute(
                f"SELECT {cols} FROM {args.table} WHERE id > %s ORDER BY id LIMIT %s",
                (last, args.verify_chunk),
            )
            rows = cur.fetchall()
            for row in rows:
                b = _row_bytes(row)
                h.update(b)
                if per_row:
                    rows_map[str(row[0])] = hashlib.blake2b(b, digest_size=8).digest()
            hashed += len(rows)
            if len(rows) < args.verify_chunk:
                break
            last = str(rows[-1][0])
    finally:
        conn.close()
    out: dict[str, Any] = {
        "count": count,
        "rows_hashed": hashed,
        "checksum": h.hexdigest(),
        "seconds": round(time.monotonic() - t0, 3),
    }
    if per_row:
        out["rows"] = rows_map
    return out


def _diff(ref: dict[str, bytes], other: dict[str, bytes]) -> dict[str, Any]:
    missing = sorted(ref.keys() - other.keys())
    extra = sorted(other.keys() - ref.keys())
    changed = sorted(k for k in ref.keys() & other.keys() if ref[k] != other[k])
    return {
        "missing": len(missing),
        "extra": len(extra),
        "different": len(changed),
        "examples": {"missing": missing[:3], "extra": extra[:3], "different": changed[:3]},
    }


def verify(driver: Driver, endpoints: list[tuple[str, int]], args: argparse.Namespace) -> dict[str, Any]:
    """Wait up to ``--verify-timeout`` for every node to show the same count and checksum."""
    t0 = time.monotonic()
    deadline = t0 + args.verify_timeout
    digests: list[dict[str, Any]] = []
    rounds = 0
    errors: list[str] = []
    while True:
        rounds += 1
        errors = []
        counts: list[int | None] = []
        for i, ep in enumerate(endpoints):
            try:
                counts.append(
                    int(
                        _exec(driver, ep, args, f"SELECT COUNT(*) FROM {args.table}", database=args.database)[
                            0
                        ][0]
                    )
                )
            except Exception as err:
                counts.append(None)
                errors.append(f"node {i + 1}: {error_text(err)}")
        last_round = time.monotonic() >= deadline
        if not errors and (len(set(counts)) == 1 or last_round):
            digests = []
            for i, ep in enumerate(endpoints):
                try:
                    digests.append(node_digest(driver, ep, args))
                except Exception as err:
                    errors.append(f"node {i + 1}: {error_text(err)}")
                    digests.append({"count": None, "checksum": None})
            if not errors and len({(d["count"], d["checksum"]) for d in digests}) == 1:
                break
        elif errors or last_round:
            digests = [{"count": c, "checksum": None} for c in counts]
        if last_round:
            break
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
    ok = (
        not errors
        and bool(digests)
        and len({(d["count"], d["checksum"]) for d in digests}) == 1
        and digests[0]["checksum"] is not None
    )
    report: dict[str, Any] = {
        "ok": ok,
        "waited_s": round(time.monotonic() - t0, 3),
        "rounds": rounds,
        "errors": errors,
        "nodes": [
            {"node": i + 1, "endpoint": f"{ep[0]}:{ep[1]}", **d}
            for i, (ep, d) in enumerate(zip(endpoints, digests, strict=True))
        ],
    }
    if not ok and not errors and len(endpoints) > 1:
        # say how they differ: rows missing / extra / different on each node compared with node 1
        maps = [node_digest(driver, ep, args, per_row=True)["rows"] for ep in endpoints]
        for i in range(1, len(endpoints)):
            report["nodes"][i]["vs_node_1"] = _diff(maps[0], maps[i])
    return report


# -- output -----------------------------------------------------------------------------------------------


def fmt_int(n: float) -> str:
    return f"{n:,.0f}"


def print_phase(name: str, r: dict[str, Any]) -> None:
    print(
        f"\n== {name}: {fmt_int(r['ops_total'])} ops in {fmt_int(r['txns'])} txns, {r['elapsed_s']:.2f} s: "
        f"{fmt_int(r['ops_per_s'])} ops/s, {r['txn_per_s']:,.1f} txn/s; retries {r['retries']}, "
        f"failed txns {r['txns_failed']} ({r['ops_failed']} ops)"
    )
    if name == "run":
        counts = ", ".join(f"{op} {fmt_int(r['ops'][op])}" for op in OPS)
        print(f"   committed ops: {counts}; reads that found no row: {fmt_int(r['read_misses'])}")
    head = f"   {'latency ms':<12}{'count':>10}{'p50':>9}{'p90':>9}{'p95':>9}{'p99':>9}{'max':>10}"
    print(head)
    rows = [(op.upper(), r["latency_ms"].get(op)) for op in (*OPS, "commit")]
    rows.append(("TXN", r["txn_latency_ms"]))
    for label, s in rows:
        if not s or not s.get("count"):
            continue
        print(
            f"   {label:<12}{fmt_int(s['count']):>10}{s['p50']:>9.2f}{s['p90']:>9.2f}{s['p95']:>9.2f}"
            f"{s['p99']:>9.2f}{s['max']:>10.2f}"
        )
    nodes = r["per_node"]
    if len(nodes) > 1:
        print(
            "   per node: "
            + "; ".join(
                f"node {n['node']}: {fmt_int(n['txns'])} txns, {n['errors']} failed, {n['retries']} retries"
                for n in nodes
            )
        )
    for reason, n in list(r["retry_reasons"].items())[:MAX_MESSAGES]:
        print(f"   retried {n}x: {reason}")
    errs = r["errors"]
    print("   errors after retries: " + ", ".join(f"{c} {errs[c]['count']}" for c in CATEGORIES))
    for c in CATEGORIES:
        for m in errs[c]["messages"]:
            print(f"     [{c}] {m}")


def print_verify(v: dict[str, Any]) -> None:
    print(
        f"\n== verify: {'OK' if v['ok'] else 'MISMATCH'} (waited {v['waited_s']:.1f} s, {v['rounds']} round(s))"
    )
    print(f"   {'node':<6}{'endpoint':<22}{'rows':>10}  checksum (sha256 of id,field0..9 in id order)")
    ref = v["nodes"][0] if v["nodes"] else {}
    for n in v["nodes"]:
        same = (n.get("count"), n.get("checksum")) == (ref.get("count"), ref.get("checksum"))
        mark = "" if same else "   <-- differs from node 1"
        count = "?" if n.get("count") is None else fmt_int(n["count"])
        print(f"   {n['node']:<6}{n['endpoint']:<22}{count:>10}  {n.get('checksum') or '-'}{mark}")
        d = n.get("vs_node_1")
        if d:
            ex = d["examples"]
            print(
                f"         vs node 1: {d['missing']} rows missing {ex['missing']}, {d['extra']} extra "
                f"{ex['extra']}, {d['different']} with other content {ex['different']}"
            )
    for e in v["errors"]:
        print(f"   error: {e}")


# -- main -------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = p.add_argument_group("cluster")
    g.add_argument(
        "--nodes", type=int, default=3, help="nodes of the local cluster started here (%(default)s)"
    )
    g.add_argument(
        "--hosts",
        type=parse_hosts,
        default=None,
        help="host:port,host:port MySQL endpoints of an existing cluster (no cluster started)",
    )
    g.add_argument(
        "--write-consistency",
        default="QUORUM",
        help="[replication] default_write_consistency of the local cluster (%(default)s)",
    )
    g.add_argument("--keep-data", action="store_true", help="keep the local cluster's data dir and logs")
    g.add_argument("--user", default="root", help="(%(default)s)")
    g.add_argument("--password", default="", help="(empty)")
    g.add_argument("--database", default="marmot", help="(%(default)s)")
    g.add_argument("--table", default="benchmarks", help="(%(default)s)")
    g.add_argument(
        "--driver",
        choices=("auto", "mysqlclient", "pymysql"),
        default="auto",
        help="auto: mysqlclient when importable, else PyMySQL",
    )
    g = p.add_argument_group("workload")
    g.add_argument(
        "--records", type=int, default=10_000, help="rows inserted by the load phase (%(default)s)"
    )
    g.add_argument("--duration", type=float, default=30.0, help="run phase seconds (%(default)s)")
    g.add_argument(
        "--operations", type=int, default=None, help="run this many operations instead of --duration"
    )
    g.add_argument(
        "--workload",
        choices=tuple(WORKLOADS),
        default="mixed",
        help="read/update/insert/delete/upsert %%: "
        + ", ".join(f"{k} {'/'.join(map(str, v))}" for k, v in WORKLOADS.items())
        + " (%(default)s)",
    )
    for op in OPS:
        g.add_argument(
            f"--{op}-pct",
            type=int,
            default=None,
            help=f"replace the workload's {op} share (%%); the shares must sum to 100",
        )
    g.add_argument("--clients", type=int, default=16, help="client processes (%(default)s)")
    g.add_argument("--batch-size", type=int, default=10, help="operations per transaction (%(default)s)")
    g.add_argument(
        "--retries", type=int, default=3, help="retries of a transaction on 1213/1205/conflict (%(default)s)"
    )
    g.add_argument(
        "--upsert",
        choices=tuple(UPSERT_SQL),
        default="insert-or-replace",
        help="UPSERT statement: SQLite's INSERT OR REPLACE or MySQL's REPLACE INTO (%(default)s)",
    )
    g.add_argument(
        "--seed", type=int, default=None, help="random seed (default: from the clock; printed in the JSON)"
    )
    g.add_argument("--skip-load", action="store_true", help="no load phase (table already loaded)")
    g.add_argument("--drop", action="store_true", help="drop the table first (existing cluster)")
    g.add_argument(
        "--schema-timeout",
        type=float,
        default=30.0,
        help="seconds to wait for the table on every node (%(default)s)",
    )
    g = p.add_argument_group("verify and output")
    g.add_argument("--verify-only", action="store_true", help="only compare the nodes' tables")
    g.add_argument("--no-verify", action="store_true")
    g.add_argument(
        "--verify-timeout", type=float, default=30.0, help="seconds to wait for convergence (%(default)s)"
    )
    g.add_argument(
        "--verify-chunk", type=int, default=5000, help="rows fetched per checksum query (%(default)s)"
    )
    g.add_argument("--json", type=Path, default=None, help="write every figure to this JSON file")
    args = p.parse_args(argv)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", args.table):
        p.error("--table: letters, digits and _ only")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", args.database):
        p.error("--database: letters, digits and _ only")
    mix = [
        w if (v := getattr(args, f"{op}_pct")) is None else v
        for op, w in zip(OPS, WORKLOADS[args.workload], strict=True)
    ]
    if sum(mix) != 100 or min(mix) < 0:
        p.error(f"operation shares must be >= 0 and sum to 100, got {dict(zip(OPS, mix, strict=True))}")
    args.mix = tuple(mix)
    if args.nodes < 1 or args.clients < 1 or args.batch_size < 1 or args.retries < 0 or args.records < 0:
        p.error("--nodes, --clients, --batch-size must be >= 1; --retries, --records >= 0")
    if args.operations is not None and args.operations < 0:
        p.error("--operations must be >= 0")
    if args.seed is None:
        args.seed = int(time.time() * 1000) & 0x7FFFFFFF
    return args


def _on_signal(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)  # also when started with SIGINT ignored (background job)
    driver = Driver(args.driver)
    report: dict[str, Any] = {
        "tool": "bench/replicated_load.py",
        "config": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "password"
        },
        "driver": driver.name,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    report["config"]["mix"] = dict(zip(OPS, args.mix, strict=True))
    cluster = None
    failures: list[str] = []
    try:
        if args.hosts:
            endpoints = args.hosts
            report["cluster"] = {"started_here": False, "nodes": len(endpoints)}
        else:
            from marmot.testing import LocalCluster

            t = time.monotonic()
            cluster = LocalCluster(
                args.nodes,
                consistency=args.write_consistency,
                secret=CLUSTER_SECRET,
                timers=CLUSTER_TIMERS,
                logging_extra="verbose = false\n",
                start_timeout=30,
                keep_dir=args.keep_data,
            )
            cluster.start(wait=False)
            alive_s = cluster.wait_all_alive()
            endpoints = cluster.mysql_endpoints()
            report["cluster"] = {
                "started_here": True,
                "nodes": args.nodes,
                "pids": cluster.pids(),
                "write_consistency": args.write_consistency,
                "start_s": round(time.monotonic() - t, 3),
                "all_alive_after_s": round(alive_s, 3),
            }
            print(
                f"cluster: {args.nodes} node(s) up, all members ALIVE ({time.monotonic() - t:.1f} s); "
                f"pids {cluster.pids()}"
            )
        report["cluster"]["endpoints"] = [f"{h}:{p}" for h, p in endpoints]
        print(
            f"endpoints: {', '.join(report['cluster']['endpoints'])}; driver {driver.name}; "
            f"table {args.database}.{args.table}"
        )
        stmts = Statements(args.table, args.upsert)

        if not args.verify_only:
            schema = setup_schema(driver, endpoints, args, stmts)
            report["schema"] = schema
            if schema["fallback_nodes"]:
                failures.append(f"table not replicated to node(s) {schema['fallback_nodes']}")
            else:
                print(f"schema: table on every node after {schema['visible_everywhere_s']:.2f} s")
            base = WorkerConfig(
                client=0,
                clients=args.clients,
                endpoints=endpoints,
                driver=driver.name,
                user=args.user,
                password=args.password,
                database=args.database,
                stmts=stmts,
                mode="load",
                mix=args.mix,
                batch=args.batch_size,
                retries=args.retries,
                records=args.records,
                max_key=args.records,
                duration=args.duration,
                operations=args.operations,
                seed=args.seed,
            )
            if not args.skip_load and args.records > 0:
                count, _ = max_existing_key(driver, endpoints[0], args)
                if count:
                    raise SystemExit(
                        f"table {args.table} already holds {count} rows on node 1: "
                        "use --drop to start over or --skip-load to run on it"
                    )
                print(
                    f"\nload: {fmt_int(args.records)} records, {args.clients} clients, "
                    f"{args.batch_size} inserts per transaction ...",
                    flush=True,
                )
                load = run_phase(base, args.clients)
                report["load"] = load
                print_phase("load", load)
                if load["errors_total"]:
                    failures.append(f"load: {load['errors_total']} errors after retries")
            count, top = max_existing_key(driver, endpoints[0], args)
            # non-insert keys: 1..the highest key loaded (or found); fresh insert keys above it
            base.mode, base.max_key = "run", max(top, 1) if args.skip_load else max(args.records, top, 1)
            amount = (
                f"{fmt_int(args.operations)} operations"
                if args.operations is not None
                else f"{args.duration:g} s"
            )
            mix = "/".join(str(x) for x in args.mix)
            print(
                f"\nrun: {args.workload} (read/update/insert/delete/upsert % = {mix}), {amount}, "
                f"{args.clients} clients, {args.batch_size} ops per transaction, keys 1..{base.max_key} "
                f"({fmt_int(count)} rows on node 1) ...",
                flush=True,
            )
            run = run_phase(base, args.clients)
            report["run"] = run
            print_phase("run", run)
            if run["errors_total"]:
                failures.append(f"run: {run['errors_total']} errors after retries")

        if cluster is not None and cluster.dead_nodes():
            failures.append(f"node(s) {cluster.dead_nodes()} exited during the run")
        if not args.no_verify:
            print(
                f"\nverify: waiting up to {args.verify_timeout:g} s for every node to hold the same rows ...",
                flush=True,
            )
            v = verify(driver, endpoints, args)
            report["verify"] = v
            print_verify(v)
            if not v["ok"]:
                failures.append("verify: nodes differ" if not v["errors"] else "verify: errors")
    except KeyboardInterrupt:
        print("\ninterrupted: stopping clients and nodes", file=sys.stderr)
        failures.append("interrupted")
        report["interrupted"] = True
        return 130
    finally:
        if cluster is not None:
            dead = cluster.dead_nodes()
            for node in dead:
                print(f"node {node} had exited; last log lines:\n{cluster.log_tail(node)}", file=sys.stderr)
            cluster.stop()
        report["failures"] = failures
        report["exit_status"] = 1 if failures else 0
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\nresult: {'FAIL: ' + '; '.join(failures) if failures else 'OK'}")
    if args.json:
        print(f"figures written to {args.json}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
