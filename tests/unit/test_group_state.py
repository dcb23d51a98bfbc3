"""The classic group state machine with an injected clock: every transition and error code.

No sleeping: time moves only when a test calls `advance`, which ticks the group at the new
instant as the coordinator's timer would.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from shoal.groups.group import Group, PersistDone
from shoal.groups.model import (
    NEW_MEMBER_JOIN_TIMEOUT_MS,
    GroupConfig,
    GroupState,
    JoinRequest,
    JoinResult,
    SyncResult,
)
from shoal.meta.group_store import StoredGroup
from shoal.protocol import errors

SESSION = 10_000
REBALANCE = 30_000
DELAY = 300
PROTO = (("range", b"sub-range"), ("roundrobin", b"sub-rr"))


@dataclass
class Harness:
    now: int = 1_000_000
    wakes: list[tuple[str, int]] = field(default_factory=list)
    saved: list[StoredGroup] = field(default_factory=list)
    deferred: list[tuple[StoredGroup, PersistDone]] = field(default_factory=list)
    defer_persist: bool = False
    persist_error: int = errors.NONE
    group: Group | None = None

    def clock(self) -> int:
        return self.now

    def wake(self, group_id: str, at: int) -> None:
        self.wakes.append((group_id, at))

    def persist(self, stored: StoredGroup, done: PersistDone) -> None:
        if self.defer_persist:
            self.deferred.append((stored, done))
            return
        self.saved.append(stored)
        done(self.persist_error)

    def make(self, config: GroupConfig | None = None) -> Group:
        self.group = Group(
            "g",
            config or GroupConfig(initial_rebalance_delay_ms=DELAY),
            self.clock,
            self.wake,
            self.persist,
        )
        return self.group

    def advance(self, ms: int) -> None:
        self.now += ms
        assert self.group is not None
        self.group.tick(self.now)


def state(g: Group) -> GroupState:
    """Read through a call, so the type checker does not narrow across state changes."""
    return g.state


class Answer:
    """Collects a callback's answers."""

    def __init__(self) -> None:
        self.results: list[JoinResult | SyncResult] = []

    def __call__(self, result: JoinResult | SyncResult) -> None:
        self.results.append(result)

    @property
    def one(self) -> JoinResult:
        assert len(self.results) == 1, self.results
        r = self.results[0]
        assert isinstance(r, JoinResult)
        return r

    @property
    def sync(self) -> SyncResult:
        assert len(self.results) == 1, self.results
        r = self.results[0]
        assert isinstance(r, SyncResult)
        return r


def jreq(
    member_id: str = "",
    instance: str | None = None,
    protocols: tuple[tuple[str, bytes], ...] = PROTO,
    session: int = SESSION,
    rebalance: int = REBALANCE,
    require_known: bool = False,
    protocol_type: str = "consumer",
    client: str = "c",
) -> JoinRequest:
    return JoinRequest(
        member_id,
        instance,
        client,
        "/127.0.0.1",
        session,
        rebalance,
        protocol_type,
        protocols,
        require_known,
    )


def join(g: Group, **kw: object) -> Answer:
    a = Answer()
    g.join(jreq(**kw), a)  # type: ignore[arg-type]
    return a


def sync(g: Group, member: str, gen: int, assignments: dict[str, bytes] | None = None,
         instance: str | None = None, ptype: str | None = None,
         pname: str | None = None) -> Answer:  # fmt: skip
    a = Answer()
    g.sync(member, instance, gen, ptype, pname, assignments or {}, a)
    return a


def stable_group(h: Harness, n: int = 2, **kw: object) -> tuple[Group, list[str]]:
    """A Stable group of n dynamic members (generation 1); returns member ids, leader first."""
    g = h.make()
    answers = [join(g, client=f"c{i}", **kw) for i in range(n)]  # type: ignore[arg-type]
    assert state(g) is GroupState.PREPARING_REBALANCE
    h.advance(DELAY)  # the initial delay saw joins, so it waits once more
    h.advance(DELAY)
    assert state(g) is GroupState.COMPLETING_REBALANCE
    results = [a.one for a in answers]
    ids = [r.member_id for r in results]
    leader = results[0].leader
    order = [leader] + [m for m in ids if m != leader]
    sync(g, leader, 1, {m: m.encode() for m in ids})
    for m in order[1:]:
        sync(g, m, 1)
    assert state(g) is GroupState.STABLE
    return g, order


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


