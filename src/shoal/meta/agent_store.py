"""Cluster membership in the metadata store: one row per running agent, kept alive by
heartbeats (DESIGN.md §5). Both backends implement `AgentStore`; the SQL lives in
`sqlite_agents` and `postgres_agents`.

Times are epoch milliseconds from the agents' wall clocks: agents on different hosts compare
each other's heartbeats, so clocks must agree to well within the heartbeat timeout (NTP does).
"""

from __future__ import annotations

from typing import Protocol

from shoal.cluster.model import AgentInfo


class AgentStore(Protocol):
    async def register_agent(
        self, info: AgentInfo, requested_node_id: int | None, stale_before_ms: int
    ) -> AgentInfo:
        """Insert (or replace) `info.agent_id`'s row in one transaction and return it with the
        node id it got: `requested_node_id` if no other live agent holds it, else the smallest
        free one (>= 0). Rows whose heartbeat is older than `stale_before_ms`, and rows that
        advertise the same host and Kafka port and started earlier (an earlier life of this
        agent, killed), are deleted first, so their node ids are free again. "Earlier" keeps
        two live agents that wrongly advertise one address (e.g. 0.0.0.0) from deleting each
        other's rows in turn. `info.node_id` is ignored."""
        ...

    async def heartbeat_agent(self, agent_id: str, now_ms: int) -> bool:
        """Record a heartbeat; False when the row is gone (expired and cleaned by another
        agent): the caller registers again."""
        ...

    async def deregister_agent(self, agent_id: str) -> None:
        """Remove the row (graceful stop): peers drop the agent at their next refresh."""
        ...

    async def list_agents(self, alive_after_ms: int) -> list[AgentInfo]:
        """Agents of every agent group whose heartbeat is at or after `alive_after_ms`,
        sorted by node id."""
        ...


def pick_node_id(requested: int | None, taken: set[int]) -> int:
    """The requested id when free, else the smallest free id."""
    if requested is not None and requested >= 0 and requested not in taken:
        return requested
    node = 0
    while node in taken:
        node += 1
    return node


def encode_roles(roles: tuple[str, ...]) -> str:
    return ",".join(roles)


def decode_roles(text: str) -> tuple[str, ...]:
    return tuple(r for r in text.split(",") if r)
