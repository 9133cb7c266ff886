"""INFORMATION_SCHEMA as real SQLite tables, built on demand in an in-memory database.

Why tables rather than hand-answered queries: drivers and GUI tools send arbitrary SQL against
INFORMATION_SCHEMA (joins, WHERE on any column, ORDER BY, COUNT). Materialising the views MySQL defines
into a ``:memory:`` database ATTACHed to the session's connection as ``information_schema`` lets SQLite
answer all of it with MySQL's column names and shapes. The contents are rebuilt when any database's
schema generation (or the set of databases) changed since the last build on that connection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import apsw

from marmot.engine.metadata import mysql_column_type

if TYPE_CHECKING:
    from marmot.engine.session import Session

SCHEMA_NAME = "information_schema"

_DDL = """
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
CREATE TABLE IF NOT EXISTS information_schema.VIEWS (TABLE_CATALOG TEXT, TABLE_SCHEMA TEXT, TABLE_NAME TEXT,
  VIEW_DEFINITION TEXT, CHECK_OPTION TEXT, IS_UPDATABLE TEXT, DEFINER TEXT, SECURITY_TYPE TEXT,
  CHARACTER_SET_CLIENT TEXT, COLLATION_CONNECTION TEXT);
CREATE TABLE IF NOT EXISTS information_schema.TRIGGERS (TRIGGER_CATALOG TEXT, TRIGGER_SCHEMA TEXT,
  TRIGGER_NAME TEXT, EVENT_MANIPULATION TEXT, EVENT_OBJECT_CATALOG TEXT, EVENT_OBJECT_SCHEMA TEXT,
  EVENT_OBJECT_TABLE TEXT, ACTION_ORDER BIGINT, ACTION_CONDITION TEXT, ACTION_STATEMENT TEXT,
  ACTION_ORIENTATION TEXT, ACTION_TIMING TEXT);
CREATE TABLE IF NOT EXISTS information_schema.ROUTINES (SPECIFIC_NAME TEXT, ROUTINE_CATALOG TEXT,
  ROUTINE_SCHEMA TEXT, ROUTINE_NAME TEXT, ROUTINE_TYPE TEXT, DATA_TYPE TEXT, ROUTINE_DEFINITION TEXT);
CREATE TABLE IF NOT EXISTS information_schema.PARAMETERS (SPECIFIC_CATALOG TEXT, SPECIFIC_SCHEMA TEXT,
  SPECIFIC_NAME TEXT, ORDINAL_POSITION BIGINT, PARAMETER_MODE TEXT, PARAMETER_NAME TEXT, DATA_TYPE TEXT);
CREATE TABLE IF NOT EXISTS information_schema.EVENTS (EVENT_CATALOG TEXT, EVENT_SCHEMA TEXT, EVENT_NAME TEXT);
CREATE TABLE IF NOT EXISTS information_schema.PARTITIONS (TABLE_CATALOG TEXT, TABLE_SCHEMA TEXT,
  TABLE_NAME TEXT, PARTITION_NAME TEXT, TABLE_ROWS BIGINT);
CREATE TABLE IF NOT EXISTS information_schema.ENGINES (ENGINE TEXT, SUPPORT TEXT, COMMENT TEXT,
  TRANSACTIONS TEXT, XA TEXT, SAVEPOINTS TEXT);
CREATE TABLE IF NOT EXISTS information_schema.CHARACTER_SETS (CHARACTER_SET_NAME TEXT,
  DEFAULT_COLLATE_NAME TEXT, DESCRIPTION TEXT, MAXLEN BIGINT);
CREATE TABLE IF NOT EXISTS information_schema.COLLATIONS (COLLATION_NAME TEXT, CHARACTER_SET_NAME TEXT,
  ID BIGINT, IS_DEFAULT TEXT, IS_COMPILED TEXT, SORTLEN BIGINT, PAD_ATTRIBUTE TEXT);
