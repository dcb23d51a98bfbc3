"""Fetch: index lookup, block reads, baseOffset patching and long-poll live in `shoal.read`;
this module maps the request onto it and encodes the answer by hand (hot path).

Fetch sessions (KIP-227) are not kept: session id 0 tells clients to send full requests.
There are no transactions yet, so the last stable offset is the high watermark and
read_committed clients see everything.

Versions served: 4-17 (the encoder also knows 18).
- v4: isolation level, last stable offset, aborted transactions.
- v5: log start offset.
- v7: fetch sessions (KIP-227): not kept, session id 0 is answered.
- v9: current leader epoch in the request (not checked: there is no leader).
- v11: rack id in the request (KIP-392); the client's zone comes from its client id instead.
- v12: flexible; diverging epoch and snapshot id (replication only).
- v13: topics named by id (KIP-516).
- v15: replica state replaces replica id (consumers send -1).
- v16: node endpoints (KIP-951), never needed.
- v17: replica directory id (replication only).
- v18 (not served): the follower's high watermark, for replication only.
"""

from __future__ import annotations

import uuid
from typing import Any

from shoal import metrics
from shoal.cluster.client_zone import client_zone
from shoal.handlers.base import RequestContext, api
from shoal.handlers.services import Services
from shoal.handlers.topic_lookup import find_topic
from shoal.protocol import errors
from shoal.protocol.apis import ApiKey
from shoal.protocol.encoders import (
    FETCH_MIN_VERSION,
    Buffer,
    FetchPartitionResult,
    encode_fetch_response_parts,
)
from shoal.read.fetcher import PartitionFetch

NIL_UUID = uuid.UUID(int=0)
# Bounds a single request's wait even if a client asks for more.
MAX_WAIT_MS_CAP = 30_000
# The encoder encodes up to v18; v18 adds only the follower's high watermark to the
# request, which only replication uses, so it is not served (ApiVersions says 17).
FETCH_SERVED_MAX_VERSION = 17


@api(ApiKey.FETCH, FETCH_MIN_VERSION, FETCH_SERVED_MAX_VERSION)
async def handle_fetch(svc: Services, ctx: RequestContext, req: Any) -> list[Buffer]:
    wanted: list[PartitionFetch] = []
    # (topic name, topic id, [(partition, index into wanted or -error_code-1)])
    layout: list[tuple[str, uuid.UUID, list[tuple[int, int]]]] = []
    for topic in req.topics:
        name = getattr(topic, "topic", None)
        topic_id = getattr(topic, "topic_id", None)
        missing, info = await find_topic(svc.topics, name, topic_id)
        parts: list[tuple[int, int]] = []
        for p in topic.partitions:
            index = int(p.partition)
            if info is None or not 0 <= index < info.partitions:
                code = missing if info is None else errors.UNKNOWN_TOPIC_OR_PARTITION
                parts.append((index, -code - 1))
                continue
            parts.append((index, len(wanted)))
            wanted.append(
                PartitionFetch(
                    topic=info.name,
                    partition=index,
                    fetch_offset=int(p.fetch_offset),
                    partition_max_bytes=int(p.partition_max_bytes),
                    topic_id=topic_id if name is None else None,
                )
            )
        layout.append(
            (
                info.name if info else (name or ""),
                info.topic_id if info else (topic_id or NIL_UUID),
                parts,
            )
        )

    max_wait_ms = min(int(req.max_wait.total_seconds() * 1000), MAX_WAIT_MS_CAP)
    max_bytes = min(int(getattr(req, "max_bytes", 0x7FFFFFFF)), svc.settings.fetch_bytes_max)
    reads = await svc.reader.fetch(
        wanted, max_bytes, int(req.min_bytes), max_wait_ms, ctx.hold_response_bytes
    )

    sent = 0
    topics_out: list[tuple[str, uuid.UUID, list[FetchPartitionResult]]] = []
    for name, topic_id, parts in layout:
        results: list[FetchPartitionResult] = []
        for index, slot in parts:
            if slot < 0:
                results.append(_empty(index, -slot - 1))
                continue
            r = reads[slot]
            if r.error_code != errors.NONE:
                results.append(_empty(index, r.error_code, aborted=None))
                continue
            sent += r.byte_count
            results.append(
                FetchPartitionResult(
                    partition_index=index,
                    error_code=r.error_code,
                    high_watermark=r.high_watermark,
                    last_stable_offset=r.high_watermark,
                    log_start_offset=r.log_start_offset,
                    aborted_transactions=None,
                    preferred_read_replica=-1,
                    records=r.batches,
                )
            )
        topics_out.append((name, topic_id, results))
    # A client that names no zone counts as same-zone: nothing says the bytes crossed one.
    zone = client_zone(ctx.client_id)
    cross = zone is not None and zone != svc.settings.az
    metrics.FETCH_BYTES.labels(cross_zone="true" if cross else "false").inc(sent)
    return encode_fetch_response_parts(ctx.api_version, topics_out)


def _empty(
    index: int, code: int, aborted: tuple[tuple[int, int], ...] | None = ()
) -> FetchPartitionResult:
    """A partition answered with an error, as Kafka answers (the differential suite compares
    them): no watermarks; the aborted list is empty for a partition the request named wrongly
    and null for one whose read failed (an offset out of range)."""
    return FetchPartitionResult(
        partition_index=index,
        error_code=code,
        high_watermark=-1,
        last_stable_offset=-1,
        log_start_offset=-1,
        aborted_transactions=aborted,
        preferred_read_replica=-1,
        records=[],
    )
