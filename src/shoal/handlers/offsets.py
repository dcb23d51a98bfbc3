"""Committed offsets: OffsetCommit, OffsetFetch (multi-group from v8), OffsetDelete.

Offsets live in the metadata store (one transaction per OffsetCommit); the coordinator checks
membership and generation first. Topic ids (OffsetCommit/OffsetFetch v10) are not served:
clients of the classic protocol do not need them.

Versions served: OffsetCommit 2-9, OffsetFetch 1-9, OffsetDelete 0.
- OffsetCommit v2-4: retention time (ignored, as by Kafka since 2.1); v3: throttle time;
  v6: leader epoch; v7: group instance id (static members); v8: flexible; v9: KIP-848 member
  epochs (classic groups send -1); v10 (not served): topics by id.
- OffsetFetch v2: group-level error code (before it, the error goes on every partition);
  v3: throttle time; v5: leader epoch; v6: flexible; v7: require_stable; v8: several groups
  per request; v9: member id and epoch (KIP-848); v10 (not served): topics by id.
- OffsetDelete v0: delete a group's offsets for partitions it no longer consumes.
"""

from __future__ import annotations

import contextlib
from typing import Any

from kio.schema.offset_commit.v10.response import (
    OffsetCommitResponse,
    OffsetCommitResponsePartition,
    OffsetCommitResponseTopic,
)
from kio.schema.offset_delete.v0.response import (
    OffsetDeleteResponse,
    OffsetDeleteResponsePartition,
    OffsetDeleteResponseTopic,
)
from kio.schema.offset_fetch.v7.response import (
    OffsetFetchResponsePartition,
    OffsetFetchResponseTopic,
)
from kio.schema.offset_fetch.v10.response import (
    OffsetFetchResponse,
    OffsetFetchResponseGroup,
    OffsetFetchResponsePartitions,
    OffsetFetchResponseTopics,
)

from shoal.handlers.base import RequestContext, api
from shoal.handlers.services import Services
from shoal.meta.group_store import CommittedOffset
from shoal.protocol import errors
from shoal.protocol.apis import ApiKey
from shoal.protocol.messages import ZERO_THROTTLE, Messages, error

NO_OFFSET = -1


@api(ApiKey.OFFSET_COMMIT, 2, 9)
async def handle_offset_commit(svc: Services, ctx: RequestContext, req: Any) -> Any:
    async with ctx.write_turn or contextlib.nullcontext():
        return await _offset_commit(svc, ctx, req)


async def _offset_commit(svc: Services, ctx: RequestContext, req: Any) -> Any:
    msgs = ctx.responses()
    limit = svc.groups.config.offset_metadata_max_bytes
    codes: dict[tuple[str, int], int] = {}
    valid: list[CommittedOffset] = []
    for topic in req.topics:
        info = await svc.topics.get(topic.name)
        for p in topic.partitions:
            key = (topic.name, int(p.partition_index))
            metadata = p.committed_metadata
            if info is None or not 0 <= key[1] < info.partitions:
                codes[key] = errors.UNKNOWN_TOPIC_OR_PARTITION
            elif metadata is not None and len(metadata.encode()) > limit:
                codes[key] = errors.OFFSET_METADATA_TOO_LARGE
            else:
                valid.append(
                    CommittedOffset(
                        key[0],
                        key[1],
                        int(p.committed_offset),
                        int(getattr(p, "committed_leader_epoch", -1)),
                        metadata,
                    )
                )
    if valid:
        code = await svc.groups.commit_offsets(
            req.group_id,
            req.member_id,
            getattr(req, "group_instance_id", None),
            int(req.generation_id_or_member_epoch),
            valid,
        )
        for o in valid:
            codes[(o.topic, o.partition)] = code
    topics = tuple(
        msgs.make(
            OffsetCommitResponseTopic,
            name=topic.name,
            partitions=tuple(
                msgs.make(
                    OffsetCommitResponsePartition,
                    partition_index=int(p.partition_index),
                    error_code=error(codes[(topic.name, int(p.partition_index))]),
                )
                for p in topic.partitions
            ),
        )
        for topic in req.topics
    )
    return msgs.make(OffsetCommitResponse, throttle_time=ZERO_THROTTLE, topics=topics)


