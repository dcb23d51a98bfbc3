"""Operations: graceful shutdown flushes and answers waiting producers; metrics and status."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from pathlib import Path

from confluent_kafka import Producer

from tests.agent_process import AgentProcess
from tests.backends import Backend
from tests.integration import workload
from tests.integration.test_clients_roundtrip import create_topic


def test_sigterm_flushes_buffered_produce(tmp_path: Path, backend: Backend) -> None:
    # A flush interval far longer than the test: only the shutdown can seal this segment.
    args = [*backend.args, "--flush-interval-ms", "600000"]
    agent = AgentProcess(tmp_path / "a", args, env=backend.env).start()
    create_topic(agent.bootstrap, "graceful", 2)
    delivered: list[tuple[int, int]] = []
    errors: list[str] = []
    # Linger so the 100 records travel in a few requests: with one request per record the
    # agent stops reading the connection at connection_inflight_max (16) unanswered requests,
    # and records still unread at shutdown are never answered by this agent.
    p = Producer({"bootstrap.servers": agent.bootstrap, "linger.ms": 50})

    def cb(err: object, msg: object) -> None:
        if err is None:
            delivered.append((msg.partition(), msg.offset()))  # type: ignore[attr-defined]
        else:
            errors.append(str(err))

    # The first segment after a quiet spell is sealed at once; the next one waits an interval.
    p.produce("graceful", b"first", partition=0, on_delivery=cb)
    assert p.flush(10) == 0 and delivered == [(0, 0)]
    delivered.clear()
    for i in range(100):
        p.produce("graceful", f"v{i}".encode(), partition=i % 2, on_delivery=cb)
    p.poll(0.5)
    assert delivered == [], "nothing may be acked before the segment is committed"

    stopper = threading.Thread(target=agent.stop)
    stopper.start()
    deadline = time.monotonic() + 30
    while len(delivered) + len(errors) < 100 and time.monotonic() < deadline:
        p.poll(0.1)
    stopper.join(30)
    assert agent.proc is not None and agent.proc.returncode == 0, agent.log_tail()
    assert errors == []
    assert sorted(delivered) == sorted(
        [(0, i) for i in range(1, 51)] + [(1, i) for i in range(50)]
    )

    again = AgentProcess(tmp_path / "a", backend.args, env=backend.env).start()
    try:
        marks = workload.watermarks_confluent(again.bootstrap, "graceful", 2)
        assert marks == {0: (0, 51), 1: (0, 50)}
    finally:
        again.stop()


def test_metrics_and_status(agent: AgentProcess) -> None:
    create_topic(agent.bootstrap, "observed", 1)
    workload.produce_confluent(agent.bootstrap, "observed", 1000, 1, "none")
    got = workload.consume_confluent(agent.bootstrap, "observed", 1000, 1)
    assert len(got[0]) == 1000

    text = agent.metrics()
    for name in (
        'shoal_requests_total{api="Produce"}',
        'shoal_requests_total{api="Fetch"}',
        'shoal_request_latency_seconds_bucket{api="Produce"',
        'shoal_object_store_requests_total{cause="produce",op="put"}',
        'shoal_object_store_requests_total{cause="fetch",op="get"}',
        'shoal_object_store_bytes_total{cause="produce",op="put"}',
        "shoal_block_cache_hits_total",
        "shoal_block_cache_misses_total",
        'shoal_segment_flushes_total{reason="time"}',
        'shoal_fetch_bytes_total{cross_zone="false"}',
    ):
        assert name in text, name
    puts = _metric(text, 'shoal_object_store_requests_total{cause="produce",op="put"}')
    assert puts >= 1

    with urllib.request.urlopen(f"{agent.http}/v1/status", timeout=10) as resp:
        status = json.loads(resp.read())
    assert status["agent"]["kafka"].endswith(f":{agent.kafka_port}")
    assert status["agent"]["flush_interval_ms"] == 20  # the `agent` fixture's flag
    assert status["object_store"]["requests"]["put"] >= 1
    assert "Produce" in status["apis"]


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not found")
