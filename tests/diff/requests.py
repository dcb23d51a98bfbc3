"""Request builders and waits of the differential suite for topics, records, producer ids and
configs (`steps.msg` over the versions both brokers serve: the newest a classic client sends
where that keeps topic names on the wire, e.g. Fetch v12, not v13+ with topic ids)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.create_partitions.v3.request import CreatePartitionsRequest, CreatePartitionsTopic
from kio.schema.create_topics.v7.request import (
    CreatableTopic,
    CreatableTopicConfig,
    CreateTopicsRequest,
)
from kio.schema.delete_topics.v6.request import DeleteTopicsRequest, DeleteTopicState
from kio.schema.describe_configs.v4.request import DescribeConfigsRequest, DescribeConfigsResource
from kio.schema.fetch.v12.request import FetchPartition, FetchRequest, FetchTopic
from kio.schema.incremental_alter_configs.v1.request import (
    AlterableConfig,
    AlterConfigsResource,
    IncrementalAlterConfigsRequest,
)
from kio.schema.init_producer_id.v4.request import InitProducerIdRequest
from kio.schema.list_offsets.v9.request import (
    ListOffsetsPartition,
    ListOffsetsRequest,
    ListOffsetsTopic,
)
from kio.schema.metadata.v12.request import MetadataRequest, MetadataRequestTopic
from kio.schema.produce.v9.request import PartitionProduceData, ProduceRequest, TopicProduceData

from shoal.protocol.apis import ApiKey
from shoal.protocol.messages import timedelta_ms
from tests.diff.steps import RETRIABLE_COORDINATOR, Builder, Step, Vars, msg, resolve
from tests.unit.batchgen import make_batch

NOT_LEADER_OR_FOLLOWER = 6


def metadata(*topics: str, auto_create: bool = False) -> Any:
    def build(v: Vars) -> Any:
        return msg(
            ApiKey.METADATA,
            12,
            MetadataRequest,
            topics=tuple(
                msg(ApiKey.METADATA, 12, MetadataRequestTopic, topic_id=uuid.UUID(int=0), name=t)
                for t in topics
            ),
            allow_auto_topic_creation=auto_create,
            include_topic_authorized_operations=False,
        )

    return build


def topic_ready(topic: str, partitions: int) -> Step:
    """Waits until the broker's metadata lists `topic` with `partitions` partitions led."""

    def ready(resp: Any) -> bool:
        t = resp.topics[0]
        return (
            int(t.error_code) == 0
            and len(t.partitions) == partitions
            and all(int(p.error_code) == 0 and int(p.leader_id) >= 0 for p in t.partitions)
        )

    return Step(f"wait {topic}", metadata(topic), compare=False, until=ready)


def creatable(
    name: str, partitions: int = 1, replication: int = 1, configs: dict[str, str] | None = None
) -> Any:
    return msg(
        ApiKey.CREATE_TOPICS,
        7,
        CreatableTopic,
        name=name,
        num_partitions=partitions,
        replication_factor=replication,
        assignments=(),
        configs=tuple(
            msg(ApiKey.CREATE_TOPICS, 7, CreatableTopicConfig, name=k, value=val)
            for k, val in (configs or {}).items()
        ),
    )


def create_topics(*topics: Any, validate_only: bool = False) -> Builder:
    return lambda v: msg(
        ApiKey.CREATE_TOPICS,
        7,
        CreateTopicsRequest,
        topics=topics,
        timeout=timedelta_ms(30_000),
        validate_only=validate_only,
    )


def setup_topic(
    topic: str, partitions: int = 1, configs: dict[str, str] | None = None
) -> tuple[Step, ...]:
    return (
        Step(
            f"create {topic}",
            create_topics(creatable(topic, partitions, configs=configs)),
            compare=False,
        ),
        topic_ready(topic, partitions),
        partitions_served(topic, partitions),
    )


