"""Logging setup: JSON lines, console format, levels, idempotency, rotation with gzip."""

from __future__ import annotations

import gzip
import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from marmot.config import LoggingConfig
from marmot.logsetup import configure_logging

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def _ours(handler: logging.Handler) -> bool:
    return bool(getattr(handler, "_marmot_handler", False))


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    for handler in list(root.handlers):
        if _ours(handler):
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def lines_of(stream: io.StringIO) -> list[str]:
    return [line for line in stream.getvalue().splitlines() if line]


def test_json_lines_parse_with_fields_and_extras() -> None:
    out = io.StringIO()
    configure_logging(LoggingConfig(format="json"), node_id=12, stream=out)
    log = logging.getLogger("marmot.test")
    log.info("applied %d rows", 3, extra={"txn_id": 99, "db": "app", "peer": b"\x01", "node_id": 4})
    try:
        raise RuntimeError("kaput")
    except RuntimeError:
        log.exception("failed")
    log.debug("hidden at INFO")
    first, second = (json.loads(line) for line in lines_of(out))
    assert ISO_UTC.match(first["ts"])
    assert first["level"] == "info" and first["logger"] == "marmot.test"
    assert first["msg"] == "applied 3 rows" and first["node_id"] == 12
    assert first["txn_id"] == 99 and first["db"] == "app"
    assert first["peer"] == "b'\\x01'"  # not JSON-encodable: str()
    assert first["extra_node_id"] == 4  # clashing extra kept under another name
    assert second["level"] == "error"
    assert "RuntimeError: kaput" in second["exc"] and "Traceback" in second["exc"]


def test_console_format_and_verbose_level() -> None:
    out = io.StringIO()
    configure_logging(LoggingConfig(format="console", verbose=True), node_id=3, stream=out)
    logging.getLogger("marmot.x").debug("hello", extra={"k": "v", "n": 2})
    (line,) = lines_of(out)
    assert re.match(r"^\d{4}-\d\d-\d\dT[\d:.]+Z DEBUG \[node 3\] marmot\.x: hello k='v' n=2$", line), line
    assert logging.getLogger().level == logging.DEBUG


def test_idempotent_no_duplicate_handlers() -> None:
    root = logging.getLogger()
    others = [h for h in root.handlers if not _ours(h)]
    out1, out2 = io.StringIO(), io.StringIO()
    configure_logging(LoggingConfig(), 1, stream=out1)
    configure_logging(LoggingConfig(), 1, stream=out2)
    configure_logging(LoggingConfig(), 1, stream=out2)
    assert len([h for h in root.handlers if _ours(h)]) == 1
    assert [h for h in root.handlers if not _ours(h)] == others  # foreign handlers untouched
    logging.getLogger("marmot").warning("once")
    assert lines_of(out1) == [] and len(lines_of(out2)) == 1


def test_defaults_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(LoggingConfig(), 5)
    logging.getLogger("marmot").info("to stdout")
    assert json.loads(capsys.readouterr().out.strip())["msg"] == "to stdout"


def test_file_also_written_and_rotated_with_gzip(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "marmot.log"  # parent directory is created
    cfg = LoggingConfig(file=str(path), max_size_mb=0.002, max_backups=3, compress=True)  # ~2 KiB
    out = io.StringIO()
    configure_logging(cfg, 8, stream=out)
    log = logging.getLogger("marmot.rot")
    for i in range(200):
        log.info("line %d %s", i, "x" * 40)
    for handler in logging.getLogger().handlers:
        handler.flush()

    assert len(lines_of(out)) == 200  # stdout still gets everything
    rotated = sorted(p.name for p in path.parent.iterdir() if p.name != "marmot.log")
    assert rotated == ["marmot.log.1.gz", "marmot.log.2.gz", "marmot.log.3.gz"]
    assert path.stat().st_size <= 2 * 1024 * 1.1
    # Every kept line parses; the newest lines are in the live file, older ones in .1.gz, .2.gz ...
    live = [json.loads(line) for line in path.read_text().splitlines()]
    one = [
        json.loads(line)
        for line in gzip.decompress((path.parent / "marmot.log.1.gz").read_bytes()).splitlines()
    ]
    assert live and one
    assert live[-1]["msg"].startswith("line 199 ")
    assert one[-1]["msg"] == f"line {int(live[0]['msg'].split()[1]) - 1} " + "x" * 40
    assert all(rec["node_id"] == 8 for rec in live + one)


def test_file_rotation_without_compression(tmp_path: Path) -> None:
    path = tmp_path / "m.log"
    configure_logging(
        LoggingConfig(file=str(path), max_size_mb=0.001, max_backups=2, compress=False),
        1,
        stream=io.StringIO(),
    )
    for i in range(100):
        logging.getLogger("marmot").info("entry %d", i)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["m.log", "m.log.1", "m.log.2"]
    json.loads((tmp_path / "m.log.1").read_text().splitlines()[0])


def test_reconfigure_closes_previous_file_handler(tmp_path: Path) -> None:
    first, second = tmp_path / "a.log", tmp_path / "b.log"
    configure_logging(LoggingConfig(file=str(first)), 1, stream=io.StringIO())
    configure_logging(LoggingConfig(file=str(second)), 1, stream=io.StringIO())
    logging.getLogger("marmot").info("only in b")
    for handler in logging.getLogger().handlers:
        handler.flush()
    assert first.read_text() == ""
    assert "only in b" in second.read_text()
