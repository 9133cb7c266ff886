"""Test-only helpers on top of ``marmot.testing`` (the node and cluster launcher shipped with marmot).

``sql``: ``connect``, ``run``, ``wait_until_equal``; ``waiting``: ``wait_for``; ``aio``: ``run_async``;
``cluster``: ``replicated_cluster``, ``proxied_cluster``, ``cluster_fixture``, ``marmot_verify``;
``fixtures``: the ``node`` / ``conn`` fixtures; ``paths``: ``REPO``. Everything is importable from
``tests.support`` directly. See tests/README.md.
"""

from tests.support.aio import run_async
from tests.support.cluster import cluster_fixture, marmot_verify, proxied_cluster, replicated_cluster
from tests.support.paths import REPO
from tests.support.sql import connect, node_name, run, wait_until_equal
from tests.support.waiting import wait_for

__all__ = [
    "REPO",
    "cluster_fixture",
    "connect",
    "marmot_verify",
    "node_name",
    "proxied_cluster",
    "replicated_cluster",
    "run",
    "run_async",
    "wait_for",
    "wait_until_equal",
]
