"""Which agents a client is told about, and which one leads each partition (DESIGN.md §5).

Serving agents: the live agents of the client's zone (from `client.id`, see `client_zone`);
all live agents of the agent group when the client names no zone or its zone has no live
agent. Every partition leader (and the controller) a client is given is one of them, so its
produce and fetch traffic stays in its zone.

Brokers: every live agent of the agent group, although DESIGN.md §5 lists only the zone's.
The group coordinator is the owner on a ring over all agents, often in another zone, and
librdkafka (since 2.10) decommissions any broker a Metadata answer leaves out, the coordinator
included: the group is marked coordinator-less, its JoinGroup fails, it asks FindCoordinator
again, and the next Metadata answer drops the coordinator again. Consumers looped like this for
seconds, and one whose Metadata request died with its broker waited for the 5-minute periodic
refresh. Listing agents of other zones costs nothing: clients connect to a broker only to
reach a leader or their coordinator.

Leaders: any agent serves any partition, so "leader" only spreads load. Partition p of a
client gets `serving[(h + p) mod n]`, where h is a stable hash of the client id and the
client's host. The same client sees the same leaders on every Metadata request (and from
every agent) as long as the membership does not change; different clients start at
different agents, and one client's partitions go round-robin over all of them. The leader
epoch stays 0: clients compare epochs, and a leader change with the same epoch is accepted.
"""

from __future__ import annotations

import zlib

from shoal.cluster.client_zone import client_zone
from shoal.cluster.model import ClusterView
from shoal.meta.agent_store import AgentInfo


def brokers_for(view: ClusterView) -> list[AgentInfo]:
    """The brokers of every Metadata answer: all live agents, sorted by node id; never empty."""
    return view.live() or [view.me]


def serving_for(view: ClusterView, client_id: str | None) -> list[AgentInfo]:
    """The agents that lead a client's partitions, sorted by node id; never empty."""
    zone = client_zone(client_id)
    if zone is not None:
        local = view.in_zone(zone)
        if local:
            return local
    return brokers_for(view)


def client_hash(client_id: str | None, peer: str) -> int:
    """Stable over connections of one client: the peer's port is left out."""
    host = peer.rsplit(":", 1)[0] if ":" in peer else peer
    return zlib.crc32(f"{client_id or ''}|{host}".encode())


def leader_for(serving: list[AgentInfo], seed: int, partition: int) -> AgentInfo:
    return serving[(seed + partition) % len(serving)]
