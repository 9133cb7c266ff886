"""``cluster/join.py``: how a seed's join failure is put into words, and when a failed round is logged."""

from __future__ import annotations

from marmot.cluster.join import LOG_EVERY_S, JoinStatus, describe_failure
from marmot.cluster.rpc import AuthError, RpcError


def test_describe_failure_names_the_cause() -> None:
    assert (
        describe_failure(RpcError("unavailable", "cannot connect to 10.0.0.1:8080: connection refused"))
        == "connection refused"
    )
    auth = describe_failure(AuthError("invalid cluster secret"))
    assert (
        auth.startswith("authentication failed")
        and "cluster_secret" in auth
        and "invalid cluster secret" in auth
    )
    assert (
        describe_failure(RpcError("deadline", "join: no answer within 5.0s"))
        == "timed out (join: no answer within 5.0s)"
    )
    assert (
        describe_failure(RpcError("unavailable", "cannot connect to h:1: no handshake within 3.0s"))
        == "timed out (no handshake within 3.0s)"
    )
    assert (
        describe_failure(
            RpcError("unavailable", "cannot connect to h:1: [Errno -2] Name or service not known")
        )
        == "[Errno -2] Name or service not known"
    )
    assert (
        describe_failure(RpcError("protocol", "unexpected frame type 9 during the handshake"))
        == "protocol: unexpected frame type 9 during the handshake"
    )
    assert describe_failure(ConnectionRefusedError()) == "connection refused"
    assert describe_failure(TimeoutError()) == "timed out"


def test_failed_rounds_are_logged_when_the_reason_changes_and_periodically() -> None:
    now = [100.0]
    status = JoinStatus(5, ["a:1", "b:2"], clock=lambda: now[0])
    assert not status.member and "seed a:1: no answer yet; seed b:2: no answer yet" in (
        status.refusal() or ""
    )
    status.failed("a:1", "connection refused")
    status.failed("b:2", "timed out")
    assert status.round_failed()  # first time: say it
    now[0] += 1
    assert not status.round_failed()  # the same again a second later: quiet
    status.failed("b:2", "authentication failed")
    assert status.round_failed()  # changed: say it at once
    now[0] += LOG_EVERY_S
    assert status.round_failed()  # unchanged for a while: say it again
    assert status.attempts == 4
    doc = status.as_json()
    assert doc["joined"] is False and doc["attempts"] == 4 and doc["last_attempt_ms_ago"] == 0
    assert doc["failures"] == {"a:1": "connection refused", "b:2": "authentication failed"}
    status.admitted()
    assert status.member and status.refusal() is None and status.failures == {}


def test_no_seeds_is_a_member_from_the_start() -> None:
    status = JoinStatus(1, [])
    assert status.member and status.refusal() is None and status.as_json() == {"joined": True, "seeds": []}
