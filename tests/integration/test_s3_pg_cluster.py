"""Acceptance (issue 5): three agents on one PostgreSQL and one S3 bucket (moto), each taking
produce for the same 16 partitions from idempotent producers at once. Offsets per partition are
dense and unique, and every acked record is read back exactly once.

Each agent sits in its own zone and each producer names its agent's zone in `client.id`, so
Metadata makes that agent the leader of all 16 partitions for it: all three agents commit to
every partition concurrently, and only the metadata store orders them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from tests.agent_process import AgentProcess, wait_for_membership
from tests.integration.faults_workload import BackgroundProducer, high_watermarks, read_back
from tests.integration.test_clients_roundtrip import create_topic
from tests.s3_server import S3Server, list_keys

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]

AGENTS = 3
PARTITIONS = 16
PRODUCERS_PER_AGENT = 2
PER_PRODUCER = 10_000


@pytest.fixture
def bucket(tmp_path: Path, moto_s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    for name, value in moto_s3.env().items():
        monkeypatch.setenv(name, value)  # for list_keys in this process
    return moto_s3.url(f"cluster-{tmp_path.name}")


@pytest.fixture
def cluster(
    tmp_path: Path, moto_s3: S3Server, pg_url: str, bucket: str
) -> Iterator[list[AgentProcess]]:
    shared = ["--bucket", bucket, "--metadata", pg_url, "--flush-interval-ms", "50"]
    agents: list[AgentProcess] = []
    try:
        for i in range(AGENTS):
            args = [*shared, "--node-id", str(i), "--az", f"z{i}"]
            agents.append(AgentProcess(tmp_path / f"agent{i}", args, env=moto_s3.env()).start())
        yield agents
    finally:
        for agent in agents:
            if agent.proc is not None and agent.proc.poll() is None:
                assert agent.stop() == 0, agent.log_tail()


def _leaders(agent: AgentProcess, zone: str, topic: str) -> set[int]:
    admin = AdminClient({"bootstrap.servers": agent.bootstrap, "client.id": f"shoal_az={zone}"})
    meta = admin.list_topics(topic, timeout=30)
    return {p.leader for p in meta.topics[topic].partitions.values()}


def _produce_requests(agent: AgentProcess) -> float:
    prefix = 'shoal_requests_total{api="Produce"}'
    lines = [line for line in agent.metrics().splitlines() if line.startswith(prefix)]
    return sum(float(line.split()[-1]) for line in lines)


def test_three_agents_commit_the_same_partitions(
    cluster: list[AgentProcess], bucket: str
) -> None:
    topic = "shared16"
    # Every agent must see every agent before Metadata is asked: until then a zone whose
    # agent is not yet in the view falls back to the agents known so far.
    wait_for_membership(cluster)
    create_topic(cluster[0].bootstrap, topic, PARTITIONS)
    for i, agent in enumerate(cluster):
        assert _leaders(agent, f"z{i}", topic) == {i}, f"zone z{i} is not led by agent {i}"

    producers: list[BackgroundProducer] = []
    for i, agent in enumerate(cluster):
        for k in range(PRODUCERS_PER_AGENT):
            config = {"client.id": f"shoal_az=z{i},app=p{i}-{k}", "linger.ms": 2}
            producers.append(BackgroundProducer(agent.bootstrap, topic, PARTITIONS, config=config))
    # Producer j sends records [j * PER_PRODUCER, (j + 1) * PER_PRODUCER): every one of them
    # covers all 16 partitions, and record indexes are unique across producers.
    for j, producer in enumerate(producers):
        producer.start(j * PER_PRODUCER, PER_PRODUCER)
    for producer in producers:
        producer.join(240)

    for producer in producers:
        assert producer.errors == [], producer.errors[:5]
    acked: dict[int, tuple[int, int]] = {}
    for producer in producers:
        acked.update(producer.acked)
    total = len(producers) * PER_PRODUCER
    assert len(acked) == total, "some records were not acked"
    for agent in cluster:
        assert _produce_requests(agent) > 0, "an agent took no produce"

    # Dense and unique: the acked offsets of a partition are exactly 0..count-1.
    by_partition: dict[int, list[int]] = {p: [] for p in range(PARTITIONS)}
    for partition, offset in acked.values():
        by_partition[partition].append(offset)
    for p, offsets in by_partition.items():
        assert sorted(offsets) == list(range(len(offsets))), f"partition {p}: holes or repeats"
        assert len(offsets) == total // PARTITIONS

    # Exactly once, read through each agent: every acked record at its acked offset, once, and
    # the log holds nothing else.
    expected = Counter({(i, p, off): 1 for i, (p, off) in acked.items()})
    for agent in cluster:
        got = read_back(agent.bootstrap, topic, PARTITIONS, total)
        assert got == expected
        marks = high_watermarks(agent.bootstrap, topic, PARTITIONS)
        assert marks == {p: len(by_partition[p]) for p in range(PARTITIONS)}
    assert list_keys(bucket), "no segment reached the bucket"
