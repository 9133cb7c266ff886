"""Numeric constants of the MySQL client/server protocol.

These are facts of the wire format (capability bits, command bytes, status flags, column type codes,
column flags, charset ids), collected in one module so the codec (`packets`), the type mapper (`types`)
and the connection loop all speak the same names. The enums are ``IntEnum``/``IntFlag`` so they can be
passed straight to ``struct`` and compared with raw integers read off the wire without conversions.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag


class Capability(IntFlag):
    """Capability flags exchanged in the handshake (server offers, client answers with a subset)."""

    CLIENT_LONG_PASSWORD = 1 << 0
    CLIENT_FOUND_ROWS = 1 << 1
    CLIENT_LONG_FLAG = 1 << 2
    CLIENT_CONNECT_WITH_DB = 1 << 3
    CLIENT_NO_SCHEMA = 1 << 4
    CLIENT_COMPRESS = 1 << 5
    CLIENT_ODBC = 1 << 6
    CLIENT_LOCAL_FILES = 1 << 7
    CLIENT_IGNORE_SPACE = 1 << 8
    CLIENT_PROTOCOL_41 = 1 << 9
    CLIENT_INTERACTIVE = 1 << 10
    CLIENT_SSL = 1 << 11
    CLIENT_IGNORE_SIGPIPE = 1 << 12
    CLIENT_TRANSACTIONS = 1 << 13
    CLIENT_RESERVED = 1 << 14
    CLIENT_SECURE_CONNECTION = 1 << 15  # a.k.a. CLIENT_RESERVED2: 1-byte-length auth data
    CLIENT_MULTI_STATEMENTS = 1 << 16
    CLIENT_MULTI_RESULTS = 1 << 17
    CLIENT_PS_MULTI_RESULTS = 1 << 18
    CLIENT_PLUGIN_AUTH = 1 << 19
    CLIENT_CONNECT_ATTRS = 1 << 20
    CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA = 1 << 21
    CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS = 1 << 22
    CLIENT_SESSION_TRACK = 1 << 23
    CLIENT_DEPRECATE_EOF = 1 << 24
    CLIENT_OPTIONAL_RESULTSET_METADATA = 1 << 25
    CLIENT_ZSTD_COMPRESSION_ALGORITHM = 1 << 26
    CLIENT_QUERY_ATTRIBUTES = 1 << 27
    MULTI_FACTOR_AUTHENTICATION = 1 << 28
    CLIENT_CAPABILITY_EXTENSION = 1 << 29
    CLIENT_SSL_VERIFY_SERVER_CERT = 1 << 30
    CLIENT_REMEMBER_OPTIONS = 1 << 31


class Command(IntEnum):
    """First byte of every packet a client sends in the command phase."""

    COM_SLEEP = 0x00
    COM_QUIT = 0x01
    COM_INIT_DB = 0x02
    COM_QUERY = 0x03
    COM_FIELD_LIST = 0x04
    COM_CREATE_DB = 0x05
    COM_DROP_DB = 0x06
    COM_REFRESH = 0x07
    COM_SHUTDOWN = 0x08
    COM_STATISTICS = 0x09
    COM_PROCESS_INFO = 0x0A
    COM_CONNECT = 0x0B
    COM_PROCESS_KILL = 0x0C
    COM_DEBUG = 0x0D
    COM_PING = 0x0E
    COM_TIME = 0x0F
    COM_DELAYED_INSERT = 0x10
    COM_CHANGE_USER = 0x11
    COM_BINLOG_DUMP = 0x12
    COM_TABLE_DUMP = 0x13
    COM_CONNECT_OUT = 0x14
    COM_REGISTER_SLAVE = 0x15
    COM_STMT_PREPARE = 0x16
    COM_STMT_EXECUTE = 0x17
    COM_STMT_SEND_LONG_DATA = 0x18
    COM_STMT_CLOSE = 0x19
    COM_STMT_RESET = 0x1A
    COM_SET_OPTION = 0x1B
    COM_STMT_FETCH = 0x1C
    COM_DAEMON = 0x1D
    COM_BINLOG_DUMP_GTID = 0x1E
    COM_RESET_CONNECTION = 0x1F
    COM_CLONE = 0x20
    COM_SUBSCRIBE_GROUP_REPLICATION_STREAM = 0x21


class ServerStatus(IntFlag):
    """Status flags carried by OK and EOF packets (and the initial handshake)."""

    SERVER_STATUS_IN_TRANS = 0x0001
    SERVER_STATUS_AUTOCOMMIT = 0x0002
    SERVER_MORE_RESULTS_EXISTS = 0x0008
    SERVER_QUERY_NO_GOOD_INDEX_USED = 0x0010
    SERVER_QUERY_NO_INDEX_USED = 0x0020
    SERVER_STATUS_CURSOR_EXISTS = 0x0040
    SERVER_STATUS_LAST_ROW_SENT = 0x0080
    SERVER_STATUS_DB_DROPPED = 0x0100
    SERVER_STATUS_NO_BACKSLASH_ESCAPES = 0x0200
    SERVER_STATUS_METADATA_CHANGED = 0x0400
    SERVER_QUERY_WAS_SLOW = 0x0800
    SERVER_PS_OUT_PARAMS = 0x1000
    SERVER_STATUS_IN_TRANS_READONLY = 0x2000
    SERVER_SESSION_STATE_CHANGED = 0x4000


class FieldType(IntEnum):
    """Column / parameter type codes (``enum_field_types``)."""

    DECIMAL = 0
    TINY = 1
    SHORT = 2
    LONG = 3
    FLOAT = 4
    DOUBLE = 5
    NULL = 6
    TIMESTAMP = 7
    LONGLONG = 8
    INT24 = 9
    DATE = 10
    TIME = 11
    DATETIME = 12
    YEAR = 13
    NEWDATE = 14  # internal to the server, never on the wire
    VARCHAR = 15
    BIT = 16
    TIMESTAMP2 = 17  # internal
    DATETIME2 = 18  # internal
    TIME2 = 19  # internal
    TYPED_ARRAY = 20  # replication only
    VECTOR = 242
    INVALID = 243
    BOOL = 244  # placeholder in the server, never on the wire
    JSON = 245
    NEWDECIMAL = 246
    ENUM = 247
    SET = 248
    TINY_BLOB = 249
    MEDIUM_BLOB = 250
    LONG_BLOB = 251
    BLOB = 252
    VAR_STRING = 253
    STRING = 254
    GEOMETRY = 255


class ColumnFlag(IntFlag):
    """Column definition flags (only the low 16 bits travel in a column definition packet)."""

    NOT_NULL = 1
    PRI_KEY = 2
    UNIQUE_KEY = 4
    MULTIPLE_KEY = 8
    BLOB = 16
    UNSIGNED = 32
    ZEROFILL = 64
    BINARY = 128
    ENUM = 256
    AUTO_INCREMENT = 512
    TIMESTAMP = 1024
    SET = 2048
    NO_DEFAULT_VALUE = 4096
    ON_UPDATE_NOW = 8192
    PART_KEY = 16384
    NUM = 32768


class CursorType(IntFlag):
    """The ``flags`` byte of COM_STMT_EXECUTE."""

    NO_CURSOR = 0
    READ_ONLY = 1
    FOR_UPDATE = 2
    SCROLLABLE = 4
    PARAMETER_COUNT_AVAILABLE = 8


class SetOption(IntEnum):
    """Argument of COM_SET_OPTION."""

    MULTI_STATEMENTS_ON = 0
    MULTI_STATEMENTS_OFF = 1


# Charset (collation) ids as sent in the handshake and in column definitions.
UTF8_GENERAL_CI = 33
UTF8MB4_GENERAL_CI = 45
BINARY_CHARSET = 63
UTF8MB4_0900_AI_CI = 255

# Largest payload of one physical packet; a logical packet of this size or more is split.
MAX_PACKET_PAYLOAD = 0xFFFFFF

# The flag bit in a COM_STMT_EXECUTE parameter type that marks the value as unsigned.
PARAM_UNSIGNED_FLAG = 0x80
