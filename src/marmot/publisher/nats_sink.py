"""The NATS JetStream sink: one subject per table, ``Nats-Msg-Id`` = the event id.

Why JetStream and not core NATS: a core publish is fire-and-forget, so "published" would mean "written
to a socket"; a JetStream publish is acknowledged once the stream stored the message, which is what lets
the worker move its cursor. The ``Nats-Msg-Id`` header makes the stream drop a message whose id it
stored within its duplicate window — the re-publishes after a retry or a takeover.

The stream: the one that already captures ``{topic_prefix}.>`` when there is one (an operator's own,
with its own limits), else one this sink creates, named after the prefix (``marmot.cdc`` ->
``MARMOT_CDC``), file storage, subjects ``{topic_prefix}.>``, duplicate window ``DUPLICATE_WINDOW_S``.

A batch is sent with ``publish_async`` (in order, on one connection) and then every acknowledgement is
awaited: all stored, or ``SinkUnavailable`` and the worker sends the whole batch again.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Sequence
from typing import Any

import nats
from nats.js.api import StorageType, StreamConfig

from marmot.config_schema import SinkConfig
from marmot.publisher.sink import OutboundMessage, SinkUnavailable

DUPLICATE_WINDOW_S = 600.0
CONNECT_TIMEOUT_S = 3.0
ACK_TIMEOUT_S = 10.0


def stream_name(topic_prefix: str) -> str:
    """A JetStream stream name from the topic prefix (names may not contain ``.``, ``*``, ``>``, blanks)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", topic_prefix).upper() or "MARMOT_CDC"


class NatsSink:
    def __init__(self, cfg: SinkConfig) -> None:
        self.name = cfg.name
        self.url = cfg.nats_url
        self.prefix = cfg.topic_prefix
        self.stream = ""
        self._nc: Any = None
        self._js: Any = None

    async def start(self) -> None:
        try:
            # nats-py keeps retrying a refused first connection on its own: bound it, the worker retries
            self._nc = await asyncio.wait_for(
                nats.connect(
                    self.url,
                    connect_timeout=CONNECT_TIMEOUT_S,
                    allow_reconnect=False,  # the worker reconnects, with its own backoff
                    max_reconnect_attempts=0,
                    reconnect_time_wait=0.2,
                    name=f"marmot-publisher-{self.name}",
                    error_cb=_ignore,
                    disconnected_cb=_ignore_cb,
                    closed_cb=_ignore_cb,
                ),
                CONNECT_TIMEOUT_S + 1,
            )
            self._js = self._nc.jetstream(timeout=ACK_TIMEOUT_S)
            self.stream = await self._ensure_stream()
        except SinkUnavailable:
            await self.close()
            raise
        except Exception as e:
            await self.close()
            raise SinkUnavailable(f"NATS {self.url}: {type(e).__name__}: {e}") from e

    async def _ensure_stream(self) -> str:
        probe = f"{self.prefix}.x.y"
        with contextlib.suppress(nats.js.errors.NotFoundError):
            found: str = await self._js.find_stream_name_by_subject(probe)
            return found
        name = stream_name(self.prefix)
        await self._js.add_stream(
            StreamConfig(
                name=name,
                subjects=[f"{self.prefix}.>"],
                storage=StorageType.FILE,
                duplicate_window=DUPLICATE_WINDOW_S,
            )
        )
        return name

    async def publish(self, batch: Sequence[OutboundMessage]) -> None:
        if self._js is None:
            raise SinkUnavailable(f"NATS {self.url}: not connected")
        try:
            futures = []
            for m in batch:
                if m.value is None:
                    continue  # tombstones are for Kafka log compaction only
                futures.append(
                    await self._js.publish_async(
                        m.topic, m.value, headers={"Nats-Msg-Id": m.event_id, "Marmot-Key": m.key.decode()}
                    )
                )
            if futures:
                await asyncio.wait_for(asyncio.gather(*futures), ACK_TIMEOUT_S)
        except Exception as e:
            raise SinkUnavailable(f"NATS {self.url}: publish failed: {type(e).__name__}: {e}") from e

    async def close(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()


async def _ignore(_e: Exception) -> None:
    """nats-py logs connection errors through this callback; the worker reports them itself."""


async def _ignore_cb() -> None:
    return None
