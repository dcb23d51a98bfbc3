"""A fixed `ClusterView`: one agent that sees only itself (handler unit tests, tools)."""

from __future__ import annotations

from shoal.meta.agent_store import AgentInfo


class StaticView:
    def __init__(self, agents: list[AgentInfo], me: AgentInfo | None = None) -> None:
        if not agents:
            raise ValueError("a cluster view needs at least one agent")
        self._agents = sorted(agents, key=lambda a: a.node_id)
        self._me = me or self._agents[0]

    @property
    def me(self) -> AgentInfo:
        return self._me

    def live(self) -> list[AgentInfo]:
        return list(self._agents)

    def in_zone(self, az: str) -> list[AgentInfo]:
        return [a for a in self._agents if a.az == az]

    def by_node_id(self, node_id: int) -> AgentInfo | None:
        return next((a for a in self._agents if a.node_id == node_id), None)