def partitions_served(topic: str, partitions: int) -> Step:
    """Waits until every partition answers a Fetch with something other than
    NOT_LEADER_OR_FOLLOWER: a Kafka broker lists a new partition's leader in its metadata a
    moment before its log is open."""
    return Step(
        f"wait {topic} served",
        fetch(topic, dict.fromkeys(range(partitions), 0)),
        compare=False,
        until=lambda r: all(
            int(p.error_code) != NOT_LEADER_OR_FOLLOWER for t in r.responses for p in t.partitions
        ),
    )


def produce(
    topic: str, partition: int, batch: Callable[[Vars], bytes] | bytes, acks: int = -1
) -> Builder:
    def build(v: Vars) -> Any:
        records = batch(v) if callable(batch) else batch
        return msg(
            ApiKey.PRODUCE,
            9,
            ProduceRequest,
            transactional_id=None,
            acks=acks,
            timeout=timedelta_ms(10_000),
            topic_data=(
                msg(
                    ApiKey.PRODUCE,
                    9,
                    TopicProduceData,
                    name=topic,
                    partition_data=(
                        msg(
                            ApiKey.PRODUCE,
                            9,
                            PartitionProduceData,
                            index=partition,
                            records=records,
                        ),
                    ),
                ),
            ),
        )

    return build


def fetch(topic: str, offsets: dict[int, int], max_bytes: int = 1 << 20) -> Builder:
    return lambda v: msg(
        ApiKey.FETCH,
        12,
        FetchRequest,
        cluster_id=None,
        replica_id=-1,
        max_wait=timedelta_ms(0),
        min_bytes=1,
        max_bytes=max_bytes,
        isolation_level=0,
        session_id=0,
        session_epoch=-1,
        topics=(
            msg(
                ApiKey.FETCH,
                12,
                FetchTopic,
                topic=topic,
                partitions=tuple(
                    msg(
                        ApiKey.FETCH,
                        12,
                        FetchPartition,
                        partition=p,
                        current_leader_epoch=-1,
                        fetch_offset=offset,
                        last_fetched_epoch=-1,
                        log_start_offset=-1,
                        partition_max_bytes=max_bytes,
                    )
                    for p, offset in offsets.items()
                ),
            ),
        ),
        forgotten_topics_data=(),
        rack_id="",
    )


def list_offsets(topic: str, timestamps: dict[int, int]) -> Builder:
    return lambda v: msg(
        ApiKey.LIST_OFFSETS,
        9,
        ListOffsetsRequest,
        replica_id=-1,
        isolation_level=0,
        topics=(
            msg(
                ApiKey.LIST_OFFSETS,
                9,
                ListOffsetsTopic,
                name=topic,
                partitions=tuple(
                    msg(
                        ApiKey.LIST_OFFSETS,
                        9,
                        ListOffsetsPartition,
                        partition_index=p,
                        current_leader_epoch=-1,
                        timestamp=ts,
                    )
                    for p, ts in timestamps.items()
                ),
            ),
        ),
    )


def init_producer_id(v: Vars) -> Any:
    return msg(
        ApiKey.INIT_PRODUCER_ID,
        4,
        InitProducerIdRequest,
        transactional_id=None,
        transaction_timeout=timedelta_ms(60_000),
        producer_id=v.get("pid", -1),
        producer_epoch=v.get("epoch", -1),
    )


def init_transactional(transactional_id: str, timeout_ms: int) -> Builder:
    return lambda v: msg(
        ApiKey.INIT_PRODUCER_ID,
        4,
        InitProducerIdRequest,
        transactional_id=transactional_id,
        transaction_timeout=timedelta_ms(timeout_ms),
        producer_id=-1,
        producer_epoch=-1,
    )


def producer_ids_ready() -> Step:
    """Waits until the broker allocates producer ids: KRaft Kafka takes a block of them from
    its controller first, answering COORDINATOR_LOAD_IN_PROGRESS meanwhile."""
    return Step(
        "wait producer ids", init_producer_id, compare=False,
        until=lambda r: int(r.error_code) not in RETRIABLE_COORDINATOR,
    )  # fmt: skip


