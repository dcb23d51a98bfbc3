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
    def owner_of(self, group_id: str) -> CoordinatorNode | None:
        """The agent that coordinates `group_id`, None when no agent is available."""


class SingleAgentOwnership:
    def __init__(self, node: CoordinatorNode) -> None:
        self.node = node

    def owner_of(self, group_id: str) -> CoordinatorNode | None:
        return self.node
