"""Produce/consume benchmark: Shoal against the Tansu peer broker, same workload, same run.

Per broker: (1) produce `--total-bytes` as fast as possible and time it until the last delivery
report; (2) read the topic back from the beginning; (3) produce at a paced rate (default half
of the peak from phase 1) for `--latency-seconds` and record each message's latency from
produce() to its delivery report. MB/s counts record value bytes, 1 MB = 10^6 bytes.
Every broker runs `--rounds` times (default 5), interleaved; the table shows medians.

    .venv/bin/python bench/produce_consume.py --total-bytes 64MiB

`--backend seaweedfs-pg` starts SeaweedFS (S3) and a durable PostgreSQL for the run: Shoal
keeps segments in SeaweedFS and metadata in PostgreSQL, Tansu uses its `s3://` engine on the
same SeaweedFS. The default `embedded` runs Shoal on its local stores and Tansu in memory.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)

import servers
from brokers import BrokerError, RunningBroker, StorageOptions, broker_for, create_topic

MB = 1_000_000
MiB = 1024 * 1024
COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")
BROKERS = ("shoal", "shoal-mem", "tansu")
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
    ok: bool = False
    error: str | None = None
    produce_mb_s: float | None = None
    produce_seconds: float | None = None
    produce_records: int = 0
    produce_errors: int = 0
    consume_mb_s: float | None = None
    consume_seconds: float | None = None
    consume_records: int = 0
    latency_target_rate: float | None = None
    latency_achieved_rate: float | None = None
    latency_records: int = 0
    latency_errors: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None


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


def producer_config(
    bootstrap: str, wl: Workload, on_delivery: Callable[..., None]
) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "linger.ms": 5,
        "batch.size": 1_000_000,
        "acks": "all",
        "enable.idempotence": wl.idempotence,
        "compression.type": wl.compression,
        "message.timeout.ms": int(wl.phase_timeout_s * 1000),
        "on_delivery": on_delivery,
    }


class Watchdog:
    """Ends a phase that runs past its deadline or makes no progress for too long."""

    def __init__(self, phase: str, broker: RunningBroker, wl: Workload) -> None:
        self.phase = phase
        self.broker = broker
        self.start = time.monotonic()
        self.deadline = self.start + wl.phase_timeout_s
        self.stall_s = wl.stall_timeout_s
        self.last_progress = self.start
        self.last_count = -1

    def check(self, count: int) -> None:
        now = time.monotonic()
        if count != self.last_count:
            self.last_count = count
            self.last_progress = now
        if now > self.deadline:
            raise PhaseError(f"{self.phase}: over the phase timeout ({count} records done)")
        if now - self.last_progress > self.stall_s:
            raise PhaseError(f"{self.phase}: no progress for {self.stall_s:.0f} s at {count}")
        self.broker.check_alive()


def phase_produce(
    broker: RunningBroker, topic: str, wl: Workload, values: list[bytes], progress: Progress
) -> tuple[float, int, int]:
    """Produce all records as fast as possible; return (seconds, delivered, failed)."""
    delivered = 0
    failed: list[str] = []

    def on_delivery(err: KafkaError | None, _msg: Message) -> None:
        nonlocal delivered
        if err is None:
            delivered += 1
        else:
            failed.append(str(err))

    producer = Producer(producer_config(broker.bootstrap, wl, on_delivery))
    n, parts, count = wl.records, wl.partitions, len(values)
    watchdog = Watchdog("produce", broker, wl)

    def show() -> None:
        done = delivered * wl.record_bytes
        elapsed = max(1e-9, time.monotonic() - watchdog.start)
        progress.update(
            f"[{broker.name}] produce {fmt_bytes(done)} / {fmt_bytes(n * wl.record_bytes)}"
            f"  {done / elapsed / MB:.1f} MB/s"
        )

    # Connection and metadata are set-up costs, not throughput.
    producer.list_topics(topic, timeout=wl.stall_timeout_s)
    start = time.perf_counter()
    for i in range(n):
        value = values[i % count]
        while True:
            try:
                producer.produce(topic, value, partition=i % parts)
                break
            except BufferError:
                # The local queue is full: serve delivery reports until there is room.
                producer.poll(0.05)
                watchdog.check(delivered + len(failed))
                show()
        if i & 1023 == 0:
            producer.poll(0)
            watchdog.check(delivered + len(failed))
            show()
    while delivered + len(failed) < n:
        producer.poll(0.1)
        watchdog.check(delivered + len(failed))
        show()
    seconds = time.perf_counter() - start
    producer.flush(FLUSH_TIMEOUT_S)
    if failed:
        progress.done(
            f"[{broker.name}] produce: {len(failed)} delivery errors, first: {failed[0]}",
            always=True,
        )
    return seconds, delivered, len(failed)


def phase_consume(
    broker: RunningBroker, topic: str, wl: Workload, expected: int, progress: Progress
) -> tuple[float, int, int]:
    """Read the topic from the beginning until `expected` records; return (s, records, bytes)."""
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            # assign() needs no group, but the client insists on an id.
            "group.id": f"bench-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "fetch.max.bytes": 64 * MiB,
            "max.partition.fetch.bytes": 8 * MiB,
            "receive.message.max.bytes": 65 * MiB,
            "queued.max.messages.kbytes": 256 * 1024,
            # When its prefetch queue is momentarily full, librdkafka otherwise stops fetching
            # a partition for 500 ms or more: with a broker that answers faster than the
            # application drains the queue, that backoff, not the broker, set the figure
            # (one run in ~8 read 206 instead of ~850 MB/s). Same setting for every broker.
            "fetch.queue.backoff.ms": 10,
        }
    )
    records = value_bytes = 0
    watchdog = Watchdog("consume", broker, wl)
    try:
        # Without the topic's leaders in its cache the client backs off ~1 s before ListOffsets.
        consumer.list_topics(topic, timeout=wl.stall_timeout_s)
        start = time.perf_counter()
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(wl.partitions)])
        while records < expected:
            # consume() waits for the full count or the timeout, so never ask for more than
            # is left: the last call would otherwise idle for the whole timeout.
            batch = consumer.consume(num_messages=min(10_000, expected - records), timeout=0.5)
            for msg in batch:
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        continue
                    if err.fatal() or not err.retriable():
                        raise PhaseError(f"consume: {err}")
                    continue
                records += 1
                value = msg.value()
                value_bytes += len(value) if value is not None else 0
            seconds = time.perf_counter() - start
            watchdog.check(records)
            progress.update(
                f"[{broker.name}] consume {records}/{expected} records"
                f"  {value_bytes / max(1e-9, seconds) / MB:.1f} MB/s"
            )
        seconds = time.perf_counter() - start
    finally:
        consumer.close()
    return seconds, records, value_bytes


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(0, min(len(sorted_values) - 1, int(q * len(sorted_values) + 0.999999) - 1))
    return sorted_values[rank]


def phase_latency(
    broker: RunningBroker,
    topic: str,
    wl: Workload,
    values: list[bytes],
    rate: float,
    progress: Progress,
) -> tuple[list[float], int, float]:
    """Produce at `rate` records/s; return (latencies in s, failed or undelivered, rate reached)."""
    latencies: list[float] = []
    failed = 0

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        nonlocal failed
        if err is not None:
            failed += 1
            return
        # librdkafka stamps the message at produce() and measures to its delivery report, so
        # the time the report waits for our poll() is not counted against the broker.
        latency = msg.latency()
        if latency is not None:
            latencies.append(latency)

    producer = Producer(producer_config(broker.bootstrap, wl, on_delivery))
    # Warm-up: connection, metadata and producer id are set-up costs, not produce latency.
    producer.produce(topic, values[0], partition=0)
    if producer.flush(FLUSH_TIMEOUT_S) > 0:
        raise PhaseError("latency: warm-up message not delivered")
    latencies.clear()
    failed = 0

    target = max(1, int(rate * wl.latency_seconds))
    parts, count = wl.partitions, len(values)
    watchdog = Watchdog("latency", broker, wl)
    sent = 0
    start = time.perf_counter()
    last_send = start
    while sent < target:
        now = time.perf_counter()
        due = min(target, int((now - start) * rate) + 1)
        while sent < due:
            try:
                producer.produce(topic, values[sent % count], partition=sent % parts)
            except BufferError:
                break
            sent += 1
        last_send = time.perf_counter()
        producer.poll(0)
        watchdog.check(sent + len(latencies))
        progress.update(
            f"[{broker.name}] latency {sent}/{target} sent at {rate:.0f} rec/s,"
            f" {len(latencies)} delivered"
        )
        wait = start + sent / rate - time.perf_counter()
        if wait > 0.002:
            producer.poll(min(wait, 0.01))
        elif wait > 0:
            time.sleep(wait)
    achieved = sent / max(1e-9, last_send - start)
    # Messages still queued after the flush count as failed: the broker did not keep up with
    # the rate, and the percentiles then cover only the delivered ones.
    remaining = producer.flush(min(wl.phase_timeout_s, FLUSH_TIMEOUT_S))
    return latencies, failed + remaining, achieved


def bench_broker(
    name: str,
    bootstrap: str | None,
    flush_interval_ms: int | None,
    wl: Workload,
    progress: Progress,
    storage: StorageOptions | None = None,
    label: str | None = None,
    parent: Path | None = None,
) -> BrokerResult:
    result = BrokerResult(broker=label or name)
    values = payloads(wl.record_bytes, wl.total_bytes)
    try:
        with broker_for(name, bootstrap, flush_interval_ms, storage, parent) as broker:
            progress.done(f"[{name}] up at {broker.bootstrap}")
            topic = f"bench-{uuid.uuid4().hex[:12]}"
            create_topic(broker, topic, wl.partitions, timeout_s=30.0)

            seconds, delivered, failed = phase_produce(broker, topic, wl, values, progress)
            result.produce_seconds = seconds
            result.produce_records = delivered
            result.produce_errors = failed
            result.produce_mb_s = delivered * wl.record_bytes / seconds / MB
            progress.done(
                f"[{name}] produce: {fmt_bytes(delivered * wl.record_bytes)} in {seconds:.2f} s"
                f" = {result.produce_mb_s:.1f} MB/s ({delivered / seconds:.0f} rec/s)"
            )

            seconds, records, value_bytes = phase_consume(broker, topic, wl, delivered, progress)
            result.consume_seconds = seconds
            result.consume_records = records
            result.consume_mb_s = value_bytes / seconds / MB
            progress.done(
                f"[{name}] consume: {records} records in {seconds:.2f} s"
                f" = {result.consume_mb_s:.1f} MB/s"
            )

            peak = delivered / result.produce_seconds
            rate = wl.rate if wl.rate is not None else max(1.0, peak / 2)
            result.latency_target_rate = rate
            latencies, failed, achieved = phase_latency(broker, topic, wl, values, rate, progress)
            result.latency_records = len(latencies)
            result.latency_errors = failed
            result.latency_achieved_rate = achieved
            if not latencies:
                raise PhaseError("latency: no message delivered")
            latencies.sort()
            result.p50_ms = percentile(latencies, 0.50) * 1000
            result.p99_ms = percentile(latencies, 0.99) * 1000
            result.max_ms = latencies[-1] * 1000
            progress.done(
                f"[{name}] latency at {achieved:.0f} rec/s: p50 {result.p50_ms:.1f} ms,"
                f" p99 {result.p99_ms:.1f} ms, max {result.max_ms:.1f} ms"
            )
            result.ok = result.produce_errors == 0 and result.latency_errors == 0
            if not result.ok:
                result.error = (
                    f"delivery errors: {result.produce_errors} in produce,"
                    f" {result.latency_errors} failed or undelivered in latency"
                )
    except (BrokerError, PhaseError) as exc:
        result.error = str(exc)
        progress.done(f"[{name}] FAILED: {exc}", always=True)
    return result


def _cell(value: float | None, width: int, digits: int = 1) -> str:
    return (f"{value:.{digits}f}" if value is not None else "-").rjust(width)


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


_MEDIAN_FIELDS = (
    "produce_mb_s",
    "consume_mb_s",
    "latency_achieved_rate",
    "p50_ms",
    "p99_ms",
    "max_ms",
)


def combine_rounds(rounds: list[BrokerResult]) -> BrokerResult:
    """One broker's rounds as one row: the median of each figure over the rounds that
    measured it; not ok if any round failed (its first error is kept)."""
    first = rounds[0]
    combined = BrokerResult(broker=first.broker, ok=all(r.ok for r in rounds))
    combined.error = next((r.error for r in rounds if r.error), None)
    for field in _MEDIAN_FIELDS:
        values = [v for r in rounds if (v := getattr(r, field)) is not None]
        setattr(combined, field, statistics.median(values) if values else None)
    combined.produce_records = sum(r.produce_records for r in rounds)
    combined.produce_errors = sum(r.produce_errors for r in rounds)
    combined.consume_records = sum(r.consume_records for r in rounds)
    combined.latency_records = sum(r.latency_records for r in rounds)
    combined.latency_errors = sum(r.latency_errors for r in rounds)
    return combined


def render_rounds(per_broker: dict[str, list[BrokerResult]]) -> str:
    """Each round's produce and consume figures, so the spread behind the medians shows."""
    lines = ["per round, produce / consume MB/s:"]
    for name, rounds in per_broker.items():
        cells = "  ".join(
            f"{_cell(r.produce_mb_s, 0, 0).strip()}/{_cell(r.consume_mb_s, 0, 0).strip()}"
            for r in rounds
        )
        lines.append(f"  {name:<18}{cells}")
    return "\n".join(lines)


