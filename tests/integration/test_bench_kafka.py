"""bench/: Apache Kafka as a peer broker and Kafka's perf tools as a second client.

Real processes throughout: a KRaft Kafka from tests/kafka_dist.py, a Shoal agent, librdkafka in
the bench and the JVM perf tools. Asserts that every figure is there, never what it is.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from confluent_kafka.admin import AdminClient

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

from brokers import create_topic, start_kafka  # noqa: E402

BENCH_TIMEOUT_S = 240.0


def test_start_kafka_serves_metadata_and_stops(tmp_path: Path) -> None:
    with start_kafka(tmp_path) as broker:
        assert broker.process is not None
        create_topic(broker, "bench-check", 3, timeout_s=30.0)
        md = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10.0)
        assert len(md.topics["bench-check"].partitions) == 3
        process = broker.process
    assert process.poll() is not None, "the Kafka JVM outlived start_kafka"


def test_tiny_bench_run_has_figures_for_both_brokers_and_clients(tmp_path: Path) -> None:
    argv = [
        sys.executable, str(REPO / "bench" / "produce_consume.py"),
        "--brokers", "kafka,shoal", "--clients", "librdkafka,java",
        "--total-bytes", "2MiB", "--rounds", "1", "--latency-seconds", "1",
        "--json", "--quiet",
    ]  # fmt: skip
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=BENCH_TIMEOUT_S, cwd=tmp_path, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    rows = {(r["broker"], r["client"]): r for r in report["results"]}
    assert set(rows) == {(b, c) for b in ("kafka", "shoal") for c in ("librdkafka", "java")}
    records = 2 * 1024 * 1024 // 1024
    for key, row in rows.items():
        assert row["ok"], (key, row["error"])
        assert row["produce_records"] == records, key
        assert row["consume_records"] >= records, key
        for figure in ("produce_mb_s", "produce_records_s", "consume_mb_s", "p50_ms", "p99_ms"):
            assert row[figure] is not None and row[figure] > 0, (key, figure)
    for broker in ("kafka", "shoal"):
        java = rows[(broker, "java")]
        assert java["produce_wall_seconds"] > 0 and java["consume_wall_seconds"] > 0
        assert java["consume_join_ms"] is not None
    assert set(report["rounds"]) == {f"{b}/{c}" for b, c in rows}
    assert report["clients"] == ["librdkafka", "java"]
    assert any("java rows" in line for line in report["caveats"])
    # The table prints Shoal against Kafka under each client.
    assert done.stdout.count("ratio shoal/kafka") == 2, done.stdout
