"""A tmpfs per node data directory, where the machine allows it (root, ``mount``).

Why: a small file system of its own is the only way to give one node a *full disk* without filling the
machine's (the chaos harness's disk nemesis). Everywhere else a plain directory is used.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)


def mount_tmpfs(path: Path, size: str, name: str) -> bool:
    """Mount a tmpfs of ``size`` (e.g. ``"256m"``) on ``path`` (created if missing); False if refused."""
    path.mkdir(parents=True, exist_ok=True)
    return _run("mount", "-t", "tmpfs", "-o", f"size={size}", name, str(path)).returncode == 0


def unmount(path: Path) -> None:
    """Lazy unmount (``umount -l``): succeeds even while a killed node's files are still being closed."""
    _run("umount", "-l", str(path))


def tmpfs_available(probe_dir: Path) -> bool:
    """True when this process may mount a tmpfs (root on a machine that allows it): tries one on
    ``probe_dir`` and unmounts it again."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    if not mount_tmpfs(probe_dir, "1m", "marmot-tmpfs-probe"):
        return False
    _run("umount", str(probe_dir))
    return True
