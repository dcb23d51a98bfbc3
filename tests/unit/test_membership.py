"""Membership with an in-memory agent store and an injected clock: join, leave, expiry,
re-registration, store outages, listeners."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import cast

import pytest

from shoal.cluster.membership import Membership, wall_clock_ms
from shoal.cluster.model import ClusterView
from shoal.meta.agent_store import AgentInfo
from shoal.meta.agents import pick_node_id
from shoal.meta.store import MetadataError, MetadataStore

INTERVAL, TIMEOUT = 1_000, 5_000


class FakeAgentStore:
    """Same contract as the SQL stores (tests/unit/test_agent_store_contract.py)."""

    def __init__(self) -> None:
        self.rows: dict[str, AgentInfo] = {}
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise MetadataError("store down")

    async def register_agent(
        self, info: AgentInfo, requested_node_id: int | None, stale_before_ms: int
    ) -> AgentInfo:
        self._check()
        for k, r in list(self.rows.items()):
            if (
                k == info.agent_id
                or r.heartbeat_at_ms < stale_before_ms
                or (
                    (r.host, r.kafka_port) == (info.host, info.kafka_port)
                    and r.started_at_ms < info.started_at_ms
                )
            ):
                del self.rows[k]
        taken = {r.node_id for r in self.rows.values()}
        row = replace(info, node_id=pick_node_id(requested_node_id, taken))
        self.rows[row.agent_id] = row
        return row

    async def heartbeat_agent(self, agent_id: str, now_ms: int) -> bool:
        self._check()
        row = self.rows.get(agent_id)
        if row is None:
            return False
        self.rows[agent_id] = replace(row, heartbeat_at_ms=now_ms)
        return True

    async def deregister_agent(self, agent_id: str) -> None:
        self._check()
        self.rows.pop(agent_id, None)

    async def list_agents(self, alive_after_ms: int) -> list[AgentInfo]:
        self._check()
        return sorted(
            (r for r in self.rows.values() if r.heartbeat_at_ms >= alive_after_ms),
            key=lambda r: r.node_id,
        )



def meta(store: FakeAgentStore) -> MetadataStore:
    """The fake has only the agent part of `MetadataStore`, which is all Membership uses."""
    return cast(MetadataStore, store)


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000_000

    def __call__(self) -> int:
        return self.now


def local(name: str, port: int, az: str = "a", group: str = "g") -> AgentInfo:
    return AgentInfo(name, -1, "127.0.0.1", port, port + 1, az, group, ("proxy",), 0, 0)


_running: list[Membership] = []


@pytest.fixture(autouse=True)
async def stop_all() -> AsyncIterator[None]:
    """No heartbeat task outlives its test."""
    yield
    while _running:
        await _running.pop().stop()


@pytest.fixture
def store() -> FakeAgentStore:
    return FakeAgentStore()


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def started(
    store: FakeAgentStore, clock: Clock, name: str, port: int, requested: int | None = None,
    az: str = "a", group: str = "g",
) -> Membership:
    m = Membership(
        meta(store), local(name, port, az, group), requested,
        heartbeat_interval_ms=INTERVAL, heartbeat_timeout_ms=TIMEOUT, clock=clock,
    )
    await m.start()
    _running.append(m)
    return m


def ids(view: ClusterView) -> list[str]:
    return [a.agent_id for a in view.live()]


async def test_single_agent_gets_requested_node_and_sees_itself(
    store: FakeAgentStore, clock: Clock
) -> None:
    m = await started(store, clock, "a", 9000, requested=0)
    try:
        assert m.me.node_id == 0
        assert ids(m) == ["a"]
        assert m.in_zone("a") == m.live() and m.in_zone("b") == []
        assert m.by_node_id(0) == m.me and m.by_node_id(1) is None
    finally:
        await m.stop()
    assert store.rows == {}


async def test_join_is_seen_at_the_next_beat_and_listeners_hear_it(
    store: FakeAgentStore, clock: Clock
) -> None:
    a = await started(store, clock, "a", 9000, requested=0)
    heard: list[list[str]] = []
    a.add_listener(lambda v: heard.append(ids(v)))
    b = await started(store, clock, "b", 9010, requested=0, az="b")
    assert b.me.node_id == 1  # 0 is taken by a live agent
    assert ids(b) == ["a", "b"]
    assert ids(a) == ["a"]
    clock.now += INTERVAL
    assert await a.beat()
    assert ids(a) == ["a", "b"] and heard == [["a", "b"]]
    assert [x.agent_id for x in a.in_zone("b")] == ["b"]
    # A beat that changes nothing notifies nobody.
    clock.now += INTERVAL
    assert await a.beat()
    assert heard == [["a", "b"]]
    await a.stop()
    await b.stop()


async def test_graceful_leave_is_seen_at_the_next_beat(
    store: FakeAgentStore, clock: Clock
) -> None:
    a = await started(store, clock, "a", 9000)
    b = await started(store, clock, "b", 9010)
    await a.beat()
    version = a.version
    await b.stop()
    clock.now += INTERVAL
    await a.beat()
    assert ids(a) == ["a"] and a.version == version + 1
    await a.stop()


async def test_silent_agent_expires_after_the_timeout(store: FakeAgentStore, clock: Clock) -> None:
    a = await started(store, clock, "a", 9000)
    b = await started(store, clock, "b", 9010)  # never beats again: killed
    for _ in range(TIMEOUT // INTERVAL):
        clock.now += INTERVAL
        await a.beat()
        assert "b" in ids(a)
    clock.now += INTERVAL
    await a.beat()
    assert ids(a) == ["a"]
    await a.stop()
    del b


async def test_other_agent_groups_are_not_members(store: FakeAgentStore, clock: Clock) -> None:
    a = await started(store, clock, "a", 9000, group="g1")
    b = await started(store, clock, "b", 9010, group="g2")
    await a.beat()
    assert ids(a) == ["a"] and ids(b) == ["b"]
    assert a.me.node_id != b.me.node_id  # node ids are unique over all groups


async def test_lost_row_registers_again_with_the_same_node_id(
    store: FakeAgentStore, clock: Clock
) -> None:
    a = await started(store, clock, "a", 9000, requested=4)
    del store.rows["a"]  # cleaned by a peer after an expiry
    clock.now += INTERVAL
    assert await a.beat()
    assert a.me.node_id == 4 and "a" in store.rows and a.registrations == 2


async def test_short_store_outage_keeps_the_last_view(store: FakeAgentStore, clock: Clock) -> None:
    a = await started(store, clock, "a", 9000)
    await started(store, clock, "b", 9010)
    await a.beat()
    store.down = True
    for _ in range(TIMEOUT // INTERVAL - 1):
        clock.now += INTERVAL
        assert not await a.beat()
        assert ids(a) == ["a", "b"]
    assert a.beats_failed == TIMEOUT // INTERVAL - 1


async def test_long_outage_drops_self_then_recovers(store: FakeAgentStore, clock: Clock) -> None:
    a = await started(store, clock, "a", 9000)
    b = await started(store, clock, "b", 9010)
    await a.beat()
    store.down = True
    clock.now += TIMEOUT
    assert not await a.beat()
    # Peers have expired `a` by now; it agrees with them instead of claiming their work.
    assert ids(a) == ["b"] and a.status()["store_reachable"] is False
    store.down = False
    clock.now += INTERVAL
    await b.beat()
    assert await a.beat()
    assert ids(a) == ["a", "b"]


async def test_long_outage_alone_keeps_answering_for_itself(
    store: FakeAgentStore, clock: Clock
) -> None:
    a = await started(store, clock, "a", 9000)
    store.down = True
    clock.now += TIMEOUT * 3
    assert not await a.beat()
    assert ids(a) == ["a"]


async def test_stop_survives_an_unreachable_store(store: FakeAgentStore, clock: Clock) -> None:
    a = await started(store, clock, "a", 9000)
    store.down = True
    await a.stop()  # logs, does not raise
    assert "a" in store.rows


async def test_start_fails_when_the_store_is_down(store: FakeAgentStore, clock: Clock) -> None:
    store.down = True
    m = Membership(meta(store), local("a", 9000), 0, clock=clock)
    with pytest.raises(MetadataError):
        await m.start()


async def test_failing_listener_does_not_stop_others(store: FakeAgentStore, clock: Clock) -> None:
    a = await started(store, clock, "a", 9000)
    heard: list[int] = []

    def bad(view: ClusterView) -> None:
        raise RuntimeError("boom")

    a.add_listener(bad)
    a.add_listener(lambda v: heard.append(len(v.live())))
    await started(store, clock, "b", 9010)
    await a.beat()
    assert heard == [2]


async def test_status_lists_members_per_zone(store: FakeAgentStore, clock: Clock) -> None:
    a = await started(store, clock, "a", 9000, az="z1")
    await started(store, clock, "b", 9010, az="z2")
    await started(store, clock, "c", 9020, az="z1")
    await a.beat()
    zones = a.status()["zones"]
    assert {az: [m["node_id"] for m in ms] for az, ms in zones.items()} == {
        "z1": [0, 2], "z2": [1]
    }
    assert [m["me"] for m in zones["z1"]] == [True, False]


def test_interval_must_be_below_timeout(store: FakeAgentStore) -> None:
    with pytest.raises(ValueError):
        Membership(
            meta(store), local("a", 1), heartbeat_interval_ms=5000, heartbeat_timeout_ms=5000
        )


async def test_the_background_task_beats(store: FakeAgentStore, clock: Clock) -> None:
    a = Membership(meta(store), local("a", 9000), heartbeat_interval_ms=5,
                   heartbeat_timeout_ms=50, clock=clock)  # fmt: skip
    await a.start()
    _running.append(a)
    heard = asyncio.Event()
    a.add_listener(lambda v: heard.set())
    await started(store, clock, "b", 9010)
    await asyncio.wait_for(heard.wait(), 10)
    assert ids(a) == ["a", "b"]


async def test_dead_peer_leaves_at_its_timeout_not_at_the_next_beat(store: FakeAgentStore) -> None:
    """Real clock and heartbeat task. The peer last beat 1 s before this agent starts: it times
    out 1.1 s after the start, 0.9 s before this agent's first beat is due, so only the local
    expiry can drop it that early."""
    interval_ms, timeout_ms = 2_000, 2_100
    lists = 0
    list_agents = store.list_agents

    async def counting_list(alive_after_ms: int) -> list[AgentInfo]:
        nonlocal lists
        lists += 1
        return await list_agents(alive_after_ms)

    store.list_agents = counting_list  # type: ignore[method-assign]
    await store.register_agent(local("b", 9010), None, 0)
    store.rows["b"] = replace(store.rows["b"], heartbeat_at_ms=wall_clock_ms() - 1_000)
    a = Membership(
        meta(store), local("a", 9000),
        heartbeat_interval_ms=interval_ms, heartbeat_timeout_ms=timeout_ms,
    )
    left = asyncio.Event()
    lists_when_left: list[int] = []

    def on_change(view: ClusterView) -> None:
        if "b" not in ids(view) and not left.is_set():
            lists_when_left.append(lists)
            left.set()

    a.add_listener(on_change)
    await a.start()
    _running.append(a)
    assert ids(a) == ["a", "b"] or ids(a) == ["b", "a"]
    await asyncio.wait_for(left.wait(), 10)
    # Dropped after the start's read and before any beat read the store again.
    assert lists_when_left == [1]
    # The peer beats again: the next beat brings it back.
    await store.heartbeat_agent("b", wall_clock_ms())
    await a.beat()
    assert "b" in ids(a)


async def test_no_busy_loop_while_the_store_is_down(store: FakeAgentStore) -> None:
    """After a failed beat, a peer's expiry passing must not wake the heartbeat task over and
    over: it waits for the next beat (the view is kept during outages)."""
    calls = 0

    def counting_clock() -> int:
        nonlocal calls
        calls += 1
        return wall_clock_ms()

    await store.register_agent(local("b", 9010), None, 0)
    store.rows["b"] = replace(store.rows["b"], heartbeat_at_ms=wall_clock_ms())
    a = Membership(
        meta(store), local("a", 9000), heartbeat_interval_ms=200, heartbeat_timeout_ms=300,
        clock=counting_clock,
    )
    await a.start()
    _running.append(a)
    store.down = True
    while a.beats_failed == 0:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.35)  # b's expiry passes while the store is still down
    calls_before = calls
    await asyncio.sleep(0.3)
    # A beat or two read the clock a few times; a busy loop reads it thousands of times.
    assert calls - calls_before < 50
    assert "b" in ids(a)  # the outage view is kept


async def test_refresh_sees_a_join_before_the_next_beat(
    store: FakeAgentStore, clock: Clock
) -> None:
    a = await started(store, clock, "a", 9000)
    heard: list[list[str]] = []
    a.add_listener(lambda v: heard.append(ids(v)))
    b = await started(store, clock, "b", 9010)
    assert ids(a) == ["a"]
    assert await a.refresh()  # what b's notice makes a do
    assert ids(a) == ["a", "b"] and heard == [["a", "b"]]
    assert store.rows["a"].heartbeat_at_ms == clock.now  # a refresh writes no heartbeat...
    await b.stop()
    assert await a.refresh()
    assert ids(a) == ["a"] and a.refreshes == 2


async def test_concurrent_refreshes_share_reads_and_apply_in_order(
    store: FakeAgentStore, clock: Clock
) -> None:
    a = await started(store, clock, "a", 9000)
    reads = 0
    release = asyncio.Event()
    original = store.list_agents

    async def slow_list(alive_after_ms: int) -> list[AgentInfo]:
        nonlocal reads
        reads += 1
        rows = await original(alive_after_ms)  # read first, then stall: a stale answer
        await release.wait()
        return rows

    store.list_agents = slow_list  # type: ignore[method-assign]
    first = asyncio.create_task(a.refresh())
    await asyncio.sleep(0)
    # Registered after the first read was made: the next read must see it.
    store.rows["b"] = replace(local("b", 9010), node_id=5, heartbeat_at_ms=clock.now)
    waiting = [asyncio.create_task(a.refresh()) for _ in range(10)]
    await asyncio.sleep(0)
    release.set()
    assert await first and all(await asyncio.gather(*waiting))
    assert reads == 2  # the first read, then one shared by the ten later calls
    assert ids(a) == ["a", "b"]


async def test_refresh_failure_keeps_the_view(store: FakeAgentStore, clock: Clock) -> None:
    a = await started(store, clock, "a", 9000)
    await started(store, clock, "b", 9010)
    assert await a.refresh() and ids(a) == ["a", "b"]
    store.down = True
    assert not await a.refresh()
    assert ids(a) == ["a", "b"]
    assert a.beats_failed == 0  # outages are the beats' business
