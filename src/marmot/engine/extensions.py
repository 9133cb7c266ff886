"""SQLite loadable extensions: ``LOAD EXTENSION name`` and ``[extensions] always_loaded``.

Only files inside ``[extensions] directory`` can be loaded, whatever the client asks: a name with a path
separator (or ``..``) is refused, the candidates ``name``, ``name.so``, ``libname.so`` (``.dylib`` and
``.dll`` on those platforms) are looked up in that directory, and the resolved real path (symlinks
followed) must still be inside it. With no directory configured, loading is off.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import apsw

from marmot.engine.errors import MySQLError

_SUFFIXES = {"darwin": (".dylib", ".so"), "win32": (".dll",)}.get(sys.platform, (".so",))


def resolve(directory: str, name: str) -> Path:
    """The extension file for ``name``, or a MySQLError saying why it cannot be loaded."""
    if not directory:
        raise MySQLError(1105, "HY000", "LOAD EXTENSION is disabled: set [extensions] directory")
    if not name or "/" in name or "\\" in name or name in (".", "..") or "\0" in name:
        raise MySQLError(
            1105, "HY000", f"invalid extension name '{name}': names cannot contain path separators"
        )
    base = Path(directory).resolve()
    candidates = [name] + [f"{prefix}{name}{suffix}" for suffix in _SUFFIXES for prefix in ("", "lib")]
    for candidate in candidates:
        path = (base / candidate).resolve()
        if path.is_file():
            if os.path.commonpath([base, path]) != str(base):
                raise MySQLError(
                    1105, "HY000", f"extension '{name}' resolves outside the extensions directory"
                )
            return path
    raise MySQLError(1105, "HY000", f"extension '{name}' not found in {base}")


def load(conn: apsw.Connection, path: Path) -> None:
    """Load one extension file into ``conn``; SQLite's error becomes a MySQL error."""
    conn.enable_load_extension(True)
    try:
        conn.load_extension(str(path))
    except apsw.Error as err:
        raise MySQLError(1105, "HY000", f"cannot load extension {path.name}: {err}") from err
    finally:
        conn.enable_load_extension(False)
