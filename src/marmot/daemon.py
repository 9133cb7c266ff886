"""``-daemon``: run the node in the background, and let the launching command tell whether it started.

A plain double fork makes the command return 0 before the node has even opened its data directory, so
``marmot -daemon`` on a port in use "succeeds" and the failure is only in a log file. Here the launcher
keeps the read end of a pipe and waits: the daemon writes ``ok`` once the node serves (listeners bound,
PID file written) or ``error <message>`` when startup fails, and the launcher exits 0 or prints the
message and exits 1. A daemon that dies without a word (killed, crashed) closes the pipe, which the
launcher reports too. The double fork itself stays: the daemon is not a session leader and is re-parented
to init, so it outlives the shell and never gets a controlling terminal.
"""

from __future__ import annotations

import contextlib
import os
import sys

_OK = b"ok\n"
_ERROR = b"error "


class Readiness:
    """The daemon's end of the pipe: report once, ``ready()`` or ``failed(message)``; later calls do nothing."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    def ready(self) -> None:
        self._send(_OK)

    def failed(self, message: str) -> None:
        self._send(_ERROR + " ".join(message.split()).encode("utf-8", "replace") + b"\n")

    def _send(self, data: bytes) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):  # the launcher was killed: nobody is listening
            os.write(fd, data)
        with contextlib.suppress(OSError):
            os.close(fd)


def daemonize() -> Readiness:
    """Double fork; in the daemon, return its :class:`Readiness`. The launcher never returns from here: it
    waits for the report and exits with 0 (serving) or 1 (the node's error, printed to stderr)."""
    sys.stdout.flush()
    sys.stderr.flush()
    read_fd, write_fd = os.pipe()
    first = os.fork()
    if first > 0:
        os.close(write_fd)
        os._exit(_wait_for_report(read_fd, first))
    os.close(read_fd)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    return Readiness(write_fd)


def _wait_for_report(read_fd: int, first_child: int) -> int:
    """The launcher: read the daemon's report (EOF without one means it died) and turn it into an exit code."""
    chunks: list[bytes] = []
    try:
        while chunk := os.read(read_fd, 4096):
            chunks.append(chunk)
    except KeyboardInterrupt:
        print("marmot: interrupted; the node may still be starting in the background", file=sys.stderr)
        sys.stderr.flush()
        return 130
    finally:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(first_child, 0)  # the intermediate child exited right after the second fork
    report = b"".join(chunks)
    code = 0
    if not report.startswith(_OK):
        code = 1
        if report.startswith(_ERROR):
            message = report[len(_ERROR) :].decode("utf-8", "replace").strip()
        else:
            message = "the node exited during startup without reporting why (see its log)"
        print(f"marmot: {message}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    return code
