"""Catch-up: the two ends of the log exchange (log pull, log server), snapshots, digests and repair, log
GC (see ../README.md)."""
