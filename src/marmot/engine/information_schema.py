"""INFORMATION_SCHEMA as real SQLite tables, built on demand in an in-memory database.

Why tables rather than hand-answered queries: drivers and GUI tools send arbitrary SQL against
INFORMATION_SCHEMA (joins, WHERE on any column, ORDER BY, COUNT). Materialising the views MySQL defines
into a ``:memory:`` database ATTACHed to the session's connection as ``information_schema`` lets SQLite
answer all of it with MySQL's column names and shapes. The contents are rebuilt when any database's
schema generation (or the set of databases) changed since the last build on that connection.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import apsw

from marmot.engine import table_description
from marmot.engine.results import Row

if TYPE_CHECKING:
    from marmot.engine.connections import SessionConnections

SCHEMA_NAME = "information_schema"

_DDL = """
CREATE TABLE IF NOT EXISTS information_schema.__marmot_built (stamp TEXT);
CREATE TABLE IF NOT EXISTS information_schema.SCHEMATA (CATALOG_NAME TEXT, SCHEMA_NAME TEXT,
  DEFAULT_CHARACTER_SET_NAME TEXT, DEFAULT_COLLATION_NAME TEXT, SQL_PATH TEXT, DEFAULT_ENCRYPTION TEXT);
CREATE TABLE IF NOT EXISTS information_schema.TABLES (TABLE_CATALOG TEXT, TABLE_SCHEMA TEXT, TABLE_NAME TEXT,
  TABLE_TYPE TEXT, ENGINE TEXT, VERSION BIGINT, ROW_FORMAT TEXT, TABLE_ROWS BIGINT, AVG_ROW_LENGTH BIGINT,
  DATA_LENGTH BIGINT, MAX_DATA_LENGTH BIGINT, INDEX_LENGTH BIGINT, DATA_FREE BIGINT, AUTO_INCREMENT BIGINT,
  CREATE_TIME DATETIME, UPDATE_TIME DATETIME, CHECK_TIME DATETIME, TABLE_COLLATION TEXT, CHECKSUM BIGINT,
  CREATE_OPTIONS TEXT, TABLE_COMMENT TEXT);
CREATE TABLE IF NOT EXISTS information_schema.COLUMNS (TABLE_CATALOG TEXT, TABLE_SCHEMA TEXT, TABLE_NAME TEXT,
  COLUMN_NAME TEXT, ORDINAL_POSITION BIGINT, COLUMN_DEFAULT TEXT, IS_NULLABLE TEXT, DATA_TYPE TEXT,
  CHARACTER_MAXIMUM_LENGTH BIGINT, CHARACTER_OCTET_LENGTH BIGINT, NUMERIC_PRECISION BIGINT,
  NUMERIC_SCALE BIGINT, DATETIME_PRECISION BIGINT, CHARACTER_SET_NAME TEXT, COLLATION_NAME TEXT,
  COLUMN_TYPE TEXT, COLUMN_KEY TEXT, EXTRA TEXT, PRIVILEGES TEXT, COLUMN_COMMENT TEXT,
  GENERATION_EXPRESSION TEXT, SRS_ID BIGINT);
CREATE TABLE IF NOT EXISTS information_schema.STATISTICS (TABLE_CATALOG TEXT, TABLE_SCHEMA TEXT,
  TABLE_NAME TEXT, NON_UNIQUE BIGINT, INDEX_SCHEMA TEXT, INDEX_NAME TEXT, SEQ_IN_INDEX BIGINT,
  COLUMN_NAME TEXT, COLLATION TEXT, CARDINALITY BIGINT, SUB_PART BIGINT, PACKED TEXT, NULLABLE TEXT,
  INDEX_TYPE TEXT, COMMENT TEXT, INDEX_COMMENT TEXT, IS_VISIBLE TEXT, EXPRESSION TEXT);
CREATE TABLE IF NOT EXISTS information_schema.KEY_COLUMN_USAGE (CONSTRAINT_CATALOG TEXT,
  CONSTRAINT_SCHEMA TEXT, CONSTRAINT_NAME TEXT, TABLE_CATALOG TEXT, TABLE_SCHEMA TEXT, TABLE_NAME TEXT,
  COLUMN_NAME TEXT, ORDINAL_POSITION BIGINT, POSITION_IN_UNIQUE_CONSTRAINT BIGINT,
  REFERENCED_TABLE_SCHEMA TEXT, REFERENCED_TABLE_NAME TEXT, REFERENCED_COLUMN_NAME TEXT);
