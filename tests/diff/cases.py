"""The request sequences of the differential suite, as data plus small builders.

A `Case` is a sequence of `Step`s sent in order on one connection to one broker, then the same
sequence to the other. A step builds its request from `Vars`, the case's state on that broker
(the case's topic names, and ids an earlier answer gave: member ids, generations, producer ids),
so each broker gets requests that name its own ids. Steps with `compare=False` only prepare
(wait for a topic's leader, for the group coordinator); every other answer is diffed.

Versions are ones both brokers serve, the newest a classic client sends where that keeps topic
names on the wire (Fetch v12, not v13+ with topic ids).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
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
from kio.schema.find_coordinator.v4.request import FindCoordinatorRequest
from kio.schema.heartbeat.v4.request import HeartbeatRequest
from kio.schema.incremental_alter_configs.v1.request import (
    AlterableConfig,
    AlterConfigsResource,
    IncrementalAlterConfigsRequest,
)
from kio.schema.init_producer_id.v4.request import InitProducerIdRequest
from kio.schema.join_group.v9.request import JoinGroupRequest, JoinGroupRequestProtocol
from kio.schema.leave_group.v5.request import LeaveGroupRequest, MemberIdentity
from kio.schema.list_offsets.v9.request import (
    ListOffsetsPartition,
    ListOffsetsRequest,
    ListOffsetsTopic,
)
from kio.schema.metadata.v12.request import MetadataRequest, MetadataRequestTopic
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
from kio.schema.produce.v9.request import PartitionProduceData, ProduceRequest, TopicProduceData
from kio.schema.sync_group.v5.request import SyncGroupRequest, SyncGroupRequestAssignment

from shoal.protocol.apis import ApiKey
from shoal.protocol.messages import requests, timedelta_ms
from tests.diff.compare import Ignore
from tests.unit.batchgen import make_batch

Vars = dict[str, Any]
Builder = Callable[[Vars], Any]

NOT_LEADER_OR_FOLLOWER = 6
# Answers of a coordinator still starting: not available, loading, not (yet) the coordinator.
RETRIABLE_COORDINATOR = frozenset({14, 15, 16})
# Kafka's max.message.bytes default, which Shoal's --message-bytes-max copies.
MAX_MESSAGE_BYTES = 1_048_588
SESSION_TIMEOUT_MS = 10_000
TIMESTAMPS = (1_700_000_001_000, 1_700_000_003_000, 1_700_000_002_000)


@dataclass(frozen=True)
class Step:
    label: str
    build: Builder
    # Saves ids of the answer into the case's Vars for later steps.
    keep: Callable[[Vars, Any], None] | None = None
    compare: bool = True
    # Resend until the answer satisfies this (a broker still creating a topic): prepare steps.
    until: Callable[[Any], bool] | None = None


@dataclass(frozen=True)
class Case:
    name: str
    steps: tuple[Step, ...]
    # Paths this case leaves out of its comparison besides compare.IGNORE, each with its reason.
    ignore: tuple[Ignore, ...] = ()

    def topic(self, suffix: str = "") -> str:
        return f"diff-{self.name}{suffix}".replace("_", "-")


def msg(api: ApiKey, version: int, cls: type[Any], **fields: Any) -> Any:
    return requests(api, version).make(cls, **fields)


# --- builders ------------------------------------------------------------------------------


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


GROUP_KEY, TRANSACTION_KEY = 0, 1


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


Value = Callable[[Vars], Any]


def _val(x: Any, v: Vars) -> Any:
    return x(v) if callable(x) else x


def sync(group: str, member_id: Any, gen: Any, assign: bool = True) -> Builder:
    return lambda v: msg(
        ApiKey.SYNC_GROUP,
        5,
        SyncGroupRequest,
        group_id=group,
        generation_id=_val(gen, v),
        member_id=_val(member_id, v),
        group_instance_id=None,
        protocol_type="consumer",
        protocol_name="range",
        assignments=(
            (
                msg(
                    ApiKey.SYNC_GROUP,
                    5,
                    SyncGroupRequestAssignment,
                    member_id=_val(member_id, v),
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
        generation_id=_val(gen, v),
        member_id=_val(member_id, v),
        group_instance_id=None,
    )


def commit(group: str, member_id: Any, gen: Any, topic: str, offset: int) -> Builder:
    return lambda v: msg(
        ApiKey.OFFSET_COMMIT,
        8,
        OffsetCommitRequest,
        group_id=group,
        generation_id_or_member_epoch=_val(gen, v),
        member_id=_val(member_id, v),
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
                member_id=_val(m, v),
                group_instance_id=None,
                reason=None,
            )
            for m in member_ids
        ),
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
                resource_name=_val(name, v),
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


# --- the cases -----------------------------------------------------------------------------


def stamped_batch(from_now_ms: int) -> Callable[[Vars], bytes]:
    """A one-record batch timestamped `from_now_ms` from when it is sent."""
    return lambda v: make_batch([(None, b"t")], timestamp_ms=int(time.time() * 1000) + from_now_ms)


def _bad_crc(batch: bytes) -> bytes:
    out = bytearray(batch)
    out[17] ^= 0xFF  # the first byte of the CRC-32C
    return bytes(out)


def _cases() -> list[Case]:
    out: list[Case] = []

    def case(name: str, *steps: Step | tuple[Step, ...], ignore: tuple[Ignore, ...] = ()) -> None:
        flat: list[Step] = []
        for s in steps:
            flat.extend(s if isinstance(s, tuple) else (s,))
        out.append(Case(name, tuple(flat), ignore))

    case(
        "api_versions",
        Step("api versions v3", api_versions),
        ignore=(Ignore("*: api_keys*", "compared range by range with expected.VERSIONS"),),
    )

    # Metadata
    case(
        "metadata_unknown_topic",
        Step("unknown, no auto-create", metadata("diff-never-created")),
    )
    case(
        "metadata_invalid_topic",
        Step("space in name", metadata("bad name", auto_create=True)),
        Step("dot-dot", metadata("..", auto_create=True)),
        Step("250 characters", metadata("x" * 250, auto_create=True)),
    )
    t = "diff-metadata-auto"
    case(
        "metadata_auto_create",
        Step("first ask creates", metadata(t, auto_create=True)),
        topic_ready(t, 1),
        Step("created", metadata(t)),
    )

    # Produce
    t = "diff-produce"
    good = make_batch([(b"k", b"v")])
    case(
        "produce_errors",
        setup_topic(t, 2),
        Step("good batch", produce(t, 0, good)),
        Step("bad crc", produce(t, 0, _bad_crc(good))),
        Step(
            "batch too large",
            produce(t, 0, make_batch([(None, b"x" * (MAX_MESSAGE_BYTES + 100))])),
        ),
        Step("acks=2", produce(t, 0, good, acks=2)),
        Step("unknown partition", produce(t, 7, good)),
        Step("unknown topic", produce("diff-produce-none", 0, good)),
    )
    t = "diff-idempotent"
    case(
        "produce_idempotent",
        setup_topic(t),
        producer_ids_ready(),
        Step("init producer id", init_producer_id, keep=keep_producer),
        Step("sequence 0", produce(t, 0, idempotent_batch(0, 2))),
        Step("duplicate of sequence 0", produce(t, 0, idempotent_batch(0, 2))),
        Step("gap: sequence 5", produce(t, 0, idempotent_batch(5))),
        Step("next: sequence 2", produce(t, 0, idempotent_batch(2))),
        Step("bump epoch", init_producer_id, keep=keep_producer),
        Step("stale epoch", produce(t, 0, idempotent_batch(3, epoch_key="old_epoch"))),
        Step("new epoch, sequence 0", produce(t, 0, idempotent_batch(0))),
        Step("new epoch, sequence 3", produce(t, 0, idempotent_batch(3))),
        Step("fetch all", fetch(t, {0: 0})),
        ignore=(
            Ignore(
                "*records[*].crc",
                "a batch's CRC covers its producer id, which each "
                "cluster allocates; the other header fields are compared",
            ),
        ),
    )

    # Timestamps: LogAppendTime, and CreateTime bounds (checked against each broker's clock)
    hour_ms = 3_600_000
    case(
        "produce_timestamps",
        setup_topic("diff-ts-log", configs={"message.timestamp.type": "LogAppendTime"}),
        setup_topic("diff-ts-create", configs={"message.timestamp.before.max.ms": str(hour_ms)}),
        Step("log append time", produce("diff-ts-log", 0, make_batch([(None, b"a")]))),
        Step("stamped batch", fetch("diff-ts-log", {0: 0})),
        Step("two hours ahead", produce("diff-ts-create", 0, stamped_batch(2 * hour_ms))),
        Step("two hours back", produce("diff-ts-create", 0, stamped_batch(-2 * hour_ms))),
        Step("a minute ahead", produce("diff-ts-create", 0, stamped_batch(60_000))),
        Step("create time kept", fetch("diff-ts-create", {0: 0})),
        ignore=(
            Ignore("stamped batch: *records[*].max_timestamp", "the broker's clock"),
            Ignore("stamped batch: *records[*].crc", "covers the broker's clock"),
            Ignore("create time kept: *records[*].*_timestamp", "the test's clock"),
            Ignore("create time kept: *records[*].crc", "covers the test's clock"),
        ),
    )

    # InitProducerId with a transactional id: its timeout is checked first (Kafka's
    # transaction.max.timeout.ms, 15 minutes), before any coordinator work.
    txn = "diff-txn"
    case(
        "init_producer_id_transactional",
        coordinator_found("find transaction coordinator", txn, TRANSACTION_KEY),
        Step(
            "timeout above the maximum", init_transactional(txn, 2**31 - 1),
            until=lambda r: int(r.error_code) not in RETRIABLE_COORDINATOR,
        ),
        Step("timeout zero", init_transactional(txn, 0)),
    )  # fmt: skip

    # Fetch
    t = "diff-fetch"
    three = make_batch([(None, b"a"), (None, b"b"), (None, b"c")])
    case(
        "fetch_log_ends",
        setup_topic(t),
        Step("empty log at 0", fetch(t, {0: 0})),
        Step("empty log at 1", fetch(t, {0: 1})),
        Step("produce 3", produce(t, 0, three)),
        Step("from 0", fetch(t, {0: 0})),
        Step("from 1 (inside a batch)", fetch(t, {0: 1})),
        Step("at the end", fetch(t, {0: 3})),
        Step("past the end", fetch(t, {0: 4})),
        Step("negative", fetch(t, {0: -5})),
        Step("unknown partition", fetch(t, {3: 0})),
        Step("unknown topic", fetch("diff-fetch-none", {0: 0})),
    )

    # ListOffsets
    t = "diff-list-offsets"
    stamped = [make_batch([(None, b"r")], timestamp_ms=ts) for ts in TIMESTAMPS]
    case(
        "list_offsets_specials",
        setup_topic(t),
        Step("empty: latest, earliest", list_offsets(t, {0: -1})),
        Step("empty: earliest", list_offsets(t, {0: -2})),
        Step("empty: max timestamp", list_offsets(t, {0: -3})),
        *(
            Step(f"produce ts {ts}", produce(t, 0, b))
            for ts, b in zip(TIMESTAMPS, stamped, strict=True)
        ),
        Step("latest", list_offsets(t, {0: -1})),
        Step("earliest", list_offsets(t, {0: -2})),
        Step("max timestamp", list_offsets(t, {0: -3})),
        Step("by timestamp before all", list_offsets(t, {0: 1})),
        Step("by timestamp between", list_offsets(t, {0: TIMESTAMPS[0] + 500})),
        Step("by exact timestamp", list_offsets(t, {0: TIMESTAMPS[2]})),
        Step("by timestamp after all", list_offsets(t, {0: TIMESTAMPS[1] + 1})),
        Step("unknown partition", list_offsets(t, {4: -1})),
        Step("earliest local -4", list_offsets(t, {0: -4})),
        Step("latest tiered -5", list_offsets(t, {0: -5})),
        Step("earliest pending upload -6 (v11 only)", list_offsets(t, {0: -6})),
        Step("unknown special -7", list_offsets(t, {0: -7})),
        Step("unknown special -1000", list_offsets(t, {0: -1000})),
    )

    # Group coordination
    g = "diff-group"
    t = "diff-group-topic"
    case(
        "group_errors",
        setup_topic(t),
        find_coordinator(g),
        Step("join, unknown member id", join(g, "no-such-member")),
        Step("join, session timeout too small", join(g, "", session_ms=1)),
        Step("join, empty group id", join("", "")),
        Step("sync, unknown member", sync(g, "no-such-member", 1)),
        Step("heartbeat, unknown group", heartbeat("diff-group-none", "m", 1)),
        Step("join, member id required", join(g, ""), keep=keep_member),
        Step("join with the given id", join(g, member), keep=keep_member),
        Step("sync, wrong generation", sync(g, member, generation(1))),
        Step("sync, unknown member", sync(g, "no-such-member", generation())),
        Step("sync", sync(g, member, generation())),
        Step("heartbeat, wrong generation", heartbeat(g, member, generation(1))),
        Step("heartbeat, unknown member", heartbeat(g, "no-such-member", generation())),
        Step("heartbeat", heartbeat(g, member, generation())),
        Step("commit, wrong generation", commit(g, member, generation(1), t, 1)),
        Step("commit, unknown member", commit(g, "no-such-member", generation(), t, 1)),
        Step("commit, unknown topic", commit(g, member, generation(), "diff-group-none", 1)),
        Step("commit", commit(g, member, generation(), t, 1)),
        Step("offset fetch", offset_fetch(g, t)),
        Step("leave, unknown member", leave(g, "no-such-member")),
        Step("leave, one known one unknown", leave(g, member, "no-such-member")),
        Step("heartbeat after leave", heartbeat(g, member, generation())),
        Step("commit after leave, generation -1", commit("diff-group", "", -1, t, 2)),
        Step("offset fetch after leave", offset_fetch(g, t)),
    )

    # Topic administration
    t = "diff-create"
    case(
        "create_topics_validation",
        Step(
            "one request, each topic wrong in its own way",
            create_topics(
                creatable("bad name"),
                creatable("."),
                creatable("y" * 250),
                creatable(f"{t}-zero", partitions=0),
                creatable(f"{t}-negative", partitions=-5),
                creatable(f"{t}-rf0", replication=0),
                creatable(f"{t}-rf3", replication=3),
                creatable(f"{t}-dup"),
                creatable(f"{t}-dup"),
                creatable(f"{t}-bad-config", configs={"retention.ms": "soon"}),
                creatable(f"{t}-unknown-config", configs={"no.such.config": "1"}),
            ),
        ),
        Step("validate only", create_topics(creatable(f"{t}-v", 3), validate_only=True)),
        Step("validated topic was not created", metadata(f"{t}-v")),
        Step("default partitions", create_topics(creatable(f"{t}-default", -1, -1))),
        Step("create", create_topics(creatable(t, 2))),
        Step("already exists", create_topics(creatable(t, 2))),
    )
    t = "diff-delete"
    case(
        "delete_topics_validation",
        setup_topic(t),
        Step("unknown name", delete_topics("diff-delete-none")),
        Step("unknown id", delete_topics(ids=(uuid.UUID("00000000-0000-0000-0000-00000000abcd"),))),
        Step("delete", delete_topics(t)),
        Step("delete again", delete_topics(t)),
    )
    t = "diff-partitions"
    case(
        "create_partitions_validation",
        setup_topic(t, 2),
        Step("fewer", create_partitions((t, 1))),
        Step("same", create_partitions((t, 2))),
        Step("unknown topic", create_partitions(("diff-partitions-none", 3))),
        Step("duplicate topic", create_partitions((t, 3), (t, 4))),
        Step("validate only", create_partitions((t, 3), validate_only=True)),
        topic_ready(t, 2),
        Step("more", create_partitions((t, 4))),
        topic_ready(t, 4),
    )

    # Configs
    t = "diff-configs"
    keys = (
        "cleanup.policy",
        "retention.ms",
        "retention.bytes",
        "max.message.bytes",
        "segment.bytes",
        "compression.type",
        "message.timestamp.type",
        "min.insync.replicas",
        "remote.storage.enable",
        "segment.jitter.ms",
        "delete.retention.ms",
    )
    case(
        "describe_configs",
        setup_topic(t, configs={"retention.ms": "123456", "cleanup.policy": "compact"}),
        Step("topic, chosen keys, synonyms", describe_configs(((TOPIC_RESOURCE, t, keys),))),
        Step("topic, every key, synonyms", describe_configs(((TOPIC_RESOURCE, t, None),))),
        Step(
            "topic, unknown key",
            describe_configs(((TOPIC_RESOURCE, t, ("no.such.config",)),)),
        ),
        Step(
            "unknown topic",
            describe_configs(((TOPIC_RESOURCE, "diff-configs-none", ("retention.ms",)),)),
        ),
    )
    case(
        "describe_configs_broker",
        Step("node id", metadata(), compare=False, keep=keep_node_id),
        Step(
            "broker, chosen keys",
            describe_configs(
                (
                    (
                        BROKER_RESOURCE,
                        node_id,
                        (
                            "log.retention.ms",
                            "log.retention.hours",
                            "log.retention.bytes",
                            "log.retention.check.interval.ms",
                            "message.max.bytes",
                            "num.partitions",
                            "auto.create.topics.enable",
                            "log.cleanup.policy",
                            "default.replication.factor",
                            "min.insync.replicas",
                            "compression.type",
                            "socket.request.max.bytes",
                        ),
                    ),
                )
            ),
        ),
        ignore=(Ignore("*resource_name", "each broker is described by its own node id"),),
    )
    t = "diff-alter"
    case(
        "incremental_alter_configs_errors",
        setup_topic(t),
        Step(
            "unknown topic",
            alter_configs(((TOPIC_RESOURCE, "diff-alter-none", (("retention.ms", SET, "1000"),)),)),
        ),
        Step(
            "unknown config", alter_configs(((TOPIC_RESOURCE, t, (("no.such.config", SET, "1"),)),))
        ),
        Step("bad value", alter_configs(((TOPIC_RESOURCE, t, (("retention.ms", SET, "soon"),)),))),
        Step(
            "append to a non-list",
            alter_configs(((TOPIC_RESOURCE, t, (("retention.ms", APPEND, "1"),)),)),
        ),
        Step(
            "same key twice",
            alter_configs(
                ((TOPIC_RESOURCE, t, (("retention.ms", SET, "1"), ("retention.ms", SET, "2"))),)
            ),
        ),
        Step(
            "validate only",
            alter_configs(
                ((TOPIC_RESOURCE, t, (("retention.ms", SET, "5000"),)),), validate_only=True
            ),
        ),
        Step("not applied", describe_configs(((TOPIC_RESOURCE, t, ("retention.ms",)),))),
        Step("set", alter_configs(((TOPIC_RESOURCE, t, (("retention.ms", SET, "7000"),)),))),
        Step("applied", describe_configs(((TOPIC_RESOURCE, t, ("retention.ms",)),))),
        Step("delete", alter_configs(((TOPIC_RESOURCE, t, (("retention.ms", DELETE, None),)),))),
        Step("back to default", describe_configs(((TOPIC_RESOURCE, t, ("retention.ms",)),))),
    )
    return out


CASES: tuple[Case, ...] = tuple(_cases())
BY_NAME: dict[str, Case] = {c.name: c for c in CASES}
assert len(BY_NAME) == len(CASES), "case names must be unique"
