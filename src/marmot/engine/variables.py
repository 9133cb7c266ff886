"""MySQL system variables (``@@x``, SHOW VARIABLES, SET): defaults and values (SET is parsed in ``statements.py``).

Drivers probe a fixed set of variables on connect (PyMySQL: none; mysql-connector: ``@@session.autocommit``;
SQLAlchemy: ``sql_mode``, ``lower_case_table_names``, ``transaction_isolation``; JDBC: a dozen), so the
defaults below must look like a real MySQL 8.0 server. Session values start as copies of the global ones
and SET SESSION changes only the session's copy; SET GLOBAL changes the node's global map, as in MySQL.
"""

from __future__ import annotations

import re

from marmot.sql import lexer

DEFAULT_SQL_MODE = (
    "ONLY_FULL_GROUP_BY,STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,"
    "NO_ENGINE_SUBSTITUTION"
)

_OPTIMIZER_SWITCH = (
    "index_merge=on,index_merge_union=on,index_merge_sort_union=on,index_merge_intersection=on,"
    "engine_condition_pushdown=on,index_condition_pushdown=on,mrr=on,mrr_cost_based=on,"
    "block_nested_loop=on,batched_key_access=off,materialization=on,semijoin=on,loosescan=on,firstmatch=on,"
    "duplicateweedout=on,subquery_materialization_cost_based=on,use_index_extensions=on,"
    "condition_fanout_filter=on,derived_merge=on,use_invisible_indexes=off,skip_scan=on,hash_join=on,"
    "subquery_to_derived=off,prefer_ordering_index=on,hypergraph_optimizer=off,derived_condition_pushdown=on"
)


def default_globals(server_version: str, max_allowed_packet: int, max_connections: int) -> dict[str, object]:
    """The global variable map of a fresh node."""
    return {
        "autocommit": 1,
        "auto_increment_increment": 1,
        "auto_increment_offset": 1,
        "character_set_client": "utf8mb4",
        "character_set_connection": "utf8mb4",
        "character_set_database": "utf8mb4",
        "character_set_results": "utf8mb4",
        "character_set_server": "utf8mb4",
        "character_set_system": "utf8mb3",
        "collation_connection": "utf8mb4_general_ci",
        "collation_database": "utf8mb4_general_ci",
        "collation_server": "utf8mb4_general_ci",
        "default_storage_engine": "InnoDB",
        "foreign_key_checks": 1,
        "have_ssl": "DISABLED",
        "init_connect": "",
        "innodb_lock_wait_timeout": 50,
        "interactive_timeout": 28800,
        "license": "MIT",
        "lower_case_table_names": 0,
        "max_allowed_packet": max_allowed_packet,
        "max_connections": max_connections,
        "max_execution_time": 0,
        "net_buffer_length": 16384,
        "net_read_timeout": 30,
        "net_write_timeout": 60,
        "performance_schema": 0,
        "query_cache_size": 0,
        "query_cache_type": "OFF",
        "read_only": 0,
        "sql_auto_is_null": 0,
        "sql_mode": DEFAULT_SQL_MODE,
        "sql_select_limit": 18446744073709551615,
        "sql_safe_updates": 0,
        "system_time_zone": "UTC",
        "time_zone": "SYSTEM",
        "transaction_isolation": "REPEATABLE-READ",
        "transaction_read_only": 0,
        "tx_isolation": "REPEATABLE-READ",
        "tx_read_only": 0,
        "unique_checks": 1,
        "version": server_version,
        "version_comment": "Marmot (Python) - distributed SQLite",
        "version_compile_machine": "x86_64",
        "version_compile_os": "Linux",
        "wait_timeout": 28800,
        "warning_count": 0,
        "error_count": 0,
        "marmot_transpilation": "ON",
        # the read level of statements that name none (node.py: [replication] default_read_consistency)
        "marmot_read_consistency": "LOCAL_ONE",
        # the write level of statements that name none (node.py: [replication] default_write_consistency)
        "marmot_write_consistency": "QUORUM",
        # on a replica forwarding writes: the next read waits until this node applied them (replica/)
        "marmot_wait_for_replication": 0,
        # Probed or SET by mysqldump / mariadb-dump, the mysql CLI and JDBC GUIs (DBeaver, Connector/J):
        # MySQL answers SET of an unknown variable with 1193, which aborts a dump.
        "big_tables": 0,
        "bulk_insert_buffer_size": 8388608,
        "character_set_filesystem": "binary",
        "completion_type": "NO_CHAIN",
        "cte_max_recursion_depth": 1000,
        "default_authentication_plugin": "mysql_native_password",
        "default_tmp_storage_engine": "InnoDB",
        "default_week_format": 0,
        "div_precision_increment": 4,
        "explicit_defaults_for_timestamp": 1,
        "group_concat_max_len": 1024,
        "gtid_mode": "OFF",
        "have_query_cache": "NO",
        "information_schema_stats_expiry": 86400,
        "innodb_version": server_version.split("-")[0],
        "lc_messages": "en_US",
        "lc_time_names": "en_US",
        "local_infile": 0,
        "lock_wait_timeout": 31536000,
        "log_bin": 0,
        "long_query_time": 10,
        "max_join_size": 18446744073709551615,
        "max_sort_length": 1024,
        "net_retry_count": 10,
        "old_alter_table": 0,
        "optimizer_switch": _OPTIMIZER_SWITCH,
        "protocol_version": 10,
        "server_id": 1,
        "session_track_schema": 1,
        "session_track_state_change": 0,
        "session_track_system_variables": "time_zone,autocommit,character_set_client,character_set_results,"
        "character_set_connection",
        "session_track_transaction_info": "OFF",
        "sort_buffer_size": 262144,
        "sql_big_selects": 1,
        "sql_buffer_result": 0,
        "sql_log_bin": 1,
        "sql_log_off": 0,
        "sql_notes": 1,
        "sql_quote_show_create": 1,
        "sql_require_primary_key": 0,
        "sql_warnings": 0,
        "thread_handling": "one-thread-per-connection",
        "tmp_table_size": 16777216,
        "updatable_views_with_limit": "YES",
    }


