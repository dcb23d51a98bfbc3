"""Admin API handlers called directly with decoded kio requests, over a fake and a SQLite store."""

from __future__ import annotations

import datetime
import io
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any, cast

import pytest
from kio.index import load_request_schema
from kio.schema.errors import ErrorCode
from kio.serial import entity_reader, entity_writer

from shoal.handlers.base import REGISTRY, RequestContext
from shoal.handlers.cluster import handle_describe_cluster
from shoal.handlers.config_defaults import (
    TOPIC_CONFIGS,
    ConfigSource,
    list_append,
    list_subtract,
    validate_topic_config,
)
from shoal.handlers.configs import (
    handle_alter_configs,
    handle_describe_configs,
    handle_incremental_alter_configs,
)
from shoal.handlers.services import Services
from shoal.handlers.topics_admin import (
    handle_create_partitions,
    handle_create_topics,
    handle_delete_topics,
)
from shoal.meta.sqlite import SqliteMetadataStore
from shoal.meta.store import (
    InvalidPartitionsError,
    MetadataStore,
    TopicExistsError,
    TopicInfo,
    UnknownTopicError,
)
from shoal.protocol.messages import keep_fields
from shoal.settings import Settings
from tests.unit.handler_services import handler_services

CREATE, DELETE, GROW, DESCRIBE, ALTER, INC_ALTER, CLUSTER = 19, 20, 37, 32, 33, 44, 60
TOPIC, BROKER = 2, 4
VERSIONS = {CREATE: (2, 7), DELETE: (1, 6), GROW: (0, 3), DESCRIBE: (1, 4), ALTER: (0, 2),
            INC_ALTER: (0, 1), CLUSTER: (0, 2)}  # fmt: skip


class FakeStore:
    """The topic half of MetadataStore, in a dict."""

    def __init__(self) -> None:
        self.topics: dict[str, TopicInfo] = {}

    async def create_topic(self, name: str, partitions: int, configs: dict[str, str]) -> TopicInfo:
        if name in self.topics:
            raise TopicExistsError(name)
        info = TopicInfo(name, uuid.uuid4(), partitions, dict(configs))
        self.topics[name] = info
        return info

    async def delete_topic(self, name: str, topic_id: uuid.UUID | None = None) -> None:
        info = self.topics.get(name)
        if info is None or topic_id not in (None, info.topic_id):
            raise UnknownTopicError(name)
        del self.topics[name]

    async def get_topic_by_id(self, topic_id: uuid.UUID) -> TopicInfo | None:
        return next((t for t in self.topics.values() if t.topic_id == topic_id), None)

    async def get_topic(self, name: str) -> TopicInfo | None:
        return self.topics.get(name)

    async def list_topics(self) -> list[TopicInfo]:
        return list(self.topics.values())

    async def create_partitions(self, name: str, total: int) -> TopicInfo:
        info = self._get(name)
        if total <= info.partitions:
            raise InvalidPartitionsError(name)
        return self._put(replace(info, partitions=total))

    async def set_topic_configs(self, name: str, configs: dict[str, str | None]) -> TopicInfo:
        merged = dict(self._get(name).configs)
        for key, value in configs.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        return self._put(replace(self._get(name), configs=merged))

    async def replace_topic_configs(self, name: str, configs: dict[str, str]) -> TopicInfo:
        return self._put(replace(self._get(name), configs=dict(configs)))

    def _get(self, name: str) -> TopicInfo:
        if name not in self.topics:
            raise UnknownTopicError(name)
        return self.topics[name]

    def _put(self, info: TopicInfo) -> TopicInfo:
        self.topics[info.name] = info
        return info


class ForgettingReader:
    """Records which topics the read path was told to forget (its caches)."""

    def __init__(self) -> None:
        self.forgotten: list[str] = []

    def forget_topic(self, topic: str) -> None:
        self.forgotten.append(topic)


