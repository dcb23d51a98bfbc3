"""Retention by time and by size in a real agent (jobs role), on both backends: the log start
catches up with the high watermark (or the size limit), reads below it are OFFSET_OUT_OF_RANGE,
and the garbage collector deletes the segment files once no row references them."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from shoal.protocol import errors
from shoal.protocol.batch import split_batches
from tests.agent_process import AgentProcess
from tests.backends import Backend
from tests.integration.job_agents import job_agent_process, wait_until
from tests.rawkafka import RawConnection, fetch_v12
from tests.s3_server import list_keys

TIMEOUT_S = 30
RECORDS = 200
KEEP_BYTES = 50 * 1024
JOB_ARGS = [
    "--flush-interval-ms", "20",
    "--retention-check-interval-ms", "500",
    "--gc-interval-ms", "500",
    "--gc-grace-ms", "1000",
]  # fmt: skip


def _produce(bootstrap: str, topic: str, configs: dict[str, str], value_bytes: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1, config=configs)])[topic].result(TIMEOUT_S)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for i in range(RECORDS):
        producer.produce(topic, os.urandom(value_bytes), partition=0)
        if i % 20 == 0:
            producer.flush(TIMEOUT_S)  # several batches, in several segment files
    assert producer.flush(TIMEOUT_S) == 0


def _watermarks(bootstrap: str, topic: str) -> tuple[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "retention-watch"})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), TIMEOUT_S)
        return int(low), int(high)
    finally:
        consumer.close()


def _fetch_error(bootstrap: str, topic: str, offset: int) -> int:
    conn = RawConnection(bootstrap)
    try:
        resp = conn.call(fetch_v12(topic, {0: offset}, max_bytes=1 << 20,
                                   partition_max_bytes=1 << 20))  # fmt: skip
        return int(resp.responses[0].partitions[0].error_code)
    finally:
        conn.close()


def _bucket(backend: Backend, agent: AgentProcess) -> str:
    return backend.bucket or f"file://{Path(agent.data_dir).resolve()}/objects"


@pytest.fixture
def job_agent(tmp_path: Path, backend: Backend, monkeypatch: pytest.MonkeyPatch) -> AgentProcess:
    return job_agent_process(tmp_path, backend, monkeypatch, JOB_ARGS)


def test_time_retention_empties_the_partition_and_its_files_go(
    job_agent: AgentProcess, backend: Backend
) -> None:
    agent = job_agent.start()
    try:
        topic = f"ret-ms-{uuid.uuid4().hex[:8]}"
        _produce(agent.bootstrap, topic, {"retention.ms": "5000"}, 100)
        bucket = _bucket(backend, agent)
        assert list_keys(bucket), "the records were written to segment files"
        assert _watermarks(agent.bootstrap, topic) == (0, RECORDS)

        wait_until("log start at the high watermark",
              lambda: _watermarks(agent.bootstrap, topic) == (RECORDS, RECORDS))  # fmt: skip
        assert _fetch_error(agent.bootstrap, topic, 0) == errors.OFFSET_OUT_OF_RANGE
        assert _fetch_error(agent.bootstrap, topic, RECORDS) == errors.NONE
        wait_until("segment files deleted", lambda: list_keys(bucket) == [])
    finally:
        assert agent.stop() == 0, agent.log_tail()


def _batch_bytes_from(bootstrap: str, topic: str, offset: int) -> list[int]:
    """Sizes of the batches a consumer reads from `offset` (a batch's base) to the end."""
    conn = RawConnection(bootstrap)
    sizes: list[int] = []
    try:
        while True:
            resp = conn.call(fetch_v12(topic, {0: offset}, max_bytes=1 << 20,
                                       partition_max_bytes=1 << 20))  # fmt: skip
            part = resp.responses[0].partitions[0]
            assert part.error_code == errors.NONE, part.error_code
            if not part.records:
                return sizes
            for data, header in split_batches(bytes(part.records), 1 << 20):
                sizes.append(len(data))
                offset = header.base_offset + header.last_offset_delta + 1
    finally:
        conn.close()


def test_size_retention_keeps_the_newest_bytes(job_agent: AgentProcess) -> None:
    agent = job_agent.start()
    try:
        topic = f"ret-bytes-{uuid.uuid4().hex[:8]}"
        # 200 records of 1 KiB, in batches of at most 20; retention.bytes keeps 50 KiB.
        _produce(agent.bootstrap, topic, {"retention.bytes": str(KEEP_BYTES)}, 1024)
        # Cycles that ran while records were still arriving moved the start less far; wait for
        # one after the last (the kept batches then hold at most 50 KiB + one batch of 20).
        wait_until("log start caught up",
              lambda: _watermarks(agent.bootstrap, topic)[0] >= RECORDS - 50 - 20)  # fmt: skip
        low, high = _watermarks(agent.bootstrap, topic)
        assert high == RECORDS
        # As Kafka: at least retention.bytes stay, and no older batch could have gone too.
        sizes = _batch_bytes_from(agent.bootstrap, topic, low)
        assert sum(sizes) >= KEEP_BYTES, (low, sizes)
        assert sum(sizes) - sizes[0] < KEEP_BYTES, (low, sizes)
        assert _fetch_error(agent.bootstrap, topic, low - 1) == errors.OFFSET_OUT_OF_RANGE
    finally:
        assert agent.stop() == 0, agent.log_tail()
