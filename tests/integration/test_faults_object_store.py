"""Object-store faults between a real agent and moto, injected by `tests.fault_proxy`:
throttling (503 SlowDown), errors after the request took effect, dropped connections, and a
key taken by someone else before a create-only PUT."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent_process import AgentProcess
from tests.fault_proxy import FaultProxy
from tests.integration.faults_workload import BackgroundProducer, high_watermarks, read_back
from tests.s3_server import S3Server, get_object, list_keys, running

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with running("moto", tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture
def proxy(s3: S3Server) -> Iterator[FaultProxy]:
    with FaultProxy(s3.endpoint, seed=20240905) as p:
        yield p


def _agent(tmp_path: Path, bucket: str, partitions: int) -> AgentProcess:
    args = ["--bucket", bucket, "--flush-interval-ms", "50"]
    return AgentProcess(tmp_path / "agent", [*args, "--default-partitions", str(partitions)])


def _metric(text: str, prefix: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))


def _check_exactly_acked(
    agent: AgentProcess, producer: BackgroundProducer, topic: str, partitions: int
) -> None:
    """Every acked record is read back once, at the offset its ack named; nothing else is in
    the log."""
    acked = dict(producer.acked)
    got = read_back(agent.bootstrap, topic, partitions, len(acked))
    marks = high_watermarks(agent.bootstrap, topic, partitions)
    assert set(got) == {(i, p, off) for i, (p, off) in acked.items()}, "acked records lost"
    assert set(got.values()) == {1}, "records read twice"
    assert sum(marks.values()) == len(acked), "the log holds records that were never acked"


def test_slowdown_on_a_fifth_of_requests_for_30s(
    s3: S3Server, proxy: FaultProxy, tmp_path: Path
) -> None:
    topic, partitions, rate = "slowdown", 4, 2000
    agent = _agent(tmp_path, s3.url("slowdown", endpoint=proxy.endpoint), partitions).start()
    try:
        producer = BackgroundProducer(agent.bootstrap, topic, partitions)
        producer.produce(0, 2000)
        assert producer.flush(60) == 0
        before = len(producer.acked)

        proxy.set(slowdown_ratio=0.2, for_s=30)
        started = time.monotonic()
        sent = 2000
        while time.monotonic() - started < 30:
            producer.produce(sent, 500, rate_per_s=rate)
            sent += 500
        assert producer.flush(120) == 0, "records still unanswered after the fault window"
        during_s = time.monotonic() - started
        during = len(producer.acked) - before
        injected = proxy.counts["slowdown"]
        proxy.clear()

        # Recovery: the same producer at full speed once the store is healthy again.
        recovery_started = time.monotonic()
        producer.produce(sent, 5000)
        assert producer.flush(60) == 0
        recovery_s = time.monotonic() - recovery_started
        sent += 5000
        metrics = agent.metrics()
        _check_exactly_acked(agent, producer, topic, partitions)
    finally:
        assert agent.stop() == 0, agent.log_tail()

    print(
        f"503 window: {during} records acked in {during_s:.1f}s ({during / during_s:.0f}/s,"
        f" {injected} SlowDown answers, "
        f"{_metric(metrics, 'shoal_object_store_errors_total')} store errors after obstore's"
        f" own retries); after: 5000 records in {recovery_s:.2f}s"
    )
    assert injected > 0, "the proxy injected nothing"
    # librdkafka retries retriable errors itself: a delivery error here would mean the agent
    # answered with a non-retriable error (or the retries ran out).
    assert not producer.errors, producer.errors[:3]
    assert len(producer.acked) == sent


def test_errors_after_success_and_dropped_connections(
    s3: S3Server, proxy: FaultProxy, tmp_path: Path
) -> None:
    """A PUT that took effect but was answered 500, or whose connection dropped, is retried by
    the store layer: the retry meets "already exists" with our own bytes and counts as done."""
    topic, partitions, n = "after-success", 2, 8000
    bucket = s3.url("after-success", endpoint=proxy.endpoint)
    agent = _agent(tmp_path, bucket, partitions).start()
    try:
        producer = BackgroundProducer(agent.bootstrap, topic, partitions)
        proxy.set(error_after_success_ratio=0.3, methods={"PUT"}, path_contains="/segments/")
        producer.produce(0, n // 2, rate_per_s=3000)
        assert producer.flush(60) == 0
        proxy.set(drop_ratio=0.15, delay_ms=5, error_after_success_ratio=0.1)
        producer.produce(n // 2, n - n // 2, rate_per_s=3000)
        assert producer.flush(60) == 0
        proxy.clear()
        _check_exactly_acked(agent, producer, topic, partitions)
    finally:
        assert agent.stop() == 0, agent.log_tail()

    assert proxy.counts["error_after_success"] > 0
    assert proxy.counts["drop"] > 0
    assert not producer.errors, producer.errors[:3]
    assert len(producer.acked) == n
    puts = proxy.entries("PUT", "/segments/")
    assert puts and all(e.if_none_match == "*" for e in puts), "a segment PUT was not create-only"


def test_create_only_existing_key_is_never_overwritten(
    s3: S3Server, proxy: FaultProxy, tmp_path: Path
) -> None:
    topic = "create-only"
    direct = s3.url("create-only")
    agent = _agent(tmp_path, s3.url("create-only", endpoint=proxy.endpoint), 1).start()
    try:
        producer = BackgroundProducer(
            agent.bootstrap,
            topic,
            1,
            idempotent=False,
            config={"message.timeout.ms": 5000, "retries": 3, "acks": "all"},
        )
        producer.produce(0, 1)
        assert producer.flush(30) == 0 and set(producer.acked) == {0}

        # Every segment key the agent PUTs is taken just before its PUT arrives.
        proxy.set(squat_puts=True, methods={"PUT"}, path_contains="/segments/")
        producer.produce(1, 5)
        assert producer.flush(30) == 0
        squatted = list(proxy.squatted)
        marks_during = high_watermarks(agent.bootstrap, topic, 1)
        proxy.clear()

        producer.produce(6, 5)
        assert producer.flush(30) == 0
        marks_after = high_watermarks(agent.bootstrap, topic, 1)
        keys = list_keys(direct)
    finally:
        assert agent.stop() == 0, agent.log_tail()

    assert squatted, "no PUT was intercepted"
    assert len(producer.errors) == 5, "a record was acked although its file was not written"
    assert set(producer.acked) == {0, 6, 7, 8, 9, 10}
    assert marks_during == {0: 1}, "a batch was committed although its PUT failed"
    assert marks_after == {0: 6}
    prefix = f"/{s3.bucket}/create-only/"
    for path in squatted:
        key = path.removeprefix(prefix)
        assert key in keys
        assert get_object(direct, key) == b"squatter:" + path.encode(), f"{key} was overwritten"
    puts = proxy.entries("PUT", "/segments/")
    assert all(e.if_none_match == "*" for e in puts), "a segment PUT was not create-only"
