"""The request sequences of the differential suite against Apache Kafka, as data: one `Case`
per behaviour compared, built from the steps of `requests.py` and `group_requests.py`."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from tests.diff.compare import Ignore
from tests.diff.group_requests import (
    TRANSACTION_KEY,
    commit,
    coordinator_found,
    find_coordinator,
    generation,
    heartbeat,
    join,
    keep_member,
    leave,
    member,
    offset_fetch,
    sync,
)
from tests.diff.requests import (
    APPEND,
    BROKER_RESOURCE,
    DELETE,
    SET,
    TOPIC_RESOURCE,
    alter_configs,
    api_versions,
    creatable,
    create_partitions,
    create_topics,
    delete_topics,
    describe_configs,
    fetch,
    idempotent_batch,
    init_producer_id,
    init_transactional,
    keep_node_id,
    keep_producer,
    list_offsets,
    metadata,
    node_id,
    produce,
    producer_ids_ready,
    setup_topic,
    topic_ready,
)
from tests.diff.steps import RETRIABLE_COORDINATOR, Case, Step, Vars
from tests.unit.batchgen import make_batch

# Kafka's max.message.bytes default, which Shoal's --message-bytes-max copies.
MAX_MESSAGE_BYTES = 1_048_588
TIMESTAMPS = (1_700_000_001_000, 1_700_000_003_000, 1_700_000_002_000)


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
