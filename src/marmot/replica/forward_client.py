"""The replica's half of forwarded writes on the wire: one request to a live cluster node, retried safely.

Why these rules: a forwarded write must never apply twice and never silently not at all.

* **Retry, same node, same request id.** When the connection drops after the request went out (or the
  node does not answer yet), the replica cannot know whether it ran. It sends it again, with the same
  ``request_id``, to the same node until an answer comes or ``forward_write_timeout_sec`` passes: the node
  runs a request id once and answers a retry from memory (``forward_server.py``).
* **Fail over only when safe.** Another node knows nothing of the first node's forward sessions, so a
  request may go elsewhere only when it never reached any node (the connection could not be made, the
  secret was refused, the node has no ``forward`` method) *and* the session has no forwarded transaction
  open (that transaction lives on its node: if the node is gone the transaction is gone, and the client
  gets 1105 saying so). The next statement after an answer may go to another node: a new forward session
  starts there, carrying the session's state with every request.
* **Out of time.** After ``forward_write_timeout_sec`` the client gets 1105: "not applied" when no node
  ever received the request, "outcome unknown" when one did (as a client of a crashed MySQL primary).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from marmot.engine.errors import MySQLError
from marmot.replica.forward_protocol import CLOSE_METHOD, METHOD, NOT_RUN, ForwardAnswer, ForwardRequest

Send = Callable[[str, str, Any, float], Awaitable[Any]]  # (address, method, payload, timeout) -> answer
RETRY_INTERVAL_S = 0.2  # between two tries of the same node

_NOT_SENT_PREFIXES = ("cannot connect", "not connected", "client for")


def never_sent(err: BaseException) -> bool:
    """The call failed before its request could reach the node, or the node refused it before running any
    of it (``cluster/rpc`` says so in the code and message of the error: connect refused or timed out,
    handshake refused, unknown method; ``NOT_RUN`` from a node shutting down)."""
    code = getattr(err, "code", None)
    if code in ("auth", "unknown_method", NOT_RUN):  # NOT_RUN: a node shutting down refused it unrun
        return True
    message = str(getattr(err, "message", "")) or str(err)
    return code in ("unavailable", "deadline") and message.startswith(_NOT_SENT_PREFIXES)


@dataclass(slots=True)
class SessionLink:
    """Where a replica session's forward session lives (None until its first forwarded statement)."""

    node: str | None = None


class ForwardClient:
    """Sends forward requests to the cluster (module docstring for the retry and failover rules)."""

    def __init__(
        self,
        send: Send,
        candidates: Callable[[], list[str]],
        timeout_s: float,
        retry_interval_s: float = RETRY_INTERVAL_S,
    ) -> None:
        self._send = send
        self._candidates = candidates  # live cluster nodes, best first (the replica's source first)
        self.timeout_s = timeout_s
        self.retry_interval_s = retry_interval_s
        self.retries = 0  # requests sent again after a lost answer
        self.failovers = 0  # requests sent to another node than the session's

    async def call(self, link: SessionLink, req: ForwardRequest) -> ForwardAnswer:
        """The answer of ``req``; MySQLError 1105 when there is none within the timeout."""
        deadline = time.monotonic() + self.timeout_s
        delivered_to: str | None = None  # a node that may have received the request
        pinned = link.node if req.in_transaction else None  # an open transaction lives on its node
        tried: list[str] = []
        errors: dict[str, str] = {}
        while (remaining := deadline - time.monotonic()) > 0:
            target = delivered_to or pinned or self._next(link, tried)
            if target is None:  # every candidate refused: wait, then go round again
                tried.clear()
                await asyncio.sleep(min(self.retry_interval_s, remaining))
                continue
            try:
                msg = await self._send(target, METHOD, req.to_wire(), remaining)
            except Exception as err:
                errors[target] = str(err)
                if never_sent(err):
                    if delivered_to is None and pinned is None:
                        tried.append(target)  # it reached no node: safe to try another at once
                        continue
                else:  # it may have reached ``target``: from now on only ``target`` may get it
                    delivered_to = target
                    if getattr(err, "code", None) == "deadline":
                        break
                    self.retries += 1
                await asyncio.sleep(min(self.retry_interval_s, max(0.0, deadline - time.monotonic())))
                continue
            try:
                answer = ForwardAnswer.from_wire(msg)
            except (ValueError, TypeError, KeyError, IndexError) as err:
                raise MySQLError(
                    1105, "HY000", f"cluster node {target} gave no forward answer: {err}"
                ) from err
            if link.node is not None and link.node != target:
                self.failovers += 1
            link.node = target
            return answer
        raise self._timed_out(req, delivered_to, pinned, errors)

    def _next(self, link: SessionLink, tried: list[str]) -> str | None:
        """The node to try next: the session's node while it is a candidate, else the best untried one."""
        candidates = self._candidates()
        if link.node is not None and link.node in candidates:
            candidates = [link.node] + [c for c in candidates if c != link.node]
        for c in candidates:
            if c not in tried:
                return c
        return None

    def _timed_out(
        self, req: ForwardRequest, delivered_to: str | None, pinned: str | None, errors: dict[str, str]
    ) -> MySQLError:
        secs = f"{self.timeout_s:g}"
        why = "; ".join(f"{node}: {msg}" for node, msg in errors.items()) or "no cluster node is known"
        if delivered_to is not None:
            return MySQLError(
                1105,
                "HY000",
                f"no answer from cluster node {delivered_to} within [replica] forward_write_timeout_sec = "
                f"{secs} s: the forwarded statement may or may not have been applied ({why})",
            )
        if pinned is not None:
            return MySQLError(
                1105,
                "HY000",
                f"cluster node {pinned}, which holds this session's forwarded transaction, is unreachable "
                f"(for {secs} s): the transaction is lost (rolled back there); start it again ({why})",
            )
        return MySQLError(
            1105,
            "HY000",
            f"no cluster node took the forwarded write within [replica] forward_write_timeout_sec = {secs} s:"
            f" it was not applied ({why})",
        )

    async def close(self, link: SessionLink, session_id: str) -> None:
        """Tell the session's node that the replica session ended (best effort: it expires anyway)."""
        if link.node is None:
            return
        try:
            await self._send(link.node, CLOSE_METHOD, {"sid": session_id}, min(5.0, self.timeout_s))
        except Exception:  # the node expires the session after its idle timeout
            return
