"""The replication layer of one node, as the engine and node.py see it.

It is its own type because two consumers need one handle: the engine hands it every write
(``commit_changes``, ``commit_ddl``, ``database_op``) and node.py builds it (``from_config``: the
config, the cluster as a ``marmot.transport.Transport``, gossip as a ``wiring.Membership``, the engine's
hooks), registers its RPC methods and stops it. Inside: the coordinator (writes starting here), the
participant (every write, wherever it started), anti-entropy, GC, the apply queues and the stale-txn
resolver.

Path of a write (``docs/DESIGN.md``, "The path of a write"): the engine captured the rows and
rolled its SQLite transaction back → ``commit_changes`` encodes them with the row versions the dry
run saw → ``Coordinator.replicate`` (PREPARE, decision, COMMIT) → every node's ``ApplyQueues`` applies
them last-writer-wins with the applied marker → the engine answers the client.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from typing import Any

from marmot.config import Config
from marmot.hlc import HLC, Timestamp
from marmot.replication import causal
from marmot.replication import messages as m
from marmot.replication.apply.queue import ApplyQueues
from marmot.replication.background import stop_task
from marmot.replication.catchup.gc import LogGC
from marmot.replication.catchup.log_memory import LogMemory
from marmot.replication.catchup.log_pull import LogPull
from marmot.replication.catchup.log_server import LogServer, ReadConnections
from marmot.replication.catchup.read_barrier import ReadBarrier
from marmot.replication.changes import RowChange, encode_transaction
from marmot.replication.commit import operator_abort, txn_handlers
from marmot.replication.commit.coordinator import CommitResult, Coordinator
from marmot.replication.commit.participant import Participant
from marmot.replication.commit.txn_messages import Abort, Ack, StatusRequest
from marmot.replication.schema_follow import SchemaFollower
from marmot.replication.wiring import Membership, ReplicationSettings
from marmot.storage import replication_tables as rt
from marmot.storage.databases import DatabaseManager
from marmot.storage.node_state import NodeState
from marmot.transport import Router, Transport

log = logging.getLogger("marmot.replication")


class Replication:
    """Built once per node, from config (``from_config``); tests build it from ``ReplicationSettings``.

    ``before_drop(name)`` / ``before_replace(name)``: every holder of a connection to database ``name``
    outside this layer (the engine's sessions) lets go of it — before a DROP DATABASE removes the file,
    and before a snapshot replaces it (sessions keep it as their current database then)."""

    def __init__(
        self,
        node_id: int,
        hlc: HLC,
        databases: DatabaseManager,
        transport: Transport,
        membership: Membership,
        *,
        settings: ReplicationSettings | None = None,
        metrics: Any = None,
        before_drop: Callable[[str], None] | None = None,
        before_replace: Callable[[str], None] | None = None,
    ) -> None:
        settings = settings or ReplicationSettings()
        self.node_id = node_id
        self.hlc = hlc
        self.databases = databases
        self.transport = transport
        self.membership = membership
        self.settings = settings
        self.default_level = settings.default_level
        self.before_drop = before_drop
        self.before_replace = before_replace
        self.queues = ApplyQueues(databases, max_batch=settings.max_batch)
        self.participant = Participant(
            node_id,
            hlc,
            databases,
            self.queues,
            heartbeat_timeout=settings.heartbeat_timeout,
            ddl_lease=settings.ddl_lease,
            ask_peers=self._ask_peers,
            coordinator_state=self._coordinator_state,
            apply_dbop=self._apply_dbop,
            leaving=membership.leaving,
        )
        self.queues.on_applied = self._applied
        self.applied_listeners: list[Callable[[str], None]] = []  # told after every applied batch
        # the two ends of the log exchange (catch-up) read with these; read barriers ask ``log_memory``
        self.readers = ReadConnections(databases)
        self.log_memory = LogMemory(databases, self.readers.get, self.queues.connection)
        self.participant.metrics = metrics
        self.coordinator = Coordinator(
            node_id,
            hlc,
            self.participant,
            transport,
            membership,
            write_timeout=settings.write_timeout,
            ddl_timeout=settings.ddl_timeout,
            metrics=metrics,
            stream_chunk=settings.stream_chunk,
        )
        self._resolver: asyncio.Task[None] | None = None
        # the two ends of the log exchange (catch-up): this node pulls from its peers and serves them
        state = NodeState(databases.system)
        self.log_server = LogServer(
            databases, self.queues, state, settings.stream_chunk, self.readers, self.log_memory
        )
        self.log_pull = LogPull(
            node_id,
            hlc,
            databases,
            self.queues,
            transport,
            peers=membership.alive_peers,
            readers=self.readers,
            state=state,
            settings=settings,
            on_database_created=self._database_created,
            release=self._release_database,
        )
        self.log_pull.metrics = metrics
        self.barrier = ReadBarrier(
            self.log_pull,
            alive_peers=membership.alive_peers,
            members=membership.members,
            total_members=membership.total_members,
            timeout=settings.read_timeout,
            memory=self.log_memory,
            prepared=self._prepared_by,
            node_id=node_id,
        )
        self.schema_follower = SchemaFollower(
            self.participant,
            databases,
            membership,
            kick=self.log_pull.kick if settings.anti_entropy_interval is not None else None,
        )
        self.gc = LogGC(
            databases,
            self.queues,
            members=membership.members,
            interval=settings.gc_interval,
            min_retention_h=settings.gc_min_retention_h,
            max_retention_h=settings.gc_max_retention_h,
        )
        for name in databases.names():
            rt.ensure_tables(self.queues.connection(name))
        self._publish_schema_versions()

    @classmethod
    def from_config(
        cls,
        cfg: Config,
        *,
        node_id: int,
        hlc: HLC,
        databases: DatabaseManager,
        transport: Transport,
        membership: Membership,
        metrics: Any = None,
        before_drop: Callable[[str], None] | None = None,
        before_replace: Callable[[str], None] | None = None,
    ) -> Replication:
        """The node's replication layer as ``cfg`` configures it (``ReplicationSettings.from_config``)."""
        return cls(
            node_id,
            hlc,
            databases,
            transport,
            membership,
            settings=ReplicationSettings.from_config(cfg),
            metrics=metrics,
            before_drop=before_drop,
            before_replace=before_replace,
        )

    @property
    def anti_entropy_interval(self) -> float | None:
        """None: ``[replication] enable_anti_entropy = false`` (this node still serves its log to peers)."""
        return self.settings.anti_entropy_interval

    def _applied(self, db: str, items: list[Any], outcomes: list[Any]) -> None:
        self.log_memory.note(db, items, outcomes)  # first: before any participant acknowledges them
        self.participant.note_applied(db, items, outcomes)
        for listener in self.applied_listeners:  # the CDC publisher: new commit-log entries in ``db``
            listener(db)
        if any(i.body.ddl for i in items):
            self._publish_schema_versions()

    def _publish_schema_versions(self) -> None:
        """Every database's schema version, gossiped (``extra.schema_versions`` in the member list): who
        is behind on DDL is visible cluster-wide, and anti-entropy picks sources from it."""
        self.membership.publish_schema(
            {db: self.participant.schema_version(db) for db in self.databases.names()}
        )

    # -- wiring ---------------------------------------------------------------------------------

    def register(self, router: Router) -> None:
        """RPC methods on the cluster port: 2PC (``txn_handlers``), the commit log, repair, digests and
        snapshots peers pull (``log_server``)."""
        txn_handlers.register(router, self.participant)
        self.log_server.register(router)

    def start(self) -> None:
        self._resolver = asyncio.get_running_loop().create_task(self.participant.run_resolver())
        if self.anti_entropy_interval is not None:
            self.log_pull.start()
        self.gc.start()

    async def ready(self) -> bool:
        """Gossip's promotion check for a joining node: ALIVE (and so counted in quorums and sent
        PREPAREs) only once anti-entropy has caught up with every peer — snapshot and delta included."""
        if self.anti_entropy_interval is None:
            return True
        if self.log_pull.caught_up_at is None:
            self.log_pull.kick()
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
        await self.log_pull.stop()
        await self.barrier.stop()
        self.readers.close()
        await self.gc.stop()
        await self.coordinator.close()
        await self.queues.close()

    def _prepared_by(self, txn: int) -> int | None:
        """The coordinator of a transaction PREPAREd here and not applied yet (None: no such one)."""
        p = self.participant.prepared.get(txn)
        return None if p is None else p.coordinator

    def _coordinator_state(self, txn: int) -> tuple[str, Any]:
        return self.coordinator.state_of(txn)

    async def _ask_peers(self, req: StatusRequest) -> dict[int, Any]:
        """STATUS of a transaction from every alive peer: its answer as received (``read_status``
        decodes it), or why there is none."""
        peers = self.membership.alive_peers()
        payload = req.encode()

        async def ask(addr: str) -> Any:
            try:
                return await self.transport.send(addr, req.method, payload, self.settings.status_timeout)
            except Exception as e:
                return e

        answers = await asyncio.gather(*(ask(a) for a in peers.values()))
        return dict(zip(peers, answers, strict=True))

    async def abort_stuck(self, db: str, txn: int) -> dict[str, Any]:
        """An operator's abort of a transaction prepared here (``commit/operator_abort.py``: the
        resolver's rules, applied now). Raises ``AbortRefused`` or ``NotPending``."""
        return await operator_abort.abort_stuck(
            self.participant,
            self.coordinator,
            db,
            txn,
            ask_peers=self._ask_peers,
            send_abort=self._abort_peers,
        )

    async def _abort_peers(self, req: Abort) -> dict[int, str]:
        """ABORT to every alive peer; per peer ``"ok"`` or why not."""
        peers = self.membership.alive_peers()
        payload = req.encode()

        async def send(addr: str) -> str:
            try:
                ack = Ack.decode(
                    await self.transport.send(addr, req.method, payload, self.settings.status_timeout)
                )
            except Exception as e:
                return f"failed: {str(e) or type(e).__name__}"
            return "ok" if ack.ok else f"refused: {ack.err}"

        answers = await asyncio.gather(*(send(a) for a in peers.values()))
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
            self.readers.forget(name)
            self.log_memory.forget(name)
            self.databases.drop(name, if_exists=True)
            self._publish_schema_versions()

    # -- the engine's entry points --------------------------------------------------------------

    def level(self, requested: str | None) -> str:
        return (requested or self.default_level).upper()

    def schema_version(self, db: str) -> int:
        return self.participant.schema_version(db)

    @property
    def default_read_level(self) -> str:
        """``[replication] default_read_consistency``: the level of a read that names none."""
        return self.settings.read_level.upper()

    async def read_barrier(self, dbs: Collection[str] | None, level: str) -> int:
        """Before a read at ``level`` of ``dbs`` (None: every database): catch up with enough peers that
        the read sees every write acknowledged at a level it intersects (``catchup/read_barrier.py``).
        LOCAL_ONE returns at once. Raises ``ReadBarrierFailed`` (1105) when too few peers answer within
        ``[replication] read_timeout_ms``. Returns the number of peers caught up with."""
        return await self.barrier.wait(dbs, level)

    async def follow_schema(self, db: str) -> bool:
        """``db`` is missing here, or a table of it is: wait (at most ``read_timeout``) for a newer schema
        of it that gossip or a pending PREPARE shows exists (``schema_follow.py``). True when the schema
        changed here meanwhile, so the statement is worth running again."""
        return await self.schema_follower.follow(db, self.settings.read_timeout)

    async def wait_applied(self, ts: Timestamp) -> bool:
        """``SET marmot_read_after``: wait (at most ``read_timeout``) until this node has applied the
        transaction committed at ``ts`` (``causal.py``); False when it has not by then."""
        return await causal.wait_applied(self.participant, self.databases, ts, self.settings.read_timeout)

    def apply_epoch(self, db: str) -> int:
        """Read with the row versions of a dry run (see ``ApplyQueues.epoch``)."""
        return self.queues.epoch(db)

    def table_fingerprints(self, db: str, tables: frozenset[str]) -> dict[str, bytes | None]:
        """This node's schema fingerprint of each of ``tables`` (lower-cased) of ``db``."""
        return self.participant.table_fingerprints(db, tables)

    async def commit_changes(
        self,
        db: str,
        changes: list[RowChange],
        base: list[list[int] | None],
        schema_version: int,
        level: str | None = None,
        epoch: int | None = None,
        table_schemas: dict[str, bytes | None] | None = None,
    ) -> CommitResult:
        rows = encode_transaction(db, self.hlc.peek(), changes)
        body = m.encode_body("dml", rows=rows)
        return await self.coordinator.replicate(
            db,
            body,
            base=base,
            schema_version=schema_version,
            level=self.level(level),
            decoded=m.Body("dml", changes, [], None),
            epoch=epoch,
            table_schemas=table_schemas,
        )

    async def commit_ddl(
        self,
        db: str,
        statements: list[str],
        schema_version: int,
        level: str | None = None,
        tables: list[str] | None = None,
    ) -> CommitResult:
        body = m.encode_body("ddl", ddl=statements)
        return await self.coordinator.replicate(
            db, body, schema_version=schema_version, level=self.level(level), ddl=True, ddl_tables=tables
        )

    async def database_op(self, op: str, name: str, level: str | None = None) -> CommitResult:
        body = m.encode_body("dbop", dbop=(op, name))
        return await self.coordinator.replicate("", body, level=self.level(level), ddl=True)
