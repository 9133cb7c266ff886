"""A JDBC GUI (DBeaver-like) through MariaDB Connector/J: browse the metadata, open a table, edit rows.

``java/GuiProbe.java`` is compiled into the test's temporary directory and run once per module against a
node with a small schema (a parent table with AUTO_INCREMENT, unique and secondary keys; a child table
with a foreign key ON DELETE CASCADE; a view). It prints one JSON object per probe; the tests below assert
on them. Connector/J answers DatabaseMetaData from INFORMATION_SCHEMA queries of its own (``IF(IS_NULLABLE
= 'yes', 1, 0)``, joins of KEY_COLUMN_USAGE and REFERENTIAL_CONSTRAINTS, ``SHOW CREATE TABLE`` for foreign
keys), so these tests check that INFORMATION_SCHEMA answers arbitrary SQL the way MySQL does. Everything runs
twice: with client-side prepared statements (the driver's default) and with ``useServerPrepStmts=true``
(COM_STMT_PREPARE / EXECUTE and binary rows).

Skipped when ``java``/``javac`` or the driver jar (Debian ``libmariadb-java``) are missing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import connect

JAR = Path("/usr/share/java/mariadb-java-client.jar")
SOURCE = Path(__file__).parent / "java" / "GuiProbe.java"
JAVA, JAVAC = shutil.which("java"), shutil.which("javac")
pytestmark = pytest.mark.skipif(
    JAVA is None or JAVAC is None or not JAR.exists(),
    reason="java/javac or MariaDB Connector/J (Debian libmariadb-java) is not installed",
)

SCHEMA = [
    "DROP VIEW IF EXISTS gui_order_totals",
    "DROP TABLE IF EXISTS gui_orders",
    "DROP TABLE IF EXISTS gui_customers",
    """CREATE TABLE gui_customers (
      id INT AUTO_INCREMENT PRIMARY KEY,
      email VARCHAR(191) NOT NULL,
      name VARCHAR(100),
      balance DECIMAL(10,2) NOT NULL DEFAULT 0,
      created DATETIME,
      photo BLOB,
      UNIQUE KEY uq_email (email),
      KEY idx_name (name)
    )""",
    """CREATE TABLE gui_orders (
      id BIGINT AUTO_INCREMENT PRIMARY KEY,
      customer_id INT NOT NULL,
      total DECIMAL(12,2),
      note TEXT,
      KEY idx_customer (customer_id),
      CONSTRAINT fk_gui_orders_customer FOREIGN KEY (customer_id) REFERENCES gui_customers (id) ON DELETE CASCADE
    )""",
    "INSERT INTO gui_customers (id, email, name, balance, created) VALUES "
    "(1, 'a@x.org', 'Ann', 10.50, '2024-01-02 03:04:05'), (2, 'b@x.org', NULL, 0, NULL)",
    "INSERT INTO gui_orders (customer_id, total, note) VALUES (1, 5.25, 'first'), (1, 7.00, NULL), (2, 1.00, 'x')",
    "CREATE VIEW gui_order_totals AS SELECT c.email, SUM(o.total) AS total FROM gui_customers c "
    "JOIN gui_orders o ON o.customer_id = c.id GROUP BY c.email",
]
TAGS = ("", "server:")  # client-side prepared statements, then server-side ones
EDITED_NAME = 'It\'s "new" \\ Ünïcode 🦫'


@pytest.fixture(scope="module")
def probes(node, tmp_path_factory) -> dict[str, dict]:
    c = connect(node)
    try:
        cur = c.cursor()
        for stmt in SCHEMA:
            cur.execute(stmt)
    finally:
        c.close()
    classes = tmp_path_factory.mktemp("jdbc")
    subprocess.run([JAVAC, "-d", str(classes), str(SOURCE)], check=True, capture_output=True, timeout=60)
    url = f"jdbc:mariadb://127.0.0.1:{node.mysql_port}/marmot?user=root&password=&connectTimeout=5000"
    proc = subprocess.run(
        [JAVA, "-cp", f"{classes}:{JAR}", "GuiProbe", url, "marmot"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    out = {}
    for line in proc.stdout.decode("utf-8").splitlines():
        if line.strip():
            obj = json.loads(line)
            out[obj["probe"]] = obj
    assert "done" in out, proc.stdout.decode(errors="replace")[-2000:]
    return out


def ok(probes: dict[str, dict], name: str) -> dict:
    result = probes[name]
    assert "error" not in result, f"{name}: {result}"
    return result


def pick(rows: list[dict], *keys: str) -> list[tuple]:
    return [tuple(r[k] for k in keys) for r in rows]


def test_no_probe_failed(probes):
    failed = {name: p for name, p in probes.items() if "error" in p}
    assert failed == {}


def test_connection_and_catalogs(probes):
    for tag in TAGS:
        product = ok(probes, tag + "product")
        assert (product["name"], product["major"], product["catalog"], product["quote"]) == (
            "MySQL",
            8,
            "marmot",
            "`",
        )
        catalogs = [r["TABLE_CAT"] for r in ok(probes, tag + "getCatalogs")["rows"]]
        assert "marmot" in catalogs and "information_schema" in catalogs
        assert not any(c.startswith("__marmot") for c in catalogs)
        assert ok(probes, tag + "getSchemas")["rows"] == []  # MySQL has catalogs, not schemas
        assert {r["TABLE_TYPE"] for r in ok(probes, tag + "getTableTypes")["rows"]} >= {"TABLE", "VIEW"}


def test_tables_and_views(probes):
    for tag in TAGS:
        rows = pick(ok(probes, tag + "getTables")["rows"], "TABLE_CAT", "TABLE_NAME", "TABLE_TYPE")
        assert rows == [
            ("marmot", "gui_customers", "TABLE"),
            ("marmot", "gui_orders", "TABLE"),
            ("marmot", "gui_order_totals", "VIEW"),
        ]


def test_columns(probes):
    keys = (
        "COLUMN_NAME",
        "TYPE_NAME",
        "DATA_TYPE",
        "COLUMN_SIZE",
        "DECIMAL_DIGITS",
        "NULLABLE",
        "IS_NULLABLE",
        "COLUMN_DEF",
        "ORDINAL_POSITION",
        "IS_AUTOINCREMENT",
    )
    for tag in TAGS:
        assert pick(ok(probes, tag + "getColumns:gui_customers")["rows"], *keys) == [
            # INT AUTO_INCREMENT is widened to BIGINT: it holds cluster-unique 53-bit ids
            ("id", "BIGINT", -5, 19, 0, 0, "NO", None, 1, "YES"),
            ("email", "VARCHAR", 12, 191, None, 0, "NO", None, 2, "NO"),
            ("name", "VARCHAR", 12, 100, None, 1, "YES", None, 3, "NO"),
            ("balance", "DECIMAL", 3, 10, 2, 0, "NO", "0.00", 4, "NO"),
            ("created", "DATETIME", 93, 19, None, 1, "YES", None, 5, "NO"),
            ("photo", "BLOB", -4, 65535, None, 1, "YES", None, 6, "NO"),
        ]
        assert pick(
            ok(probes, tag + "getColumns:gui_orders")["rows"],
            "COLUMN_NAME",
            "TYPE_NAME",
            "NULLABLE",
            "IS_AUTOINCREMENT",
        ) == [
            ("id", "BIGINT", 0, "YES"),
            ("customer_id", "INT", 0, "NO"),
            ("total", "DECIMAL", 1, "NO"),
            ("note", "TEXT", 1, "NO"),
        ]
        view = pick(
            ok(probes, tag + "getColumns:gui_order_totals")["rows"], "COLUMN_NAME", "TYPE_NAME", "NULLABLE"
        )
        assert view[0] == ("email", "VARCHAR", 1) and [v[0] for v in view] == ["email", "total"]


def test_keys_indexes_and_foreign_keys(probes):
    for tag in TAGS:
        for table in ("gui_customers", "gui_orders"):
            assert pick(
                ok(probes, f"{tag}getPrimaryKeys:{table}")["rows"], "COLUMN_NAME", "KEY_SEQ", "PK_NAME"
            ) == [("id", 1, "PRIMARY")]
        assert pick(
            ok(probes, tag + "getIndexInfo:gui_customers")["rows"],
            "NON_UNIQUE",
            "INDEX_NAME",
            "ORDINAL_POSITION",
            "COLUMN_NAME",
        ) == [(0, "PRIMARY", 1, "id"), (0, "uq_email", 1, "email"), (1, "idx_name", 1, "name")]
        assert pick(
            ok(probes, tag + "getIndexInfo:gui_orders")["rows"], "NON_UNIQUE", "INDEX_NAME", "COLUMN_NAME"
        ) == [(0, "PRIMARY", "id"), (1, "idx_customer", "customer_id")]
        imported = ok(probes, tag + "getImportedKeys:gui_orders")["rows"]
        # DatabaseMetaData.importedKeyCascade = 0; no ON UPDATE clause reads as RESTRICT (1), as with MySQL
        assert pick(
            imported,
            "PKTABLE_CAT",
            "PKTABLE_NAME",
            "PKCOLUMN_NAME",
            "FKTABLE_NAME",
            "FKCOLUMN_NAME",
            "KEY_SEQ",
            "UPDATE_RULE",
            "DELETE_RULE",
            "FK_NAME",
        ) == [
            ("marmot", "gui_customers", "id", "gui_orders", "customer_id", 1, 1, 0, "fk_gui_orders_customer")
        ]
        assert ok(probes, tag + "getImportedKeys:gui_customers")["rows"] == []
        exported = ok(probes, tag + "getExportedKeys:gui_customers")["rows"]
        assert pick(
            exported, "PKTABLE_NAME", "PKCOLUMN_NAME", "FKTABLE_NAME", "FKCOLUMN_NAME", "FK_NAME"
        ) == [("gui_customers", "id", "gui_orders", "customer_id", "fk_gui_orders_customer")]


def test_open_table_result_set(probes):
    for tag in TAGS:
        result = ok(probes, tag + "select")
        meta = [(m["label"], m["type_name"], m["class"], m["precision"], m["scale"]) for m in result["meta"]]
        assert meta == [
            ("id", "BIGINT", "java.lang.Long", 20, 0),
            ("email", "VARCHAR", "java.lang.String", 191, 0),
            ("name", "VARCHAR", "java.lang.String", 100, 0),
            ("balance", "DECIMAL", "java.math.BigDecimal", 10, 2),
            ("created", "DATETIME", "java.sql.Timestamp", 19, 0),
            ("photo", "BLOB", "[B", 65535, 0),
        ]
        assert result["rows"] == [
            [1, "a@x.org", "Ann", "10.50", "2024-01-02 03:04:05.0", None],
            [2, "b@x.org", None, "0.00", None, None],
        ]
        view = ok(probes, tag + "select_view")
        assert [m["label"] for m in view["meta"]] == ["email", "total"]
        assert [r[0] for r in view["rows"]] == ["a@x.org", "b@x.org"]


def test_edit_rows_with_parameters(probes):
    for tag in TAGS:
        inserted = ok(probes, tag + "prepared_insert")
        assert inserted["count"] == 1 and inserted["id"] > 2
        found = ok(probes, tag + "prepared_select")
        assert found["rows"] == [
            [
                inserted["id"],
                tag + "new@x.org",
                EDITED_NAME,
                "1234.50",
                "2024-03-04 05:06:07.0",
                "0x00ff275c0a",
            ]
        ]
        assert [m["type_name"] for m in found["meta"]] == [
            "BIGINT",
            "VARCHAR",
            "VARCHAR",
            "DECIMAL",
            "DATETIME",
            "BLOB",
        ]
        assert ok(probes, tag + "prepared_update")["count"] == 1
        assert ok(probes, tag + "prepared_delete")["count"] == 1


def test_gui_statements(probes):
    def sql(template: str) -> dict:
        return ok(probes, "sql:" + template)

    assert sql("SHOW ENGINES")["rows"][0][:2] == ["InnoDB", "DEFAULT"]
    assert ["utf8mb4", "UTF-8 Unicode", "utf8mb4_general_ci", 4] in sql("SHOW CHARSET")["rows"]
    assert any(r[0] == "utf8mb4_general_ci" for r in sql("SHOW COLLATION")["rows"])
    assert sql("SELECT @@GLOBAL.character_set_server, @@GLOBAL.collation_server")["rows"] == [
        ["utf8mb4", "utf8mb4_general_ci"]
    ]
    assert sql("SHOW VARIABLES LIKE 'lower_case_table_names'")["rows"] == [["lower_case_table_names", "0"]]
    assert sql("SHOW FULL PROCESSLIST")["columns"][:3] == ["Id", "User", "Host"]
    assert sql("SHOW FULL TABLES FROM `%1$s`")["rows"] == [
        ["gui_customers", "BASE TABLE"],
        ["gui_order_totals", "VIEW"],
        ["gui_orders", "BASE TABLE"],
    ]
    status = {r[0]: r for r in sql("SHOW TABLE STATUS FROM `%1$s`")["rows"]}
    assert status["gui_customers"][1] == "InnoDB" and status["gui_order_totals"][17] == "VIEW"
    columns = sql(
        "SELECT * FROM information_schema.COLUMNS WHERE TABLE_SCHEMA='%1$s' AND TABLE_NAME='gui_customers' "
        "ORDER BY ORDINAL_POSITION"
    )
    by_name = {r[3]: dict(zip(columns["columns"], r, strict=True)) for r in columns["rows"]}
    assert list(by_name) == ["id", "email", "name", "balance", "created", "photo"]
    assert (by_name["id"]["COLUMN_KEY"], by_name["id"]["EXTRA"]) == ("PRI", "auto_increment")
    assert (by_name["email"]["COLUMN_KEY"], by_name["name"]["COLUMN_KEY"]) == ("UNI", "MUL")
    assert (
        by_name["balance"]["COLUMN_TYPE"] == "decimal(10,2)" and by_name["created"]["DATETIME_PRECISION"] == 0
    )
    stats = sql(
        "SELECT * FROM information_schema.STATISTICS WHERE TABLE_SCHEMA='%1$s' AND "
        "TABLE_NAME='gui_customers' ORDER BY INDEX_NAME, SEQ_IN_INDEX"
    )
    assert [r[5] for r in stats["rows"]] == ["idx_name", "PRIMARY", "uq_email"]  # case-insensitive order
    fks = sql(
        "SELECT kc.CONSTRAINT_NAME, kc.TABLE_NAME, kc.COLUMN_NAME, kc.REFERENCED_TABLE_NAME, "
        "kc.REFERENCED_COLUMN_NAME, rc.UPDATE_RULE, rc.DELETE_RULE FROM information_schema.KEY_COLUMN_USAGE kc "
        "JOIN information_schema.REFERENTIAL_CONSTRAINTS rc ON rc.CONSTRAINT_SCHEMA = kc.CONSTRAINT_SCHEMA "
        "AND rc.CONSTRAINT_NAME = kc.CONSTRAINT_NAME WHERE kc.TABLE_SCHEMA='%1$s' "
        "AND kc.REFERENCED_TABLE_NAME IS NOT NULL ORDER BY kc.CONSTRAINT_NAME, kc.ORDINAL_POSITION"
    )
    assert fks["rows"] == [
        ["fk_gui_orders_customer", "gui_orders", "customer_id", "gui_customers", "id", "NO ACTION", "CASCADE"]
    ]
    constraints = sql(
        "SELECT * FROM information_schema.TABLE_CONSTRAINTS WHERE TABLE_SCHEMA='%1$s' ORDER BY "
        "TABLE_NAME, CONSTRAINT_NAME"
    )["rows"]
    assert [(r[4], r[2], r[5]) for r in constraints] == [
        ("gui_customers", "PRIMARY", "PRIMARY KEY"),
        ("gui_customers", "uq_email", "UNIQUE"),
        ("gui_orders", "fk_gui_orders_customer", "FOREIGN KEY"),
        ("gui_orders", "PRIMARY", "PRIMARY KEY"),
    ]
    assert (
        sql("SELECT * FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA='%1$s'")["rows"] == []
    )
    views = sql("SELECT * FROM information_schema.VIEWS WHERE TABLE_SCHEMA='%1$s'")["rows"]
    assert [v[2] for v in views] == ["gui_order_totals"] and "SUM(`o`.`total`)" in views[0][3]
    assert sql("SELECT * FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA='%1$s'")["rows"] == []
    assert sql("SELECT * FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA='%1$s'")["rows"] == []
    create = sql("SHOW CREATE TABLE `%1$s`.`gui_customers`")["rows"][0][1]
    assert "`id` bigint NOT NULL AUTO_INCREMENT" in create and "UNIQUE KEY `uq_email` (`email`)" in create
    view = sql("SHOW CREATE VIEW `%1$s`.`gui_order_totals`")
    assert view["columns"] == ["View", "Create View", "character_set_client", "collation_connection"]
    assert view["rows"][0][1].startswith(
        "CREATE ALGORITHM=UNDEFINED DEFINER=`root`@`%` SQL SECURITY DEFINER VIEW `gui_order_totals` AS SELECT"
    )
    assert sql("SELECT COUNT(*) FROM `%1$s`.`gui_customers`")["rows"] == [[2]]
    assert [r[0] for r in sql("SELECT * FROM `%1$s`.`gui_customers` LIMIT 0, 200")["rows"]] == [1, 2]


def test_result_set_column_origin_and_flags(probes):
    for tag in TAGS:
        meta = {m["label"]: m for m in ok(probes, tag + "select")["meta"]}
        assert {m["table"] for m in meta.values()} == {"gui_customers"}
        assert meta["id"]["auto_increment"] is True
        assert (meta["id"]["nullable"], meta["email"]["nullable"], meta["name"]["nullable"]) == (0, 0, 1)


def test_view_aggregate_keeps_decimal_type(probes):
    for tag in TAGS:
        view = ok(probes, tag + "select_view")
        assert view["meta"][1]["type_name"] == "DECIMAL"
        assert view["rows"] == [["a@x.org", "12.25"], ["b@x.org", "1.00"]]
