"""Membership state machine with a fake clock: merge rules, self-refutation, admin decisions, failure
detector, join checks, quorum, persistence of the view."""

from __future__ import annotations

import os
import random

import msgpack
import pytest

from marmot.cluster import membership_store as store
from marmot.cluster.membership import (
    ALIVE,
    DEAD,
    JOINING,
    LEAVING,
    REMOVED,
    SUSPECT,
    Membership,
    MembershipError,
    decode_entry,
)

T0 = 1000.0


def entry(
    nid: int,
    state: str = ALIVE,
    inc: int = 0,
    gen: int = 0,
    addr: str | None = None,
    extra: dict | None = None,
) -> dict:
    return {
        "id": nid,
        "addr": f"10.0.0.{nid}:8080" if addr is None else addr,
        "state": state,
        "inc": inc,
        "gen": gen,
        "extra": extra or {},
    }


def make(
    nid: int = 1,
    *,
    peers: tuple[int, ...] = (),
    suspect: float = 5.0,
    dead: float = 10.0,
    events: list | None = None,
    **kw,
) -> Membership:
    m = Membership(
        nid,
        f"10.0.0.{nid}:8080",
        now=T0,
        suspect_timeout=suspect,
        dead_timeout=dead,
        rng=random.Random(7),
        on_change=(lambda *a: events.append(a)) if events is not None else None,
        **kw,
    )
    m.merge([entry(p) for p in peers], T0)
    return m


# ---- merge rules ---------------------------------------------------------------------------------


def test_new_membership_has_only_itself() -> None:
    m = make(1)
    assert m.state == ALIVE and m.incarnation == 0
    assert m.alive_members() == [1] and m.total_members() == 1 and m.has_quorum()
    assert m.members(T0) == [
        {
            "node_id": 1,
            "address": "10.0.0.1:8080",
            "state": ALIVE,
            "incarnation": 0,
            "last_seen_ms_ago": 0,
            "extra": {},
        }
    ]
    assert Membership(1, "a:1", now=T0, joining=True).state == JOINING
    with pytest.raises(ValueError):
        Membership(0, "a:1", now=T0)


def test_unknown_node_is_added_with_its_state() -> None:
    events: list = []
    m = make(1, events=events)
    m.merge([entry(2), entry(3, DEAD, 4)], T0)
    assert m.state_of(2) == ALIVE and m.state_of(3) == DEAD and m.get(3).incarnation == 4
    assert events == [(2, "", ALIVE), (3, "", DEAD)]
    assert m.total_members() == 3 and m.alive_members() == [1, 2]


def test_higher_incarnation_wins_outright_and_resurrects_dead() -> None:
    m = make(1, peers=(2,))
    m.merge([entry(2, DEAD, 3)], T0)
    assert m.state_of(2) == DEAD
    m.merge([entry(2, ALIVE, 3)], T0)  # equal incarnation: no resurrection
    assert m.state_of(2) == DEAD
    m.merge([entry(2, ALIVE, 4, addr="10.9.9.9:1", extra={"schema": 5})], T0 + 1)
    assert m.state_of(2) == ALIVE and m.get(2).incarnation == 4
    assert m.get(2).address == "10.9.9.9:1" and m.extra()[2] == {"schema": 5}


def test_equal_incarnation_only_escalates() -> None:
    m = make(1, peers=(2,))
    m.merge([entry(2, SUSPECT, 0)], T0)
    assert m.state_of(2) == SUSPECT
    m.merge([entry(2, ALIVE, 0)], T0)
    assert m.state_of(2) == SUSPECT
    m.merge([entry(2, DEAD, 0)], T0)
    assert m.state_of(2) == DEAD
    m.merge([entry(2, SUSPECT, 0)], T0)
    assert m.state_of(2) == DEAD
    m.merge([entry(2, ALIVE, 0), entry(2, JOINING, 0), entry(2, LEAVING, 0)], T0)
    assert m.state_of(2) == DEAD


def test_lower_incarnation_is_ignored() -> None:
    m = make(1)
    m.merge([entry(2, ALIVE, 5)], T0)
    m.merge([entry(2, DEAD, 4)], T0)
    assert m.state_of(2) == ALIVE and m.get(2).incarnation == 5


def test_version_moves_only_on_real_changes() -> None:
    m = make(1, peers=(2,))
    v = m.version
    m.merge([entry(2)], T0 + 1)
    assert m.version == v
    m.merge([entry(2, SUSPECT)], T0 + 1)
    assert m.version == v + 1


