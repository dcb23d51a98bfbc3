"""Contract suite for `AgentStore` (cluster membership rows), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace

from shoal.meta.agent_store import AgentInfo
from shoal.meta.agents import pick_node_id
from shoal.meta.store import MetadataStore

Opener = Callable[[], Awaitable[MetadataStore]]
TIMEOUT_MS = 5_000


def agent(name: str, now: int, port: int = 0, az: str = "a", group: str = "g") -> AgentInfo:
    return AgentInfo(
        agent_id=name,
        node_id=-1,
        host="127.0.0.1",
        kafka_port=port or 9000 + abs(hash(name)) % 1000,
        http_port=8000,
        az=az,
        agent_group=group,
        roles=("proxy", "jobs"),
        started_at_ms=now,
        heartbeat_at_ms=now,
    )


async def register(
    store: MetadataStore, info: AgentInfo, requested: int | None = None
) -> AgentInfo:
    return await store.register_agent(info, requested, info.heartbeat_at_ms - TIMEOUT_MS)


def test_pick_node_id() -> None:
    assert pick_node_id(None, set()) == 0
    assert pick_node_id(3, {0, 1}) == 3
    assert pick_node_id(1, {0, 1, 3}) == 2
    assert pick_node_id(-5, {0}) == 1


async def test_register_round_trips_every_field(store: MetadataStore) -> None:
    info = AgentInfo("x", -1, "h.example", 9092, 8080, "us-east-1a", "grp", ("proxy",), 111, 222)
    got = await store.register_agent(info, None, 0)
    assert got.node_id == 0
    assert await store.list_agents(0) == [got]
    assert got == AgentInfo("x", 0, "h.example", 9092, 8080, "us-east-1a", "grp", ("proxy",),
                            111, 222)


async def test_requested_node_id_when_free_else_smallest_free(store: MetadataStore) -> None:
    now = 1_000_000
    a = await register(store, agent("a", now, 1), requested=5)
    b = await register(store, agent("b", now, 2), requested=5)
    c = await register(store, agent("c", now, 3), requested=None)
    d = await register(store, agent("d", now, 4), requested=0)
    assert (a.node_id, b.node_id, c.node_id, d.node_id) == (5, 0, 1, 2)
    assert [x.agent_id for x in await store.list_agents(now - TIMEOUT_MS)] == ["b", "c", "d", "a"]


async def test_heartbeat_keeps_alive_and_expiry_hides(store: MetadataStore) -> None:
    now = 1_000_000
    await register(store, agent("a", now, 1))
    await register(store, agent("b", now, 2))
    later = now + 10_000
    assert await store.heartbeat_agent("a", later)
    alive = await store.list_agents(later - TIMEOUT_MS)
    assert [x.agent_id for x in alive] == ["a"]
    assert alive[0].heartbeat_at_ms == later
    assert not await store.heartbeat_agent("nobody", later)


async def test_stale_rows_free_their_node_ids(store: MetadataStore) -> None:
    now = 1_000_000
    old = await register(store, agent("old", now, 1))
    later = now + TIMEOUT_MS + 1
    new = await register(store, agent("new", later, 2), requested=old.node_id)
    assert new.node_id == old.node_id
    # The stale row is gone: its heartbeat reports that, so the old agent registers again.
    assert not await store.heartbeat_agent("old", later)
    again = await register(store, agent("old", later, 1), requested=old.node_id)
    assert again.node_id == 1


async def test_live_node_id_is_never_handed_out_twice(store: MetadataStore) -> None:
    now = 1_000_000
    first = await register(store, agent("a", now, 1), requested=7)
    second = await register(store, agent("b", now + 1, 2), requested=7)
    assert first.node_id == 7 and second.node_id != 7


async def test_same_endpoint_replaces_an_earlier_life(store: MetadataStore) -> None:
    """A restarted agent (new agent id, same host and port) takes its node id back at once."""
    now = 1_000_000
    first = await register(store, agent("life-1", now, 9092), requested=0)
    second = await register(store, agent("life-2", now + 100, 9092), requested=0)
    assert second.node_id == first.node_id == 0
    assert [x.agent_id for x in await store.list_agents(0)] == ["life-2"]


async def test_same_endpoint_never_replaces_a_younger_agent(store: MetadataStore) -> None:
    """Two live agents advertising one address (misconfigured) do not evict each other."""
    now = 1_000_000
    older = await register(store, agent("older", now, 9092))
    younger = await register(store, agent("younger", now + 100, 9092))
    assert [x.agent_id for x in await store.list_agents(0)] == ["younger"]
    # The older one re-registers with its original start time: both stay, distinct ids.
    again = await store.register_agent(replace(older, heartbeat_at_ms=now + 200), 0, 0)
    assert {x.agent_id for x in await store.list_agents(0)} == {"older", "younger"}
    assert again.node_id != younger.node_id


async def test_reregister_same_agent_id_replaces_its_row(store: MetadataStore) -> None:
    now = 1_000_000
    await register(store, agent("a", now, 1), requested=3)
    again = await register(store, agent("a", now + 5, 1), requested=3)
    rows = await store.list_agents(0)
    assert rows == [again] and again.node_id == 3


async def test_deregister_removes_at_once(store: MetadataStore) -> None:
    now = 1_000_000
    await register(store, agent("a", now, 1))
    await register(store, agent("b", now, 2))
    await store.deregister_agent("a")
    await store.deregister_agent("missing")  # no error
    assert [x.agent_id for x in await store.list_agents(0)] == ["b"]


async def test_agents_of_every_group_are_listed(store: MetadataStore) -> None:
    now = 1_000_000
    await register(store, agent("a", now, 1, group="g1"))
    await register(store, agent("b", now, 2, group="g2", az="z"))
    listed = await store.list_agents(0)
    assert {(x.agent_id, x.agent_group, x.az) for x in listed} == {("a", "g1", "a"),
                                                                   ("b", "g2", "z")}


async def test_concurrent_registrations_from_many_stores_get_distinct_ids(
    open_store: Opener,
) -> None:
    stores = [await open_store() for _ in range(4)]
    now = 1_000_000
    infos = [agent(f"agent-{i}", now, 100 + i) for i in range(12)]
    got = await asyncio.gather(
        *(register(stores[i % len(stores)], info, requested=0) for i, info in enumerate(infos))
    )
    assert sorted(g.node_id for g in got) == list(range(12))
