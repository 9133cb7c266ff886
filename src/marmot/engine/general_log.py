"""MySQL's general query log: every statement a client sends, with its connection id, to a file.

Enabled like MySQL's (``SET GLOBAL general_log = ON``, ``SET GLOBAL general_log_file = '/path'``). It
is how one records a real application's statement stream, for example WordPress's, to replay through
the transpiler benchmark (``bench/transpile.py``). Off, it costs one attribute test per statement.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import TextIO


class GeneralLog:
    def __init__(self, path: str) -> None:
        self.path = path
        self.enabled = False
        self._file: TextIO | None = None
        self._lock = threading.Lock()

    def set_enabled(self, on: bool) -> None:
        with self._lock:
            self.enabled = on
            if not on and self._file is not None:
                self._file.close()
                self._file = None

    def set_path(self, path: str) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
            self.path = path

    def write(self, connection_id: int, command: str, text: str) -> None:
        """One entry: time, connection id, command, then the statement on a single line."""
        with self._lock:
            if self._file is None:
                self._file = open(self.path, "a", encoding="utf-8", errors="surrogateescape")  # noqa: SIM115
            stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            self._file.write(f"{stamp}\t{connection_id}\t{command}\t{text.replace(chr(10), ' ')}\n")
            self._file.flush()
