"""MySQL DDL through a real client: ALTER TABLE forms, indexes, RENAME, TRUNCATE, views."""

from __future__ import annotations

import pymysql
import pytest

from tests.support import connect


def columns(cur, table):
    cur.execute(f"SHOW COLUMNS FROM {table}")
    return [(r[0], r[1], r[2]) for r in cur.fetchall()]


@pytest.fixture
def cur(conn):
    c = conn.cursor()
    for t in ("items_renamed", "items", "owners"):
        c.execute(f"DROP TABLE IF EXISTS {t}")
    c.execute("CREATE TABLE owners (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(20))")
    c.execute(
        "CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, title VARCHAR(50) NOT NULL, "
        "qty INT DEFAULT 1, owner_id INT, KEY by_title (title(10)), "
        "FOREIGN KEY (owner_id) REFERENCES owners(id) ON DELETE CASCADE)"
    )
    c.execute("INSERT INTO owners (name) VALUES ('o')")
    c.execute("INSERT INTO items (title, qty, owner_id) VALUES ('a', 2, LAST_INSERT_ID()), ('b', 3, NULL)")
    return c


def test_add_column_positions_and_defaults(cur):
    cur.execute("ALTER TABLE items ADD COLUMN note TEXT")
    cur.execute(
        "ALTER TABLE items ADD COLUMN flag TINYINT(1) NOT NULL"
    )  # existing rows get MySQL's implicit 0
    cur.execute("ALTER TABLE items ADD COLUMN code VARCHAR(8) NOT NULL DEFAULT 'x' AFTER id")
    cur.execute("ALTER TABLE items ADD COLUMN first_col INT FIRST")
    assert [c[0] for c in columns(cur, "items")] == [
        "first_col",
        "id",
        "code",
        "title",
        "qty",
        "owner_id",
        "note",
        "flag",
    ]
    cur.execute("SELECT code, flag, title FROM items ORDER BY title")
    assert cur.fetchall() == (("x", 0, "a"), ("x", 0, "b"))


def test_modify_change_drop_column(cur):
    cur.execute("ALTER TABLE items MODIFY COLUMN qty BIGINT UNSIGNED NOT NULL DEFAULT 0")
    cur.execute("ALTER TABLE items CHANGE COLUMN title name VARCHAR(80) NOT NULL")
    cols = columns(cur, "items")
    assert ("qty", "bigint unsigned", "NO") in cols and ("name", "varchar(80)", "NO") in cols
    cur.execute("SELECT name, qty FROM items ORDER BY name")
    assert cur.fetchall() == (("a", 2), ("b", 3))
    cur.execute("SHOW INDEX FROM items")
    assert "by_title" in [r[2] for r in cur.fetchall()]  # the index followed the renamed column
    cur.execute("ALTER TABLE items DROP COLUMN qty")
    assert "qty" not in [c[0] for c in columns(cur, "items")]
    cur.execute("INSERT INTO items (name) VALUES ('c')")  # AUTO_INCREMENT survived the rebuild
    assert cur.lastrowid > 2**40


def test_rebuild_keeps_foreign_keys_and_children(cur):
    cur.execute("ALTER TABLE owners MODIFY name VARCHAR(40)")  # rebuilding the parent must not cascade
    cur.execute("SELECT COUNT(*) FROM items")
    assert cur.fetchone() == (2,)
    cur.execute("DELETE FROM owners")
    cur.execute("SELECT COUNT(*) FROM items")
    assert cur.fetchone() == (1,)  # ON DELETE CASCADE still enforced afterwards


def test_indexes(cur):
    cur.execute("ALTER TABLE items ADD INDEX by_qty (qty), ADD UNIQUE KEY uniq_title (title)")
    cur.execute("CREATE INDEX by_owner ON items (owner_id)")
    cur.execute("SHOW INDEX FROM items")
    names = {r[2] for r in cur.fetchall()}
    assert {"PRIMARY", "by_title", "by_qty", "uniq_title", "by_owner"} <= names
    with pytest.raises(pymysql.err.IntegrityError) as ei:
        cur.execute("INSERT INTO items (title) VALUES ('a')")
    assert ei.value.args[0] == 1062
    cur.execute("DROP INDEX by_owner ON items")
    cur.execute("ALTER TABLE items DROP INDEX uniq_title")
    cur.execute("SHOW INDEX FROM items")
    names = {r[2] for r in cur.fetchall()}
    assert "by_owner" not in names and "uniq_title" not in names


def test_rename_truncate_and_options(cur):
    cur.execute("ALTER TABLE items ENGINE=InnoDB")
    cur.execute("ALTER TABLE items RENAME COLUMN qty TO quantity")
    cur.execute("RENAME TABLE items TO items_renamed")
    cur.execute("SELECT quantity FROM items_renamed ORDER BY quantity")
    assert cur.fetchall() == ((2,), (3,))
    cur.execute("TRUNCATE TABLE items_renamed")
    cur.execute("SELECT COUNT(*) FROM items_renamed")
    assert cur.fetchone() == (0,)
    cur.execute("ALTER TABLE items_renamed RENAME TO items")


