"""Backup and restore with the stock tools: ``mariadb-dump`` from one node, ``mysql < dump.sql`` into a fresh one.

mariadb-dump probes the server before it writes a line (``SET SQL_QUOTE_SHOW_CREATE=1``,
``SELECT ... FROM INFORMATION_SCHEMA.FILES``, ``INFORMATION_SCHEMA.TABLES``/``COLUMNS``/``TRIGGERS``,
``SHOW CREATE TABLE`` with ``character_set_results = binary``, ``LOCK TABLES ... READ /*!32311 LOCAL */``,
``SELECT /*!40001 SQL_NO_CACHE */ ...``), and the dump it writes is a script of ``/*!40101 SET ... */``
version comments, ``DROP TABLE IF EXISTS``, our own SHOW CREATE TABLE text, ``LOCK TABLES ... WRITE``,
``ALTER TABLE ... DISABLE KEYS``, extended INSERTs with backslash escapes and raw binary bytes, and, for a
view, a stand-in view replaced at the end by ``CREATE ALGORITHM=... DEFINER=... VIEW``.

Options: the dump runs with mariadb-dump's defaults (``--opt``: add-drop-table, add-locks, disable-keys,
extended-insert, lock-tables, quick, set-charset). None of them needs a feature a SQLite-backed node cannot
have, so no ``--skip-*`` option is used; ``--skip-ssl`` and ``--no-defaults`` only keep the client's local
configuration out of the test. A second run uses what backup scripts often use instead
(``--single-transaction --hex-blob --skip-extended-insert``).

Not covered on purpose: generated columns in a data dump. mariadb-dump writes their values into the INSERTs
(MariaDB ignores them with a warning, MySQL rejects them with 3105, Marmot with 1105 "N columns but N+1
values"); Oracle's mysqldump leaves them out. Their schema round-trips (``test_generated_columns_schema``).

Equivalence is checked twice: every table's rows (values and Python types as PyMySQL decodes them, blobs
byte for byte) and the schema as a client reads it (SHOW CREATE TABLE / VIEW text, SHOW INDEX,
INFORMATION_SCHEMA.COLUMNS, foreign keys) must be identical on both nodes; then the restored schema must also
behave the same (AUTO_INCREMENT, ON UPDATE CURRENT_TIMESTAMP, ENUM and foreign-key enforcement).
"""

from __future__ import annotations

import datetime
import decimal
import shutil
import subprocess
from pathlib import Path

import pymysql
import pytest

from marmot.testing import NodeProcess, make_node
from tests.support import connect

DUMP = shutil.which("mariadb-dump") or shutil.which("mysqldump")
MYSQL = shutil.which("mysql")
pytestmark = pytest.mark.skipif(
    DUMP is None or MYSQL is None, reason="mariadb-dump / mysql (Debian mariadb-client) are not installed"
)

DB = "shop"
BLOB = bytes(range(256)) * 40  # every byte value, 10 KiB
TEXTS = {
    1: "line1\nline2\r\n\ttab",
    2: "back\\slash \"dq\" 'sq' %_ \x1a ctrl-z",
    3: None,
    4: "",
}

