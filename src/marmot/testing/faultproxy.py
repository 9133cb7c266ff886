"""A fault-injecting TCP proxy for one *directed* link between two nodes, on 127.0.0.1.

Why a proxy: partitions must stay on 127.0.0.1 — no network
namespaces, no iptables. Node i dials node j through its own ``Link`` (``[cluster] dial_overrides`` maps
j's advertised address to the link's port), so each direction can fail on its own: ``reject`` resets new
and open connections (peers see "unavailable" at once), ``blackhole`` holds the bytes (peers time out; a
heal delivers what was held), ``delay`` adds latency with jitter, ``pass`` forwards.

The proxies run on their own event loop in a background thread, so tests stay plain synchronous code:
``ProxyPool.set(i, j, "reject")``. ``marmot.testing.cluster.LocalCluster(proxied=True)`` wires a cluster
through one.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST (SO_LINGER 0), not a FIN: the far side sees a reset connection."""
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(OSError):
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()


class Link:
    """Listens on ``listen_port`` and forwards to ``target_port``, subject to ``mode``."""

    def __init__(self, listen_port: int, target_port: int) -> None:
        self.listen_port = listen_port
        self.target_port = target_port
        self.mode = "pass"
        self.delay_ms = 0.0
        self.jitter_ms = 0.0
        self.conns: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._on_conn, "127.0.0.1", self.listen_port)

    def set(self, mode: str, delay_ms: float = 0.0, jitter_ms: float = 0.0) -> None:
        self.mode, self.delay_ms, self.jitter_ms = mode, delay_ms, jitter_ms
        if mode == "reject":
            for pair in list(self.conns):
                for w in pair:
                    _reset(w)

    def reset(self) -> None:
        """Reset every open connection (RST both ways) and keep the mode: a flaky network, not a partition."""
        for pair in list(self.conns):
            for w in pair:
                _reset(w)

    async def _on_conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "reject":
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            _reset(writer)
            return
        pair = (writer, up_writer)
        self.conns.add(pair)
        try:
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self.conns.discard(pair)
            for w in pair:
                w.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy one direction through a queue of (due time, bytes): delay keeps the byte order."""
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        async def deliver() -> None:
            while (item := await queue.get()) is not None:
                wait = item[0] - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                while self.mode == "blackhole":
                    await asyncio.sleep(0.05)
                writer.write(item[1])
                await writer.drain()

        task = asyncio.create_task(deliver())
        try:
            while data := await reader.read(65536):
                while self.mode == "blackhole":
                    await asyncio.sleep(0.05)
                lag = 0.0
                if self.mode == "delay":
                    lag = max(0.0, (self.delay_ms + random.uniform(-self.jitter_ms, self.jitter_ms)) / 1000)
                await queue.put((loop.time() + lag, data))
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            await queue.put(None)
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await task
            with contextlib.suppress(OSError, RuntimeError):
                writer.write_eof()


class ProxyPool:
    """Every directed link of a cluster, served from one background thread."""

    def __init__(self) -> None:
        self.links: dict[tuple[int, int], Link] = {}
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def add(self, src: int, dst: int, listen_port: int, target_port: int) -> Link:
        link = Link(listen_port, target_port)
        asyncio.run_coroutine_threadsafe(link.start(), self.loop).result(5)
        self.links[(src, dst)] = link
        return link

    def link(self, src: int, dst: int) -> Link:
        return self.links[(src, dst)]

    def set(self, src: int, dst: int, mode: str, **kw: float) -> None:
        link = self.links[(src, dst)]
        self.loop.call_soon_threadsafe(lambda: link.set(mode, **kw))

    def reset(self, src: int, dst: int) -> None:
        link = self.links[(src, dst)]
        self.loop.call_soon_threadsafe(link.reset)

    def isolate(self, node: int, mode: str = "reject") -> None:
        """Cut ``node`` off from every other node, both directions."""
        for src, dst in self.links:
            if node in (src, dst):
                self.set(src, dst, mode)

    def heal(self) -> None:
        for src, dst in self.links:
            self.set(src, dst, "pass")

    def close(self) -> None:
        async def stop() -> None:
            for link in self.links.values():
                link.set("reject")
                if link.server is not None:
                    link.server.close()
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in others:
                t.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
