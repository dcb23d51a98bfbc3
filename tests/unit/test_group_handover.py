"""Group coordination moves with the ring: two coordinators over one SQLite store, each with a
`RingOwnership` over the same live list; when an agent joins, the groups it now owns are
dropped by the old owner (`release_unowned`) and loaded from the store by the new one; and the
rules of when to hold new groups and when to drop them (`GroupHandover`, the membership
listener of groups/handover.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shoal.cluster.ownership import RingOwnership
from shoal.groups.coordinator import GroupCoordinator
from shoal.groups.handover import GroupHandover
from shoal.groups.model import GroupConfig, JoinRequest
from shoal.meta.agent_store import AgentInfo
from shoal.meta.group_store import CommittedOffset
from shoal.meta.sqlite import SqliteMetadataStore
from shoal.protocol import errors


def agent(node: int) -> AgentInfo:
    return AgentInfo(f"a{node}", node, "127.0.0.1", 9000 + node, 0, "z", "g", (), 0, 0)


class View:
    """The same list for both agents, as two Memberships converge to."""

    agents: list[AgentInfo] = []

    def __init__(self, me: AgentInfo) -> None:
        self.me = me

    def live(self) -> list[AgentInfo]:
        return list(View.agents)

    def in_zone(self, az: str) -> list[AgentInfo]:
        return [a for a in View.agents if a.az == az]

    def by_node_id(self, node_id: int) -> AgentInfo | None:
        return next((a for a in View.agents if a.node_id == node_id), None)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteMetadataStore]:
    s = SqliteMetadataStore(str(tmp_path / "m.db"))
    await s.start()
    yield s
    await s.close()


def jreq() -> JoinRequest:
    return JoinRequest("", None, "c", "/127.0.0.1", 10_000, 20_000, "consumer",
                       (("range", b"sub"),), False)  # fmt: skip


async def test_groups_move_to_the_new_owner_with_their_state(
    store: SqliteMetadataStore,
) -> None:
    a0, a1 = agent(0), agent(1)
    View.agents = [a0]
    config = GroupConfig(initial_rebalance_delay_ms=0)
    c0 = GroupCoordinator(store, RingOwnership(View(a0)), config)
    c1 = GroupCoordinator(store, RingOwnership(View(a1)), config)
    await c0.start()
    await c1.start()
    try:
        members = {}
        for i in range(20):
            gid = f"group-{i}"
            joined = await c0.join(gid, jreq())
            assert joined.error == errors.NONE
            await c0.sync(gid, joined.member_id, None, 1, None, None, {joined.member_id: b"x"})
            assert await c0.commit_offsets(
                gid, joined.member_id, None, 1, [CommittedOffset("t", 0, i)]
            ) == errors.NONE
            members[gid] = joined.member_id

        View.agents = [a0, a1]
        released = set(c0.release_unowned())
        owners = {g: c1.coordinator_for(g) for g in members}
        moved = {g for g, node in owners.items() if node is not None and node.node_id == 1}
        assert released == moved and 0 < len(moved) < 20
        assert c1.release_unowned() == []
        for gid, member in members.items():
            old, new = (c0, c1) if gid in moved else (c1, c0)
            assert await old.heartbeat(gid, member, None, 1) == errors.NOT_COORDINATOR
            # The owner (new for moved groups) carries on with the stored generation.
            assert await new.heartbeat(gid, member, None, 1) == errors.NONE
            code, offsets = await new.fetch_offsets(gid, None)
            assert code == errors.NONE and offsets[0].offset == int(gid.split("-")[1])
    finally:
        await c0.stop()
        await c1.stop()


async def test_new_owner_holds_moved_groups_for_the_handover_time(
    store: SqliteMetadataStore,
) -> None:
    """After a membership change the new owner answers COORDINATOR_LOAD_IN_PROGRESS for the
    groups it does not hold yet, until `handover_ms` has passed; groups it already holds are
    served throughout."""
    now = [1_000_000]
    a0, a1 = agent(0), agent(1)
    View.agents = [a0, a1]
    config = GroupConfig(initial_rebalance_delay_ms=0)
    c1 = GroupCoordinator(
        store, RingOwnership(View(a1)), config, clock=lambda: now[0], handover_ms=2_000
    )
    await c1.start()
    try:
        owned = [
            g for g in (f"group-{i}" for i in range(40))
            if (node := c1.coordinator_for(g)) is not None and node.node_id == 1
        ]
        held, kept = owned[0], owned[1]
        joined = await c1.join(kept, jreq())
        assert joined.error == errors.NONE

        c1.hold_new_groups()
        assert (await c1.fetch_offsets(held, None))[0] == errors.COORDINATOR_LOAD_IN_PROGRESS
        assert (await c1.join(held, jreq())).error == errors.COORDINATOR_LOAD_IN_PROGRESS
        assert await c1.heartbeat(kept, joined.member_id, None, 1) != (
            errors.COORDINATOR_LOAD_IN_PROGRESS
        )
        now[0] += 1_999
        assert (await c1.fetch_offsets(held, None))[0] == errors.COORDINATOR_LOAD_IN_PROGRESS
        now[0] += 1
        assert (await c1.fetch_offsets(held, None))[0] == errors.NONE
        assert (await c1.join(held, jreq())).error == errors.NONE
    finally:
        await c1.stop()


async def test_end_hold_serves_new_groups_at_once(store: SqliteMetadataStore) -> None:
    """What a joining agent does once every peer answered its membership notice."""
    now = [1_000_000]
    a0, a1 = agent(0), agent(1)
    View.agents = [a0, a1]
    c1 = GroupCoordinator(
        store, RingOwnership(View(a1)), GroupConfig(initial_rebalance_delay_ms=0),
        clock=lambda: now[0], handover_ms=2_000,
    )  # fmt: skip
    await c1.start()
    try:
        group = next(
            g for g in (f"group-{i}" for i in range(40))
            if (node := c1.coordinator_for(g)) is not None and node.node_id == 1
        )  # fmt: skip
        c1.hold_new_groups()
        assert (await c1.join(group, jreq())).error == errors.COORDINATOR_LOAD_IN_PROGRESS
        c1.end_hold()
        assert (await c1.join(group, jreq())).error == errors.NONE
    finally:
        await c1.stop()


async def test_coordinator_follows_the_node_id_of_its_view(store: SqliteMetadataStore) -> None:
    """An agent that registers again may get another node id: the coordinator reads its own
    from the view (through its ownership) each time, so it needs no copy updated."""
    a0, a1 = agent(0), agent(1)
    View.agents = [a0, a1]
    view = View(a1)
    c1 = GroupCoordinator(store, RingOwnership(view), GroupConfig(initial_rebalance_delay_ms=0))
    await c1.start()
    try:
        groups = [f"group-{i}" for i in range(40)]
        owner = {g: c1.coordinator_for(g) for g in groups}
        on_0 = next(g for g in groups if (n := owner[g]) is not None and n.node_id == 0)
        assert (await c1.fetch_offsets(on_0, None))[0] == errors.NOT_COORDINATOR
        # Re-registered as node 0 (node 0's agent having gone): the same ring key is now mine.
        view.me = AgentInfo("a1", 0, "127.0.0.1", 9001, 0, "z", "g", (), 0, 0)
        View.agents = [view.me]
        assert (await c1.fetch_offsets(on_0, None))[0] == errors.NONE
    finally:
        await c1.stop()


# -- the handover rules (GroupHandover, the membership listener) ---------------------------------


class Recorder:
    """A `HandoverTarget` that records what the handover asked of it."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.unowned: list[str] = []

    def hold_new_groups(self) -> None:
        self.calls.append("hold")

    def end_hold(self) -> None:
        self.calls.append("end_hold")

    def release_unowned(self) -> list[str]:
        self.calls.append("release")
        released, self.unowned = self.unowned, []
        return released


