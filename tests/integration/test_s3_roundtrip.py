"""Produce/consume round trips with the agent on real S3-compatible servers (moto, SeaweedFS)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent_process import AgentProcess
from tests.integration import workload
from tests.s3_server import S3Server, list_keys, running

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module", params=["moto", "seaweedfs"])
def s3(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[S3Server]:
    with running(request.param, tmp_path_factory.mktemp(request.param)) as server:
        yield server


def test_confluent_roundtrip_on_s3(s3: S3Server, tmp_path: Path) -> None:
    bucket = s3.url("roundtrip")
    args = ["--bucket", bucket, "--flush-interval-ms", "50", "--default-partitions", "4"]
    agent = AgentProcess(tmp_path / "agent", args).start()
    n, partitions = 3000, 4
    try:
        workload.produce_confluent(agent.bootstrap, "s3-rt", n, partitions, "lz4")
        got = workload.consume_confluent(agent.bootstrap, "s3-rt", n, partitions)
        marks = workload.watermarks_confluent(agent.bootstrap, "s3-rt", partitions)
        metrics = agent.metrics()
    finally:
        assert agent.stop() == 0, agent.log_tail()

    assert got == workload.expected_by_partition(n, partitions)
    assert marks == {p: (0, n // partitions) for p in range(partitions)}
    keys = list_keys(bucket)
    assert keys, "no segment file reached the bucket"
    assert all(k.startswith("segments/") and k.endswith(".seg") for k in keys)
    put_line = next(
        line for line in metrics.splitlines()
        if line.startswith('shoal_object_store_requests_total{cause="produce",op="put"}')
    )  # fmt: skip
    assert float(put_line.split()[-1]) >= len(keys)


def test_restart_reads_from_s3(s3: S3Server, tmp_path: Path) -> None:
    """A new agent process (empty caches) serves what the previous one wrote, from S3."""
    bucket = s3.url("restart")
    args = ["--bucket", bucket, "--flush-interval-ms", "50", "--default-partitions", "4"]
    n, partitions = 500, 2
    first = AgentProcess(tmp_path / "agent", args).start()
    try:
        workload.produce_confluent(first.bootstrap, "s3-restart", n, partitions, "zstd")
    finally:
        assert first.stop() == 0, first.log_tail()
    second = AgentProcess(tmp_path / "agent", args).start()
    try:
        got = workload.consume_confluent(second.bootstrap, "s3-restart", n, partitions)
    finally:
        assert second.stop() == 0, second.log_tail()
    assert got == workload.expected_by_partition(n, partitions)
