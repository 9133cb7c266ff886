"""``wait_for``: poll a condition until it holds, with a deadline and a message that says what was seen.

Why polling: a node process does things on its own schedule (gossip rounds, asynchronous followers,
anti-entropy), so a test asserts "within N seconds" — generous N, since the machine may be loaded — and
a passing run is as fast as the condition.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 15.0,
    what: str = "condition",
    *,
    interval: float = 0.1,
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Call ``predicate`` every ``interval`` seconds until it returns something truthy, and return that.
    An exception of a type in ``ignore`` (e.g. a MySQL error while a node restarts) counts as "not yet";
    any other propagates. After ``timeout`` seconds, fail with ``what`` and the last value or error."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = predicate()
        except ignore as err:
            last = err
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not met within {timeout}s (last: {last!r})")
        time.sleep(interval)
