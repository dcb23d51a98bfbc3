"""What the cluster looks like to one agent: the live agents and how to reach them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class AgentInfo:
    agent_id: str  # unique per process start (stable for the life of the process)
    node_id: int  # the broker id clients see; unique among live agents
    host: str  # advertised host
    kafka_port: int
    http_port: int
    az: str
    agent_group: str
    roles: tuple[str, ...]
    started_at_ms: int
    heartbeat_at_ms: int

    @property
    def http_base(self) -> str:
        return f"http://{self.host}:{self.http_port}"


class ClusterView(Protocol):
    """The live agents as this agent last saw them (refreshed every heartbeat)."""

    @property
    def me(self) -> AgentInfo: ...

    def live(self) -> list[AgentInfo]:
        """Live agents of this agent's agent group, sorted by node id, including this one."""

    def in_zone(self, az: str) -> list[AgentInfo]:
        """Live agents of this agent group in `az` (empty when the zone has none)."""

    def by_node_id(self, node_id: int) -> AgentInfo | None: ...
