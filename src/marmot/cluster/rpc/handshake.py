"""The connection handshake: the preamble and the MACs by which each side proves it knows the cluster secret.

Each side sends a fresh nonce and proves knowledge of the secret with an HMAC over both nonces and its
own node id, so the secret never crosses the wire and a recorded proof is useless on another connection
(``marmot.cluster.rpc`` shows the exchange).
"""

from __future__ import annotations

import hashlib
import hmac

PREAMBLE = b"MARMOT-RPC/1\n"
"""First bytes a client sends on a new connection. The node's shared cluster port routes a connection to
RPC when its first bytes equal this, else to HTTP (no HTTP request can start with them)."""

NONCE_SIZE = 16


def _node_id_bytes(node_id: int) -> bytes:
    return node_id.to_bytes(8, "big", signed=False)


def client_mac(secret: bytes, server_nonce: bytes, client_nonce: bytes, client_node_id: int) -> bytes:
    """The client's proof: HMAC-SHA256(secret, server_nonce || client_nonce || client_node_id)."""
    return hmac.new(
        secret, server_nonce + client_nonce + _node_id_bytes(client_node_id), hashlib.sha256
    ).digest()


def server_mac(secret: bytes, client_nonce: bytes, server_nonce: bytes, server_node_id: int) -> bytes:
    """The server's proof: HMAC-SHA256(secret, client_nonce || server_nonce || server_node_id)."""
    return hmac.new(
        secret, client_nonce + server_nonce + _node_id_bytes(server_node_id), hashlib.sha256
    ).digest()


def check_node_id(node_id: int) -> int:
    """``node_id`` if it fits the handshake's 8 bytes (checked when a client or server is made, not mid-call)."""
    if not isinstance(node_id, int) or not 0 <= node_id < 2**64:
        raise ValueError(f"node_id must be an integer in [0, 2**64), got {node_id!r}")
    return node_id
