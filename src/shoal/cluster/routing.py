"""Which agents a client is told about, and which one leads each partition (DESIGN.md §5).

Brokers: the live agents of the client's zone (from `client.id`, see `client_zone`); all live
agents of the agent group when the client names no zone or its zone has no live agent.

Leaders: any agent serves any partition, so "leader" only spreads load. Partition p of a
client gets `brokers[(h + p) mod n]`, where h is a stable hash of the client id and the
client's host. The same client sees the same leaders on every Metadata request (and from
every agent) as long as the membership does not change; different clients start at
different agents, and one client's partitions go round-robin over all of them. The leader
epoch stays 0: clients compare epochs, and a leader change with the same epoch is accepted.
"""

from __future__ import annotations

import zlib

from shoal.cluster.client_zone import client_zone
from shoal.cluster.model import AgentInfo, ClusterView


def brokers_for(view: ClusterView, client_id: str | None) -> list[AgentInfo]:
    """The agents a client should use, sorted by node id; never empty."""
    zone = client_zone(client_id)
    if zone is not None:
        local = view.in_zone(zone)
        if local:
            return local
    return view.live() or [view.me]


def client_hash(client_id: str | None, peer: str) -> int:
    """Stable over connections of one client: the peer's port is left out."""
    host = peer.rsplit(":", 1)[0] if ":" in peer else peer
    return zlib.crc32(f"{client_id or ''}|{host}".encode())


def leader_for(brokers: list[AgentInfo], seed: int, partition: int) -> AgentInfo:
    return brokers[(seed + partition) % len(brokers)]
