"""The classic group state machine: Heartbeat, session expiry, LeaveGroup and static
members (restart, fencing, leaving by instance id).

Time moves only when a test calls `advance` (see `group_fixtures`).
"""

from __future__ import annotations

from shoal.groups.model import NEW_MEMBER_JOIN_TIMEOUT_MS, GroupState
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


# -- Heartbeat ---------------------------------------------------------------------------------
def test_heartbeat_codes() -> None:
    h = Harness()
    g, (leader, follower) = stable_group(h)
    assert g.heartbeat(follower, None, 1) == errors.NONE
    assert g.heartbeat("ghost", None, 1) == errors.UNKNOWN_MEMBER_ID
    assert g.heartbeat(follower, None, 0) == errors.ILLEGAL_GENERATION
    join(g, member_id=leader)
    assert g.heartbeat(follower, None, 1) == errors.REBALANCE_IN_PROGRESS
    join(g, member_id=follower)
    assert state(g) is GroupState.COMPLETING_REBALANCE
    assert g.heartbeat(follower, None, 1) == errors.ILLEGAL_GENERATION  # stale generation
    assert g.heartbeat(follower, None, 2) == errors.NONE


def test_session_timeout_expels_member_and_rebalances() -> None:
    h = Harness()
    g, (leader, follower) = stable_group(h)
    h.advance(SESSION - 1000)
    g.heartbeat(leader, None, 1)
    h.advance(1000)
    assert follower not in g.members
    assert state(g) is GroupState.PREPARING_REBALANCE
    assert g.heartbeat(follower, None, 1) == errors.UNKNOWN_MEMBER_ID


def test_heartbeats_keep_members_alive() -> None:
    h = Harness()
    g, members = stable_group(h)
    for _ in range(20):
        h.advance(SESSION // 2)
        for m in members:
            assert g.heartbeat(m, None, 1) == errors.NONE
    assert state(g) is GroupState.STABLE and set(g.members) == set(members)


def test_last_member_expiring_empties_the_group() -> None:
    h = Harness()
    g, _ = stable_group(h, n=1)
    h.advance(SESSION)
    assert state(g) is GroupState.EMPTY and g.generation == 2 and not g.members
    assert h.saved[-1].state == "Empty" and h.saved[-1].members == ()


def test_new_member_that_never_completes_join_expires() -> None:
    h = Harness()
    g, (old,) = stable_group(h, n=1, rebalance=NEW_MEMBER_JOIN_TIMEOUT_MS * 2)
    newcomer = join(g, client="new", rebalance=NEW_MEMBER_JOIN_TIMEOUT_MS * 2)
    assert state(g) is GroupState.PREPARING_REBALANCE
    for _ in range(NEW_MEMBER_JOIN_TIMEOUT_MS // 5000):
        h.advance(5000)
        g.heartbeat(old, None, 1)  # alive, but never rejoins
    assert newcomer.one.error == errors.UNKNOWN_MEMBER_ID
    assert set(g.members) == {old}


# -- LeaveGroup ----------------------------------------------------------------------------------
def test_leave_rebalances_and_reports_per_member() -> None:
    h = Harness()
    g, (leader, follower) = stable_group(h)
    top, codes = g.leave([(follower, None), ("ghost", None)])
    assert top == errors.NONE and codes == [errors.NONE, errors.UNKNOWN_MEMBER_ID]
    assert state(g) is GroupState.PREPARING_REBALANCE
    r = join(g, member_id=leader).one
    assert r.generation == 2 and [m.member_id for m in r.members] == [leader]


def test_leave_of_everyone_empties_the_group() -> None:
    h = Harness()
    g, members = stable_group(h)
    assert g.leave([(m, None) for m in members]) == (errors.NONE, [errors.NONE, errors.NONE])
    assert state(g) is GroupState.EMPTY and g.generation == 2


def test_leave_of_pending_member() -> None:
    h = Harness()
    g = h.make()
    r = join(g, require_known=True).one
    assert g.leave([(r.member_id, None)]) == (errors.NONE, [errors.NONE])
    assert not g.pending_members


# -- static membership ------------------------------------------------------------------------
def test_static_member_restart_keeps_assignment_without_rebalance() -> None:
    g2 = Harness()
    gs, (sl,) = stable_group(g2, n=1, instance="i-1")
    saved = len(g2.saved)
    r = join(gs, instance="i-1").one
    assert r.error == errors.NONE and r.member_id != sl and r.generation == 1
    assert r.leader == r.member_id and r.skip_assignment and len(r.members) == 1
    assert state(gs) is GroupState.STABLE and len(g2.saved) == saved + 1
    s = sync(gs, r.member_id, 1, instance="i-1").sync
    assert s.assignment == sl.encode()
    # The old incarnation is fenced.
    assert gs.heartbeat(sl, "i-1", 1) == errors.FENCED_INSTANCE_ID
    assert sync(gs, sl, 1, instance="i-1").sync.error == errors.FENCED_INSTANCE_ID
    assert join(gs, member_id=sl, instance="i-1").one.error == errors.FENCED_INSTANCE_ID
    assert gs.check_commit(sl, "i-1", 1) == errors.FENCED_INSTANCE_ID


def test_static_member_with_new_subscription_rebalances() -> None:
    h = Harness()
    g, (old,) = stable_group(h, n=1, instance="i-1")
    a = join(g, instance="i-1", protocols=(("roundrobin", b"rr"),))
    assert state(g) is GroupState.PREPARING_REBALANCE and not a.results
    assert old not in g.members


def test_static_member_is_not_dropped_by_a_rebalance_it_misses() -> None:
    h = Harness()
    g = h.make()
    a = join(g, instance="i-1", client="s")
    b = join(g, client="d")
    h.advance(DELAY)
    h.advance(DELAY)
    static_id, dyn = a.one.member_id, b.one.member_id
    sync(g, static_id, 1, {})
    sync(g, dyn, 1, {})
    newcomer = join(g, client="n")
    join(g, member_id=dyn)
    for _ in range(REBALANCE // 5000):
        h.advance(5000)
        g.heartbeat(static_id, "i-1", 1)  # alive, but does not rejoin
    assert newcomer.one.generation == 2
    assert static_id in g.members  # a dynamic member would have been dropped
    assert g.heartbeat(static_id, "i-1", 1) == errors.ILLEGAL_GENERATION


def test_leave_by_instance_id_and_fencing() -> None:
    h = Harness()
    g, (_sid,) = stable_group(h, n=1, instance="i-1")
    assert g.leave([("other", "i-1")]) == (errors.NONE, [errors.FENCED_INSTANCE_ID])
    assert g.leave([("", "i-unknown")]) == (errors.NONE, [errors.UNKNOWN_MEMBER_ID])
    assert g.leave([("", "i-1")]) == (errors.NONE, [errors.NONE])
    assert state(g) is GroupState.EMPTY
