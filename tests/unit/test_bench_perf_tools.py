"""The bench's reading of Kafka's perf-tool summaries and its tables with Kafka as a peer.

The tool outputs below are what Kafka 4.4's kafka-producer-perf-test and
kafka-consumer-perf-test printed on this machine (deprecation warnings included).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from bench_model import (
    MB,
    BrokerResult,
    MiB,
    PhaseError,
    Workload,
    parse_consumer_perf,
    parse_producer_perf,
)
from bench_report import combine_rounds, ratio_pairs, render_table
from produce_consume import parse_args

PRODUCER_OUT = """\
Option --producer-props has been deprecated and will be removed in a future version. Use --command-property instead.
1 records sent, 0.2 records/sec (0.00 MB/sec), 1198.0 ms avg latency, 1198.0 ms max latency.
11025 records sent, 2171.1 records/sec (2.12 MB/sec), 3612.2 ms avg latency, 5346.0 ms max latency.
20000 records sent, 1751.773671 records/sec (1.71 MB/sec), 4236.81 ms avg latency, 5383.00 ms max latency, 4814 ms 50th, 5260 ms 95th, 5362 ms 99th, 5377 ms 99.9th.
"""  # noqa: E501

CONSUMER_OUT = """\
Warning: --messages is deprecated. Use --num-records instead.
start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
2026-12-03 06:18:21:387, 2026-12-03 06:18:34:179, 19.5313, 1.5268, 20000, 1563.4772, 10008, 2784, 7.0155, 7183.9080
"""  # noqa: E501


def test_producer_summary_is_the_last_line_with_percentiles() -> None:
    perf = parse_producer_perf(PRODUCER_OUT)
    assert perf.records == 20000
    assert perf.records_s == pytest.approx(1751.773671)
    assert perf.mib_s == pytest.approx(1.71)
    assert perf.avg_ms == pytest.approx(4236.81)
    assert perf.max_ms == pytest.approx(5383.0)
    assert (perf.p50_ms, perf.p95_ms, perf.p99_ms, perf.p999_ms) == (4814, 5260, 5362, 5377)


def test_producer_without_summary_is_a_phase_error() -> None:
    # A tool killed mid-run leaves only its 5-second progress lines.
    progress_only = "\n".join(PRODUCER_OUT.splitlines()[:3])
    with pytest.raises(PhaseError, match="no summary line"):
        parse_producer_perf(progress_only)


def test_consumer_result_is_read_by_column_name() -> None:
    perf = parse_consumer_perf(CONSUMER_OUT)
    assert perf.records == 20000
    assert perf.mib == pytest.approx(19.5313)
    assert perf.mib_s == pytest.approx(1.5268)
    assert perf.records_s == pytest.approx(1563.4772)
    assert perf.join_ms == 10008
    assert perf.fetch_ms == 2784
    assert perf.fetch_mib_s == pytest.approx(7.0155)
    assert perf.fetch_records_s == pytest.approx(7183.908)
    # Kafka's MB is 2^20 bytes: 20000 records of 1 KiB are 19.53 of them.
    assert perf.mib * MiB == pytest.approx(20000 * 1024, rel=1e-5)


def test_consumer_columns_in_another_order_still_parse() -> None:
    header, row = CONSUMER_OUT.splitlines()[1:3]
    names, values = header.split(", "), row.split(", ")
    order = list(reversed(range(len(names))))
    swapped = ", ".join(names[i] for i in order) + "\n" + ", ".join(values[i] for i in order)
    assert parse_consumer_perf(swapped) == parse_consumer_perf(CONSUMER_OUT)


@pytest.mark.parametrize(
    "text",
    [
        "",
        CONSUMER_OUT.splitlines()[1],  # header, no result (the tool died)
        CONSUMER_OUT.replace("fetch.nMsg.sec", "other"),  # a column missing
        CONSUMER_OUT.replace(", 7183.9080", ""),  # a value missing
        CONSUMER_OUT.replace("7183.9080", "n/a"),  # not a number
    ],
)
def test_consumer_without_result_is_a_phase_error(text: str) -> None:
    with pytest.raises(PhaseError, match="no result line"):
        parse_consumer_perf(text)


WL = Workload(1024, 8, 256 * MiB, "none", None, 10.0, True, 300.0, 30.0)


def _row(broker: str, client: str, produce: float, consume: float, p50: float) -> BrokerResult:
    return BrokerResult(
        broker=broker,
        client=client,
        ok=True,
        produce_mb_s=produce,
        consume_mb_s=consume,
        p50_ms=p50,
        p99_ms=p50 * 2,
        max_ms=p50 * 4,
        latency_achieved_rate=1000.0,
    )


def test_table_has_shoal_against_tansu_and_kafka_for_each_client() -> None:
    results = [
        _row("shoal", "librdkafka", 50.0, 100.0, 20.0),
        _row("tansu", "librdkafka", 100.0, 100.0, 10.0),
        _row("kafka", "librdkafka", 200.0, 400.0, 5.0),
        _row("shoal", "java", 30.0, 60.0, 40.0),
        _row("kafka", "java", 120.0, 120.0, 10.0),
    ]
    text = render_table(WL, results)
    lines = text.splitlines()
    java_at = lines.index(next(line for line in lines if line.startswith("client java")))
    librdkafka_part, java_part = lines[:java_at], lines[java_at:]
    ratio = {
        line.split()[1]: line.split()[2:] for line in librdkafka_part if line.startswith("ratio")
    }
    assert ratio["shoal/tansu"][:3] == ["0.50", "1.00", "2.00"]
    assert ratio["shoal/kafka"][:3] == ["0.25", "0.25", "4.00"]
    java_ratio = [line.split() for line in java_part if line.startswith("ratio")]
    assert java_ratio == [["ratio", "shoal/kafka", "0.25", "0.50", "4.00", "4.00", "4.00"]]
    assert "(full load)" in next(line for line in java_part if line.startswith("shoal"))


def test_ratio_pairs_on_seaweedfs_labels() -> None:
    results = [
        _row("shoal s3+pg", "librdkafka", 1, 1, 1),
        _row("tansu s3", "librdkafka", 1, 1, 1),
        _row("kafka local-disk", "librdkafka", 1, 1, 1),
    ]
    pairs = [(a.broker, b.broker) for a, b in ratio_pairs(results)]
    assert pairs == [("shoal s3+pg", "tansu s3"), ("shoal s3+pg", "kafka local-disk")]


def test_combine_rounds_keeps_the_client_and_the_java_medians() -> None:
    rounds = [_row("kafka", "java", v, v, v) for v in (10.0, 30.0, 20.0)]
    for r, wall in zip(rounds, (5.0, 9.0, 6.0), strict=True):
        r.produce_wall_seconds = wall
        r.consume_join_ms = wall * 100
    combined = combine_rounds(rounds)
    assert combined.client == "java"
    assert combined.produce_mb_s == 20.0
    assert combined.produce_wall_seconds == 6.0
    assert combined.consume_join_ms == 600.0


def test_args_default_brokers_include_kafka_and_clients_are_checked() -> None:
    args = parse_args([])
    assert args.broker_names == ["shoal", "shoal-mem", "tansu", "kafka"]
    assert args.client_names == ("librdkafka",)
    assert parse_args(["--backend", "seaweedfs-pg"]).broker_names == ["shoal", "tansu", "kafka"]
    both = parse_args(["--brokers", "kafka,shoal", "--clients", "librdkafka,java"])
    assert both.client_names == ("librdkafka", "java")
    for bad in ("jvm", "java,java", ""):
        with pytest.raises(SystemExit):
            parse_args(["--clients", bad])


def test_java_produce_mb_s_is_in_bench_units() -> None:
    # The bench's MB is 10^6 bytes; the tool's MB/sec column is MiB/s rounded to 2 digits.
    perf = parse_producer_perf(PRODUCER_OUT)
    assert perf.records_s * 1024 / MB == pytest.approx(perf.mib_s * MiB / MB, rel=0.01)
