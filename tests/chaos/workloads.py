"""Workloads: MySQL clients pinned to nodes, each logging every operation to a shared history.

An operation is logged twice: ``invoke`` before it is sent, then ``ok``, ``fail`` (certainly not
applied) or ``unknown`` (Jepsen's "info": the connection died or timed out mid-way, or the server said
the outcome is unknown or that the transaction committed on fewer nodes than asked for). Writes that succeed carry the commit timestamp the
server returns in ``@@marmot_last_commit_ts``, so the checker orders them exactly as last-writer-wins
does. Values written are unique in the whole run, so a value read names the one write that made it.

Kinds (tests/chaos/checker.py checks each):
* **set**: insert-only unique rows; every acknowledged insert must be on every node after the heal.
* **register**: a few keys, each write an upsert of a fresh value; reads of single keys.
* **bank**: transfers between accounts inside ``BEGIN … COMMIT``; the total must be preserved (at QUORUM
  and ALL; at ONE last-writer-wins may create or destroy money and the checker only reports it).
* reads: one reader per node reads the set, a register and the banks, so monotonic reads are per node.
  These reads are LOCAL_ONE (logged with no level): they may be stale.
* **register_quorum**: QUORUM upserts of unique values and reads of a few keys — at QUORUM, and one in
  five each at ONE and ALL (on 3 nodes both see QUORUM writes) — by clients that roam between nodes,
  each read going to a node other than the one that took the key's last write; the checker's
  ``stale-read`` fails any read older than a write acknowledged before the read began.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql

from tests.chaos.cluster import DB, ChaosCluster
from tests.support import connect

REGISTER_KEYS = 8
QUORUM_KEYS = 4  # few keys: a read often follows a recent write of its key on another node
QUORUM_CLIENTS = 3
# the register_quorum reads' levels, drawn per read: on 3 nodes ONE (this node and one peer) and ALL see
# every QUORUM write too; QUORUM, the level under test, is most of them
READ_LEVELS = ("QUORUM", "QUORUM", "QUORUM", "ONE", "ALL")
BANK_ACCOUNTS = 8
BANK_START = 100


@dataclass(frozen=True)
class Workload:
    """One workload instance: its name in the history, its kind, its table and the levels it writes at."""

    name: str
    kind: str
    table: str
    levels: tuple[str, ...]


# Its clients are not pinned to a node (see ``quorum_register_op``); its rows are checked as a register.
QUORUM_REGISTER = Workload("register_quorum", "register", "chaos_register_quorum", ("QUORUM",))

WORKLOADS = (
    Workload("set", "set", "chaos_set", ("ONE", "QUORUM", "ALL")),
    Workload("register", "register", "chaos_register", ("ONE", "QUORUM", "ALL")),
    Workload("bank", "bank", "chaos_bank", ("QUORUM", "ALL")),
    Workload("bank_one", "bank", "chaos_bank_one", ("ONE",)),
    QUORUM_REGISTER,
)

SCHEMA = {
    "set": "CREATE TABLE IF NOT EXISTS {t} (v BIGINT PRIMARY KEY)",
    "register": "CREATE TABLE IF NOT EXISTS {t} (k INT PRIMARY KEY, v BIGINT NOT NULL)",
    "bank": "CREATE TABLE IF NOT EXISTS {t} (account INT PRIMARY KEY, balance BIGINT NOT NULL)",
}


class History:
    """An append-only JSONL file shared by every client thread; ``t`` is seconds since the run began."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = open(path, "w")  # noqa: SIM115 - closed by close()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.t0 = time.monotonic()

    def now(self) -> float:
        return round(time.monotonic() - self.t0, 6)

    def next_id(self) -> int:
        with self._lock:
            return next(self._ids)

    def log(self, record: dict[str, Any]) -> None:
        record.setdefault("t", self.now())
        line = json.dumps(record, separators=(",", ":"))
        with self._lock:
            if not self._file.closed:  # a client still finishing its last operation after the run
                self._file.write(line + "\n")

    def close(self) -> None:
        with self._lock:
            self._file.close()


def parse_ts(text: object) -> list[int] | None:
    """``@@marmot_last_commit_ts`` ("wall_ns.logical.node_id") as the checker's ``[wall, logical, node]``."""
    if not isinstance(text, str | bytes) or not text:
        return None
    s = text.decode() if isinstance(text, bytes) else text
    try:
        wall, logical, node = (int(p) for p in s.split("."))
    except ValueError:
        return None
    return [wall, logical, node]


# MySQL errors that say the statement was certainly not applied anywhere.
DEFINITE_FAILURES = {1213, 1205, 1062, 1146, 1049, 1290, 1064, 1045}


