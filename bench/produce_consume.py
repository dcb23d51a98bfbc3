"""Produce/consume benchmark: Shoal against the Tansu and Apache Kafka peer brokers, same
workload, same run.

Per broker and client. librdkafka (confluent-kafka, in this process): (1) produce
`--total-bytes` as fast as possible and time it until the last delivery report; (2) read the
topic back from the beginning; (3) produce at a paced rate (default half of the peak from
phase 1) for `--latency-seconds` and record each message's latency from produce() to its
delivery report. java (`--clients ...,java`: Kafka 4.4's kafka-producer-perf-test and
kafka-consumer-perf-test, one JVM each): the same records at full speed, then read back by a
consumer group; the figures are the tools' own summaries. MB/s counts record value bytes,
1 MB = 10^6 bytes. Every broker runs `--rounds` times (default 5), interleaved; the table shows
medians. Every producer uses acks=all.

    .venv/bin/python bench/produce_consume.py --total-bytes 64MiB
    .venv/bin/python bench/produce_consume.py --brokers shoal,tansu,kafka --clients librdkafka,java

`--backend seaweedfs-pg` starts SeaweedFS (S3) and a durable PostgreSQL for the run: Shoal
keeps segments in SeaweedFS and metadata in PostgreSQL, Tansu uses its `s3://` engine on the
same SeaweedFS, and Kafka (which has no object-store tier) its local disk. The default
`embedded` runs Shoal on its local stores, Tansu in memory and Kafka on its local disk.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict
from pathlib import Path

import servers
from bench_model import (
    BROKERS,
    CLIENTS,
    COMPRESSIONS,
    MB,
    BrokerResult,
    MiB,
    PhaseError,
    Progress,
    Workload,
    fmt_bytes,
    parse_consumer_perf,
    parse_producer_perf,
    parse_size,
    payloads,
)
from bench_phases import percentile, phase_consume, phase_latency, phase_produce
from bench_report import combine_rounds, java_caveats, render_rounds, render_table
from brokers import (
    BrokerError,
    RunningBroker,
    StorageOptions,
    broker_for,
    create_topic,
    kafka_tool,
)

# Added to each perf tool's deadline: the JVM with Kafka's classpath takes seconds to start on
# a busy 2-core host, and the tools' own clocks start only after that.
JVM_START_ALLOWANCE_S = 120.0
KAFKA_LOCAL_DISK_NOTE = "kafka: its local disk on every backend (no object-store tier here)"


def run_librdkafka(
    broker: RunningBroker,
    wl: Workload,
    values: list[bytes],
    progress: Progress,
    tag: str,
    result: BrokerResult,
) -> None:
    """bench_phases.py's three phases against a fresh topic, into `result`."""
    topic = f"bench-{uuid.uuid4().hex[:12]}"
    create_topic(broker, topic, wl.partitions, timeout_s=30.0)

    seconds, delivered, failed = phase_produce(broker, topic, wl, values, progress)
    peak = delivered / seconds
    result.produce_seconds = seconds
    result.produce_records = delivered
    result.produce_errors = failed
    result.produce_records_s = peak
    result.produce_mb_s = delivered * wl.record_bytes / seconds / MB
    progress.done(
        f"[{tag}] produce: {fmt_bytes(delivered * wl.record_bytes)} in {seconds:.2f} s"
        f" = {result.produce_mb_s:.1f} MB/s ({delivered / seconds:.0f} rec/s)"
    )

    seconds, records, value_bytes = phase_consume(broker, topic, wl, delivered, progress)
    result.consume_seconds = seconds
    result.consume_records = records
    result.consume_records_s = records / seconds
    result.consume_mb_s = value_bytes / seconds / MB
    progress.done(
        f"[{tag}] consume: {records} records in {seconds:.2f} s = {result.consume_mb_s:.1f} MB/s"
    )

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
        f"[{tag}] latency at {achieved:.0f} rec/s: p50 {result.p50_ms:.1f} ms,"
        f" p99 {result.p99_ms:.1f} ms, max {result.max_ms:.1f} ms"
    )
    result.ok = result.produce_errors == 0 and result.latency_errors == 0
    if not result.ok:
        result.error = (
            f"delivery errors: {result.produce_errors} in produce,"
            f" {result.latency_errors} failed or undelivered in latency"
        )