@pytest.fixture(params=["fake", "sqlite"])
async def svc(request: pytest.FixtureRequest) -> AsyncIterator[Services]:
    meta: Any
    if request.param == "fake":
        meta = FakeStore()
    else:
        meta = SqliteMetadataStore(":memory:")
        await meta.start()
    store = cast(MetadataStore, meta)
    settings = Settings(advertised_host="agent-1.example", kafka_port=19092, az="zone-a",
                        default_partitions=3, node_id=7)  # fmt: skip
    yield handler_services(settings, store, reader=ForgettingReader())
    if request.param == "sqlite":
        await meta.close()


# -- building requests for any version ---------------------------------------------------------


def _keep(cls: type, kwargs: dict[str, Any]) -> Any:
    return cls(**keep_fields(cls, kwargs))


def request(api_key: int, version: int, **kwargs: Any) -> Any:
    kwargs.setdefault("timeout", datetime.timedelta(seconds=5))
    return _keep(load_request_schema(api_key, version), kwargs)


def part(api_key: int, version: int, class_name: str, **kwargs: Any) -> Any:
    module = sys.modules[load_request_schema(api_key, version).__module__]
    return _keep(getattr(module, class_name), kwargs)


def ctx(api_key: int, version: int) -> RequestContext:
    return RequestContext(api_key, version, 1, "test", "127.0.0.1:1")


def new_topic(v: int, name: str, partitions: int = -1, rf: int = -1, **kw: Any) -> Any:
    configs = tuple(
        part(CREATE, v, "CreatableTopicConfig", name=k, value=val)
        for k, val in kw.pop("configs", {}).items()
    )
    kw.setdefault("assignments", ())
    return part(CREATE, v, "CreatableTopic", name=name, num_partitions=partitions,
                replication_factor=rf, configs=configs, **kw)  # fmt: skip


async def create(svc: Services, *topics: Any, v: int = 7, validate_only: bool = False) -> Any:
    req = request(CREATE, v, topics=topics, validate_only=validate_only)
    return await handle_create_topics(svc, ctx(CREATE, v), req)


def roundtrip(response: Any) -> None:
    """The response must encode, and decode back to an equal object."""
    cls = type(response)
    buffer = io.BytesIO()
    entity_writer(cls)(buffer, response)
    decoded, size = entity_reader(cls)(buffer.getvalue(), 0)
    assert size == len(buffer.getvalue())
    assert decoded == response


# -- registration ---------------------------------------------------------------------------------


def test_registry_ranges_match_kio() -> None:
    for key, (low, high) in VERSIONS.items():
        spec = REGISTRY[key]
        assert (spec.min_version, spec.max_version) == (low, high)


# -- CreateTopics ---------------------------------------------------------------------------------


@pytest.mark.parametrize("v", range(2, 8))
async def test_create_topic_every_version(svc: Services, v: int) -> None:
    resp = await create(svc, new_topic(v, "orders", 4, 3, configs={"retention.ms": "1000"}), v=v)
    (result,) = resp.topics
    assert result.error_code == ErrorCode.none
    info = await svc.meta.get_topic("orders")
    assert info is not None and info.partitions == 4 and info.configs == {"retention.ms": "1000"}
    if v >= 5:
        assert result.num_partitions == 4 and result.replication_factor == 1
        by_name = {c.name: c for c in result.configs}
        assert by_name["retention.ms"].value == "1000"
        assert by_name["retention.ms"].config_source == ConfigSource.TOPIC_CONFIG
        assert by_name["cleanup.policy"].config_source == ConfigSource.DEFAULT_CONFIG
    if v >= 7:
        assert result.topic_id == info.topic_id
    roundtrip(resp)


async def test_create_default_partitions_and_exists(svc: Services) -> None:
    await svc.topics.get("t")  # cache a miss, which the create must invalidate
    (ok,) = (await create(svc, new_topic(7, "t"))).topics
    assert ok.error_code == ErrorCode.none and ok.num_partitions == 3
    cached = await svc.topics.get("t")
    assert cached is not None and cached.partitions == 3
    (again,) = (await create(svc, new_topic(7, "t", 1))).topics
    assert again.error_code == ErrorCode.topic_already_exists
    assert again.num_partitions == -1


