"""Whether this node belongs to a cluster yet, and if not, what each seed said.

Why it exists: quorum is counted over the total membership, and a fresh node whose ``seed_nodes`` it
cannot reach (nothing answers, a typo in ``cluster_secret``) knows of no member but itself. Counted
naively that is a cluster of one: QUORUM needs one ack, its own, and it would accept writes and DDL that
no cluster knows about — a split brain made by a typo. So a node *with seeds* is a member only once a
seed admitted it, in this run or an earlier one (its persisted view then holds at least one peer); until
then the replication layer asks :meth:`JoinStatus.refusal` before every write and refuses it with the
seeds it tried and why each failed. A node configured without seeds is a deliberate single-node cluster
(or the first node of one) and is a member from the start.

Pure bookkeeping: the gossip driver (``gossip.py``) records each join round here; the replication
coordinator reads :meth:`refusal`; the admin health route reads :meth:`as_json`. No I/O, no asyncio.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from marmot.cluster.rpc import AuthError, RpcError

LOG_EVERY_S = 60.0  # an unchanged failure is logged again this often (a changed one at once)

_CONNECT_PREFIX = re.compile(r"^cannot connect to \S+: ")


def describe_failure(err: BaseException) -> str:
    """One seed's join failure in the words an operator acts on (the seed itself is named by the caller).

    The PSK handshake fails with :class:`AuthError` on either side (we could not prove the secret to
    the seed, or the seed could not prove it to us): that is a wrong ``cluster_secret``, said as such.
    """
    if isinstance(err, AuthError):
        return f"authentication failed, the cluster secret differs (check [cluster] cluster_secret): {err.message}"
    if isinstance(err, RpcError):
        msg = _CONNECT_PREFIX.sub("", err.message) or err.code
        if err.code == "deadline" or msg.startswith("no handshake within"):
            return f"timed out ({msg})"
        if err.code == "unavailable":
            return msg
        return f"{err.code}: {msg}"
    if isinstance(err, ConnectionRefusedError):
        return "connection refused"
    if isinstance(err, TimeoutError):
        return "timed out"
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


class JoinStatus:
    """This node's join state: member or not, the seeds, the last failure of each, how often it tried.

    ``member`` starts True without seeds; :meth:`restored_member` sets it for a node whose persisted
    view knows a peer; :meth:`admitted` once a seed admits this node. It never goes back to False: a
    member that loses its peers is covered by the quorum rule over the total membership instead.
    """

    def __init__(self, node_id: int, seeds: list[str], clock: Callable[[], float] = time.monotonic) -> None:
        self.node_id = node_id
        self.seeds = list(seeds)
        self.member = not self.seeds
        self.attempts = 0  # join rounds that admitted nobody
        self.failures: dict[str, str] = {}  # seed -> why its last join attempt failed
        self._clock = clock
        self._since = clock()
        self._last_attempt: float | None = None
        self._logged = ""
        self._logged_at = float("-inf")

    # ---- recording (the gossip driver) --------------------------------------------------------------

    def restored_member(self) -> None:
        """The persisted view holds a peer: this node joined a cluster in an earlier run."""
        self.member = True

    def failed(self, seed: str, reason: str) -> None:
        self.failures[seed] = reason

    def round_failed(self) -> bool:
        """A join round in which no seed admitted us ended. True when it is worth a WARNING: the
        reasons changed since the last one logged, or ``LOG_EVERY_S`` passed (no flood, no silence)."""
        now = self._clock()
        self.attempts += 1
        self._last_attempt = now
        summary = self.summary()
        if summary != self._logged or now - self._logged_at >= LOG_EVERY_S:
            self._logged, self._logged_at = summary, now
            return True
        return False

    def admitted(self) -> None:
        self.member = True
        self._last_attempt = self._clock()
        self.failures.clear()
        self._logged = ""

    # ---- reading --------------------------------------------------------------------------------------

    def summary(self) -> str:
        """``seed A: connection refused; seed B: authentication failed ...`` (seeds never tried: "no answer yet")."""
        return "; ".join(f"seed {s}: {self.failures.get(s, 'no answer yet')}" for s in self.seeds)

    def refusal(self) -> str | None:
        """The 1105 message for a write on a node that is not a member of any cluster; None for a member."""
        if self.member:
            return None
        return (
            f"node {self.node_id} has not joined a cluster: no seed admitted it ({self.summary()}); "
            f"writes and DDL are refused until one does, so that it never acts as a cluster of one "
            f"(the join is retried in the background)"
        )

    def as_json(self) -> dict[str, Any]:
        """For ``/admin/cluster/health``: ``{joined, seeds, failures, attempts, last_attempt_ms_ago,
        not_joined_for_s, reason}`` (the last three only while not joined)."""
        out: dict[str, Any] = {"joined": self.member, "seeds": list(self.seeds)}
        if not self.member:
            now = self._clock()
            out.update(
                failures={s: self.failures.get(s, "no answer yet") for s in self.seeds},
                attempts=self.attempts,
                last_attempt_ms_ago=None
                if self._last_attempt is None
                else int((now - self._last_attempt) * 1000),
                not_joined_for_s=round(now - self._since, 1),
                reason=self.refusal(),
            )
        return out
