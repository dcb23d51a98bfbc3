"""Crash points on S3 (moto): the agent process exits at a chosen step of the write path, a new
one starts on the same ports and stores, and idempotent producers carry on.

- after_put: the segment is in the bucket, never committed. Nothing was acked; the producer
  retries into a new segment; the orphan is deleted by GC within grace + one cycle.
- after_commit: the batches got offsets but nobody was answered. The retries are answered with
  the original offsets (sequence dedup), nothing is written twice.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent_process import AgentProcess
from tests.integration.faults_workload import (
    BackgroundProducer,
    high_watermarks,
    read_back,
    requires_settings,
)
from tests.s3_server import S3Server, list_keys, running

pytestmark = [
    pytest.mark.timeout(240),
    requires_settings("crash_point", "gc_interval_ms", "gc_grace_ms"),
]

GC_ARGS = ["--gc-interval-ms", "500", "--gc-grace-ms", "3000"]
CRASH_EXIT = 137


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with running("moto", tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def metadata_args(request: pytest.FixtureRequest) -> list[str]:
    """Embedded SQLite (inside the agent's data dir), or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return []
    return ["--metadata", str(request.getfixturevalue("pg_url"))]


def _metric(text: str, prefix: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))


def _crash_then_restart(
    tmp_path: Path, bucket: str, point: str, topic: str, n: int, metadata_args: list[str]
) -> tuple[AgentProcess, BackgroundProducer, list[str]]:
    base = ["--bucket", bucket, "--flush-interval-ms", "50", *GC_ARGS, *metadata_args]
    agent = AgentProcess(tmp_path / "agent", [*base, "--crash-point", point]).start()
    producer = BackgroundProducer(agent.bootstrap, topic, 1)
    producer.start(0, n)
    assert agent.proc is not None
    rc = agent.proc.wait(60)
    assert rc == CRASH_EXIT, agent.log_tail()
    assert f"crash point {point} reached" in agent.log_tail()
    with producer.lock:
        acked_before_restart = len(producer.acked)
    assert acked_before_restart == 0, "a record was acked although the agent died first"
    keys_at_crash = list_keys(bucket)
    agent.extra_args = base
    agent.start()
    return agent, producer, keys_at_crash


def test_killed_after_put_orphan_collected(
    s3: S3Server, tmp_path: Path, metadata_args: list[str]
) -> None:
    bucket, topic, n = s3.url(f"crash-after-put-{tmp_path.name}"), "crash-put", 400
    agent, producer, orphans = _crash_then_restart(
        tmp_path, bucket, "after_put", topic, n, metadata_args
    )
    restarted = time.monotonic()
    try:
        assert orphans, "the crashed agent's PUT did not reach the bucket"
        producer.join(150)
        # Grace 3 s + one 0.5 s cycle after the restart; the deadline only bounds the wait.
        deadline = time.monotonic() + 30
        while set(orphans) & set(list_keys(bucket)) and time.monotonic() < deadline:
            time.sleep(0.25)
        collected_after_s = time.monotonic() - restarted
        remaining = list_keys(bucket)
        got = read_back(agent.bootstrap, topic, 1, n)
        marks = high_watermarks(agent.bootstrap, topic, 1)
        metrics = agent.metrics()
    finally:
        assert agent.stop() == 0, agent.log_tail()
    print(f"orphans {len(orphans)} collected {collected_after_s:.1f}s after restart")

    assert not producer.errors, producer.errors[:3]
    assert len(producer.acked) == n
    assert not set(orphans) & set(remaining), "orphan segment files were not collected"
    assert remaining, "GC deleted committed segment files"
    assert marks == {0: n}, "records were written twice or lost"
    assert set(got) == {(i, p, off) for i, (p, off) in producer.acked.items()}
    assert set(got.values()) == {1}
    assert _metric(metrics, 'shoal_gc_deleted_files_total{kind="orphan"}') >= len(orphans)


def test_killed_after_commit_retry_gets_original_offsets(
    s3: S3Server, tmp_path: Path, metadata_args: list[str]
) -> None:
    bucket, topic, n = s3.url(f"crash-after-commit-{tmp_path.name}"), "crash-commit", 400
    agent, producer, keys_at_crash = _crash_then_restart(
        tmp_path, bucket, "after_commit", topic, n, metadata_args
    )
    try:
        assert keys_at_crash, "the crashed agent committed nothing"
        producer.join(150)
        got = read_back(agent.bootstrap, topic, 1, n)
        marks = high_watermarks(agent.bootstrap, topic, 1)
        remaining = list_keys(bucket)
    finally:
        assert agent.stop() == 0, agent.log_tail()

    assert not producer.errors, producer.errors[:3]
    assert len(producer.acked) == n
    # The first segment was committed before the crash and answered only through the retry:
    # had the retry been appended again, the log would be longer than n.
    assert marks == {0: n}, "the retried batches were written twice"
    assert set(got) == {(i, p, off) for i, (p, off) in producer.acked.items()}
    assert set(got.values()) == {1}
    assert set(keys_at_crash) <= set(remaining), "a committed segment file was deleted"
