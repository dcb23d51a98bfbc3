"""The classic group state machine: JoinGroup and SyncGroup transitions and error codes.

Time moves only when a test calls `advance` (see `group_fixtures`).
"""

from __future__ import annotations

import pytest

from shoal.groups.model import GroupConfig, GroupState
from shoal.protocol import errors
from tests.unit.group_fixtures import (
    DELAY,
    REBALANCE,
    SESSION,
    Harness,
    join,
    stable_group,
    state,
    sync,
)


# -- JoinGroup ---------------------------------------------------------------------------------
def test_first_join_waits_for_initial_delay_then_completes() -> None:
    h = Harness()
    g = h.make()
    a = join(g)
    assert state(g) is GroupState.PREPARING_REBALANCE and not a.results
    assert h.wakes[-1] == ("g", h.now + DELAY)
    h.advance(DELAY - 1)
    assert not a.results
    h.advance(1)
    r = a.one
    assert r.error == errors.NONE and r.generation == 1 and r.leader == r.member_id
    assert r.protocol_name == "range" and r.protocol_type == "consumer"
    assert [m.metadata for m in r.members] == [b"sub-range"]
    assert state(g) is GroupState.COMPLETING_REBALANCE


def test_initial_delay_extends_while_members_arrive_bounded_by_rebalance_timeout() -> None:
    h = Harness()
    g = h.make()
    first = join(g, rebalance=1000)
    for _ in range(10):
        h.advance(DELAY - 1)
        join(g, rebalance=1000)
    # 1000 ms rebalance timeout: at most 300 + 300 + 300 + 100 ms of delay.
    assert first.results and first.one.error == errors.NONE
    assert g.generation == 1


def test_sync_moves_to_stable_and_hands_out_assignments() -> None:
    h = Harness()
    g, (leader, follower) = stable_group(h)
    assert h.saved[-1].state == "Stable" and h.saved[-1].generation == 1
    assert {m.member_id: m.assignment for m in h.saved[-1].members} == {
        leader: leader.encode(),
        follower: follower.encode(),
    }
    assert g.members[follower].assignment == follower.encode()


def test_follower_waits_for_leader_sync() -> None:
    h = Harness()
    g = h.make()
    a, b = join(g), join(g)
    h.advance(DELAY)
    h.advance(DELAY)
    leader = a.one.leader
    follower = b.one.member_id if b.one.member_id != leader else a.one.member_id
    fs = sync(g, follower, 1)
    assert not fs.results
    sync(g, leader, 1, {follower: b"x"})
    assert fs.sync.error == errors.NONE and fs.sync.assignment == b"x"
    assert fs.sync.protocol_name == "range"


def test_member_id_required_then_join() -> None:
    h = Harness()
    g = h.make()
    a = join(g, require_known=True)
    r = a.one
    assert r.error == errors.MEMBER_ID_REQUIRED and r.member_id.startswith("c-")
    assert r.member_id in g.pending_members and not g.members
    b = join(g, member_id=r.member_id, require_known=True)
    h.advance(DELAY)
    assert b.one.error == errors.NONE and b.one.member_id == r.member_id


def test_pending_member_expires_after_session_timeout() -> None:
    h = Harness()
    g = h.make()
    r = join(g, require_known=True).one
    h.advance(SESSION)
    assert r.member_id not in g.pending_members
    assert join(g, member_id=r.member_id).one.error == errors.UNKNOWN_MEMBER_ID


def test_invalid_session_timeout() -> None:
    h = Harness()
    g = h.make()
    assert join(g, session=1).one.error == errors.INVALID_SESSION_TIMEOUT
    assert join(g, session=1_800_001).one.error == errors.INVALID_SESSION_TIMEOUT
    assert state(g) is GroupState.EMPTY


