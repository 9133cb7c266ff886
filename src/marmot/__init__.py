"""Marmot: a leaderless, distributed SQLite replication server speaking the MySQL protocol."""

__version__ = "0.1.0"
