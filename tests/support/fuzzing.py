"""Hypothesis profiles of the fuzz tests, and the byte mutations they share.

``ci`` (the default) keeps the whole fuzz addition to ``make test`` within seconds and derandomized (the
same examples each run, so CI is deterministic); ``fuzz`` (``make fuzz``, or ``HYPOTHESIS_PROFILE=fuzz``)
runs many more, random examples per test (tens of minutes) and keeps failures in ``.hypothesis/``. The profile is
chosen once, when ``tests/conftest.py`` imports this module. Node-level fuzzers (one TCP connection per
example) scale their example counts from the loaded profile with ``node_examples``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

settings.register_profile(
    "ci",
    max_examples=100,
    derandomize=True,  # the same examples on every run: `make test` stays deterministic
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile(
    "fuzz",
    max_examples=5_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)


def node_examples(ci: int, fuzz: int) -> settings:
    """Settings for a fuzzer that talks to a real node: few examples under ``ci``, many under ``fuzz``."""
    return settings(
        max_examples=fuzz if PROFILE == "fuzz" else ci,
        deadline=None,
        # the fixture is the node, meant to be shared by every example (it is checked once afterwards)
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


# Bytes that mean something to a length-encoded or framed decoder: NUL, the lenenc markers, 0xFF.
INTERESTING_BYTES = (0x00, 0x01, 0x7F, 0x80, 0xFA, 0xFB, 0xFC, 0xFD, 0xFE, 0xFF)


@st.composite
def mutated(draw: st.DrawFn, base: bytes, max_ops: int = 4) -> bytes:
    """``base`` after a few random edits: truncation, bit flips, interesting bytes, insertions,
    deletions and duplicated slices (the edits a broken client or a corrupting link makes)."""
    data = bytearray(base)
    for _ in range(draw(st.integers(0, max_ops))):
        op = draw(st.sampled_from(("cut", "flip", "set", "insert", "delete", "dup")))
        if op == "insert" or not data:
            at = draw(st.integers(0, len(data)))
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
            continue
        i = draw(st.integers(0, len(data) - 1))
        if op == "cut":
            del data[i:]
        elif op == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            data[i] = draw(st.sampled_from(INTERESTING_BYTES))
        elif op == "delete":
            del data[i : i + draw(st.integers(1, 4))]
        else:
            j = draw(st.integers(i, min(len(data), i + 16)))
            data[j:j] = data[i:j]
    return bytes(data)
