"""Zone-aware broker lists and leaders (cluster/routing.py, handlers/metadata.py,
handlers/cluster.py) and ring ownership of groups (cluster/ownership.py)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kio.schema.describe_cluster.v0.request import DescribeClusterRequest
from kio.schema.metadata.v12.request import MetadataRequest, MetadataRequestTopic

from shoal.cluster.ownership import RingOwnership
from shoal.cluster.routing import brokers_for, client_hash, leader_for, serving_for
from shoal.cluster.static_view import StaticView
from shoal.handlers.base import RequestContext
from shoal.handlers.cluster import handle_describe_cluster
from shoal.handlers.metadata import handle_metadata
from shoal.handlers.services import Services
from shoal.meta.agent_store import AgentInfo
from shoal.meta.open import open_metadata_store
from shoal.meta.store import MetadataStore
from shoal.settings import Settings
from tests.unit.handler_services import handler_services


def agent(node: int, az: str) -> AgentInfo:
    return AgentInfo(f"id-{node}", node, f"host-{node}", 9000 + node, 8000 + node, az, "g",
                     ("proxy",), 0, 0)


AGENTS = [agent(0, "z1"), agent(1, "z2"), agent(2, "z1"), agent(3, "z2"), agent(4, "z3")]


def view(me: int = 0, agents: list[AgentInfo] = AGENTS) -> StaticView:
    return StaticView(agents, me=next(a for a in agents if a.node_id == me))


def nodes(agents: list[AgentInfo]) -> list[int]:
    return [a.node_id for a in agents]


def test_serving_agents_of_the_client_zone() -> None:
    assert nodes(serving_for(view(), "shoal_az=z1")) == [0, 2]
    assert nodes(serving_for(view(), "app,ws_az=z2")) == [1, 3]
    assert nodes(serving_for(view(), "warpstream_az=z3")) == [4]


def test_serving_agents_fall_back_to_all_agents() -> None:
    assert nodes(serving_for(view(), "shoal_az=nowhere")) == [0, 1, 2, 3, 4]
    assert nodes(serving_for(view(), "plain-client")) == [0, 1, 2, 3, 4]
    assert nodes(serving_for(view(), None)) == [0, 1, 2, 3, 4]


def test_brokers_are_every_live_agent() -> None:
    assert nodes(brokers_for(view())) == [0, 1, 2, 3, 4]
    assert nodes(brokers_for(view(3))) == [0, 1, 2, 3, 4]


def test_leaders_are_stable_per_client_and_spread_over_agents() -> None:
    brokers = serving_for(view(), None)
    seed = client_hash("app", "10.0.0.1:5555")
    assert seed == client_hash("app", "10.0.0.1:6666")  # another connection, same client
    leaders = [leader_for(brokers, seed, p).node_id for p in range(10)]
    assert Counter(leaders) == Counter({n: 2 for n in range(5)})
    firsts = {leader_for(brokers, client_hash(f"c{i}", "10.0.0.1:1"), 0).node_id
              for i in range(50)}
    assert firsts == {0, 1, 2, 3, 4}  # different clients start at different agents


def test_ring_ownership_agrees_everywhere_and_moves_little() -> None:
    owners = {}
    for me in (0, 1, 2, 3, 4):
        ownership = RingOwnership(view(me))
        owners[me] = {g: ownership.owner_of(g) for g in (f"group-{i}" for i in range(200))}
    assert all(o == owners[0] for o in owners.values())
    counts = Counter(node.node_id for node in owners[0].values() if node is not None)
    assert set(counts) == {0, 1, 2, 3, 4} and min(counts.values()) > 20
    first = owners[0]["group-0"]
    assert first is not None and (first.host, first.port) == (
        f"host-{first.node_id}", 9000 + first.node_id)
    # Removing agent 4 moves only the groups it owned.
    smaller = RingOwnership(view(0, AGENTS[:4]))
    moved = [g for g, node in owners[0].items() if smaller.owner_of(g) != node]
    assert moved and all(owners[0][g].node_id == 4 for g in moved)  # type: ignore[union-attr]


def test_ring_ownership_follows_the_view() -> None:
    class Live:
        def __init__(self) -> None:
            self.agents = [agent(0, "z1")]
            self.me = self.agents[0]

        def live(self) -> list[AgentInfo]:
            return self.agents

        def in_zone(self, az: str) -> list[AgentInfo]:
            return [a for a in self.agents if a.az == az]

        def by_node_id(self, node_id: int) -> AgentInfo | None:
            return None

    live = Live()
    ownership = RingOwnership(live)
    assert {ownership.owner_of(f"g{i}").node_id for i in range(50)} == {0}  # type: ignore[union-attr]
    live.agents = [agent(0, "z1"), agent(1, "z1")]
    assert {ownership.owner_of(f"g{i}").node_id for i in range(50)} == {0, 1}  # type: ignore[union-attr]
    live.agents = []
    assert ownership.owner_of("g") is None


# -- handlers -----------------------------------------------------------------------------


@pytest.fixture
async def services(tmp_path: Any) -> AsyncIterator[Services]:
    store: MetadataStore = open_metadata_store(f"sqlite:///{tmp_path}/m.db")
    await store.start()
    await store.create_topic("t", 6, {})
    svc = handler_services(Settings(), store, cluster=view(2), cluster_id="c")
    yield svc
    await store.close()


def ctx(api_key: int, version: int, client_id: str | None, peer: str = "10.1.1.1:4000") -> Any:
    return RequestContext(api_key, version, 1, client_id, peer)


async def metadata(svc: Services, client_id: str | None, peer: str = "10.1.1.1:4000") -> Any:
    req = MetadataRequest(
        topics=(MetadataRequestTopic(topic_id=None, name="t"),),  # type: ignore[arg-type]
        allow_auto_topic_creation=False,
        include_topic_authorized_operations=False,
    )
    return await handle_metadata(svc, ctx(3, 12, client_id, peer), req)


async def test_metadata_lists_every_broker_with_racks_and_leaders_in_the_zone(
    services: Services,
) -> None:
    resp = await metadata(services, "app,shoal_az=z2")
    # Every agent, so that librdkafka keeps a group coordinator of another zone (routing.py).
    assert [(b.node_id, b.host, b.port, b.rack) for b in resp.brokers] == [
        (n, f"host-{n}", 9000 + n, z) for n, z in enumerate(["z1", "z2", "z1", "z2", "z3"])]
    parts = resp.topics[0].partitions
    assert {p.leader_id for p in parts} == {1, 3}
    assert all(p.leader_epoch == 0 and list(p.replica_nodes) == [p.leader_id] for p in parts)
    assert resp.controller_id in (1, 3)  # this agent (2) does not serve this client's zone


async def test_metadata_without_zone_lists_every_agent(services: Services) -> None:
    for client_id in (None, "rdkafka", "shoal_az=empty-zone"):
        resp = await metadata(services, client_id)
        assert [b.node_id for b in resp.brokers] == [0, 1, 2, 3, 4]
        assert resp.controller_id == 2
        assert {p.leader_id for p in resp.topics[0].partitions} <= {0, 1, 2, 3, 4}


async def test_metadata_leaders_are_stable_for_a_client(services: Services) -> None:
    first = await metadata(services, "app", "10.9.9.9:1")
    again = await metadata(services, "app", "10.9.9.9:2")
    lead = [p.leader_id for p in first.topics[0].partitions]
    assert lead == [p.leader_id for p in again.topics[0].partitions]
    assert len(set(lead)) == 5  # six partitions over five agents


async def test_describe_cluster_lists_every_live_agent(services: Services) -> None:
    req = DescribeClusterRequest(include_cluster_authorized_operations=False)
    resp = await handle_describe_cluster(services, ctx(60, 0, "shoal_az=z1"), req)
    assert [(b.broker_id, b.rack) for b in resp.brokers] == [
        (0, "z1"), (1, "z2"), (2, "z1"), (3, "z2"), (4, "z3")]
    assert resp.controller_id == 2


async def test_services_are_frozen_and_take_the_node_id_from_the_view(
    services: Services,
) -> None:
    assert services.node_id == services.cluster.me.node_id == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        services.cluster_id = "other"  # type: ignore[misc]