def test_malformed_entries_are_skipped_never_raise() -> None:
    m = make(1)
    bad = [
        None,
        7,
        "x",
        {},
        {"id": "2"},
        {"id": True, "addr": "a", "state": ALIVE, "inc": 0},
        {"id": 2, "addr": "a", "state": "ZOMBIE", "inc": 0},
        {"id": 2, "addr": "a", "state": ALIVE, "inc": -1},
        {"id": 2, "addr": 5, "state": ALIVE, "inc": 0},
        {"id": 2, "addr": "a", "state": ALIVE, "inc": 0, "extra": {1: 2}},
        {"id": -3, "addr": "a", "state": ALIVE, "inc": 0},
        {"id": 2, "addr": "a" * 5000, "state": ALIVE, "inc": 0},
    ]
    assert m.merge(bad + [entry(4)], T0) == len(bad)
    assert [x["node_id"] for x in m.members(T0)] == [1, 4]
    assert m.merge("not a list", T0) == 1
    assert m.merge({"id": 1}, T0) == 1
    assert decode_entry(entry(3)) is not None


# ---- self-refutation -----------------------------------------------------------------------------


@pytest.mark.parametrize("claim", [SUSPECT, DEAD])
def test_self_refutation_bumps_incarnation_and_stays_alive(claim: str) -> None:
    m = make(1, incarnation=3)
    m.merge([entry(1, claim, 3)], T0)
    assert m.state == ALIVE and m.incarnation == 4 and m.stats["refutations"] == 1
    m.merge([entry(1, claim, 9)], T0)
    assert m.state == ALIVE and m.incarnation == 10
    m.merge([entry(1, claim, 2)], T0)  # stale claim: ignored
    assert m.incarnation == 10
    m.merge([entry(1, ALIVE, 10)], T0)  # agrees with us
    assert m.incarnation == 10 and m.stats["refutations"] == 2


def test_refutation_keeps_own_state() -> None:
    m = make(1, joining=True)
    m.merge([entry(1, SUSPECT, 0)], T0)
    assert m.state == JOINING and m.incarnation == 1


def test_higher_incarnation_about_self_is_overtaken() -> None:
    """After a lost data dir the cluster remembers us at a higher incarnation: we go above it."""
    m = make(1)
    m.merge([entry(1, ALIVE, 8)], T0)
    assert m.state == ALIVE and m.incarnation == 9


def test_claim_about_self_at_other_address_is_refuted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    m = make(1)
    m.merge([entry(1, ALIVE, 0, addr="10.7.7.7:1")], T0)
    assert m.incarnation == 1
    assert "another process claims to be node 1" in caplog.text


def test_refutation_then_propagates_to_peers() -> None:
    a, b = make(1, peers=(2,)), make(2, peers=(1,))
    a.merge([entry(2, SUSPECT, 0)], T0)  # A suspects B
    b.merge(a.view(), T0, source=1)  # B hears it and refutes
    assert b.incarnation == 1
    a.merge(b.view(), T0, source=2)
    assert a.state_of(2) == ALIVE and a.get(2).incarnation == 1


# ---- own state changes ---------------------------------------------------------------------------


def test_own_state_changes_bump_incarnation() -> None:
    m = make(1, joining=True)
    assert m.promote() and m.state == ALIVE and m.incarnation == 1
    assert not m.promote()
    m.set_metadata("schema", {"db": 3})
    assert m.incarnation == 2 and m.extra()[1] == {"schema": {"db": 3}}
    m.set_metadata("schema", {"db": 3})  # unchanged: no bump
    assert m.incarnation == 2
    m.set_leaving()
    assert m.state == LEAVING and m.incarnation == 3
    assert m.alive_members() == [] and m.total_members() == 1


def test_metadata_travels_with_the_entry() -> None:
    a, b = make(1, peers=(2,)), make(2, peers=(1,))
    a.set_metadata("schema_versions", {"app": 4})
    b.merge(a.view(), T0)
    assert b.extra()[1] == {"schema_versions": {"app": 4}}


# ---- admin: remove / allow -----------------------------------------------------------------------


def test_removed_is_sticky_against_any_incarnation() -> None:
    m = make(1, peers=(2, 3))
    m.remove(2, T0)
    assert m.state_of(2) == REMOVED and m.get(2).gen == 1
    m.merge([entry(2, ALIVE, 99)], T0)
    assert m.state_of(2) == REMOVED
    assert m.total_members() == 2 and m.alive_members() == [1, 3]
    with pytest.raises(KeyError):
        m.remove(42, T0)