@pytest.mark.parametrize(
    ("topic_kw", "code"),
    [
        ({"name": "bad name"}, ErrorCode.invalid_topic_exception),
        ({"name": ".."}, ErrorCode.invalid_topic_exception),
        ({"name": "x" * 250}, ErrorCode.invalid_topic_exception),
        ({"name": "t", "partitions": 0}, ErrorCode.invalid_partitions),
        ({"name": "t", "partitions": -5}, ErrorCode.invalid_partitions),
        ({"name": "t", "partitions": 10_001}, ErrorCode.invalid_partitions),
        ({"name": "t", "rf": 0}, ErrorCode.invalid_replication_factor),
        ({"name": "t", "configs": {"no.such.config": "1"}}, ErrorCode.invalid_config),
        ({"name": "t", "configs": {"retention.ms": "soon"}}, ErrorCode.invalid_config),
        ({"name": "t", "configs": {"cleanup.policy": "delete,shred"}}, ErrorCode.invalid_config),
        ({"name": "t", "configs": {"retention.ms": None}}, ErrorCode.invalid_config),
    ],
)
async def test_create_rejects(svc: Services, topic_kw: dict[str, Any], code: ErrorCode) -> None:
    (result,) = (await create(svc, new_topic(7, **topic_kw))).topics
    assert result.error_code == code
    assert result.error_message
    assert await svc.meta.list_topics() == []


async def test_create_validate_only_and_duplicates(svc: Services) -> None:
    (dry,) = (await create(svc, new_topic(7, "dry", 2), validate_only=True)).topics
    assert dry.error_code == ErrorCode.none and dry.num_partitions == 2
    assert dry.topic_id is None  # kio's spelling of the all-zero id
    assert await svc.meta.get_topic("dry") is None
    # As Kafka: a repeated name is answered once, after the others.
    other, dup = (await create(svc, new_topic(7, "d"), new_topic(7, "d"),
                               new_topic(7, "other"))).topics  # fmt: skip
    assert (other.name, other.error_code) == ("other", ErrorCode.none)
    assert (dup.name, dup.error_code) == ("d", ErrorCode.invalid_request)
    assert await svc.meta.get_topic("d") is None


async def test_create_refuses_colliding_names(svc: Services) -> None:
    await create(svc, new_topic(7, "metrics.cpu"))
    (clash,) = (await create(svc, new_topic(7, "metrics_cpu"))).topics
    assert clash.error_code == ErrorCode.invalid_topic_exception
    assert clash.error_message and "metrics.cpu" in clash.error_message
    (fine,) = (await create(svc, new_topic(7, "metrics.mem"))).topics
    assert fine.error_code == ErrorCode.none
    same_request = await create(svc, new_topic(7, "a.b"), new_topic(7, "a_b"))
    assert [t.error_code for t in same_request.topics] == [
        ErrorCode.none, ErrorCode.invalid_topic_exception]  # fmt: skip


async def test_create_with_assignments(svc: Services) -> None:
    assign = tuple(part(CREATE, 7, "CreatableReplicaAssignment", partition_index=i, broker_ids=(1,))
                   for i in range(2))  # fmt: skip
    (ok,) = (await create(svc, new_topic(7, "a", assignments=assign))).topics
    assert ok.error_code == ErrorCode.none and ok.num_partitions == 2
    (both,) = (await create(svc, new_topic(7, "b", 2, assignments=assign))).topics
    assert both.error_code == ErrorCode.invalid_request
    gap = (part(CREATE, 7, "CreatableReplicaAssignment", partition_index=1, broker_ids=(1,)),)
    (bad,) = (await create(svc, new_topic(7, "c", assignments=gap))).topics
    assert bad.error_code == ErrorCode.invalid_replica_assignment


# -- DeleteTopics ---------------------------------------------------------------------------------


