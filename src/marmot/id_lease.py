"""AUTO_INCREMENT id lease: ids minted after a restart are above every id minted before it.

Compact and extended ids start with a millisecond timestamp. If the wall clock steps back across a
restart (NTP correction, VM migration), a node would mint ids it already handed out. The lease fixes
that: the node persists "ids may have been minted up to T" with T a few seconds ahead, renews it while
it runs, and on start raises its generator's floor to the stored T.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from marmot.ids import IdGenerator
from marmot.storage.node_state import NodeState

LEASE_KEY = "auto_id_lease_ms"
LEASE_AHEAD_MS = 10_000
RENEW_MARGIN_MS = 5_000


class IdLease:
    def __init__(
        self,
        generator: IdGenerator,
        state: NodeState,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self.generator = generator
        self.state = state
        self.clock_ms = clock_ms
        self.lease_ms = 0

    def start(self) -> None:
        """Raise the generator above the previous run's lease, then take a new one."""
        stored = self.state.get(LEASE_KEY)  # an INTEGER, or None before the first lease
        floor = int(stored) if isinstance(stored, int | float | str | bytes) and stored else 0
        if floor:
            self.generator.raise_floor(floor)
        self.renew()

    def renew(self) -> None:
        ahead = max(self.clock_ms(), self.generator.high_water_ms()) + LEASE_AHEAD_MS
        self.state.set(LEASE_KEY, ahead)
        self.lease_ms = ahead

    def maybe_renew(self) -> None:
        now = max(self.clock_ms(), self.generator.high_water_ms())
        if now + RENEW_MARGIN_MS > self.lease_ms:
            self.renew()

    async def run(self, interval_s: float = 1.0) -> None:
        while True:
            await asyncio.sleep(interval_s)
            self.maybe_renew()
