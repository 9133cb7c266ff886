"""The replication layer of one node, as the engine and node.py see it.

It is its own type because two consumers need one handle: the engine hands it every write
(``commit_changes``, ``commit_ddl``, ``database_op``) and node.py wires it to the cluster (RPC
methods, membership, gossip metadata) and stops it. Inside: the coordinator (writes starting here),
the participant (every write, wherever it started), the apply queues and the stale-txn resolver.

Path of a write (``shared/DESIGN.md``, "The data flow of one write"): the engine captured the rows and
rolled its SQLite transaction back → ``commit_changes`` encodes them with the row versions the dry
run saw → ``Coordinator.replicate`` (PREPARE, decision, COMMIT) → every node's ``ApplyQueues`` applies
them last-writer-wins with the applied marker → the engine answers the client.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from marmot.hlc import HLC
from marmot.replication import digest
from marmot.replication import messages as m
from marmot.replication.anti_entropy import AntiEntropy
from marmot.replication.apply_queue import ApplyQueues
from marmot.replication.background import stop_task
from marmot.replication.changes import RowChange, encode_transaction
from marmot.replication.coordinator import CommitResult, Coordinator
from marmot.replication.gc import LogGC
from marmot.replication.participant import Participant
from marmot.storage import replication_tables as rt
from marmot.storage.databases import DatabaseManager

log = logging.getLogger("marmot.replication")
Send = Callable[[str, str, Any, float], Awaitable[Any]]


class Replication:
    def __init__(self, node_id: int, hlc: HLC, databases: DatabaseManager, send: Send, *,
                 send_stream: Send | None = None, stream_chunk: int = 1 << 20,
                 peers: Callable[[], dict[int, str]], total_members: Callable[[], int],
                 leaving: Callable[[], bool] = lambda: False, default_level: str = "QUORUM",
                 write_timeout: float = 5.0, ddl_timeout: float = 60.0, heartbeat_timeout: float = 10.0,
                 ddl_lease: float = 30.0, max_batch: int = 128, status_timeout: float = 2.0,
                 metrics: Any = None, publish_schema: Callable[[dict[str, int]], None] | None = None,
                 anti_entropy_interval: float | None = 30.0, gc_interval: float = 60.0,
                 gc_min_retention_h: float = 2.0, gc_max_retention_h: float = 24.0,
                 members: Callable[[], list[int]] | None = None, snapshot_opts: dict[str, Any] | None = None,
                 not_joined: Callable[[], str | None] | None = None) -> None:
        self.node_id = node_id
        self.hlc = hlc
        self.databases = databases
        self.send = send
        self.peers = peers
        self.default_level = default_level
        self.status_timeout = status_timeout
        self.queues = ApplyQueues(databases, max_batch=max_batch)
        self.participant = Participant(
            node_id, hlc, databases, self.queues, heartbeat_timeout=heartbeat_timeout, ddl_lease=ddl_lease,
            ask_peers=self._ask_peers, apply_dbop=self._apply_dbop, leaving=leaving)
        self.publish_schema = publish_schema
        self.queues.on_applied = self._applied
        self.coordinator = Coordinator(node_id, hlc, self.participant, send, peers=peers,
                                       total_members=total_members, write_timeout=write_timeout,
                                       ddl_timeout=ddl_timeout, metrics=metrics, send_stream=send_stream,
                                       stream_chunk=stream_chunk, members=members, not_joined=not_joined)
        self.participant.coordinator_state = self._coordinator_state
        self._resolver: asyncio.Task[None] | None = None
        # None: [replication] enable_anti_entropy = false (this node still serves its log to peers)
        self.anti_entropy_interval = anti_entropy_interval
        self.anti_entropy = AntiEntropy(node_id, hlc, databases, self.queues, send, peers=peers,
                                        interval=anti_entropy_interval or 30.0,
                                        on_database_created=self._database_created)
        for opt, value in (snapshot_opts or {}).items():  # stream, snapshot_threshold, chunk_size, ... (snapshot.py)
            setattr(self.anti_entropy, opt, value)
        self.anti_entropy.release = self._release_database
        self.gc = LogGC(databases, self.queues, members=members or (lambda: list(peers())), interval=gc_interval,
                        min_retention_h=gc_min_retention_h, max_retention_h=gc_max_retention_h)
        self.before_drop: Callable[[str], None] | None = None  # node.py: sessions let go of the files
        self.before_replace: Callable[[str], None] | None = None  # node.py: same, for a snapshot install
        for name in databases.names():
            rt.ensure_tables(self.queues.connection(name))
        self._publish_schema_versions()

    def _applied(self, db: str, items: list[Any], outcomes: list[Any]) -> None:
        self.participant.note_applied(db, items, outcomes)
        if any(i.body.ddl for i in items):
            self._publish_schema_versions()

    def _publish_schema_versions(self) -> None:
        """Every database's schema version, gossiped (``extra.schema_versions`` in the member list): who
        is behind on DDL is visible cluster-wide, and anti-entropy picks sources from it."""
        if self.publish_schema is not None:
            self.publish_schema({db: self.participant.schema_version(db) for db in self.databases.names()})

    # -- wiring ---------------------------------------------------------------------------------

    def register(self, router: Any) -> None:
        """RPC methods on the cluster port (``RpcRouter.unary(name, handler(payload, ctx))``)."""
        p = self.participant

        async def prepare(payload: Any, _ctx: Any) -> Any:
            return await p.prepare_waiting(payload)

        async def commit(payload: Any, _ctx: Any) -> Any:
            return await p.commit(payload)

        async def replay(payload: Any, _ctx: Any) -> Any:
            return await p.replay(payload)

        async def abort(payload: Any, _ctx: Any) -> Any:
            return p.abort(payload)

        async def status(payload: Any, _ctx: Any) -> Any:
            return p.status(payload)

        async def settle(payload: Any, _ctx: Any) -> Any:
            return await p.settle(payload)

        async def prepare_stream(chunks: Any, _ctx: Any) -> Any:
            req = await _reassemble(chunks)
            return await p.prepare_waiting(req) if req is not None else {"ok": False, "reject": "malformed stream"}

        async def replay_stream(chunks: Any, _ctx: Any) -> Any:
            req = await _reassemble(chunks)
            return await p.replay(req) if req is not None else {"ok": False, "err": "malformed stream"}

        router.client_stream("txn_prepare_stream", prepare_stream)
        router.client_stream("txn_replay_stream", replay_stream)
        self.anti_entropy.register(router)
        router.unary("digest_get", digest.make_rpc_handler(self.databases))  # convergence checks
        for name, fn in (("txn_prepare", prepare), ("txn_commit", commit), ("txn_abort", abort), ("txn_replay", replay),
                         ("txn_status", status), ("txn_settle", settle)):
            router.unary(name, fn)

    def start(self) -> None:
        self._resolver = asyncio.get_running_loop().create_task(self.participant.run_resolver())
        if self.anti_entropy_interval is not None:
            self.anti_entropy.start()
        self.gc.start()

    async def ready(self) -> bool:
        """Gossip's promotion check for a joining node: ALIVE (and so counted in quorums and sent
        PREPAREs) only once anti-entropy has caught up with every peer — snapshot and delta included."""
        if self.anti_entropy_interval is None:
            return True
        if self.anti_entropy.caught_up_at is None:
            self.anti_entropy.kick()
            return False
        return True

    def in_flight(self) -> int:
        """Transactions this node still has a part in: prepared here and not yet committed or aborted
        (its own coordinator's included, from its local PREPARE to its local apply), plus decisions still
        being sent to peers. A decommissioned node drains until this is 0 (admin/control.py)."""
        return len(self.participant.prepared) + self.coordinator.sending()

    def _database_created(self, name: str) -> None:
        self.participant.signal_schema_change()
        self._publish_schema_versions()

    async def stop(self) -> None:
        await stop_task(self._resolver)
        self._resolver = None
        await self.anti_entropy.stop()
        await self.gc.stop()
        await self.coordinator.close()
        await self.queues.close()

    def _coordinator_state(self, txn: int) -> tuple[str, Any]:
        return self.coordinator.state_of(txn)

    async def _ask_peers(self, method: str, payload: dict[str, Any]) -> dict[int, Any]:
        peers = self.peers()

        async def ask(addr: str) -> Any:
            try:
                return await self.send(addr, method, payload, self.status_timeout)
            except Exception as e:
                return e

        answers = await asyncio.gather(*(ask(a) for a in peers.values()))
        return dict(zip(peers, answers, strict=True))

    def _release_database(self, name: str) -> None:
        """A snapshot replaces ``name``'s file: sessions and the participant (its readers, the apply queue)
        let go of the old one, as for a DROP; sessions keep it as their current database."""
        hook = self.before_replace or self.before_drop
        if hook is not None:
            hook(name)
        self.participant.forget_database(name)

    def _apply_dbop(self, op: str, name: str) -> None:
        if op == "create":
            if self.databases.create(name, if_not_exists=True):
                rt.ensure_tables(self.queues.connection(name))
            self.participant.signal_schema_change()
            self._publish_schema_versions()
        else:
            if self.before_drop is not None:
                self.before_drop(name)
            self.participant.forget_database(name)
            self.anti_entropy.forget_database(name)
            self.databases.drop(name, if_exists=True)
            self._publish_schema_versions()

    # -- the engine's entry points --------------------------------------------------------------

    def level(self, requested: str | None) -> str:
        return (requested or self.default_level).upper()

    def schema_version(self, db: str) -> int:
        return self.participant.schema_version(db)

    def apply_epoch(self, db: str) -> int:
        """Read with the row versions of a dry run (see ``ApplyQueues.epoch``)."""
        return self.queues.epoch(db)

    def table_fingerprints(self, db: str, tables: frozenset[str]) -> dict[str, bytes | None]:
        """This node's schema fingerprint of each of ``tables`` (lower-cased) of ``db``."""
        return self.participant.table_fingerprints(db, tables)

    async def commit_changes(self, db: str, changes: list[RowChange], base: list[list[int] | None],
                             schema_version: int, level: str | None = None, epoch: int | None = None,
                             table_schemas: dict[str, bytes | None] | None = None) -> CommitResult:
        rows = encode_transaction(db, self.hlc.peek(), changes)
        body = m.encode_body("dml", rows=rows)
        return await self.coordinator.replicate(db, body, base=base, schema_version=schema_version,
                                                level=self.level(level), decoded=m.Body("dml", changes, [], None),
                                                epoch=epoch, table_schemas=table_schemas)

    async def commit_ddl(self, db: str, statements: list[str], schema_version: int,
                         level: str | None = None, tables: list[str] | None = None) -> CommitResult:
        body = m.encode_body("ddl", ddl=statements)
        return await self.coordinator.replicate(db, body, schema_version=schema_version,
                                                level=self.level(level), ddl=True, ddl_tables=tables)

    async def database_op(self, op: str, name: str, level: str | None = None) -> CommitResult:
        body = m.encode_body("dbop", dbop=(op, name))
        return await self.coordinator.replicate("", body, level=self.level(level), ddl=True)


async def _reassemble(chunks: Any) -> dict[str, Any] | None:
    """A streamed PREPARE/REPLAY: the request without its body, then the body in chunks (see
    ``Coordinator._call``). None when the stream is malformed or not of the announced size."""
    head: dict[str, Any] | None = None
    parts: list[bytes] = []
    got = 0
    async for c in chunks:
        if head is None:
            if type(c) is not dict or type(c.get("size")) is not int:
                return None
            head = c
        elif type(c) is bytes:
            parts.append(c)
            got += len(c)
            if got > head["size"]:
                return None
        else:
            return None
    if head is None or got != head["size"]:
        return None
    req = dict(head)
    del req["size"]
    req["body"] = b"".join(parts)
    return req
