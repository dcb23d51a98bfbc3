"""File compaction in a real agent (jobs role), on both backends: many small segment files
become few, every record reads back at its offset with its key, value, headers and timestamp,
and the merged-away files are deleted from the object store one grace after their release."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from tests.agent_process import AgentProcess
from tests.backends import Backend
from tests.integration.job_agents import job_agent_process, wait_until
from tests.s3_server import list_keys

TIMEOUT_S = 30
PARTITIONS = 4
ROUNDS = 30
PER_ROUND = 40
JOB_ARGS = [
    "--flush-interval-ms", "5",
    "--compaction-interval-ms", "500",
    "--compaction-file-bytes-target", str(4 * 1024 * 1024),
    "--gc-interval-ms", "500",
    "--gc-grace-ms", "1000",
]  # fmt: skip

# (partition, offset) -> (key, value, headers, timestamp)
Log = dict[tuple[int, int], tuple[bytes | None, bytes | None, object, int]]


def _produce(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(TIMEOUT_S)
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 0, "enable.idempotence": True}
    )
    for r in range(ROUNDS):
        for i in range(PER_ROUND):
            n = r * PER_ROUND + i
            producer.produce(
                topic, f"value-{n}".encode() * (1 + n % 5), key=f"key-{n}".encode(),
                partition=n % PARTITIONS, headers=[("n", str(n).encode())],
            )  # fmt: skip
        assert producer.flush(TIMEOUT_S) == 0  # each round in segment files of its own


def _read_all(bootstrap: str, topic: str) -> Log:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{uuid.uuid4().hex}"})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    log: Log = {}
    deadline = time.monotonic() + 60
    try:
        while len(log) < ROUNDS * PER_ROUND and time.monotonic() < deadline:
            for m in consumer.consume(500, 1.0):
                assert m.error() is None, m.error()
                key = (int(m.partition() or 0), int(m.offset() or 0))
                assert key not in log, f"{key} read twice"
                log[key] = (m.key(), m.value(), m.headers(), m.timestamp()[1])
    finally:
        consumer.close()
    return log


@pytest.fixture
def job_agent(tmp_path: Path, backend: Backend, monkeypatch: pytest.MonkeyPatch) -> AgentProcess:
    return job_agent_process(tmp_path, backend, monkeypatch, JOB_ARGS)


def test_compaction_merges_small_files_and_every_record_stays(
    job_agent: AgentProcess, backend: Backend
) -> None:
    agent = job_agent.start()
    try:
        topic = f"compact-files-{uuid.uuid4().hex[:8]}"
        bucket = backend.bucket or f"file://{Path(agent.data_dir).resolve()}/objects"
        _produce(agent.bootstrap, topic)
        before = _read_all(agent.bootstrap, topic)
        assert len(before) == ROUNDS * PER_ROUND
        # Every round's files are merged (maybe in part already) into one, and the merged-away
        # ones deleted one grace later.
        wait_until("compaction settled into one file", lambda: len(list_keys(bucket)) == 1)
        assert agent.counter("shoal_compaction_files_total", kind="input") >= ROUNDS
        assert agent.counter("shoal_object_store_requests_total", cause="compaction", op="put") >= 1
        after = _read_all(agent.bootstrap, topic)
        assert after == before
    finally:
        assert agent.stop() == 0, agent.log_tail()
