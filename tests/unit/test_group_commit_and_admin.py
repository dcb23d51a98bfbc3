"""The classic group state machine: OffsetCommit's membership check, deletion, reloading
from the store, views and wake requests.

Time moves only when a test calls `advance` (see `group_fixtures`).
"""

from __future__ import annotations

from shoal.groups.group import Group
from shoal.groups.model import GroupConfig, GroupState
from shoal.protocol import errors
from tests.unit.group_fixtures import (
    DELAY,
    SESSION,
    Harness,
    join,
    stable_group,
    state,
    sync,
)


# -- OffsetCommit checks ---------------------------------------------------------------------
def test_commit_checks() -> None:
    h = Harness()
    g = h.make()
    assert g.check_commit("", None, -1) == errors.NONE  # offsets-only use of an Empty group
    a, _b = join(g), join(g)
    h.advance(DELAY)
    h.advance(DELAY)
    mid = a.one.leader
    assert g.check_commit(mid, None, 1) == errors.REBALANCE_IN_PROGRESS  # CompletingRebalance
    sync(g, mid, 1, {})
    assert g.check_commit(mid, None, 1) == errors.NONE
    assert g.check_commit("ghost", None, 1) == errors.UNKNOWN_MEMBER_ID
    assert g.check_commit(mid, None, 0) == errors.ILLEGAL_GENERATION
    assert g.check_commit("", None, -1) == errors.UNKNOWN_MEMBER_ID  # not empty any more
    join(g, member_id=mid)  # leader rejoin: PreparingRebalance still accepts commits
    assert state(g) is GroupState.PREPARING_REBALANCE
    assert g.check_commit(mid, None, 1) == errors.NONE


def test_commit_counts_as_heartbeat() -> None:
    h = Harness()
    g, (only,) = stable_group(h, n=1)
    for _ in range(5):
        h.advance(SESSION - 1)
        assert g.check_commit(only, None, 1) == errors.NONE
    assert state(g) is GroupState.STABLE


# -- Dead, loading, views --------------------------------------------------------------------
def test_dead_group_answers_coordinator_not_available() -> None:
    h = Harness()
    g, (leader, follower) = stable_group(h)
    pending = join(g, member_id=leader)
    g.mark_dead()
    assert pending.one.error == errors.NOT_COORDINATOR
    assert join(g).one.error == errors.COORDINATOR_NOT_AVAILABLE
    assert g.heartbeat(follower, None, 1) == errors.COORDINATOR_NOT_AVAILABLE
    assert sync(g, follower, 1).sync.error == errors.COORDINATOR_NOT_AVAILABLE
    assert g.leave([(follower, None)])[0] == errors.COORDINATOR_NOT_AVAILABLE
    assert g.check_commit(follower, None, 1) == errors.COORDINATOR_NOT_AVAILABLE


def test_reloaded_group_is_stable_and_members_continue_or_expire() -> None:
    h = Harness()
    _g, (leader, follower) = stable_group(h, instance=None)
    stored = h.saved[-1]
    h2 = Harness(now=5)
    g2 = Group.from_stored(stored, GroupConfig(), h2.clock, h2.wake, h2.persist)
    h2.group = g2
    assert state(g2) is GroupState.STABLE and g2.generation == 1 and g2.leader == leader
    assert g2.heartbeat(follower, None, 1) == errors.NONE
    r = sync(g2, follower, 1).sync
    assert r.assignment == follower.encode()
    # The leader never comes back: its session runs out and the group rebalances.
    h2.advance(SESSION - 1)
    g2.heartbeat(follower, None, 1)
    h2.advance(1)
    assert leader not in g2.members and g2.state is GroupState.PREPARING_REBALANCE


def test_view_shows_metadata_only_when_stable() -> None:
    h = Harness()
    g, (leader, follower) = stable_group(h)
    v = g.view()
    assert v.state == "Stable" and v.protocol_data == "range" and v.protocol_type == "consumer"
    assert {m.member_id: m.assignment for m in v.members}[follower] == follower.encode()
    join(g, member_id=leader)
    v = g.view()
    assert v.state == "PreparingRebalance" and v.protocol_data == ""
    assert all(m.assignment == b"" and m.metadata == b"" for m in v.members)


def test_subscribed_topics_from_consumer_protocol() -> None:
    import struct

    def subscription(*topics: str) -> bytes:
        out = struct.pack(">hi", 0, len(topics))
        for t in topics:
            out += struct.pack(">h", len(t)) + t.encode()
        return out + struct.pack(">i", -1)

    h = Harness()
    g = h.make()
    a = join(g, protocols=(("range", subscription("a", "b")),))
    join(g, protocols=(("range", subscription("c")),))
    assert g.subscribed_topics() is None  # no protocol chosen yet: assume everything
    h.advance(DELAY)
    h.advance(DELAY)
    assert g.subscribed_topics() == {"a", "b", "c"}
    join(g, member_id=a.one.member_id, protocols=(("range", b"\xff"),))
    assert g.subscribed_topics() is None


def test_wake_requests_cover_every_deadline() -> None:
    h = Harness()
    g, (_leader, _follower) = stable_group(h)
    nd = g.next_deadline()
    assert nd is not None and nd <= h.now + SESSION
    assert any(at <= nd for _, at in h.wakes)