def change(handover: GroupHandover, *agents: AgentInfo) -> None:
    View.agents = list(agents)
    handover.on_view_change(View(agents[0]))


def test_a_lone_agent_never_holds() -> None:
    target = Recorder()
    handover = GroupHandover(target)
    change(handover, agent(0))
    change(handover, agent(0))
    assert target.calls == ["release", "release"]


def test_an_agent_that_joins_peers_holds() -> None:
    """Its first view already has peers: they may still run the groups it now owns."""
    target = Recorder()
    change(GroupHandover(target), agent(1), agent(0))
    assert target.calls == ["hold", "release"]


def test_agents_that_only_joined_give_existing_agents_no_groups() -> None:
    target = Recorder()
    handover = GroupHandover(target)
    change(handover, agent(0))
    change(handover, agent(0), agent(1))
    change(handover, agent(0), agent(1), agent(2))
    assert target.calls == ["release"] * 3


def test_an_agent_that_left_makes_the_others_hold() -> None:
    target = Recorder()
    handover = GroupHandover(target)
    change(handover, agent(0), agent(1))
    target.calls.clear()
    change(handover, agent(0))
    assert target.calls == ["hold", "release"]
    # The same list again (a heartbeat-only change, say) is no leave.
    target.calls.clear()
    change(handover, agent(0))
    assert target.calls == ["release"]


