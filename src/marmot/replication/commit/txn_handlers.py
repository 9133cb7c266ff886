"""The two-phase-commit RPC methods of one node: network payload → typed request → participant → answer.

Why apart from ``commit/participant.py``: the participant decides on typed requests (its own coordinator calls
it directly, with no encoding at all); this module is the one place where what comes off the network is
decoded and a malformed request is answered instead of raising — ``{ok: false, reject: "malformed
PREPARE: ..."}``, ``{ok: false, err: "malformed COMMIT: ..."}``, STATUS ``unknown``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from marmot.replication.commit.participant import Participant
from marmot.replication.commit.txn_messages import (
    Abort,
    Ack,
    Commit,
    Prepare,
    PrepareAnswer,
    Replay,
    Settle,
    StatusAnswer,
    StatusRequest,
    join_body,
)
from marmot.replication.messages import MessageError
from marmot.transport import Router, UnaryHandler


def handlers(p: Participant) -> dict[str, UnaryHandler]:
    """The unary methods, by name (``register`` adds them to a router; tests call them directly)."""

    async def prepare(payload: Any, _ctx: Any = None) -> Any:
        try:
            req = Prepare.decode(payload)
        except MessageError as e:
            return PrepareAnswer(False, reject=f"malformed PREPARE: {e}").encode()
        started = time.monotonic()
        answer = await p.prepare_waiting(req)
        if p.metrics is not None:  # upstream's replica_prepare_seconds; a refusal is a participant conflict
            p.metrics.replica_seconds("prepare", time.monotonic() - started)
            if answer.conflict:
                p.metrics.write_conflict(answer.conflict, "participant")
        return answer.encode()

    async def commit(payload: Any, _ctx: Any = None) -> Any:
        try:
            req = Commit.decode(payload)
        except MessageError as e:
            return Ack(False, f"malformed COMMIT: {e}").encode()
        started = time.monotonic()
        ack = await p.commit(req)
        if p.metrics is not None:
            p.metrics.replica_seconds("commit", time.monotonic() - started)
        return ack.encode()

    async def replay(payload: Any, _ctx: Any = None) -> Any:
        try:
            req = Replay.decode(payload)
        except MessageError as e:
            return Ack(False, f"malformed REPLAY: {e}").encode()
        started = time.monotonic()
        ack = await p.replay(req)
        if p.metrics is not None:
            p.metrics.replica_seconds("replay", time.monotonic() - started)
        return ack.encode()

    async def settle(payload: Any, _ctx: Any = None) -> Any:
        try:
            req = Settle.decode(payload)
        except MessageError as e:
            return Ack(False, f"malformed SETTLE: {e}").encode()
        return (await p.settle(req)).encode()

    async def abort(payload: Any, _ctx: Any = None) -> Any:
        try:
            req = Abort.decode(payload)
        except MessageError as e:
            return Ack(False, f"malformed ABORT: {e}").encode()
        return p.abort(req).encode()

    async def status(payload: Any, _ctx: Any = None) -> Any:
        try:
            req = StatusRequest.decode(payload)
        except MessageError:
            return StatusAnswer("unknown").encode()
        return p.status(req).encode()

    return {
        Prepare.method: prepare,
        Commit.method: commit,
        Abort.method: abort,
        Replay.method: replay,
        StatusRequest.method: status,
        Settle.method: settle,
    }


def register(router: Router, p: Participant) -> None:
    """Every 2PC method on ``router``, the streamed PREPARE/REPLAY of large transactions included."""
    unary = handlers(p)
    for name, fn in unary.items():
        router.unary(name, fn)

    def streamed(
        fn: UnaryHandler, malformed: dict[str, Any]
    ) -> Callable[[AsyncIterator[Any], Any], Awaitable[Any]]:
        async def handle(chunks: AsyncIterator[Any], ctx: Any) -> Any:
            req = await join_body(chunks)
            return await fn(req, ctx) if req is not None else malformed

        return handle

    router.client_stream(
        Prepare.method + "_stream",
        streamed(unary[Prepare.method], PrepareAnswer(False, reject="malformed stream").encode()),
    )
    router.client_stream(
        Replay.method + "_stream", streamed(unary[Replay.method], Ack(False, "malformed stream").encode())
    )