@pytest.mark.parametrize("v", range(1, 7))
async def test_delete_by_name(svc: Services, v: int) -> None:
    (made,) = (await create(svc, new_topic(7, "gone"))).topics
    assert await svc.topics.get("gone") is not None
    if v >= 6:
        topics = tuple(part(DELETE, v, "DeleteTopicState", name=n, topic_id=uuid.UUID(int=0))
                       for n in ("gone", "never"))  # fmt: skip
        req = request(DELETE, v, topics=topics)
    else:
        req = request(DELETE, v, topic_names=("gone", "never"))
    resp = await handle_delete_topics(svc, ctx(DELETE, v), req)
    codes = {r.name: r.error_code for r in resp.responses}
    assert codes == {"gone": ErrorCode.none, "never": ErrorCode.unknown_topic_or_partition}
    if v >= 6:
        assert resp.responses[0].topic_id == made.topic_id
    assert await svc.meta.get_topic("gone") is None
    assert await svc.topics.get("gone") is None
    assert cast(ForgettingReader, svc.reader).forgotten == ["gone"]
    roundtrip(resp)


async def test_delete_by_id(svc: Services) -> None:
    (made,) = (await create(svc, new_topic(7, "by-id"))).topics
    missing = uuid.uuid4()
    topics = tuple(part(DELETE, 6, "DeleteTopicState", name=None, topic_id=i)
                   for i in (made.topic_id, missing))  # fmt: skip
    resp = await handle_delete_topics(svc, ctx(DELETE, 6), request(DELETE, 6, topics=topics))
    found, unknown = resp.responses
    assert found.error_code == ErrorCode.none and found.name == "by-id"
    assert found.topic_id == made.topic_id
    assert unknown.error_code == ErrorCode.unknown_topic_id and unknown.name is None
    assert await svc.meta.get_topic("by-id") is None
    roundtrip(resp)


async def test_delete_answers_a_repeated_name_or_id_once_after_the_others(svc: Services) -> None:
    (made,) = (await create(svc, new_topic(7, "twice-by-id"))).topics
    await create(svc, new_topic(7, "twice"), new_topic(7, "once"))
    zero = uuid.UUID(int=0)
    topics = tuple(part(DELETE, 6, "DeleteTopicState", name=n, topic_id=i) for n, i in (
        ("twice", zero), (None, made.topic_id), ("once", zero), ("twice", zero),
        (None, made.topic_id)))  # fmt: skip
    resp = await handle_delete_topics(svc, ctx(DELETE, 6), request(DELETE, 6, topics=topics))
    assert [(r.name, r.topic_id, r.error_code) for r in resp.responses] == [
        ("once", resp.responses[0].topic_id, ErrorCode.none),
        ("twice", None, ErrorCode.invalid_request),
        (None, made.topic_id, ErrorCode.invalid_request),
    ]
    # As Kafka: the repeated ones are refused, not deleted; the rest of the request is.
    assert await svc.meta.get_topic("twice") is not None
    assert await svc.meta.get_topic("twice-by-id") is not None
    assert await svc.meta.get_topic("once") is None


# -- CreatePartitions -----------------------------------------------------------------------------


def grow(v: int, name: str, count: int, assignments: Any = None) -> Any:
    return part(GROW, v, "CreatePartitionsTopic", name=name, count=count, assignments=assignments)


@pytest.mark.parametrize("v", range(0, 4))
async def test_create_partitions(svc: Services, v: int) -> None:
    await create(svc, new_topic(7, "g", 2))
    await svc.topics.get("g")
    topics = (grow(v, "g", 5), grow(v, "missing", 5))
    resp = await handle_create_partitions(
        svc, ctx(GROW, v), request(GROW, v, topics=topics, validate_only=False)
    )
    codes = [r.error_code for r in resp.results]
    assert codes == [ErrorCode.none, ErrorCode.unknown_topic_or_partition]
    cached = await svc.topics.get("g")
    assert cached is not None and cached.partitions == 5
    roundtrip(resp)


@pytest.mark.parametrize(
    ("count", "assignments", "code"),
    [(2, None, ErrorCode.invalid_partitions), (1, None, ErrorCode.invalid_partitions),
     (3, (), ErrorCode.invalid_replica_assignment), (3, None, ErrorCode.none)],
)  # fmt: skip
async def test_create_partitions_checks(
    svc: Services, count: int, assignments: Any, code: ErrorCode
) -> None:
    await create(svc, new_topic(7, "g", 2))
    req = request(GROW, 3, topics=(grow(3, "g", count, assignments),), validate_only=True)
    (result,) = (await handle_create_partitions(svc, ctx(GROW, 3), req)).results
    assert result.error_code == code
    info = await svc.meta.get_topic("g")
    assert info is not None and info.partitions == 2  # validate_only never changes anything


