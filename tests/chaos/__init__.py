"""Jepsen-style fault testing: a 3-node cluster behind fault proxies, nemeses, workloads, a history checker."""
