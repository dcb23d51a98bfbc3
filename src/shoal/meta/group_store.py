"""Consumer-group persistence: committed offsets and group metadata.

A second narrow interface beside `MetadataStore`, implemented by the same backends (SQLite now,
PostgreSQL later) and checked by one contract suite. The coordinator keeps live group state in
memory; the store holds what must survive an agent restart or a change of coordinator:
- committed offsets, written in one transaction per OffsetCommit request;
- the last completed generation of each group (protocol, leader, members and assignments),
  written when a generation completes, when a static member is replaced and when a group empties.
Heartbeats never touch the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class CommittedOffset:
    topic: str
    partition: int
    offset: int
    leader_epoch: int = -1
    metadata: str | None = None
    commit_time_ms: int = 0


@dataclass(frozen=True, slots=True)
class StoredMember:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    # Metadata of the group's selected protocol only (Kafka stores the same), and the
    # assignment the leader gave this member.
    subscription: bytes
    assignment: bytes


@dataclass(frozen=True, slots=True)
class StoredGroup:
    group_id: str
    protocol_type: str  # "" for groups that only commit offsets
    generation: int
    protocol_name: str | None
    leader: str | None
    state: str  # "Empty" or "Stable": the state a reloaded group starts in
    members: tuple[StoredMember, ...] = ()
    updated_at_ms: int = 0


@dataclass(frozen=True, slots=True)
class GroupListing:
    """One group known to the store: it has metadata, committed offsets, or both."""

    group_id: str
    protocol_type: str
    state: str  # stored state; "Empty" for offset-only groups
    members: int
    generation: int
    offsets: int  # committed partitions


class GroupStore(Protocol):
    async def save_group(self, group: StoredGroup) -> None:
        """Insert or replace the group's metadata (one transaction)."""

    async def load_group(self, group_id: str) -> StoredGroup | None:
        """The saved metadata, or None when the group was never saved (it may still have
        committed offsets)."""

    async def list_groups(self) -> list[GroupListing]:
        """Every group with metadata or committed offsets, ordered by group id."""

    async def delete_group(self, group_id: str) -> bool:
        """Drop the group's metadata and all its committed offsets in one transaction.
        Returns whether anything was there."""

    async def commit_offsets(self, group_id: str, offsets: list[CommittedOffset]) -> None:
        """Upsert every offset of one OffsetCommit request in one transaction."""

    async def fetch_offsets(
        self, group_id: str, partitions: list[tuple[str, int]] | None = None
    ) -> list[CommittedOffset]:
        """Committed offsets of the group (all when `partitions` is None), ordered by topic
        and partition; partitions without a commit are left out."""

    async def delete_offsets(self, group_id: str, partitions: list[tuple[str, int]]) -> int:
        """OffsetDelete: drop these partitions' commits; returns how many rows went."""

    async def committed_offsets_page(
        self, limit: int
    ) -> list[tuple[str, CommittedOffset]]:
        """(group id, offset) of up to `limit` commits ordered by group, topic, partition:
        the bounded input of lag metrics."""
