"""A deleted and re-created topic is another topic on every agent (issue 12 item 3).

Two real agents in two zones over one bucket and one metadata store. Records are written
through zone 1 and read through zone 2 (which caches their index rows); the topic is deleted
and created again through zone 1 and new records are written. Before topics were identified by
id end to end, zone 2 served the 100 old records at offsets 0-99, then new ones: only the agent
that handled the delete forgot its cached rows.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from tests.agent_process import AgentProcess, wait_for_membership

TOPIC = "recreated"


@pytest.fixture
def zones(tmp_path: Path) -> Iterator[tuple[AgentProcess, AgentProcess]]:
    common = [
        "--bucket", f"file://{tmp_path.resolve()}/objects",
        "--metadata", f"sqlite:///{tmp_path.resolve()}/metadata.db",
        "--auto-create-topics", "false",
    ]
    one = AgentProcess(tmp_path / "z1", [*common, "--az", "zone-1", "--node-id", "1"])
    two = AgentProcess(tmp_path / "z2", [*common, "--az", "zone-2", "--node-id", "2"])
    one.start()  # creates the schema alone
    two.start()
    try:
        wait_for_membership([one, two])
        yield one, two
    finally:
        two.stop()
        one.stop()


def _admin(agent: AgentProcess) -> AdminClient:
    return AdminClient({"bootstrap.servers": agent.bootstrap, "client.id": "admin,shoal_az=zone-1"})


def _create(agent: AgentProcess) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            admin = _admin(agent)  # alive until the result: its futures die with it
            admin.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].result(10)
            return
        except KafkaException:
            # The delete may not be visible to the admin client's metadata yet.
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _produce(agent: AgentProcess, values: list[bytes]) -> None:
    producer = Producer(
        {"bootstrap.servers": agent.bootstrap, "client.id": "p,shoal_az=zone-1", "linger.ms": 5}
    )
    errors: list[str] = []

    def delivered(error: KafkaError | None, _message: object) -> None:
        if error is not None:
            errors.append(str(error))

    for value in values:
        producer.produce(TOPIC, value, partition=0, on_delivery=delivered)
    assert producer.flush(30) == 0
    assert not errors, errors[:3]


def _read_from_start(agent: AgentProcess, count: int) -> list[tuple[int, bytes]]:
    consumer = Consumer(
        {
            "bootstrap.servers": agent.bootstrap,
            "client.id": "c,shoal_az=zone-2",
            "group.id": "unused",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(TOPIC, 0, 0)])
    got: list[tuple[int, bytes]] = []
    deadline = time.monotonic() + 60
    try:
        while len(got) < count and time.monotonic() < deadline:
            for m in consumer.consume(500, 0.5):
                if m.error() is None:
                    got.append((cast(int, m.offset()), cast(bytes, m.value())))
    finally:
        consumer.close()
    return got


def test_no_agent_serves_a_record_of_the_deleted_topic(
    zones: tuple[AgentProcess, AgentProcess],
) -> None:
    one, two = zones
    _create(one)
    _produce(one, [b"old-%d" % i for i in range(100)])
    assert [v for _, v in _read_from_start(two, 100)] == [b"old-%d" % i for i in range(100)]

    admin = _admin(one)
    admin.delete_topics([TOPIC])[TOPIC].result(10)
    _create(one)
    _produce(one, [b"new-%d" % i for i in range(200)])

    got = _read_from_start(two, 200)
    assert [v for v in (v for _, v in got) if v.startswith(b"old-")] == []
    assert got == [(i, b"new-%d" % i) for i in range(200)]