# -- DescribeConfigs ------------------------------------------------------------------------------


def describe_req(v: int, *resources: tuple[int, str, Any], synonyms: bool = False) -> Any:
    res = tuple(part(DESCRIBE, v, "DescribeConfigsResource", resource_type=t, resource_name=n,
                     configuration_keys=k) for t, n, k in resources)  # fmt: skip
    return request(DESCRIBE, v, resources=res, include_synonyms=synonyms,
                   include_documentation=True)  # fmt: skip


@pytest.mark.parametrize("v", range(1, 5))
async def test_describe_topic_configs(svc: Services, v: int) -> None:
    await create(svc, new_topic(7, "c", configs={"retention.ms": "5000"}))
    req = describe_req(v, (TOPIC, "c", None), (TOPIC, "c", ("retention.ms", "cleanup.policy")),
                       (TOPIC, "nope", None), synonyms=True)  # fmt: skip
    resp = await handle_describe_configs(svc, ctx(DESCRIBE, v), req)
    full, picked, missing = resp.results
    assert full.error_code == ErrorCode.none
    by_name = {c.name: c for c in full.configs}
    assert set(TOPIC_CONFIGS) <= set(by_name)
    retention = by_name["retention.ms"]
    assert (retention.value, retention.config_source) == ("5000", ConfigSource.TOPIC_CONFIG)
    # As Kafka: log.retention.ms has no default of its own, so no DEFAULT synonym follows.
    assert [(s.name, s.source) for s in retention.synonyms] == [("retention.ms", 1)]
    policy = by_name["cleanup.policy"]
    assert policy.config_source == ConfigSource.DEFAULT_CONFIG
    assert [(s.name, s.value, s.source) for s in policy.synonyms] == [
        ("log.cleanup.policy", "delete", 5)]  # fmt: skip
    assert by_name["remote.storage.enable"].synonyms == ()  # no broker key
    if v >= 3:
        assert retention.config_type == 5 and retention.documentation
    assert sorted(c.name for c in picked.configs) == ["cleanup.policy", "retention.ms"]
    assert missing.error_code == ErrorCode.unknown_topic_or_partition and missing.configs == ()
    roundtrip(resp)



async def test_retention_defaults_follow_the_agent_flags() -> None:
    """The retention job applies --log-retention-ms / --log-retention-bytes to topics without
    their own: DescribeConfigs reports those, for topics and for the broker."""
    meta = SqliteMetadataStore(":memory:")
    await meta.start()
    try:
        settings = Settings(node_id=7, log_retention_ms=1234, log_retention_bytes=5678)
        svc = handler_services(settings, cast(MetadataStore, meta), reader=ForgettingReader())
        await create(svc, new_topic(7, "plain"))
        req = describe_req(4, (TOPIC, "plain", ("retention.ms", "retention.bytes")),
                           (BROKER, "7", ("log.retention.ms", "log.retention.bytes")),
                           synonyms=True)  # fmt: skip
        topic, broker = (await handle_describe_configs(svc, ctx(DESCRIBE, 4), req)).results
        assert {c.name: c.value for c in topic.configs} == {
            "retention.ms": "1234", "retention.bytes": "5678"}  # fmt: skip
        assert {c.name: c.value for c in broker.configs} == {
            "log.retention.ms": "1234", "log.retention.bytes": "5678"}  # fmt: skip
        # Flags moved from Kafka's defaults are static broker configs, for topics too.
        by_name = {c.name: c for c in topic.configs}
        assert by_name["retention.bytes"].config_source == ConfigSource.STATIC_BROKER_CONFIG
        assert [(s.name, s.value, s.source) for s in by_name["retention.bytes"].synonyms] == [
            ("log.retention.bytes", "5678", 4), ("log.retention.bytes", "-1", 5)]  # fmt: skip
        assert [(s.name, s.source) for s in by_name["retention.ms"].synonyms] == [
            ("log.retention.ms", 4)]  # fmt: skip
    finally:
        await meta.close()

