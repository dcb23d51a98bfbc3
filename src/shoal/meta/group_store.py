"""Rows of consumer-group persistence: committed offsets and group metadata.

The methods that read and write them are part of `store.MetadataStore`; what they decide is in
`groups`. A stored group is the last completed generation (protocol, leader, members and
assignments), the state a group reloaded by a restarted or new coordinator starts from.
"""

from __future__ import annotations

from dataclasses import dataclass


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