def test_inconsistent_group_protocol() -> None:
    h = Harness()
    g = h.make()
    assert join(g, protocol_type="").one.error == errors.INCONSISTENT_GROUP_PROTOCOL
    assert join(g, protocols=()).one.error == errors.INCONSISTENT_GROUP_PROTOCOL
    join(g)
    assert join(g, protocol_type="connect").one.error == errors.INCONSISTENT_GROUP_PROTOCOL
    other = (("sticky", b""),)
    assert join(g, protocols=other).one.error == errors.INCONSISTENT_GROUP_PROTOCOL


def test_protocol_selection_votes_among_common_protocols() -> None:
    h = Harness()
    g = h.make()
    a = join(g, protocols=(("roundrobin", b"1"), ("range", b"2")))
    join(g, protocols=(("range", b"3"), ("roundrobin", b"4")))
    join(g, protocols=(("roundrobin", b"5"),))
    h.advance(DELAY)
    h.advance(DELAY)
    assert a.one.protocol_name == "roundrobin"


def test_unknown_member_join_is_rejected() -> None:
    h = Harness()
    g, _ = stable_group(h)
    assert join(g, member_id="ghost").one.error == errors.UNKNOWN_MEMBER_ID


def test_group_max_size() -> None:
    h = Harness()
    g = h.make(GroupConfig(initial_rebalance_delay_ms=DELAY, max_size=1))
    join(g)
    assert join(g).one.error == errors.GROUP_MAX_SIZE_REACHED


def test_stable_follower_rejoin_with_same_metadata_gets_current_generation() -> None:
    h = Harness()
    g, (_leader, follower) = stable_group(h)
    r = join(g, member_id=follower).one
    assert r.error == errors.NONE and r.generation == 1 and r.members == ()
    assert state(g) is GroupState.STABLE


def test_leader_rejoin_triggers_rebalance() -> None:
    h = Harness()
    g, (leader, follower) = stable_group(h)
    a = join(g, member_id=leader)
    assert state(g) is GroupState.PREPARING_REBALANCE and not a.results
    assert g.heartbeat(follower, None, 1) == errors.REBALANCE_IN_PROGRESS
    b = join(g, member_id=follower)
    assert a.one.generation == 2 and b.one.generation == 2
    assert state(g) is GroupState.COMPLETING_REBALANCE


def test_changed_subscription_triggers_rebalance() -> None:
    h = Harness()
    g, (_leader, follower) = stable_group(h)
    join(g, member_id=follower, protocols=(("range", b"new"),))
    assert state(g) is GroupState.PREPARING_REBALANCE


