"""Agent roles as WarpStream has them, with real processes on one bucket and one SQLite store:
a `proxy`-only agent serves clients and runs no background job; a `jobs`-only agent opens no
Kafka listener, is named to no client (Metadata, FindCoordinator), and runs retention for the
whole cluster."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from tests.agent_process import AgentProcess
from tests.cluster_process import parse_samples, sample_sum
from tests.integration.test_cluster_membership import broker_ports, coordinator_port

TIMEOUT_S = 30
RECORDS = 50


@pytest.fixture
def proxy_and_jobs(tmp_path: Path) -> Iterator[tuple[AgentProcess, AgentProcess]]:
    shared = tmp_path / "shared"
    shared.mkdir()
    common = [
        "--bucket", f"file://{shared}/objects",
        "--metadata", f"sqlite:///{shared}/metadata.db",
        "--flush-interval-ms", "20",
        "--heartbeat-interval-ms", "250", "--heartbeat-timeout-ms", "2000",
        "--retention-check-interval-ms", "300",
    ]  # fmt: skip
    proxy = AgentProcess(tmp_path / "proxy", [*common, "--roles", "proxy"]).start()
    jobs = AgentProcess(tmp_path / "jobs", [*common, "--roles", "jobs"])
    try:
        jobs.start()
        # Both registered: each lists the other in its status.
        deadline = time.monotonic() + TIMEOUT_S
        while not (proxy.live_agents() == 2 and jobs.live_agents() == 2):
            assert time.monotonic() < deadline, "the two agents never saw each other"
            time.sleep(0.2)
        yield proxy, jobs
    finally:
        if jobs.proc is not None:
            jobs.stop()
        proxy.stop()


def _refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except OSError:
        return True


def _retention_cycles(agent: AgentProcess) -> float:
    return sample_sum(parse_samples(agent.metrics()), "shoal_retention_cycles_total")


def test_jobs_agent_serves_no_client_and_does_the_jobs(
    proxy_and_jobs: tuple[AgentProcess, AgentProcess],
) -> None:
    proxy, jobs = proxy_and_jobs
    assert _refused(jobs.kafka_port), "a jobs-only agent must not listen for Kafka clients"
    assert broker_ports(proxy.bootstrap, None) == {proxy.kafka_port}
    assert coordinator_port(proxy.bootstrap, "roles-group") == proxy.kafka_port

    topic = "roles-retention"
    admin = AdminClient({"bootstrap.servers": proxy.bootstrap})
    new = NewTopic(topic, 1, 1, config={"retention.ms": "2000"})
    admin.create_topics([new])[topic].result(TIMEOUT_S)
    producer = Producer({"bootstrap.servers": proxy.bootstrap})
    for i in range(RECORDS):
        producer.produce(topic, b"v%d" % i, partition=0)
    assert producer.flush(TIMEOUT_S) == 0

    # Only the jobs agent runs retention: the log start reaches the end through it.
    consumer = Consumer({"bootstrap.servers": proxy.bootstrap, "group.id": "roles-watch"})
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while consumer.get_watermark_offsets(TopicPartition(topic, 0), TIMEOUT_S) != (
            RECORDS, RECORDS):  # fmt: skip
            assert time.monotonic() < deadline, "retention never ran"
            time.sleep(0.3)
    finally:
        consumer.close()
    assert _retention_cycles(jobs) > 0
    assert _retention_cycles(proxy) == 0
