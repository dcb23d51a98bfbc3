"""The benchmark's workload, results, sizes and progress line (no broker, no client)."""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from dataclasses import dataclass

MB = 1_000_000
MiB = 1024 * 1024
COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")
BROKERS = ("shoal", "shoal-mem", "tansu", "kafka")
# librdkafka: confluent-kafka in this process (bench_phases.py); java: Kafka's own perf tools,
# one JVM per phase (tests/kafka_dist.py).
CLIENTS = ("librdkafka", "java")
# Distinct payloads come from one random pool; capped so the bench's own memory stays small.
PAYLOAD_POOL_BYTES_MAX = 64 * MiB
PROGRESS_INTERVAL_S = 0.25
FLUSH_TIMEOUT_S = 60.0


class PhaseError(RuntimeError):
    """A phase timed out, stalled or saw errors it cannot measure through."""


@dataclass(frozen=True)
class Workload:
    record_bytes: int
    partitions: int
    total_bytes: int
    compression: str
    rate: float | None
    latency_seconds: float
    idempotence: bool
    phase_timeout_s: float
    stall_timeout_s: float

    @property
    def records(self) -> int:
        return max(1, self.total_bytes // self.record_bytes)


@dataclass
class BrokerResult:
    broker: str
    client: str = "librdkafka"
    ok: bool = False
    error: str | None = None
    produce_mb_s: float | None = None
    produce_records_s: float | None = None
    produce_seconds: float | None = None
    produce_records: int = 0
    produce_errors: int = 0
    consume_mb_s: float | None = None
    consume_records_s: float | None = None
    consume_seconds: float | None = None
    consume_records: int = 0
    # java only: each tool's whole run, JVM start-up included (its own figures leave that out),
    # and the consumer's group join, which its fetch figures leave out.
    produce_wall_seconds: float | None = None
    consume_wall_seconds: float | None = None
    consume_join_ms: float | None = None
    latency_target_rate: float | None = None
    latency_achieved_rate: float | None = None
    latency_records: int = 0
    latency_errors: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None


@dataclass(frozen=True)
class ProducerPerf:
    """The final line of kafka-producer-perf-test. Kafka's "MB" is 2^20 bytes."""

    records: int
    records_s: float
    mib_s: float
    avg_ms: float
    max_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    p999_ms: float


_PRODUCER_SUMMARY = re.compile(
    r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\),"
    r" ([\d.]+) ms avg latency, ([\d.]+) ms max latency,"
    r" (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99\.9th"
)


def parse_producer_perf(stdout: str) -> ProducerPerf:
    """The summary of kafka-producer-perf-test's output; the lines it prints every 5 s while
    running have no percentiles and are skipped."""
    found = [m for line in stdout.splitlines() if (m := _PRODUCER_SUMMARY.search(line))]
    if not found:
        raise PhaseError(f"kafka-producer-perf-test printed no summary line:\n{stdout[-1500:]}")
    g = found[-1].groups()
    return ProducerPerf(int(g[0]), *(float(v) for v in g[1:]))


@dataclass(frozen=True)
class ConsumerPerf:
    """The result line of kafka-consumer-perf-test (no --show-detailed-stats): totals from its
    first poll, and `fetch_*` from the end of the group join to the last record."""

    mib: float
    mib_s: float
    records: int
    records_s: float
    join_ms: float
    fetch_ms: float
    fetch_mib_s: float
    fetch_records_s: float


_CONSUMER_COLUMNS = {
    "data.consumed.in.MB": "mib",
    "MB.sec": "mib_s",
    "data.consumed.in.nMsg": "records",
    "nMsg.sec": "records_s",
    "rebalance.time.ms": "join_ms",
    "fetch.time.ms": "fetch_ms",
    "fetch.MB.sec": "fetch_mib_s",
    "fetch.nMsg.sec": "fetch_records_s",
}


def parse_consumer_perf(stdout: str) -> ConsumerPerf:
    """The line under kafka-consumer-perf-test's header (`start.time, end.time, ...`), read by
    column name (the two times are dates with spaces but no commas)."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    for i, line in enumerate(lines[:-1]):
        if "data.consumed.in.nMsg" not in line:
            continue
        header = [name.strip() for name in line.split(",")]
        values = [value.strip() for value in lines[i + 1].split(",")]
        missing = [c for c in _CONSUMER_COLUMNS if c not in header]
        if missing or len(values) != len(header):
            break
        row = dict(zip(header, values, strict=True))
        try:
            fields = {attr: float(row[col]) for col, attr in _CONSUMER_COLUMNS.items()}
        except ValueError:
            break
        records = fields.pop("records")
        return ConsumerPerf(records=int(records), **fields)
    raise PhaseError(f"kafka-consumer-perf-test printed no result line:\n{stdout[-1500:]}")


def parse_size(text: str) -> int:
    """'256MiB', '64M', '1GiB', '500MB', '1048576' -> bytes (bare K/M/G are binary)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)(b?)\s*", text, re.IGNORECASE)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 256MiB, 64M, 1GiB)")
    number, unit, binary, byte_suffix = m.groups()
    power = "kmgt".find(unit.lower()) + 1 if unit else 0
    base = 1000 if (unit and byte_suffix and not binary) else 1024
    value = int(float(number) * base**power)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive: {text!r}")
    return value


def fmt_bytes(n: float) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", MiB), ("KiB", 1024)):
        if n >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n:.0f} B"


class Progress:
    """One rewritten status line on stderr when it is a terminal; phase summaries always."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.tty = enabled and sys.stderr.isatty()
        self.last = 0.0
        self.width = 0

    def update(self, text: str, force: bool = False) -> None:
        if not self.tty:
            return
        now = time.monotonic()
        if not force and now - self.last < PROGRESS_INTERVAL_S:
            return
        self.last = now
        sys.stderr.write("\r" + text.ljust(self.width))
        self.width = len(text)
        sys.stderr.flush()

    def done(self, text: str, always: bool = False) -> None:
        if not (self.enabled or always):
            return
        if self.tty:
            sys.stderr.write("\r" + " " * self.width + "\r")
            self.width = 0
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


def payloads(record_bytes: int, total_bytes: int) -> list[bytes]:
    # Hex of random bytes: distinct records that compress about 2:1, so codecs do real work
    # without the flattering ratios of repeated or zero-filled payloads.
    pool_bytes = min(PAYLOAD_POOL_BYTES_MAX, max(total_bytes, record_bytes))
    count = max(1, pool_bytes // record_bytes)
    pool = os.urandom((count * record_bytes + 1) // 2).hex().encode()
    return [pool[i * record_bytes : (i + 1) * record_bytes] for i in range(count)]