CREATE TABLE IF NOT EXISTS information_schema.REFERENTIAL_CONSTRAINTS (CONSTRAINT_CATALOG TEXT,
  CONSTRAINT_SCHEMA TEXT, CONSTRAINT_NAME TEXT, UNIQUE_CONSTRAINT_CATALOG TEXT, UNIQUE_CONSTRAINT_SCHEMA TEXT,
  UNIQUE_CONSTRAINT_NAME TEXT, MATCH_OPTION TEXT, UPDATE_RULE TEXT, DELETE_RULE TEXT, TABLE_NAME TEXT,
  REFERENCED_TABLE_NAME TEXT);
CREATE TABLE IF NOT EXISTS information_schema.TABLE_CONSTRAINTS (CONSTRAINT_CATALOG TEXT,
  CONSTRAINT_SCHEMA TEXT, CONSTRAINT_NAME TEXT, TABLE_SCHEMA TEXT, TABLE_NAME TEXT, CONSTRAINT_TYPE TEXT,
  ENFORCED TEXT);
CREATE TABLE IF NOT EXISTS information_schema.CHECK_CONSTRAINTS (CONSTRAINT_CATALOG TEXT,
  CONSTRAINT_SCHEMA TEXT, CONSTRAINT_NAME TEXT, CHECK_CLAUSE TEXT);
CREATE TABLE IF NOT EXISTS information_schema.VIEWS (TABLE_CATALOG TEXT, TABLE_SCHEMA TEXT, TABLE_NAME TEXT,
  VIEW_DEFINITION TEXT, CHECK_OPTION TEXT, IS_UPDATABLE TEXT, DEFINER TEXT, SECURITY_TYPE TEXT,
  CHARACTER_SET_CLIENT TEXT, COLLATION_CONNECTION TEXT);
CREATE TABLE IF NOT EXISTS information_schema.TRIGGERS (TRIGGER_CATALOG TEXT, TRIGGER_SCHEMA TEXT,
  TRIGGER_NAME TEXT, EVENT_MANIPULATION TEXT, EVENT_OBJECT_CATALOG TEXT, EVENT_OBJECT_SCHEMA TEXT,
  EVENT_OBJECT_TABLE TEXT, ACTION_ORDER BIGINT, ACTION_CONDITION TEXT, ACTION_STATEMENT TEXT,
  ACTION_ORIENTATION TEXT, ACTION_TIMING TEXT, ACTION_REFERENCE_OLD_TABLE TEXT,
  ACTION_REFERENCE_NEW_TABLE TEXT, ACTION_REFERENCE_OLD_ROW TEXT, ACTION_REFERENCE_NEW_ROW TEXT,
  CREATED DATETIME, SQL_MODE TEXT, DEFINER TEXT, CHARACTER_SET_CLIENT TEXT, COLLATION_CONNECTION TEXT,
  DATABASE_COLLATION TEXT);
CREATE TABLE IF NOT EXISTS information_schema.ROUTINES (SPECIFIC_NAME TEXT, ROUTINE_CATALOG TEXT,
  ROUTINE_SCHEMA TEXT, ROUTINE_NAME TEXT, ROUTINE_TYPE TEXT, DATA_TYPE TEXT, ROUTINE_DEFINITION TEXT);
CREATE TABLE IF NOT EXISTS information_schema.PARAMETERS (SPECIFIC_CATALOG TEXT, SPECIFIC_SCHEMA TEXT,
  SPECIFIC_NAME TEXT, ORDINAL_POSITION BIGINT, PARAMETER_MODE TEXT, PARAMETER_NAME TEXT, DATA_TYPE TEXT);
CREATE TABLE IF NOT EXISTS information_schema.EVENTS (EVENT_CATALOG TEXT, EVENT_SCHEMA TEXT, EVENT_NAME TEXT);
CREATE TABLE IF NOT EXISTS information_schema.PARTITIONS (TABLE_CATALOG TEXT, TABLE_SCHEMA TEXT,
  TABLE_NAME TEXT, PARTITION_NAME TEXT, SUBPARTITION_NAME TEXT, PARTITION_ORDINAL_POSITION BIGINT,
  SUBPARTITION_ORDINAL_POSITION BIGINT, PARTITION_METHOD TEXT, SUBPARTITION_METHOD TEXT,
  PARTITION_EXPRESSION TEXT, SUBPARTITION_EXPRESSION TEXT, PARTITION_DESCRIPTION TEXT, TABLE_ROWS BIGINT,
  AVG_ROW_LENGTH BIGINT, DATA_LENGTH BIGINT, MAX_DATA_LENGTH BIGINT, INDEX_LENGTH BIGINT, DATA_FREE BIGINT,
  CREATE_TIME DATETIME, UPDATE_TIME DATETIME, CHECK_TIME DATETIME, CHECKSUM BIGINT, PARTITION_COMMENT TEXT,
  NODEGROUP TEXT, TABLESPACE_NAME TEXT);
