"""One client connection: handshake, authentication and the command loop, on asyncio.

The byte-level protocol lives in ``packets`` (sans-I/O); this module is the edge that owns the
transport. Bytes arrive in ``data_received`` and are cut into packets by the framer; one task per
connection consumes them in order, so commands of one client never overlap, while many clients share
the event loop.

Failure policy: a malformed or oversized packet closes *this* connection (after an ERR packet where the
protocol allows one); a bad statement gets an ERR packet and the connection stays usable; a client that
disappears mid-transaction has its transaction rolled back by ``Session.close``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any, cast

from marmot.engine.context import EngineContext
from marmot.engine.errors import MySQLError
from marmot.engine.kill import kill
from marmot.engine.results import OkResult, ResultSet
from marmot.engine.session import Session
from marmot.mysql import auth, packets
from marmot.mysql import result_packets as encode
from marmot.mysql.constants import Capability, Command, ServerStatus, SetOption
from marmot.mysql.tls import TlsSession
from marmot.mysql.types import ColumnType, mysql_type_for_decl

log = logging.getLogger("marmot.mysql")

NATIVE = "mysql_native_password"
CACHING_SHA2 = "caching_sha2_password"

SERVER_CAPABILITIES = (
    Capability.CLIENT_LONG_PASSWORD
    | Capability.CLIENT_FOUND_ROWS
    | Capability.CLIENT_LONG_FLAG
    | Capability.CLIENT_CONNECT_WITH_DB
    | Capability.CLIENT_NO_SCHEMA
    | Capability.CLIENT_PROTOCOL_41
    | Capability.CLIENT_INTERACTIVE
    | Capability.CLIENT_TRANSACTIONS
    | Capability.CLIENT_SECURE_CONNECTION
    | Capability.CLIENT_MULTI_STATEMENTS
    | Capability.CLIENT_MULTI_RESULTS
    | Capability.CLIENT_PS_MULTI_RESULTS
    | Capability.CLIENT_PLUGIN_AUTH
    | Capability.CLIENT_CONNECT_ATTRS
    | Capability.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
    | Capability.CLIENT_DEPRECATE_EOF
    | Capability.CLIENT_LOCAL_FILES
)


@dataclass
class ServerSettings:
    """What the listener knows that the engine does not: users, TLS, limits."""

    engine: EngineContext
    users: dict[str, str]  # name -> cleartext password
    server_version: str = "8.0.36-marmot"
    auth_plugin: str = NATIVE  # the plugin every account uses; other plugins get an auth switch
    max_allowed_packet: int = 64 * 1024 * 1024
    max_connections: int = 1000
    connect_timeout: float = 10.0  # seconds a client has to log in ([mysql] connect_timeout_seconds)
    ssl_context: ssl.SSLContext | None = None
    connections: set[MySQLConnection] = field(default_factory=set)
    metrics: Any = None  # admin.metrics.Metrics (optional; duck-typed so this layer does not import admin)


@dataclass
class PreparedStatement:
    sql: str
    param_count: int
    columns: list[tuple[str, str | None]]
    param_types: list[tuple[int, bool]] | None = None  # (type code, unsigned) sent by the first execute
    long_data: dict[int, bytearray] = field(default_factory=dict)
    long_data_size: int = 0  # bytes held in long_data: at most max_allowed_packet
    long_data_too_big: bool = False  # more was sent: the next execute fails with 1153


class _Closed(Exception):
    """The peer went away or the connection must be dropped."""


class MySQLConnection(asyncio.Protocol):
    """asyncio protocol speaking the MySQL server side for one client."""

    def __init__(self, settings: ServerSettings, is_unix: bool = False) -> None:
        self.s = settings
        self.is_unix = is_unix
        self.transport: asyncio.Transport | None = None
        self.framer = packets.PacketFramer(settings.max_allowed_packet + 1024)
        self.packets: deque[tuple[int, bytes]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._framing_error: Exception | None = None
        self.capabilities = 0
        self.session: Session | None = None
        self.connection_id = settings.engine.next_connection_id()
        self.salt = auth.new_salt()
        self.statements: dict[int, PreparedStatement] = {}
        # result-set column metadata by the identity of the session's cached column list
        self._column_meta: dict[
            int, tuple[Sequence[encode.Column], tuple[ColumnType, ...], tuple[bytes, ...]]
        ] = {}
        self._next_stmt_id = 1
        self.seq = 0
        self._tls: TlsSession | None = None
        self._paused = False  # the transport's write buffer is above its high-water mark
        self._drain_waiter: asyncio.Future[None] | None = None
        self._handshake_timer: asyncio.TimerHandle | None = None
        # Until the handshake response is read, take one packet at a time: what follows an SSLRequest
        # is TLS, not MySQL packets.
        self._one_packet_only = True

    # -- asyncio.Protocol -----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport; cast, not isinstance: uvloop's transports are no asyncio.Transport subclass
        self.transport = cast(asyncio.Transport, transport)
        self.s.connections.add(self)
        if self.s.metrics is not None:
            self.s.metrics.connection_opened()
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run())
        if self.s.connect_timeout > 0:
            self._handshake_timer = loop.call_later(self.s.connect_timeout, self._handshake_expired)

    def data_received(self, data: bytes) -> None:
        if self._framing_error is not None:
            return
        if self._tls is not None:
            try:
                data = self._tls.receive(data)
            except ssl.SSLError as err:
                self._framing_error = packets.ProtocolError(f"TLS: {err}")
                data = b""
            out = self._tls.pending_output()
            if out and self.transport is not None and not self._closed:
                self.transport.write(out)
        self.framer.feed(data)
        self._extract_packets()

    def _extract_packets(self) -> None:
        try:
            while not (self._one_packet_only and self.packets):
                pkt = self.framer.next_packet()
                if pkt is None:
                    break
                self.packets.append(pkt)
        except packets.ProtocolError as err:
            self._framing_error = err
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        self._cancel_handshake_timer()
        self.resume_writing()  # a writer waiting for the client to read gives up (the task ends)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    def _handshake_expired(self) -> None:
        """MySQL's connect_timeout: a client that has not logged in by now (it sent nothing, or half a
        packet) loses its connection, so half-open connections cannot hold ``max_connections`` slots."""
        self._handshake_timer = None
        if self.session is None and not self._closed:
            log.info("closing connection %d: no login within %gs", self.connection_id, self.s.connect_timeout)
            self.close()

    def _cancel_handshake_timer(self) -> None:
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None

    # -- I/O helpers ----------------------------------------------------------------------------------

    async def _read(self) -> bytes:
        while not self.packets:
            if self._framing_error is not None:
                err = self._framing_error
                if isinstance(err, packets.PacketTooLarge):
                    self._send(
                        packets.err_packet(
                            1153, "08S01", "Got a packet bigger than 'max_allowed_packet' bytes"
                        )
                    )
                raise _Closed(str(err))
            if self._closed:
                raise _Closed("peer closed")
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
            self._waiter = None
        seq, payload = self.packets.popleft()
        self.seq = (seq + 1) & 0xFF
        return payload

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self._closed:
            self.transport.write(self._tls.encrypt(data) if self._tls is not None else data)

    async def _drain(self) -> None:
        """Wait while the client is not reading (the transport's buffer is above its high-water mark).

        A result is written a chunk at a time with this wait in between, so a client that never reads
        holds at most the transport's buffer and one chunk of encoded rows, not its whole result."""
        while self._paused and not self._closed:
            self._drain_waiter = asyncio.get_running_loop().create_future()
            await self._drain_waiter
            self._drain_waiter = None
        if self._closed:
            raise _Closed("peer closed while a result was being sent")

    def _send(self, payload: bytes) -> None:
        data, self.seq = packets.frame(payload, self.seq)
        self._write(data)

    def _send_many(self, payloads: list[bytes]) -> None:
        out = bytearray()
        seq = self.seq
        for p in payloads:
            data, seq = packets.frame(p, seq)
            out += data
        self.seq = seq
        self._write(bytes(out))

    def _status(self, more: bool = False) -> int:
        st = 0
        sess = self.session
        if sess is None or sess.autocommit:
            st = _AUTOCOMMIT
        if sess is not None and sess.status_in_transaction:
            st |= _IN_TRANS
        if more:
            st |= _MORE_RESULTS
        return st

    def _ok(self, result: OkResult | None = None, more: bool = False) -> bytes:
        r = result or OkResult()
        # An info string goes length-encoded: libmariadb and PHP's mysqlnd read it so (as MariaDB servers
        # send it) whatever CLIENT_SESSION_TRACK says; without info the packet simply ends.
        return packets.ok_packet(
            r.affected_rows,
            r.last_insert_id,
            self._status(more),
            r.warnings,
            r.info.encode() if r.info else b"",
            session_track=bool(r.info),
        )

    def _eof(self, more: bool = False) -> bytes:
        if self.capabilities & _DEPRECATE_EOF:
            return packets.ok_packet(0, 0, self._status(more), 0, header=0xFE)
        return packets.eof_packet(0, self._status(more))

    def _internal_error(self, err: Exception) -> None:
        if isinstance(err, UnicodeEncodeError):  # client bytes that are not UTF-8 reached SQLite as text
            self._send(self._error(_invalid_text(err)))
            return
        log.exception("internal error on connection %d", self.connection_id)
        self._send(packets.err_packet(1105, "HY000", f"Internal error: {type(err).__name__}: {err}"))

    def _error(self, err: MySQLError) -> bytes:
        return packets.err_packet(err.code, err.sqlstate, err.message)

    def close(self) -> None:
        if self.transport is not None and not self._closed:
            self.transport.close()
        self._closed = True

    # -- main loop ------------------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            if len(self.s.connections) > self.s.max_connections:
                self.seq = 0
                self._send(packets.err_packet(1040, "08004", "Too many connections"))
                return
            if not await self._handshake():
                return
            while True:
                payload = await self._read()
                if not payload:
                    raise _Closed("empty command packet")
                if not await self._command(payload):
                    return
        except _Closed:
            pass
        except packets.ProtocolError as err:
            log.info("closing connection %d: malformed packet: %s", self.connection_id, err)
            # MySQL's answers before it closes: "Bad handshake" while logging in, else "Malformed packet"
            if self.session is None:
                self._send(packets.err_packet(1043, "08S01", "Bad handshake"))
            else:
                self._send(packets.err_packet(1835, "HY000", f"Malformed communication packet: {err}"))
        except Exception:  # a bug must cost one connection, never the node
            log.exception("closing connection %d after an internal error", self.connection_id)
        finally:
            self._teardown()

    def _teardown(self) -> None:
        self._cancel_handshake_timer()
        if self.session is not None:
            try:
                self.session.close()
            finally:
                self.s.engine.sessions.pop(self.connection_id, None)
                self.session = None
        if self in self.s.connections and self.s.metrics is not None:
            self.s.metrics.connection_closed()
        self.s.connections.discard(self)
        self.close()

    # -- handshake and authentication -----------------------------------------------------------------

    async def _handshake(self) -> bool:
        caps = SERVER_CAPABILITIES
        if self.s.ssl_context is not None:
            caps |= Capability.CLIENT_SSL
        self.seq = 0
        self._send(
            packets.handshake_v10(
                self.connection_id,
                self.s.server_version,
                self.salt,
                int(caps),
                45,
                int(ServerStatus.SERVER_STATUS_AUTOCOMMIT),
                self.s.auth_plugin,
            )
        )
        resp = packets.parse_handshake_response(await self._read())
        if resp.is_ssl_request:
            if self.s.ssl_context is None:
                raise _Closed("client asked for TLS, which is not configured")
            self._start_tls()
            resp = packets.parse_handshake_response(await self._read())
        self._one_packet_only = False
        self._extract_packets()
        self.capabilities = int(resp.capabilities & int(caps))  # a plain int: tested per packet
        ok = await self._authenticate(resp.username, resp.auth_plugin or NATIVE, resp.auth_response)
        if not ok:
            return False
        database = resp.database or None
        try:
            self.session = Session(
                self.s.engine,
                self.connection_id,
                resp.username,
                database,
                client_found_rows=bool(self.capabilities & Capability.CLIENT_FOUND_ROWS),
            )
        except MySQLError as err:
            self._send(self._error(err))
            return False
        except Exception as err:  # a bug in one statement costs that statement, not the connection
            self._internal_error(err)
            return False
        self.session.host = self._peer_host()
        if self.capabilities & Capability.CLIENT_LOCAL_FILES:
            self.session.request_local_file = self._request_local_file
        self.session.kill_connection = self.close  # KILL CONNECTION from another session
        self.s.engine.sessions[self.connection_id] = self.session
        self._cancel_handshake_timer()
        self._send(self._ok())
        return True

    def _peer_host(self) -> str:
        if self.is_unix or self.transport is None:
            return "localhost"
        peer = self.transport.get_extra_info("peername")
        return peer[0] if isinstance(peer, tuple) else "localhost"

    def _start_tls(self) -> None:
        assert self.s.ssl_context is not None
        self._tls = TlsSession(self.s.ssl_context)
        already_read = self.framer.take_unconsumed()
        if already_read:
            self.data_received(already_read)

    async def _authenticate(self, user: str, plugin: str, response: bytes) -> bool:
        """Check the password; switch the client to our plugin when it answered with another one."""
        if plugin != self.s.auth_plugin:
            self._send(packets.auth_switch_request(self.s.auth_plugin, self.salt))
            response = await self._read()
            plugin = self.s.auth_plugin
        password = self.s.users.get(user)
        if plugin == CACHING_SHA2:
            good = password is not None and (
                (password == "" and response in (b"", b"\x00"))
                or (password != "" and auth.verify_caching_sha2_fast(password, self.salt, response))
            )
            if good and password:
                self._send(packets.auth_more_data(auth.FAST_AUTH_SUCCESS))
        else:
            good = password is not None and auth.verify_native(password, self.salt, response)
        if not good:
            using = "YES" if response else "NO"
            self._send(
                packets.err_packet(
                    1045,
                    "28000",
                    f"Access denied for user '{user}'@'{self._peer_host()}' (using password: {using})",
                )
            )
            return False
        return True

    # -- commands -------------------------------------------------------------------------------------

    async def _command(self, payload: bytes) -> bool:
        cmd = payload[0]
        sess = self.session
        assert sess is not None
        if cmd == Command.COM_QUERY:
            await self._query(payload[1:].decode("utf-8", "surrogateescape"))
        elif cmd == Command.COM_STMT_EXECUTE:
            await self._stmt_execute(payload)
        elif cmd == Command.COM_STMT_PREPARE:
            self._stmt_prepare(payload[1:].decode("utf-8", "surrogateescape"))
        elif cmd == Command.COM_PING:
            self._send(self._ok())
        elif cmd == Command.COM_QUIT:
            return False
        elif cmd == Command.COM_INIT_DB:
            try:
                sess.use(payload[1:].decode("utf-8", "replace"))
                self._send(self._ok())
            except MySQLError as err:
                self._send(self._error(err))
        elif cmd == Command.COM_STMT_CLOSE:
            self.statements.pop(packets.parse_stmt_close(payload), None)
        elif cmd == Command.COM_STMT_RESET:
            stmt = self.statements.get(packets.parse_stmt_reset(payload))
            if stmt is None:
                self._send(
                    packets.err_packet(
                        1243, "HY000", "Unknown prepared statement handler given to mysqld_stmt_reset"
                    )
                )
            else:
                _clear_long_data(stmt)
                self._send(self._ok())
        elif cmd == Command.COM_STMT_SEND_LONG_DATA:
            stmt_id, param_id, data = packets.parse_send_long_data(payload)
            stmt = self.statements.get(stmt_id)
            if stmt is not None and param_id < stmt.param_count:
                # appended in place (not bytes + bytes, quadratic in the number of chunks), and bounded
                # as MySQL bounds it: more than max_allowed_packet in all fails the next execute
                if stmt.long_data_size + len(data) > self.s.max_allowed_packet:
                    stmt.long_data_too_big = True
                    stmt.long_data.clear()
                elif not stmt.long_data_too_big:
                    stmt.long_data.setdefault(param_id, bytearray()).extend(data)
                    stmt.long_data_size += len(data)
        elif cmd == Command.COM_FIELD_LIST:
            self._field_list(payload[1:])
        elif cmd == Command.COM_RESET_CONNECTION:
            sess.reset()
            self.statements.clear()
            self._send(self._ok())
        elif cmd == Command.COM_CHANGE_USER:
            return await self._change_user(payload)
        elif cmd == Command.COM_SET_OPTION:
            self._set_option(packets.parse_set_option(payload))
        elif cmd == Command.COM_PROCESS_KILL:  # what old clients send for KILL id
            try:
                kill(sess, int.from_bytes(payload[1:5], "little"), query_only=False)
                self._send(self._ok())
            except MySQLError as err:
                self._send(self._error(err))
        elif cmd == Command.COM_STATISTICS:
            self._send(f"Uptime: 1  Threads: {len(self.s.connections)}  Questions: 0".encode())
        else:
            self._send(packets.err_packet(1047, "08S01", "Unknown command"))
        return True

    def _set_option(self, option: int) -> None:
        """COM_SET_OPTION: switch multi-statement support for the rest of the connection.

        mysqli's ``multi_query`` connects without CLIENT_MULTI_STATEMENTS and turns it on here before
        sending the statements, so this must really change what ``_query`` accepts. MySQL answers EOF.
        """
        if option == SetOption.MULTI_STATEMENTS_ON:
            self.capabilities |= _MULTI_STATEMENTS
        elif option == SetOption.MULTI_STATEMENTS_OFF:
            self.capabilities &= ~_MULTI_STATEMENTS
        else:
            self._send(packets.err_packet(1047, "08S01", "Unknown command"))
            return
        self._send(self._eof())

    async def _query(self, sql: str) -> None:
        sess = self.session
        assert sess is not None
        sess.command, sess.info = "Query", sql[:100]
        try:
            statements = sess.split(sql)
            if not statements:
                raise MySQLError(1065, "42000", "Query was empty")
            if len(statements) > 1 and not self.capabilities & _MULTI_STATEMENTS:
                raise MySQLError(
                    1064,
                    "42000",
                    "You have an error in your SQL syntax; multiple statements "
                    "were sent but the client did not enable CLIENT_MULTI_STATEMENTS",
                )
            last = len(statements) - 1
            metrics = self.s.metrics
            for i, stmt in enumerate(statements):
                started = perf_counter()
                result = await sess.execute(stmt)
                await self._write_result(result, more=i < last, binary=False)
                if metrics is not None:
                    metrics.observe_query(sess.statement_kind, perf_counter() - started, result)
        except _Closed:
            raise  # the client left while its result was being sent: end the connection, no error
        except MySQLError as err:
            log.debug("statement failed: %d %s: %s", err.code, err.message, sql[:500])
            if self.s.metrics is not None:
                self.s.metrics.query_error(err.code, sess.statement_kind)
            self._send(self._error(err))
        except Exception as err:  # a bug in one statement costs that statement, not the connection
            self._internal_error(err)
        finally:
            sess.command, sess.info = "Sleep", ""

    async def _write_result(self, result: OkResult | ResultSet, more: bool, binary: bool) -> None:
        if isinstance(result, OkResult):
            self._send(self._ok(result, more))
            return
        rows = result.rows
        columns = result.columns
        cached = self._column_meta.get(id(columns))
        if cached is not None and cached[0] is columns:
            types, defs = cached[1], cached[2]
        else:
            types = encode.column_types(columns, rows)
            names = tuple(c[0] for c in columns)
            defs = encode.column_definitions(
                names,
                types,
                (self.session.database if self.session else "") or "",
                encode.origins_of(columns),
            )
            if isinstance(columns, list) and all(c[1] for c in columns):  # types come from the schema alone
                if len(self._column_meta) > 256:
                    self._column_meta.clear()
                self._column_meta[id(columns)] = (columns, types, defs)
        rows = encode.fixed_decimals(rows, columns, types)
        rows = encode.unsigned_bigints(rows, types)
        out = [packets.column_count(len(defs)), *defs]
        if not self.capabilities & _DEPRECATE_EOF:
            out.append(packets.eof_packet(0, self._status(more)))
        if len(rows) <= _ROWS_PER_WRITE:  # the common case: one write
            out.extend(encode.binary_rows(rows, types) if binary else encode.text_rows(rows))
            out.append(self._eof(more))
            self._send_many(out)
            return
        # A large result: a chunk of rows per write, waiting for the client to read whenever the
        # transport's buffer is full, and letting the other connections run between chunks.
        self._send_many(out)
        for start in range(0, len(rows), _ROWS_PER_WRITE):
            chunk = rows[start : start + _ROWS_PER_WRITE]
            self._send_many(encode.binary_rows(chunk, types) if binary else encode.text_rows(chunk))
            if self._paused:
                await self._drain()
            else:
                await asyncio.sleep(0)
        self._send(self._eof(more))

    # -- prepared statements --------------------------------------------------------------------------

    async def _request_local_file(self, filename: str) -> bytes:
        """LOAD DATA LOCAL: ask the client for the file and read it (packets until an empty one)."""
        self._send(packets.local_infile_request(filename))
        chunks: list[bytes] = []
        while True:
            chunk = await self._read()
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)

    def _stmt_prepare(self, sql: str) -> None:
        sess = self.session
        assert sess is not None
        try:
            info = sess.prepare(sql)
        except MySQLError as err:
            self._send(self._error(err))
            return
        except Exception as err:  # a bug in one statement costs that statement, not the connection
            self._internal_error(err)
            return
        stmt_id = self._next_stmt_id
        self._next_stmt_id += 1
        self.statements[stmt_id] = PreparedStatement(sql, info.param_count, list(info.columns))
        out = [packets.stmt_prepare_ok(stmt_id, len(info.columns), info.param_count)]
        deprecate_eof = self.capabilities & _DEPRECATE_EOF
        if info.param_count:
            param_def = packets.column_definition("?", 253, charset=63)
            out.extend([param_def] * info.param_count)
            if not deprecate_eof:
                out.append(packets.eof_packet(0, self._status()))
        if info.columns:
            types = tuple(mysql_type_for_decl(d) if d else _VARIANT for _n, d in info.columns)
            out.extend(
                encode.column_definitions(tuple(n for n, _ in info.columns), types, sess.database or "")
            )
            if not deprecate_eof:
                out.append(packets.eof_packet(0, self._status()))
        self._send_many(out)

    async def _stmt_execute(self, payload: bytes) -> None:
        sess = self.session
        assert sess is not None
        if len(payload) < 5:
            raise packets.ProtocolError("short COM_STMT_EXECUTE")
        stmt_id = int.from_bytes(payload[1:5], "little")
        stmt = self.statements.get(stmt_id)
        if stmt is None:
            self._send(
                packets.err_packet(
                    1243, "HY000", "Unknown prepared statement handler given to mysqld_stmt_execute"
                )
            )
            return
        if stmt.long_data_too_big:
            _clear_long_data(stmt)
            self._send(
                packets.err_packet(
                    1153,
                    "08S01",
                    "Parameter of prepared statement which is set through mysql_send_long_data() is "
                    "longer than 'max_allowed_packet' bytes",
                )
            )
            return
        long_data = {i: bytes(b) for i, b in stmt.long_data.items()} if stmt.long_data else {}
        req = packets.parse_stmt_execute(payload, stmt.param_count, stmt.param_types, long_data)
        stmt.param_types = req.param_types
        _clear_long_data(stmt)
        sess.command, sess.info = "Execute", stmt.sql[:100]
        try:
            started = perf_counter()
            result = await sess.execute(stmt.sql, _sqlite_params(req.params))
            await self._write_result(result, more=False, binary=True)
            if self.s.metrics is not None:
                self.s.metrics.observe_query(sess.statement_kind, perf_counter() - started, result)
        except _Closed:
            raise
        except MySQLError as err:
            log.debug("prepared statement failed: %d %s: %s", err.code, err.message, stmt.sql[:500])
            if self.s.metrics is not None:
                self.s.metrics.query_error(err.code, sess.statement_kind)
            self._send(self._error(err))
        except Exception as err:  # a bug in one statement costs that statement, not the connection
            self._internal_error(err)
        finally:
            sess.command, sess.info = "Sleep", ""

    def _field_list(self, payload: bytes) -> None:
        sess = self.session
        assert sess is not None
        table = payload.split(b"\x00", 1)[0].decode("utf-8", "replace")
        try:
            desc = sess.prepare(f"SELECT * FROM `{table.replace('`', '``')}` LIMIT 0")
        except MySQLError as err:
            self._send(self._error(err))
            return
        except Exception as err:  # a bug in one statement costs that statement, not the connection
            self._internal_error(err)
            return
        types = tuple(mysql_type_for_decl(d) if d else _VARIANT for _n, d in desc.columns)
        defs = encode.column_definitions(tuple(n for n, _ in desc.columns), types, sess.database or "")
        self._send_many([*defs, self._eof()])

    async def _change_user(self, payload: bytes) -> bool:
        user, response, database, _charset, plugin = packets.parse_change_user(payload, self.capabilities)
        if self.session is not None:
            self.session.close()
            self.s.engine.sessions.pop(self.connection_id, None)
            self.session = None
        self.statements.clear()
        if not await self._authenticate(user, plugin or NATIVE, response):
            return False
        try:
            self.session = Session(
                self.s.engine,
                self.connection_id,
                user,
                database or None,
                client_found_rows=bool(self.capabilities & Capability.CLIENT_FOUND_ROWS),
            )
        except MySQLError as err:
            self._send(self._error(err))
            return False
        except Exception as err:  # a bug in one statement costs that statement, not the connection
            self._internal_error(err)
            return False
        self.session.kill_connection = self.close  # KILL CONNECTION from another session
        self.s.engine.sessions[self.connection_id] = self.session
        self._send(self._ok())
        return True