def test_new_member_triggers_rebalance_and_rebalance_timeout_drops_silent_members() -> None:
    h = Harness()
    g, (leader, follower) = stable_group(h)
    newcomer = join(g, client="new")
    assert state(g) is GroupState.PREPARING_REBALANCE
    lead = join(g, member_id=leader)
    # The follower keeps heartbeating but never rejoins: the rebalance timeout ends the phase.
    for _ in range(REBALANCE // 5000):
        h.advance(5000)
        g.heartbeat(follower, None, 1)
    assert newcomer.one.error == errors.NONE and lead.one.generation == 2
    assert follower not in g.members and len(g.members) == 2


def test_completing_rebalance_retry_join_answers_again() -> None:
    h = Harness()
    g = h.make()
    a = join(g)
    h.advance(DELAY)
    mid = a.one.member_id
    again = join(g, member_id=mid).one
    assert again.error == errors.NONE and again.generation == 1 and again.leader == mid
    assert state(g) is GroupState.COMPLETING_REBALANCE


def test_join_in_completing_rebalance_with_new_metadata_restarts_and_fails_waiting_syncs() -> None:
    h = Harness()
    g = h.make()
    a, b = join(g), join(g)
    h.advance(DELAY)
    h.advance(DELAY)
    leader = a.one.leader
    follower = next(x.one.member_id for x in (a, b) if x.one.member_id != leader)
    fs = sync(g, follower, 1)
    join(g, member_id=leader, protocols=(("range", b"changed"),))
    assert state(g) is GroupState.PREPARING_REBALANCE
    assert fs.sync.error == errors.REBALANCE_IN_PROGRESS


# -- SyncGroup errors ----------------------------------------------------------------------------
def test_sync_errors() -> None:
    h = Harness()
    g, (leader, follower) = stable_group(h)
    assert sync(g, "ghost", 1).sync.error == errors.UNKNOWN_MEMBER_ID
    assert sync(g, follower, 7).sync.error == errors.ILLEGAL_GENERATION
    assert sync(g, follower, 1, ptype="connect").sync.error == errors.INCONSISTENT_GROUP_PROTOCOL
    assert sync(g, follower, 1, pname="other").sync.error == errors.INCONSISTENT_GROUP_PROTOCOL
    ok = sync(g, follower, 1, ptype="consumer", pname="range").sync
    assert ok.error == errors.NONE and ok.assignment == follower.encode()
    join(g, member_id=leader)
    assert sync(g, follower, 1).sync.error == errors.REBALANCE_IN_PROGRESS


def test_sync_store_failure_fails_the_generation() -> None:
    h = Harness()
    g = h.make()
    a = join(g)
    h.advance(DELAY)
    h.persist_error = errors.COORDINATOR_NOT_AVAILABLE
    s = sync(g, a.one.member_id, 1, {a.one.member_id: b"x"})
    assert s.sync.error == errors.COORDINATOR_NOT_AVAILABLE
    assert state(g) is GroupState.PREPARING_REBALANCE


def test_assignment_stored_late_for_an_old_generation_is_ignored() -> None:
    h = Harness()
    g = h.make()
    a, b = join(g), join(g)
    h.advance(DELAY)
    h.advance(DELAY)
    h.defer_persist = True
    leader = a.one.leader
    ls = sync(g, leader, 1, {})
    other = next(x.one.member_id for x in (a, b) if x.one.member_id != leader)
    assert g.leave([(other, None)]) == (errors.NONE, [errors.NONE])
    assert ls.sync.error == errors.REBALANCE_IN_PROGRESS
    _, done = h.deferred[0]
    done(errors.NONE)  # the write for generation 1 lands after generation 2 started
    assert state(g) is GroupState.PREPARING_REBALANCE


def test_sync_phase_timeout_removes_members_that_never_synced() -> None:
    h = Harness()
    g = h.make()
    a, b = join(g), join(g)
    h.advance(DELAY)
    h.advance(DELAY)
    leader = a.one.leader
    other = next(x.one.member_id for x in (a, b) if x.one.member_id != leader)
    sync(g, leader, 1, {})
    assert state(g) is GroupState.STABLE
    for _ in range(REBALANCE // 5000):
        h.advance(5000)
        g.heartbeat(leader, None, 1)
        g.heartbeat(other, None, 1)
    assert other not in g.members
    assert state(g) is GroupState.PREPARING_REBALANCE


@pytest.mark.parametrize("n", [1, 3, 7])
def test_generation_increases_by_one_per_rebalance(n: int) -> None:
    h = Harness()
    g, members = stable_group(h, n=n)
    for gen in range(2, 5):
        answers = [join(g, member_id=m) for m in members]
        # Followers with unchanged metadata in Stable get the current generation back; the
        # leader's join starts the rebalance, so rejoin everyone once more.
        answers = [join(g, member_id=m) if not a.results or a.one.generation != gen else a
                   for m, a in zip(members, answers, strict=True)]  # fmt: skip
        assert state(g) is GroupState.COMPLETING_REBALANCE
        assert {a.results[-1].generation for a in answers} == {gen}  # type: ignore[union-attr]
        leader = g.leader
        assert leader is not None
        sync(g, leader, gen, {})
        for m in members:
            if m != leader:
                sync(g, m, gen)
        assert state(g) is GroupState.STABLE