def render_table(wl: Workload, results: list[BrokerResult], rounds: int = 1) -> str:
    idem = "idempotent" if wl.idempotence else "not idempotent"
    lines = [
        f"workload: {wl.record_bytes} B records, {wl.partitions} partitions,"
        f" {fmt_bytes(wl.total_bytes)}, compression {wl.compression}, acks=all, {idem}",
    ]
    if rounds > 1:
        lines.append(f"medians of {rounds} rounds, brokers interleaved in each round")
    lines += [
        f"{'broker':<20}{'produce MB/s':>13}{'consume MB/s':>14}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'max ms':>9}  latency at",
    ]
    for r in results:
        at = f"{r.latency_achieved_rate:.0f} rec/s" if r.latency_achieved_rate else ""
        row = (
            f"{r.broker:<20}{_cell(r.produce_mb_s, 13)}{_cell(r.consume_mb_s, 14)}"
            f"{_cell(r.p50_ms, 9)}{_cell(r.p99_ms, 9)}{_cell(r.max_ms, 9)}  {at}"
        )
        if r.error:
            row += f"  ({r.error.splitlines()[0][:80]})"
        lines.append(row.rstrip())
    # Every other broker against the peer (Tansu; the last broker when Tansu did not run).
    b = next((r for r in results if r.broker.startswith("tansu")), results[-1])
    for a in results:
        if a is b:
            continue
        label = f"ratio {a.broker}/{b.broker}"
        if len(label) > 19:  # its own line, so the figures stay under their columns
            lines.append(label)
            label = ""
        lines.append(
            f"{label:<20}"
            f"{_cell(_ratio(a.produce_mb_s, b.produce_mb_s), 13, 2)}"
            f"{_cell(_ratio(a.consume_mb_s, b.consume_mb_s), 14, 2)}"
            f"{_cell(_ratio(a.p50_ms, b.p50_ms), 9, 2)}"
            f"{_cell(_ratio(a.p99_ms, b.p99_ms), 9, 2)}"
            f"{_cell(_ratio(a.max_ms, b.max_ms), 9, 2)}"
        )
    if len(results) > 1:
        lines.append("(ratios: throughput higher is better, latency lower is better)")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--record-bytes", type=int, default=1024, help="value size (default 1024)")
    p.add_argument("--partitions", type=int, default=8, help="topic partitions (default 8)")
    p.add_argument("--total-bytes", type=parse_size, default=256 * MiB, help="default 256MiB")
    p.add_argument("--compression", choices=COMPRESSIONS, default="none")
    p.add_argument(
        "--brokers",
        default=None,
        help="comma list of shoal,shoal-mem,tansu (default: all three on embedded, shoal,tansu\n"
        "on seaweedfs-pg); shoal-mem keeps segment files in memory like Tansu's memory://",
    )
    p.add_argument("--shoal-bootstrap", metavar="HOST:PORT", help="use a running Shoal")
    p.add_argument("--tansu-bootstrap", metavar="HOST:PORT", help="use a running Tansu")
    p.add_argument("--rate", type=float, help="records/s in the latency phase (default: peak/2)")
    p.add_argument("--latency-seconds", type=float, default=10.0, help="default 10")
    p.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="run every broker this many times, interleaved (A B A B ...), and report\n"
        "medians: one run on a shared 2-core machine varies by +-30 %% (default 5)",
    )
    p.add_argument("--flush-interval-ms", type=int, help="passed to the started Shoal agent")
    p.add_argument(
        "--backend",
        choices=("embedded", "seaweedfs-pg"),
        default="embedded",
        help="storage of started brokers: embedded (Shoal local, Tansu memory) or\n"
        "seaweedfs-pg (SeaweedFS + PostgreSQL for Shoal, Tansu s3:// on the same SeaweedFS)",
    )
    p.add_argument("--no-idempotence", action="store_true", help="enable.idempotence=false")
    p.add_argument("--phase-timeout-s", type=float, default=300.0, help="per phase (default 300)")
    p.add_argument("--stall-timeout-s", type=float, default=30.0, help="no progress (default 30)")
    p.add_argument("--json", action="store_true", help="also print the results as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = p.parse_args(argv)
    if args.brokers is None:
        args.brokers = "shoal,shoal-mem,tansu" if args.backend == "embedded" else "shoal,tansu"
    names = [n.strip() for n in args.brokers.split(",") if n.strip()]
    unknown = [n for n in names if n not in BROKERS]
    if not names or unknown or len(set(names)) != len(names):
        p.error(f"--brokers: distinct names from {','.join(BROKERS)} (got {args.brokers})")
    if "shoal-mem" in names and args.backend != "embedded":
        p.error("--brokers: shoal-mem runs on the embedded backend only")
    args.broker_names = names
    if not 1 <= args.record_bytes <= 900_000:
        p.error("--record-bytes must be 1..900000 (one record must fit one produce batch)")
    if not 1 <= args.partitions <= 10_000:
        p.error("--partitions must be 1..10000")
    if args.rate is not None and args.rate <= 0:
        p.error("--rate must be positive")
    if not 1 <= args.rounds <= 50:
        p.error("--rounds must be 1..50")
    return args


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wl = Workload(
        record_bytes=args.record_bytes,
        partitions=args.partitions,
        total_bytes=args.total_bytes,
        compression=args.compression,
        rate=args.rate,
        latency_seconds=args.latency_seconds,
        idempotence=not args.no_idempotence,
        phase_timeout_s=args.phase_timeout_s,
        stall_timeout_s=args.stall_timeout_s,
    )
    progress = Progress(enabled=not args.quiet)
    # A terminated bench must still stop the brokers it started (they run in their own
    # sessions, so nothing else would): turn SIGTERM/SIGHUP into the Ctrl-C path.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    bootstraps = {"shoal": args.shoal_bootstrap, "tansu": args.tansu_bootstrap, "shoal-mem": None}
    per_broker: dict[str, list[BrokerResult]] = {}
    notes: list[str] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-servers-") as tmp:
            if args.backend != "embedded":
                progress.done(f"starting {args.backend} servers", always=True)
            with servers.backend(args.backend, Path(tmp)) as storage:
                notes = storage.notes
                # Interleaved, so a slow spell of the machine hits every broker alike.
                for number in range(1, args.rounds + 1):
                    if args.rounds > 1:
                        progress.done(f"round {number} of {args.rounds}")
                    for name in args.broker_names:
                        flush = args.flush_interval_ms if name.startswith("shoal") else None
                        label = storage.label(name)
                        # Data dirs go when the whole run is over: deleting a round's files
                        # right away would slow the next round's file creation (see README).
                        result = bench_broker(
                            name, bootstraps[name], flush, wl, progress, storage, label, Path(tmp)
                        )
                        per_broker.setdefault(result.broker, []).append(result)
    except KeyboardInterrupt:
        progress.done("interrupted", always=True)
        return 130
    results = [combine_rounds(rounds) for rounds in per_broker.values()]
    print(f"backend: {args.backend}" + "".join(f"; {n}" for n in notes))
    print(render_table(wl, results, args.rounds))
    if args.rounds > 1:
        print(render_rounds(per_broker))
    if args.json:
        rounds_json = {name: [asdict(r) for r in rounds] for name, rounds in per_broker.items()}
        print(
            json.dumps(
                {
                    "workload": asdict(wl),
                    "results": [asdict(r) for r in results],
                    "rounds": rounds_json,
                }
            )
        )
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