CREATE TABLE IF NOT EXISTS information_schema.FILES (FILE_ID BIGINT, FILE_NAME TEXT, FILE_TYPE TEXT,
  TABLESPACE_NAME TEXT, TABLE_CATALOG TEXT, TABLE_SCHEMA TEXT, TABLE_NAME TEXT, LOGFILE_GROUP_NAME TEXT,
  LOGFILE_GROUP_NUMBER BIGINT, ENGINE TEXT, FULLTEXT_KEYS TEXT, DELETED_ROWS BIGINT, UPDATE_COUNT BIGINT,
  FREE_EXTENTS BIGINT, TOTAL_EXTENTS BIGINT, EXTENT_SIZE BIGINT, INITIAL_SIZE BIGINT, MAXIMUM_SIZE BIGINT,
  AUTOEXTEND_SIZE BIGINT, CREATION_TIME DATETIME, LAST_UPDATE_TIME DATETIME, LAST_ACCESS_TIME DATETIME,
  RECOVER_TIME BIGINT, TRANSACTION_COUNTER BIGINT, VERSION BIGINT, ROW_FORMAT TEXT, TABLE_ROWS BIGINT,
  AVG_ROW_LENGTH BIGINT, DATA_LENGTH BIGINT, MAX_DATA_LENGTH BIGINT, INDEX_LENGTH BIGINT, DATA_FREE BIGINT,
  CREATE_TIME DATETIME, UPDATE_TIME DATETIME, CHECK_TIME DATETIME, CHECKSUM BIGINT, STATUS TEXT, EXTRA TEXT);
CREATE TABLE IF NOT EXISTS information_schema.ENGINES (ENGINE TEXT, SUPPORT TEXT, COMMENT TEXT,
  TRANSACTIONS TEXT, XA TEXT, SAVEPOINTS TEXT);
CREATE TABLE IF NOT EXISTS information_schema.CHARACTER_SETS (CHARACTER_SET_NAME TEXT,
  DEFAULT_COLLATE_NAME TEXT, DESCRIPTION TEXT, MAXLEN BIGINT);
CREATE TABLE IF NOT EXISTS information_schema.COLLATIONS (COLLATION_NAME TEXT, CHARACTER_SET_NAME TEXT,
  ID BIGINT, IS_DEFAULT TEXT, IS_COMPILED TEXT, SORTLEN BIGINT, PAD_ATTRIBUTE TEXT);
