"""The row of cluster membership in the metadata store: one per running agent, kept alive by
heartbeats (DESIGN.md §5). The methods are part of `store.MetadataStore`; the registration
decision is in `agents`; the SQL in `sqlite_agents` and `postgres_agents`.

Times are epoch milliseconds from the agents' wall clocks: agents on different hosts compare
each other's heartbeats, so clocks must agree to well within the heartbeat timeout (NTP does).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AgentInfo:
    """One row of the `agents` table: a running agent and how to reach it."""

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
