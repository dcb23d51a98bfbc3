"""Decisions and encodings of consumer-group persistence, shared by both backends: what an
OffsetCommit or a saved generation writes, and the stored form of a member list (JSON text,
protocol bytes in base64)."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from shoal.meta.group_store import CommittedOffset, GroupListing, StoredGroup, StoredMember
from shoal.meta.store import StaleCoordinatorError


def check_coordinator(group_id: str, stored_epoch: int | None, epoch: int | None) -> None:
    """A fenced write (`epoch` given) goes through only while `epoch` is the group's current
    coordinator epoch, read in the write's own transaction; a claim by another agent since
    has raised it. Epoch rows are never deleted, so a missing one means no claim was made."""
    if epoch is not None and stored_epoch != epoch:
        raise StaleCoordinatorError(
            f"group {group_id}: coordinator epoch {epoch} is stale (now {stored_epoch})"
        )


def stamped(group: StoredGroup, now_ms: int) -> StoredGroup:
    """The row `save_group` writes: stamped with the store's clock unless the caller did."""
    return group if group.updated_at_ms else replace(group, updated_at_ms=now_ms)


def offsets_to_write(offsets: list[CommittedOffset], now_ms: int) -> list[CommittedOffset]:
    """The rows one OffsetCommit upserts: the last one wins for a partition named twice, in
    (topic, partition) order (so two commits touching the same rows lock them in one order),
    stamped with the store's clock unless the caller gave a commit time."""
    latest = {(o.topic, o.partition): o for o in offsets}
    return [
        latest[k] if latest[k].commit_time_ms else replace(latest[k], commit_time_ms=now_ms)
        for k in sorted(latest)
    ]


def wanted_partitions(partitions: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """The partitions `fetch_offsets` looks up: each once, in the order answers come back."""
    return sorted(set(partitions))


def encode_members(members: tuple[StoredMember, ...]) -> str:
    return json.dumps(
        [
            {
                "member_id": m.member_id,
                "group_instance_id": m.group_instance_id,
                "client_id": m.client_id,
                "client_host": m.client_host,
                "session_timeout_ms": m.session_timeout_ms,
                "rebalance_timeout_ms": m.rebalance_timeout_ms,
                "subscription": base64.b64encode(m.subscription).decode(),
                "assignment": base64.b64encode(m.assignment).decode(),
            }
            for m in members
        ],
        separators=(",", ":"),
    )


def decode_members(text: str) -> tuple[StoredMember, ...]:
    return tuple(
        StoredMember(
            member_id=str(d["member_id"]),
            group_instance_id=d["group_instance_id"],
            client_id=str(d["client_id"]),
            client_host=str(d["client_host"]),
            session_timeout_ms=int(d["session_timeout_ms"]),
            rebalance_timeout_ms=int(d["rebalance_timeout_ms"]),
            subscription=base64.b64decode(d["subscription"]),
            assignment=base64.b64decode(d["assignment"]),
        )
        for d in json.loads(text)
    )


# Column order of the group rows both backends select (see their `*_groups` modules).
GROUP_COLUMNS = "protocol_type, generation, protocol_name, leader, state, members, updated_at"
OFFSET_COLUMNS = "topic, partition, committed_offset, leader_epoch, metadata, commit_time"


def group_from_row(group_id: str, row: Sequence[Any]) -> StoredGroup:
    """A StoredGroup from a row of GROUP_COLUMNS."""
    return StoredGroup(
        group_id=group_id,
        protocol_type=str(row[0]),
        generation=int(row[1]),
        protocol_name=row[2],
        leader=row[3],
        state=str(row[4]),
        members=decode_members(row[5]),
        updated_at_ms=int(row[6]),
    )


def group_row(group: StoredGroup) -> tuple[Any, ...]:
    """(group_id, *GROUP_COLUMNS) of a stamped group."""
    return (
        group.group_id,
        group.protocol_type,
        group.generation,
        group.protocol_name,
        group.leader,
        group.state,
        encode_members(group.members),
        group.updated_at_ms,
    )


def offset_from_row(row: Sequence[Any]) -> CommittedOffset:
    """A CommittedOffset from a row of OFFSET_COLUMNS."""
    return CommittedOffset(
        str(row[0]),
        int(row[1]),
        int(row[2]),
        int(row[3]),
        row[4],
        int(row[5]),
    )


def listing_from_row(row: Sequence[Any]) -> GroupListing:
    """A GroupListing from a row of (group_id, protocol_type, state, members JSON, generation,
    committed partitions)."""
    return GroupListing(
        group_id=str(row[0]),
        protocol_type=str(row[1]),
        state=str(row[2]),
        members=len(json.loads(row[3])),
        generation=int(row[4]),
        offsets=int(row[5]),
    )
