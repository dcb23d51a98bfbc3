"""Record timestamps as Kafka's topic configs rule them, through librdkafka on both backends:
message.timestamp.type=LogAppendTime stamps batches with the agent's clock (the delivery report
and the consumer both see it), and CreateTime timestamps outside message.timestamp.before.max.ms
/ after.max.ms (Kafka 4's default: one hour ahead) are refused with INVALID_TIMESTAMP."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import (
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_LOG_APPEND_TIME,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from tests.agent_process import AgentProcess

TIMEOUT_S = 30
HOUR_MS = 3_600_000


def _topic(agent: AgentProcess, configs: dict[str, str]) -> str:
    name = f"ts-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": agent.bootstrap})
    admin.create_topics([NewTopic(name, 1, 1, config=configs)])[name].result(TIMEOUT_S)
    return name


def _produce(agent: AgentProcess, topic: str, timestamps: list[int]) -> list[Message]:
    """Delivery reports of one record per timestamp, in order."""
    reports: list[Message] = []
    producer = Producer({"bootstrap.servers": agent.bootstrap, "linger.ms": 0, "retries": 0})
    for i, ts in enumerate(timestamps):
        producer.produce(topic, b"v%d" % i, partition=0, timestamp=ts,
                         on_delivery=lambda _err, msg: reports.append(msg))  # fmt: skip
        producer.flush(TIMEOUT_S)  # one batch each: each is accepted or refused alone
    assert len(reports) == len(timestamps)
    return reports


def _consume(agent: AgentProcess, topic: str, count: int) -> list[Message]:
    consumer = Consumer({"bootstrap.servers": agent.bootstrap, "group.id": f"g-{topic}",
                         "enable.auto.commit": False})  # fmt: skip
    consumer.assign([TopicPartition(topic, 0, 0)])
    got: list[Message] = []
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while len(got) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                got.append(msg)
    finally:
        consumer.close()
    return got


def test_log_append_time_replaces_the_producers_timestamps(agent: AgentProcess) -> None:
    topic = _topic(agent, {"message.timestamp.type": "LogAppendTime"})
    before = int(time.time() * 1000)
    reports = _produce(agent, topic, [1_000, 4 * HOUR_MS + before])
    after = int(time.time() * 1000)
    assert [r.error() for r in reports] == [None, None]  # no bounds apply to LogAppendTime
    for msg in [*reports, *_consume(agent, topic, 2)]:
        kind, ts = msg.timestamp()
        assert kind == TIMESTAMP_LOG_APPEND_TIME, msg.timestamp()
        assert before <= ts <= after, (before, ts, after)


def test_create_time_bounds_refuse_what_kafka_refuses(agent: AgentProcess) -> None:
    topic = _topic(agent, {"message.timestamp.before.max.ms": str(HOUR_MS)})
    now = int(time.time() * 1000)
    wanted = [now - 2 * HOUR_MS, now + 2 * HOUR_MS, now - 60_000, now + 60_000]
    reports = _produce(agent, topic, wanted)
    codes = [None if (e := r.error()) is None else e.code() for r in reports]
    assert codes == [KafkaError.INVALID_TIMESTAMP, KafkaError.INVALID_TIMESTAMP, None, None]
    # What was accepted keeps the producer's timestamps, at consecutive offsets.
    kept = _consume(agent, topic, 2)
    assert [(m.offset(), m.timestamp()) for m in kept] == [
        (0, (TIMESTAMP_CREATE_TIME, wanted[2])),
        (1, (TIMESTAMP_CREATE_TIME, wanted[3])),
    ]