def _clear_long_data(stmt: PreparedStatement) -> None:
    """Forget the COM_STMT_SEND_LONG_DATA chunks of a statement (after an execute, or COM_STMT_RESET)."""
    stmt.long_data = {}
    stmt.long_data_size = 0
    stmt.long_data_too_big = False


def _invalid_text(err: UnicodeEncodeError) -> MySQLError:
    """MySQL's 1300 for statement text that is not UTF-8.

    The wire layer decodes statements with ``surrogateescape`` so that non-UTF-8 bytes in string literals
    survive as binary data; anywhere else (an identifier, a literal kept in the statement text) they
    reach SQLite, which takes UTF-8 only. The client sent bytes no utf8mb4 connection may send: say which.
    """
    bad = err.object[err.start : err.end] if isinstance(err.object, str) else ""
    try:
        raw = bad.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that did not come from a byte
        raw = bad.encode("utf-8", "surrogatepass")
    return MySQLError(1300, "HY000", f"Invalid utf8mb4 character string: '{raw.hex().upper()}'")


_VARIANT = ColumnType(253, 0, 0, 45, 0)
# Rows encoded per transport write of a large result set (bounds the bytes held for a slow client).
_ROWS_PER_WRITE = 1000
# Plain ints for the per-packet checks (enum.IntFlag arithmetic costs microseconds per operation).
_AUTOCOMMIT = int(ServerStatus.SERVER_STATUS_AUTOCOMMIT)
_IN_TRANS = int(ServerStatus.SERVER_STATUS_IN_TRANS)
_MORE_RESULTS = int(ServerStatus.SERVER_MORE_RESULTS_EXISTS)
_DEPRECATE_EOF = int(Capability.CLIENT_DEPRECATE_EOF)
_MULTI_STATEMENTS = int(Capability.CLIENT_MULTI_STATEMENTS)


_INT64_MAX = 2**63 - 1


def _sqlite_params(params: list[object]) -> list[object]:
    """A BIGINT UNSIGNED parameter above SQLite's signed 64-bit range goes on as its text (the column check
    and ``__marmot_u64`` read it exactly; SQLite cannot bind it as an integer)."""
    if any(type(v) is int and v > _INT64_MAX for v in params):
        return [str(v) if type(v) is int and v > _INT64_MAX else v for v in params]
    return params
