"""DeleteRecords through the admin clients of confluent-kafka (librdkafka), kafka-python and
KafkaJS against a real agent, on both backends: the log start moves, ListOffsets earliest
follows it, a fetch below it is OFFSET_OUT_OF_RANGE, a consumer from the beginning starts there,
and Kafka's error codes for the refusals."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from kafka import KafkaAdminClient  # type: ignore[import-untyped]
from kafka import TopicPartition as KpTopicPartition

from shoal.protocol import errors
from tests.agent_process import AgentProcess
from tests.backends import agent_on_backend
from tests.integration.test_kafkajs import kafkajs  # noqa: F401  (the npm install fixture)
from tests.rawkafka import RawConnection, fetch_v12

TIMEOUT_S = 30
PARTITIONS = 2
RECORDS_PER_PARTITION = 100


@pytest.fixture(scope="module")
def agent_dr(
    tmp_path_factory: pytest.TempPathFactory, backend_kind: str, request: pytest.FixtureRequest
) -> Iterator[AgentProcess]:
    data: Path = tmp_path_factory.mktemp("delete-records")
    args = ["--auto-create-topics", "false", "--flush-interval-ms", "20"]
    with agent_on_backend(backend_kind, request, data, args) as proc:
        yield proc


def _topic(agent: AgentProcess, configs: dict[str, str] | None = None) -> str:
    """A new topic with RECORDS_PER_PARTITION records (value = offset) in each partition."""
    name = f"dr-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": agent.bootstrap})
    new = NewTopic(name, PARTITIONS, 1, config=configs or {})
    admin.create_topics([new])[name].result(TIMEOUT_S)
    producer = Producer({"bootstrap.servers": agent.bootstrap, "linger.ms": 5})
    for p in range(PARTITIONS):
        for i in range(RECORDS_PER_PARTITION):
            producer.produce(name, str(i).encode(), partition=p)
    assert producer.flush(TIMEOUT_S) == 0
    return name


def _earliest(agent: AgentProcess, topic: str, partition: int) -> int:
    consumer = Consumer({"bootstrap.servers": agent.bootstrap, "group.id": "dr-watermarks"})
    try:
        low, _high = consumer.get_watermark_offsets(TopicPartition(topic, partition), TIMEOUT_S)
        return int(low)
    finally:
        consumer.close()


def _fetch_error(agent: AgentProcess, topic: str, partition: int, offset: int) -> int:
    host, port = agent.bootstrap.split(":")
    conn = RawConnection(f"{host}:{port}")
    try:
        resp = conn.call(fetch_v12(topic, {partition: offset}, max_bytes=1 << 20,
                                   partition_max_bytes=1 << 20))  # fmt: skip
        return int(resp.responses[0].partitions[0].error_code)
    finally:
        conn.close()


def _first_offset_read(agent: AgentProcess, topic: str, partition: int) -> int:
    consumer = Consumer({"bootstrap.servers": agent.bootstrap, "group.id": "dr-read"})
    try:
        consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
        for _ in range(60):
            msg = consumer.poll(1.0)
            if msg is not None and msg.error() is None:
                offset = msg.offset()
                assert offset is not None
                assert msg.value() == str(offset).encode()
                return offset
        raise AssertionError("nothing read")
    finally:
        consumer.close()


def test_confluent_delete_records_moves_the_log_start(agent_dr: AgentProcess) -> None:
    topic = _topic(agent_dr)
    admin = AdminClient({"bootstrap.servers": agent_dr.bootstrap})
    futures = admin.delete_records([TopicPartition(topic, 0, 40), TopicPartition(topic, 1, -1)])
    lows = {tp.partition: f.result(TIMEOUT_S).low_watermark for tp, f in futures.items()}
    assert lows == {0: 40, 1: RECORDS_PER_PARTITION}

    assert _earliest(agent_dr, topic, 0) == 40
    assert _earliest(agent_dr, topic, 1) == RECORDS_PER_PARTITION
    assert _fetch_error(agent_dr, topic, 0, 39) == errors.OFFSET_OUT_OF_RANGE
    assert _fetch_error(agent_dr, topic, 0, 40) == errors.NONE
    # The batch holding offset 40 may start before it; the client skips to what it asked for.
    assert _first_offset_read(agent_dr, topic, 0) == 40

    # Below the current start: nothing moves, the start is the answer.
    futures = admin.delete_records([TopicPartition(topic, 0, 10)])
    assert next(iter(futures.values())).result(TIMEOUT_S).low_watermark == 40


def test_confluent_delete_records_refusals(agent_dr: AgentProcess) -> None:
    topic = _topic(agent_dr)
    compacted = _topic(agent_dr, {"cleanup.policy": "compact"})
    admin = AdminClient({"bootstrap.servers": agent_dr.bootstrap})
    cases = {
        TopicPartition(topic, 0, RECORDS_PER_PARTITION + 1): "OFFSET_OUT_OF_RANGE",
        TopicPartition(topic, 1, -7): "OFFSET_OUT_OF_RANGE",
        TopicPartition(compacted, 0, 5): "POLICY_VIOLATION",
    }
    futures = admin.delete_records(list(cases))
    for tp, want in cases.items():
        with pytest.raises(KafkaException) as caught:
            futures[tp].result(TIMEOUT_S)
        assert caught.value.args[0].name() == want, (tp, caught.value)
    # A refused request moved nothing.
    assert _earliest(agent_dr, topic, 0) == 0
    assert _earliest(agent_dr, compacted, 0) == 0


def test_kafka_python_delete_records(agent_dr: AgentProcess) -> None:
    topic = _topic(agent_dr)
    admin = KafkaAdminClient(bootstrap_servers=agent_dr.bootstrap, request_timeout_ms=30_000)
    try:
        result = admin.delete_records({KpTopicPartition(topic, 1): 25})
    finally:
        admin.close()
    (meta,) = result.values()
    assert meta["low_watermark"] == 25
    assert meta["error_code"] == errors.NONE
    assert _earliest(agent_dr, topic, 1) == 25
    assert _earliest(agent_dr, topic, 0) == 0


KAFKAJS_DELETE = """
const { Kafka, logLevel } = require('kafkajs');
const [broker, topic] = process.argv.slice(1);
(async () => {
  const admin = new Kafka({ brokers: [broker], logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  // KafkaJS 2.2.4 looks the leaders up in metadata it has not loaded yet (against Kafka too);
  // fetchTopicOffsets loads it.
  await admin.fetchTopicOffsets(topic);
  await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '60' }] });
  const offsets = await admin.fetchTopicOffsets(topic);
  console.log(JSON.stringify(offsets.map(o => ({ partition: o.partition, low: o.low }))));
  await admin.disconnect();
})().catch(e => { console.error(e); process.exit(1); });
"""


def test_kafkajs_delete_topic_records(agent_dr: AgentProcess, kafkajs: Path) -> None:  # noqa: F811
    topic = _topic(agent_dr)
    done = subprocess.run(
        ["node", "-e", KAFKAJS_DELETE, agent_dr.bootstrap, topic],
        capture_output=True, text=True, timeout=120, env={**os.environ, "NODE_PATH": str(kafkajs)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lows = {o["partition"]: int(o["low"]) for o in json.loads(done.stdout.strip().splitlines()[-1])}
    assert lows == {0: 60, 1: 0}
