"""Raw byte streams to a node's port, for the fuzzers and the overload tests: send bytes, read the answer.

No client library sits in between, so a test can send what no driver would (half a packet, a wrong
length, garbage) and see exactly what the node answered: its packets, its error codes, or that it
closed the connection.
"""

from __future__ import annotations

import socket
import struct
import time

from marmot.mysql.packets import PacketFramer, ProtocolError, frame

# What a node's log must never contain: a traceback (an internal error or an unhandled exception) or
# asyncio's reports of a failed task or future nobody awaited.
LOG_PROBLEMS = (
    "Traceback",
    "was never retrieved",
    "Exception in callback",
    "Unhandled exception",
    "internal error",
)


def log_problems(text: str) -> list[str]:
    """The lines of a node's log that show a crash path (see ``LOG_PROBLEMS``)."""
    return [line for line in text.splitlines() if any(p in line for p in LOG_PROBLEMS)]


def exchange(port: int, data: bytes, timeout: float = 10.0, half_close: bool = True) -> tuple[bytes, bool]:
    """Connect, send ``data``, half-close our side (EOF) and read until the node closes.

    Returns (everything received, whether the node closed within ``timeout``). The node answers what it
    can, then sees our EOF and closes; a node that neither answers nor closes shows as False.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except OSError:  # the node already closed on an earlier, bad part of the stream
            pass
        return read_all(s, timeout)


def read_all(s: socket.socket, timeout: float) -> tuple[bytes, bool]:
    """Read until EOF or ``timeout``; (bytes, closed). A reset counts as closed."""
    out = bytearray()
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return bytes(out), False
        s.settimeout(left)
        try:
            chunk = s.recv(65536)
        except TimeoutError:
            return bytes(out), False
        except OSError:  # ECONNRESET: closed with unread data on its side
            return bytes(out), True
        if not chunk:
            return bytes(out), True
        out += chunk


def split_packets(data: bytes) -> list[bytes]:
    """The MySQL packets (payloads) in ``data``; a trailing partial packet is ignored."""
    framer = PacketFramer(1 << 30)
    framer.feed(data)
    out: list[bytes] = []
    try:
        while (pkt := framer.next_packet()) is not None:
            out.append(pkt[1])
    except ProtocolError:
        pass
    return out


def errors_in(data: bytes) -> list[tuple[int, str, str]]:
    """(code, SQLSTATE, message) of every ERR packet the node sent (the greeting is never one)."""
    out = []
    for p in split_packets(data):
        if p[:1] == b"\xff" and len(p) >= 9:
            code = struct.unpack_from("<H", p, 1)[0]
            out.append((code, p[4:9].decode("ascii", "replace"), p[9:].decode("utf-8", "replace")))
    return out


def command_stream(login: bytes, commands: list[bytes]) -> bytes:
    """The bytes a client sends: the handshake response (sequence 1), then each command (sequence 0)."""
    out, _ = frame(login, 1)
    for c in commands:
        out += frame(c, 0)[0]
    return out
