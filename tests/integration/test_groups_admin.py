"""Group admin APIs through confluent-kafka's AdminClient (ListGroups, DescribeGroups,
DeleteGroups, OffsetCommit/OffsetFetch of admin tools; OffsetDelete through kafka-python, as
confluent-kafka's Python AdminClient lacks it), plus the groups section of /v1/status and the
group series on /metrics."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from tests.agent_process import AgentProcess
from tests.integration.group_members import (
    Tracker,
    committed,
    create_topic,
    produce_fast,
    start_member,
    stop_members,
    wait_until,
)

PARTITIONS = 4
N = 4000


def delete_offsets(bootstrap: str, group: str, topic: str, partition: int) -> str:
    """OffsetDelete. confluent-kafka's Python AdminClient has no call for it, so kafka-python's
    admin client sends it; returns the partition's error name, or the group-level one."""
    from kafka import KafkaAdminClient  # type: ignore[import-untyped]
    from kafka import TopicPartition as KTP
    from kafka.errors import KafkaError  # type: ignore[import-untyped]

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        result = admin.delete_group_offsets(group, [KTP(topic, partition)])
        return str(result[KTP(topic, partition)].__name__)
    except KafkaError as exc:
        return type(exc).__name__
    finally:
        admin.close()


def error_code(fut: Any) -> str:
    with pytest.raises(KafkaException) as info:
        fut.result(10)
    return str(info.value.args[0].name())


def test_group_admin(agent: AgentProcess) -> None:
    admin = AdminClient({"bootstrap.servers": agent.bootstrap})
    topic, other, group = "adm", "adm-other", "adm-group"
    create_topic(agent.bootstrap, topic, PARTITIONS)
    create_topic(agent.bootstrap, other, 1)
    produce_fast(agent.bootstrap, topic, N, PARTITIONS)

    tracker = Tracker(expected=N)
    members = [
        start_member("confluent", agent.bootstrap, topic, group, tracker, f"adm-{i}", True)
        for i in range(2)
    ]
    try:
        wait_until(tracker.done.is_set, 60, "records")
        wait_until(
            lambda: (
                str(admin.describe_consumer_groups([group])[group].result(10).state.name)
                == "STABLE"
            ),
            30,
            "stable group",
        )
        desc = admin.describe_consumer_groups([group])[group].result(10)
        assert len(desc.members) == 2 and desc.partition_assignor == "range"
        owned = sorted(tp.partition for m in desc.members for tp in m.assignment.topic_partitions)
        assert owned == list(range(PARTITIONS))
        assert {m.client_id for m in desc.members} == {"adm-0", "adm-1"}

        listed = {g.group_id: g for g in admin.list_consumer_groups().result(10).valid}
        assert group in listed and listed[group].state.name == "STABLE"

        # Active groups cannot be deleted, nor can offsets of topics they subscribe to.
        assert error_code(admin.delete_consumer_groups([group])[group]) == "NON_EMPTY_GROUP"
        assert delete_offsets(agent.bootstrap, group, topic, 0) == "GroupSubscribedToTopicError"
        # Offsets of a topic the group does not subscribe to can go.
        admin_commit = admin.alter_consumer_group_offsets(
            [ConsumerGroupTopicPartitions("adm-offsets-only", [TopicPartition(other, 0, 7)])]
        )["adm-offsets-only"].result(10)
        assert admin_commit.topic_partitions[0].error is None
    finally:
        stop_members(members)

    marks = {p: N // PARTITIONS for p in range(PARTITIONS)}
    assert committed(agent.bootstrap, group, topic, PARTITIONS) == marks
    wait_until(
        lambda: (
            str(admin.describe_consumer_groups([group])[group].result(10).state.name) == "EMPTY"
        ),
        20,
        "empty group",
    )

    # Lag in /v1/status and on /metrics (computed on demand: the first call starts it).
    def lag_reported() -> bool:
        return group in agent.status()["groups"]["lag_by_group"]

    wait_until(lag_reported, 20, "lag in /v1/status")
    groups_doc = agent.status()["groups"]
    assert groups_doc["lag_by_group"][group] == 0
    assert groups_doc["rebalances_total"] >= 1
    rows = {(r["group"], r["topic"], r["partition"]): r for r in groups_doc["lag"]}
    assert rows[(group, topic, 0)]["committed"] == N // PARTITIONS
    assert rows[("adm-offsets-only", other, 0)]["high_watermark"] == 0
    text = agent.metrics()
    assert f'shoal_group_lag{{group="{group}",partition="0",topic="{topic}"}} 0.0' in text
    assert 'shoal_groups{state="Empty"}' in text

    # OffsetDelete on the now-empty group, then DeleteGroups.
    assert delete_offsets(agent.bootstrap, group, topic, 0) == "NoError"
    after = committed(agent.bootstrap, group, topic, PARTITIONS)
    assert after[0] < 0 and after[1] == N // PARTITIONS
    listed_offsets = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 1)])]
    )[group].result(10)
    assert listed_offsets.topic_partitions[0].offset == N // PARTITIONS

    admin.delete_consumer_groups([group])[group].result(10)
    listed_after = {g.group_id for g in admin.list_consumer_groups().result(10).valid}
    assert group not in listed_after and "adm-offsets-only" in listed_after
    assert all(o < 0 for o in committed(agent.bootstrap, group, topic, PARTITIONS).values())
    assert error_code(admin.delete_consumer_groups([group])[group]) == "GROUP_ID_NOT_FOUND"
    assert delete_offsets(agent.bootstrap, "never-existed", topic, 0) == "GroupIdNotFoundError"


def test_deleting_a_topic_drops_its_committed_offsets(agent: AgentProcess) -> None:
    admin = AdminClient({"bootstrap.servers": agent.bootstrap})
    create_topic(agent.bootstrap, "doomed", 2)
    produce_fast(agent.bootstrap, "doomed", 10, 2)
    admin.alter_consumer_group_offsets(
        [ConsumerGroupTopicPartitions("g-doomed", [TopicPartition("doomed", 0, 5)])]
    )["g-doomed"].result(10)
    assert committed(agent.bootstrap, "g-doomed", "doomed", 2)[0] == 5
    admin.delete_topics(["doomed"])["doomed"].result(10)
    create_topic(agent.bootstrap, "doomed", 2)
    assert all(o < 0 for o in committed(agent.bootstrap, "g-doomed", "doomed", 2).values())
