"""Python load generator: point selects and single-row INSERTs over N client processes.

The client is Python too, so each connection gets its own *process* (``multiprocessing``, fork): with
threads, the GIL of the client would be the bottleneck instead of the server. Every worker connects,
warms up for a moment, reports ready and waits; the parent then hands out one start instant
(``time.monotonic()`` is system-wide on Linux) and every worker runs until start + duration, timing each
statement with ``perf_counter_ns``. Only statements that start inside the window are counted.

Statements are sent as COM_QUERY text (the ids are interpolated by the client, as most applications
do): ``SELECT c FROM sbtest1 WHERE id=N`` (sysbench's point select) and
``INSERT INTO sbinsert (id, k, c, pad) VALUES (...)`` with autocommit on and ids unique per worker.
"""

from __future__ import annotations

import multiprocessing as mp
import random
import signal
import time
from dataclasses import dataclass, field

SCHEMA = (
    "CREATE TABLE {name} (id INT PRIMARY KEY, k INT NOT NULL DEFAULT 0, "
    "c CHAR(120) NOT NULL DEFAULT '', pad CHAR(60) NOT NULL DEFAULT '')"
)
WARMUP_S = 0.5
MAX_ERRORS = 50


def driver_name(preferred: str = "auto") -> str:
    """``mysqlclient`` (C, lighter on the client CPU) when importable, else ``pymysql``."""
    if preferred in ("auto", "mysqlclient"):
        try:
            import MySQLdb  # noqa: F401

            return "mysqlclient"
        except ImportError:
            if preferred == "mysqlclient":
                raise
    import pymysql  # noqa: F401

    return "pymysql"


def connect(driver: str, port: int, database: str = "marmot"):
    if driver == "mysqlclient":
        import MySQLdb

        return MySQLdb.connect(
            host="127.0.0.1",
            port=port,
            user="root",
            passwd="",
            db=database,
            autocommit=True,
            connect_timeout=5,
        )
    import pymysql

    return pymysql.connect(
        host="127.0.0.1",
        port=port,
        user="root",
        password="",
        database=database,
        autocommit=True,
        connect_timeout=5,
    )


def _rand_chars(rng: random.Random, groups: int) -> str:
    # sysbench's c/pad shape: groups of 11 digits joined by '-'
    return "-".join("".join(rng.choice("0123456789") for _ in range(11)) for _ in range(groups))


def load_table(driver: str, port: int, rows: int, name: str = "sbtest1", batch: int = 500) -> int:
    """(Re)create ``name`` with ids 1..rows; return the row count the server reports afterwards."""
    rng = random.Random(42)
    conn = connect(driver, port)
    try:
        cur = conn.cursor()
        cur.execute(f"DROP TABLE IF EXISTS {name}")
        cur.execute(SCHEMA.format(name=name))
        for start in range(1, rows + 1, batch):
            values = ",".join(
                f"({i},{rng.randint(1, rows)},'{_rand_chars(rng, 10)}','{_rand_chars(rng, 5)}')"
                for i in range(start, min(start + batch, rows + 1))
            )
            cur.execute(f"INSERT INTO {name} (id, k, c, pad) VALUES {values}")
        cur.execute(f"SELECT COUNT(*) FROM {name}")
        return int(cur.fetchone()[0])
    finally:
        conn.close()


def create_insert_table(driver: str, port: int, name: str = "sbinsert") -> None:
    conn = connect(driver, port)
    try:
        cur = conn.cursor()
        cur.execute(f"DROP TABLE IF EXISTS {name}")
        cur.execute(SCHEMA.format(name=name))
    finally:
        conn.close()


def drop_tables(driver: str, port: int, *names: str) -> None:
    conn = connect(driver, port)
    try:
        cur = conn.cursor()
        for name in names:
            cur.execute(f"DROP TABLE IF EXISTS {name}")
    finally:
        conn.close()


# -- workers --------------------------------------------------------------------------------------------