def classify(exc: BaseException, sent: bool = True) -> tuple[str, str]:
    """``("fail" | "unknown", error text)`` for an exception from a write. ``sent`` is False when the failing
    step came before anything could have been applied (connecting, or a statement before COMMIT)."""
    text = f"{type(exc).__name__}: {exc}"
    if not sent:
        return "fail", text
    if isinstance(exc, pymysql.err.MySQLError) and exc.args and isinstance(exc.args[0], int):
        code, msg = exc.args[0], str(exc.args[1]) if len(exc.args) > 1 else ""
        if code in DEFINITE_FAILURES:
            return "fail", text
        if code == 1105 and (
            "quorum not reached" in msg
            or "cannot take the write" in msg
            or msg.startswith("transaction aborted")
        ):
            return "fail", text
        if code == 2003:  # could not connect: nothing was sent
            return "fail", text
    return "unknown", text


class Client(threading.Thread):
    """One connection pinned to one node, running one kind of operation until ``stop`` is set."""

    def __init__(
        self,
        proc: int,
        node: int,
        cluster: ChaosCluster,
        history: History,
        stop: threading.Event,
        seed: int,
        op: Callable[[Client], None],
        pace: float = 0.01,
    ) -> None:
        super().__init__(name=f"chaos-client-{proc}", daemon=True)
        self.proc, self.node, self.cluster, self.history = proc, node, cluster, history
        self.stopping, self.op, self.pace = stop, op, pace
        self.conn: Any = None
        self.rng = random.Random(seed * 1000 + proc)

    def run(self) -> None:
        while not self.stopping.is_set():
            self.op(self)
            time.sleep(self.pace * self.rng.uniform(0.5, 1.5))
        self.drop()

    def connect(self) -> Any:
        if self.conn is None:
            self.conn = connect(
                self.cluster.nodes[self.node],
                DB,
                local_infile=False,
                connect_timeout=2,
                read_timeout=5,
                write_timeout=5,
            )
        return self.conn

    def drop(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):  # a dead connection cannot close cleanly
                self.conn.close()
            self.conn = None

    def record(self, wl: Workload, f: str, **fields: Any) -> dict[str, Any]:
        rec = {
            "id": self.history.next_id(),
            "proc": self.proc,
            "node": self.node,
            "workload": wl.name,
            "kind": wl.kind,
            "type": "invoke",
            "f": f,
            **fields,
        }
        self.history.log(dict(rec))
        return rec

    def complete(self, invoke: dict[str, Any], type_: str, **fields: Any) -> None:
        rec = {**invoke, "type": type_, **fields}
        rec.pop("t", None)
        self.history.log(rec)

    def commit_ts(self) -> list[int] | None:
        """The last commit's timestamp on this session; None when the connection died meanwhile."""
        try:
            with self.connect().cursor() as cur:
                cur.execute("SELECT @@marmot_last_commit_ts")
                return parse_ts(cur.fetchone()[0])
        except pymysql.err.MySQLError:
            self.drop()
            return None


