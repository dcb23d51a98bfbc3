"""Group (and transactional id) coordinators on a ring over the live agents of the agent group.

Every agent computes the same owner from the same live list, so FindCoordinator answers the
same agent wherever it is asked, and a group request at any other agent gets NOT_COORDINATOR.
Ring members are node ids, not agent ids: an agent restarted with the same node id gets its
groups back instead of reshuffling them. Zones do not matter here: a group has one
coordinator for the whole agent group (its traffic is small next to produce and fetch).
"""

from __future__ import annotations

from collections.abc import Callable

from shoal.cluster.model import ClusterView
from shoal.groups.ownership import CoordinatorNode
from shoal.meta.agent_store import AgentInfo
from shoal.read.ring import Ring


def coordinator_ring_key(key: str) -> bytes:
    return b"coordinator:" + key.encode()


class RingOwnership:
    """`groups.ownership.Ownership` over `view.live()` (rendezvous hashing of the key)."""

    def __init__(self, view: ClusterView, lease: Callable[[], bool] = lambda: True) -> None:
        """`lease`: `Membership.lease_valid` in an agent (a fixed view has nothing to lose)."""
        self.view = view
        self._lease = lease
        self._members: tuple[tuple[int, str, int], ...] = ()
        self._ring = Ring(())
        self._nodes: dict[str, AgentInfo] = {}

    @property
    def node_id(self) -> int:
        return self.view.me.node_id

    def _current(self) -> tuple[Ring, dict[str, AgentInfo]]:
        live = self.view.live()
        members = tuple((a.node_id, a.host, a.kafka_port) for a in live)
        if members != self._members:
            self._nodes = {str(a.node_id): a for a in live}
            self._ring = Ring(list(self._nodes))
            self._members = members
        return self._ring, self._nodes

    def lease_valid(self) -> bool:
        return self._lease()

    def owner_of(self, group_id: str) -> CoordinatorNode | None:
        ring, nodes = self._current()
        if not len(ring):
            return None
        agent = nodes[ring.owner(coordinator_ring_key(group_id))]
        return CoordinatorNode(agent.node_id, agent.host, agent.kafka_port)
