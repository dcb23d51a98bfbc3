"""Admin APIs through real clients: confluent-kafka's AdminClient (librdkafka) and kafka-python."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
)

from tests.agent_process import AgentProcess
from tests.backends import agent_on_backend

TIMEOUT_S = 30


@pytest.fixture(scope="module")
def admin_agent(
    tmp_path_factory: pytest.TempPathFactory, backend_kind: str, request: pytest.FixtureRequest
) -> Iterator[AgentProcess]:
    """One agent per backend for the module (the tests use distinct topic names)."""
    data: Path = tmp_path_factory.mktemp("admin")
    args = ["--auto-create-topics", "false", "--az", "zone-x"]
    with agent_on_backend(backend_kind, request, data, args) as proc:
        yield proc


@pytest.fixture
def admin(admin_agent: AgentProcess) -> AdminClient:
    return AdminClient({"bootstrap.servers": admin_agent.bootstrap})


def error_of(future: object) -> KafkaError:
    with pytest.raises(KafkaException) as caught:
        future.result(TIMEOUT_S)  # type: ignore[attr-defined]
    err = caught.value.args[0]
    assert isinstance(err, KafkaError)
    return err


def topic_configs(admin: AdminClient, topic: str) -> dict[str, ConfigEntry]:
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    result: dict[str, ConfigEntry] = admin.describe_configs([resource])[resource].result(TIMEOUT_S)
    return result


def test_create_list_describe_delete(admin: AdminClient) -> None:
    new = NewTopic("adm-orders", 3, 1, config={"retention.ms": "3600000"})
    assert admin.create_topics([new])["adm-orders"].result(TIMEOUT_S) is None
    topics = admin.list_topics(timeout=TIMEOUT_S).topics
    assert len(topics["adm-orders"].partitions) == 3

    configs = topic_configs(admin, "adm-orders")
    assert configs["retention.ms"].value == "3600000"
    assert ConfigSource(configs["retention.ms"].source) == ConfigSource.DYNAMIC_TOPIC_CONFIG
    assert configs["cleanup.policy"].value == "delete"
    assert ConfigSource(configs["cleanup.policy"].source) == ConfigSource.DEFAULT_CONFIG

    err = error_of(admin.create_topics([NewTopic("adm-orders", 1, 1)])["adm-orders"])
    assert err.code() == KafkaError.TOPIC_ALREADY_EXISTS

    assert admin.delete_topics(["adm-orders"])["adm-orders"].result(TIMEOUT_S) is None
    assert "adm-orders" not in admin.list_topics(timeout=TIMEOUT_S).topics
    err = error_of(admin.delete_topics(["adm-orders"])["adm-orders"])
    assert err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_create_rejections(admin: AdminClient) -> None:
    bad_config = NewTopic("adm-bad-config", 1, 1, config={"no.such.key": "1"})
    err = error_of(admin.create_topics([bad_config])["adm-bad-config"])
    assert err.code() == KafkaError.INVALID_CONFIG
    err = error_of(admin.create_topics([NewTopic("bad/name", 1, 1)])["bad/name"])
    assert err.code() == KafkaError.TOPIC_EXCEPTION

    dry = admin.create_topics([NewTopic("adm-dry", 2, 1)], validate_only=True)
    assert dry["adm-dry"].result(TIMEOUT_S) is None
    assert "adm-dry" not in admin.list_topics(timeout=TIMEOUT_S).topics


def test_create_partitions(admin: AdminClient) -> None:
    admin.create_topics([NewTopic("adm-grow", 2, 1)])["adm-grow"].result(TIMEOUT_S)
    assert (
        admin.create_partitions([NewPartitions("adm-grow", 5)])["adm-grow"].result(TIMEOUT_S)
        is None
    )
    assert len(admin.list_topics(timeout=TIMEOUT_S).topics["adm-grow"].partitions) == 5
    err = error_of(admin.create_partitions([NewPartitions("adm-grow", 4)])["adm-grow"])
    assert err.code() == KafkaError.INVALID_PARTITIONS


def test_incremental_alter_configs(admin: AdminClient) -> None:
    admin.create_topics([NewTopic("adm-alter", 1, 1)])["adm-alter"].result(TIMEOUT_S)
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        "adm-alter",
        incremental_configs=[
            ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET),
            ConfigEntry(
                "cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND
            ),
        ],
    )
    admin.incremental_alter_configs([resource])[resource].result(TIMEOUT_S)
    configs = topic_configs(admin, "adm-alter")
    assert configs["retention.ms"].value == "1000"
    assert configs["cleanup.policy"].value == "delete,compact"

    bad = ConfigResource(
        ConfigResource.Type.TOPIC,
        "adm-alter",
        incremental_configs=[
            ConfigEntry("retention.ms", "x", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    err = error_of(admin.incremental_alter_configs([bad])[bad])
    assert err.code() == KafkaError.INVALID_CONFIG
    assert topic_configs(admin, "adm-alter")["retention.ms"].value == "1000"


def test_legacy_alter_configs_replaces_and_synonyms(admin: AdminClient) -> None:
    new = NewTopic("adm-legacy", 1, 1, config={"segment.ms": "60000"})
    admin.create_topics([new])["adm-legacy"].result(TIMEOUT_S)
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        "adm-legacy",
        set_config={"retention.ms": "42", "retention.bytes": "4096"},
    )
    assert admin.alter_configs([resource])[resource].result(TIMEOUT_S) is None
    configs = topic_configs(admin, "adm-legacy")
    assert configs["retention.ms"].value == "42"
    # The legacy API replaces the whole override set: segment.ms is back to its default.
    assert configs["segment.ms"].value == "604800000"
    assert ConfigSource(configs["segment.ms"].source) == ConfigSource.DEFAULT_CONFIG
    # As Kafka: the override, then the broker key's default; log.retention.ms has none.
    assert set(configs["retention.bytes"].synonyms) == {"retention.bytes", "log.retention.bytes"}
    assert set(configs["retention.ms"].synonyms) == {"retention.ms"}


def test_broker_configs_and_cluster(admin: AdminClient) -> None:
    cluster = admin.describe_cluster(request_timeout=TIMEOUT_S).result(TIMEOUT_S)
    (node,) = cluster.nodes
    assert node.rack == "zone-x"
    assert cluster.controller.id == node.id
    assert cluster.cluster_id

    resource = ConfigResource(ConfigResource.Type.BROKER, str(node.id))
    configs = admin.describe_configs([resource])[resource].result(TIMEOUT_S)
    assert configs["auto.create.topics.enable"].value == "false"
    assert configs["broker.rack"].value == "zone-x"


def test_kafka_python_admin(admin_agent: AgentProcess) -> None:
    from kafka.admin import ConfigResource as KpResource  # type: ignore[import-untyped]
    from kafka.admin import ConfigResourceType, KafkaAdminClient
    from kafka.admin import NewPartitions as KpNewPartitions
    from kafka.admin import NewTopic as KpNewTopic

    client = KafkaAdminClient(bootstrap_servers=admin_agent.bootstrap, request_timeout_ms=30_000)
    try:
        client.create_topics([KpNewTopic("adm-kp", 2, 1, topic_configs={"retention.ms": "5000"})])
        assert "adm-kp" in client.list_topics()
        described = client.describe_configs([KpResource(ConfigResourceType.TOPIC, "adm-kp")])
        retention = described["topic"]["adm-kp"]["retention.ms"]
        assert (retention["value"], retention["config_source"]) == ("5000", "DYNAMIC_TOPIC_CONFIG")
        grown = client.create_partitions({"adm-kp": KpNewPartitions(4)})
        assert [r.error_code for r in grown.results] == [0]
        cluster = client.describe_cluster()
        assert [b["rack"] for b in cluster["brokers"]] == ["zone-x"]
        client.delete_topics(["adm-kp"])
        assert "adm-kp" not in client.list_topics()
    finally:
        client.close()


def test_aiokafka_admin(admin_agent: AgentProcess) -> None:
    import asyncio

    from aiokafka.admin import AIOKafkaAdminClient, NewPartitions  # type: ignore[import-untyped]
    from aiokafka.admin import NewTopic as AioNewTopic
    from aiokafka.admin.config_resource import (  # type: ignore[import-untyped]
        ConfigResource as AioResource,
    )
    from aiokafka.admin.config_resource import ConfigResourceType as AioType

    async def run() -> None:
        client = AIOKafkaAdminClient(bootstrap_servers=admin_agent.bootstrap)
        await client.start()
        try:
            created = await client.create_topics([AioNewTopic("adm-aio", 2, 1)])
            assert [e[1] for e in created.topic_errors] == [0]
            grown = await client.create_partitions({"adm-aio": NewPartitions(3)})
            assert [e[1] for e in grown.topic_errors] == [0]
            altered = await client.alter_configs(
                [AioResource(AioType.TOPIC, "adm-aio", {"retention.ms": "7"})]
            )
            assert [r[0] for r in altered[0].resources] == [0]
            (described,) = await client.describe_configs(
                [AioResource(AioType.TOPIC, "adm-aio", {"retention.ms": None})]
            )
            ((error, _msg, _type, _name, entries),) = described.resources
            assert error == 0
            assert [(e[0], e[1]) for e in entries] == [("retention.ms", "7")]
            deleted = await client.delete_topics(["adm-aio"])
            assert [e[1] for e in deleted.topic_error_codes] == [0]
        finally:
            await client.close()

    asyncio.run(run())