async def _fetch_group(
    svc: Services,
    msgs: Messages,
    group_id: str,
    topics: Any,
    classes: tuple[type[Any], type[Any]],
    v: int,
) -> tuple[int, tuple[Any, ...]]:
    """(group error, topic answers) for one group of an OffsetFetch."""
    wanted = None
    if topics is not None:
        wanted = [(t.name, int(i)) for t in topics for i in t.partition_indexes]
    code, found = await svc.groups.fetch_offsets(group_id, wanted)
    by_key = {(o.topic, o.partition): o for o in found}
    topic_cls, partition_cls = classes
    if wanted is None:
        names: dict[str, list[int]] = {}
        for o in found:
            names.setdefault(o.topic, []).append(o.partition)
        requested = list(names.items())
    else:
        requested = [(t.name, [int(i) for i in t.partition_indexes]) for t in topics]
    # v0-1 have no group-level error: it goes on every partition.
    partition_code = code if v < 2 else errors.NONE
    if code != errors.NONE and v >= 2:
        requested = [] if wanted is None else requested
    answers = []
    for name, indexes in requested:
        parts = []
        for index in indexes:
            hit = by_key.get((name, index))
            parts.append(
                msgs.make(
                    partition_cls,
                    partition_index=index,
                    committed_offset=hit.offset if hit else NO_OFFSET,
                    committed_leader_epoch=hit.leader_epoch if hit else -1,
                    metadata=(hit.metadata if hit and hit.metadata is not None else ""),
                    error_code=error(partition_code),
                )
            )
        answers.append(msgs.make(topic_cls, name=name, partitions=tuple(parts)))
    return code, tuple(answers)


@api(ApiKey.OFFSET_FETCH, 1, 9)
async def handle_offset_fetch(svc: Services, ctx: RequestContext, req: Any) -> Any:
    msgs = ctx.responses()
    v = ctx.api_version
    if v >= 8:
        groups = []
        for g in req.groups:
            code, topics = await _fetch_group(
                svc,
                msgs,
                g.group_id,
                g.topics,
                (OffsetFetchResponseTopics, OffsetFetchResponsePartitions),
                v,
            )
            groups.append(
                msgs.make(
                    OffsetFetchResponseGroup,
                    group_id=g.group_id,
                    topics=topics,
                    error_code=error(code),
                )
            )
        return msgs.make(OffsetFetchResponse, throttle_time=ZERO_THROTTLE, groups=tuple(groups))
    code, topics = await _fetch_group(
        svc,
        msgs,
        req.group_id,
        req.topics,
        (OffsetFetchResponseTopic, OffsetFetchResponsePartition),
        v,
    )
    return msgs.make(
        OffsetFetchResponse,
        throttle_time=ZERO_THROTTLE,
        topics=topics,
        error_code=error(code),
    )


@api(ApiKey.OFFSET_DELETE, 0, 0)
async def handle_offset_delete(svc: Services, ctx: RequestContext, req: Any) -> Any:
    msgs = ctx.responses()
    keys = [(t.name, int(p.partition_index)) for t in req.topics for p in t.partitions]
    code, results = await svc.groups.delete_offsets(req.group_id, keys)
    topics = tuple(
        msgs.make(
            OffsetDeleteResponseTopic,
            name=t.name,
            partitions=tuple(
                msgs.make(
                    OffsetDeleteResponsePartition,
                    partition_index=int(p.partition_index),
                    error_code=error(results.get((t.name, int(p.partition_index)), errors.NONE)),
                )
                for p in t.partitions
            ),
        )
        for t in req.topics
    )
    return msgs.make(
        OffsetDeleteResponse,
        error_code=error(code),
        throttle_time=ZERO_THROTTLE,
        topics=topics if code == errors.NONE else (),
    )
