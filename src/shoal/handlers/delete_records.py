"""DeleteRecords: move a partition's log start offset up, as an admin asks (and Kafka Streams
does for its repartition topics once their records are processed).

The log start moves in the metadata store in one transaction (`advance_log_start`), which also
drops the index rows wholly below it; a batch that straddles the new start stays, and a fetch
from the start gets it whole, as from Kafka (clients skip the records below the offset they
asked for). Every agent reads the log start from the store on each Fetch and ListOffsets, so
the move is seen at once cluster-wide. Files no row references any more are deleted by the
garbage collector after its grace.

Versions served: 0-2.
- v0: topics, partitions and offsets (-1 = the high watermark); the timeout is accepted and
  unused, as there are no replicas to wait for.
- v1: no change.
- v2: flexible.

Kafka's answers kept: an offset beyond the high watermark, or negative and not -1, gets
OFFSET_OUT_OF_RANGE; an offset below the log start leaves it and answers it as the low
watermark; a topic whose cleanup.policy lacks `delete` gets POLICY_VIOLATION.
"""

from __future__ import annotations

from typing import Any

from kio.schema.delete_records.v2.response import (
    DeleteRecordsPartitionResult,
    DeleteRecordsResponse,
    DeleteRecordsTopicResult,
)

from shoal.handlers.base import RequestContext, api
from shoal.handlers.config_defaults import effective_topic_configs, split_list
from shoal.handlers.services import Services
from shoal.meta.store import TopicInfo
from shoal.protocol import errors
from shoal.protocol.apis import ApiKey
from shoal.protocol.messages import ZERO_THROTTLE, error

HIGH_WATERMARK = -1


@api(ApiKey.DELETE_RECORDS, 0, 2)
async def handle_delete_records(svc: Services, ctx: RequestContext, req: Any) -> Any:
    msgs = ctx.responses()
    topics_out = []
    for topic in req.topics:
        info = await svc.topics.get(topic.name)
        parts_out = []
        for p in topic.partitions:
            index = int(p.partition_index)
            code, low = await _delete(svc, info, index, int(p.offset))
            parts_out.append(
                msgs.make(
                    DeleteRecordsPartitionResult,
                    partition_index=index,
                    low_watermark=low,
                    error_code=error(code),
                )
            )
        topics_out.append(
            msgs.make(DeleteRecordsTopicResult, name=topic.name, partitions=tuple(parts_out))
        )
    return msgs.make(DeleteRecordsResponse, throttle_time=ZERO_THROTTLE, topics=tuple(topics_out))


async def _delete(
    svc: Services, info: TopicInfo | None, partition: int, offset: int
) -> tuple[int, int]:
    """(error code, low watermark) of one partition's DeleteRecords."""
    if info is None or not 0 <= partition < info.partitions:
        return errors.UNKNOWN_TOPIC_OR_PARTITION, -1
    policy = effective_topic_configs(info.configs, svc.settings).get("cleanup.policy")
    if "delete" not in split_list(policy):
        return errors.POLICY_VIOLATION, -1
    state = await svc.meta.partition_state(info.name, partition)
    if state is None:
        return errors.UNKNOWN_TOPIC_OR_PARTITION, -1
    if offset == HIGH_WATERMARK:
        offset = state.high_watermark
    elif not 0 <= offset <= state.high_watermark:
        return errors.OFFSET_OUT_OF_RANGE, -1
    moved = await svc.meta.advance_log_start(info.name, partition, offset)
    if moved is None:  # the partition went with its topic since the state was read
        return errors.UNKNOWN_TOPIC_OR_PARTITION, -1
    return errors.NONE, moved.log_start_offset
