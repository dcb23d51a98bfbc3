"""Metadata: every live agent as a broker, one agent of the client's zone as each partition's
leader (cluster/routing.py says which and why).

Any agent serves any partition (DESIGN.md §2.5), so there is no real leadership; the leader
epoch is constant because clients (librdkafka) compare epochs and refresh on changes.

Versions served: 0-12.
- v0: an empty topic list means every topic.
- v1: controller id, rack, is_internal; a null list means every topic.
- v2: cluster id.
- v3: throttle time.
- v4: allow_auto_topic_creation (before it, topics are auto-created when the broker allows).
- v5: offline replicas.
- v7: leader epoch.
- v8: authorized operations (not computed: INT32_MIN, "not requested").
- v9: flexible.
- v10: topic ids in request and answer.
- v11: cluster authorized operations removed.
- v13 (not served): a top-level error code for rebootstrapping (KIP-1102).
"""

from __future__ import annotations

from typing import Any

from kio.schema.metadata.v13.response import (
    MetadataResponse,
    MetadataResponseBroker,
    MetadataResponsePartition,
    MetadataResponseTopic,
)

from shoal.cluster.routing import brokers_for, client_hash, leader_for, serving_for
from shoal.handlers.base import RequestContext, api
from shoal.handlers.services import Services
from shoal.handlers.topic_lookup import auto_create_partitions, find_or_create_topic
from shoal.meta.agent_store import AgentInfo
from shoal.meta.store import TopicInfo
from shoal.protocol import errors
from shoal.protocol.apis import ApiKey
from shoal.protocol.messages import UNKNOWN_AUTHORIZED_OPERATIONS, ZERO_THROTTLE, Messages, error

LEADER_EPOCH = 0


@api(ApiKey.METADATA, 0, 12)
async def handle_metadata(svc: Services, ctx: RequestContext, req: Any) -> Any:
    msgs = ctx.responses()
    view = svc.cluster
    serving = serving_for(view, ctx.client_id)
    seed = client_hash(ctx.client_id, ctx.peer)
    results: list[Any] = []
    if req.topics is None or (ctx.api_version == 0 and not req.topics):
        for listed in sorted(await svc.meta.list_topics(), key=lambda t: t.name):
            results.append(_topic(msgs, listed, serving, seed))
    else:
        create = auto_create_partitions(
            # v0-v3 have no flag: Kafka auto-creates for them whenever the broker allows it.
            svc.settings,
            bool(getattr(req, "allow_auto_topic_creation", True)),
        )
        for wanted in req.topics:
            name = getattr(wanted, "name", None)
            topic_id = getattr(wanted, "topic_id", None)
            code, info = await find_or_create_topic(
                svc.topics, name, topic_id, create_partitions=create
            )
            if info is None:
                shown_id = topic_id if code == errors.UNKNOWN_TOPIC_ID else None
                shown = None if code == errors.UNKNOWN_TOPIC_ID else name
                results.append(_missing(msgs, shown, shown_id, code))
                continue
            results.append(_topic(msgs, info, serving, seed))

    listed_brokers = tuple(
        msgs.make(
            MetadataResponseBroker,
            node_id=a.node_id,
            host=a.host,
            port=a.kafka_port,
            rack=a.az,
        )
        for a in brokers_for(view)
    )
    # Every agent can do a controller's work; name this one when it serves the client's zone.
    me = view.me
    controller = me.node_id if any(a.node_id == me.node_id for a in serving) else serving[0].node_id
    return msgs.make(
        MetadataResponse,
        throttle_time=ZERO_THROTTLE,
        brokers=listed_brokers,
        cluster_id=svc.cluster_id,
        controller_id=controller,
        topics=tuple(results),
        cluster_authorized_operations=UNKNOWN_AUTHORIZED_OPERATIONS,
        error_code=error(errors.NONE),
    )


def _topic(msgs: Messages, info: TopicInfo, serving: list[AgentInfo], seed: int) -> Any:
    partitions = []
    for p in range(info.partitions):
        node = leader_for(serving, seed, p).node_id
        partitions.append(
            msgs.make(
                MetadataResponsePartition,
                error_code=error(errors.NONE),
                partition_index=p,
                leader_id=node,
                leader_epoch=LEADER_EPOCH,
                replica_nodes=(node,),
                isr_nodes=(node,),
                offline_replicas=(),
            )
        )
    return msgs.make(
        MetadataResponseTopic,
        error_code=error(errors.NONE),
        name=info.name,
        topic_id=info.topic_id,
        is_internal=False,
        partitions=tuple(partitions),
        topic_authorized_operations=UNKNOWN_AUTHORIZED_OPERATIONS,
    )


def _missing(msgs: Messages, name: str | None, topic_id: Any, code: int) -> Any:
    import uuid

    return msgs.make(
        MetadataResponseTopic,
        error_code=error(code),
        name=name,
        topic_id=topic_id or uuid.UUID(int=0),
        is_internal=False,
        partitions=(),
        topic_authorized_operations=UNKNOWN_AUTHORIZED_OPERATIONS,
    )