_ON = {"ON": 1, "TRUE": 1, "OFF": 0, "FALSE": 0}
BOOLEAN_VARIABLES = frozenset(
    {
        "autocommit",
        "foreign_key_checks",
        "unique_checks",
        "sql_auto_is_null",
        "sql_safe_updates",
        "read_only",
        "transaction_read_only",
        "tx_read_only",
        "big_tables",
        "sql_big_selects",
        "sql_buffer_result",
        "sql_log_bin",
        "sql_log_off",
        "sql_notes",
        "sql_quote_show_create",
        "sql_require_primary_key",
        "sql_warnings",
        "explicit_defaults_for_timestamp",
        "old_alter_table",
        "local_infile",
        "session_track_schema",
        "session_track_state_change",
        "marmot_wait_for_replication",
    }
)


def simple_value(value_sql: str) -> tuple[bool, object]:
    """(True, value) when the value is a plain literal or keyword we can take without SQLite."""
    text = value_sql.strip()
    up = text.upper()
    if up in _ON:
        return True, _ON[up]
    if up == "DEFAULT":
        return True, None
    if re.fullmatch(r"-?\d+", text):
        return True, int(text)
    if re.fullmatch(r"-?\d*\.\d+", text):
        return True, float(text)
    if len(text) >= 2 and text[0] in "'\"" and text[-1] == text[0]:
        toks = lexer.tokenize(text)
        if len(toks) == 1:
            return True, lexer.unquote_string(text)
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_\-]*", text) and up != "NULL":
        return True, text  # SET sql_mode = TRADITIONAL, SET NAMES-like bare words
    return False, None


def normalize_system_value(name: str, value: object) -> object:
    """Store booleans as 0/1 and keep strings as given (MySQL shows ``ON``/``OFF`` for some of them)."""
    if name in BOOLEAN_VARIABLES:
        if isinstance(value, str):
            up = value.upper()
            if up in _ON:
                return _ON[up]
            if up in ("1", "0"):
                return int(up)
            raise ValueError(f"Variable '{name}' can't be set to the value of '{value}'")
        if isinstance(value, (int, float)) and value in (0, 1):
            return int(value)
        raise ValueError(f"Variable '{name}' can't be set to the value of '{value}'")
    return value


def like_to_regex(pattern: str) -> re.Pattern[str]:
    """A MySQL LIKE pattern (case-insensitive, ``\\`` escapes) as a compiled regex."""
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "%" else "." if c == "_" else re.escape(c))
        i += 1
    return re.compile("^" + "".join(out) + "$", re.IGNORECASE | re.DOTALL)