"""

# MySQL compares INFORMATION_SCHEMA strings case-insensitively (utf8mb3_general_ci): Connector/J computes
# NULLABLE as ``IF(IS_NULLABLE = 'yes', 1, 0)`` and finds keys with ``COLUMN_KEY IN ('PRI', 'pri')``. SQLite
# table names are case-insensitive too, so every text column gets NOCASE.
_DDL = re.sub(r"\b(TEXT)(?=[,)])", "TEXT COLLATE NOCASE", _DDL)

_TABLES = (
    "SCHEMATA",
    "TABLES",
    "COLUMNS",
    "STATISTICS",
    "KEY_COLUMN_USAGE",
    "REFERENTIAL_CONSTRAINTS",
    "TABLE_CONSTRAINTS",
    "CHECK_CONSTRAINTS",
    "VIEWS",
    "TRIGGERS",
    "PARTITIONS",
)


def _data_type(column_type: str) -> str:
    return column_type.split("(")[0].split()[0].lower()


def _lengths(column_type: str) -> tuple[int | None, int | None, int | None, int | None]:
    """(char max length, octet length, numeric precision, numeric scale) as MySQL reports them."""
    dt = _data_type(column_type)
    arg = column_type[column_type.find("(") + 1 : column_type.find(")")] if "(" in column_type else ""
    nums = [int(x) for x in arg.split(",") if x.strip().isdigit()]
    if dt in ("varchar", "char", "varbinary", "binary"):
        n = nums[0] if nums else 255
        return n, n * (4 if "char" in dt else 1), None, None
    if dt in ("text", "longtext", "mediumtext", "tinytext", "json"):
        n = {"tinytext": 255, "text": 65535, "mediumtext": 16777215}.get(dt, 4294967295)
        return n, n, None, None
    if dt in ("blob", "longblob", "mediumblob", "tinyblob"):
        n = {"tinyblob": 255, "blob": 65535, "mediumblob": 16777215}.get(dt, 4294967295)
        return n, n, None, None
    if dt in ("enum", "set"):
        values = [v.replace("''", "'") for v in re.findall(r"'((?:[^']|'')*)'", column_type)]
        n = (
            max(map(len, values), default=0)
            if dt == "enum"
            else sum(map(len, values)) + max(len(values) - 1, 0)
        )
        return n, n * 4, None, None
    precision = {"tinyint": 3, "smallint": 5, "mediumint": 7, "int": 10, "integer": 10, "bigint": 19}
    if dt in precision:
        return None, None, 20 if (dt == "bigint" and "unsigned" in column_type) else precision[dt], 0
    if dt in ("decimal", "numeric"):
        return None, None, nums[0] if nums else 10, nums[1] if len(nums) > 1 else 0
    if dt in ("double", "real"):
        return None, None, 22, None
    if dt == "float":
        return None, None, 12, None
    return None, None, None, None


def _rows_for_database(connections: SessionConnections, db: str) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = {t: [] for t in _TABLES}
    conn = connections.get(db)
    for order, t in enumerate(table_description.user_triggers(conn), 1):
        out["TRIGGERS"].append(
            (
                "def",
                db,
                t.name,
                t.event,
                "def",
                db,
                t.table,
                order,
                None,
                t.body,
                "ROW",
                t.timing,
                None,
                None,
                "OLD",
                "NEW",
                None,
                connections.ctx.global_variables.get("sql_mode", ""),
                "root@%",
                "utf8mb4",
                "utf8mb4_general_ci",
                "utf8mb4_general_ci",
            )
        )
    for name, _kind in table_description.user_objects(conn):
        described = table_description.describe(conn, name)
        if described is None:
            continue
        view = described.is_view
        if view:
            out["VIEWS"].append(
                (
                    "def",
                    db,
                    name,
                    described.view_select,
                    "NONE",
                    "NO",
                    "root@%",
                    "DEFINER",
                    "utf8mb4",
                    "utf8mb4_general_ci",
                )
            )
        out["TABLES"].append(
            (
                "def",
                db,
                name,
                "VIEW" if view else "BASE TABLE",
                None if view else "InnoDB",
                None if view else 10,
                None if view else "Dynamic",
                None,
                0,
                0,
                0,
                0,
                0,
                None,
                None,
                None,
                None,
                None if view else "utf8mb4_general_ci",
                None,
                "",
                "VIEW" if view else "",
            )
        )
        if not view:
            out["PARTITIONS"].append(
                (
                    "def",
                    db,
                    name,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    0,
                    0,
                    0,
                    0,
                    0,
                    None,
                    None,
                    None,
                    None,
                    "",
                    "",
                    None,
                )
            )
        nullable = {c.name: c.nullable for c in described.columns}
        for ix in described.indexes:
            for seq, col in enumerate(ix.columns, 1):
                out["STATISTICS"].append(
                    (
                        "def",
                        db,
                        name,
                        0 if ix.unique else 1,
                        db,
                        ix.name,
                        seq,
                        col,
                        "A",
                        None,
                        None,
                        None,
                        "YES" if nullable.get(col) else "",
                        "BTREE",
                        "",
                        "",
                        "YES",
                        None,
                    )
                )
            if ix.unique:
                out["TABLE_CONSTRAINTS"].append(
                    ("def", db, ix.name, db, name, "PRIMARY KEY" if ix.primary else "UNIQUE", "YES")
                )
                for seq, col in enumerate(ix.columns, 1):
                    out["KEY_COLUMN_USAGE"].append(
                        ("def", db, ix.name, "def", db, name, col, seq, None, None, None, None)
                    )
        for fk in described.foreign_keys:
            parent = table_description.describe(conn, fk.parent)
            unique_name = (
                next(
                    (ix.name for ix in parent.indexes if ix.unique and ix.columns == fk.parent_columns),
                    "PRIMARY",
                )
                if parent is not None
                else "PRIMARY"
            )
            out["TABLE_CONSTRAINTS"].append(("def", db, fk.name, db, name, "FOREIGN KEY", "YES"))
            out["REFERENTIAL_CONSTRAINTS"].append(
                (
                    "def",
                    db,
                    fk.name,
                    "def",
                    db,
                    unique_name,
                    "NONE",
                    fk.on_update,
                    fk.on_delete,
                    name,
                    fk.parent,
                )
            )
            for pos, (col, ref_col) in enumerate(zip(fk.columns, fk.parent_columns, strict=False), 1):
                out["KEY_COLUMN_USAGE"].append(
                    ("def", db, fk.name, "def", db, name, col, pos, pos, db, fk.parent, ref_col)
                )
        for ck in described.checks:
            out["TABLE_CONSTRAINTS"].append(("def", db, ck.name, db, name, "CHECK", "YES"))
            out["CHECK_CONSTRAINTS"].append(("def", db, ck.name, ck.clause))
        for c in described.columns:
            char_len, octets, precision, scale = _lengths(c.type)
            is_text = char_len is not None and "blob" not in c.type and "binary" not in c.type
            out["COLUMNS"].append(
                (
                    "def",
                    db,
                    name,
                    c.name,
                    c.position,
                    c.default,
                    "YES" if c.nullable else "NO",
                    c.data_type,
                    char_len,
                    octets,
                    precision,
                    scale,
                    _datetime_precision(c.type),
                    "utf8mb4" if is_text else None,
                    "utf8mb4_general_ci" if is_text else None,
                    c.type,
                    c.key,
                    c.extra,
                    "select,insert,update,references",
                    "",
                    c.generated,
                    None,
                )
            )
    return out


def _datetime_precision(column_type: str) -> int | None:
    dt = _data_type(column_type)
    if dt not in ("datetime", "timestamp", "time"):
        return None
    arg = column_type[column_type.find("(") + 1 : column_type.find(")")] if "(" in column_type else "0"
    return int(arg) if arg.isdigit() else 0


def refresh(connections: SessionConnections, conn: apsw.Connection) -> None:
    """(Re)build the information_schema tables on ``conn`` if any schema changed since the last build.

    The stamp of the last build (every database's schema generation) is kept in the attached database
    itself, written in the same savepoint as the tables: the ``:memory:`` database takes part in the
    connection's transactions, so a ``ROLLBACK [TO SAVEPOINT]`` that undoes a rebuild undoes its stamp too
    and the next query rebuilds (mysqldump --single-transaction does SAVEPOINT / ROLLBACK TO per table).
    """
    databases = connections.ctx.databases
    names = databases.names()
    stamp = repr(tuple((n, databases.generation(n)) for n in names))
    try:
        built = conn.execute("SELECT stamp FROM information_schema.__marmot_built").fetchone()
    except apsw.SQLError:
        built = None
    if built is not None and built[0] == stamp:
        return
    conn.execute(_DDL)
    conn.execute("SAVEPOINT __marmot_is")
    try:
        for table in _TABLES:
            conn.execute(f"DELETE FROM information_schema.{table}")
        for name in names:
            conn.execute(
                "INSERT INTO information_schema.SCHEMATA VALUES ('def', ?, 'utf8mb4', 'utf8mb4_general_ci', "
                "NULL, 'NO')",
                (name,),
            )
            for table, rows in _rows_for_database(connections, name).items():
                if rows:
                    marks = ",".join("?" * len(rows[0]))
                    conn.executemany(f"INSERT INTO information_schema.{table} VALUES ({marks})", rows)
        conn.execute(
            "INSERT INTO information_schema.SCHEMATA VALUES ('def', 'information_schema', 'utf8mb3', "
            "'utf8mb3_general_ci', NULL, 'NO')"
        )
        if not conn.execute("SELECT 1 FROM information_schema.ENGINES").fetchone():
            conn.execute(
                "INSERT INTO information_schema.ENGINES VALUES ('InnoDB', 'DEFAULT', "
                "'SQLite storage replicated by Marmot', 'YES', 'NO', 'YES')"
            )
            conn.execute(
                "INSERT INTO information_schema.CHARACTER_SETS VALUES ('utf8mb4', 'utf8mb4_general_ci', "
                "'UTF-8 Unicode', 4), ('binary', 'binary', 'Binary pseudo charset', 1)"
            )
            conn.execute(
                "INSERT INTO information_schema.COLLATIONS VALUES "
                "('utf8mb4_general_ci', 'utf8mb4', 45, 'Yes', 'Yes', 1, 'PAD SPACE'), "
                "('utf8mb4_bin', 'utf8mb4', 46, '', 'Yes', 1, 'PAD SPACE'), "
                "('utf8mb4_unicode_ci', 'utf8mb4', 224, '', 'Yes', 8, 'PAD SPACE'), "
                "('utf8mb4_0900_ai_ci', 'utf8mb4', 255, '', 'Yes', 0, 'NO PAD'), "
                "('binary', 'binary', 63, 'Yes', 'Yes', 1, 'NO PAD')"
            )
        conn.execute("DELETE FROM information_schema.__marmot_built")
        conn.execute("INSERT INTO information_schema.__marmot_built VALUES (?)", (stamp,))
        conn.execute("RELEASE __marmot_is")
    except BaseException:
        conn.execute("ROLLBACK TO __marmot_is; RELEASE __marmot_is")
        raise