def _worker(
    kind: str, wid: int, driver: str, port: int, rows: int, duration: float, start_ev, start_at, out
) -> None:
    # The parent owns Ctrl-C and cleanup; a worker just dies on SIGTERM (run_case terminates it by PID).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    result = {"wid": wid, "ops": 0, "misses": 0, "errors": 0, "first_error": "", "lat_ns": []}
    try:
        conn = connect(driver, port)
        cur = conn.cursor()
        rng = random.Random(1000 + wid)
        randint = rng.randint
        c_val, pad_val = _rand_chars(rng, 10), _rand_chars(rng, 5)
        seq = [(wid + 1) * 100_000_000]

        if kind == "select":

            def op() -> bool:
                cur.execute(f"SELECT c FROM sbtest1 WHERE id={randint(1, rows)}")
                return bool(cur.fetchall())
        else:

            def op() -> bool:
                seq[0] += 1
                cur.execute(
                    f"INSERT INTO sbinsert (id, k, c, pad) VALUES "
                    f"({seq[0]},{randint(1, rows)},'{c_val}','{pad_val}')"
                )
                return True

        warm_end = time.monotonic() + WARMUP_S
        while time.monotonic() < warm_end:
            op()
        out.put(("ready", wid))
        if not start_ev.wait(60):
            raise TimeoutError("no start signal")
        t0 = start_at.value
        t_end = t0 + duration
        while time.monotonic() < t0:
            time.sleep(0.0005)
        lat = result["lat_ns"]
        clock = time.perf_counter_ns
        now = time.monotonic
        while now() < t_end:
            s = clock()
            try:
                hit = op()
            except Exception as err:  # count, keep the first message, stop after too many
                result["errors"] += 1
                if not result["first_error"]:
                    result["first_error"] = repr(err)
                if result["errors"] >= MAX_ERRORS:
                    break
                continue
            lat.append(clock() - s)
            if not hit:
                result["misses"] += 1
        result["ops"] = len(lat)
        conn.close()
    except Exception as err:
        result["errors"] += 1
        result["first_error"] = result["first_error"] or repr(err)
        out.put(("ready", wid))  # do not make the parent wait for a dead worker
    out.put(("result", result))


@dataclass
class CaseResult:
    kind: str
    conns: int
    duration: float
    ops: int = 0
    misses: int = 0
    errors: int = 0
    first_error: str = ""
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.ops / self.duration if self.duration else 0.0


def run_case(
    kind: str, conns: int, driver: str, port: int, rows: int, duration: float, on_started=None
) -> CaseResult:
    """Run ``kind`` ('select' or 'insert') with ``conns`` worker processes for ``duration`` seconds.

    ``on_started`` (optional) is called right after the common start instant is published, e.g. to
    attach a profiler for exactly the measured window.
    """
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    start_ev = ctx.Event()
    start_at = ctx.Value("d", 0.0)
    procs = [
        ctx.Process(
            target=_worker, args=(kind, w, driver, port, rows, duration, start_ev, start_at, out), daemon=True
        )
        for w in range(conns)
    ]
    results: list[dict] = []
    finished = False
    try:
        for p in procs:
            p.start()
        ready = 0
        deadline = time.monotonic() + 60
        while ready < conns and time.monotonic() < deadline:
            msg = out.get(timeout=max(0.1, deadline - time.monotonic()))
            if msg[0] == "ready":
                ready += 1
            else:
                results.append(msg[1])
        start_at.value = time.monotonic() + 0.2
        start_ev.set()
        if on_started is not None:
            on_started()
        deadline = time.monotonic() + duration + 60
        while len(results) < conns and time.monotonic() < deadline:
            msg = out.get(timeout=max(0.1, deadline - time.monotonic()))
            if msg[0] == "result":
                results.append(msg[1])
        finished = True
    finally:
        # Normal end: every worker has delivered its result and exits on its own. Error / interrupt:
        # stop them now (a worker blocked on a full result pipe would never exit by itself).
        for p in procs:
            if finished:
                p.join(timeout=10)
            if p.is_alive():
                p.terminate()
                p.join(timeout=3)
            if p.is_alive():
                p.kill()
                p.join(timeout=3)
    res = CaseResult(kind, conns, duration)
    lat: list[int] = []
    for r in results:
        res.ops += r["ops"]
        res.misses += r["misses"]
        res.errors += r["errors"]
        res.first_error = res.first_error or r["first_error"]
        lat.extend(r["lat_ns"])
    if len(results) < conns:
        res.errors += conns - len(results)
        res.first_error = res.first_error or f"{conns - len(results)} worker(s) returned no result"
    if lat:
        lat.sort()
        res.p50_ms = lat[len(lat) // 2] / 1e6
        res.p99_ms = lat[min(len(lat) - 1, int(len(lat) * 0.99))] / 1e6
    return res
