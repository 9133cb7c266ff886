"""Apply: the one path every committed transaction takes into a database file: the apply queue, the
last-writer-wins applier, the SQL that writes row changes, idempotent DDL (see ../README.md)."""