def _perf_tool(
    broker: RunningBroker, wl: Workload, name: str, *args: str
) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run one of Kafka's perf tools to completion; (its output, wall seconds with the JVM)."""
    started = time.monotonic()
    try:
        done = kafka_tool(name, *args, timeout_s=wl.phase_timeout_s + JVM_START_ALLOWANCE_S)
    except subprocess.TimeoutExpired as exc:
        raise PhaseError(f"{name}: over the phase timeout") from exc
    wall = time.monotonic() - started
    broker.check_alive()
    if done.returncode != 0:
        raise PhaseError(f"{name} exited with {done.returncode}:\n{done.stderr[-1500:]}")
    return done, wall


def run_java(
    broker: RunningBroker, wl: Workload, progress: Progress, tag: str, result: BrokerResult
) -> None:
    """Kafka's perf tools against a fresh topic: the same records, produced as fast as the Java
    producer goes (its defaults apart from acks, idempotence and compression), then read from
    the beginning by a consumer group."""
    topic = f"bench-java-{uuid.uuid4().hex[:12]}"
    create_topic(broker, topic, wl.partitions, timeout_s=30.0)
    props = [
        "acks=all",
        f"bootstrap.servers={broker.bootstrap}",
        f"enable.idempotence={str(wl.idempotence).lower()}",
        f"compression.type={wl.compression}",
        f"delivery.timeout.ms={int(wl.phase_timeout_s * 1000)}",
    ]
    progress.update(f"[{tag}] kafka-producer-perf-test, {wl.records} records", force=True)
    done, wall = _perf_tool(
        broker, wl, "kafka-producer-perf-test",
        "--topic", topic, "--num-records", str(wl.records),
        "--record-size", str(wl.record_bytes), "--throughput", "-1",
        "--producer-props", *props,
    )  # fmt: skip
    produced = parse_producer_perf(done.stdout)
    result.produce_wall_seconds = wall
    result.produce_records = produced.records
    result.produce_errors = wl.records - produced.records
    result.produce_records_s = produced.records_s
    result.produce_mb_s = produced.records_s * wl.record_bytes / MB
    result.produce_seconds = produced.records / produced.records_s if produced.records_s else None
    # The producer's own send-to-callback latencies, at full load (the tool paces nothing).
    result.latency_achieved_rate = produced.records_s
    result.latency_records = produced.records
    result.p50_ms = produced.p50_ms
    result.p99_ms = produced.p99_ms
    result.max_ms = produced.max_ms
    progress.done(
        f"[{tag}] produce: {produced.records} records = {result.produce_mb_s:.1f} MB/s"
        f" ({produced.records_s:.0f} rec/s), p50 {produced.p50_ms:.0f} ms,"
        f" p99 {produced.p99_ms:.0f} ms at full load; {wall:.1f} s with the JVM"
    )
    if produced.records == 0:
        raise PhaseError("kafka-producer-perf-test: no record delivered")

    progress.update(f"[{tag}] kafka-consumer-perf-test, {produced.records} records", force=True)
    done, wall = _perf_tool(
        broker, wl, "kafka-consumer-perf-test",
        "--bootstrap-server", broker.bootstrap, "--topic", topic,
        "--messages", str(produced.records),
        "--timeout", str(int(wl.stall_timeout_s * 1000)),
    )  # fmt: skip
    consumed = parse_consumer_perf(done.stdout)
    result.consume_wall_seconds = wall
    result.consume_records = consumed.records
    result.consume_join_ms = consumed.join_ms
    # From the end of the group join to the last record, like the librdkafka phase's clock
    # from assign(); Kafka's "MB" is 2^20 bytes.
    result.consume_records_s = consumed.fetch_records_s
    result.consume_mb_s = consumed.fetch_mib_s * MiB / MB
    result.consume_seconds = consumed.fetch_ms / 1000
    progress.done(
        f"[{tag}] consume: {consumed.records} records = {result.consume_mb_s:.1f} MB/s"
        f" ({consumed.fetch_records_s:.0f} rec/s) after a {consumed.join_ms:.0f} ms group join;"
        f" {wall:.1f} s with the JVM"
    )
    result.ok = result.produce_errors == 0 and consumed.records >= produced.records
    if not result.ok:
        result.error = (
            f"{result.produce_errors} records not delivered,"
            f" {consumed.records} of {produced.records} read back"
        )


