"""Commit: two-phase commit of one transaction: the coordinator, the participant, write intents and the
2PC messages (see ../README.md)."""