def test_a_node_id_that_changed_counts_as_a_leave() -> None:
    """Same agent id, another node id (it registered again): its ring key moved."""
    target = Recorder()
    handover = GroupHandover(target)
    change(handover, agent(0), agent(1))
    target.calls.clear()
    renumbered = AgentInfo("a1", 5, "127.0.0.1", 9001, 0, "z", "g", (), 0, 0)
    change(handover, agent(0), renumbered)
    assert target.calls == ["hold", "release"]


def test_every_change_releases_groups_owned_elsewhere() -> None:
    target = Recorder()
    handover = GroupHandover(target)
    target.unowned = ["g1", "g2"]
    change(handover, agent(0), agent(1))
    assert target.unowned == [] and target.calls == ["hold", "release"]


def test_hold_ends_only_when_every_peer_answered_the_join_notice() -> None:
    target = Recorder()
    handover = GroupHandover(target)
    handover.announced(peers=3, answered=2)
    assert target.calls == []
    handover.announced(peers=3, answered=3)
    assert target.calls == ["end_hold"]
    handover.announced(peers=0, answered=0)  # alone: nobody to wait for
    assert target.calls == ["end_hold", "end_hold"]


async def test_handover_over_a_real_coordinator(store: SqliteMetadataStore) -> None:
    """Wired to a `GroupCoordinator`: after a leave, groups not held yet wait the handover
    time; after a join-only change they are served at once."""
    now = [1_000_000]
    a0, a1, a2 = agent(0), agent(1), agent(2)
    View.agents = [a0, a1, a2]
    view = View(a1)
    c1 = GroupCoordinator(
        store, RingOwnership(view), GroupConfig(initial_rebalance_delay_ms=0),
        clock=lambda: now[0], handover_ms=2_000,
    )  # fmt: skip
    handover = GroupHandover(c1)
    await c1.start()
    try:
        handover.on_view_change(view)
        handover.announced(peers=2, answered=2)
        View.agents = [a0, a1]
        handover.on_view_change(view)
        group = next(
            g for g in (f"group-{i}" for i in range(60))
            if (node := c1.coordinator_for(g)) is not None and node.node_id == 1
        )  # fmt: skip
        assert (await c1.join(group, jreq())).error == errors.COORDINATOR_LOAD_IN_PROGRESS
        now[0] += 2_000
        View.agents = [a0, a1, a2]
        handover.on_view_change(view)  # only joined: no new hold
        assert (await c1.join(group, jreq())).error == errors.NONE
    finally:
        await c1.stop()
