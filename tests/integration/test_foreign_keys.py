"""Foreign keys as InnoDB (issue 13 point 3) on one node: DROP TABLE of a referenced parent is 3730 (unless
foreign_key_checks = 0), TRUNCATE of one 1701, violations MySQL's 1452 / 1451 naming the constraint, a
foreign key to a missing table or to columns that are no key refused at CREATE (1824 / 1822), and no
message names SQLite's schema (``main.p``)."""

from __future__ import annotations

import pymysql
import pytest

from tests.support import connect


def _err(cur, sql: str) -> tuple[int, str]:
    with pytest.raises(pymysql.MySQLError) as info:
        cur.execute(sql)
    return info.value.args


@pytest.fixture
def cur(node):
    c = connect(node)
    cur = c.cursor()
    cur.execute("DROP DATABASE IF EXISTS fkdb")
    cur.execute("CREATE DATABASE fkdb")
    cur.execute("USE fkdb")
    cur.execute("CREATE TABLE p (id INT PRIMARY KEY, u INT)")
    cur.execute(
        "CREATE TABLE c (id INT PRIMARY KEY, pid INT, CONSTRAINT fk_c FOREIGN KEY (pid) REFERENCES p (id))"
    )
    try:
        yield cur
    finally:
        c.close()


def test_drop_referenced_parent_is_3730_and_changes_nothing(cur):
    cur.execute("INSERT INTO p VALUES (1, 1)")
    cur.execute("INSERT INTO c VALUES (1, 1)")
    assert _err(cur, "DROP TABLE p") == (
        3730,
        "Cannot drop table 'p' referenced by a foreign key constraint 'fk_c' on table 'c'.",
    )
    assert _err(cur, "DROP TABLE IF EXISTS p")[0] == 3730
    cur.execute("SELECT COUNT(*) FROM p")
    assert cur.fetchall() == ((1,),)
    # both in one statement: nothing outside references them, in either order
    cur.execute("DROP TABLE p, c")
    cur.execute("SHOW TABLES")
    assert cur.fetchall() == ()


def test_drop_parent_with_cascading_child_keeps_child_rows(cur):
    cur.execute(
        "CREATE TABLE cc (id INT PRIMARY KEY, pid INT, CONSTRAINT fk_cc FOREIGN KEY (pid) REFERENCES p (id) "
        "ON DELETE CASCADE)"
    )
    cur.execute("INSERT INTO p VALUES (1, 1)")
    cur.execute("INSERT INTO cc VALUES (1, 1)")
    assert _err(cur, "DROP TABLE p")[0] == 3730
    cur.execute("SELECT id FROM cc")
    assert cur.fetchall() == ((1,),)


def test_foreign_key_checks_off_allows_drop(cur):
    cur.execute("INSERT INTO p VALUES (1, 1)")
    cur.execute("INSERT INTO c VALUES (1, 1)")
    cur.execute("SET FOREIGN_KEY_CHECKS = 0")
    cur.execute("DROP TABLE p")
    cur.execute("SET FOREIGN_KEY_CHECKS = 1")
    cur.execute("SELECT id, pid FROM c")
    assert cur.fetchall() == ((1, 1),)


def test_truncate_referenced_parent_is_1701(cur):
    assert _err(cur, "TRUNCATE TABLE p") == (
        1701,
        "Cannot truncate a table referenced in a foreign key constraint (`fkdb`.`c`, CONSTRAINT `fk_c`)",
    )
    cur.execute("TRUNCATE TABLE c")  # a child may be truncated


def test_violations_are_1452_and_1451_with_the_constraint(cur):
    clause = "CONSTRAINT `fk_c` FOREIGN KEY (`pid`) REFERENCES `p` (`id`)"
    assert _err(cur, "INSERT INTO c VALUES (1, 99)") == (
        1452,
        f"Cannot add or update a child row: a foreign key constraint fails (`fkdb`.`c`, {clause})",
    )
    cur.execute("INSERT INTO p VALUES (1, 1), (2, 2)")
    cur.execute("INSERT INTO c VALUES (1, 1)")
    assert _err(cur, "UPDATE c SET pid = 5 WHERE id = 1")[0] == 1452
    parent = f"Cannot delete or update a parent row: a foreign key constraint fails (`fkdb`.`c`, {clause})"
    assert _err(cur, "DELETE FROM p WHERE id = 1") == (1451, parent)
    assert _err(cur, "UPDATE p SET id = 7 WHERE id = 1") == (1451, parent)
    cur.execute("DELETE FROM p WHERE id = 2")  # unreferenced: fine
    cur.execute("SELECT id FROM p")
    assert cur.fetchall() == ((1,),)


