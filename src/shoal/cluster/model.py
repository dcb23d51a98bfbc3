"""What the cluster looks like to one agent: the live agents and how to reach them."""

from __future__ import annotations

from typing import Protocol

from shoal.meta.agent_store import AgentInfo


class ClusterView(Protocol):
    """The live agents as this agent last saw them (refreshed every heartbeat)."""

    @property
    def me(self) -> AgentInfo: ...

    def live(self) -> list[AgentInfo]:
        """Live agents of this agent's agent group, sorted by node id, including this one."""

    def in_zone(self, az: str) -> list[AgentInfo]:
        """Live agents of this agent group in `az` (empty when the zone has none)."""

    def by_node_id(self, node_id: int) -> AgentInfo | None: ...
