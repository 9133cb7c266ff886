"""TLS for a MySQL connection that started in cleartext, on memory BIOs.

MySQL upgrades to TLS in the middle of the protocol: the client sends an SSLRequest packet and then,
without waiting, its TLS ClientHello. Both often arrive in one read, so by the time we see the SSLRequest
the transport has already consumed the first TLS bytes; asyncio's ``start_tls`` cannot be handed those
bytes. Running the TLS engine ourselves (``ssl.SSLObject`` over two ``MemoryBIO``) lets the already-read
bytes go straight into it, with no race.
"""

from __future__ import annotations

import ssl


class TlsSession:
    """Server side TLS state for one connection: feed ciphertext in, get plaintext out, and back."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._obj = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self.handshake_done = False

    def receive(self, data: bytes) -> bytes:
        """Decrypt what arrived; raises ``ssl.SSLError`` on a broken or hostile handshake."""
        self._incoming.write(data)
        if not self.handshake_done:
            try:
                self._obj.do_handshake()
            except ssl.SSLWantReadError:
                return b""
            self.handshake_done = True
        chunks = []
        while True:
            try:
                chunk = self._obj.read(65536)
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)

    def pending_output(self) -> bytes:
        """Ciphertext the TLS engine wants sent (handshake records, alerts)."""
        return self._outgoing.read()

    def encrypt(self, data: bytes) -> bytes:
        self._obj.write(data)
        return self._outgoing.read()

    def version(self) -> str | None:
        return self._obj.version()
