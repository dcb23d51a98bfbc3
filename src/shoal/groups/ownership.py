"""Which agent coordinates a group. One agent owns every group; a multi-agent ring replaces
`SingleAgentOwnership` with one that hashes the group id over the live agents."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class CoordinatorNode:
    node_id: int
    host: str
    port: int


class Ownership(Protocol):
    """Who coordinates what, and who this agent is: the one place its node id is read from
    (in an agent, the cluster view's; the metadata store assigns it at registration and may
    assign another after an outage)."""

    @property
    def node_id(self) -> int:
        """This agent's node id."""

    def owner_of(self, group_id: str) -> CoordinatorNode | None:
        """The agent that coordinates `group_id`, None when no agent is available."""

    def lease_valid(self) -> bool:
        """Whether the other agents still count this one live (its last heartbeat reached the
        metadata store within the heartbeat timeout). An agent that was paused or cut off
        longer than that may have had its groups taken over; it must not serve them."""


class SingleAgentOwnership:
    def __init__(self, node: CoordinatorNode) -> None:
        self.node = node

    @property
    def node_id(self) -> int:
        return self.node.node_id

    def owner_of(self, group_id: str) -> CoordinatorNode | None:
        return self.node

    def lease_valid(self) -> bool:
        return True
