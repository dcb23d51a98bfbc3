"""Request builders and waits of the differential suite for consumer groups and coordinators:
FindCoordinator, JoinGroup, SyncGroup, Heartbeat, OffsetCommit, OffsetFetch, LeaveGroup."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kio.schema.find_coordinator.v4.request import FindCoordinatorRequest
from kio.schema.heartbeat.v4.request import HeartbeatRequest
from kio.schema.join_group.v9.request import JoinGroupRequest, JoinGroupRequestProtocol
from kio.schema.leave_group.v5.request import LeaveGroupRequest, MemberIdentity
from kio.schema.offset_commit.v8.request import (
    OffsetCommitRequest,
    OffsetCommitRequestPartition,
    OffsetCommitRequestTopic,
)
from kio.schema.offset_fetch.v8.request import (
    OffsetFetchRequest,
    OffsetFetchRequestGroup,
    OffsetFetchRequestTopics,
)
from kio.schema.sync_group.v5.request import SyncGroupRequest, SyncGroupRequestAssignment

from shoal.protocol.apis import ApiKey
from shoal.protocol.messages import timedelta_ms
from tests.diff.steps import RETRIABLE_COORDINATOR, Builder, Step, Vars, msg, resolve

SESSION_TIMEOUT_MS = 10_000
GROUP_KEY, TRANSACTION_KEY = 0, 1  # FindCoordinator key types


def coordinator_found(label: str, key: str, key_type: int) -> Step:
    """Waits until the broker names a coordinator of `key` (a group or a transactional id)."""
    return Step(
        label,
        lambda v: msg(
            ApiKey.FIND_COORDINATOR, 4, FindCoordinatorRequest,
            key_type=key_type, coordinator_keys=(key,),
        ),
        compare=False,
        until=lambda r: int(r.coordinators[0].error_code) == 0,
    )  # fmt: skip


def find_coordinator(group: str) -> tuple[Step, ...]:
    """Waits until the broker names a coordinator of `group` and that coordinator has loaded
    the group's offsets partition (Kafka answers NOT_COORDINATOR or
    COORDINATOR_LOAD_IN_PROGRESS meanwhile, to every group request)."""
    return (
        coordinator_found("find coordinator", group, GROUP_KEY),
        Step(
            "coordinator loaded",
            offset_fetch(group, "diff-none"),
            compare=False,
            until=lambda r: int(r.groups[0].error_code) not in RETRIABLE_COORDINATOR,
        ),
    )  # fmt: skip


def join(
    group: str, member: str | Callable[[Vars], str], session_ms: int = SESSION_TIMEOUT_MS
) -> Builder:
    def build(v: Vars) -> Any:
        return msg(
            ApiKey.JOIN_GROUP,
            9,
            JoinGroupRequest,
            group_id=group,
            session_timeout=timedelta_ms(session_ms),
            rebalance_timeout=timedelta_ms(30_000),
            member_id=member(v) if callable(member) else member,
            group_instance_id=None,
            protocol_type="consumer",
            protocols=(
                msg(ApiKey.JOIN_GROUP, 9, JoinGroupRequestProtocol, name="range", metadata=b"m"),
            ),
            reason=None,
        )

    return build


def keep_member(v: Vars, resp: Any) -> None:
    v["member"] = str(resp.member_id)
    v["generation"] = int(resp.generation_id)


def member(v: Vars) -> str:
    return str(v["member"])


def generation(offset: int = 0) -> Callable[[Vars], int]:
    return lambda v: int(v["generation"]) + offset


def sync(group: str, member_id: Any, gen: Any, assign: bool = True) -> Builder:
    return lambda v: msg(
        ApiKey.SYNC_GROUP,
        5,
        SyncGroupRequest,
        group_id=group,
        generation_id=resolve(gen, v),
        member_id=resolve(member_id, v),
        group_instance_id=None,
        protocol_type="consumer",
        protocol_name="range",
        assignments=(
            (
                msg(
                    ApiKey.SYNC_GROUP,
                    5,
                    SyncGroupRequestAssignment,
                    member_id=resolve(member_id, v),
                    assignment=b"assigned",
                ),
            )
            if assign
            else ()
        ),
    )


def heartbeat(group: str, member_id: Any, gen: Any) -> Builder:
    return lambda v: msg(
        ApiKey.HEARTBEAT,
        4,
        HeartbeatRequest,
        group_id=group,
        generation_id=resolve(gen, v),
        member_id=resolve(member_id, v),
        group_instance_id=None,
    )


def commit(group: str, member_id: Any, gen: Any, topic: str, offset: int) -> Builder:
    return lambda v: msg(
        ApiKey.OFFSET_COMMIT,
        8,
        OffsetCommitRequest,
        group_id=group,
        generation_id_or_member_epoch=resolve(gen, v),
        member_id=resolve(member_id, v),
        group_instance_id=None,
        topics=(
            msg(
                ApiKey.OFFSET_COMMIT,
                8,
                OffsetCommitRequestTopic,
                name=topic,
                partitions=(
                    msg(
                        ApiKey.OFFSET_COMMIT,
                        8,
                        OffsetCommitRequestPartition,
                        partition_index=0,
                        committed_offset=offset,
                        committed_leader_epoch=-1,
                        committed_metadata="meta",
                    ),
                ),
            ),
        ),
    )


def offset_fetch(group: str, topic: str) -> Builder:
    return lambda v: msg(
        ApiKey.OFFSET_FETCH,
        8,
        OffsetFetchRequest,
        groups=(
            msg(
                ApiKey.OFFSET_FETCH,
                8,
                OffsetFetchRequestGroup,
                group_id=group,
                topics=(
                    msg(
                        ApiKey.OFFSET_FETCH,
                        8,
                        OffsetFetchRequestTopics,
                        name=topic,
                        partition_indexes=(0, 1),
                    ),
                ),
            ),
        ),
        require_stable=False,
    )


def leave(group: str, *member_ids: Any) -> Builder:
    return lambda v: msg(
        ApiKey.LEAVE_GROUP,
        5,
        LeaveGroupRequest,
        group_id=group,
        members=tuple(
            msg(
                ApiKey.LEAVE_GROUP,
                5,
                MemberIdentity,
                member_id=resolve(m, v),
                group_instance_id=None,
                reason=None,
            )
            for m in member_ids
        ),
    )