def test_views(cur):
    cur.execute("DROP VIEW IF EXISTS big_items")
    cur.execute("CREATE VIEW big_items AS SELECT title FROM items WHERE qty > 2")
    cur.execute("SELECT title FROM big_items")
    assert cur.fetchall() == (("b",),)
    cur.execute("SHOW FULL TABLES WHERE Table_type = 'VIEW'")
    assert ("big_items", "VIEW") in cur.fetchall()
    cur.execute("DROP VIEW big_items")


def test_on_update_current_timestamp_and_zero_dates(conn):
    cur = conn.cursor()
    cur.execute("DROP TABLE IF EXISTS stamped")
    cur.execute(
        "CREATE TABLE stamped (id INT PRIMARY KEY, v INT, "
        "created DATETIME NOT NULL DEFAULT '0000-00-00 00:00:00', "
        "updated TIMESTAMP NOT NULL DEFAULT '2000-01-01 00:00:00' ON UPDATE CURRENT_TIMESTAMP)"
    )
    cur.execute("INSERT INTO stamped (id, v) VALUES (1, 1)")
    cur.execute("SELECT CAST(created AS CHAR), CAST(updated AS CHAR) FROM stamped")
    assert cur.fetchone() == ("0000-00-00 00:00:00", "2000-01-01 00:00:00")
    cur.execute("UPDATE stamped SET v = 2")
    cur.execute("SELECT CAST(updated AS CHAR) > '2020-01-01' FROM stamped")
    assert cur.fetchone() == (1,)
    cur.execute("UPDATE stamped SET v = 3, updated = '2001-01-01 00:00:00'")  # an explicit value wins
    cur.execute("SELECT CAST(updated AS CHAR) FROM stamped")
    assert cur.fetchone() == ("2001-01-01 00:00:00",)


def test_triggers(node):
    c = connect(node, client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)
    cur = c.cursor()
    cur.execute("DROP TABLE IF EXISTS audit")
    cur.execute("DROP TABLE IF EXISTS accounts")
    cur.execute(
        "CREATE TABLE accounts (id INT PRIMARY KEY, name VARCHAR(20), name_upper VARCHAR(20), bal INT)"
    )
    cur.execute(
        "CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, account INT, what VARCHAR(10), delta INT)"
    )
    cur.execute(
        "CREATE TRIGGER acc_upper BEFORE INSERT ON accounts FOR EACH ROW SET NEW.name_upper = UPPER(NEW.name)"
    )
    cur.execute(
        "CREATE DEFINER=`root`@`%` TRIGGER acc_log AFTER UPDATE ON accounts FOR EACH ROW BEGIN "
        "INSERT INTO audit (account, what, delta) VALUES (NEW.id, 'update', NEW.bal - OLD.bal); "
        "DELETE FROM audit WHERE delta = 0; END"
    )
    cur.execute("INSERT INTO accounts (id, name, bal) VALUES (1, 'ann', 10)")
    cur.execute("UPDATE accounts SET bal = 15 WHERE id = 1")
    cur.execute("UPDATE accounts SET name = 'x' WHERE id = 1")  # delta 0: logged, then deleted by the trigger
    cur.execute("SELECT name_upper FROM accounts")
    assert cur.fetchone() == ("ANN",)
    cur.execute("SELECT account, what, delta FROM audit")
    assert cur.fetchall() == ((1, "update", 5),)
    cur.execute(
        "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_TABLE = 'accounts' "
        "ORDER BY TRIGGER_NAME"
    )
    assert [r[0] for r in cur.fetchall()] == ["acc_log", "acc_upper"]
    cur.execute("DROP TRIGGER IF EXISTS acc_log")
    cur.execute("DROP TRIGGER acc_upper")
    cur.execute("INSERT INTO accounts (id, name, bal) VALUES (2, 'bob', 1)")
    cur.execute("SELECT name_upper FROM accounts WHERE id = 2")
    assert cur.fetchone() == (None,)
    c.close()


def test_enum_and_set_columns_keep_their_values(conn):
    cur = conn.cursor()
    cur.execute("DROP TABLE IF EXISTS shirts")
    cur.execute(
        "CREATE TABLE shirts (id INT PRIMARY KEY, size ENUM('s','m','l') NOT NULL DEFAULT 'm', "
        "tags SET('new','sale','eco'))"
    )
    cur.execute("INSERT INTO shirts (id, tags) VALUES (1, 'new,eco')")
    cur.execute("SELECT size, tags FROM shirts")
    assert cur.fetchone() == ("m", "new,eco")
    cur.execute("SHOW COLUMNS FROM shirts")
    types = {r[0]: r[1] for r in cur.fetchall()}
    assert types["size"] == "enum('s','m','l')" and types["tags"] == "set('new','sale','eco')"
    cur.execute("SHOW CREATE TABLE shirts")
    ddl = cur.fetchone()[1]
    assert "enum('s','m','l')" in ddl and "set('new','sale','eco')" in ddl
    with pytest.raises(pymysql.err.MySQLError):
        cur.execute("INSERT INTO shirts (id, size) VALUES (2, 'xl')")  # not an ENUM value