async def test_describe_broker_configs(svc: Services) -> None:
    req = describe_req(4, (BROKER, "7", None), (BROKER, "", None), (BROKER, "8", None),
                       (BROKER, "x", None), (3, "group", None))  # fmt: skip
    resp = await handle_describe_configs(svc, ctx(DESCRIBE, 4), req)
    mine, defaults, other, bad, group = resp.results
    values = {c.name: c.value for c in mine.configs}
    assert values["num.partitions"] == "3"
    assert values["broker.rack"] == "zone-a"
    assert values["message.max.bytes"] == str(svc.settings.message_bytes_max)
    assert values["auto.create.topics.enable"] == "true"
    assert all(c.read_only for c in mine.configs)
    assert defaults.error_code == ErrorCode.none and defaults.configs == ()
    assert other.error_code == bad.error_code == group.error_code == ErrorCode.invalid_request
    roundtrip(resp)


# -- AlterConfigs and IncrementalAlterConfigs ---------------------------------------------------


def alter_req(api_key: int, v: int, rtype: int, name: str, configs: tuple[Any, ...],
              validate_only: bool = False) -> Any:  # fmt: skip
    res = part(api_key, v, "AlterConfigsResource", resource_type=rtype, resource_name=name,
               configs=configs)  # fmt: skip
    return request(api_key, v, resources=(res,), validate_only=validate_only)


def entry(api_key: int, v: int, name: str, value: str | None, op: int = 0) -> Any:
    return part(api_key, v, "AlterableConfig", name=name, value=value, config_operation=op)


@pytest.mark.parametrize("v", range(0, 3))
async def test_alter_configs_replaces_whole_set(svc: Services, v: int) -> None:
    await create(svc, new_topic(7, "a", configs={"retention.ms": "1", "segment.ms": "99"}))
    req = alter_req(ALTER, v, TOPIC, "a", (entry(ALTER, v, "cleanup.policy", "compact"),))
    resp = await handle_alter_configs(svc, ctx(ALTER, v), req)
    assert resp.responses[0].error_code == ErrorCode.none
    info = await svc.meta.get_topic("a")
    assert info is not None and info.configs == {"cleanup.policy": "compact"}
    roundtrip(resp)


async def test_alter_configs_errors(svc: Services) -> None:
    await create(svc, new_topic(7, "a"))
    cases = [
        ((TOPIC, "a", (entry(ALTER, 2, "bogus", "1"),)), ErrorCode.invalid_config),
        ((TOPIC, "a", (entry(ALTER, 2, "retention.ms", "-7"),)), ErrorCode.invalid_config),
        ((TOPIC, "missing", ()), ErrorCode.unknown_topic_or_partition),
        ((BROKER, "7", (entry(ALTER, 2, "num.partitions", "9"),)), ErrorCode.invalid_request),
    ]
    for (rtype, name, configs), code in cases:
        req = alter_req(ALTER, 2, rtype, name, configs)
        resp = await handle_alter_configs(svc, ctx(ALTER, 2), req)
        assert resp.responses[0].error_code == code, (name, configs)
    dry = alter_req(ALTER, 2, TOPIC, "a", (entry(ALTER, 2, "retention.ms", "5"),), True)
    assert (await handle_alter_configs(svc, ctx(ALTER, 2), dry)).responses[0].error_code == 0
    info = await svc.meta.get_topic("a")
    assert info is not None and info.configs == {}


@pytest.mark.parametrize("v", range(0, 2))
async def test_incremental_alter(svc: Services, v: int) -> None:
    await create(svc, new_topic(7, "i", configs={"retention.ms": "1", "segment.ms": "99"}))
    ops = (entry(INC_ALTER, v, "retention.ms", "2000", 0),
           entry(INC_ALTER, v, "segment.ms", None, 1),
           entry(INC_ALTER, v, "cleanup.policy", "compact", 2))  # fmt: skip
    resp = await handle_incremental_alter_configs(
        svc, ctx(INC_ALTER, v), alter_req(INC_ALTER, v, TOPIC, "i", ops)
    )
    assert resp.responses[0].error_code == ErrorCode.none
    info = await svc.meta.get_topic("i")
    assert info is not None
    assert info.configs == {"retention.ms": "2000", "cleanup.policy": "delete,compact"}
    cached = await svc.topics.get("i")
    assert cached is not None and cached.configs == info.configs
    subtract = (entry(INC_ALTER, v, "cleanup.policy", "delete", 3),)
    await handle_incremental_alter_configs(
        svc, ctx(INC_ALTER, v), alter_req(INC_ALTER, v, TOPIC, "i", subtract)
    )
    info = await svc.meta.get_topic("i")
    assert info is not None and info.configs["cleanup.policy"] == "compact"
    roundtrip(resp)


