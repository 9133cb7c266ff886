"""Process-wide logging set up from ``[logging]`` (upstream: zerolog + lumberjack).

Why stdlib ``logging`` and not a structured-logging library: every dependency we pull in (asyncio,
aiohttp, apsw wrappers) already logs through it, so one root configuration captures everything in
one format, and a JSON formatter is a few lines. Modules simply do
``log = logging.getLogger(__name__)`` and pass structured fields with ``extra={...}``.

Formats:

* ``json`` (default, as upstream): one JSON object per line with ``ts`` (ISO-8601 UTC, ms),
  ``level`` (lower case, as zerolog writes it), ``logger``, ``msg``, ``node_id``, every ``extra=``
  field, and ``exc`` / ``stack`` strings for exceptions and stack info. Extra fields that clash
  with these names are kept under ``extra_<name>``. Values JSON cannot encode are written with
  ``str()``.
* ``console``: ``<ts> <LEVEL> [node <id>] <logger>: <msg> key=value ...`` for humans.

Output goes to stdout (as upstream) and, when ``file`` is set, also to that file, rotated by size
(``max_size_mb``, ``max_backups``; 0 keeps all, as lumberjack does, capped at 10000 files) via
``RotatingFileHandler``. With ``compress`` the handler's ``namer``/``rotator`` hooks gzip each
rotated file (``marmot.log.1.gz`` …). Compression runs synchronously inside the handler's lock, at
gzip level 1 to keep that pause short (a 100 MB log compresses in well under a second); logging
calls from other threads wait for it meanwhile.

``configure_logging`` is idempotent: handlers it installed earlier are removed and closed before new
ones are added; handlers installed by others (pytest's capture, say) are left alone.
"""

from __future__ import annotations

import gzip
import json
import logging
import logging.handlers
import os
import shutil
import sys
import time
from pathlib import Path
from typing import IO, Any

from marmot.config import LoggingConfig

_MARK = "_marmot_handler"
_KEEP_ALL_BACKUPS = 10_000

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}


def _iso_utc(created: float) -> str:
    secs = int(created)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{int((created - secs) * 1000):03d}Z"


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _RECORD_ATTRS and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see module docstring for the fields)."""

    def __init__(self, node_id: int):
        super().__init__()
        self.node_id = node_id

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": _iso_utc(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "node_id": self.node_id,
        }
        for key, value in _extras(record).items():
            out[f"extra_{key}" if key in out else key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, separators=(",", ":"), default=str)


class ConsoleFormatter(logging.Formatter):
    """Human-readable single line (plus traceback lines for exceptions)."""

    def __init__(self, node_id: int):
        super().__init__()
        self.node_id = node_id

    def format(self, record: logging.LogRecord) -> str:
        line = (
            f"{_iso_utc(record.created)} {record.levelname:<5} [node {self.node_id}] "
            f"{record.name}: {record.getMessage()}"
        )
        extras = _extras(record)
        if extras:
            line += " " + " ".join(
                f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in extras.items()
            )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


def _gzip_namer(name: str) -> str:
    return name + ".gz"


def _gzip_rotator(source: str, dest: str) -> None:
    """Compress ``source`` into ``dest`` (already named ``….gz``) and remove ``source``."""
    tmp = dest + ".tmp"
    with open(source, "rb") as f_in, gzip.open(tmp, "wb", compresslevel=1) as f_out:
        shutil.copyfileobj(f_in, f_out, 1 << 20)
    os.replace(tmp, dest)
    os.remove(source)


def _file_handler(cfg: LoggingConfig) -> logging.Handler:
    path = Path(cfg.file)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(
        path,
        maxBytes=max(1, int(cfg.max_size_mb * 1024 * 1024)),
        backupCount=cfg.max_backups or _KEEP_ALL_BACKUPS,
        encoding="utf-8",
    )
    if cfg.compress:
        handler.namer = _gzip_namer
        handler.rotator = _gzip_rotator
    return handler


def configure_logging(cfg: LoggingConfig, node_id: int, *, stream: IO[str] | None = None) -> None:
    """Install Marmot's log handlers on the root logger (replacing ones from an earlier call).

    ``stream`` defaults to the current ``sys.stdout``.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _MARK, False):
            root.removeHandler(handler)
            handler.close()

    formatter: logging.Formatter = (
        JsonFormatter(node_id) if cfg.format == "json" else ConsoleFormatter(node_id)
    )
    handlers: list[logging.Handler] = [logging.StreamHandler(stream if stream is not None else sys.stdout)]
    if cfg.file:
        handlers.append(_file_handler(cfg))
    for handler in handlers:
        handler.setFormatter(formatter)
        setattr(handler, _MARK, True)
        root.addHandler(handler)
    root.setLevel(logging.DEBUG if cfg.verbose else logging.INFO)