def bench_broker(
    name: str,
    bootstrap: str | None,
    flush_interval_ms: int | None,
    wl: Workload,
    progress: Progress,
    storage: StorageOptions | None = None,
    label: str | None = None,
    parent: Path | None = None,
    clients: tuple[str, ...] = ("librdkafka",),
) -> list[BrokerResult]:
    """One start of broker `name`, measured by each of `clients` in turn (a fresh topic each);
    one result per client, failed ones with the reason."""
    results = [BrokerResult(broker=label or name, client=client) for client in clients]
    values = payloads(wl.record_bytes, wl.total_bytes) if "librdkafka" in clients else []
    try:
        with broker_for(name, bootstrap, flush_interval_ms, storage, parent) as broker:
            progress.done(f"[{name}] up at {broker.bootstrap}")
            for result in results:
                tag = name if result.client == "librdkafka" else f"{name} {result.client}"
                try:
                    if result.client == "librdkafka":
                        run_librdkafka(broker, wl, values, progress, tag, result)
                    else:
                        run_java(broker, wl, progress, tag, result)
                except (BrokerError, PhaseError) as exc:
                    result.ok = False
                    result.error = str(exc)
                    progress.done(f"[{tag}] FAILED: {exc}", always=True)
    except BrokerError as exc:
        for result in results:
            if result.error is None:
                result.ok = False
                result.error = str(exc)
        progress.done(f"[{name}] FAILED: {exc}", always=True)
    return results


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--record-bytes", type=int, default=1024, help="value size (default 1024)")
    p.add_argument("--partitions", type=int, default=8, help="topic partitions (default 8)")
    p.add_argument("--total-bytes", type=parse_size, default=256 * MiB, help="default 256MiB")
    p.add_argument("--compression", choices=COMPRESSIONS, default="none")
    p.add_argument(
        "--brokers",
        default=None,
        help="comma list of shoal,shoal-mem,tansu,kafka (default: all four on embedded,\n"
        "shoal,tansu,kafka on seaweedfs-pg); shoal-mem keeps segment files in memory like\n"
        "Tansu's memory://; kafka is Apache Kafka 4.4 (KRaft, one node) on its local disk",
    )
    p.add_argument(
        "--clients",
        default="librdkafka",
        help="comma list of librdkafka,java (default librdkafka): java runs Kafka's\n"
        "kafka-producer-perf-test and kafka-consumer-perf-test against every broker",
    )
    p.add_argument("--shoal-bootstrap", metavar="HOST:PORT", help="use a running Shoal")
    p.add_argument("--tansu-bootstrap", metavar="HOST:PORT", help="use a running Tansu")
    p.add_argument("--kafka-bootstrap", metavar="HOST:PORT", help="use a running Kafka")
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
        "seaweedfs-pg (SeaweedFS + PostgreSQL for Shoal, Tansu s3:// on the same SeaweedFS);\n"
        "Kafka is on its local disk in both",
    )
    p.add_argument("--no-idempotence", action="store_true", help="enable.idempotence=false")
    p.add_argument("--phase-timeout-s", type=float, default=300.0, help="per phase (default 300)")
    p.add_argument("--stall-timeout-s", type=float, default=30.0, help="no progress (default 30)")
    p.add_argument("--json", action="store_true", help="also print the results as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = p.parse_args(argv)
    if args.brokers is None:
        args.brokers = (
            "shoal,shoal-mem,tansu,kafka" if args.backend == "embedded" else "shoal,tansu,kafka"
        )
    names = [n.strip() for n in args.brokers.split(",") if n.strip()]
    unknown = [n for n in names if n not in BROKERS]
    if not names or unknown or len(set(names)) != len(names):
        p.error(f"--brokers: distinct names from {','.join(BROKERS)} (got {args.brokers})")
    if "shoal-mem" in names and args.backend != "embedded":
        p.error("--brokers: shoal-mem runs on the embedded backend only")
    args.broker_names = names
    clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    if not clients or any(c not in CLIENTS for c in clients) or len(set(clients)) != len(clients):
        p.error(f"--clients: distinct names from {','.join(CLIENTS)} (got {args.clients})")
    args.client_names = tuple(clients)
    if not 1 <= args.record_bytes <= 900_000:
        p.error("--record-bytes must be 1..900000 (one record must fit one produce batch)")
    if not 1 <= args.partitions <= 10_000:
        p.error("--partitions must be 1..10000")
    if args.rate is not None and args.rate <= 0:
        p.error("--rate must be positive")
    if not 1 <= args.rounds <= 50:
        p.error("--rounds must be 1..50")
    return args


def _kafka_label(args: argparse.Namespace) -> str:
    return "kafka" if args.backend == "embedded" else "kafka local-disk"


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
    bootstraps = {
        "shoal": args.shoal_bootstrap,
        "tansu": args.tansu_bootstrap,
        "kafka": args.kafka_bootstrap,
        "shoal-mem": None,
    }
    # Keyed "broker/client": one row of the table each.
    per_broker: dict[str, list[BrokerResult]] = {}
    notes: list[str] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-servers-") as tmp:
            if args.backend != "embedded":
                progress.done(f"starting {args.backend} servers", always=True)
            with servers.backend(args.backend, Path(tmp)) as storage:
                notes = list(storage.notes)
                if "kafka" in args.broker_names and args.backend != "embedded":
                    notes.append(KAFKA_LOCAL_DISK_NOTE)
                # Interleaved, so a slow spell of the machine hits every broker alike.
                for number in range(1, args.rounds + 1):
                    if args.rounds > 1:
                        progress.done(f"round {number} of {args.rounds}")
                    for name in args.broker_names:
                        flush = args.flush_interval_ms if name.startswith("shoal") else None
                        label = storage.label(name) if name != "kafka" else _kafka_label(args)
                        # Data dirs go when the whole run is over: deleting a round's files
                        # right away would slow the next round's file creation (see README).
                        results = bench_broker(
                            name, bootstraps[name], flush, wl, progress, storage, label,
                            Path(tmp), args.client_names,
                        )  # fmt: skip
                        for result in results:
                            key = f"{result.broker}/{result.client}"
                            per_broker.setdefault(key, []).append(result)
    except KeyboardInterrupt:
        progress.done("interrupted", always=True)
        return 130
    results = [combine_rounds(rounds) for rounds in per_broker.values()]
    caveats = java_caveats(results) if "java" in args.client_names else []
    print(f"backend: {args.backend}" + "".join(f"; {n}" for n in notes))
    print(render_table(wl, results, args.rounds))
    for line in caveats:
        print(line)
    if args.rounds > 1:
        print(render_rounds(per_broker))
    if args.json:
        rounds_json = {name: [asdict(r) for r in rounds] for name, rounds in per_broker.items()}
        print(
            json.dumps(
                {
                    "backend": args.backend,
                    "notes": notes,
                    "clients": list(args.client_names),
                    "rounds_run": args.rounds,
                    "workload": asdict(wl),
                    "results": [asdict(r) for r in results],
                    "rounds": rounds_json,
                    "caveats": caveats,
                }
            )
        )
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
