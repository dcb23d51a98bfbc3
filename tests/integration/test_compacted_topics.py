"""Compacted topics in a real agent, on both backends: 100,000 records over 1,000 keys with 10 %
tombstones settle into exactly the latest value of every key, at the offsets they were acked
at, in offset order; a record without a key is refused with INVALID_RECORD."""

from __future__ import annotations

import random
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from tests.agent_process import AgentProcess
from tests.backends import Backend
from tests.integration.job_agents import job_agent_process

TIMEOUT_S = 30
PARTITIONS = 4
RECORDS = 100_000
KEYS = 1_000
TOMBSTONE_SHARE = 0.1
JOB_ARGS = [
    "--flush-interval-ms", "5",
    "--compaction-interval-ms", "500",
    "--gc-interval-ms", "500",
    "--gc-grace-ms", "1000",
]  # fmt: skip
# Tombstones go at the first cleaning; a dirty tail smaller than the dirty ratio is cleaned
# once it has waited 2 s (max.compaction.lag.ms), so the topic settles.
CONFIGS = {
    "cleanup.policy": "compact",
    "delete.retention.ms": "0",
    "max.compaction.lag.ms": "2000",
}

# (partition, offset) -> (key, value)
Log = dict[tuple[int, int], tuple[bytes, bytes | None]]


def _produce(bootstrap: str, topic: str) -> Log:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, PARTITIONS, 1, config=CONFIGS)])[topic].result(TIMEOUT_S)
    acked: Log = {}
    failures: list[str] = []

    def on_delivery(err: KafkaError | None, msg: object) -> None:
        if err is not None:
            failures.append(str(err))
            return
        acked[(msg.partition(), msg.offset())] = (msg.key(), msg.value())  # type: ignore[attr-defined]

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                         "linger.ms": 5})  # fmt: skip
    rng = random.Random(7)
    for n in range(RECORDS):
        key = f"key-{rng.randrange(KEYS)}".encode()
        value = None if rng.random() < TOMBSTONE_SHARE else f"value-{n}".encode()
        while True:
            try:
                producer.produce(topic, value, key=key, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(60) == 0
    assert not failures, failures[:3]
    assert len(acked) == RECORDS
    return acked


def _latest(acked: Log) -> Log:
    """The last acked record of every key, tombstones left out."""
    last: dict[bytes, tuple[int, int]] = {}
    for (partition, offset), (key, _) in sorted(acked.items()):
        last[key] = (partition, offset)
    return {at: acked[at] for at in last.values() if acked[at][1] is not None}


def _read_all(
    bootstrap: str, topic: str, high: dict[int, int]
) -> list[tuple[int, int, bytes, bytes | None]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{uuid.uuid4().hex}",
                         "enable.partition.eof": True})  # fmt: skip
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    out: list[tuple[int, int, bytes, bytes | None]] = []
    done: set[int] = {p for p, h in high.items() if h == 0}
    deadline = time.monotonic() + 60
    try:
        while len(done) < PARTITIONS and time.monotonic() < deadline:
            for m in consumer.consume(1000, 1.0):
                err = m.error()
                if err is not None and err.code() == KafkaError._PARTITION_EOF:
                    done.add(int(m.partition() or 0))
                    continue
                assert err is None, err
                out.append((int(m.partition() or 0), int(m.offset() or 0),
                            m.key() or b"", m.value()))  # fmt: skip
    finally:
        consumer.close()
    assert len(done) == PARTITIONS, "not every partition was read to its end"
    return out


@pytest.fixture
def job_agent(tmp_path: Path, backend: Backend, monkeypatch: pytest.MonkeyPatch) -> AgentProcess:
    return job_agent_process(tmp_path, backend, monkeypatch, JOB_ARGS)


def test_a_compacted_topic_settles_into_the_latest_value_of_every_key(
    job_agent: AgentProcess,
) -> None:
    agent = job_agent.start()
    try:
        topic = f"compacted-{uuid.uuid4().hex[:8]}"
        acked = _produce(agent.bootstrap, topic)
        latest = _latest(acked)
        high = {p: 1 + max(o for (q, o) in acked if q == p) for p in range(PARTITIONS)}
        deadline = time.monotonic() + 90
        while True:
            read = _read_all(agent.bootstrap, topic, high)
            # Whatever a reader sees is what was acked at that offset, in offset order.
            for p in range(PARTITIONS):
                offsets = [o for q, o, _, _ in read if q == p]
                assert offsets == sorted(set(offsets)), f"partition {p} out of order"
            for p, o, key, value in read:
                assert acked[(p, o)] == (key, value), (p, o)
            if {(p, o): (k, v) for p, o, k, v in read} == latest:
                break
            assert time.monotonic() < deadline, (
                f"not settled: {len(read)} records read, {len(latest)} keys with a value"
            )
            time.sleep(1)
        assert len(latest) < KEYS  # some keys end in a tombstone, and went
        assert agent.counter("shoal_log_cleaner_batches_total", outcome="dropped") > 0
    finally:
        assert agent.stop() == 0, agent.log_tail()


def test_a_record_without_a_key_is_refused(job_agent: AgentProcess) -> None:
    agent = job_agent.start()
    try:
        topic = f"compacted-keyless-{uuid.uuid4().hex[:8]}"
        admin = AdminClient({"bootstrap.servers": agent.bootstrap})
        admin.create_topics([NewTopic(topic, 1, 1, config=CONFIGS)])[topic].result(TIMEOUT_S)
        errors: list[KafkaError | None] = []
        producer = Producer({"bootstrap.servers": agent.bootstrap, "retries": 0,
                             "enable.idempotence": False})  # fmt: skip
        # One at a time: Kafka refuses a batch whole when one of its records has no key.
        producer.produce(topic, b"no key", on_delivery=lambda err, _: errors.append(err))
        producer.flush(TIMEOUT_S)
        producer.produce(topic, b"keyed", key=b"k", on_delivery=lambda err, _: errors.append(err))
        producer.flush(TIMEOUT_S)
        assert len(errors) == 2
        first, second = errors
        assert first is not None and first.code() == KafkaError.INVALID_RECORD, first
        assert second is None, second
    finally:
        assert agent.stop() == 0, agent.log_tail()