def test_restrict_reached_through_a_cascade_names_the_grandchild(cur):
    cur.execute(
        "CREATE TABLE mid (id INT PRIMARY KEY, pid INT, CONSTRAINT fk_mid FOREIGN KEY (pid) REFERENCES p (id) "
        "ON DELETE CASCADE)"
    )
    cur.execute(
        "CREATE TABLE leaf (id INT PRIMARY KEY, m INT, CONSTRAINT fk_leaf FOREIGN KEY (m) REFERENCES mid (id))"
    )
    cur.execute("INSERT INTO p VALUES (1, 1)")
    cur.execute("INSERT INTO mid VALUES (10, 1)")
    cur.execute("INSERT INTO leaf VALUES (100, 10)")
    code, message = _err(cur, "DELETE FROM p WHERE id = 1")
    assert code == 1451
    assert "(`fkdb`.`leaf`, CONSTRAINT `fk_leaf` FOREIGN KEY (`m`) REFERENCES `mid` (`id`))" in message


def test_create_with_missing_parent_or_no_key_is_refused(cur):
    assert _err(
        cur, "CREATE TABLE x (id INT PRIMARY KEY, z INT, FOREIGN KEY (z) REFERENCES nothere (id))"
    ) == (
        1824,
        "Failed to open the referenced table 'nothere'",
    )
    assert _err(
        cur, "CREATE TABLE x (id INT PRIMARY KEY, z INT, CONSTRAINT fk_u FOREIGN KEY (z) REFERENCES p (u))"
    ) == (
        1822,
        "Failed to add the foreign key constraint. Missing index for constraint 'fk_u' in the referenced table 'p'",
    )
    cur.execute("SHOW TABLES LIKE 'x'")
    assert cur.fetchall() == ()
    cur.execute("CREATE TABLE self (id INT PRIMARY KEY, up INT, FOREIGN KEY (up) REFERENCES self (id))")


def test_missing_parent_created_without_checks_names_the_database_not_main(cur):
    cur.execute("SET FOREIGN_KEY_CHECKS = 0")
    cur.execute("CREATE TABLE orphan (id INT PRIMARY KEY, z INT, FOREIGN KEY (z) REFERENCES gone (id))")
    cur.execute("SET FOREIGN_KEY_CHECKS = 1")
    code, message = _err(cur, "INSERT INTO orphan VALUES (1, 1)")
    assert "main." not in message
    assert (code, message) == (1146, "Table 'fkdb.gone' doesn't exist")


def test_the_broken_constraint_is_named_among_several(cur):
    cur.execute("CREATE TABLE q (id INT PRIMARY KEY)")
    cur.execute(
        "CREATE TABLE two (id INT PRIMARY KEY, p_id INT, q_id INT, CONSTRAINT fk_p FOREIGN KEY (p_id) "
        "REFERENCES p (id), CONSTRAINT fk_q FOREIGN KEY (q_id) REFERENCES q (id))"
    )
    cur.execute("INSERT INTO p VALUES (1, 1)")
    cur.execute("INSERT INTO q VALUES (5)")
    code, message = _err(cur, "INSERT INTO two VALUES (1, 1, 6)")
    assert code == 1452 and "CONSTRAINT `fk_q` FOREIGN KEY (`q_id`) REFERENCES `q` (`id`)" in message
    code, message = _err(cur, "INSERT INTO two VALUES (1, 2, 5)")
    assert code == 1452 and "CONSTRAINT `fk_p`" in message
    cur.execute("INSERT INTO two VALUES (1, 1, 5)")
    code, message = _err(cur, "UPDATE two SET q_id = 7 WHERE id = 1")
    assert code == 1452 and "CONSTRAINT `fk_q`" in message


def test_alter_add_foreign_key_checks_existing_rows_and_set_null_needs_nullable(cur):
    cur.execute("CREATE TABLE loose (id INT PRIMARY KEY, pid INT)")
    cur.execute("INSERT INTO p VALUES (1, 1)")
    cur.execute("INSERT INTO loose VALUES (1, 1), (2, 9)")
    code, message = _err(cur, "ALTER TABLE loose ADD CONSTRAINT fk_loose FOREIGN KEY (pid) REFERENCES p (id)")
    assert code == 1452 and "CONSTRAINT `fk_loose` FOREIGN KEY (`pid`) REFERENCES `p` (`id`)" in message
    cur.execute("SHOW CREATE TABLE loose")
    assert "FOREIGN KEY" not in cur.fetchone()[1]
    cur.execute("DELETE FROM loose WHERE id = 2")
    cur.execute("ALTER TABLE loose ADD CONSTRAINT fk_loose FOREIGN KEY (pid) REFERENCES p (id)")
    cur.execute("ALTER TABLE loose ADD COLUMN note INT")  # the existing foreign key is not re-checked
    assert _err(
        cur,
        "CREATE TABLE sn (id INT PRIMARY KEY, pid INT NOT NULL, CONSTRAINT fk_sn FOREIGN KEY (pid) "
        "REFERENCES p (id) ON DELETE SET NULL)",
    ) == (1830, "Column 'pid' cannot be NOT NULL: needed in a foreign key constraint 'fk_sn' SET NULL")