class RoamingClient(Client):
    """A client with one connection per node, switching ``self.node`` before each operation: what a
    load-balanced application does, and what a read must survive to see writes taken by other nodes.
    With ``session_level`` its connections say ``SET marmot_read_consistency = 'QUORUM'`` once and read
    without a hint; otherwise each read carries the hint."""

    def __init__(self, *args: Any, session_level: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.session_level = session_level
        self.conns: dict[int, Any] = {}

    def connect(self) -> Any:
        conn = self.conns.get(self.node)
        if conn is None:
            self.conn = None
            conn = super().connect()
            if self.session_level:
                try:
                    with conn.cursor() as cur:
                        cur.execute("SET marmot_read_consistency = 'QUORUM'")
                except pymysql.err.MySQLError:
                    self.drop()
                    raise
            self.conns[self.node] = conn
        self.conn = conn
        return conn

    def drop(self) -> None:
        self.conn = self.conns.pop(self.node, self.conn)
        super().drop()

    def run(self) -> None:
        super().run()
        for node in list(self.conns):
            self.node = node
            self.drop()


_values = itertools.count(1)
_values_lock = threading.Lock()


def unique_value() -> int:
    with _values_lock:
        return next(_values)


def _autocommit_write(c: Client, inv: dict[str, Any], sql: str, args: tuple[Any, ...]) -> None:
    """One autocommit write statement, its outcome logged against ``inv``; a connection whose last
    statement's outcome is unknown is dropped (its state is unknown too)."""
    try:
        conn = c.connect()
    except pymysql.err.MySQLError as e:
        c.complete(inv, "fail", error=classify(e, sent=False)[1])
        return
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
    except pymysql.err.MySQLError as e:
        kind, text = classify(e)
        c.complete(inv, kind, error=text)
        if kind == "unknown":
            c.drop()
        return
    c.complete(inv, "ok", ts=c.commit_ts())


def set_add(wl: Workload) -> Callable[[Client], None]:
    def op(c: Client) -> None:
        level = c.rng.choice(wl.levels)
        value = unique_value()
        inv = c.record(wl, "add", value=value, level=level)
        _autocommit_write(
            c, inv, f"INSERT /*+ MARMOT_CONSISTENCY({level}) */ INTO {wl.table} (v) VALUES (%s)", (value,)
        )

    return op


def register_write(wl: Workload) -> Callable[[Client], None]:
    def op(c: Client) -> None:
        level = c.rng.choice(wl.levels)
        key, value = c.rng.randrange(REGISTER_KEYS), unique_value()
        inv = c.record(wl, "write", key=key, value=value, level=level)
        _autocommit_write(
            c,
            inv,
            f"INSERT /*+ MARMOT_CONSISTENCY({level}) */ INTO {wl.table} (k, v) "
            "VALUES (%s, %s) ON DUPLICATE KEY UPDATE v = VALUES(v)",
            (key, value),
        )

    return op


def bank_transfer(wl: Workload) -> Callable[[Client], None]:
    def op(c: Client) -> None:
        level = c.rng.choice(wl.levels)
        src, dst = c.rng.sample(range(BANK_ACCOUNTS), 2)
        amount = c.rng.randint(1, 10)
        inv = c.record(wl, "transfer", value={"from": src, "to": dst, "amount": amount}, level=level)
        try:
            conn = c.connect()
            with conn.cursor() as cur:
                cur.execute(f"SET marmot_write_consistency = '{level}'")
                cur.execute("BEGIN")
                cur.execute(f"UPDATE {wl.table} SET balance = balance - %s WHERE account = %s", (amount, src))
                cur.execute(f"UPDATE {wl.table} SET balance = balance + %s WHERE account = %s", (amount, dst))
        except pymysql.err.MySQLError as e:  # nothing leaves the node before COMMIT
            c.complete(inv, "fail", error=classify(e, sent=False)[1])
            c.drop()
            return
        try:
            with conn.cursor() as cur:
                cur.execute("COMMIT")
        except pymysql.err.MySQLError as e:
            kind, text = classify(e)
            c.complete(inv, kind, error=text)
            c.drop()
            return
        c.complete(inv, "ok", ts=c.commit_ts())

    return op


def reads(workloads: tuple[Workload, ...]) -> Callable[[Client], None]:
    """One read of a random workload: the whole set, one register key, or every account of a bank."""

    def op(c: Client) -> None:
        wl = c.rng.choice(workloads)
        fields: dict[str, Any] = {}
        if wl.kind == "set":
            sql, args = f"SELECT v FROM {wl.table}", None
        elif wl.kind == "register":
            fields["key"] = c.rng.randrange(REGISTER_KEYS)
            sql, args = f"SELECT v FROM {wl.table} WHERE k = %s", (fields["key"],)
        else:
            sql, args = f"SELECT account, balance FROM {wl.table}", None
        inv = c.record(wl, "read", level=None, **fields)
        try:
            with c.connect().cursor() as cur:
                cur.execute(sql, args)
                rows = cur.fetchall()
        except pymysql.err.MySQLError as e:
            c.complete(inv, "fail", error=f"{type(e).__name__}: {e}")
            c.drop()
            return
        if wl.kind == "set":
            value: Any = sorted(r[0] for r in rows)
        elif wl.kind == "register":
            value = rows[0][0] if rows else None
        else:
            value = {str(a): b for a, b in rows}
        c.complete(inv, "ok", value=value)

    return op


def quorum_register_op(wl: Workload, last_writer: dict[int, int]) -> Callable[[Client], None]:
    """Half QUORUM upserts through a random node, half reads (``READ_LEVELS``) of a random key through a
    node other than the one that took that key's last write (``last_writer``, shared by the workload's
    clients)."""

    def op(c: Client) -> None:
        key = c.rng.randrange(QUORUM_KEYS)
        if c.rng.random() < 0.5:
            c.node = c.rng.choice((1, 2, 3))
            last_writer[key] = c.node
            value = unique_value()
            inv = c.record(wl, "write", key=key, value=value, level="QUORUM")
            _autocommit_write(
                c,
                inv,
                f"INSERT /*+ MARMOT_CONSISTENCY(QUORUM) */ INTO {wl.table} (k, v) "
                "VALUES (%s, %s) ON DUPLICATE KEY UPDATE v = VALUES(v)",
                (key, value),
            )
            return
        c.node = c.rng.choice([n for n in (1, 2, 3) if n != last_writer.get(key)])
        level = c.rng.choice(READ_LEVELS)
        session = isinstance(c, RoamingClient) and c.session_level and level == "QUORUM"
        hint = "" if session else f"/*+ MARMOT_CONSISTENCY({level}) */ "
        inv = c.record(wl, "read", key=key, level=level, via="session" if session else "hint")
        try:
            with c.connect().cursor() as cur:
                cur.execute(f"SELECT {hint}v FROM {wl.table} WHERE k = %s", (key,))
                rows = cur.fetchall()
        except pymysql.err.MySQLError as e:  # 1105 (too few answers), a timeout, a dead node: no value
            code = e.args[0] if e.args and isinstance(e.args[0], int) else None
            c.complete(inv, "fail", error=f"{type(e).__name__}: {e}", code=code)
            if code != 1105:  # after 1105 the connection is still good
                c.drop()
            return
        c.complete(inv, "ok", value=rows[0][0] if rows else None)

    return op


def setup(cluster: ChaosCluster, history: History, workloads: tuple[Workload, ...] = WORKLOADS) -> None:
    """Create every table at ALL and fund the banks, then wait until every node has them."""
    for wl in workloads:
        cluster.sql(1, SCHEMA[wl.kind].format(t=wl.table))
        if wl.kind == "bank":
            values = ", ".join(f"({a}, {BANK_START})" for a in range(BANK_ACCOUNTS))
            cluster.sql(1, f"INSERT /*+ MARMOT_CONSISTENCY(ALL) */ INTO {wl.table} VALUES {values}")
            history.log(
                {
                    "type": "setup",
                    "workload": wl.name,
                    "kind": "bank",
                    "accounts": {str(a): BANK_START for a in range(BANK_ACCOUNTS)},
                    "total": BANK_START * BANK_ACCOUNTS,
                }
            )
    deadline = time.monotonic() + 30
    for i in (1, 2, 3):
        for wl in workloads:
            while True:
                try:
                    cluster.sql(i, f"SELECT COUNT(*) FROM {wl.table}")
                    break
                except pymysql.err.MySQLError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)


