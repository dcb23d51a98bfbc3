"""ListOffsets: earliest, latest, max timestamp and offset-for-timestamp lookups.

Timestamp lookups are exact, as in Kafka: the index finds the first batch whose max timestamp
reaches the target, then that one batch is read (through the block cache) and its records'
timestamps are scanned. This is the only place the agent looks inside batches, and it is off the
produce and fetch paths.

Versions served: 1-10.
- v1: one timestamp per partition, one offset answered.
- v2: isolation level (read_committed answers the last stable offset: the high watermark, as
  there are no transactions yet).
- v4: leader epoch in request and answer.
- v6: flexible.
- v7: max timestamp lookup (-3, KIP-734).
- v8: earliest local offset (-4, KIP-405): the earliest offset, as nothing is tiered.
- v9: latest tiered offset (-5, KIP-1005): -1, as Kafka answers for a topic without remote
  storage (Shoal reports remote.storage.enable=false).
- v10: a timeout in the request (KIP-1075).
- v11 (not served): earliest pending upload offset (-6, tiered storage).
Any other negative timestamp (-6 included) is UNSUPPORTED_VERSION, as from Kafka 4.4.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kio.schema.list_offsets.v11.response import (
    ListOffsetsPartitionResponse,
    ListOffsetsResponse,
    ListOffsetsTopicResponse,
)

from shoal.handlers.base import RequestContext, api
from shoal.handlers.services import Services
from shoal.meta.store import OffsetAtTime
from shoal.protocol import errors
from shoal.protocol.apis import ApiKey
from shoal.protocol.batch import BatchError, parse_header
from shoal.protocol.messages import ZERO_THROTTLE, error
from shoal.protocol.records import first_at_or_after, max_timestamp_record

LATEST = -1
EARLIEST = -2
MAX_TIMESTAMP = -3
EARLIEST_LOCAL = -4
LATEST_TIERED = -5
# Record scans decompress a batch (up to records.DECOMPRESSED_BYTES_MAX each): they run on
# their own threads, off the event loop, and at most this many at once bound their memory.
RECORD_SCANS_IN_FLIGHT_MAX = 2
_SCANS = ThreadPoolExecutor(RECORD_SCANS_IN_FLIGHT_MAX, thread_name_prefix="record-scan")


@api(ApiKey.LIST_OFFSETS, 1, 10)
async def handle_list_offsets(svc: Services, ctx: RequestContext, req: Any) -> Any:
    msgs = ctx.responses()
    topics_out = []
    for topic in req.topics:
        info = await svc.topics.get(topic.name)
        parts_out = []
        for p in topic.partitions:
            index = int(p.partition_index)
            code, offset, timestamp = errors.NONE, -1, -1
            if info is None or not 0 <= index < info.partitions:
                code = errors.UNKNOWN_TOPIC_OR_PARTITION
            else:
                code, offset, timestamp = await _lookup(svc, info.name, index, int(p.timestamp))
            parts_out.append(
                msgs.make(
                    ListOffsetsPartitionResponse,
                    partition_index=index,
                    error_code=error(code),
                    timestamp=timestamp,
                    offset=offset,
                    leader_epoch=0,
                )
            )
        topics_out.append(
            msgs.make(ListOffsetsTopicResponse, name=topic.name, partitions=tuple(parts_out))
        )
    return msgs.make(ListOffsetsResponse, throttle_time=ZERO_THROTTLE, topics=tuple(topics_out))


async def _lookup(svc: Services, topic: str, partition: int, ts: int) -> tuple[int, int, int]:
    state = await svc.meta.partition_state(topic, partition)
    if state is None:
        return errors.UNKNOWN_TOPIC_OR_PARTITION, -1, -1
    if ts == LATEST:
        return errors.NONE, state.high_watermark, -1
    if ts == LATEST_TIERED:
        return errors.NONE, -1, -1
    if ts in (EARLIEST, EARLIEST_LOCAL):
        return errors.NONE, state.log_start_offset, -1
    if ts == MAX_TIMESTAMP:
        found = await svc.meta.max_timestamp_offset(topic, partition)
    elif ts < 0:
        return errors.UNSUPPORTED_VERSION, -1, -1
    else:
        found = await svc.meta.offset_for_timestamp(topic, partition, ts)
    if found is None:
        return errors.NONE, -1, -1
    exact = await _exact(svc, topic, partition, found, None if ts == MAX_TIMESTAMP else ts)
    return errors.NONE, max(exact.offset, state.log_start_offset), exact.timestamp


async def _exact(
    svc: Services, topic: str, partition: int, found: OffsetAtTime, target: int | None
) -> OffsetAtTime:
    """The record inside the batch at `found.offset`: the first reaching `target`, or (target
    None) the first holding the batch's largest timestamp. Falls back to the batch's base."""
    read = await svc.reader.read_partition(topic, partition, found.offset, 1)
    if read.error_code != errors.NONE or not read.batches:
        return found
    data = b"".join(read.batches)
    scanned = await asyncio.get_running_loop().run_in_executor(_SCANS, _scan, data, target)
    if scanned is None:
        return found
    base_offset, (delta, timestamp) = scanned
    return OffsetAtTime(base_offset + delta, timestamp)


def _scan(data: bytes, target: int | None) -> tuple[int, tuple[int, int]] | None:
    """(base offset, (offset delta, timestamp)) of the wanted record of the batch, or None."""
    try:
        header = parse_header(data)
        batch = memoryview(data)[: header.size]
        hit = max_timestamp_record(batch) if target is None else first_at_or_after(batch, target)
    except (BatchError, ValueError):
        return None
    return None if hit is None else (header.base_offset, hit)
