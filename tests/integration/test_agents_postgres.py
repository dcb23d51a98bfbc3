"""Real agents on one PostgreSQL metadata database and one shared object store: the metadata
store is what keeps their offsets dense and unique."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from tests.agent_process import AgentProcess

pytestmark = pytest.mark.postgres

PARTITIONS = 4
PER_PRODUCER = 2000


def _produce(bootstrap: str, topic: str, tag: str, acked: list[tuple[int, int, bytes]]) -> None:
    producer = Producer({
        "bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5,
        "message.timeout.ms": 60_000,
    })
    errors: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, msg: object) -> None:
        if err is not None:
            errors.append(err)
            return
        acked.append((msg.partition(), msg.offset(), msg.value()))  # type: ignore[attr-defined]

    for i in range(PER_PRODUCER):
        producer.produce(topic, f"{tag}-{i}".encode(), partition=i % PARTITIONS,
                         on_delivery=on_delivery)
        producer.poll(0)
    assert producer.flush(60) == 0
    assert errors == []


def test_two_agents_share_partitions_on_postgres(tmp_path: Path, pg_url: str) -> None:
    shared = ["--bucket", f"file://{tmp_path}/bucket", "--metadata", pg_url]
    agents = [AgentProcess(tmp_path / f"agent{i}", shared).start() for i in range(2)]
    try:
        admin = AdminClient({"bootstrap.servers": agents[0].bootstrap})
        admin.create_topics([NewTopic("shared", PARTITIONS, 1)])["shared"].result(30)
        acked: list[list[tuple[int, int, bytes]]] = [[] for _ in range(4)]
        threads = [
            threading.Thread(
                target=_produce, args=(agents[i % 2].bootstrap, "shared", f"p{i}", acked[i])
            )
            for i in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        everything = [a for per in acked for a in per]
        assert len(everything) == 4 * PER_PRODUCER
        # Each (partition, offset) acked once, densely from 0.
        by_partition: dict[int, list[int]] = {}
        for partition, offset, _ in everything:
            by_partition.setdefault(partition, []).append(offset)
        for offsets in by_partition.values():
            assert sorted(offsets) == list(range(len(offsets)))

        # Agent 1 serves everything, including what agent 0 wrote.
        consumer = Consumer({
            "bootstrap.servers": agents[1].bootstrap, "group.id": "check",
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
        })
        consumer.assign([TopicPartition("shared", p, 0) for p in range(PARTITIONS)])
        read: dict[tuple[int | None, int | None], bytes | None] = {}
        for _ in range(600):
            if len(read) >= len(everything):
                break
            for msg in consumer.consume(1000, timeout=0.2):
                if msg.error() is None:
                    read[(msg.partition(), msg.offset())] = msg.value()
        consumer.close()
        expected: dict[tuple[int | None, int | None], bytes | None] = {
            (p, o): v for p, o, v in everything
        }
        assert read == expected
    finally:
        for agent in agents:
            if agent.proc is not None and agent.proc.poll() is None:
                agent.stop()