def start_clients(
    cluster: ChaosCluster,
    history: History,
    stop: threading.Event,
    seed: int,
    workloads: tuple[Workload, ...] = WORKLOADS,
) -> list[Client]:
    """Per node: a set writer, a register writer, a bank writer per bank workload, and a (LOCAL_ONE)
    reader; then the QUORUM register's roaming clients, half reading with the hint, half with the
    session variable."""
    clients: list[Client] = []
    proc = itertools.count(1)
    pinned = tuple(wl for wl in workloads if wl != QUORUM_REGISTER)
    for node in (1, 2, 3):
        for wl in pinned:
            maker = {"set": set_add, "register": register_write, "bank": bank_transfer}[wl.kind]
            clients.append(Client(next(proc), node, cluster, history, stop, seed, op=maker(wl)))
        clients.append(Client(next(proc), node, cluster, history, stop, seed, op=reads(pinned), pace=0.02))
    if QUORUM_REGISTER in workloads:
        last_writer: dict[int, int] = {}
        for i in range(QUORUM_CLIENTS):
            op = quorum_register_op(QUORUM_REGISTER, last_writer)
            p = next(proc)
            clients.append(
                RoamingClient(p, i % 3 + 1, cluster, history, stop, seed, op=op, session_level=p % 2 == 1)
            )
    for c in clients:
        c.start()
    return clients


def final_state(
    cluster: ChaosCluster, workloads: tuple[Workload, ...] = WORKLOADS, ids: tuple[int | str, ...] = (1, 2, 3)
) -> dict[str, Any]:
    """Every node's rows of every workload with their LWW versions (the checker's ``nodes``); ``ids`` may
    name the replica (``cluster.REPLICA``) too."""
    nodes: dict[str, Any] = {}
    for i in ids:
        per: dict[str, Any] = {}
        for wl in workloads:
            versions = cluster.row_versions(i, wl.table)
            if wl.kind == "set":
                per[wl.name] = [
                    {"value": v, "ts": versions.get((v,))}
                    for (v,) in cluster.sql(i, f"SELECT v FROM {wl.table} ORDER BY v")
                ]
            elif wl.kind == "register":
                per[wl.name] = [
                    {"key": k, "value": v, "ts": versions.get((k,))}
                    for k, v in cluster.sql(i, f"SELECT k, v FROM {wl.table} ORDER BY k")
                ]
            else:
                per[wl.name] = [
                    {"account": a, "balance": b, "ts": versions.get((a,))}
                    for a, b in cluster.sql(i, f"SELECT account, balance FROM {wl.table} ORDER BY account")
                ]
        nodes[str(i)] = per
    return nodes
