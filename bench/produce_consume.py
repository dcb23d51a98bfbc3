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
import signal
import sys
import tempfile
import uuid
from dataclasses import asdict
from pathlib import Path

import servers
from bench_model import (
    BROKERS,
    COMPRESSIONS,
    MB,
    BrokerResult,
    MiB,
    PhaseError,
    Progress,
    Workload,
    fmt_bytes,
    parse_size,
    payloads,
)
from bench_phases import percentile, phase_consume, phase_latency, phase_produce
from bench_report import combine_rounds, render_rounds, render_table
from brokers import BrokerError, StorageOptions, broker_for, create_topic


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