@pytest.mark.parametrize(
    ("ops", "code"),
    [((("retention.ms", "5", 2),), ErrorCode.invalid_config),  # append to a non-list
     ((("cleanup.policy", "shred", 2),), ErrorCode.invalid_config),
     ((("nope", "1", 0),), ErrorCode.invalid_config),
     ((("retention.ms", None, 0),), ErrorCode.invalid_request),
     ((("retention.ms", "1", 0), ("retention.ms", "2", 0)), ErrorCode.invalid_request),
     ((("retention.ms", "1", 9),), ErrorCode.invalid_request)],
)  # fmt: skip
async def test_incremental_alter_errors(
    svc: Services, ops: tuple[tuple[str, str | None, int], ...], code: ErrorCode
) -> None:
    await create(svc, new_topic(7, "i"))
    configs = tuple(entry(INC_ALTER, 1, n, val, op) for n, val, op in ops)
    req = alter_req(INC_ALTER, 1, TOPIC, "i", configs)
    resp = await handle_incremental_alter_configs(svc, ctx(INC_ALTER, 1), req)
    assert resp.responses[0].error_code == code
    info = await svc.meta.get_topic("i")
    assert info is not None and info.configs == {}


async def test_incremental_alter_broker_refused(svc: Services) -> None:
    req = alter_req(INC_ALTER, 1, BROKER, "7", (entry(INC_ALTER, 1, "num.partitions", "9"),))
    (result,) = (await handle_incremental_alter_configs(svc, ctx(INC_ALTER, 1), req)).responses
    assert result.error_code == ErrorCode.invalid_request
    assert result.error_message and "flags" in result.error_message


# -- DescribeCluster ------------------------------------------------------------------------------


@pytest.mark.parametrize("v", range(0, 3))
async def test_describe_cluster(svc: Services, v: int) -> None:
    req = request(CLUSTER, v, include_cluster_authorized_operations=False,
                  include_fenced_brokers=False)  # fmt: skip
    resp = await handle_describe_cluster(svc, ctx(CLUSTER, v), req)
    assert resp.error_code == ErrorCode.none
    assert (resp.cluster_id, resp.controller_id) == ("shoal-test", 7)
    (broker,) = resp.brokers
    assert (broker.broker_id, broker.host, broker.port, broker.rack) == (
        7, "agent-1.example", 19092, "zone-a")  # fmt: skip
    assert resp.cluster_authorized_operations == -2147483648
    roundtrip(resp)


async def test_describe_cluster_controller_endpoint(svc: Services) -> None:
    req = request(CLUSTER, 1, include_cluster_authorized_operations=False, endpoint_type=2)
    resp = await handle_describe_cluster(svc, ctx(CLUSTER, 1), req)
    assert resp.error_code == ErrorCode.unsupported_endpoint_type
    roundtrip(resp)


# -- config rules ---------------------------------------------------------------------------------


def test_config_rules() -> None:
    assert validate_topic_config("retention.ms", "-1") is None
    assert validate_topic_config("retention.ms", "-2") is not None
    assert validate_topic_config("message.timestamp.type", "LogAppendTime") is None
    assert validate_topic_config("message.timestamp.type", "Whenever") is not None
    assert validate_topic_config("compression.type", "zstd") is None
    assert validate_topic_config("min.insync.replicas", "0") is not None
    assert validate_topic_config("min.cleanable.dirty.ratio", "1.5") is not None
    assert list_append("delete", "compact,delete") == "delete,compact"
    assert list_subtract("delete,compact", "delete") == "compact"
    assert list_subtract("", "delete") == ""
