"""One call as both sides see it: how it fails (``RpcError``, ``AuthError``) and what its handler knows
about it (``CallContext``).

Import from ``marmot.cluster.rpc``.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

INF = math.inf
"""The deadline of a call whose caller set no timeout."""


class RpcError(Exception):
    """A call failed. ``code`` says how; ``message`` says why.

    Codes: ``deadline`` (the call's timeout passed), ``unavailable`` (no connection, connection lost,
    client closed), ``unknown_method``, ``handler`` (the remote handler raised), ``auth`` (cluster secret
    mismatch), ``protocol`` (the peer broke the protocol), ``cancelled``. A handler may raise
    ``RpcError`` with a code of its own; the caller receives that code and message unchanged.
    """

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message

    def copy(self) -> RpcError:
        """A fresh exception with the same code and message (raising one instance twice grows its traceback)."""
        if type(self) is AuthError:
            return AuthError(self.message)
        return RpcError(self.code, self.message)


class AuthError(RpcError):
    """The peer does not share our cluster secret (either direction of the handshake failed)."""

    def __init__(self, message: str = "invalid cluster secret") -> None:
        super().__init__("auth", message)


@dataclass(slots=True)
class CallContext:
    """What a handler knows about the call: the authenticated peer and the deadline (``loop.time()``;
    ``math.inf`` when the caller set none)."""

    peer_node_id: int
    peer_address: str
    deadline: float

    def remaining(self) -> float:
        """Seconds left before the deadline (negative once passed)."""
        return self.deadline - asyncio.get_running_loop().time()