def keep_producer(v: Vars, resp: Any) -> None:
    v["old_epoch"] = v.get("epoch")
    v["pid"] = int(resp.producer_id)
    v["epoch"] = int(resp.producer_epoch)


def idempotent_batch(
    sequence: int, count: int = 1, epoch_key: str = "epoch"
) -> Callable[[Vars], bytes]:
    return lambda v: make_batch(
        [(None, b"v%d" % i) for i in range(count)],
        producer_id=v["pid"],
        producer_epoch=v[epoch_key],
        base_sequence=sequence,
    )


def delete_topics(*names: str | None, ids: tuple[uuid.UUID, ...] = ()) -> Builder:
    return lambda v: msg(
        ApiKey.DELETE_TOPICS,
        6,
        DeleteTopicsRequest,
        topics=tuple(
            msg(ApiKey.DELETE_TOPICS, 6, DeleteTopicState, name=n, topic_id=uuid.UUID(int=0))
            for n in names
        )
        + tuple(msg(ApiKey.DELETE_TOPICS, 6, DeleteTopicState, name=None, topic_id=i) for i in ids),
        timeout=timedelta_ms(30_000),
    )


def create_partitions(*counts: tuple[str, int], validate_only: bool = False) -> Builder:
    return lambda v: msg(
        ApiKey.CREATE_PARTITIONS,
        3,
        CreatePartitionsRequest,
        topics=tuple(
            msg(
                ApiKey.CREATE_PARTITIONS,
                3,
                CreatePartitionsTopic,
                name=n,
                count=c,
                assignments=None,
            )
            for n, c in counts
        ),
        timeout=timedelta_ms(30_000),
        validate_only=validate_only,
    )


TOPIC_RESOURCE = 2
BROKER_RESOURCE = 4


def describe_configs(
    resources: tuple[tuple[int, str | Callable[[Vars], str], tuple[str, ...] | None], ...],
    synonyms: bool = True,
) -> Builder:
    return lambda v: msg(
        ApiKey.DESCRIBE_CONFIGS,
        4,
        DescribeConfigsRequest,
        resources=tuple(
            msg(
                ApiKey.DESCRIBE_CONFIGS,
                4,
                DescribeConfigsResource,
                resource_type=kind,
                resource_name=resolve(name, v),
                configuration_keys=keys,
            )
            for kind, name, keys in resources
        ),
        include_synonyms=synonyms,
        include_documentation=False,
    )


SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3


def alter_configs(
    resources: tuple[tuple[int, str, tuple[tuple[str, int, str | None], ...]], ...],
    validate_only: bool = False,
) -> Builder:
    return lambda v: msg(
        ApiKey.INCREMENTAL_ALTER_CONFIGS,
        1,
        IncrementalAlterConfigsRequest,
        resources=tuple(
            msg(
                ApiKey.INCREMENTAL_ALTER_CONFIGS,
                1,
                AlterConfigsResource,
                resource_type=kind,
                resource_name=name,
                configs=tuple(
                    msg(
                        ApiKey.INCREMENTAL_ALTER_CONFIGS,
                        1,
                        AlterableConfig,
                        name=key,
                        config_operation=op,
                        value=value,
                    )
                    for key, op, value in configs
                ),
            )
            for kind, name, configs in resources
        ),
        validate_only=validate_only,
    )


def keep_node_id(v: Vars, resp: Any) -> None:
    """The node id of the broker this connection reached (a single-node cluster's only one)."""
    v["node"] = str(resp.brokers[0].node_id)


def node_id(v: Vars) -> str:
    return str(v["node"])


def api_versions(v: Vars) -> Any:
    return ApiVersionsRequest(client_software_name="shoal-diff", client_software_version="1.0")
