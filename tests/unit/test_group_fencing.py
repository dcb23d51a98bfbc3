"""Coordinator fencing (issue 12 item 9): two coordinators of one group over one real SQLite
store. The first loses the group without noticing (paused past the heartbeat timeout while
another agent took the group over); whatever it still holds of the group, it must not write
it over its successor's, nor answer for the group while its membership lease is lost."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shoal.groups.coordinator import GroupCoordinator
from shoal.groups.model import GroupConfig, JoinRequest
from shoal.groups.ownership import CoordinatorNode
from shoal.meta.group_store import CommittedOffset
from shoal.meta.sqlite import SqliteMetadataStore
from shoal.protocol import errors


class Switchable:
    """Ownership as one agent sees it: whom it believes owns every group, and its lease."""

    def __init__(self, node_id: int, owner: int) -> None:
        self.node_id = node_id
        self.owner = owner
        self.lease = True

    def owner_of(self, group_id: str) -> CoordinatorNode | None:
        return CoordinatorNode(self.owner, f"agent-{self.owner}", 9092)

    def lease_valid(self) -> bool:
        return self.lease


class Clock:
    def __init__(self) -> None:
        self.now = 10_000

    def __call__(self) -> int:
        return self.now


def jreq(member_id: str = "") -> JoinRequest:
    return JoinRequest(member_id, None, "c", "/127.0.0.1", 10_000, 20_000, "consumer",
                       (("range", b"sub"),), False)  # fmt: skip


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteMetadataStore]:
    s = SqliteMetadataStore(str(tmp_path / "m.db"))
    await s.start()
    yield s
    await s.close()


async def _stable_member(
    c: GroupCoordinator, group: str, clock: Clock | None = None
) -> tuple[str, int]:
    """A new member joins and syncs; with `clock`, after the members the coordinator loaded
    from the store failed to rejoin (their rebalance timeout passes)."""
    joining = asyncio.create_task(c.join(group, jreq()))
    for _ in range(500):
        if joining.done() or clock is None:
            break
        await asyncio.sleep(0.01)  # the load runs on the store's thread
        clock.now += 1_000
        c.poke()
    joined = await asyncio.wait_for(joining, 10)
    assert joined.error == errors.NONE, joined
    synced = await c.sync(group, joined.member_id, None, joined.generation, None, None,
                          {joined.member_id: b"a"})  # fmt: skip
    assert synced.error == errors.NONE
    return joined.member_id, joined.generation


async def test_a_coordinator_that_lost_the_group_cannot_write_over_its_successor(
    store: SqliteMetadataStore,
) -> None:
    clock = Clock()
    seen_by_a, seen_by_b = Switchable(1, owner=1), Switchable(2, owner=1)
    a = GroupCoordinator(store, seen_by_a, GroupConfig(initial_rebalance_delay_ms=0), clock)
    b = GroupCoordinator(store, seen_by_b, GroupConfig(initial_rebalance_delay_ms=0), clock)
    await a.start()
    await b.start()
    try:
        old_member, old_gen = await _stable_member(a, "g")
        ok = await a.commit_offsets("g", old_member, None, old_gen, [CommittedOffset("t", 0, 5)])
        assert ok == errors.NONE
        # A is paused; B sees it gone and takes the group over: its member rejoins there, a
        # new generation completes and commits further.
        seen_by_b.owner = 2
        new_member, new_gen = await _stable_member(b, "g", clock)
        assert new_gen > old_gen
        new_offsets = [CommittedOffset("t", 0, 50)]
        assert await b.commit_offsets("g", new_member, None, new_gen, new_offsets) == 0
        # A resumes still believing it owns the group, with the old generation in memory: a
        # late commit of the old member (valid there) is refused, and A lets the group go.
        late = [CommittedOffset("t", 0, 6)]
        assert await a.commit_offsets("g", old_member, None, old_gen, late) == (
            errors.NOT_COORDINATOR
        )
        assert a.loaded_groups() == []
        assert (await store.fetch_offsets("g"))[0].offset == 50
        stored = await store.load_group("g")
        assert stored is not None and stored.generation == new_gen
        # B carries on: its writes still go through.
        assert await b.commit_offsets("g", new_member, None, new_gen, late) == errors.NONE
    finally:
        await a.stop()
        await b.stop()


async def test_a_stale_generation_is_not_saved_over_the_new_one(
    store: SqliteMetadataStore,
) -> None:
    clock = Clock()
    seen_by_a, seen_by_b = Switchable(1, owner=1), Switchable(2, owner=2)
    a = GroupCoordinator(store, seen_by_a, GroupConfig(initial_rebalance_delay_ms=0), clock)
    b = GroupCoordinator(store, seen_by_b, GroupConfig(initial_rebalance_delay_ms=0), clock)
    await a.start()
    await b.start()
    try:
        old_member, _ = await _stable_member(a, "g")
        _, new_gen = await _stable_member(b, "g", clock)  # B claimed the group meanwhile
        # A's member leaves: A (stale) would save an emptied group of the old generation.
        code, _ = await a.leave("g", [(old_member, None)])
        assert code == errors.NONE
        for _ in range(50):
            await asyncio.sleep(0)
        stored = await store.load_group("g")
        assert stored is not None
        assert (stored.generation, stored.state) == (new_gen, "Stable"), stored
        assert a.loaded_groups() == []
    finally:
        await a.stop()
        await b.stop()


async def test_no_answers_for_groups_while_the_lease_is_lost(
    store: SqliteMetadataStore,
) -> None:
    clock = Clock()
    seen = Switchable(1, owner=1)
    a = GroupCoordinator(store, seen, GroupConfig(initial_rebalance_delay_ms=0), clock)
    await a.start()
    try:
        member, gen = await _stable_member(a, "g")
        # Paused past the heartbeat timeout: the members' sessions ran out meanwhile too.
        seen.lease = False
        clock.now += 60_000
        a.poke()
        for _ in range(20):
            await asyncio.sleep(0)
        assert await a.heartbeat("g", member, None, gen) == errors.NOT_COORDINATOR
        assert a.loaded_groups() == []
        stored = await store.load_group("g")
        # Not expired into an empty group by the paused agent's timers.
        assert stored is not None and stored.state == "Stable" and len(stored.members) == 1
        # Back in the membership: the group reloads from the store.
        seen.lease = True
        assert await a.heartbeat("g", member, None, gen) == errors.NONE
    finally:
        await a.stop()