def test_remove_and_allow_propagate_by_generation() -> None:
    a, b = make(1, peers=(2, 3)), make(3, peers=(1, 2))
    b.merge([entry(2, ALIVE, 7)], T0)
    a.remove(2, T0)
    b.merge(a.view(), T0)
    assert b.state_of(2) == REMOVED and b.get(2).incarnation == 7  # incarnation never goes back
    a.allow(2, T0 + 1)
    assert a.state_of(2) == DEAD and a.get(2).address == "" and a.get(2).gen == 2
    b.merge(a.view(), T0 + 1)
    assert b.state_of(2) == DEAD and b.get(2).address == ""
    assert b.check_join(2, "10.5.5.5:8080") is None  # rejoin from any address
    b.accept_join(2, "10.5.5.5:8080", 0, T0 + 2)
    assert b.state_of(2) == JOINING and b.get(2).incarnation == 8
    a.merge(b.view(), T0 + 2)
    assert a.state_of(2) == JOINING and a.get(2).address == "10.5.5.5:8080"


def test_allow_of_a_node_that_is_not_removed_is_a_no_op() -> None:
    m = make(1, peers=(2,))
    m.allow(2, T0)
    assert m.state_of(2) == ALIVE and m.get(2).gen == 0


def test_removed_node_learns_it_and_cannot_refute_then_is_allowed_back() -> None:
    events: list = []
    victim = make(2, peers=(1,), events=events)
    admin = make(1, peers=(2,))
    admin.remove(2, T0)
    victim.merge(admin.view(), T0)
    assert victim.state == REMOVED and (2, ALIVE, REMOVED) in events
    victim.merge([entry(2, SUSPECT, 50, gen=1)], T0)
    assert victim.state == REMOVED
    assert not victim.has_quorum() and victim.alive_members() == [1]
    admin.allow(2, T0)
    victim.merge(admin.view(), T0)
    assert victim.state == JOINING and victim.get(2).address == "10.0.0.2:8080"
    assert victim.incarnation > 0
    admin.merge(victim.view(), T0)
    assert admin.state_of(2) == JOINING and admin.get(2).address == "10.0.0.2:8080"


def test_equal_generation_remove_beats_concurrent_allow() -> None:
    a = make(1, peers=(2,))
    a.remove(2, T0)  # gen 1
    a.merge([entry(2, DEAD, 0, gen=1, addr="")], T0)
    assert a.state_of(2) == REMOVED
    b = make(3, peers=(2,))
    b.merge([entry(2, DEAD, 0, gen=2, addr="")], T0)
    b.merge([entry(2, REMOVED, 0, gen=2)], T0)
    assert b.state_of(2) == REMOVED


# ---- failure detector ----------------------------------------------------------------------------


def test_probe_failure_suspects_only_after_suspect_timeout_of_silence() -> None:
    m = make(1, peers=(2,), suspect=5.0, dead=10.0)
    assert not m.probe_failed(2, T0 + 4.9)
    assert m.state_of(2) == ALIVE
    assert m.probe_failed(2, T0 + 5.0)
    assert m.state_of(2) == SUSPECT
    m.tick(T0 + 14.9)
    assert m.state_of(2) == SUSPECT
    m.tick(T0 + 15.0)
    assert m.state_of(2) == DEAD
    assert m.stats["suspected"] == 1 and m.stats["declared_dead"] == 1


def test_sign_of_life_resets_the_silence() -> None:
    m = make(1, peers=(2,))
    m.heard_from(2, T0 + 4)
    assert not m.probe_failed(2, T0 + 8)
    assert m.probe_failed(2, T0 + 9)
    assert m.members(T0 + 9.5)[1]["last_seen_ms_ago"] == 5500


def test_suspect_learned_by_gossip_gets_a_full_dead_timeout() -> None:
    m = make(1, peers=(2,), dead=10.0)
    m.merge([entry(2, SUSPECT, 0)], T0 + 3)
    m.tick(T0 + 12.9)
    assert m.state_of(2) == SUSPECT
    m.tick(T0 + 13)
    assert m.state_of(2) == DEAD


def test_second_hand_gossip_is_not_a_sign_of_life() -> None:
    m = make(1, peers=(2, 3))
    m.merge([entry(2, ALIVE, 0)], T0 + 6, source=3)
    assert m.probe_failed(2, T0 + 6)


