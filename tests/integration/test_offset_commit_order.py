"""Pipelined OffsetCommits on one connection take effect in the order they were sent.

librdkafka's async commits put several OffsetCommit requests on the wire without waiting. The
agent runs a connection's requests concurrently; on PostgreSQL two commit transactions can finish
in either order, so without per-connection ordering an older commit could be stored last and move
the group's offset backwards (librdkafka's test 0030 caught this on the s3-pg backend).
"""

from __future__ import annotations

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
from kio.static.primitive import i32, i64

from tests.agent_process import AgentProcess
from tests.integration.group_members import create_topic
from tests.rawkafka import RawConnection

COMMITS = 40
PARTITIONS = 4


def _commit(group: str, topic: str, offset: int) -> OffsetCommitRequest:
    # Generation -1 and no member: a commit outside group management (admin tools, simple
    # consumers), accepted without a join.
    return OffsetCommitRequest(
        group_id=group,  # type: ignore[arg-type]
        generation_id_or_member_epoch=i32(-1),
        member_id="",
        group_instance_id=None,
        topics=(
            OffsetCommitRequestTopic(
                name=topic,  # type: ignore[arg-type]
                partitions=tuple(
                    OffsetCommitRequestPartition(
                        partition_index=i32(p),
                        committed_offset=i64(offset),
                        committed_leader_epoch=i32(-1),
                        committed_metadata=f"commit {offset}",
                    )
                    for p in range(PARTITIONS)
                ),
            ),
        ),
    )


def test_pipelined_commits_apply_in_order(agent: AgentProcess) -> None:
    topic, group = "commit-order", "commit-order-group"
    create_topic(agent.bootstrap, topic, PARTITIONS)

    conn = RawConnection(agent.bootstrap)
    try:
        for round_ in range(3):
            first = round_ * COMMITS + 1
            requests = [_commit(group, topic, first + i) for i in range(COMMITS)]
            # All on the wire before reading any answer, as a pipelining client does.
            correlations = [conn.send(r) for r in requests]
            for request, correlation in zip(requests, correlations, strict=True):
                response = conn.read_response(request, correlation)
                codes = {p.error_code for t in response.topics for p in t.partitions}
                assert codes == {0}, codes

            fetched = conn.call(
                OffsetFetchRequest(
                    groups=(
                        OffsetFetchRequestGroup(
                            group_id=group,  # type: ignore[arg-type]
                            topics=(
                                OffsetFetchRequestTopics(
                                    name=topic,  # type: ignore[arg-type]
                                    partition_indexes=tuple(i32(p) for p in range(PARTITIONS)),
                                ),
                            ),
                        ),
                    ),
                    require_stable=False,
                )
            )
            last = first + COMMITS - 1
            (group_result,) = fetched.groups
            assert group_result.error_code == 0
            got = {
                (p.partition_index, p.committed_offset, p.metadata)
                for t in group_result.topics
                for p in t.partitions
            }
            assert got == {(p, last, f"commit {last}") for p in range(PARTITIONS)}
    finally:
        conn.close()
