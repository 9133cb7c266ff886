"""Persisted membership view: ``{data_dir}/membership.msgpack``.

Why it exists: quorum is counted over the *total* membership. A node restarted while its peers are
down must still count them, or it would see a cluster of one and accept writes alone. So the view is
written on every change (the driver debounces to at most once a second) and on stop, and read back on
start (:meth:`Membership.restore` decides what the entries mean after a restart).

The write is atomic and durable: msgpack to ``membership.msgpack.tmp``, fsync, rename over the old
file, fsync the directory. A reader sees the old view or the new one, never a torn one. A file that
exists but cannot be decoded is an error (:class:`MembershipError`), not an empty view: silently
forgetting the peers would break the quorum invariant above.

Blocking (file I/O and fsync); the driver calls :func:`save` in a worker thread.
"""

from __future__ import annotations

import os
import time
from typing import Any

import msgpack

from marmot.cluster.membership import MembershipError

FILENAME = "membership.msgpack"


def path_in(data_dir: str) -> str:
    return os.path.join(data_dir, FILENAME)


def save(data_dir: str, snapshot: dict[str, Any]) -> None:
    os.makedirs(data_dir, exist_ok=True)
    final = path_in(data_dir)
    tmp = final + ".tmp"
    data = msgpack.packb({**snapshot, "saved_at_ms": int(time.time() * 1000)}, use_bin_type=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)
    dfd = os.open(data_dir, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def load(data_dir: str) -> dict[str, Any] | None:
    """The persisted snapshot, or None when there is none (first start)."""
    final = path_in(data_dir)
    try:
        with open(final, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise MembershipError(f"cannot read the persisted membership view {final}: {e}") from e
    try:
        snap = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as e:
        raise MembershipError(
            f"persisted membership view {final} is corrupt ({e}); it tells this node how many peers "
            f"the cluster has. Move it away only if this node will rejoin through seed_nodes"
        ) from e
    if not isinstance(snap, dict):
        raise MembershipError(f"persisted membership view {final} is corrupt (not a map)")
    return snap