def test_higher_incarnation_gives_a_fresh_window() -> None:
    m = make(1, peers=(2,))
    m.merge([entry(2, ALIVE, 1)], T0 + 20)
    assert not m.probe_failed(2, T0 + 24)


def test_probe_target_round_robin_covers_every_member() -> None:
    m = make(1, peers=(2, 3, 4, 5))
    for rnd in range(3):
        picked = [m.probe_target(T0 + 0.1 * rnd).node_id for _ in range(4)]
        assert sorted(picked) == [2, 3, 4, 5]


def test_probe_target_prefers_silent_members_and_rotates_among_them() -> None:
    m = make(1, peers=(2, 3, 4, 5))
    now = T0 + 3  # suspect/2 = 2.5 s of silence makes a member urgent
    for nid in (2, 3):
        m.heard_from(nid, now)
    picks = [m.probe_target(now + 0.1 * i).node_id for i in range(4)]
    assert picks == [4, 5, 4, 5]
    m.probe_failed(4, now + 2)  # 4 becomes SUSPECT: 5 keeps priority, 4 still probed in round robin
    assert m.probe_target(now + 0.5).node_id == 5


def test_probe_target_and_helpers_skip_dead_removed_and_self() -> None:
    m = make(1, peers=(2, 3, 4, 5))
    m.merge([entry(2, DEAD, 0), entry(3, SUSPECT, 0)], T0)
    m.remove(4, T0)
    assert {m.probe_target(T0).node_id for _ in range(6)} == {3, 5}
    assert [h.node_id for h in m.probe_helpers(3, 3)] == [5]
    assert m.probe_helpers(5, 3) == []
    assert m.probe_target(T0) is not None
    assert {t.node_id for t in m.gossip_targets(10)} == {3, 5}
    assert m.dead_target().node_id == 2


def test_probe_failed_does_not_touch_dead_removed_or_unknown() -> None:
    m = make(1, peers=(2,))
    m.merge([entry(2, DEAD, 0)], T0)
    assert not m.probe_failed(2, T0 + 100)
    assert not m.probe_failed(9, T0 + 100)
    assert not m.probe_failed(1, T0 + 100)


# ---- join checks ---------------------------------------------------------------------------------


def test_join_refuses_duplicate_node_id_at_other_address() -> None:
    m = make(1, peers=(2,))
    msg, fatal = m.check_join(2, "10.8.8.8:8080")
    assert fatal and "node id 2 is already used by the member at 10.0.0.2:8080" in msg
    msg, fatal = m.check_join(1, "10.8.8.8:8080")
    assert fatal and "already used" in msg
    assert m.check_join(1, "10.0.0.1:8080")[1] is False  # the seed is the joiner itself: not fatal
    assert m.check_join(2, "10.0.0.2:8080") is None  # restart at the same address


def test_join_refuses_id_bits_collision() -> None:
    m = make(1, peers=(2,))
    msg, fatal = m.check_join(66, "10.0.0.66:8080")
    assert fatal and "collides with member 2" in msg and "modulo 64" in msg
    m.remove(2, T0)
    assert m.check_join(66, "10.0.0.66:8080") is None  # removed members mint no more ids


def test_join_refuses_removed_node() -> None:
    m = make(1, peers=(2,))
    m.remove(2, T0)
    msg, fatal = m.check_join(2, "10.0.0.2:8080")
    assert fatal and "removed" in msg and "allow" in msg


def test_removed_seed_admits_nobody_but_not_fatally() -> None:
    m = make(1, peers=(2,))
    m.remove(1, T0)
    msg, fatal = m.check_join(3, "10.0.0.3:8080")
    assert not fatal and "removed" in msg


def test_accept_join_goes_above_every_known_incarnation() -> None:
    m = make(1)
    m.accept_join(2, "10.0.0.2:8080", 0, T0)
    assert m.state_of(2) == JOINING and m.get(2).incarnation == 0
    m.merge([entry(2, DEAD, 6)], T0)
    m.accept_join(2, "10.0.0.2:8080", 3, T0)
    assert m.state_of(2) == JOINING and m.get(2).incarnation == 7
    m.accept_join(2, "10.0.0.2:8080", 20, T0)
    assert m.get(2).incarnation == 20
    joiner = make(2, incarnation=3, joining=True)
    joiner.merge(m.view(), T0)  # the seed's entry about the joiner is higher: the joiner overtakes it
    assert joiner.state == JOINING and joiner.incarnation == 21