"""

_TABLES = ("SCHEMATA", "TABLES", "COLUMNS", "STATISTICS", "KEY_COLUMN_USAGE", "REFERENTIAL_CONSTRAINTS",
           "TABLE_CONSTRAINTS", "VIEWS", "TRIGGERS")


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


def _rows_for_database(session: Session, db: str) -> dict[str, list[tuple]]:
    out: dict[str, list[tuple]] = {t: [] for t in _TABLES}
    conn = session._conn(db)
    objects = conn.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
        "AND name NOT LIKE '\\_\\_marmot%' ESCAPE '\\' ORDER BY name"
    ).fetchall()
    for kind, name, tbl, sql in objects:
        if kind == "trigger":
            timing = "BEFORE" if " BEFORE " in (sql or "").upper() else "AFTER"
            event = next((e for e in ("INSERT", "UPDATE", "DELETE") if f" {e} " in (sql or "").upper()), "INSERT")
            out["TRIGGERS"].append(("def", db, name, event, "def", db, tbl, 1, None, sql, "ROW", timing))
            continue
        if kind not in ("table", "view"):
            continue
        if kind == "view":
            out["VIEWS"].append(("def", db, name, sql, "NONE", "NO", "root@%", "DEFINER", "utf8mb4",
                                 "utf8mb4_general_ci"))
        rows = None
        auto = "AUTOINCREMENT" in (sql or "").upper()
        out["TABLES"].append(("def", db, name, "VIEW" if kind == "view" else "BASE TABLE",
                              None if kind == "view" else "InnoDB", 10, "Dynamic", rows, 0, 0, 0, 0, 0, None,
                              None, None, None, "utf8mb4_general_ci", None, "", "VIEW" if kind == "view" else ""))
        info = conn.execute(f'PRAGMA table_xinfo("{name}")').fetchall()
        uniques: set[str] = set()
        multiples: set[str] = set()
        indexes = conn.execute(f'PRAGMA index_list("{name}")').fetchall() if kind == "table" else []
        pk_cols = [c[1] for c in sorted(info, key=lambda c: c[5]) if c[5]]
        for seq, col in enumerate(pk_cols, 1):
            out["STATISTICS"].append(("def", db, name, 0, db, "PRIMARY", seq, col, "A", None, None, None, "",
                                      "BTREE", "", "", "YES", None))
            out["KEY_COLUMN_USAGE"].append(("def", db, "PRIMARY", "def", db, name, col, seq, None, None, None,
                                            None))
        if pk_cols:
            out["TABLE_CONSTRAINTS"].append(("def", db, "PRIMARY", db, name, "PRIMARY KEY", "YES"))
        for idx in indexes:
            if idx[3] == "pk":
                continue
            idx_name = idx[1].split("__", 1)[1] if "__" in idx[1] else idx[1]
            cols = conn.execute(f'PRAGMA index_info("{idx[1]}")').fetchall()
            for c in cols:
                out["STATISTICS"].append(("def", db, name, 0 if idx[2] else 1, db, idx_name, c[0] + 1, c[2], "A",
                                          None, None, None, "YES", "BTREE", "", "", "YES", None))
            if idx[2]:
                out["TABLE_CONSTRAINTS"].append(("def", db, idx_name, db, name, "UNIQUE", "YES"))
                for c in cols:
                    out["KEY_COLUMN_USAGE"].append(("def", db, idx_name, "def", db, name, c[2], c[0] + 1, None,
                                                    None, None, None))
                if len(cols) == 1:
                    uniques.add(cols[0][2])
            if cols and not (idx[2] and len(cols) == 1):
                multiples.add(cols[0][2])
        if kind == "table":
            for fk in _foreign_keys(conn, name):
                fk_name, ref_table, pairs, on_update, on_delete = fk
                out["TABLE_CONSTRAINTS"].append(("def", db, fk_name, db, name, "FOREIGN KEY", "YES"))
                out["REFERENTIAL_CONSTRAINTS"].append(("def", db, fk_name, "def", db, "PRIMARY", "NONE",
                                                       on_update, on_delete, name, ref_table))
                for pos, (col, ref_col) in enumerate(pairs, 1):
                    out["KEY_COLUMN_USAGE"].append(("def", db, fk_name, "def", db, name, col, pos, pos, db,
                                                    ref_table, ref_col))
        for cid, col, decl, notnull, default, pk, hidden in info:
            if hidden:
                continue
            ctype = mysql_column_type(decl)
            char_len, octets, precision, scale = _lengths(ctype)
            is_text = char_len is not None and "blob" not in ctype and "binary" not in ctype
            key = "PRI" if pk else "UNI" if col in uniques else "MUL" if col in multiples else ""
            extra = "auto_increment" if pk and auto and str(decl).upper() == "INTEGER" else ""
            if isinstance(default, str) and len(default) >= 2 and default[0] == default[-1] == "'":
                default = default[1:-1].replace("''", "'")
            out["COLUMNS"].append(("def", db, name, col, cid + 1, default, "NO" if (notnull or pk) else "YES",
                                   _data_type(ctype), char_len, octets, precision, scale, None,
                                   "utf8mb4" if is_text else None, "utf8mb4_general_ci" if is_text else None,
                                   ctype, key, extra, "select,insert,update,references", "", "", None))
    return out


def _foreign_keys(conn: apsw.Connection, table: str) -> list[tuple[str, str, list[tuple[str, str]], str, str]]:
    groups: dict[int, list[tuple]] = {}
    for row in conn.execute(f'PRAGMA foreign_key_list("{table}")').fetchall():
        groups.setdefault(row[0], []).append(row)
    out = []
    for fk_id, rows in sorted(groups.items()):
        rows.sort(key=lambda r: r[1])
        pairs = [(r[3], r[4] or "id") for r in rows]
        out.append((f"{table}_ibfk_{fk_id + 1}", rows[0][2], pairs, rows[0][5], rows[0][6]))
    return out


def refresh(session: Session, conn: apsw.Connection) -> None:
    """(Re)build the information_schema tables on ``conn`` if any schema changed since the last build."""
    databases = session.ctx.databases
    names = databases.names()
    stamp = tuple((n, databases.generation(n)) for n in names)
    cache = session._info_schema_stamps
    if cache.get(conn) == stamp:
        return
    conn.execute(_DDL)
    conn.execute("SAVEPOINT __marmot_is")
    try:
        for table in _TABLES:
            conn.execute(f"DELETE FROM information_schema.{table}")
        for name in names:
            conn.execute("INSERT INTO information_schema.SCHEMATA VALUES ('def', ?, 'utf8mb4', 'utf8mb4_general_ci', "
                         "NULL, 'NO')", (name,))
            for table, rows in _rows_for_database(session, name).items():
                if rows:
                    marks = ",".join("?" * len(rows[0]))
                    conn.executemany(f"INSERT INTO information_schema.{table} VALUES ({marks})", rows)
        conn.execute("INSERT INTO information_schema.SCHEMATA VALUES ('def', 'information_schema', 'utf8mb3', "
                     "'utf8mb3_general_ci', NULL, 'NO')")
        if not conn.execute("SELECT 1 FROM information_schema.ENGINES").fetchone():
            conn.execute("INSERT INTO information_schema.ENGINES VALUES ('InnoDB', 'DEFAULT', "
                         "'SQLite storage replicated by Marmot', 'YES', 'NO', 'YES')")
            conn.execute("INSERT INTO information_schema.CHARACTER_SETS VALUES ('utf8mb4', 'utf8mb4_general_ci', "
                         "'UTF-8 Unicode', 4), ('binary', 'binary', 'Binary pseudo charset', 1)")
            conn.execute("INSERT INTO information_schema.COLLATIONS VALUES "
                         "('utf8mb4_general_ci', 'utf8mb4', 45, 'Yes', 'Yes', 1, 'PAD SPACE'), "
                         "('utf8mb4_bin', 'utf8mb4', 46, '', 'Yes', 1, 'PAD SPACE'), "
                         "('utf8mb4_unicode_ci', 'utf8mb4', 224, '', 'Yes', 8, 'PAD SPACE'), "
                         "('utf8mb4_0900_ai_ci', 'utf8mb4', 255, '', 'Yes', 0, 'NO PAD'), "
                         "('binary', 'binary', 63, 'Yes', 'Yes', 1, 'NO PAD')")
        conn.execute("RELEASE __marmot_is")
    except BaseException:
        conn.execute("ROLLBACK TO __marmot_is; RELEASE __marmot_is")
        raise
    cache[conn] = stamp