SCHEMA = [
    f"CREATE DATABASE {DB}",
    f"USE {DB}",
    """CREATE TABLE customers (
      id INT AUTO_INCREMENT PRIMARY KEY,
      email VARCHAR(191) NOT NULL,
      name VARCHAR(100) DEFAULT NULL,
      tier ENUM('free','pro','enterprise') NOT NULL DEFAULT 'free',
      note TEXT,
      created DATETIME NOT NULL DEFAULT '2000-01-01 00:00:00',
      updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
      UNIQUE KEY uq_email (email),
      KEY idx_name (name)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    # Sorts after `customers`, so a restore creates and fills the parent first.
    """CREATE TABLE shipping_addresses (
      customer_id INT NOT NULL,
      kind VARCHAR(20) NOT NULL DEFAULT 'home',
      line1 VARCHAR(200) NOT NULL,
      city VARCHAR(80),
      PRIMARY KEY (customer_id, kind),
      FOREIGN KEY (customer_id) REFERENCES customers (id) ON DELETE CASCADE
    )""",
    """CREATE TABLE products (
      sku CHAR(8) NOT NULL,
      variant SMALLINT NOT NULL,
      price DECIMAL(10,2) NOT NULL,
      qty INT NOT NULL DEFAULT 0,
      weight DOUBLE,
      image BLOB,
      `key` VARCHAR(10) DEFAULT 'it''s',
      PRIMARY KEY (sku, variant),
      UNIQUE KEY uq_key_variant (`key`, variant),
      CONSTRAINT qty_floor CHECK (qty >= -1)
    )""",
    """CREATE TABLE orders (
      id BIGINT NOT NULL AUTO_INCREMENT,
      customer_id INT NOT NULL,
      placed_on DATE,
      placed_at DATETIME,
      total DECIMAL(12,2),
      big BIGINT,
      PRIMARY KEY (id),
      KEY idx_customer_placed (customer_id, placed_at),
      CONSTRAINT fk_orders_customer FOREIGN KEY (customer_id) REFERENCES customers (id)
    )""",
    "CREATE TABLE blobs (id INT PRIMARY KEY, b LONGBLOB, vb VARBINARY(300))",
    "CREATE VIEW big_orders AS SELECT o.id, c.email, o.total FROM orders o JOIN customers c ON c.id = o.customer_id "
    "WHERE o.total > 1",
]


def _create_database(node: NodeProcess, name: str) -> None:
    c = connect(node, None)
    try:
        c.cursor().execute(f"CREATE DATABASE `{name}`")
    finally:
        c.close()


def _populate(node: NodeProcess) -> None:
    c = connect(node, None)
    try:
        cur = c.cursor()
        for stmt in SCHEMA:
            cur.execute(stmt)
        cur.executemany(
            "INSERT INTO customers (id, email, name, tier, note, created) VALUES (%s, %s, %s, %s, %s, %s)",
            [
                (1, "a@x.org", "O'Brien", "pro", TEXTS[1], "2024-01-02 03:04:05"),
                (2, "b@x.org", None, "free", TEXTS[2], "2023-12-31 23:59:59"),
                (3, "c@x.org", "Zoë 中文 🦫", "enterprise", TEXTS[3], "1999-01-01 00:00:00"),
                (4, "d@x.org", "", "free", TEXTS[4], "2000-01-01 00:00:00"),
            ],
        )
        cur.execute(
            "INSERT INTO customers (email, name) VALUES ('gen@x.org', 'generated id')"
        )  # a cluster id
        cur.execute(
            "INSERT INTO shipping_addresses VALUES (1, 'home', '1 Main St', 'Springfield'), "
            "(1, 'work', '2 Side St', NULL), (3, 'home', 'Straße 5', 'Köln')"
        )
        cur.execute(
            "INSERT INTO products (sku, variant, price, qty, weight, image, `key`) VALUES "
            "('AB-1', 1, 9.99, 3, 1.5, %s, 'k1'), ('AB-1', 2, 0.05, 0, NULL, NULL, NULL), "
            "('ZZ', 7, -12345678.90, -1, 2.25e10, '', 'k2')",
            (b"\x00\xff\r\n'\\\"\x1a",),
        )
        cur.execute(
            "INSERT INTO orders (id, customer_id, placed_on, placed_at, total, big) VALUES "
            "(10, 1, '2024-05-06', '2024-05-06 07:08:09', 10.04, 9007199254740993), "
            "(11, 1, NULL, NULL, NULL, -9223372036854775808), "
            "(12, 3, '2024-02-29', '2024-02-29 12:00:00', 0.00, 9223372036854775807)"
        )
        cur.execute("INSERT INTO orders (customer_id, total) VALUES (2, 99.99)")
        cur.execute(
            "INSERT INTO blobs VALUES (1, %s, %s), (2, NULL, ''), (3, '', NULL)", (BLOB, bytes(range(256)))
        )
    finally:
        c.close()


@pytest.fixture(scope="module")
def source(node: NodeProcess) -> NodeProcess:
    _populate(node)
    return node


@pytest.fixture
def fresh(tmp_path: Path):
    started: list[NodeProcess] = []

    def start() -> NodeProcess:
        n = make_node(tmp_path / f"target{len(started)}").start()
        started.append(n)
        return n

    yield start
    for n in started:
        n.stop()


def dump(node: NodeProcess, *options: str, database: str = DB) -> bytes:
    """Run mariadb-dump; stderr must stay empty (it reports every probe the server refused there)."""
    cmd = [
        DUMP,
        "--no-defaults",
        "-h127.0.0.1",
        f"-P{node.mysql_port}",
        "-uroot",
        "--skip-ssl",
        *options,
        *([database] if database else []),
    ]
    proc = subprocess.run(cmd, capture_output=True, timeout=20, check=False)
    assert proc.returncode == 0 and proc.stderr == b"", (
        f"mariadb-dump exited {proc.returncode}: {proc.stderr.decode(errors='replace')}"
    )
    return proc.stdout


def load(node: NodeProcess, script: bytes, database: str | None = DB) -> None:
    """``mysql [db] < dump.sql`` as a user restores a backup; stops at the first failing statement."""
    cmd = [
        MYSQL,
        "--no-defaults",
        "-h127.0.0.1",
        f"-P{node.mysql_port}",
        "-uroot",
        "--skip-ssl",
        "--protocol=TCP",
        "--connect-timeout=5",
    ]
    if database:
        cmd.append(database)
    proc = subprocess.run(cmd, input=script, capture_output=True, timeout=20, check=False)
    assert proc.returncode == 0, (
        f"mysql < dump exited {proc.returncode}: {proc.stderr.decode(errors='replace')}"
    )


def snapshot(node: NodeProcess) -> dict[str, object]:
    """Everything a client can see of the database: rows of every table and view, and its schema."""
    c = connect(node, DB)
    try:
        cur = c.cursor()
        cur.execute("SHOW FULL TABLES")
        objects = cur.fetchall()
        snap: dict[str, object] = {"objects": objects}
        for name, kind in objects:
            cur.execute(f"SHOW CREATE TABLE `{name}`")
            snap[f"create:{name}"] = cur.fetchall()
            cur.execute(f"SHOW COLUMNS FROM `{name}`")
            snap[f"columns:{name}"] = cur.fetchall()
            cur.execute(f"SELECT * FROM `{name}`")
            width = len(cur.description)
            order = ", ".join(str(i) for i in range(1, width + 1))
            cur.execute(f"SELECT * FROM `{name}` ORDER BY {order}")
            snap[f"rows:{name}"] = ([d[:2] for d in cur.description], cur.fetchall())
            if kind == "BASE TABLE":
                cur.execute(f"SHOW INDEX FROM `{name}`")
                snap[f"index:{name}"] = cur.fetchall()
        cur.execute(
            "SELECT TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, COLUMN_DEFAULT, IS_NULLABLE, DATA_TYPE, "
            "CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION, NUMERIC_SCALE, COLUMN_TYPE, COLUMN_KEY, EXTRA "
            "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME, ORDINAL_POSITION",
            (DB,),
        )
        snap["information_schema.COLUMNS"] = cur.fetchall()
        cur.execute(
            "SELECT TABLE_NAME, CONSTRAINT_NAME, COLUMN_NAME, ORDINAL_POSITION, REFERENCED_TABLE_NAME, "
            "REFERENCED_COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = %s "
            "ORDER BY TABLE_NAME, CONSTRAINT_NAME, ORDINAL_POSITION",
            (DB,),
        )
        snap["information_schema.KEY_COLUMN_USAGE"] = cur.fetchall()
        cur.execute(
            "SELECT CONSTRAINT_NAME, TABLE_NAME, REFERENCED_TABLE_NAME, UPDATE_RULE, DELETE_RULE "
            "FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = %s "
            "ORDER BY CONSTRAINT_NAME",
            (DB,),
        )
        snap["information_schema.REFERENTIAL_CONSTRAINTS"] = cur.fetchall()
        return snap
    finally:
        c.close()


def _rows(snap: dict[str, object], table: str) -> list[tuple]:
    return list(snap[f"rows:{table}"][1])  # type: ignore[index]


def test_source_contents_are_what_was_written(source):
    """Guards the comparison below: an equal-but-wrong pair of snapshots must not pass it."""
    snap = snapshot(source)
    assert [n for n, _ in snap["objects"]] == [
        "big_orders",
        "blobs",
        "customers",
        "orders",
        "products",
        "shipping_addresses",
    ]
    customers = {r[0]: r for r in _rows(snap, "customers")}
    assert customers[1][1:6] == (
        "a@x.org",
        "O'Brien",
        "pro",
        TEXTS[1],
        datetime.datetime(2024, 1, 2, 3, 4, 5),
    )
    assert customers[2][2] is None and customers[2][4] == TEXTS[2]
    assert customers[3][2] == "Zoë 中文 🦫" and customers[3][4] is None
    assert customers[4][2] == "" and customers[4][4] == ""
    assert len(customers) == 5 and max(customers) > 2**40  # the generated id is a cluster id
    blobs = {r[0]: r for r in _rows(snap, "blobs")}
    assert (
        blobs[1][1:] == (BLOB, bytes(range(256)))
        and blobs[2][1:] == (None, b"")
        and blobs[3][1:] == (b"", None)
    )
    products = _rows(snap, "products")
    assert products[0][2] == decimal.Decimal("9.99") and products[0][5] == b"\x00\xff\r\n'\\\"\x1a"
    assert products[2][2] == decimal.Decimal("-12345678.90") and products[2][5] == b""
    create = snap["create:products"][0][1]  # type: ignore[index]
    assert "CONSTRAINT `qty_floor` CHECK ((`qty` >= -1))" in create
    orders = {r[0]: r for r in _rows(snap, "orders")}
    assert orders[11][5] == -9223372036854775808 and orders[12][5] == 9223372036854775807
    assert orders[10][5] == 9007199254740993
    create = snap["create:customers"][0][1]  # type: ignore[index]
    assert "`tier` enum('free','pro','enterprise') NOT NULL DEFAULT 'free'" in create
    assert "`updated_at` timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP" in create
    assert create.index("UNIQUE KEY `uq_email`") < create.index("KEY `idx_name`")
    view = snap["create:big_orders"]
    assert view[0][0] == "big_orders" and view[0][1].startswith(  # type: ignore[index]
        "CREATE ALGORITHM=UNDEFINED DEFINER=`root`@`%` SQL SECURITY DEFINER VIEW `big_orders` AS "
    )
    assert snap["information_schema.REFERENTIAL_CONSTRAINTS"] == (
        ("fk_orders_customer", "orders", "customers", "NO ACTION", "NO ACTION"),
        ("shipping_addresses_ibfk_1", "shipping_addresses", "customers", "NO ACTION", "CASCADE"),
    )


def test_schema_only_dump_with_create_database(source, fresh):
    """``--no-data --databases``: the dump creates the database itself (CREATE DATABASE + USE)."""
    script = dump(source, "--no-data", "--databases")
    assert b"CREATE DATABASE /*!32312 IF NOT EXISTS*/ `shop`" in script and b"USE `shop`;" in script
    assert b"INSERT INTO" not in script
    target = fresh()
    load(target, script, database=None)
    before, after = snapshot(source), snapshot(target)
    for key, value in before.items():
        if key.startswith("rows:") and key != "rows:big_orders":
            assert after[key][1] == (), key  # type: ignore[index]
        elif not key.startswith("rows:"):
            assert after[key] == value, key


@pytest.mark.parametrize(
    "options",
    [
        (),  # mariadb-dump's defaults: LOCK TABLES ... READ while dumping, extended INSERTs, raw binary strings
        # What many backup scripts use instead: a consistent snapshot (START TRANSACTION WITH CONSISTENT
        # SNAPSHOT, then SAVEPOINT sp / ROLLBACK TO SAVEPOINT sp around every table), blobs as 0x... literals,
        # one INSERT per row.
        ("--single-transaction", "--hex-blob", "--skip-extended-insert"),
    ],
    ids=["defaults", "single-transaction-hex-blob"],
)
def test_full_dump_roundtrip(source, fresh, options):
    script = dump(source, *options)
    for line in (
        b"LOCK TABLES `customers` WRITE;",
        b"/*!40000 ALTER TABLE `customers` DISABLE KEYS */;",
        b"INSERT INTO `customers` VALUES",
        b"UNLOCK TABLES;",
        b"/*!50001 CREATE ALGORITHM=UNDEFINED */",
    ):
        assert line in script
    if "--hex-blob" in options:
        assert b"INSERT INTO `blobs` VALUES (2,NULL,'');" in script and b",0x000102" in script
    target = fresh()
    _create_database(target, DB)
    load(target, script)
    before, after = snapshot(source), snapshot(target)
    assert after.keys() == before.keys()
    for key, value in before.items():
        assert after[key] == value, key
    # The restored schema behaves like the original, not just prints like it.
    c = connect(target, DB)
    try:
        cur = c.cursor()
        cur.execute("INSERT INTO customers (email) VALUES ('new@x.org')")
        assert cur.lastrowid > max(r[0] for r in _rows(before, "customers"))
        cur.execute("UPDATE customers SET name = 'renamed', updated_at = '2001-01-01 00:00:00' WHERE id = 2")
        cur.execute("SELECT updated_at FROM customers WHERE id = 2")
        assert cur.fetchone()[0] == datetime.datetime(2001, 1, 1)
        cur.execute("UPDATE customers SET name = 'again' WHERE id = 2")
        cur.execute("SELECT updated_at FROM customers WHERE id = 2")
        assert cur.fetchone()[0] > datetime.datetime(2001, 1, 1)  # ON UPDATE CURRENT_TIMESTAMP kept
        with pytest.raises(pymysql.MySQLError):
            cur.execute("INSERT INTO customers (email, tier) VALUES ('bad@x.org', 'platinum')")  # ENUM kept
        with pytest.raises(pymysql.MySQLError):
            cur.execute("INSERT INTO orders (customer_id) VALUES (424242)")  # foreign key kept
        with pytest.raises(pymysql.MySQLError):
            cur.execute("UPDATE products SET qty = -5")  # CHECK kept
        with pytest.raises(pymysql.MySQLError):
            cur.execute("DELETE FROM customers WHERE id = 3")  # order 12 still references it
        cur.execute("DELETE FROM orders WHERE customer_id = 3")
        cur.execute("DELETE FROM customers WHERE id = 3")
        cur.execute("SELECT COUNT(*) FROM shipping_addresses WHERE customer_id = 3")
        assert cur.fetchone() == (0,)  # ON DELETE CASCADE kept
        cur.execute("SELECT id, email, total FROM big_orders ORDER BY id")
        assert [r[1] for r in cur.fetchall()] == ["a@x.org", "b@x.org"]
    finally:
        c.close()


def test_all_databases_into_a_fresh_node(fresh):
    """``--all-databases``: every database, including ``marmot`` which the fresh node already has."""
    source = fresh()
    _populate(source)
    script = dump(source, "--all-databases", database="")
    assert b"CREATE DATABASE /*!32312 IF NOT EXISTS*/ `marmot`" in script
    target = fresh()
    load(target, script, database=None)
    before, after = snapshot(source), snapshot(target)
    for key, value in before.items():
        assert after[key] == value, key


def test_restore_over_existing_database(source, fresh):
    """Restoring a backup into the database it came from: every DROP TABLE hits a live table."""
    script = dump(source)
    target = fresh()
    _create_database(target, DB)
    load(target, script)
    load(target, script)
    before, after = snapshot(source), snapshot(target)
    for key, value in before.items():
        assert after[key] == value, key


def test_child_table_dumped_before_its_parent(fresh):
    """mysqldump writes tables in name order, so a child table often comes before the table it references."""
    source = fresh()
    c = connect(source, None)
    cur = c.cursor()
    cur.execute("CREATE DATABASE fkorder")
    cur.execute("USE fkorder")
    cur.execute("CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(20))")
    cur.execute(
        "CREATE TABLE addresses (id INT PRIMARY KEY, customer_id INT NOT NULL, "
        "FOREIGN KEY (customer_id) REFERENCES customers (id))"
    )
    cur.execute("INSERT INTO customers VALUES (1, 'a')")
    cur.execute("INSERT INTO addresses VALUES (10, 1)")
    c.close()
    script = dump(source, database="fkorder")
    assert script.index(b"INSERT INTO `addresses`") < script.index(b"CREATE TABLE `customers`")
    target = fresh()
    _create_database(target, "fkorder")
    load(target, script, database="fkorder")
    c = connect(target, "fkorder", autocommit=False)
    cur = c.cursor()
    cur.execute("SELECT * FROM addresses")
    assert cur.fetchall() == ((10, 1),)
    c.close()


def test_create_database_with_version_comments(conn):
    cur = conn.cursor()
    cur.execute(
        "CREATE DATABASE /*!32312 IF NOT EXISTS*/ `dump_vc` /*!40100 DEFAULT CHARACTER SET utf8mb4 */"
    )
    cur.execute(
        "CREATE DATABASE /*!32312 IF NOT EXISTS*/ `dump_vc` /*!40100 DEFAULT CHARACTER SET utf8mb4 */"
    )
    cur.execute("SHOW DATABASES LIKE 'dump\\_vc'")
    assert cur.fetchall() == (("dump_vc",),)


def test_dump_with_triggers(node, conn, fresh):
    """Triggers travel as ``DELIMITER ;;`` blocks of version comments, after the table's rows."""
    cur = conn.cursor()
    cur.execute("CREATE DATABASE trg")
    cur.execute("USE trg")
    cur.execute("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20), name_upper VARCHAR(20))")
    cur.execute("CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, item_id INT, action VARCHAR(10))")
    cur.execute(
        "CREATE TRIGGER items_ai AFTER INSERT ON items FOR EACH ROW "
        "BEGIN INSERT INTO audit (item_id, action) VALUES (NEW.id, 'insert'); END"
    )
    cur.execute(
        "CREATE TRIGGER items_bu BEFORE UPDATE ON items FOR EACH ROW SET NEW.name_upper = UPPER(NEW.name)"
    )
    cur.execute("INSERT INTO items (id, name) VALUES (1, 'apple')")
    cur.execute("UPDATE items SET name = 'pear' WHERE id = 1")
    cur.execute("SHOW TRIGGERS")
    triggers = cur.fetchall()
    assert [(t[0], t[1], t[2]) for t in triggers] == [
        ("items_ai", "INSERT", "items"),
        ("items_bu", "UPDATE", "items"),
    ]
    script = dump(node, database="trg")
    assert b"DELIMITER ;;" in script and b"TRIGGER `items_ai` AFTER INSERT ON `items` FOR EACH ROW" in script
    target = fresh()
    _create_database(target, "trg")
    load(target, script, database="trg")
    c = connect(target, "trg")
    try:
        tcur = c.cursor()
        tcur.execute("SHOW TRIGGERS")
        assert tcur.fetchall() == triggers
        tcur.execute("INSERT INTO items (id, name) VALUES (2, 'fig')")
        tcur.execute("UPDATE items SET name = 'lime' WHERE id = 2")
        tcur.execute("SELECT id, name, name_upper FROM items ORDER BY id")
        assert tcur.fetchall() == ((1, "pear", "PEAR"), (2, "lime", "LIME"))
        tcur.execute("SELECT item_id, action FROM audit ORDER BY item_id")
        assert tcur.fetchall() == ((1, "insert"), (2, "insert"))
    finally:
        c.close()


def test_single_transaction_dump_does_not_block_writers(node):
    setup = connect(node, None)
    setup.cursor().execute("CREATE DATABASE lockprobe")
    setup.cursor().execute("CREATE TABLE lockprobe.dumped (id INT PRIMARY KEY)")
    setup.cursor().execute("CREATE TABLE lockprobe.written (id INT PRIMARY KEY)")
    setup.close()
    reader = connect(node, "lockprobe")
    writer = connect(node, "lockprobe", read_timeout=3)
    try:
        cur = reader.cursor()
        cur.execute("START TRANSACTION /*!40100 WITH CONSISTENT SNAPSHOT */")  # what the dump sends, in order
        cur.execute("SAVEPOINT sp")
        cur.execute("SELECT /*!40001 SQL_NO_CACHE */ * FROM `dumped`")
        writer.cursor().execute("INSERT INTO written VALUES (1)")
        cur.execute("ROLLBACK TO SAVEPOINT sp")
        cur.execute("RELEASE SAVEPOINT sp")
        cur.execute("COMMIT")
    finally:
        reader.close()
        writer.close()


def test_generated_columns_schema(node, fresh):
    """Generated columns and CHECK constraints come back from a schema dump exactly as they were."""
    c = connect(node, None)
    try:
        cur = c.cursor()
        cur.execute("CREATE DATABASE gencols")
        cur.execute("USE gencols")
        cur.execute(
            "CREATE TABLE t (a INT, b INT AS (a * 2), c INT GENERATED ALWAYS AS (a + 1) STORED, "
            "CONSTRAINT a_small CHECK (a < 100), CHECK (a <> 13))"
        )
        cur.execute("SHOW CREATE TABLE gencols.t")
        create = cur.fetchone()[1]
        cur.execute(
            "SELECT COLUMN_NAME, EXTRA, GENERATION_EXPRESSION FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = 'gencols' ORDER BY ORDINAL_POSITION"
        )
        columns = cur.fetchall()
    finally:
        c.close()
    assert "`b` int GENERATED ALWAYS AS ((`a` * 2)) VIRTUAL" in create
    assert "`c` int GENERATED ALWAYS AS ((`a` + 1)) STORED" in create
    assert (
        "CONSTRAINT `a_small` CHECK ((`a` < 100))" in create
        and "CONSTRAINT `t_chk_1` CHECK ((`a` <> 13))" in create
    )
    assert columns == (
        ("a", "", ""),
        ("b", "VIRTUAL GENERATED", "(`a` * 2)"),
        ("c", "STORED GENERATED", "(`a` + 1)"),
    )
    target = fresh()
    load(target, dump(node, "--no-data", "--databases", database="gencols"), database=None)
    c = connect(target, "gencols")
    try:
        cur = c.cursor()
        cur.execute("SHOW CREATE TABLE t")
        assert cur.fetchone()[1] == create
        cur.execute("INSERT INTO t (a) VALUES (4)")
        cur.execute("SELECT a, b, c FROM t")
        assert cur.fetchall() == ((4, 8, 5),)
        with pytest.raises(pymysql.MySQLError):
            cur.execute("INSERT INTO t (a) VALUES (13)")
    finally:
        c.close()