# ---- quorum and the persisted view ---------------------------------------------------------------


def test_quorum_over_total_membership() -> None:
    m = make(1, peers=(2, 3, 4, 5))
    assert m.has_quorum()
    m.merge([entry(2, DEAD, 0), entry(3, SUSPECT, 0)], T0)
    assert m.alive_members() == [1, 4, 5] and m.has_quorum()
    m.merge([entry(4, LEAVING, 1)], T0)
    assert m.total_members() == 5 and not m.has_quorum()  # LEAVING is not alive, still counted
    m.remove(2, T0)
    m.remove(3, T0)
    assert m.total_members() == 3 and m.has_quorum()


def test_restored_view_counts_absent_peers_and_has_no_quorum() -> None:
    old = make(1, peers=(2, 3), incarnation=4)
    old.merge([entry(3, ALIVE, 2, extra={"s": 1})], T0)
    snap = msgpack.unpackb(msgpack.packb(old.snapshot()))
    m = make(1)
    assert m.restore(snap, T0 + 100) == 2
    assert m.incarnation == 5 and m.state == JOINING
    assert m.total_members() == 3 and m.alive_members() == [] and not m.has_quorum()
    assert m.state_of(2) == SUSPECT and m.get(2).restored
    assert [e["id"] for e in m.view()] == [1]  # restored entries are not gossiped
    assert m.members(T0 + 100)[1]["last_seen_ms_ago"] is None
    m.promote()
    assert m.alive_members() == [1] and not m.has_quorum()  # never a cluster of one


def test_restored_entry_replaced_by_first_news_and_not_escalated_by_timeouts() -> None:
    old = make(1, peers=(2, 3))
    m = make(1)
    m.restore(old.snapshot(), T0)
    m.promote()
    assert not m.probe_failed(2, T0 + 60)  # memory is not a claim
    m.merge([entry(2, ALIVE, 0)], T0 + 1, source=2)
    assert m.state_of(2) == ALIVE and not m.get(2).restored
    assert m.has_quorum()
    m.tick(T0 + 10)
    assert m.state_of(3) == DEAD and m.get(3).restored  # local timer, still not gossiped
    assert [e["id"] for e in m.view()] == [1, 2]
    m.merge([entry(3, ALIVE, 0)], T0 + 11)
    assert m.state_of(3) == ALIVE


def test_restore_keeps_removed_and_generation() -> None:
    old = make(1, peers=(2, 3))
    old.remove(3, T0)
    m = make(1)
    assert m.restore(old.snapshot(), T0) == 1
    assert m.state_of(3) == REMOVED and m.get(3).gen == 1 and not m.get(3).restored
    assert m.total_members() == 2


def test_restore_only_removed_peers_starts_alive() -> None:
    old = make(1, peers=(2,))
    old.remove(2, T0)
    m = make(1)
    assert m.restore(old.snapshot(), T0) == 0 and m.state == ALIVE


def test_restore_rejects_foreign_or_unknown_snapshots() -> None:
    m = make(1)
    with pytest.raises(MembershipError, match="belongs to node 2"):
        m.restore(make(2).snapshot(), T0)
    with pytest.raises(MembershipError, match="format"):
        m.restore({"format": 99}, T0)


def test_store_roundtrip_is_atomic(tmp_path) -> None:
    d = str(tmp_path / "data")
    assert store.load(d) is None
    m = make(1, peers=(2, 3))
    store.save(d, m.snapshot())
    store.save(d, m.snapshot())
    assert sorted(os.listdir(d)) == ["membership.msgpack"]
    snap = store.load(d)
    assert snap["node_id"] == 1 and [e["id"] for e in snap["members"]] == [1, 2, 3]
    assert isinstance(snap["saved_at_ms"], int)


def test_store_refuses_a_corrupt_file(tmp_path) -> None:
    (tmp_path / "membership.msgpack").write_bytes(b"\xc1\xc1garbage")
    with pytest.raises(MembershipError, match="corrupt"):
        store.load(str(tmp_path))
    (tmp_path / "membership.msgpack").write_bytes(msgpack.packb([1, 2]))
    with pytest.raises(MembershipError, match="corrupt"):
        store.load(str(tmp_path))


def test_id_bits_collision_learned_by_gossip_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    m = make(1, peers=(2,))
    m.merge([entry(66)], T0)
    assert "share node id bits 2" in caplog.text
